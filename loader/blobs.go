package loader

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/semaphore"

	"github.com/cnrancher/docker-hangar/archive"
	"github.com/cnrancher/docker-hangar/oras"
)

// Stats counts the bytes of a load by what happened to them.
type Stats struct {
	// Uploaded bytes were streamed from the archive to the registry.
	Uploaded int64
	// Mounted bytes were mounted from another repository of the registry.
	Mounted int64
	// Present bytes were already in the destination repository.
	Present int64
}

func (s *Stats) add(o *Stats) {
	atomic.AddInt64(&s.Uploaded, atomic.LoadInt64(&o.Uploaded))
	atomic.AddInt64(&s.Mounted, atomic.LoadInt64(&o.Mounted))
	atomic.AddInt64(&s.Present, atomic.LoadInt64(&o.Present))
}

// blobTask is the transfer of one blob into one repository. Every image
// that needs the same (repository, digest) waits for the same task.
type blobTask struct {
	done chan struct{}
	err  error
	repo string
}

// taskKey names the transfer of a digest into a repository.
type taskKey struct {
	repo   string
	digest digest.Digest
}

// closedDone is the done channel of finished tasks that are kept.
var closedDone = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// succeeded stands for every successful transfer, so that a finished one
// costs its map entry only.
var succeeded = &blobTask{done: closedDone}

// blobScheduler moves each (repository, blob) pair once for the whole load:
// the first repository to need a digest checks for it and uploads it; the
// others wait for that and mount it from there (falling back to an upload
// when the registry declines).
//
// References: architecture.md, "Blobs".
type blobScheduler struct {
	ctx      context.Context // the load's
	ar       *archive.Reader
	sem      *semaphore.Weighted
	dryRun   bool
	progress func(n int64)

	running sync.WaitGroup // transfers under way
	mu      sync.Mutex
	tasks   map[taskKey]*blobTask       // succeeded once done without error
	leaders map[digest.Digest]*blobTask // the first task of each digest
}

func newBlobScheduler(ctx context.Context, ar *archive.Reader, concurrency int, dryRun bool) *blobScheduler {
	if concurrency < 1 {
		concurrency = 1
	}
	return &blobScheduler{
		ctx:     ctx,
		ar:      ar,
		sem:     semaphore.NewWeighted(int64(concurrency)),
		dryRun:  dryRun,
		tasks:   map[taskKey]*blobTask{},
		leaders: map[digest.Digest]*blobTask{},
	}
}

// ensure makes blob desc present in repo, counting its bytes into stats and
// reporting upload progress to onBytes. The transfer runs under the load's
// context, not ctx: a blob shared by several images keeps going when the
// image that asked first fails or gives up; ctx only bounds the wait.
func (s *blobScheduler) ensure(ctx context.Context, repo *oras.Repository, desc ocispec.Descriptor, stats *Stats, onBytes func(int64)) error {
	key := taskKey{repo.Name(), desc.Digest}
	s.mu.Lock()
	t, ok := s.tasks[key]
	if !ok {
		t = &blobTask{done: make(chan struct{}), repo: key.repo}
		s.tasks[key] = t
		leader := s.leaders[desc.Digest]
		if leader == nil {
			s.leaders[desc.Digest] = t
		}
		s.running.Add(1)
		go func() {
			defer s.running.Done()
			t.err = s.transfer(s.ctx, repo, desc, leader, stats, onBytes)
			s.finish(key, t, leader == nil)
		}()
	}
	s.mu.Unlock()
	select {
	case <-t.done:
		return t.err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// finish records the end of task t. A success is kept as succeeded, and,
// for the leader of a digest, as a small task naming its repository. After
// a failed leader, a later repository leads the next attempt at the digest.
func (s *blobScheduler) finish(key taskKey, t *blobTask, leads bool) {
	s.mu.Lock()
	switch {
	case t.err == nil:
		s.tasks[key] = succeeded
		if leads && s.leaders[key.digest] == t {
			s.leaders[key.digest] = &blobTask{done: closedDone, repo: t.repo}
		}
	case leads && s.leaders[key.digest] == t:
		delete(s.leaders, key.digest)
	}
	s.mu.Unlock()
	close(t.done)
}

// wait waits for every transfer started, including those no image waits
// for any more.
func (s *blobScheduler) wait() { s.running.Wait() }

func (s *blobScheduler) transfer(ctx context.Context, repo *oras.Repository, desc ocispec.Descriptor, leader *blobTask, stats *Stats, onBytes func(int64)) error {
	from := ""
	if leader != nil {
		select {
		case <-leader.done:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		if leader.err == nil {
			from = leader.repo
		} else if errors.Is(leader.err, archive.ErrDigestMismatch) || errors.Is(leader.err, oras.ErrDigestMismatch) || errors.Is(leader.err, archive.ErrBlobNotFound) {
			return leader.err
		}
	}
	if err := s.sem.Acquire(ctx, 1); err != nil {
		return context.Cause(ctx)
	}
	defer s.sem.Release(1)

	// Small blobs are uploaded without asking first: the upload costs
	// about what the check does.
	if s.dryRun || from == "" && desc.Size >= checkThreshold {
		ok, err := repo.BlobExists(ctx, desc)
		if err != nil {
			return err
		}
		if ok {
			atomic.AddInt64(&stats.Present, desc.Size)
			return nil
		}
		if s.dryRun {
			if from != "" {
				atomic.AddInt64(&stats.Mounted, desc.Size)
			} else {
				atomic.AddInt64(&stats.Uploaded, desc.Size)
			}
			return nil
		}
	}
	open := func() (io.ReadCloser, error) {
		rc, err := s.ar.Open(desc.Digest)
		if err != nil {
			return nil, err
		}
		return &countingReader{rc: rc, onBytes: onBytes}, nil
	}
	if from != "" {
		mounted, err := repo.MountBlob(ctx, desc, from, open)
		if err != nil {
			return err
		}
		if mounted {
			atomic.AddInt64(&stats.Mounted, desc.Size)
		} else {
			atomic.AddInt64(&stats.Uploaded, desc.Size)
		}
		return nil
	}
	if err := repo.PushBlob(ctx, desc, open); err != nil {
		return err
	}
	atomic.AddInt64(&stats.Uploaded, desc.Size)
	return nil
}

// checkThreshold is the size from which a blob's presence is checked before
// it is uploaded.
const checkThreshold = 256 << 10

// countingReader reports the bytes read through it.
type countingReader struct {
	rc      io.ReadCloser
	onBytes func(int64)
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	if n > 0 && c.onBytes != nil {
		c.onBytes(int64(n))
	}
	return n, err
}

func (c *countingReader) Close() error { return c.rc.Close() }

// VerifiesDigest forwards to the archive's reader (oras.DigestVerifier), so
// the uploaded bytes are hashed once.
func (c *countingReader) VerifiesDigest(d digest.Digest) bool {
	v, ok := c.rc.(oras.DigestVerifier)
	return ok && v.VerifiesDigest(d)
}
