package loader_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnrancher/docker-hangar/archive"
	"github.com/cnrancher/docker-hangar/archive/archivetest"
	"github.com/cnrancher/docker-hangar/loader"
	"github.com/cnrancher/docker-hangar/oras"
)

// A registry in memory behind the loader's seams (loader.Registry and
// loader.Repository), for fast tests of the run's rules: it records every
// call in order, can fail or delay chosen calls, and refuses what a real
// registry refuses (a manifest whose blobs, or an index whose manifests,
// are missing). The behaviour of a real registry is tested against
// internal/registrytest; this fake exists to control timing and failures
// exactly.

// Operations of fakeCall.Op.
const (
	opBlobExists      = "BlobExists"
	opPushBlob        = "PushBlob"
	opMountBlob       = "MountBlob"
	opManifestExists  = "ManifestExists"
	opPushManifest    = "PushManifest"
	opResolveManifest = "ResolveManifest"
	opFetchManifest   = "FetchManifest"
	opIsHarbor        = "IsHarbor"
	opEnsureProject   = "EnsureHarborProject"
)

// fakeCall is one call to the fake registry. Start and End are positions
// in one sequence shared by every call (End is 0 while the call runs).
type fakeCall struct {
	Op     string
	Repo   string
	Digest digest.Digest
	// Ref is the tag or reference of manifest calls; Project for
	// EnsureHarborProject.
	Ref string
	// From is the source repository of MountBlob.
	From string
	// MediaType of the descriptor given.
	MediaType  string
	Start, End int
	Err        error
	// Opens counts the calls of open made by PushBlob or MountBlob.
	Opens int
}

// isWrite reports a call that changes the registry.
func (c fakeCall) isWrite() bool {
	switch c.Op {
	case opPushBlob, opMountBlob, opPushManifest, opEnsureProject:
		return true
	}
	return false
}

type fakeManifest struct {
	mediaType string
	body      []byte
}

// fakeRegistry implements loader.Registry in memory.
type fakeRegistry struct {
	// before, when set, is called at the start of every call with the
	// call so far; it may sleep (honouring ctx) and its error fails the
	// call.
	before func(ctx context.Context, c fakeCall) error
	// after, when set, is called when a call has done its work, before
	// it returns; its error, if any, is what the call returns (the work
	// stays done).
	after func(ctx context.Context, c fakeCall) error
	// partial lists blobs whose upload reads all but the last byte of a
	// first reader, closes it and starts again with a second one, as a
	// registry client retrying a cut upload does.
	partial map[digest.Digest]bool
	// pause, for the partial blobs, is how long the second attempt stops
	// halfway (longer than loader.ProgressInterval, for an in-flight
	// progress event to be sent then).
	pause time.Duration
	// harbor is what IsHarbor answers.
	harbor bool

	mu         sync.Mutex
	seq        int
	calls      []*fakeCall
	blobs      map[string]map[digest.Digest]int64
	manifests  map[string]map[digest.Digest]fakeManifest
	tags       map[string]map[string]digest.Digest
	violations []string
}

func newFakeRegistry() *fakeRegistry {
	return &fakeRegistry{
		blobs:     map[string]map[digest.Digest]int64{},
		manifests: map[string]map[digest.Digest]fakeManifest{},
		tags:      map[string]map[string]digest.Digest{},
	}
}

func (f *fakeRegistry) Repository(name string) (loader.Repository, error) {
	return &fakeRepo{f: f, name: name}, nil
}

func (f *fakeRegistry) IsHarbor(ctx context.Context) (bool, error) {
	c, err := f.begin(ctx, fakeCall{Op: opIsHarbor})
	if err == nil {
		err = f.finish(ctx, c, nil)
	}
	return f.harbor, err
}

func (f *fakeRegistry) EnsureHarborProject(ctx context.Context, project string) (bool, error) {
	c, err := f.begin(ctx, fakeCall{Op: opEnsureProject, Ref: project})
	if err != nil {
		return false, err
	}
	return true, f.finish(ctx, c, nil)
}

