package loader_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnrancher/docker-hangar/archive"
	"github.com/cnrancher/docker-hangar/archive/archivetest"
	"github.com/cnrancher/docker-hangar/loader"
	"github.com/cnrancher/docker-hangar/manifest"
)

// Tests of loader.Run through its seams, against the registry in memory of
// fake_test.go: the order of commits, what a failure leaves, blob retries,
// dry runs, progress and statistics, cancellation.

var errInjected = errors.New("injected failure")

// image returns an image of source:tag with one small layer of its own per
// platform (seeded from seed), and the extra layers given, shared.
func image(source, tag string, seed int64, platforms []ocispec.Platform, shared ...archivetest.Layer) archivetest.Image {
	img := archivetest.Image{Source: source, Tag: tag}
	for i, p := range platforms {
		layers := append(slices.Clone(shared), archivetest.Layer{Size: 1024 + seed, Seed: seed*100 + int64(i)})
		img.Manifests = append(img.Manifests, archivetest.Manifest{Platform: p, Layers: layers})
	}
	return img
}

var bothPlatforms = []ocispec.Platform{amd64, arm64}

// repoOf returns the repository of a destination reference at fakeDest.
func repoOf(reference string) string {
	r := strings.TrimPrefix(reference, fakeDest+"/")
	if i := strings.LastIndexByte(r, ':'); i >= 0 {
		r = r[:i]
	}
	return r
}

// isIndexPush reports a push of an index.
func isIndexPush(c fakeCall) bool {
	return c.Op == opPushManifest && c.MediaType == ocispec.MediaTypeImageIndex
}

// blobDigests returns the config and layer digests of a written image.
func blobDigests(wi archivetest.WrittenImage) map[digest.Digest]bool {
	out := map[digest.Digest]bool{}
	for _, m := range wi.Manifests {
		out[m.Config.Digest] = true
		for _, l := range m.Layers {
			out[l.Digest] = true
		}
	}
	return out
}

func TestRunCommitsInPlanOrder(t *testing.T) {
	tests := []struct {
		name string
		// delays of the blob uploads of each image, by plan position
		delays []time.Duration
	}{
		{name: "first image slow", delays: []time.Duration{200 * time.Millisecond}},
		{name: "slower the earlier", delays: []time.Duration{240 * time.Millisecond, 160 * time.Millisecond, 80 * time.Millisecond}},
		{name: "second image slow", delays: []time.Duration{0, 200 * time.Millisecond}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var images []archivetest.Image
			for i := range 4 {
				images = append(images, image(fmt.Sprintf("docker.io/library/app%d", i), "1", int64(i+1), bothPlatforms))
			}
			l := newFakeLoad(t, images, archivetest.Options{})
			l.opts.Jobs = 1
			delays := map[string]time.Duration{}
			for i, d := range tt.delays {
				delays[fmt.Sprintf("library/app%d", i)] = d
			}
			reg := newFakeRegistry()
			reg.before = func(ctx context.Context, c fakeCall) error {
				if c.Op == opPushBlob || c.Op == opMountBlob {
					return sleep(ctx, delays[c.Repo])
				}
				return nil
			}
			res := l.run(t, context.Background(), reg)
			reg.checkClean(t)
			if len(res.Failed) != 0 {
				t.Fatalf("failed: %v", res.Failed)
			}
			var order []string
			for _, img := range res.Plan.Images {
				order = append(order, img.Repository)
			}

			// The premise: a later image finished its uploads before an
			// earlier one.
			lastUpload := map[string]int{}
			for _, c := range reg.find(func(c fakeCall) bool { return c.Op == opPushBlob }) {
				lastUpload[c.Repo] = max(lastUpload[c.Repo], c.End)
			}
			overtaken := false
			for i := range order {
				for j := i + 1; j < len(order); j++ {
					overtaken = overtaken || lastUpload[order[j]] < lastUpload[order[i]]
				}
			}
			if !overtaken {
				t.Fatalf("the uploads ended in plan order (%v): the test proves nothing", lastUpload)
			}

			var loading []string
			for _, ev := range all[loader.ImageLoading](l.rec) {
				loading = append(loading, ev.Image.Repository)
			}
			if !slices.Equal(loading, order) {
				t.Errorf("ImageLoading order = %v, want plan order %v", loading, order)
			}
			// Every platform manifest push of an image ends before any
			// of the next image starts. Its index push may overlap the
			// next image's pushes and so end after them: no tag of one
			// is the other's (TestRunCommitsOverlapUnlessTagsAreShared),
			// and TestRunIndexAfterItsManifests checks each index comes
			// after its own manifests.
			first, last := map[string]int{}, map[string]int{}
			for _, c := range reg.find(func(c fakeCall) bool { return c.Op == opPushManifest && !isIndexPush(c) }) {
				if _, ok := first[c.Repo]; !ok {
					first[c.Repo] = c.Start
				}
				last[c.Repo] = max(last[c.Repo], c.End)
			}
			for i := 1; i < len(order); i++ {
				if first[order[i]] < last[order[i-1]] {
					t.Errorf("%s started pushing manifests (call %d) before %s finished (call %d)", order[i], first[order[i]], order[i-1], last[order[i-1]])
				}
			}
		})
	}
}

