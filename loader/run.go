package loader

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/cnrancher/docker-hangar/archive"
	"github.com/cnrancher/docker-hangar/internal/digestcheck"
	"github.com/cnrancher/docker-hangar/manifest"
	"github.com/cnrancher/docker-hangar/oras"
)

// Status is the outcome of one image, or of one line of the failed list.
type Status int

// Outcomes of an image or line.
const (
	// StatusNotAttempted: the load stopped before the image started.
	StatusNotAttempted Status = iota
	// StatusLoaded: everything was pushed (or was there already); for a
	// validation, the image passed; for a dry run, it would load.
	StatusLoaded
	// StatusUnchanged: the destination already held it all; nothing was
	// pushed.
	StatusUnchanged
	// StatusFailed: the image did not load; its main tag was not touched.
	StatusFailed
	// StatusInterrupted: the load stopped while the image was under way;
	// its main tag was not touched.
	StatusInterrupted
	// StatusNotInArchive: the image-list line names no archive entry.
	StatusNotInArchive
)

func (s Status) String() string {
	return [...]string{"not-attempted", "loaded", "unchanged", "failed", "interrupted", "not-in-archive"}[s]
}

// ImageResult is the outcome of one destination image.
type ImageResult struct {
	Status Status
	Err    error
	Stats
	Duration time.Duration
	// Requests counts the registry requests made for the image, by HTTP
	// method (token requests and retries included; a blob transfer counts
	// for the image that started it).
	Requests oras.Requests

	index    [sha256.Size]byte // see Index
	hasIndex bool
}

// Index returns the digest of the index at the main tag after the load
// ("" for charts, files and failures).
func (ir *ImageResult) Index() digest.Digest {
	if !ir.hasIndex {
		return ""
	}
	return digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(ir.index[:]))
}

// setIndex records the index at the main tag; a digest that is not sha256
// (a registry's answer) is not recorded.
func (ir *ImageResult) setIndex(d digest.Digest) {
	ir.index, ir.hasIndex = digestcheck.SHA256Sum(d)
}

// Failure is one line of the failed list.
type Failure struct {
	// Key is the line as the failed list records it: the image-list line,
	// or the source:tag of an image that failed (as Hangar writes it).
	Key string
	// Status says why: StatusFailed, StatusNotInArchive,
	// StatusInterrupted or StatusNotAttempted.
	Status Status
}

// Result is the outcome of a load or a validation.
type Result struct {
	Plan *Plan
	// Images holds one result per planned image.
	Images map[*Image]*ImageResult
	// Failed is the failed list: one entry per line not fully loaded, in
	// image-list order, each key once.
	Failed []Failure
	// Stats sums the images' stats, once every transfer has finished.
	Stats
	Duration time.Duration
	// Stopped is why the load stopped before its end (the context's
	// cause, or an unreachable registry); nil when it ran to its end.
	Stopped error
}

// Summary counts the outcomes of a result: Loaded and Unchanged count
// destination images; the others count the lines of the failed list, so
// that they add up to its length.
type Summary struct {
	Loaded, Unchanged                               int
	Failed, NotInArchive, Interrupted, NotAttempted int
}

// Summary returns the counts of r.
func (r *Result) Summary() Summary {
	var s Summary
	for _, ir := range r.Images {
		switch ir.Status {
		case StatusLoaded:
			s.Loaded++
		case StatusUnchanged:
			s.Unchanged++
		}
	}
	for _, f := range r.Failed {
		switch f.Status {
		case StatusFailed:
			s.Failed++
		case StatusNotInArchive:
			s.NotInArchive++
		case StatusInterrupted:
			s.Interrupted++
		default:
			s.NotAttempted++
		}
	}
	return s
}

// FailedKeys returns the keys of the failed list, in order.
func (r *Result) FailedKeys() []string {
	keys := make([]string, len(r.Failed))
	for i, f := range r.Failed {
		keys[i] = f.Key
	}
	return keys
}

// ErrRegistryUnreachable means the load stopped because the registry
// stopped answering (after the registry client's own retries).
var ErrRegistryUnreachable = errors.New("registry stopped answering")

