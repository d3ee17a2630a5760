package loader

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/semaphore"

	"github.com/cnrancher/docker-hangar/archive"
	"github.com/cnrancher/docker-hangar/oras"
)

// Stats counts the bytes of an image's distinct blobs by what happened to
// them; each blob of an image counts once, in one field. The load's Stats
// are the sums over its images, taken once every transfer has finished.
type Stats struct {
	// Uploaded bytes were streamed from the archive to the registry (or
	// would be, in a dry run).
	Uploaded int64
	// Mounted bytes were mounted from another repository of the registry.
	Mounted int64
	// Present bytes were in the destination repository already, or were
	// put there by this load for another image.
	Present int64
}

func (s *Stats) add(o Stats) {
	s.Uploaded += o.Uploaded
	s.Mounted += o.Mounted
	s.Present += o.Present
}

// outcome is what a blob transfer did.
type outcome int

const (
	outcomePresent outcome = iota
	outcomeMounted
	outcomeUploaded
)

// tracker accounts for the bytes of one image and reports its progress.
type tracker struct {
	img   *Image
	total int64
	em    *emitter

	// requests counts the registry requests made for the image
	// (transfers it started included).
	requests oras.RequestCounts

	mu       sync.Mutex
	counted  map[digest.Digest]bool
	stats    Stats
	done     int64 // accounted bytes plus bytes of uploads in flight
	lastEmit time.Time
}

func newTracker(img *Image, em *emitter) *tracker {
	return &tracker{img: img, total: img.Size(), em: em, counted: map[digest.Digest]bool{}}
}

// account counts a blob of the image once, by its outcome.
func (t *tracker) account(desc Blob, o outcome) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.counted != nil {
		if t.counted[desc.Digest] {
			return
		}
		t.counted[desc.Digest] = true
	}
	switch o {
	case outcomeUploaded:
		t.stats.Uploaded += desc.Size
	case outcomeMounted:
		t.stats.Mounted += desc.Size
	default:
		t.stats.Present += desc.Size
	}
	t.done += desc.Size
	t.progress(true)
}

// finished drops what the tracker needs only while its image waits for
// blobs (the set of blobs counted); a transfer the image started may still
// end and count, once: no other blob of the image is counted then.
func (t *tracker) finished() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.counted = nil
}

// inflight adds (or, when an upload restarts, removes) bytes of an upload
// under way.
func (t *tracker) inflight(delta int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.done += delta
	t.progress(false)
}

// progress reports the image's bytes; the caller holds mu.
func (t *tracker) progress(force bool) {
	if !t.em.enabled() {
		return
	}
	now := time.Now()
	if !force && now.Sub(t.lastEmit) < ProgressInterval {
		return
	}
	t.lastEmit = now
	t.em.emit(ImageProgress{Image: t.img, Done: min(max(t.done, 0), t.total), Total: t.total})
}

// snapshot returns the image's stats so far.
func (t *tracker) snapshot() Stats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.stats
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
// when the registry declines). A transfer that failed is tried again by
// the next image that needs it, unless the archive's bytes are at fault.
//
// References: architecture.md, "Blobs".
type blobScheduler struct {
	ctx    context.Context // the load's
	src    Source
	sem    *semaphore.Weighted
	dryRun bool

	running sync.WaitGroup // transfers under way
	mu      sync.Mutex
	tasks   map[taskKey]*blobTask       // succeeded once done without error
	leaders map[digest.Digest]*blobTask // the first task of each digest
}

func newBlobScheduler(ctx context.Context, src Source, concurrency int, dryRun bool) *blobScheduler {
	return &blobScheduler{
		ctx:     ctx,
		src:     src,
		sem:     semaphore.NewWeighted(int64(max(concurrency, 1))),
		dryRun:  dryRun,
		tasks:   map[taskKey]*blobTask{},
		leaders: map[digest.Digest]*blobTask{},
	}
}