func TestRunIndexAfterItsManifests(t *testing.T) {
	images := []archivetest.Image{
		image("docker.io/library/a", "1", 1, bothPlatforms),
		image("docker.io/library/b", "1", 2, bothPlatforms),
		image("docker.io/library/c", "1", 3, []ocispec.Platform{arm64, amd64}),
	}
	tests := []struct {
		name string
		jobs int
		// warm seeds the first platform manifest of every image
		warm bool
	}{
		{name: "cold, 1 job", jobs: 1},
		{name: "cold, 8 jobs", jobs: 8},
		{name: "one manifest present, 1 job", jobs: 1, warm: true},
		{name: "one manifest present, 8 jobs", jobs: 8, warm: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newFakeLoad(t, images, archivetest.Options{})
			l.opts.Jobs = tt.jobs
			reg := newFakeRegistry()
			seeded := map[digest.Digest]bool{}
			if tt.warm {
				for _, wi := range l.w.Images {
					reg.seed(strings.TrimPrefix(wi.Source, "docker.io/"), wi.Manifests[0])
					seeded[wi.Manifests[0].Descriptor.Digest] = true
				}
			}
			// slow platform manifest pushes: an index pushed without
			// waiting for them would name missing manifests
			reg.before = func(ctx context.Context, c fakeCall) error {
				if c.Op == opPushManifest && !isIndexPush(c) {
					return sleep(ctx, 30*time.Millisecond)
				}
				return nil
			}
			res := l.run(t, context.Background(), reg)
			reg.checkClean(t)
			if len(res.Failed) != 0 {
				t.Fatalf("failed: %v", res.Failed)
			}
			pushed := map[string]map[digest.Digest]int{} // repo -> digest -> end
			for _, c := range reg.find(func(c fakeCall) bool { return c.Op == opPushManifest && c.Err == nil }) {
				if pushed[c.Repo] == nil {
					pushed[c.Repo] = map[digest.Digest]int{}
				}
				if _, ok := pushed[c.Repo][c.Digest]; !ok {
					pushed[c.Repo][c.Digest] = c.End
				}
			}
			indexes := reg.find(isIndexPush)
			if len(indexes) != len(images) {
				t.Fatalf("%d index pushes, want %d", len(indexes), len(images))
			}
			for _, c := range indexes {
				idx, err := parseIndex(reg.manifest(c.Repo, c.Digest))
				if err != nil {
					t.Fatal(err)
				}
				for _, m := range idx.Manifests {
					end, ok := pushed[c.Repo][m.Digest]
					switch {
					case seeded[m.Digest] && !ok:
					case !ok:
						t.Errorf("%s: the index names %s, neither pushed nor present", c.Repo, m.Digest)
					case end > c.Start:
						t.Errorf("%s: the index push (call %d) started before the push of %s ended (call %d)", c.Repo, c.Start, m.Digest, end)
					}
				}
			}
			if tt.warm {
				for _, c := range reg.find(func(c fakeCall) bool { return c.Op == opPushManifest }) {
					if seeded[c.Digest] && c.Ref == "" {
						t.Errorf("%s: manifest %s was present and pushed again by digest", c.Repo, c.Digest)
					}
				}
			}
		})
	}
}

func TestRunFailedImageGetsNoIndex(t *testing.T) {
	images := []archivetest.Image{
		image("docker.io/library/a", "1", 1, bothPlatforms),
		image("docker.io/library/b", "1", 2, bothPlatforms),
		image("docker.io/library/c", "1", 3, bothPlatforms),
	}
	const bad = "library/b"
	tests := []struct {
		name string
		// fail selects the calls of library/b that fail
		fail func(c fakeCall, b archivetest.WrittenImage) bool
		// tagged puts b's first manifest at its tag first: the manifests
		// of an image whose tag exists are checked before they are pushed
		tagged bool
	}{
		{name: "blob upload", fail: func(c fakeCall, b archivetest.WrittenImage) bool {
			return (c.Op == opPushBlob || c.Op == opMountBlob) && c.Digest == b.Manifests[1].Layers[0].Digest
		}},
		{name: "manifest check", tagged: true, fail: func(c fakeCall, b archivetest.WrittenImage) bool {
			return c.Op == opManifestExists && c.Digest == b.Manifests[1].Descriptor.Digest
		}},
		{name: "platform manifest push", fail: func(c fakeCall, b archivetest.WrittenImage) bool {
			return c.Op == opPushManifest && c.Digest == b.Manifests[1].Descriptor.Digest
		}},
		{name: "destination tag read", fail: func(c fakeCall, b archivetest.WrittenImage) bool {
			return c.Op == opFetchManifest && c.Ref == "1"
		}},
	}
	for _, tt := range tests {
		for _, jobs := range []int{1, 8} {
			t.Run(fmt.Sprintf("%s, %d jobs", tt.name, jobs), func(t *testing.T) {
				l := newFakeLoad(t, images, archivetest.Options{})
				l.opts.Jobs = jobs
				reg := newFakeRegistry()
				if tt.tagged {
					b0 := l.w.Images[1].Manifests[0]
					reg.seed(bad, b0)
					reg.putTag(bad, "1", b0.Descriptor.MediaType, b0.Bytes)
				}
				reg.before = func(ctx context.Context, c fakeCall) error {
					if c.Repo == bad && tt.fail(c, l.w.Images[1]) {
						return errInjected
					}
					return nil
				}
				res := l.run(t, context.Background(), reg)
				reg.checkClean(t)
				if want := []string{"docker.io/library/b:1"}; !slices.Equal(res.FailedKeys(), want) {
					t.Fatalf("failed = %v, want %v", res.FailedKeys(), want)
				}
				_, ir := imageBy(t, res, ref("library/b:1"))
				if ir.Status != loader.StatusFailed || !errors.Is(ir.Err, errInjected) {
					t.Errorf("library/b: %v %v, want failed with the injected error", ir.Status, ir.Err)
				}
				if ir.Index() != "" {
					t.Errorf("library/b reports index %s", ir.Index())
				}
				if got := reg.find(func(c fakeCall) bool { return c.Repo == bad && isIndexPush(c) }); len(got) != 0 {
					t.Errorf("library/b got %d index pushes", len(got))
				}
				want := digest.Digest("")
				if tt.tagged {
					want = l.w.Images[1].Manifests[0].Descriptor.Digest // left as it was
				}
				if d := reg.tag(bad, "1"); d != want {
					t.Errorf("library/b:1 points at %q, want %q", d, want)
				}
				for _, r := range []string{"library/a:1", "library/c:1"} {
					_, ir := imageBy(t, res, ref(r))
					if ir.Status != loader.StatusLoaded {
						t.Errorf("%s: %v %v, want loaded", r, ir.Status, ir.Err)
					}
					if d := reg.tag(repoOf(ref(r)), "1"); d == "" || d != ir.Index() {
						t.Errorf("%s points at %q, want the index %s", r, d, ir.Index())
					}
				}
			})
		}
	}
}

