package loader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"

	"github.com/cnrancher/docker-hangar/archive"
	"github.com/cnrancher/docker-hangar/manifest"
	"github.com/cnrancher/docker-hangar/oras"
)

// ErrSomeFailed is returned when any image failed to load or validate.
var ErrSomeFailed = errors.New("some images failed to copy")

// Status is the outcome of one image.
type Status int

// Outcomes of an image.
const (
	// StatusNotAttempted: the load stopped before the image started.
	StatusNotAttempted Status = iota
	// StatusLoaded: everything was pushed (or was there already).
	StatusLoaded
	// StatusUnchanged: the destination already held it all; nothing was
	// pushed.
	StatusUnchanged
	// StatusFailed: the image did not load; its main tag was not touched.
	StatusFailed
)

func (s Status) String() string {
	return [...]string{"not-attempted", "loaded", "unchanged", "failed"}[s]
}

// ImageResult is the outcome of one destination image.
type ImageResult struct {
	Status Status
	Err    error
	Stats
	// Index is the descriptor of the index at the main tag after the load
	// (zero for charts, files and failures).
	Index    ocispec.Descriptor
	Duration time.Duration
}

// Result is the outcome of a load.
type Result struct {
	Plan *Plan
	// Images holds one result per planned image.
	Images map[*Image]*ImageResult
	// Failed is the failed list: one key per line not fully loaded, in
	// image-list order.
	Failed []string
	Stats
	Duration time.Duration
}

// Err returns ErrSomeFailed when any line failed.
func (r *Result) Err() error {
	if len(r.Failed) > 0 {
		return ErrSomeFailed
	}
	return nil
}

// Open opens the archive and image list of opts and plans the load.
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
	if len(ar.Index().List) == 0 {
		opts.Log.Warnf(0, "No images in %q", opts.Source)
	}
	plan, err := NewPlan(ar, lines, opts)
	if err != nil {
		ar.Close()
		return nil, nil, err
	}
	return ar, plan, nil
}

// Load loads the archive of opts into its destination, by Hangar's rules.
// The returned error is set when the load could not run at all; failed
// images are reported in the Result (and Result.Err).
func Load(ctx context.Context, opts Options) (*Result, error) {
	ar, plan, err := Open(opts)
	if err != nil {
		return nil, err
	}
	defer ar.Close()
	return Run(ctx, ar, plan, opts)
}