// Open reads the image list of opts, opens the archive and plans the load.
func Open(opts Options) (*archive.Reader, *Plan, error) {
	var lines []ListLine
	if opts.ImageList != "" {
		var err error
		if lines, err = ReadImageListFile(opts.ImageList); err != nil {
			return nil, nil, err
		}
	}
	ar, err := archive.Open(opts.Source)
	if err != nil {
		return nil, nil, err
	}
	plan, err := NewPlan(ar, lines, opts)
	if err != nil {
		ar.Close()
		return nil, nil, err
	}
	return ar, plan, nil
}

// Load loads the archive of opts into its destination, by Hangar's rules.
// The returned error is set when the load could not run at all (bad
// options, archive, list or registry); the outcome of each image is in the
// Result.
func Load(ctx context.Context, opts Options) (*Result, error) {
	if err := opts.Check(); err != nil {
		return nil, err
	}
	em := newEmitter(opts.Events)
	ar, plan, err := Open(opts)
	if err != nil {
		return nil, err
	}
	defer ar.Close()
	em.emit(Planned{Plan: plan})
	reg, err := connect(ctx, plan, opts, em, false)
	if err != nil {
		return nil, err
	}
	if !opts.DryRun {
		initHarbor(ctx, reg, plan, em)
		if !opts.SkipLogin {
			if err := checkPushAccess(ctx, reg, plan); err != nil {
				return nil, err
			}
		}
	}
	opts.Events = em.emit
	return Run(ctx, plan, ar, reg, opts), nil
}

// Run executes a plan read from src into reg: Load opens, plans and
// connects, then runs; tests may give their own source and registry.
func Run(ctx context.Context, plan *Plan, src Source, reg Registry, opts Options) *Result {
	return run(ctx, plan, src, reg, opts, newEmitter(opts.Events))
}

func newResult(plan *Plan) *Result {
	res := &Result{Plan: plan, Images: make(map[*Image]*ImageResult, len(plan.Images))}
	results := make([]ImageResult, len(plan.Images)) // one allocation, not one an image
	for i, img := range plan.Images {
		res.Images[img] = &results[i]
	}
	return res
}

func run(ctx context.Context, plan *Plan, src Source, reg Registry, opts Options, em *emitter) *Result {
	start := time.Now()
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	res := newResult(plan)
	r := &runner{opts: opts, src: src, reg: reg, em: em, host: plan.Host, stop: stop,
		blobs: newBlobScheduler(ctx, src, plan.Blobs, repositories(plan), opts.BlobConcurrency, opts.DryRun)}
	// Harbor refuses to delete a manifest that an index names (412
	// VIOLATE_FOREIGN_KEY_CONSTRAINT): the manifests the index at a tag
	// lists are there, and a warm image costs one GET of its tag.
	r.listedKept, _ = reg.IsHarbor(ctx)
	r.sharing = tagSharings(plan)

	// Images are prepared (destination read, blobs uploaded) ahead of
	// their turn, up to a window of images; their manifests and index are
	// then pushed in plan order, --jobs images at a time. So uploads keep
	// the registry busy even at -j 1, and the log reads in plan order.
	jobs := max(opts.Jobs, 1)
	window := semaphore.NewWeighted(int64(max(jobs, opts.BlobConcurrency, 1)))
	commits := semaphore.NewWeighted(int64(jobs))
	prevTurn := make(chan struct{})
	close(prevTurn)
	trackers := make([]*tracker, len(plan.Images))
	for _, img := range plan.Images {
		if img.Err == nil {
			r.blobs.expect(img.repo)
		}
	}
	var wg sync.WaitGroup
	for i, img := range plan.Images {
		if err := window.Acquire(ctx, 1); err != nil {
			break
		}
		myTurn, waitTurn := make(chan struct{}), prevTurn
		prevTurn = myTurn
		t := newTracker(img, em)
		trackers[i] = t
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer window.Release(1)
			if img.Err == nil {
				defer r.blobs.release(img.repo)
			}
			r.loadImage(ctx, img, res.Images[img], t, func() bool {
				// the turn passes on once this image may commit, or on
				// cancellation
				defer close(myTurn)
				select {
				case <-waitTurn:
				case <-ctx.Done():
					return false
				}
				return commits.Acquire(ctx, 1) == nil
			}, func() { commits.Release(1) })
			if t.final(res.Images[img]) {
				trackers[i] = nil // a load of thousands of images keeps few
			}
		}()
	}
	wg.Wait()
	if ctx.Err() == nil && !opts.DryRun && !opts.Overwrite {
		r.settle(ctx)
	}
	r.blobs.wait()
	for i, img := range plan.Images {
		ir := res.Images[img]
		if t := trackers[i]; t != nil {
			ir.Stats = t.snapshot()
			ir.Requests = t.requests.Snapshot()
		}
		res.Stats.add(ir.Stats)
	}
	if ctx.Err() != nil {
		res.Stopped = context.Cause(ctx)
		em.emit(Stopped{Err: res.Stopped})
	}
	res.Failed = failures(plan, res)
	res.Duration = time.Since(start)
	em.emit(LoadDone{Result: res})
	return res
}