// sharedLayer is the layer both images of the blob retry tests use.
var sharedLayer = archivetest.Layer{Size: 2048, Seed: 77}

func TestRunRetriesTransientBlobFailure(t *testing.T) {
	for _, secondRepo := range []string{"library/web", "library/other"} {
		t.Run("second image in "+secondRepo, func(t *testing.T) {
			images := []archivetest.Image{
				image("docker.io/library/web", "1", 1, []ocispec.Platform{amd64}, sharedLayer),
				image("docker.io/"+secondRepo, "2", 2, []ocispec.Platform{amd64}, sharedLayer),
			}
			l := newFakeLoad(t, images, archivetest.Options{})
			shared := archivetest.LayerDigest(sharedLayer)
			reg := newFakeRegistry()
			var failed atomic.Bool
			reg.before = func(ctx context.Context, c fakeCall) error {
				switch {
				case (c.Op == opPushBlob || c.Op == opMountBlob) && c.Digest == shared && failed.CompareAndSwap(false, true):
					return errInjected // once: a transient failure
				case c.Op == opFetchManifest && c.Ref == "2":
					// the second image asks for the blob once the
					// first attempt has failed
					return sleep(ctx, 150*time.Millisecond)
				}
				return nil
			}
			res := l.run(t, context.Background(), reg)
			reg.checkClean(t)
			_, first := imageBy(t, res, ref("library/web:1"))
			if first.Status != loader.StatusFailed || !errors.Is(first.Err, errInjected) {
				t.Fatalf("first image: %v %v, want failed by the injected error (the premise)", first.Status, first.Err)
			}
			_, second := imageBy(t, res, ref(secondRepo+":2"))
			if second.Status != loader.StatusLoaded {
				t.Errorf("second image: %v %v, want loaded: the failed upload was not tried again", second.Status, second.Err)
			}
			uploads := reg.find(func(c fakeCall) bool {
				return (c.Op == opPushBlob || c.Op == opMountBlob) && c.Digest == shared
			})
			if len(uploads) != 2 || uploads[0].Err == nil || uploads[1].Err != nil || uploads[1].Repo != secondRepo {
				t.Errorf("uploads of the shared blob: %+v, want a failed one and a successful one into %s", uploads, secondRepo)
			}
		})
	}
}

func TestRunCorruptBlobNotRetried(t *testing.T) {
	for _, secondRepo := range []string{"library/web", "library/other"} {
		t.Run("second image in "+secondRepo, func(t *testing.T) {
			images := []archivetest.Image{
				image("docker.io/library/web", "1", 1, []ocispec.Platform{amd64}, sharedLayer),
				image("docker.io/"+secondRepo, "2", 2, []ocispec.Platform{amd64}, sharedLayer),
				image("docker.io/library/fine", "3", 3, []ocispec.Platform{amd64}),
			}
			w, err := archivetest.Write(t.TempDir()+"/archive.zip", images, archivetest.Options{})
			if err != nil {
				t.Fatal(err)
			}
			shared := archivetest.LayerDigest(sharedLayer)
			if err := archivetest.FlipByte(w.Path, shared); err != nil {
				t.Fatal(err)
			}
			l := openFakeLoad(t, w)
			reg := newFakeRegistry()
			reg.before = func(ctx context.Context, c fakeCall) error {
				if c.Op == opFetchManifest && c.Ref == "2" {
					return sleep(ctx, 150*time.Millisecond)
				}
				return nil
			}
			res := l.run(t, context.Background(), reg)
			reg.checkClean(t)
			for _, r := range []string{"library/web:1", secondRepo + ":2"} {
				_, ir := imageBy(t, res, ref(r))
				if ir.Status != loader.StatusFailed || !errors.Is(ir.Err, archive.ErrDigestMismatch) {
					t.Errorf("%s: %v %v, want failed with a digest mismatch", r, ir.Status, ir.Err)
				}
			}
			if _, ir := imageBy(t, res, ref("library/fine:3")); ir.Status != loader.StatusLoaded {
				t.Errorf("library/fine:3: %v %v, want loaded", ir.Status, ir.Err)
			}
			uploads := reg.find(func(c fakeCall) bool {
				return (c.Op == opPushBlob || c.Op == opMountBlob) && c.Digest == shared
			})
			if len(uploads) != 1 {
				t.Errorf("the corrupt blob was read for %d uploads, want 1: %+v", len(uploads), uploads)
			}
		})
	}
}

