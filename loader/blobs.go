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

	// transfers counts the blob transfers the image started that are
	// still running (they account for it).
	transfers atomic.Int32

	mu       sync.Mutex
	counted  map[int32]bool // by Blob.ID
	stats    Stats
	done     int64 // accounted bytes plus bytes of uploads in flight
	lastEmit time.Time
}

func newTracker(img *Image, em *emitter) *tracker {
	return &tracker{img: img, total: img.Size(), em: em, counted: map[int32]bool{}}
}

// account counts a blob of the image once, by its outcome.
func (t *tracker) account(desc Blob, o outcome) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.counted != nil {
		if t.counted[desc.ID] {
			return
		}
		t.counted[desc.ID] = true
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

// final reports whether ir holds the image's final counts: no transfer it
// started is running (none starts once the image is done), and ir has
// what they counted.
func (t *tracker) final(ir *ImageResult) bool {
	return t.transfers.Load() == 0 && t.snapshot() == ir.Stats && t.requests.Snapshot() == ir.Requests
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

// pair names a blob in a repository: the repository's number in the high
// half, the blob's (Blob.ID) in the low.
type pair uint64

func makePair(repo int32, blob int32) pair {
	return pair(uint64(uint32(repo))<<32 | uint64(uint32(blob)))
}

func (p pair) repo() int32 { return int32(uint32(p >> 32)) }

func (p pair) blob() int32 { return int32(uint32(p)) }

// blobScheduler moves each (repository, blob) pair once for the whole load:
// the first repository to need a digest checks for it and uploads it; the
// others wait for that and mount it from there (falling back to an upload
// when the registry declines). A transfer that failed is tried again by
// the next image that needs it, unless the archive's bytes are at fault.
//
// What it keeps of a blob once moved is the number of the first repository
// it went into (blobs and repositories are known by number), and, while an
// image of the plan still needs the repository (expect, release), a set
// entry there: a load of thousands of images keeps 4 bytes a blob and the
// sets of the repositories being loaded.
//
// References: architecture.md, "Blobs".
type blobScheduler struct {
	ctx    context.Context // the load's
	src    Source
	sem    *semaphore.Weighted
	dryRun bool

	running sync.WaitGroup // transfers under way
	mu      sync.Mutex
	names   []string // the repositories by number (Plan.repositories)
	// present holds, by repository number, the blobs moved into it; a
	// repository's set is dropped once the images expected to need it
	// have all been released (pending, by repository number).
	present map[int32]map[int32]struct{}
	pending []int32
	// tasks are the transfers under way, and those that failed because
	// of the archive's bytes (kept: another attempt cannot cure them).
	tasks map[pair]*blobTask
	// leaders are the first transfers of blobs, under way or failed
	// because of the archive's bytes.
	leaders map[int32]*blobTask
	// first holds, by Blob.ID, 1 + the number of the first repository the
	// blob was moved into (0: none yet), where others mount it from.
	first []int32
}

func newBlobScheduler(ctx context.Context, src Source, blobs int, repositories []string, concurrency int, dryRun bool) *blobScheduler {
	return &blobScheduler{
		ctx:     ctx,
		src:     src,
		sem:     semaphore.NewWeighted(int64(max(concurrency, 1))),
		dryRun:  dryRun,
		names:   repositories,
		pending: make([]int32, len(repositories)),
		present: map[int32]map[int32]struct{}{},
		tasks:   map[pair]*blobTask{},
		leaders: map[int32]*blobTask{},
		first:   make([]int32, blobs),
	}
}

// expect counts an image of the plan that will need repository number n,
// and release one that no longer does: the blobs moved into a repository
// are remembered until its last expected image is released. A transfer
// that ends after that (one that no image waits for any more) leaves a
// small set behind.
func (s *blobScheduler) expect(n int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending[n]++
}

// release: see expect.
func (s *blobScheduler) release(n int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.pending[n] == 0 {
		return
	}
	if s.pending[n]--; s.pending[n] == 0 {
		delete(s.present, n)
	}
}

// ensure makes blob desc present in repo, repository number n, and
// accounts for it in t. The
// transfer runs under the load's context, not ctx: a blob shared by several
// images keeps going when the image that asked first fails or gives up
// (its bytes still count for that image); ctx only bounds the wait.
func (s *blobScheduler) ensure(ctx context.Context, repo Repository, n int32, desc Blob, t *tracker) error {
	s.mu.Lock()
	key := makePair(n, desc.ID)
	if _, ok := s.present[key.repo()][desc.ID]; ok {
		s.mu.Unlock()
		t.account(desc, outcomePresent)
		return nil
	}
	task, ok := s.tasks[key]
	if !ok {
		task = &blobTask{done: make(chan struct{}), repo: repo.Name()}
		s.tasks[key] = task
		leader, from := s.leaders[desc.ID], ""
		if leader == nil {
			if f := s.first[desc.ID]; f > 0 {
				from = s.names[f-1]
			} else {
				s.leaders[desc.ID] = task
			}
		}
		leads := leader == nil && from == ""
		s.running.Add(1)
		t.transfers.Add(1)
		go func() {
			defer s.running.Done()
			defer t.transfers.Add(-1) // after it accounted and finished
			var o outcome
			o, task.err = s.transfer(oras.CountRequests(s.ctx, &t.requests), repo, desc, leader, from, t)
			if task.err == nil {
				t.account(desc, o)
			}
			s.finish(key, task, leads)
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

// finish records the end of task t. A success is kept as a present pair
// and, for the leader of a blob, as the blob's first repository. A failure
// is forgotten, so that the next image tries again, unless the archive's
// bytes are at fault. After a leader failed for another reason, a later
// repository leads the next attempt at the blob.
func (s *blobScheduler) finish(key pair, t *blobTask, leads bool) {
	s.mu.Lock()
	id := key.blob()
	switch {
	case t.err == nil:
		delete(s.tasks, key)
		set := s.present[key.repo()]
		if set == nil {
			set = map[int32]struct{}{}
			s.present[key.repo()] = set
		}
		set[id] = struct{}{}
		if leads && s.leaders[id] == t {
			delete(s.leaders, id)
			s.first[id] = key.repo() + 1
		}
	case !contentError(t.err):
		if s.tasks[key] == t {
			delete(s.tasks, key)
		}
		if leads && s.leaders[id] == t {
			delete(s.leaders, id)
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

// transfer moves a blob into repo: mounted from repository from, or, while
// the blob's first transfer (leader) is under way, from where that one put
// it, once it did; uploaded otherwise.
func (s *blobScheduler) transfer(ctx context.Context, repo Repository, blob Blob, leader *blobTask, from string, t *tracker) (outcome, error) {
	desc := blob.Descriptor()
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