// repositories returns the plan's repositories by number (Image.repo),
// numbering them first in a plan that NewPlan did not make.
func repositories(plan *Plan) []string {
	if plan.repositories == nil && len(plan.Images) > 0 {
		numbers := map[string]int32{}
		for _, img := range plan.Images {
			plan.number(numbers, img)
		}
	}
	return plan.repositories
}

// initHarbor creates the Harbor projects of the images being loaded; like
// Hangar, failures are warnings.
//
// References: hangar-load.md section 2.6, decisions.md D4.
func initHarbor(ctx context.Context, reg Registry, plan *Plan, em *emitter) {
	harbor, err := reg.IsHarbor(ctx)
	if err != nil {
		em.emit(Debug{Message: fmt.Sprintf("Harbor detection: %v", err)})
		return
	}
	if !harbor {
		return
	}
	// Projects are looked up a few at a time, each lookup costing Harbor
	// a password check; the missing ones are then created one after the
	// other, in plan order, as Hangar creates them. Their events come in
	// plan order.
	var projects []string
	seen := map[string]bool{}
	for _, img := range plan.Images {
		if !seen[img.Project] && img.Err == nil {
			seen[img.Project] = true
			projects = append(projects, img.Project)
		}
	}
	exists := make([]bool, len(projects))
	sem := semaphore.NewWeighted(harborConcurrency)
	var wg sync.WaitGroup
	for i, project := range projects {
		if sem.Acquire(ctx, 1) != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer sem.Release(1)
			exists[i], _ = reg.HarborProjectExists(ctx, project) // an error: EnsureHarborProject tells
		}()
	}
	wg.Wait()
	for i, project := range projects {
		ev := HarborProject{Project: project, Detected: i == 0}
		if !exists[i] {
			ev.Created, ev.Err = reg.EnsureHarborProject(ctx, project)
		}
		em.emit(ev)
	}
}

// harborConcurrency bounds the Harbor API calls of a load at once.
const harborConcurrency = 4