func TestRunDryRunWritesNothing(t *testing.T) {
	images := []archivetest.Image{
		image("docker.io/library/a", "1", 1, bothPlatforms, sharedLayer),
		image("docker.io/rancher/b", "1", 2, bothPlatforms, sharedLayer, archivetest.Layer{Size: 300 << 10, Seed: 5}),
		{Chart: &archivetest.Chart{Name: "demo", Version: "0.1.0"}},
	}
	tests := []struct {
		name string
		// loaded runs a real load first
		loaded bool
		want   loader.Status
	}{
		{name: "empty registry", want: loader.StatusLoaded},
		{name: "loaded registry", loaded: true, want: loader.StatusUnchanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newFakeLoad(t, images, archivetest.Options{})
			reg := newFakeRegistry()
			reg.harbor = true
			if tt.loaded {
				if res := l.run(t, context.Background(), reg); len(res.Failed) != 0 {
					t.Fatalf("load: %v", res.Failed)
				}
				reg.reset()
			}
			l.opts.DryRun = true
			res := l.run(t, context.Background(), reg)
			for _, c := range reg.log() {
				if c.isWrite() {
					t.Errorf("a dry run called %s %s %s %s", c.Op, c.Repo, c.Digest, c.Ref)
				}
			}
			if len(res.Failed) != 0 {
				t.Errorf("failed: %v", res.Failed)
			}
			for img, ir := range res.Images {
				if ir.Status != tt.want {
					t.Errorf("%s: %v %v, want %v", img.Reference(), ir.Status, ir.Err, tt.want)
				}
				if got := ir.Uploaded + ir.Mounted + ir.Present; got != img.Size() {
					t.Errorf("%s: stats %+v add up to %d, want %d", img.Reference(), ir.Stats, got, img.Size())
				}
				if !tt.loaded && !img.SkipIndex && ir.Index() == "" {
					t.Errorf("%s: no index reported", img.Reference())
				}
			}
			if !tt.loaded && res.Stats.Uploaded == 0 {
				t.Errorf("a dry run into an empty registry would upload nothing: %+v", res.Stats)
			}
		})
	}
}

// progressCheck checks the ImageProgress events of a load as they come.
type progressCheck struct {
	mu   sync.Mutex
	errs []string
	last map[*loader.Image]loader.ImageProgress
	// early, when set, reports an image whose Done reached Total too soon
	early func(loader.ImageProgress) bool
}

func (p *progressCheck) handle(next loader.EventHandler) loader.EventHandler {
	p.last = map[*loader.Image]loader.ImageProgress{}
	return func(ev loader.Event) {
		if e, ok := ev.(loader.ImageProgress); ok {
			p.mu.Lock()
			switch {
			case e.Done < 0 || e.Done > e.Total:
				p.errs = append(p.errs, fmt.Sprintf("%s: done %d of %d", e.Image.Reference(), e.Done, e.Total))
			case e.Total != e.Image.Size():
				p.errs = append(p.errs, fmt.Sprintf("%s: total %d, the image holds %d", e.Image.Reference(), e.Total, e.Image.Size()))
			case e.Done == e.Total && p.early != nil && p.early(e):
				p.errs = append(p.errs, fmt.Sprintf("%s: done %d of %d before every blob was in", e.Image.Reference(), e.Done, e.Total))
			}
			p.last[e.Image] = e
			p.mu.Unlock()
		}
		next(ev)
	}
}

func (p *progressCheck) check(t *testing.T, res *loader.Result) {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.errs {
		t.Error(e)
	}
	for img, ir := range res.Images {
		if ir.Status != loader.StatusLoaded {
			continue
		}
		last, ok := p.last[img]
		if !ok || last.Done != last.Total {
			t.Errorf("%s: last progress %d of %d (seen: %t), want all", img.Reference(), last.Done, last.Total, ok)
		}
	}
}

func TestRunProgress(t *testing.T) {
	shared := archivetest.Layer{Size: 2048, Seed: 1}
	big := archivetest.Layer{Size: 300 << 10, Seed: 2} // checked before it is uploaded
	images := []archivetest.Image{
		image("docker.io/library/a", "1", 1, []ocispec.Platform{amd64}, shared, big),
		image("docker.io/library/b", "1", 2, bothPlatforms, shared),
		image("docker.io/library/c", "1", 3, []ocispec.Platform{amd64}),
	}
	for _, jobs := range []int{1, 8} {
		t.Run(fmt.Sprintf("%d jobs", jobs), func(t *testing.T) {
			l := newFakeLoad(t, images, archivetest.Options{})
			l.opts.Jobs = jobs
			var pc progressCheck
			l.opts.Events = pc.handle(l.opts.Events)
			reg := newFakeRegistry()
			reg.seedBlob("library/a", ocispec.Descriptor{Digest: archivetest.LayerDigest(big), Size: big.Size})
			// c's manifest is there, and at its tag (so c is not a new
			// image, whose manifests are pushed without a check)
			c0 := l.w.Images[2].Manifests[0]
			reg.seed("library/c", c0)
			reg.putTag("library/c", "1", c0.Descriptor.MediaType, c0.Bytes)
			res := l.run(t, context.Background(), reg)
			reg.checkClean(t)
			if len(res.Failed) != 0 {
				t.Fatalf("failed: %v", res.Failed)
			}
			pc.check(t, res)
			var mounted int64
			for img, ir := range res.Images {
				mounted += ir.Mounted
				if got := ir.Uploaded + ir.Mounted + ir.Present; got != img.Size() {
					t.Errorf("%s: stats %+v add up to %d, want %d", img.Reference(), ir.Stats, got, img.Size())
				}
			}
			if _, a := imageBy(t, res, ref("library/a:1")); a.Present < big.Size {
				t.Errorf("library/a: %+v: the blob already there is not counted present", a.Stats)
			}
			if img, c := imageBy(t, res, ref("library/c:1")); c.Present != img.Size() {
				t.Errorf("library/c: %+v, want all %d present", c.Stats, img.Size())
			}
			if mounted != shared.Size {
				t.Errorf("mounted %d bytes, want the shared layer's %d", mounted, shared.Size)
			}
			for _, ev := range all[loader.ImageStarted](l.rec) {
				if ev.Total != ev.Image.Size() {
					t.Errorf("%s started with total %d, want %d", ev.Image.Reference(), ev.Total, ev.Image.Size())
				}
			}
		})
	}
}