// HarborProjectExists says no project exists: EnsureHarborProject records
// the lookups.
func (f *fakeRegistry) HarborProjectExists(context.Context, string) (bool, error) { return false, nil }

// CheckPushAccess always grants: Load calls it, Run does not.
func (f *fakeRegistry) CheckPushAccess(context.Context, string) error { return nil }

// begin records the start of a call; a cancelled ctx or the before hook
// fails it.
func (f *fakeRegistry) begin(ctx context.Context, c fakeCall) (*fakeCall, error) {
	f.mu.Lock()
	f.seq++
	c.Start = f.seq
	rec := &c
	f.calls = append(f.calls, rec)
	f.mu.Unlock()
	err := context.Cause(ctx)
	if err == nil && f.before != nil {
		err = f.before(ctx, c)
	}
	if err != nil {
		f.finish(ctx, rec, err)
		return nil, err
	}
	return rec, nil
}

// finish records the end of a call, after the after hook when the call
// did its work.
func (f *fakeRegistry) finish(ctx context.Context, c *fakeCall, err error) error {
	if err == nil && f.after != nil {
		f.mu.Lock()
		snapshot := *c
		f.mu.Unlock()
		err = f.after(ctx, snapshot)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	c.End, c.Err = f.seq, err
	return err
}

// log returns a copy of the calls so far, in the order they started.
func (f *fakeRegistry) log() []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]fakeCall, len(f.calls))
	for i, c := range f.calls {
		out[i] = *c
	}
	return out
}

// reset forgets the calls (not the content).
func (f *fakeRegistry) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = nil
}

// find returns the calls that match.
func (f *fakeRegistry) find(match func(fakeCall) bool) []fakeCall {
	var out []fakeCall
	for _, c := range f.log() {
		if match(c) {
			out = append(out, c)
		}
	}
	return out
}

// tag returns what repo:tag points at ("" when absent).
func (f *fakeRegistry) tag(repo, tag string) digest.Digest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tags[repo][tag]
}

// manifest returns the manifest body of repo@d (nil when absent).
func (f *fakeRegistry) manifest(repo string, d digest.Digest) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.manifests[repo][d].body
}

// seed stores a manifest written by archivetest and its blobs in repo,
// untagged, as a previous load would have left them.
func (f *fakeRegistry) seed(repo string, wm archivetest.WrittenManifest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.storeBlob(repo, wm.Config.Digest, wm.Config.Size)
	for _, l := range wm.Layers {
		f.storeBlob(repo, l.Digest, l.Size)
	}
	if f.manifests[repo] == nil {
		f.manifests[repo] = map[digest.Digest]fakeManifest{}
	}
	f.manifests[repo][wm.Descriptor.Digest] = fakeManifest{mediaType: wm.Descriptor.MediaType, body: wm.Bytes}
}

// putTag stores a manifest at repo:tag as another writer would, without
// recording a call (its manifests must be in the repository).
func (f *fakeRegistry) putTag(repo, tag, mediaType string, body []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := digest.FromBytes(body)
	if f.manifests[repo] == nil {
		f.manifests[repo] = map[digest.Digest]fakeManifest{}
	}
	f.manifests[repo][d] = fakeManifest{mediaType: mediaType, body: bytes.Clone(body)}
	if f.tags[repo] == nil {
		f.tags[repo] = map[string]digest.Digest{}
	}
	f.tags[repo][tag] = d
}

// seedBlob stores a blob in repo.
func (f *fakeRegistry) seedBlob(repo string, d ocispec.Descriptor) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.storeBlob(repo, d.Digest, d.Size)
}

func (f *fakeRegistry) storeBlob(repo string, d digest.Digest, size int64) {
	if f.blobs[repo] == nil {
		f.blobs[repo] = map[digest.Digest]int64{}
	}
	f.blobs[repo][d] = size
}