// checkPushAccess checks, before any upload, that the credentials may push
// to the destination: once per project (the first component of the
// repositories, as Harbor grants access), with its first repository (see
// oras.Registry.CheckPushAccess).
func checkPushAccess(ctx context.Context, reg Registry, plan *Plan) error {
	var errs []error
	done := map[string]bool{}
	for _, img := range plan.Images {
		project, _, _ := strings.Cut(img.Repository, "/")
		if img.Err != nil || done[project] {
			continue
		}
		done[project] = true
		if err := reg.CheckPushAccess(ctx, img.Repository); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

type runner struct {
	opts  Options
	src   Source
	reg   Registry
	em    *emitter
	host  string
	blobs *blobScheduler
	stop  context.CancelCauseFunc

	stopOnce   sync.Once
	listedKept bool // the registry keeps the manifests an index names
	sharing    map[*Image]tagSharing

	mu       sync.Mutex
	pushed   []pushed  // indexes pushed, for settle
	settleBy time.Time // when every index pushed has surely landed
}

func (r *runner) debugf(format string, args ...any) {
	if r.opts.Debug {
		r.em.emit(Debug{Message: fmt.Sprintf(format, args...)})
	}
}

// stopUnreachable stops the whole load, once, when the registry stopped
// answering: the other images would only repeat the error.
func (r *runner) stopUnreachable(err error) {
	r.stopOnce.Do(func() {
		r.stop(fmt.Errorf("%w: %s: %w", ErrRegistryUnreachable, r.host, err))
	})
}

// loadImage loads one destination image: prepare uploads the blobs of its
// manifests; then, when turn grants it, its manifests are pushed and, once
// all are in, the merged index at the main tag. done releases the turn.
func (r *runner) loadImage(ctx context.Context, img *Image, ir *ImageResult, t *tracker, turn func() bool, done func()) {
	start := time.Now()
	ctx = oras.CountRequests(ctx, &t.requests)
	r.em.emit(ImageStarted{Image: img, Total: t.total})
	p, err := r.prepare(ctx, img, t)
	if !turn() {
		ir.Status, ir.Err = StatusInterrupted, context.Cause(ctx)
		ir.Requests = t.requests.Snapshot()
		r.em.emit(ImageDone{Image: img, Result: ir})
		return
	}
	release := sync.OnceFunc(done)
	defer release()
	r.em.emit(ImageLoading{Image: img})
	if err == nil {
		err = r.commit(ctx, img, p, ir, release)
	}
	ir.Duration = time.Since(start)
	switch {
	case err == nil:
		if ir.Status != StatusUnchanged {
			ir.Status = StatusLoaded
		}
	case ctx.Err() != nil:
		ir.Status, ir.Err = StatusInterrupted, context.Cause(ctx)
	case errors.Is(err, oras.ErrUnreachable):
		r.stopUnreachable(err)
		ir.Status, ir.Err = StatusInterrupted, context.Cause(ctx)
	default:
		ir.Status, ir.Err = StatusFailed, err
	}
	ir.Stats = t.snapshot()
	ir.Requests = t.requests.Snapshot()
	t.finished()
	r.em.emit(ImageDone{Image: img, Result: ir})
}

// tagSharing says how an image's tags meet other images' of the plan.
type tagSharing uint8

const (
	// sharesTag: the image writes a tag (main, platform or attestation)
	// that another image writes too. In Hangar's order at -j 1 the later
	// write wins, so such images commit strictly one after the other.
	sharesTag tagSharing = 1 << iota
	// mainTagShared: another image writes the image's main tag; settle
	// leaves it alone (that write is this load's, not another writer's).
	mainTagShared
)

// tagSharings returns the images of the plan whose tags other images
// write too. Tags are compared by a 64-bit hash of repository and tag: a
// collision only makes an image wait, and be left alone by settle.
func tagSharings(plan *Plan) map[*Image]tagSharing {
	seed := maphash.MakeSeed()
	type writer struct {
		img  *Image
		main bool
	}
	writers := map[uint64]writer{}
	shared := map[*Image]tagSharing{}
	note := func(img *Image, tag string, main bool) {
		if tag == "" {
			return
		}
		k := maphash.Comparable(seed, [2]string{img.Repository, tag})
		w, ok := writers[k]
		if !ok {
			writers[k] = writer{img, main}
			return
		}
		if w.img == img {
			return
		}
		shared[w.img] |= sharesTag
		shared[img] |= sharesTag
		if w.main {
			shared[w.img] |= mainTagShared
		}
		if main {
			shared[img] |= mainTagShared
		}
	}
	for _, img := range plan.Images {
		if img.Err != nil {
			continue
		}
		note(img, img.Tag, !img.SkipIndex)
		for _, m := range img.Manifests() {
			note(img, m.Tag(), false)
		}
	}
	return shared
}

// step is what a manifest needs.
type step int

const (
	stepNone step = iota // present with its tag
	stepTag              // present, push it to its tag
	stepPush             // blobs uploaded, push it
)

// prepared is an image ready to commit.
type prepared struct {
	repo         Repository
	existing     *manifest.Existing
	existingDesc ocispec.Descriptor // zero when the tag did not exist
	manifests    []*Manifest        // the image's (Image.Manifests)
	steps        []step             // what each of manifests needs
	indexSteps   [][]*Manifest      // the image's (Image.Steps), of manifests
}

// newPrepared returns the state of an image being loaded into repo: its
// manifests and steps made once (Image.Manifests) for all that follows.
func newPrepared(repo Repository, img *Image) *prepared {
	manifests, steps := img.unpack()
	return &prepared{repo: repo, manifests: manifests, steps: make([]step, len(manifests)), indexSteps: stepsOf(manifests, steps)}
}

// prepare reads the destination tag, decides what each manifest needs and
// uploads the blobs of those that are missing.
func (r *runner) prepare(ctx context.Context, img *Image, t *tracker) (*prepared, error) {
	if img.Err != nil {
		return nil, fmt.Errorf("failed to load [%s]: %w", img.Source, img.Err)
	}
	// A Repository is made for each image (and kept only while it
	// loads): it keeps nothing that other images need.
	repo, err := r.reg.Repository(img.Repository)
	if err != nil {
		return nil, err
	}
	p := newPrepared(repo, img)
	if img.Tag != "" && !img.SkipIndex {
		if err := p.readTag(ctx, img); err != nil {
			return nil, err
		}
	}
	// A tag that does not exist means a new image: its manifests are
	// pushed without asking for each first (an earlier, interrupted load
	// may have pushed some: pushing them again is harmless, and their
	// large blobs are still found).
	absent := img.Tag != "" && !img.SkipIndex && p.existingDesc.Digest == ""
	g, gctx := errgroup.WithContext(ctx)
	for i, m := range p.manifests {
		g.Go(func() error {
			known := knownUnknown
			switch {
			case absent:
				known = knownAbsent
			case p.existing.HasDigest(m.Digest()):
				known = knownListed
			}
			s, err := r.prepareManifest(gctx, img, repo, m, known, t)
			p.steps[i] = s
			return err
		})
	}
	return p, g.Wait()
}

// readTag reads what the image's main tag holds.
func (p *prepared) readTag(ctx context.Context, img *Image) error {
	p.existing, p.existingDesc = nil, ocispec.Descriptor{}
	desc, body, err := p.repo.FetchManifest(ctx, img.Tag)
	switch {
	case err == nil:
		if p.existing, err = manifest.ParseExisting(desc.MediaType, body); err != nil {
			return fmt.Errorf("read destination [%s]: %w", img.Reference(), err)
		}
		p.existingDesc = desc
	case errors.Is(err, oras.ErrNotFound):
	default:
		return fmt.Errorf("read destination [%s]: %w", img.Reference(), err)
	}
	return nil
}

// knowledge is what the main tag said of a manifest.
type knowledge int

const (
	knownUnknown knowledge = iota // the tag's index does not name it
	knownListed                   // the tag's index names it
	knownAbsent                   // the tag does not exist: a new image
)

// prepareManifest decides what one manifest needs and, when it is missing,
// uploads its blobs. It costs one HEAD for a manifest that is there (two
// when its platform tag must be checked), none for one of a new image or
// one the tag's index lists on Harbor; a chart or file, whose tag is its
// only reference, one HEAD of that tag.
func (r *runner) prepareManifest(ctx context.Context, img *Image, repo Repository, m *Manifest, known knowledge, t *tracker) (step, error) {
	desc := manifestDescriptor(m)
	fail := func(err error) (step, error) {
		return stepNone, fmt.Errorf("manifest %s (%s): %w", desc.Digest, platformString(m.entry.platform), err)
	}
	blobs, err := r.manifestBlobs(m)
	if err != nil {
		return fail(err)
	}
	present := func() {
		for _, b := range blobs {
			t.account(b, outcomePresent)
		}
	}
	switch {
	case known == knownAbsent:
		// a new image: upload and push
	case img.SkipIndex && m.Tag() != "":
		got, err := repo.ResolveManifest(ctx, m.Tag())
		switch {
		case err == nil && got.Digest == desc.Digest:
			present()
			return stepNone, nil
		case err != nil && !errors.Is(err, oras.ErrNotFound):
			return fail(err)
		}
		// not at its tag: upload (blobs already there are found) and push
	case known == knownListed && r.listedKept:
		present()
		return stepNone, nil
	default:
		exists, err := repo.ManifestExists(ctx, desc)
		if err != nil {
			return fail(err)
		}
		if exists {
			present()
			// Like Hangar, a manifest the destination index names is not
			// pushed again, not even to its tag.
			if known == knownListed || m.Tag() == "" {
				return stepNone, nil
			}
			got, err := repo.ResolveManifest(ctx, m.Tag())
			switch {
			case err == nil && got.Digest == desc.Digest:
				return stepNone, nil
			case err == nil || errors.Is(err, oras.ErrNotFound):
				return stepTag, nil
			default:
				return fail(err)
			}
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, b := range blobs {
		g.Go(func() error {
			if err := r.blobs.ensure(gctx, repo, img.repo, b, t); err != nil {
				return fmt.Errorf("blob %s: %w", b.Digest, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return fail(err)
	}
	return stepPush, nil
}

// manifestBlobs returns the blobs of a manifest, from their numbers.
func (r *runner) manifestBlobs(m *Manifest) ([]Blob, error) {
	blobs := make([]Blob, len(m.BlobIDs))
	for i, id := range m.BlobIDs {
		var err error
		if blobs[i].Digest, blobs[i].Size, err = r.src.Blob(id); err != nil {
			return nil, err
		}
		blobs[i].ID = id
	}
	return blobs, nil
}

// commit pushes the manifests of a prepared image, then its index.
//
// Its turn (the commit slot of -j) ends with release once its manifests
// are in, before its index is pushed, unless it writes a tag that another
// image of the plan writes too: the next image's manifests then go in
// while this index does (no write of one can touch the other's), which
// takes the index's round trips off the chain of ordered commits.
func (r *runner) commit(ctx context.Context, img *Image, p *prepared, ir *ImageResult, release func()) error {
	pushed := false
	g, gctx := errgroup.WithContext(ctx)
	for i, m := range p.manifests {
		if p.steps[i] == stepNone {
			continue
		}
		pushed = true
		if r.opts.DryRun {
			continue
		}
		g.Go(func() error {
			desc := manifestDescriptor(m)
			body, err := r.src.ReadBlob(desc.Digest, oras.MaxManifestSize)
			if err == nil {
				err = p.repo.PushManifest(gctx, desc, body, m.Tag())
			}
			if err != nil {
				return fmt.Errorf("manifest %s (%s): %w", desc.Digest, platformString(m.entry.platform), err)
			}
			r.em.emit(ManifestPushed{Image: img, Manifest: m, Descriptor: desc, Tag: m.Tag()})
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if r.sharing[img]&sharesTag == 0 {
		release()
	}
	if img.SkipIndex {
		if !pushed {
			ir.Status = StatusUnchanged
		}
		return nil
	}
	changed, err := r.commitIndex(ctx, img, p, ir, 0)
	if err == nil && !changed && !pushed {
		ir.Status = StatusUnchanged
	}
	return err
}

// commitIndex merges the image's index into what the main tag holds and
// pushes it when it changed (changed reports that). pushes counts the
// pushes of the index made before (settle's call, which has just read the
// tag, passes 1). Without --overwrite the first push is preceded by a
// read of the tag (a HEAD, and a GET if it changed since prepare read it;
// an image with nothing to push costs nothing more) and recorded for
// settle, which reads each tag once the load is done; a later push is
// read back instead: when
// another writer replaced it in between, the index is merged again with
// what is there now and pushed again, up to Options.IndexAttempts pushes
// in all, so that a platform loaded at the same time by another load
// survives. A writer whose push lands after our last read of the tag,
// having read the tag before our push landed, is not seen: registries
// offer no conditional writes; settle's wait narrows the window to what
// lands later than twice our own push took.
//
// References: hangar-load.md section 2.10; issue 12 (two loads at once).
func (r *runner) commitIndex(ctx context.Context, img *Image, p *prepared, ir *ImageResult, pushes int) (changed bool, err error) {
	mopts := manifest.DefaultMergeOptions()
	mopts.Overwrite = r.opts.Overwrite
	refreshed := pushes > 0 || r.opts.DryRun || r.opts.Overwrite
	attempts := max(r.opts.IndexAttempts, 1)
	for attempt := pushes + 1; ; attempt++ {
		merged, changedNow, err := mergeSteps(p.existing, p.indexSteps, mopts)
		if err != nil {
			if errors.Is(err, manifest.ErrEmpty) {
				return false, fmt.Errorf("failed to load [%s]: some images failed to load: no manifest matches the selected platforms", img.Source)
			}
			return false, fmt.Errorf("failed to load [%s]: %w", img.Source, err)
		}
		if !changedNow {
			ir.setIndex(p.existingDesc.Digest)
			return changed, nil
		}
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: merged.Digest(), Size: int64(len(merged.Bytes))}
		ir.setIndex(desc.Digest)
		if r.opts.DryRun {
			return true, nil
		}
		if attempt > attempts {
			return changed, fmt.Errorf("failed to load [%s]: another writer kept changing [%s]: %d pushes of the index did not settle", img.Source, img.Reference(), attempts)
		}
		if !refreshed {
			// About to push: read the tag again if it changed since
			// prepare read it, so that a load running at the same time
			// is seen (a HEAD; a GET when it changed).
			refreshed = true
			again, err := r.refreshTag(ctx, img, p)
			if err != nil {
				return false, err
			}
			if again {
				attempt--
				continue
			}
		}
		pushStart := time.Now()
		if err := p.repo.PushManifest(ctx, desc, merged.Bytes, img.Tag); err != nil {
			if ctx.Err() != nil && r.landed(p.repo, img.Tag, desc) {
				return true, nil
			}
			return changed, r.explainIndexPush(ctx, img, p, err)
		}
		changed = true
		r.em.emit(ManifestPushed{Image: img, Descriptor: desc, Tag: img.Tag})
		if r.opts.Overwrite {
			return true, nil
		}
		if pushes == 0 {
			r.pushedIndex(img, ir, time.Since(pushStart))
			return true, nil
		}
		if err := p.readTag(ctx, img); err != nil {
			if ctx.Err() != nil {
				return true, nil // pushed; the load stopped before the read-back
			}
			return true, fmt.Errorf("read back [%s]: %w", img.Reference(), err)
		}
		if p.existingDesc.Digest == desc.Digest {
			return true, nil
		}
		r.debugf("[%s] changed while it was pushed (now %s): merging again", img.Reference(), p.existingDesc.Digest)
	}
}

// pushed is an index this load pushed, for settle: the image's result
// names it (ImageResult.Index()).
type pushed struct {
	img *Image
	ir  *ImageResult
}

// pushedIndex records an index for settle, whose push took took.
func (r *runner) pushedIndex(img *Image, ir *ImageResult, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pushed = append(r.pushed, pushed{img: img, ir: ir})
	if by := time.Now().Add(2 * took); by.After(r.settleBy) {
		r.settleBy = by
	}
}

// maxSettleWait bounds the wait of settle.
const maxSettleWait = 2 * time.Second

// settle checks, once the load is done, that each index it pushed is still
// at its tag. Another load's index push, based on a read from before ours
// landed, may still be on its way: settle first waits until twice the
// longest push has passed since the last one was answered (such a push has
// landed by then), then reads each tag (a HEAD) and merges again where
// another writer replaced our index (commitIndex, reading its pushes
// back), so that both loads' platforms survive. It costs one HEAD per
// index pushed.
func (r *runner) settle(ctx context.Context) {
	if wait := time.Until(r.settleBy); wait > 0 {
		t := time.NewTimer(min(wait, maxSettleWait))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	sem := semaphore.NewWeighted(int64(max(r.opts.BlobConcurrency, 1)))
	var wg sync.WaitGroup
	for _, pi := range r.pushed {
		if r.sharing[pi.img]&mainTagShared != 0 {
			continue // another image of this load writes the tag too
		}
		if sem.Acquire(ctx, 1) != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer sem.Release(1)
			repo, err := r.reg.Repository(pi.img.Repository)
			if err != nil {
				return // it was made before
			}
			got, err := repo.ResolveManifest(ctx, pi.img.Tag)
			if err == nil && got.Digest == pi.ir.Index() || ctx.Err() != nil {
				return
			}
			r.debugf("[%s] changed after the load pushed it: merging again", pi.img.Reference())
			p := newPrepared(repo, pi.img)
			err = p.readTag(ctx, pi.img)
			if err == nil {
				_, err = r.commitIndex(ctx, pi.img, p, pi.ir, 1)
			}
			if err != nil && ctx.Err() == nil {
				pi.ir.Status, pi.ir.Err = StatusFailed, fmt.Errorf("failed to load [%s]: the index changed after it was pushed: %w", pi.img.Source, err)
			}
		}()
	}
	wg.Wait()
}

// refreshTag reads the main tag again if it changed since prepare read it,
// and reports whether it did.
func (r *runner) refreshTag(ctx context.Context, img *Image, p *prepared) (bool, error) {
	desc, err := p.repo.ResolveManifest(ctx, img.Tag)
	switch {
	case errors.Is(err, oras.ErrNotFound):
		if p.existing == nil {
			return false, nil
		}
	case err != nil:
		return false, fmt.Errorf("read destination [%s]: %w", img.Reference(), err)
	case desc.Digest == p.existingDesc.Digest:
		return false, nil
	}
	return true, p.readTag(ctx, img)
}

// landed reports whether an index push interrupted by cancellation reached
// the registry after all.
func (r *runner) landed(repo Repository, tag string, desc ocispec.Descriptor) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	got, err := repo.ResolveManifest(ctx, tag)
	return err == nil && got.Digest == desc.Digest
}

// explainIndexPush turns a refused index push into advice when the index
// names manifests missing from the registry that this load does not have
// (deleted since they were loaded): the registry refuses such an index.
func (r *runner) explainIndexPush(ctx context.Context, img *Image, p *prepared, pushErr error) error {
	base := fmt.Errorf("failed to push manifest index [%s]: %w", img.Reference(), pushErr)
	if ctx.Err() != nil || p.existing == nil {
		return base
	}
	for _, e := range p.existing.Manifests {
		if indexOfDigest(p.manifests, e.Digest) >= 0 {
			continue
		}
		ok, err := p.repo.ManifestExists(ctx, ocispec.Descriptor{MediaType: e.MediaType, Digest: e.Digest, Size: e.Size})
		if err == nil && !ok {
			return fmt.Errorf("%w: the index at [%s] names manifest %s (%s), which is missing from the registry and not in this archive: load the archive that holds it, or use --overwrite to replace the index",
				base, img.Reference(), e.Digest, platformString(e.Platform))
		}
	}
	return base
}

// mergeSteps merges the image's steps into existing one after the other, as
// Hangar loads the entries of one destination one after the other: a step
// whose merge changes nothing leaves the index as it is. changed reports
// that the result differs from existing.
func mergeSteps(existing *manifest.Existing, steps [][]*Manifest, opts manifest.MergeOptions) (merged manifest.Result, changed bool, err error) {
	if len(steps) == 0 {
		if existing == nil {
			return manifest.Result{}, false, manifest.ErrEmpty
		}
		return manifest.Result{}, false, nil
	}
	cur := existing
	var entries []ocispec.Descriptor
	for _, step := range steps {
		entries = entries[:0]
		for _, m := range step {
			entries = append(entries, m.Descriptor())
		}
		res, err := manifest.Merge(cur, entries, opts)
		if err != nil {
			return manifest.Result{}, false, err
		}
		if res.Unchanged {
			continue
		}
		merged, changed = res, true
		if cur, err = manifest.ParseExisting(ocispec.MediaTypeImageIndex, res.Bytes); err != nil {
			return manifest.Result{}, false, err
		}
	}
	return merged, changed, nil
}

// manifestDescriptor is m's descriptor for a push: no platform, no
// annotations.
func manifestDescriptor(m *Manifest) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: m.mediaType.String(), Digest: m.Digest(), Size: int64(m.size)}
}

// Platform returns the manifest's platform as os/arch[/variant], or "no
// platform" (charts, files).
func (m *Manifest) Platform() string { return platformString(m.entry.platform) }

func platformString(p *ocispec.Platform) string {
	if p == nil || p.OS == "" && p.Architecture == "" {
		return "no platform"
	}
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// failures returns the failed list of a result: the lines whose image did
// not load (or validate), in line order, each key once. Image-list misses
// and images not finished record the raw line, failed images their
// source:tag (as Hangar does).
func failures(plan *Plan, res *Result) []Failure {
	var out []Failure
	seen := map[string]bool{}
	for _, l := range plan.Lines {
		f := Failure{Key: l.Key, Status: StatusNotInArchive}
		if l.Err == nil {
			ir := res.Images[l.Image]
			switch ir.Status {
			case StatusLoaded, StatusUnchanged:
				continue
			case StatusFailed:
				f.Key = l.Source
			}
			f.Status = ir.Status
		}
		if !seen[f.Key] {
			seen[f.Key] = true
			out = append(out, f)
		}
	}
	return out
}

// WriteFailedList writes the failed list, one key per line.
func WriteFailedList(path string, failed []Failure) error {
	return writeFile(path, func(w *bufio.Writer) error {
		for _, l := range failed {
			w.WriteString(l.Key)
			w.WriteByte('\n')
		}
		return nil
	})
}

// writeFile creates the file at path and writes it through a buffer with
// write; an error of write, of the flush or of the close is returned.
func writeFile(path string, write func(*bufio.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	if err := write(w); err != nil {
		f.Close()
		return err
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