func TestRunRetriedUploadCountedOnce(t *testing.T) {
	retried := archivetest.Layer{Size: 64 << 10, Seed: 1}
	slow := archivetest.Layer{Size: 16 << 10, Seed: 2}
	images := []archivetest.Image{{Source: "docker.io/library/a", Tag: "1", Manifests: []archivetest.Manifest{
		{Platform: amd64, Layers: []archivetest.Layer{retried, slow}},
	}}}
	l := newFakeLoad(t, images, archivetest.Options{})
	retriedDigest, slowDigest := archivetest.LayerDigest(retried), archivetest.LayerDigest(slow)
	reg := newFakeRegistry()
	reg.partial = map[digest.Digest]bool{retriedDigest: true}
	reg.pause = loader.ProgressInterval + 50*time.Millisecond
	var slowStarted atomic.Bool
	reg.before = func(ctx context.Context, c fakeCall) error {
		if c.Op == opPushBlob && c.Digest == slowDigest {
			err := sleep(ctx, 3*loader.ProgressInterval)
			slowStarted.Store(true)
			return err
		}
		return nil
	}
	// Done may reach Total only once the slow blob is being read: the
	// retried one counted twice would fill the bar early.
	pc := progressCheck{early: func(loader.ImageProgress) bool { return !slowStarted.Load() }}
	l.opts.Events = pc.handle(l.opts.Events)
	res := l.run(t, context.Background(), reg)
	reg.checkClean(t)
	if len(res.Failed) != 0 {
		t.Fatalf("failed: %v", res.Failed)
	}
	opens := 0
	for _, c := range reg.find(func(c fakeCall) bool { return c.Op == opPushBlob && c.Digest == retriedDigest }) {
		opens += c.Opens
	}
	if opens != 2 {
		t.Fatalf("the retried blob was opened %d times, want 2 (the premise)", opens)
	}
	pc.check(t, res)
	img, ir := imageBy(t, res, ref("library/a:1"))
	if ir.Uploaded != img.Size() || res.Stats.Uploaded != img.Size() {
		t.Errorf("uploaded %d (load %d), want the image's %d bytes once", ir.Uploaded, res.Stats.Uploaded, img.Size())
	}
}

func TestRunStatsIncludeTransfersThatOutliveTheirImage(t *testing.T) {
	failing := archivetest.Layer{Size: 1000, Seed: 1}
	slow := archivetest.Layer{Size: 5000, Seed: 2}
	images := []archivetest.Image{
		{Source: "docker.io/library/a", Tag: "1", Manifests: []archivetest.Manifest{
			{Platform: amd64, Layers: []archivetest.Layer{failing, slow}},
		}},
	}
	for _, jobs := range []int{1, 8} {
		t.Run(fmt.Sprintf("%d jobs", jobs), func(t *testing.T) {
			l := newFakeLoad(t, images, archivetest.Options{})
			l.opts.Jobs = jobs
			failingDigest, slowDigest := archivetest.LayerDigest(failing), archivetest.LayerDigest(slow)
			reg := newFakeRegistry()
			var imageDone atomic.Bool
			next := l.opts.Events
			l.opts.Events = func(ev loader.Event) {
				if _, ok := ev.(loader.ImageDone); ok {
					imageDone.Store(true)
				}
				next(ev)
			}
			var slowAfterImage atomic.Bool
			reg.before = func(ctx context.Context, c fakeCall) error {
				switch {
				case c.Op == opPushBlob && c.Digest == failingDigest:
					return errInjected
				case c.Op == opPushBlob && c.Digest == slowDigest:
					return sleep(ctx, 300*time.Millisecond)
				}
				return nil
			}
			reg.after = func(ctx context.Context, c fakeCall) error {
				if c.Op == opPushBlob && c.Digest == slowDigest {
					slowAfterImage.Store(imageDone.Load())
				}
				return nil
			}
			res := l.run(t, context.Background(), reg)
			if !slowAfterImage.Load() {
				t.Fatal("the slow upload did not outlive its image: the test proves nothing")
			}
			var want int64
			for _, c := range reg.find(func(c fakeCall) bool { return c.Op == opPushBlob && c.Err == nil }) {
				want += l.w.Blobs[c.Digest]
			}
			if res.Stats.Uploaded != want || want < slow.Size {
				t.Errorf("load uploaded %d, want %d (the bytes the registry took, with the slow blob's %d)", res.Stats.Uploaded, want, slow.Size)
			}
			if _, ir := imageBy(t, res, ref("library/a:1")); ir.Uploaded != want {
				t.Errorf("image uploaded %d, want %d", ir.Uploaded, want)
			}
		})
	}
}