func (f *fakeRegistry) violation(format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	f.mu.Lock()
	f.violations = append(f.violations, err.Error())
	f.mu.Unlock()
	return err
}

// checkClean fails the test if the loader did something a registry
// refuses.
func (f *fakeRegistry) checkClean(t *testing.T) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.violations {
		t.Errorf("registry rule broken: %s", v)
	}
}

// notFound is the error of a missing manifest, as oras returns it.
func notFound(what string) error { return fmt.Errorf("%s: %w", what, oras.ErrNotFound) }

type fakeRepo struct {
	f    *fakeRegistry
	name string
}

func (r *fakeRepo) Name() string { return r.name }

func (r *fakeRepo) BlobExists(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	c, err := r.f.begin(ctx, fakeCall{Op: opBlobExists, Repo: r.name, Digest: desc.Digest, MediaType: desc.MediaType})
	if err != nil {
		return false, err
	}
	r.f.mu.Lock()
	_, ok := r.f.blobs[r.name][desc.Digest]
	r.f.mu.Unlock()
	return ok, r.f.finish(ctx, c, nil)
}

func (r *fakeRepo) PushBlob(ctx context.Context, desc ocispec.Descriptor, open func() (io.ReadCloser, error)) error {
	c, err := r.f.begin(ctx, fakeCall{Op: opPushBlob, Repo: r.name, Digest: desc.Digest, MediaType: desc.MediaType})
	if err != nil {
		return err
	}
	return r.f.finish(ctx, c, r.upload(ctx, c, desc, open))
}

func (r *fakeRepo) MountBlob(ctx context.Context, desc ocispec.Descriptor, from string, open func() (io.ReadCloser, error)) (bool, error) {
	c, err := r.f.begin(ctx, fakeCall{Op: opMountBlob, Repo: r.name, Digest: desc.Digest, From: from, MediaType: desc.MediaType})
	if err != nil {
		return false, err
	}
	r.f.mu.Lock()
	_, ok := r.f.blobs[from][desc.Digest]
	if ok {
		r.f.storeBlob(r.name, desc.Digest, desc.Size)
	}
	r.f.mu.Unlock()
	if ok {
		return true, r.f.finish(ctx, c, nil)
	}
	return false, r.f.finish(ctx, c, r.upload(ctx, c, desc, open))
}

// upload reads a blob's bytes through open (twice for a partial blob),
// checks them and stores the blob.
func (r *fakeRepo) upload(ctx context.Context, c *fakeCall, desc ocispec.Descriptor, open func() (io.ReadCloser, error)) error {
	opened := func() (io.ReadCloser, error) {
		r.f.mu.Lock()
		c.Opens++
		r.f.mu.Unlock()
		return open()
	}
	if r.f.partial[desc.Digest] && desc.Size > 1 {
		rc, err := opened()
		if err != nil {
			return err
		}
		_, err = io.CopyN(io.Discard, rc, desc.Size-1)
		rc.Close()
		if err != nil {
			return fmt.Errorf("first attempt: %w", err)
		}
	}
	rc, err := opened()
	if err != nil {
		return err
	}
	defer rc.Close()
	var data []byte
	if r.f.partial[desc.Digest] && r.f.pause > 0 {
		half := make([]byte, desc.Size/2)
		if _, err := io.ReadFull(rc, half); err != nil {
			return fmt.Errorf("read blob %s: %w", desc.Digest, err)
		}
		if err := sleep(ctx, r.f.pause); err != nil {
			return err
		}
		data = half
	}
	rest, err := io.ReadAll(rc)
	if err != nil {
		return fmt.Errorf("read blob %s: %w", desc.Digest, err)
	}
	data = append(data, rest...)
	if int64(len(data)) != desc.Size || digest.FromBytes(data) != desc.Digest {
		return fmt.Errorf("blob %s: %w", desc.Digest, oras.ErrDigestMismatch)
	}
	if err := context.Cause(ctx); err != nil {
		return err
	}
	r.f.mu.Lock()
	r.f.storeBlob(r.name, desc.Digest, desc.Size)
	r.f.mu.Unlock()
	return nil
}