// ensure makes blob desc present in repo and accounts for it in t. The
// transfer runs under the load's context, not ctx: a blob shared by several
// images keeps going when the image that asked first fails or gives up
// (its bytes still count for that image); ctx only bounds the wait.
func (s *blobScheduler) ensure(ctx context.Context, repo Repository, desc Blob, t *tracker) error {
	key := taskKey{repo.Name(), desc.Digest}
	s.mu.Lock()
	task, ok := s.tasks[key]
	if !ok {
		task = &blobTask{done: make(chan struct{}), repo: key.repo}
		s.tasks[key] = task
		leader := s.leaders[desc.Digest]
		if leader == nil {
			s.leaders[desc.Digest] = task
		}
		s.running.Add(1)
		go func() {
			defer s.running.Done()
			var o outcome
			o, task.err = s.transfer(oras.CountRequests(s.ctx, &t.requests), repo, desc, leader, t)
			if task.err == nil {
				t.account(desc, o)
			}
			s.finish(key, task, leader == nil)
		}()
	}
	s.mu.Unlock()
	select {
	case <-task.done:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	if task.err != nil {
		return task.err
	}
	t.account(desc, outcomePresent) // a no-op for the image that transferred it
	return nil
}

// finish records the end of task t. A success is kept as succeeded, and,
// for the leader of a digest, as a small task naming its repository. A
// failure is forgotten, so that the next image tries again, unless the
// archive's bytes are at fault. After a leader failed for another reason,
// a later repository leads the next attempt at the digest.
func (s *blobScheduler) finish(key taskKey, t *blobTask, leads bool) {
	s.mu.Lock()
	switch {
	case t.err == nil:
		s.tasks[key] = succeeded
		if leads && s.leaders[key.digest] == t {
			s.leaders[key.digest] = &blobTask{done: closedDone, repo: t.repo}
		}
	default:
		if !contentError(t.err) && s.tasks[key] == t {
			delete(s.tasks, key)
		}
		if leads && s.leaders[key.digest] == t && !contentError(t.err) {
			delete(s.leaders, key.digest)
		}
	}
	s.mu.Unlock()
	close(t.done)
}

// contentError reports a failure that another attempt cannot cure: the
// archive's bytes do not match their digest, or the archive lacks them.
func contentError(err error) bool {
	return errors.Is(err, archive.ErrDigestMismatch) || errors.Is(err, oras.ErrDigestMismatch) || errors.Is(err, archive.ErrBlobNotFound)
}

// wait waits for every transfer started, including those no image waits
// for any more.
func (s *blobScheduler) wait() { s.running.Wait() }

func (s *blobScheduler) transfer(ctx context.Context, repo Repository, blob Blob, leader *blobTask, t *tracker) (outcome, error) {
	desc := blob.Descriptor()
	from := ""
	if leader != nil {
		select {
		case <-leader.done:
		case <-ctx.Done():
			return 0, context.Cause(ctx)
		}
		if leader.err == nil {
			from = leader.repo
		} else if contentError(leader.err) {
			return 0, leader.err
		}
	}
	if err := s.sem.Acquire(ctx, 1); err != nil {
		return 0, context.Cause(ctx)
	}
	defer s.sem.Release(1)

	// Small blobs are uploaded without asking first: the upload costs
	// about what the check does.
	if s.dryRun || from == "" && desc.Size >= checkThreshold {
		ok, err := repo.BlobExists(ctx, desc)
		if err != nil {
			return 0, err
		}
		switch {
		case ok:
			return outcomePresent, nil
		case s.dryRun && from != "":
			return outcomeMounted, nil
		case s.dryRun:
			return outcomeUploaded, nil
		}
	}
	// The bytes of the attempt under way count as progress; a retried
	// upload starts again from zero.
	var sent atomic.Int64
	defer func() { t.inflight(-sent.Swap(0)) }()
	open := func() (io.ReadCloser, error) {
		t.inflight(-sent.Swap(0))
		rc, err := s.src.Open(desc.Digest)
		if err != nil {
			return nil, err
		}
		return &countingReader{rc: rc, onBytes: func(n int64) { sent.Add(n); t.inflight(n) }}, nil
	}
	if from != "" {
		mounted, err := repo.MountBlob(ctx, desc, from, open)
		switch {
		case err != nil:
			return 0, err
		case mounted:
			return outcomeMounted, nil
		default:
			return outcomeUploaded, nil
		}
	}
	if err := repo.PushBlob(ctx, desc, open); err != nil {
		return 0, err
	}
	return outcomeUploaded, nil
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
	if n > 0 {
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