// Run executes a plan.
func Run(ctx context.Context, ar *archive.Reader, plan *Plan, opts Options) (*Result, error) {
	start := time.Now()
	res, reg, err := begin(ctx, plan, opts)
	if err != nil {
		return nil, err
	}
	if opts.Progress != nil {
		opts.Progress.LoadStarted(plan)
	}
	r := &runner{opts: opts, ar: ar, reg: reg, blobs: newBlobScheduler(ctx, ar, opts.BlobConcurrency, opts.DryRun)}
	if !opts.DryRun {
		r.initHarbor(ctx, plan)
		if !opts.SkipLogin {
			if err := checkPushAccess(ctx, reg, plan); err != nil {
				return nil, err
			}
		}
	}

	// Images are prepared (destination read, blobs uploaded) ahead of
	// their turn, up to a window of images; their manifests and index are
	// then pushed in plan order, --jobs images at a time. So uploads keep
	// the registry busy even at -j 1, and the log reads in plan order.
	jobs := max(opts.Jobs, 1)
	window := semaphore.NewWeighted(int64(max(jobs, opts.BlobConcurrency, 1)))
	commits := semaphore.NewWeighted(int64(jobs))
	prevTurn := make(chan struct{})
	close(prevTurn)
	var wg sync.WaitGroup
	for _, img := range plan.Images {
		if err := window.Acquire(ctx, 1); err != nil {
			break
		}
		myTurn, waitTurn := make(chan struct{}), prevTurn
		prevTurn = myTurn
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer window.Release(1)
			ir := res.Images[img]
			r.loadImage(ctx, img, ir, func() bool {
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
			res.Stats.add(&ir.Stats)
		}()
	}
	wg.Wait()
	r.blobs.wait()

	res.Failed = failedKeys(plan, res)
	res.Duration = time.Since(start)
	return res, nil
}

// begin starts a load or a validation as Hangar does: it logs the filters
// and the image-list lines not found, then connects to the destination. The
// result has an entry for every image, not attempted yet.
func begin(ctx context.Context, plan *Plan, opts Options) (*Result, *oras.Registry, error) {
	res := &Result{Plan: plan, Images: map[*Image]*ImageResult{}}
	for _, img := range plan.Images {
		res.Images[img] = &ImageResult{}
	}
	opts.Log.Infof(0, "Arch List: [%s]", strings.Join(opts.Arch, ","))
	opts.Log.Infof(0, "OS List: [%s]", strings.Join(opts.OS, ","))
	for _, l := range plan.Lines {
		if l.Err != nil {
			opts.Log.Errorf(0, "error occurred on [IMG: %d]: %v", l.Number, l.Err)
		}
	}
	reg, err := connect(ctx, plan, opts)
	if err != nil {
		return nil, nil, err
	}
	return res, reg, nil
}

// connect probes the destination: the login check unless --skip-login,
// which also settles the scheme.
func connect(ctx context.Context, plan *Plan, opts Options) (*oras.Registry, error) {
	ropts := opts.Registry
	ropts.StallTimeout = opts.Timeout
	if opts.Log != nil && opts.Log.Debug && ropts.Debugf == nil {
		ropts.Debugf = func(format string, args ...any) { opts.Log.Debugf(0, format, args...) }
	}
	reg, err := oras.NewRegistry(plan.Host, ropts)
	if err != nil {
		return nil, err
	}
	if err := reg.Ping(ctx, !opts.SkipLogin); err != nil {
		return nil, err
	}
	return reg, nil
}

// initHarbor creates the Harbor projects of the images being loaded; like
// Hangar, failures are warnings.
//
// References: hangar-load.md section 2.6, decisions.md D4.
func (r *runner) initHarbor(ctx context.Context, plan *Plan) {
	harbor, err := r.reg.IsHarbor(ctx)
	if err != nil {
		r.opts.Log.Debugf(0, "Harbor detection: %v", err)
		return
	}
	if !harbor {
		return
	}
	r.opts.Log.Infof(0, "Harbor V2 detected, creating project")
	done := map[string]bool{}
	for _, img := range plan.Images {
		if done[img.Project] {
			continue
		}
		done[img.Project] = true
		created, err := r.reg.EnsureHarborProject(ctx, img.Project)
		switch {
		case err != nil:
			r.opts.Log.Warnf(0, "Failed to init Harbor Project: %v", err)
			r.opts.Log.Warnf(0, "Please create the Harbor Project manually.")
		case created:
			r.opts.Log.Infof(0, "Created Harbor V2 project %q", img.Project)
		default:
			r.opts.Log.Infof(0, "Project %q already exists", img.Project)
		}
	}
}

// checkPushAccess checks, before any upload, that the credentials may push
// to the destination: once per project (the first component of the
// repositories, as Harbor grants access), with its first repository (see
// oras.Registry.CheckPushAccess).
func checkPushAccess(ctx context.Context, reg *oras.Registry, plan *Plan) error {
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
	ar    *archive.Reader
	reg   *oras.Registry
	blobs *blobScheduler

	repos sync.Map // name -> *oras.Repository
}

func (r *runner) repository(name string) (*oras.Repository, error) {
	if v, ok := r.repos.Load(name); ok {
		return v.(*oras.Repository), nil
	}
	repo, err := r.reg.Repository(name)
	if err != nil {
		return nil, err
	}
	v, _ := r.repos.LoadOrStore(name, repo)
	return v.(*oras.Repository), nil
}

// loadImage loads one destination image: prepare uploads the blobs of its
// manifests; then, when turn grants it, its manifests are pushed and, once
// all are in, the merged index at the main tag. done releases the turn.
func (r *runner) loadImage(ctx context.Context, img *Image, ir *ImageResult, turn func() bool, done func()) {
	start := time.Now()
	if r.opts.Progress != nil {
		r.opts.Progress.ImageStarted(img)
	}
	p, err := r.prepare(ctx, img, ir)
	if !turn() {
		ir.Status, ir.Err = StatusNotAttempted, context.Cause(ctx)
		return
	}
	defer done()
	log := r.opts.Log
	for _, l := range img.Lines {
		log.Infof(l.Number, "Loading [%s] => [%s]", l.Source, img.Reference)
	}
	for _, n := range img.Notes {
		log.Warnf(img.Lines[0].Number, "%s", n)
	}
	if err == nil {
		err = r.commit(ctx, img, p, ir)
	}
	ir.Duration = time.Since(start)
	switch {
	case err == nil:
		if ir.Status != StatusUnchanged {
			ir.Status = StatusLoaded
		}
	case ctx.Err() != nil:
		ir.Status, ir.Err = StatusNotAttempted, context.Cause(ctx)
	default:
		ir.Status, ir.Err = StatusFailed, err
		for _, l := range img.Lines {
			log.Errorf(0, "error occurred on [IMG: %d]: %v", l.Number, err)
		}
	}
	if r.opts.Progress != nil {
		r.opts.Progress.ImageDone(img, ir)
	}
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
	repo     *oras.Repository
	existing *manifest.Existing
	steps    []step
}

// prepare reads the destination tag, decides what each manifest needs and
// uploads the blobs of those that are missing.
func (r *runner) prepare(ctx context.Context, img *Image, ir *ImageResult) (*prepared, error) {
	if img.Err != nil {
		return nil, fmt.Errorf("failed to load [%s]: %w", img.Source, img.Err)
	}
	repo, err := r.repository(img.Repository)
	if err != nil {
		return nil, err
	}
	p := &prepared{repo: repo, steps: make([]step, len(img.Manifests))}
	if img.Tag != "" && !img.SkipIndex {
		desc, body, err := repo.FetchManifest(ctx, img.Tag)
		switch {
		case err == nil:
			if p.existing, err = manifest.ParseExisting(desc.MediaType, body); err != nil {
				return nil, fmt.Errorf("read destination [%s]: %w", img.Reference, err)
			}
		case errors.Is(err, oras.ErrNotFound):
		default:
			return nil, fmt.Errorf("read destination [%s]: %w", img.Reference, err)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for i, m := range img.Manifests {
		g.Go(func() error {
			s, err := r.prepareManifest(gctx, img, repo, m, p.existing.HasDigest(m.Descriptor.Digest), ir)
			p.steps[i] = s
			return err
		})
	}
	return p, g.Wait()
}

// commit pushes the manifests of a prepared image, then its index.
func (r *runner) commit(ctx context.Context, img *Image, p *prepared, ir *ImageResult) error {
	pushed := false
	if !r.opts.DryRun {
		g, gctx := errgroup.WithContext(ctx)
		for i, m := range img.Manifests {
			if p.steps[i] == stepNone {
				continue
			}
			pushed = true
			g.Go(func() error {
				if err := p.repo.PushManifest(gctx, manifestDescriptor(m), m.Body, m.Tag); err != nil {
					return fmt.Errorf("manifest %s (%s): %w", m.Descriptor.Digest, platformString(m.Descriptor.Platform), err)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
	} else {
		pushed = slices.ContainsFunc(p.steps, func(s step) bool { return s != stepNone })
	}
	if img.SkipIndex {
		if !pushed {
			ir.Status = StatusUnchanged
		}
		return nil
	}
	loaded := make([]ocispec.Descriptor, len(img.Manifests))
	for i, m := range img.Manifests {
		loaded[i] = m.Descriptor
	}
	merged, err := manifest.Merge(p.existing, loaded, manifest.MergeOptions{Overwrite: r.opts.Overwrite})
	if err != nil {
		if errors.Is(err, manifest.ErrEmpty) {
			return fmt.Errorf("failed to load [%s]: some images failed to load: no manifest matches the selected platforms", img.Source)
		}
		return fmt.Errorf("failed to load [%s]: %w", img.Source, err)
	}
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageIndex, Digest: merged.Digest(), Size: int64(len(merged.Bytes))}
	ir.Index = desc
	if merged.Unchanged {
		if !pushed {
			ir.Status = StatusUnchanged
		}
		return nil
	}
	if r.opts.DryRun {
		return nil
	}
	if err := p.repo.PushManifest(ctx, desc, merged.Bytes, img.Tag); err != nil {
		return fmt.Errorf("failed to push manifest index [%s]: %w", img.Reference, err)
	}
	return nil
}

// manifestDescriptor is m's descriptor for a push: no platform, no
// annotations.
func manifestDescriptor(m *Manifest) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: m.Descriptor.MediaType, Digest: m.Descriptor.Digest, Size: m.Descriptor.Size}
}

// prepareManifest decides what one manifest needs and, when it is missing,
// uploads its blobs.
func (r *runner) prepareManifest(ctx context.Context, img *Image, repo *oras.Repository, m *Manifest, listed bool, ir *ImageResult) (step, error) {
	desc := manifestDescriptor(m)
	fail := func(err error) (step, error) {
		return stepNone, fmt.Errorf("manifest %s (%s): %w", desc.Digest, platformString(m.Descriptor.Platform), err)
	}
	// Like Hangar, a manifest the destination index already names is not
	// pushed again; unlike Hangar, we check that it really exists.
	if listed {
		ok, err := repo.ManifestExists(ctx, desc)
		if err != nil {
			return fail(err)
		}
		if ok {
			atomic.AddInt64(&ir.Present, m.Size())
			return stepNone, nil
		}
	}
	exists, err := repo.ManifestExists(ctx, desc)
	if err != nil {
		return fail(err)
	}
	if exists {
		atomic.AddInt64(&ir.Present, m.Size())
		if m.Tag == "" {
			return stepNone, nil
		}
		got, err := repo.ResolveManifest(ctx, m.Tag)
		switch {
		case err == nil && got.Digest == desc.Digest:
			return stepNone, nil
		case err == nil || errors.Is(err, oras.ErrNotFound):
			return stepTag, nil
		default:
			return fail(err)
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, b := range m.Blobs {
		g.Go(func() error {
			if err := r.blobs.ensure(gctx, repo, b, &ir.Stats, r.onBytes(img)); err != nil {
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

func (r *runner) onBytes(img *Image) func(int64) {
	if r.opts.Progress == nil {
		return nil
	}
	return func(n int64) { r.opts.Progress.BlobBytes(img, n) }
}

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

// WriteFailedList writes the failed list, one key per line.
func WriteFailedList(path string, keys []string) error {
	var b bytes.Buffer
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte('\n')
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}