func (r *fakeRepo) ManifestExists(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	c, err := r.f.begin(ctx, fakeCall{Op: opManifestExists, Repo: r.name, Digest: desc.Digest, MediaType: desc.MediaType})
	if err != nil {
		return false, err
	}
	r.f.mu.Lock()
	_, ok := r.f.manifests[r.name][desc.Digest]
	r.f.mu.Unlock()
	return ok, r.f.finish(ctx, c, nil)
}

func (r *fakeRepo) PushManifest(ctx context.Context, desc ocispec.Descriptor, body []byte, reference string) error {
	c, err := r.f.begin(ctx, fakeCall{Op: opPushManifest, Repo: r.name, Digest: desc.Digest, Ref: reference, MediaType: desc.MediaType})
	if err != nil {
		return err
	}
	return r.f.finish(ctx, c, r.storeManifest(desc, body, reference))
}

// storeManifest checks a pushed manifest as a registry does and stores it.
func (r *fakeRepo) storeManifest(desc ocispec.Descriptor, body []byte, reference string) error {
	f := r.f
	if int64(len(body)) != desc.Size || digest.FromBytes(body) != desc.Digest {
		return f.violation("%s: manifest body does not match %s", r.name, desc.Digest)
	}
	var doc struct {
		Config    *ocispec.Descriptor  `json:"config"`
		Layers    []ocispec.Descriptor `json:"layers"`
		Manifests []ocispec.Descriptor `json:"manifests"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return f.violation("%s: manifest %s is not JSON: %v", r.name, desc.Digest, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch desc.MediaType {
	case ocispec.MediaTypeImageIndex, "application/vnd.docker.distribution.manifest.list.v2+json":
		for _, m := range doc.Manifests {
			if _, ok := f.manifests[r.name][m.Digest]; !ok {
				f.violations = append(f.violations, fmt.Sprintf("%s:%s: index %s names manifest %s, which is not in the repository", r.name, reference, desc.Digest, m.Digest))
				return fmt.Errorf("manifest blob unknown: %s", m.Digest)
			}
		}
	default:
		if doc.Config == nil {
			return fmt.Errorf("manifest %s has no config", desc.Digest)
		}
		for _, b := range append([]ocispec.Descriptor{*doc.Config}, doc.Layers...) {
			if len(b.URLs) > 0 {
				continue
			}
			if _, ok := f.blobs[r.name][b.Digest]; !ok {
				f.violations = append(f.violations, fmt.Sprintf("%s: manifest %s names blob %s, which is not in the repository", r.name, desc.Digest, b.Digest))
				return fmt.Errorf("blob unknown: %s", b.Digest)
			}
		}
	}
	if f.manifests[r.name] == nil {
		f.manifests[r.name] = map[digest.Digest]fakeManifest{}
	}
	f.manifests[r.name][desc.Digest] = fakeManifest{mediaType: desc.MediaType, body: bytes.Clone(body)}
	if reference != "" {
		if f.tags[r.name] == nil {
			f.tags[r.name] = map[string]digest.Digest{}
		}
		f.tags[r.name][reference] = desc.Digest
	}
	return nil
}

// lookup resolves a tag or digest reference.
func (r *fakeRepo) lookup(reference string) (ocispec.Descriptor, []byte, error) {
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	d, err := digest.Parse(reference)
	if err != nil {
		var ok bool
		if d, ok = r.f.tags[r.name][reference]; !ok {
			return ocispec.Descriptor{}, nil, notFound(r.name + ":" + reference)
		}
	}
	m, ok := r.f.manifests[r.name][d]
	if !ok {
		return ocispec.Descriptor{}, nil, notFound(r.name + "@" + d.String())
	}
	return ocispec.Descriptor{MediaType: m.mediaType, Digest: d, Size: int64(len(m.body))}, m.body, nil
}

func (r *fakeRepo) ResolveManifest(ctx context.Context, reference string) (ocispec.Descriptor, error) {
	c, err := r.f.begin(ctx, fakeCall{Op: opResolveManifest, Repo: r.name, Ref: reference})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc, _, err := r.lookup(reference)
	if err != nil {
		r.f.finish(ctx, c, err)
		return ocispec.Descriptor{}, err
	}
	return desc, r.f.finish(ctx, c, nil)
}

func (r *fakeRepo) FetchManifest(ctx context.Context, reference string) (ocispec.Descriptor, []byte, error) {
	c, err := r.f.begin(ctx, fakeCall{Op: opFetchManifest, Repo: r.name, Ref: reference})
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	desc, body, err := r.lookup(reference)
	if err != nil {
		r.f.finish(ctx, c, err)
		return ocispec.Descriptor{}, nil, err
	}
	return desc, bytes.Clone(body), r.f.finish(ctx, c, nil)
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// fakeDest is the destination of the plans run against the fake.
const fakeDest = "registry.test"

// fakeLoad is an archive opened and planned for a run against the fake.
type fakeLoad struct {
	w    *archivetest.Written
	src  *archive.Reader
	opts loader.Options
	rec  *recorder
}

// newFakeLoad writes images into an archive and opens it; setup may change
// the options before the plan.
func newFakeLoad(t *testing.T, images []archivetest.Image, aopts archivetest.Options) *fakeLoad {
	t.Helper()
	w, err := archivetest.Write(filepath.Join(t.TempDir(), "archive.zip"), images, aopts)
	if err != nil {
		t.Fatal(err)
	}
	return openFakeLoad(t, w)
}

// openFakeLoad opens a written archive for runs against the fake.
func openFakeLoad(t *testing.T, w *archivetest.Written) *fakeLoad {
	t.Helper()
	src, err := archive.Open(w.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	opts := loader.DefaultOptions()
	opts.Source, opts.Destination = w.Path, fakeDest
	rec := record(t, &opts)
	return &fakeLoad{w: w, src: src, opts: opts, rec: rec}
}

// plan plans the archive with the load's options (and an image list when
// lines is not nil).
func (l *fakeLoad) plan(t *testing.T, lines []loader.ListLine) *loader.Plan {
	t.Helper()
	plan, err := loader.NewPlan(l.src, lines, l.opts)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	return plan
}

// run plans and runs the load against reg, with a bound against hangs.
func (l *fakeLoad) run(t *testing.T, ctx context.Context, reg loader.Registry) *loader.Result {
	t.Helper()
	return runPlan(t, ctx, l.plan(t, nil), l.src, reg, l.opts)
}

// runPlan runs a plan, failing the test if it does not end within a minute.
func runPlan(t *testing.T, ctx context.Context, plan *loader.Plan, src loader.Source, reg loader.Registry, opts loader.Options) *loader.Result {
	t.Helper()
	done := make(chan *loader.Result, 1)
	go func() { done <- loader.Run(ctx, plan, src, reg, opts) }()
	select {
	case res := <-done:
		return res
	case <-time.After(time.Minute):
		t.Fatal("the run did not end within a minute")
		return nil
	}
}

// imageBy returns the planned image of a destination reference.
func imageBy(t *testing.T, res *loader.Result, reference string) (*loader.Image, *loader.ImageResult) {
	t.Helper()
	for _, img := range res.Plan.Images {
		if img.Reference() == reference {
			return img, res.Images[img]
		}
	}
	t.Fatalf("no image %s in the plan", reference)
	return nil, nil
}

// ref returns the destination reference of repo:tag at fakeDest.
func ref(repoTag string) string { return fakeDest + "/" + repoTag }