func TestRunStatsUnits(t *testing.T) {
	shared := archivetest.Layer{Size: 3000, Seed: 9}
	tests := []struct {
		name   string
		images []archivetest.Image
		// twice loads the archive a second time into the same registry
		twice bool
		check func(t *testing.T, res *loader.Result)
	}{
		{
			name:   "one image",
			images: []archivetest.Image{image("docker.io/library/a", "1", 1, bothPlatforms)},
			check: func(t *testing.T, res *loader.Result) {
				if img, ir := imageBy(t, res, ref("library/a:1")); ir.Uploaded != img.Size() {
					t.Errorf("uploaded %d, want %d", ir.Uploaded, img.Size())
				}
			},
		},
		{
			name:   "platforms share a layer",
			images: []archivetest.Image{image("docker.io/library/a", "1", 1, bothPlatforms, shared)},
			check: func(t *testing.T, res *loader.Result) {
				if img, ir := imageBy(t, res, ref("library/a:1")); ir.Uploaded != img.Size() {
					t.Errorf("uploaded %d, want %d", ir.Uploaded, img.Size())
				}
			},
		},
		{
			name: "images in two repositories share a layer",
			images: []archivetest.Image{
				image("docker.io/library/a", "1", 1, bothPlatforms, shared),
				image("docker.io/library/b", "1", 2, bothPlatforms, shared),
			},
			check: func(t *testing.T, res *loader.Result) {
				if res.Stats.Mounted != shared.Size {
					t.Errorf("mounted %d, want %d", res.Stats.Mounted, shared.Size)
				}
			},
		},
		{
			name:   "warm re-load",
			images: []archivetest.Image{image("docker.io/library/a", "1", 1, bothPlatforms, shared)},
			twice:  true,
			check: func(t *testing.T, res *loader.Result) {
				img, ir := imageBy(t, res, ref("library/a:1"))
				if ir.Present != img.Size() || ir.Status != loader.StatusUnchanged {
					t.Errorf("%v %+v, want unchanged with all %d present", ir.Status, ir.Stats, img.Size())
				}
			},
		},
		{
			name: "two tags of one repository",
			images: []archivetest.Image{
				image("docker.io/library/a", "1", 1, bothPlatforms, shared),
				image("docker.io/library/a", "2", 2, bothPlatforms, shared),
			},
			check: func(t *testing.T, res *loader.Result) {
				if res.Stats.Uploaded+res.Stats.Present != res.Plan.Images[0].Size()+res.Plan.Images[1].Size() {
					t.Errorf("stats %+v", res.Stats)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newFakeLoad(t, tt.images, archivetest.Options{})
			reg := newFakeRegistry()
			res := l.run(t, context.Background(), reg)
			if tt.twice {
				res = l.run(t, context.Background(), reg)
			}
			reg.checkClean(t)
			if len(res.Failed) != 0 {
				t.Fatalf("failed: %v", res.Failed)
			}
			var sum loader.Stats
			for img, ir := range res.Images {
				if got := ir.Uploaded + ir.Mounted + ir.Present; got != img.Size() {
					t.Errorf("%s: stats %+v add up to %d, want the image's %d", img.Reference(), ir.Stats, got, img.Size())
				}
				sum.Uploaded += ir.Uploaded
				sum.Mounted += ir.Mounted
				sum.Present += ir.Present
			}
			if sum != res.Stats {
				t.Errorf("load stats %+v, the images add up to %+v", res.Stats, sum)
			}
			tt.check(t, res)
		})
	}
}

func TestRunSummary(t *testing.T) {
	images := []archivetest.Image{
		image("docker.io/library/a", "1", 1, bothPlatforms),
		image("docker.io/library/b", "1", 2, bothPlatforms),
		image("docker.io/library/c", "1", 3, bothPlatforms),
	}
	l := newFakeLoad(t, images, archivetest.Options{})
	lines, err := loader.ReadImageList(strings.NewReader("library/a:1\nlibrary/missing:1\nlibrary/b:1\nlibrary/c:1\nlibrary/a:1\n"))
	if err != nil {
		t.Fatal(err)
	}
	bad := l.w.Images[1].Manifests[0].Layers[0].Digest
	reg := newFakeRegistry()
	reg.before = func(ctx context.Context, c fakeCall) error {
		if c.Op == opPushBlob && c.Digest == bad {
			return errInjected
		}
		return nil
	}
	res := runPlan(t, context.Background(), l.plan(t, lines), l.src, reg, l.opts)
	s := res.Summary()
	want := loader.Summary{Loaded: 2, Failed: 1, NotInArchive: 1}
	if s != want {
		t.Errorf("summary %+v, want %+v", s, want)
	}
	if n := s.Failed + s.NotInArchive + s.Interrupted + s.NotAttempted; n != len(res.Failed) {
		t.Errorf("summary %+v counts %d failed lines, the list has %d", s, n, len(res.Failed))
	}
	if want := []string{"library/missing:1", "docker.io/library/b:1"}; !slices.Equal(res.FailedKeys(), want) {
		t.Errorf("failed = %v, want %v", res.FailedKeys(), want)
	}
}

func TestRunCancellation(t *testing.T) {
	var images []archivetest.Image
	for i := range 6 {
		images = append(images, image(fmt.Sprintf("docker.io/library/app%d", i), "1", int64(i+1), bothPlatforms))
	}
	tests := []struct {
		name string
		// answer is what the index push of the first image answers once
		// it landed and the load was cancelled
		answer func(ctx context.Context) error
	}{
		{name: "cancelled after the index push", answer: func(context.Context) error { return nil }},
		{name: "cancelled during the index push", answer: func(ctx context.Context) error { return context.Cause(ctx) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newFakeLoad(t, images, archivetest.Options{})
			l.opts.Jobs = 1
			l.opts.BlobConcurrency = 2 // a window of two images
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			interrupt := errors.New("interrupted by the test")
			reg := newFakeRegistry()
			reg.before = func(ctx context.Context, c fakeCall) error {
				if c.Repo == "library/app1" && c.Op == opFetchManifest {
					// the second image is still preparing at the cancel
					return sleep(ctx, time.Minute)
				}
				return nil
			}
			reg.after = func(ctx context.Context, c fakeCall) error {
				if c.Repo == "library/app0" && isIndexPush(c) {
					cancel(interrupt)
					return tt.answer(ctx)
				}
				return nil
			}
			res := l.run(t, ctx, reg)
			if !errors.Is(res.Stopped, interrupt) {
				t.Errorf("stopped: %v, want the test's interruption", res.Stopped)
			}
			statuses := map[string]loader.Status{}
			for _, img := range res.Plan.Images {
				statuses[img.Repository] = res.Images[img].Status
			}
			want := map[string]loader.Status{
				"library/app0": loader.StatusLoaded,
				"library/app1": loader.StatusInterrupted,
				"library/app2": loader.StatusNotAttempted,
				"library/app3": loader.StatusNotAttempted,
				"library/app4": loader.StatusNotAttempted,
				"library/app5": loader.StatusNotAttempted,
			}
			for repo, st := range want {
				if statuses[repo] != st {
					_, ir := imageBy(t, res, ref(repo+":1"))
					t.Errorf("%s: %v (%v), want %v", repo, statuses[repo], ir.Err, st)
				}
			}
			wantFailed := []string{"docker.io/library/app1:1", "docker.io/library/app2:1", "docker.io/library/app3:1", "docker.io/library/app4:1", "docker.io/library/app5:1"}
			if !slices.Equal(res.FailedKeys(), wantFailed) {
				t.Errorf("failed = %v, want %v", res.FailedKeys(), wantFailed)
			}
			if s, want := res.Summary(), (loader.Summary{Loaded: 1, Interrupted: 1, NotAttempted: 4}); s != want {
				t.Errorf("summary %+v, want %+v", s, want)
			}
			for _, c := range reg.log() {
				if st, ok := want[c.Repo]; ok && st == loader.StatusNotAttempted {
					t.Errorf("image %s was not attempted but its repository got %s", c.Repo, c.Op)
				}
			}
			if reg.tag("library/app1", "1") != "" {
				t.Error("the interrupted image got its main tag")
			}
		})
	}
}

// TestRunIndexSeesAnotherWriter: another writer (a load of another archive)
// changes the main tag while this load commits it; the platform it put
// there survives (issue 12.2), or, when it never stops, the image fails
// after Options.IndexAttempts pushes.
func TestRunIndexSeesAnotherWriter(t *testing.T) {
	ours := []archivetest.Image{{Source: "docker.io/library/web", Tag: "1", Manifests: withAttestations(1, nil, amd64)}}
	theirs := writeArchive(t, []archivetest.Image{{Source: "docker.io/library/web", Tag: "1", Manifests: withAttestations(2, nil, arm64)}}, archivetest.Options{})
	var theirIndex []byte
	var theirDigests []string
	{
		var step []ocispec.Descriptor
		for _, wm := range theirs.Images[0].Manifests {
			d := wm.Descriptor
			step = append(step, indexEntry(d))
			theirDigests = append(theirDigests, d.Digest.String())
		}
		res, err := manifest.Merge(nil, step, manifest.MergeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		theirIndex = res.Bytes
	}
	tests := []struct {
		name string
		// when reports the call after which the other writer pushes
		// its index to the tag; it is asked of every call, in order
		when func(c fakeCall, n int) bool
		// fails: the image fails after IndexAttempts pushes
		fails bool
	}{
		{name: "after prepare read the tag", when: func(c fakeCall, n int) bool {
			return n == 0 && c.Op == opPushManifest && !isIndexPush(c)
		}},
		{name: "between the push and the read-back", when: func(c fakeCall, n int) bool {
			return n == 0 && isIndexPush(c)
		}},
		{name: "after every push", fails: true, when: func(c fakeCall, n int) bool {
			return isIndexPush(c)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newFakeLoad(t, ours, archivetest.Options{})
			reg := newFakeRegistry()
			for _, wm := range theirs.Images[0].Manifests {
				reg.seed("library/web", wm)
			}
			var mu sync.Mutex
			n := 0
			reg.after = func(ctx context.Context, c fakeCall) error {
				mu.Lock()
				defer mu.Unlock()
				if c.Repo == "library/web" && tt.when(c, n) {
					n++
					reg.putTag("library/web", "1", ocispec.MediaTypeImageIndex, theirIndex)
				}
				return nil
			}
			res := l.run(t, context.Background(), reg)
			reg.checkClean(t)
			img, ir := imageBy(t, res, ref("library/web:1"))
			pushes := reg.find(isIndexPush)
			if tt.fails {
				if ir.Status != loader.StatusFailed || ir.Err == nil || !strings.Contains(ir.Err.Error(), "another writer kept changing") {
					t.Errorf("%v %v, want failed: another writer kept changing the tag", ir.Status, ir.Err)
				}
				if len(pushes) != l.opts.IndexAttempts {
					t.Errorf("%d index pushes, want %d", len(pushes), l.opts.IndexAttempts)
				}
				return
			}
			if ir.Status != loader.StatusLoaded {
				t.Fatalf("%v %v, want loaded", ir.Status, ir.Err)
			}
			idx, err := parseIndex(reg.manifest("library/web", reg.tag("library/web", "1")))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range idx.Manifests {
				got = append(got, m.Digest.String())
			}
			want := slices.Clone(theirDigests)
			for _, m := range img.Manifests() {
				want = append(want, m.Digest().String())
			}
			if !sameSet(got, want) {
				t.Errorf("the tag names %v, want theirs and ours %v (%d index pushes)", got, want, len(pushes))
			}
		})
	}
}

// TestRunWarmManifestChecks: a warm image asks for each manifest its tag's
// index lists, except on Harbor, which refuses to delete a manifest that
// an index names (412 VIOLATE_FOREIGN_KEY_CONSTRAINT, checked against the
// real Harbor in plugin/harbor_test.go): there the tag's index proves
// them. A chart, with no index, is always asked for.
func TestRunWarmManifestChecks(t *testing.T) {
	images := []archivetest.Image{
		image("docker.io/library/a", "1", 1, bothPlatforms, sharedLayer),
		{Chart: &archivetest.Chart{Name: "demo", Version: "0.1.0"}},
	}
	for _, tt := range []struct {
		name        string
		harbor      bool
		wantIndexed int // ManifestExists calls of the image with an index
	}{
		{name: "distribution", harbor: false, wantIndexed: 2},
		{name: "harbor", harbor: true, wantIndexed: 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l := newFakeLoad(t, images, archivetest.Options{})
			reg := newFakeRegistry()
			reg.harbor = tt.harbor
			if res := l.run(t, context.Background(), reg); len(res.Failed) != 0 {
				t.Fatalf("load: %v", res.Failed)
			}
			reg.reset()
			res := l.run(t, context.Background(), reg)
			exists := map[string]int{}
			for _, c := range reg.log() {
				if c.Op == opManifestExists {
					exists[c.Repo]++
				}
			}
			for img, ir := range res.Images {
				if ir.Status != loader.StatusUnchanged {
					t.Errorf("%s: %v %v; want unchanged", img.Reference(), ir.Status, ir.Err)
				}
			}
			if exists["library/a"] != tt.wantIndexed {
				t.Errorf("library/a: %d manifest checks; want %d", exists["library/a"], tt.wantIndexed)
			}
		})
	}
}

// TestRunCommitsOverlapUnlessTagsAreShared: at -j 1 the next image's
// manifests go in while an index is pushed, so an index's round trips are
// not on the chain of ordered commits; but an image whose main tag is
// another image's platform tag (library/web:1-linux-amd64 before
// library/web:1, whose amd64 manifest is tagged 1-linux-amd64) commits
// strictly after it, so that the later write wins as in Hangar. Index
// pushes are slowed, so that an overlap would let the later manifest land
// first.
func TestRunCommitsOverlapUnlessTagsAreShared(t *testing.T) {
	layer := func(seed int64) []archivetest.Layer { return []archivetest.Layer{{Size: 1 << 10, Seed: seed}} }
	tests := []struct {
		name   string
		images []archivetest.Image
		// overlap: the second image's manifest push starts before the
		// first image's index push ends
		overlap bool
	}{
		{name: "unrelated images", overlap: true, images: []archivetest.Image{
			{Source: "docker.io/library/web", Tag: "1", Manifests: []archivetest.Manifest{{Platform: amd64, Layers: layer(1)}}},
			{Source: "docker.io/library/api", Tag: "1", Manifests: []archivetest.Manifest{{Platform: amd64, Layers: layer(2)}}},
		}},
		{name: "a main tag is the other's platform tag", images: []archivetest.Image{
			{Source: "docker.io/library/web", Tag: "1-linux-amd64", Manifests: []archivetest.Manifest{{Platform: amd64, Layers: layer(1)}}},
			{Source: "docker.io/library/web", Tag: "1", Manifests: []archivetest.Manifest{{Platform: amd64, Layers: layer(2)}}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newFakeLoad(t, tt.images, archivetest.Options{})
			second := l.w.Images[1].Manifests[0].Descriptor.Digest
			// the first image is library/web in both cases
			isFirstIndex := func(c fakeCall) bool {
				return isIndexPush(c) && c.Repo == "library/web" && c.Ref == tt.images[0].Tag
			}
			reg := newFakeRegistry()
			// The first index push is slow, so that where the second
			// image may go ahead, it does so well before that push ends.
			reg.before = func(ctx context.Context, c fakeCall) error {
				if isFirstIndex(c) {
					return sleep(ctx, 200*time.Millisecond)
				}
				return nil
			}
			res := l.run(t, context.Background(), reg)
			reg.checkClean(t)
			if len(res.Failed) != 0 {
				t.Fatalf("failed: %v", res.Failed)
			}
			firstIndex := reg.find(isFirstIndex)
			secondManifest := reg.find(func(c fakeCall) bool { return c.Op == opPushManifest && c.Digest == second })
			if len(firstIndex) != 1 || len(secondManifest) != 1 {
				t.Fatalf("%d pushes of the first index, %d of the second manifest; want 1 each", len(firstIndex), len(secondManifest))
			}
			if overlapped := secondManifest[0].Start < firstIndex[0].End; overlapped != tt.overlap {
				t.Errorf("the second image's manifest push (call %d) started before the first's index push ended (call %d): %t, want %t", secondManifest[0].Start, firstIndex[0].End, overlapped, tt.overlap)
			}
			if !tt.overlap {
				// Hangar's order: the second image's platform manifest
				// is written last to 1-linux-amd64
				if got := reg.tag("library/web", "1-linux-amd64"); got != second {
					t.Errorf("library/web:1-linux-amd64 is %s, want the later image's amd64 manifest %s", got, second)
				}
			}
		})
	}
}
