package loader_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
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
	"github.com/cnrancher/docker-hangar/internal/registrytest"
	"github.com/cnrancher/docker-hangar/loader"
	"github.com/cnrancher/docker-hangar/manifest"
)

// Tests of the plan's rules: attestation tags, several sources folded
// into one destination, destination names, bad archive content, the
// plan's memory, the image list. Where the rule is about what lands in a
// registry, the archive is loaded into a real one (internal/registrytest).

// writeLog records the paths of the requests that write to a registry.
type writeLog struct {
	mu    sync.Mutex
	paths []string
}

func (w *writeLog) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPut, http.MethodPost, http.MethodPatch, http.MethodDelete:
			w.mu.Lock()
			w.paths = append(w.paths, r.Method+" "+r.URL.Path)
			w.mu.Unlock()
		}
		h.ServeHTTP(rw, r)
	})
}

// under returns the writes into repository repo.
func (w *writeLog) under(repo string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, p := range w.paths {
		if strings.Contains(p, " /v2/"+repo+"/") {
			out = append(out, p)
		}
	}
	return out
}

// repoTags returns tag -> digest of the tags of repo in the registry.
func repoTags(t *testing.T, reg *registrytest.Registry, repo string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for ref, d := range tags(t, reg) {
		if r, tag, ok := strings.Cut(ref, ":"); ok && r == repo {
			out[tag] = d
		}
	}
	return out
}

// fixtureAttestationConfig is the config of the attestations in the golden
// fixtures (hangar v1.9.4 saved them so): no platform.
var fixtureAttestationConfig = []byte(`{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":[]},"config":{}}`)

// withAttestations returns platform manifests each followed by its
// attestation; config, when not nil, is the attestations' config.
func withAttestations(seed int64, config []byte, platforms ...ocispec.Platform) []archivetest.Manifest {
	var ms []archivetest.Manifest
	for i, p := range platforms {
		ms = append(ms,
			archivetest.Manifest{Platform: p, Layers: []archivetest.Layer{{Size: 1500, Seed: seed*10 + int64(i)}}},
			archivetest.Manifest{Attestation: true, Config: config})
	}
	return ms
}

func TestAttestationTags(t *testing.T) {
	attTag := func(wm archivetest.WrittenManifest) string {
		return "sha256-" + digest.Digest(wm.Item.Annotations[manifest.AnnotationReferenceDigest]).Encoded() + ".att"
	}
	hexTag := func(wm archivetest.WrittenManifest) string {
		return "1.0-" + wm.Descriptor.Digest.Encoded()[:16]
	}
	tests := []struct {
		name string
		// config of the attestations: nil is buildx's unknown/unknown
		config       []byte
		provenance   bool
		platformTags bool
		// tagOf returns the tag expected for a manifest of the image
		// other than its platform tag ("" for none), and whether the
		// index names it
		tagOf func(wm archivetest.WrittenManifest) (tag string, indexed bool)
	}{
		{
			name: "buildx attestations", provenance: true, platformTags: true,
			tagOf: func(wm archivetest.WrittenManifest) (string, bool) {
				if wm.Attestation {
					return attTag(wm), true
				}
				return "", true
			},
		},
		{
			name: "attestations without a platform in their config", config: fixtureAttestationConfig, provenance: true, platformTags: true,
			tagOf: func(wm archivetest.WrittenManifest) (string, bool) {
				if wm.Attestation {
					return hexTag(wm), true
				}
				return "", true
			},
		},
		{
			name: "provenance false", provenance: false, platformTags: true,
			tagOf: func(wm archivetest.WrittenManifest) (string, bool) { return "", !wm.Attestation },
		},
		{
			name: "provenance false, fixture attestations", config: fixtureAttestationConfig, provenance: false, platformTags: true,
			tagOf: func(wm archivetest.WrittenManifest) (string, bool) { return "", !wm.Attestation },
		},
		{
			name: "platform tags false", provenance: true, platformTags: false,
			tagOf: func(wm archivetest.WrittenManifest) (string, bool) { return "", true },
		},
		{
			name: "platform tags false, fixture attestations", config: fixtureAttestationConfig, provenance: true, platformTags: false,
			tagOf: func(wm archivetest.WrittenManifest) (string, bool) { return "", true },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			images := []archivetest.Image{{Source: "docker.io/library/web", Tag: "1.0", Manifests: withAttestations(1, tt.config, amd64, arm64)}}
			w := writeArchive(t, images, archivetest.Options{})
			reg := registrytest.MustStart(t, registrytest.Options{})
			opts := testOptions(t, w.Path, reg.Host())
			opts.Provenance, opts.PlatformTags = tt.provenance, tt.platformTags
			res := load(t, opts)
			if len(res.Failed) != 0 {
				t.Fatalf("failed: %v", res.Failed)
			}
			got := repoTags(t, reg, "library/web")
			want := map[string]string{"1.0": got["1.0"]}
			var wantIndex []string
			for i, wm := range w.Images[0].Manifests {
				tag, indexed := tt.tagOf(wm)
				if !wm.Attestation && tt.platformTags {
					tag = manifest.PlatformTag("1.0", *wm.Descriptor.Platform, wm.Descriptor)
				}
				if tag != "" {
					want[tag] = wm.Descriptor.Digest.String()
				}
				if indexed {
					wantIndex = append(wantIndex, wm.Descriptor.Digest.String())
				}
				_, _, err := registrytest.Manifest(reg.Client(), reg.Server.URL, "library/web", wm.Descriptor.Digest.String())
				if indexed != (err == nil) {
					t.Errorf("manifest %d (attestation %t) in the registry: %t, want %t", i, wm.Attestation, err == nil, indexed)
				}
			}
			if !maps.Equal(got, want) {
				t.Errorf("tags = %v\nwant   %v", got, want)
			}
			if got := indexDigests(t, reg, "library/web", "1.0"); !slices.Equal(got, wantIndex) {
				t.Errorf("index = %v, want %v", got, wantIndex)
			}
		})
	}
}

// expectedLoad is what loading entries one after the other into one
// destination leaves at it, computed with manifest.Merge entry by entry and
// the last claimant of each platform tag: main tag bytes and tag -> digest.
func expectedLoad(t *testing.T, w *archivetest.Written, tag string, opts loader.Options) ([]byte, map[string]string) {
	t.Helper()
	selected := func(p *ocispec.Platform) bool {
		return slices.Contains(opts.Arch, p.Architecture) && slices.Contains(opts.OS, p.OS)
	}
	var (
		cur  *manifest.Existing
		body []byte
	)
	tags := map[string]string{}
	for _, wi := range w.Images {
		var step []ocispec.Descriptor
		subjects := map[digest.Digest]bool{}
		for _, wm := range wi.Manifests {
			d := wm.Descriptor
			var mtag string
			if wm.Attestation {
				subject := digest.Digest(d.Annotations[manifest.AnnotationReferenceDigest])
				if !opts.Provenance || !subjects[subject] {
					continue
				}
				mtag = "sha256-" + subject.Encoded() + ".att"
			} else {
				if !selected(d.Platform) {
					continue
				}
				subjects[d.Digest] = true
				mtag = manifest.PlatformTag(tag, *d.Platform, d)
			}
			step = append(step, indexEntry(d))
			tags[mtag] = d.Digest.String()
		}
		res, err := manifest.Merge(cur, step, manifest.MergeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Unchanged {
			continue
		}
		body = res.Bytes
		if cur, err = manifest.ParseExisting(ocispec.MediaTypeImageIndex, res.Bytes); err != nil {
			t.Fatal(err)
		}
	}
	tags[tag] = digest.FromBytes(body).String()
	return body, tags
}

func TestSeveralSourcesOneDestination(t *testing.T) {
	same := archivetest.Manifest{Platform: amd64, Layers: []archivetest.Layer{{Size: 1200, Seed: 900}}}
	sources := func(platforms ...[]archivetest.Manifest) []archivetest.Image {
		var out []archivetest.Image
		for i, project := range []string{"library", "rancher", "cnrancher"} {
			out = append(out, archivetest.Image{Source: "docker.io/" + project + "/dup", Tag: "1.0", Manifests: platforms[i]})
		}
		return out
	}
	tests := []struct {
		name   string
		images []archivetest.Image
	}{
		{name: "same platforms", images: sources(
			withAttestations(1, nil, amd64, arm64),
			withAttestations(2, nil, amd64, arm64),
			withAttestations(3, nil, amd64, arm64),
		)},
		{name: "different platforms", images: sources(
			withAttestations(1, nil, amd64, arm64),
			[]archivetest.Manifest{{Platform: amd64, Layers: []archivetest.Layer{{Size: 1300, Seed: 21}}}},
			append(withAttestations(3, nil, arm64), archivetest.Manifest{Platform: ocispec.Platform{OS: "linux", Architecture: "s390x"}, Layers: []archivetest.Layer{{Size: 900, Seed: 31}}}),
		)},
		{name: "two sources with an identical manifest", images: sources(
			withAttestations(1, nil, amd64, arm64),
			append([]archivetest.Manifest{same, {Attestation: true}}, withAttestations(2, nil, arm64)...),
			[]archivetest.Manifest{same, {Attestation: true}},
		)},
		// merged at once, the first attestation would survive: its
		// subject is back at the end; merged entry by entry it was
		// dropped when the second entry replaced its subject
		{name: "a platform replaced and restored", images: sources(
			[]archivetest.Manifest{same, {Attestation: true}},
			[]archivetest.Manifest{{Platform: amd64, Layers: []archivetest.Layer{{Size: 1300, Seed: 21}}}},
			[]archivetest.Manifest{same},
		)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := writeArchive(t, tt.images, archivetest.Options{})
			var wantBody []byte
			var wantTags map[string]string
			for _, jobs := range []int{1, 8} {
				for run := range 5 {
					reg := registrytest.MustStart(t, registrytest.Options{})
					opts := testOptions(t, w.Path, reg.Host())
					opts.Project, opts.Jobs = "mirror", jobs
					if wantBody == nil {
						wantBody, wantTags = expectedLoad(t, w, "1.0", opts)
					}
					res := load(t, opts)
					if len(res.Failed) != 0 || len(res.Plan.Images) != 1 {
						t.Fatalf("-j %d run %d: %d images, failed %v", jobs, run, len(res.Plan.Images), res.Failed)
					}
					body, _, err := registrytest.Manifest(reg.Client(), reg.Server.URL, "mirror/dup", "1.0")
					if err != nil {
						t.Fatal(err)
					}
					if string(body) != string(wantBody) {
						t.Fatalf("-j %d run %d: index differs from merging the entries one after the other:\ngot:\n%s\nwant:\n%s", jobs, run, body, wantBody)
					}
					if got := repoTags(t, reg, "mirror/dup"); !maps.Equal(got, wantTags) {
						t.Fatalf("-j %d run %d: tags = %v\nwant   %v", jobs, run, got, wantTags)
					}
					reg.Close()
				}
			}
		})
	}
}

func TestInvalidDestinationTag(t *testing.T) {
	layer := []archivetest.Layer{{Size: 800, Seed: 5}}
	one := func(source, tag string) archivetest.Image {
		return archivetest.Image{Source: source, Tag: tag, Manifests: []archivetest.Manifest{{Platform: amd64, Layers: layer}}}
	}
	tests := []struct {
		name string
		// source and tag of the bad entry; repo is its destination
		source, tag, repo string
	}{
		{name: "empty tag", source: "docker.io/library/empty", tag: "", repo: "library/empty"},
		{name: "tag with a digest", source: "docker.io/library/pinned", tag: "v1@sha256:" + strings.Repeat("ab", 32), repo: "library/pinned"},
		{name: "tag starting with a dash", source: "docker.io/library/dash", tag: "-v1", repo: "library/dash"},
		{name: "tag too long", source: "docker.io/library/long", tag: strings.Repeat("t", 129), repo: "library/long"},
		{name: "upper-case repository", source: "docker.io/library/Upper", tag: "1", repo: "library/Upper"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			images := []archivetest.Image{one("docker.io/library/good", "1"), one(tt.source, tt.tag), one("docker.io/library/fine", "2")}
			w := writeArchive(t, images, archivetest.Options{})
			var writes writeLog
			reg := registrytest.MustStart(t, registrytest.Options{Wrap: writes.wrap})
			res := load(t, testOptions(t, w.Path, reg.Host()))
			key := tt.source + ":" + tt.tag
			if !slices.Equal(res.FailedKeys(), []string{key}) {
				t.Errorf("failed = %q, want [%q]", res.FailedKeys(), key)
			}
			for img, ir := range res.Images {
				switch {
				case img.Source == key:
					if ir.Status != loader.StatusFailed || !errors.Is(ir.Err, loader.ErrInvalidReference) {
						t.Errorf("%s: %v %v, want failed with an invalid reference", key, ir.Status, ir.Err)
					}
				case ir.Status != loader.StatusLoaded:
					t.Errorf("%s: %v %v, want loaded", img.Reference(), ir.Status, ir.Err)
				}
			}
			if got := writes.under(tt.repo); len(got) != 0 {
				t.Errorf("writes for the bad entry: %v", got)
			}
			if got := writes.under(strings.ToLower(tt.repo)); len(got) != 0 {
				t.Errorf("writes for the bad entry: %v", got)
			}
			for _, repo := range []string{"library/good", "library/fine"} {
				if len(writes.under(repo)) == 0 {
					t.Errorf("nothing written for %s", repo)
				}
			}
		})
	}
}

func TestBadConfigFailsImage(t *testing.T) {
	layer := []archivetest.Layer{{Size: 800, Seed: 5}}
	tests := []struct {
		name   string
		config []byte
		docker bool
	}{
		{name: "not json", config: []byte("{not json")},
		{name: "not json, docker manifest", config: []byte("not json at all"), docker: true},
		{name: "json array", config: []byte(`["linux","amd64"]`)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			images := []archivetest.Image{
				{Source: "docker.io/library/good", Tag: "1", Manifests: []archivetest.Manifest{{Platform: amd64, Layers: layer}}},
				{Source: "docker.io/library/bad", Tag: "1", Manifests: []archivetest.Manifest{
					{Platform: arm64, Layers: []archivetest.Layer{{Size: 700, Seed: 6}}},
					{Platform: amd64, Docker: tt.docker, Layers: layer, Config: tt.config},
				}},
				// the same config again: the plan reads it once, and
				// fails this image too
				{Source: "docker.io/library/bad", Tag: "2", Manifests: []archivetest.Manifest{
					{Platform: amd64, Docker: tt.docker, Layers: []archivetest.Layer{{Size: 600, Seed: 7}}, Config: tt.config},
				}},
			}
			w := writeArchive(t, images, archivetest.Options{})
			var writes writeLog
			reg := registrytest.MustStart(t, registrytest.Options{Wrap: writes.wrap})
			res := load(t, testOptions(t, w.Path, reg.Host()))
			if want := []string{"docker.io/library/bad:1", "docker.io/library/bad:2"}; !slices.Equal(res.FailedKeys(), want) {
				t.Fatalf("failed = %v, want %v", res.FailedKeys(), want)
			}
			for img, ir := range res.Images {
				if strings.HasPrefix(img.Source, "docker.io/library/bad:") {
					cfg := w.Images[1].Manifests[1].Config.Digest.String()
					if ir.Err == nil || !strings.Contains(ir.Err.Error(), cfg) || !strings.Contains(ir.Err.Error(), "JSON") {
						t.Errorf("error %v does not name the bad config %s", ir.Err, cfg)
					}
				}
			}
			if got := writes.under("library/bad"); len(got) != 0 {
				t.Errorf("writes for the image with a bad config: %v", got)
			}
		})
	}
}

func TestDestinationForms(t *testing.T) {
	w := writeArchive(t, []archivetest.Image{image("docker.io/rancher/app", "v1", 1, []ocispec.Platform{amd64})}, archivetest.Options{})
	src, err := archive.Open(w.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	const host = "reg.example.com:5000"
	tests := []struct {
		dest string
		want string // Reference; "" when the destination is refused
	}{
		{dest: host, want: host + "/rancher/app:v1"},
		{dest: "https://" + host + "/", want: host + "/rancher/app:v1"},
		{dest: "http://" + host, want: host + "/rancher/app:v1"},
		{dest: host + "/", want: host + "/rancher/app:v1"},
		{dest: host + "/mirror/", want: host + "/mirror/rancher/app:v1"},
		{dest: "https://" + host + "/a/b", want: host + "/a/b/rancher/app:v1"},
		{dest: host + "/UPPER"},
		{dest: host + "/a//b"},
		{dest: "https://"},
	}
	for _, tt := range tests {
		t.Run(tt.dest, func(t *testing.T) {
			opts := loader.DefaultOptions()
			opts.Source, opts.Destination = w.Path, tt.dest
			checkErr := opts.Check()
			plan, planErr := loader.NewPlan(src, nil, opts)
			if tt.want == "" {
				for what, err := range map[string]error{"Check": checkErr, "NewPlan": planErr} {
					if !errors.Is(err, loader.ErrInvalidReference) {
						t.Errorf("%s(%q) = %v, want an invalid reference", what, tt.dest, err)
					}
				}
				return
			}
			if checkErr != nil || planErr != nil {
				t.Fatalf("Check: %v; NewPlan: %v", checkErr, planErr)
			}
			img := plan.Images[0]
			if img.Reference() != tt.want || img.Err != nil {
				t.Errorf("reference %q (err %v), want %q", img.Reference(), img.Err, tt.want)
			}
			if strings.Contains(img.Reference(), "//") || strings.Contains(img.Repository, "//") || strings.HasPrefix(img.Repository, "/") {
				t.Errorf("reference %q, repository %q", img.Reference(), img.Repository)
			}
		})
	}
}

func TestValidateChartWithSeveralManifests(t *testing.T) {
	two := []archivetest.Image{
		{Chart: &archivetest.Chart{Name: "demo", Version: "0.1.0", Description: "first"}},
		{Chart: &archivetest.Chart{Name: "demo", Version: "0.1.0", Description: "second"}},
		image("docker.io/library/app", "1", 1, bothPlatforms),
	}
	tests := []struct {
		name    string
		archive archivetest.Options
	}{
		{name: "two entries"},
		{name: "one entry with two manifests", archive: archivetest.Options{Mutate: func(ix *archive.Index) {
			ix.List[0].Images = append(ix.List[0].Images, ix.List[1].Images...)
			ix.List = slices.Delete(ix.List, 1, 2)
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := writeArchive(t, two, tt.archive)
			reg := registrytest.MustStart(t, registrytest.Options{})
			res := load(t, testOptions(t, w.Path, reg.Host()))
			if len(res.Failed) != 0 {
				t.Fatalf("load failed: %v", res.Failed)
			}
			chart := res.Plan.Images[0]
			if len(chart.Manifests()) != 2 {
				t.Fatalf("the chart has %d manifests, want 2", len(chart.Manifests()))
			}
			if res := validate(t, testOptions(t, w.Path, reg.Host())); len(res.Failed) != 0 {
				for img, ir := range res.Images {
					t.Logf("%s: %v %v", img.Reference(), ir.Status, ir.Err)
				}
				t.Fatalf("validate failed after a complete load: %v", res.Failed)
			}
			// and it fails once the manifest pushed by digest is gone
			first := w.Images[0].Manifests[0].Descriptor.Digest
			registryDo(t, reg, http.MethodDelete, "/v2/hangar-helm/demo/manifests/"+first.String(), "", nil, http.StatusAccepted)
			res = validate(t, testOptions(t, w.Path, reg.Host()))
			if want := []string{"docker.io/hangar-helm/demo:0.1.0"}; !slices.Equal(res.FailedKeys(), want) {
				t.Errorf("validate with the first chart manifest deleted: failed = %v, want %v", res.FailedKeys(), want)
			}
		})
	}
}

// countingSource opens the archive at path (closed when the test ends) as a
// Source that counts its reads, with the options that plan it.
func countingSource(t *testing.T, path string) (*readCounter, loader.Options) {
	t.Helper()
	ar, err := archive.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ar.Close() })
	opts := loader.DefaultOptions()
	opts.Source, opts.Destination = path, "reg.example.com"
	return &readCounter{Source: ar}, opts
}

// readCounter counts the reads of a Source.
type readCounter struct {
	loader.Source
	mu    sync.Mutex
	reads map[digest.Digest]int
	bytes int64
}

func (r *readCounter) ReadBlob(d digest.Digest, limit int64) ([]byte, error) {
	b, err := r.Source.ReadBlob(d, limit)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reads == nil {
		r.reads = map[digest.Digest]int{}
	}
	r.reads[d]++
	r.bytes += int64(len(b))
	return b, err
}

// bigManifest returns a manifest of about size bytes: layers of one tiny
// blob, repeated; seed varies its config, hence its digest.
func bigManifest(size int, seed int64) archivetest.Manifest {
	tiny := archivetest.Layer{Data: []byte("x")}
	desc, _ := json.Marshal(ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayerGzip, Digest: archivetest.LayerDigest(tiny), Size: 1})
	layers := make([]archivetest.Layer, size/(len(desc)+1))
	for i := range layers {
		layers[i] = tiny
	}
	config := fmt.Appendf(nil, `{"architecture":"amd64","os":"linux","config":{"Env":["SEED=%d"]},"rootfs":{"type":"layers","diff_ids":[]}}`, seed)
	return archivetest.Manifest{Platform: amd64, Layers: layers, Config: config}
}

// paddedManifest returns a manifest of about size bytes with one layer,
// padded with a long layer media type (cheap to write and to parse); seed
// varies its digest.
func paddedManifest(size int, seed int64) archivetest.Manifest {
	layer := archivetest.Layer{Data: []byte("x"), MediaType: fmt.Sprintf("application/vnd.test.%d.", seed) + strings.Repeat("p", size-400)}
	return archivetest.Manifest{Platform: amd64, Layers: []archivetest.Layer{layer}}
}

// dropLayerLists empties the layer lists of the index (they would repeat
// the manifests' tens of thousands of layers in index.json for each
// entry; the plan reads the manifests).
func dropLayerLists(ix *archive.Index) {
	for i := range ix.List {
		for j := range ix.List[i].Images {
			ix.List[i].Images[j].Layers = []digest.Digest{}
		}
	}
}

func TestPlanReadsASharedManifestOnce(t *testing.T) {
	const entries = 250
	big := bigManifest(4<<20-100<<10, 1)
	w := writeArchive(t, []archivetest.Image{{Source: "docker.io/library/big0", Tag: "1", Manifests: []archivetest.Manifest{big}}}, archivetest.Options{
		Mutate: func(ix *archive.Index) {
			dropLayerLists(ix)
			for i := 1; i < entries; i++ {
				e := ix.List[0]
				e.Source = fmt.Sprintf("docker.io/library/big%d", i)
				e.Images = slices.Clone(e.Images)
				ix.List = append(ix.List, e)
			}
		},
	})
	wm := w.Images[0].Manifests[0]
	if wm.Descriptor.Size < 3<<20 {
		t.Fatalf("the manifest is %d bytes, want about 4 MB", wm.Descriptor.Size)
	}
	src, opts := countingSource(t, w.Path)

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	plan, err := loader.NewPlan(src, nil, opts)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Images) != entries {
		t.Fatalf("%d images planned, want %d", len(plan.Images), entries)
	}
	for _, img := range plan.Images {
		if img.Err != nil || len(img.Manifests()) != 1 {
			t.Fatalf("%s: %d manifests, error %v", img.Reference(), len(img.Manifests()), img.Err)
		}
	}
	if n := src.reads[wm.Descriptor.Digest]; n != 1 {
		t.Errorf("the shared manifest was read %d times, want once", n)
	}
	if n := src.reads[wm.Config.Digest]; n != 1 {
		t.Errorf("the shared config was read %d times, want once", n)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("NewPlan allocated %d MiB for %d entries naming one manifest of %d KiB", alloc>>20, entries, wm.Descriptor.Size>>10)
	if limit := uint64(64 << 20); alloc > limit {
		t.Errorf("NewPlan allocated %d MiB, want less than %d MiB (%d entries x %d KiB would be %d MiB)", alloc>>20, limit>>20, entries, wm.Descriptor.Size>>10, entries*wm.Descriptor.Size>>20)
	}
	for _, img := range plan.Images[1:] {
		if &img.Manifests()[0].BlobIDs[0] != &plan.Images[0].Manifests()[0].BlobIDs[0] {
			t.Fatalf("%s keeps its own copy of the manifest's blob list", img.Reference())
		}
	}
}

// TestPlanReadsASharedConfigAtMostTwice checks that a config named by many
// distinct manifests is read at most twice (the planner marks configs read
// and keeps the platform of a config read twice).
func TestPlanReadsASharedConfigAtMostTwice(t *testing.T) {
	const images = 20
	config := []byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`)
	var set []archivetest.Image
	for i := range images {
		layer := archivetest.Layer{Data: fmt.Appendf(nil, "layer %d", i)}
		set = append(set, archivetest.Image{Source: fmt.Sprintf("docker.io/library/app%d", i), Tag: "1",
			Manifests: []archivetest.Manifest{{Platform: amd64, Layers: []archivetest.Layer{layer}, Config: config}}})
	}
	w := writeArchive(t, set, archivetest.Options{})
	shared := w.Images[0].Manifests[0].Config.Digest
	for _, img := range w.Images {
		if img.Manifests[0].Config.Digest != shared {
			t.Fatal("the images do not share their config")
		}
	}
	src, opts := countingSource(t, w.Path)
	plan, err := loader.NewPlan(src, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	distinct := map[digest.Digest]bool{}
	for _, img := range plan.Images {
		if img.Err != nil || len(img.Manifests()) != 1 {
			t.Fatalf("%s: %d manifests, error %v", img.Reference(), len(img.Manifests()), img.Err)
		}
		distinct[img.Manifests()[0].Digest()] = true
	}
	if len(distinct) != images {
		t.Fatalf("%d distinct manifests planned, want %d", len(distinct), images)
	}
	if n := src.reads[shared]; n < 1 || n > 2 {
		t.Errorf("the config of %d manifests was read %d times, want once or twice", images, n)
	}
}

// TestMergedAfterAnEmptyEntry checks an image whose first entry selects no
// manifest and whose later entries do: its manifests are settled like any
// (packed, sized, tagged), not left as the first entry left them.
func TestMergedAfterAnEmptyEntry(t *testing.T) {
	var set []archivetest.Image
	for i, project := range []string{"library", "rancher", "cnrancher"} {
		platform := amd64
		if i == 0 {
			platform = arm64 // not selected
		}
		set = append(set, archivetest.Image{Source: "docker.io/" + project + "/dup", Tag: "1.0",
			Manifests: []archivetest.Manifest{{Platform: platform, Layers: []archivetest.Layer{{Size: 1000 + 100*int64(i), Seed: 40 + int64(i)}}}}})
	}
	w := writeArchive(t, set, archivetest.Options{})
	plan, _ := planOf(t, w.Path, nil, func(o *loader.Options) { o.Project, o.Arch, o.PlatformTags = "mirror", []string{"amd64"}, true })
	if len(plan.Images) != 1 || plan.Images[0].Err != nil {
		t.Fatalf("%d images planned, want 1 (error %v)", len(plan.Images), plan.Images[0].Err)
	}
	img := plan.Images[0]
	var size int64
	for _, wi := range w.Images[1:] {
		wm := wi.Manifests[0]
		size += wm.Config.Size + wm.Layers[0].Size
	}
	if img.Size() != size {
		t.Errorf("Size() = %d, want %d (the blobs of the two amd64 manifests)", img.Size(), size)
	}
	manifests, steps := img.Manifests(), img.Steps()
	if len(manifests) != 2 || len(steps) != 2 {
		t.Fatalf("%d manifests and %d steps, want 2 and 2", len(manifests), len(steps))
	}
	// both claim the platform tag: the last entry's keeps it
	if manifests[0].Tag() != "" || manifests[1].Tag() == "" {
		t.Errorf("tags %q and %q, want the platform tag on the second only", manifests[0].Tag(), manifests[1].Tag())
	}
}

func TestPlanTooLarge(t *testing.T) {
	const size = 4<<20 - 100<<10
	n := loader.MaxPlanManifestBytes/size + 1
	var images []archivetest.Image
	for i := range n {
		images = append(images, archivetest.Image{Source: fmt.Sprintf("docker.io/library/big%d", i), Tag: "1", Manifests: []archivetest.Manifest{paddedManifest(size, int64(i))}})
	}
	w := writeArchive(t, images, archivetest.Options{})
	src, opts := countingSource(t, w.Path)
	type result struct {
		plan *loader.Plan
		err  error
	}
	done := make(chan result, 1)
	go func() {
		plan, err := loader.NewPlan(src, nil, opts)
		done <- result{plan, err}
	}()
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("NewPlan did not return within 30 s")
	}
	if !errors.Is(r.err, loader.ErrPlanTooLarge) || r.plan != nil {
		t.Fatalf("NewPlan = %v, %v; want ErrPlanTooLarge", r.plan, r.err)
	}
	if !strings.Contains(r.err.Error(), "-f") {
		t.Errorf("error %q does not say how to load it in parts", r.err)
	}
	var manifestBytes int64
	for _, wi := range w.Images {
		d := wi.Manifests[0].Descriptor
		if d.Size < size-1000 || d.Size > size+1000 {
			t.Fatalf("manifest of %d bytes, want about %d", d.Size, size)
		}
		manifestBytes += int64(src.reads[d.Digest]) * d.Size
	}
	if manifestBytes > loader.MaxPlanManifestBytes {
		t.Errorf("NewPlan read %d MiB of manifests before it gave up, more than the %d MiB bound", manifestBytes>>20, loader.MaxPlanManifestBytes>>20)
	}
}

func TestImageListByteOrderMark(t *testing.T) {
	w := writeArchive(t, []archivetest.Image{
		image("docker.io/library/first", "1", 1, []ocispec.Platform{amd64}),
		image("docker.io/library/second", "1", 2, []ocispec.Platform{amd64}),
	}, archivetest.Options{})
	list := filepath.Join(t.TempDir(), "list.txt")
	if err := os.WriteFile(list, []byte("\uFEFFlibrary/first:1\r\nlibrary/second:1\r\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lines, err := loader.ReadImageListFile(list)
	if err != nil {
		t.Fatal(err)
	}
	plan, _ := planOf(t, w.Path, lines, func(o *loader.Options) { o.ImageList = list })
	if len(plan.Lines) != 2 {
		t.Fatalf("%d lines, want 2", len(plan.Lines))
	}
	for _, l := range plan.Lines {
		if l.Err != nil || l.Image == nil {
			t.Errorf("line %d %q: %v", l.Number, l.Key, l.Err)
		}
	}
	if plan.Lines[0].Key != "library/first:1" {
		t.Errorf("line 1 key %q, want it without the byte order mark", plan.Lines[0].Key)
	}
}

// TestImageListNotRegularFile: a FIFO given as -f is refused at once;
// opening it would wait for a writer forever.
func TestImageListNotRegularFile(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "list.fifo")
	if err := mkfifo(fifo); err != nil {
		t.Skipf("cannot make a FIFO here: %v", err)
	}
	var returned atomic.Bool
	done := make(chan error, 1)
	go func() {
		_, err := loader.ReadImageListFile(fifo)
		returned.Store(true)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, loader.ErrImageList) || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("ReadImageListFile(fifo) = %v, want an image-list error saying it is not a regular file", err)
		}
	case <-time.After(5 * time.Second):
		unblockFIFO(fifo)
		t.Fatal("ReadImageListFile blocked on a FIFO")
	}
	opts := loader.DefaultOptions()
	opts.Source, opts.Destination, opts.ImageList = filepath.Join(t.TempDir(), "absent.zip"), "127.0.0.1:1", fifo
	loadDone := make(chan error, 1)
	go func() {
		_, err := loader.Load(context.Background(), opts)
		loadDone <- err
	}()
	select {
	case err := <-loadDone:
		if !errors.Is(err, loader.ErrImageList) {
			t.Errorf("Load with a FIFO list = %v, want an image-list error", err)
		}
	case <-time.After(5 * time.Second):
		unblockFIFO(fifo)
		t.Fatal("Load blocked on a FIFO image list")
	}
}

// indexEntry is the index entry of a written manifest, as the plan makes
// it: media type, digest, size, the item's platform and annotations.
func indexEntry(d ocispec.Descriptor) ocispec.Descriptor {
	platform := *d.Platform
	e := ocispec.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size, Platform: &platform}
	if len(d.Annotations) > 0 {
		e.Annotations = d.Annotations
	}
	return e
}

// TestPlanNumbersBlobs checks Manifest.BlobIDs, by which the plan keeps
// the blobs of each manifest: the archive's numbers (below Plan.Blobs) of
// its config and layers, in order, the same wherever a digest appears
// (layers shared by images, configs); and Image.Size, the bytes of an
// image's distinct blobs.
func TestPlanNumbersBlobs(t *testing.T) {
	w := writeArchive(t, archivetest.Sample(), archivetest.Options{})
	plan, ar := planOf(t, w.Path, nil, nil)
	if plan.Blobs != ar.Blobs() {
		t.Errorf("Plan.Blobs %d, the archive holds %d", plan.Blobs, ar.Blobs())
	}
	ids := map[digest.Digest]int32{}
	refs := 0
	for _, img := range plan.Images {
		var size int64
		seen := map[digest.Digest]bool{}
		for _, m := range img.Manifests() {
			body, err := ar.ReadBlob(m.Digest(), 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			var parsed ocispec.Manifest
			if err := json.Unmarshal(body, &parsed); err != nil {
				t.Fatal(err)
			}
			var want []ocispec.Descriptor // foreign layers are not stored
			for _, d := range append([]ocispec.Descriptor{parsed.Config}, parsed.Layers...) {
				if len(d.URLs) == 0 {
					want = append(want, d)
				}
			}
			if len(m.BlobIDs) != len(want) {
				t.Fatalf("%s: %d blob numbers for %d blobs", m.Digest(), len(m.BlobIDs), len(want))
			}
			for i, id := range m.BlobIDs {
				refs++
				if id < 0 || int(id) >= plan.Blobs {
					t.Fatalf("blob %s has number %d, want one in [0, %d)", want[i].Digest, id, plan.Blobs)
				}
				if d, size, err := ar.Blob(id); err != nil || d != want[i].Digest || size != want[i].Size {
					t.Errorf("number %d is blob %s of %d bytes (%v), want %s of %d", id, d, size, err, want[i].Digest, want[i].Size)
				}
				if prev, ok := ids[want[i].Digest]; ok && prev != id {
					t.Errorf("blob %s has numbers %d and %d", want[i].Digest, prev, id)
				}
				ids[want[i].Digest] = id
				if !seen[want[i].Digest] {
					seen[want[i].Digest] = true
					size += want[i].Size
				}
			}
		}
		if img.Size() != size {
			t.Errorf("%s: Size %d, its distinct blobs hold %d", img.Reference(), img.Size(), size)
		}
	}
	if refs <= len(ids) {
		t.Errorf("%d distinct blobs in %d references, want some shared", len(ids), refs)
	}
}

// TestManifestDescriptor checks that a planned manifest's Descriptor, which
// the plan keeps in parts, is the archive item's index entry: platform,
// annotations (an attestation's made from the manifest they name, or kept
// as the archive has them when they are not BuildKit's two), digest, size
// and media type.
func TestManifestDescriptor(t *testing.T) {
	extra := map[string]string{"org.example.note": "kept"}
	tests := []struct {
		name      string
		manifests []archivetest.Manifest
	}{
		{"attestations", withAttestations(1, nil, amd64, arm64)},
		{"attestation with another annotation", []archivetest.Manifest{
			{Platform: amd64, Layers: []archivetest.Layer{{Size: 100, Seed: 1}}},
			{Attestation: true, Annotations: extra},
		}},
		{"annotated platform manifests", []archivetest.Manifest{
			{Platform: amd64, Annotations: extra, Layers: []archivetest.Layer{{Size: 100, Seed: 1}}},
			{Platform: arm64, Docker: true, Layers: []archivetest.Layer{{Size: 100, Seed: 2}}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := writeArchive(t, []archivetest.Image{{Source: "docker.io/library/a", Tag: "1", Manifests: tt.manifests}}, archivetest.Options{})
			plan, _ := planOf(t, w.Path, nil, func(o *loader.Options) { o.Provenance = true })
			got := plan.Images[0].Manifests()
			want := w.Images[0].Manifests
			if len(got) != len(want) {
				t.Fatalf("%d manifests planned, want %d", len(got), len(want))
			}
			for i, m := range got {
				d, wd := m.Descriptor(), want[i].Descriptor
				if d.MediaType != wd.MediaType || d.Digest != wd.Digest || d.Size != wd.Size || !reflect.DeepEqual(d.Platform, wd.Platform) || !maps.Equal(d.Annotations, wd.Annotations) {
					t.Errorf("manifest %d: Descriptor() = %+v (platform %+v)\nwant %+v (platform %+v)", i, d, d.Platform, wd, wd.Platform)
				}
				if m.Digest() != wd.Digest {
					t.Errorf("manifest %d: Digest() = %s, want %s", i, m.Digest(), wd.Digest)
				}
			}
		})
	}
}

// TestAttestationWithoutSubject checks that an item whose config says
// unknown/unknown and whose annotations call it an attestation, but name
// no subject, is planned without a panic (go-digest's Encoded panics on
// the empty digest it names).
func TestAttestationWithoutSubject(t *testing.T) {
	config := []byte(`{"architecture":"unknown","os":"unknown","rootfs":{"type":"layers","diff_ids":[]},"config":{}}`)
	w := writeArchive(t, []archivetest.Image{{Source: "docker.io/library/a", Tag: "1", Manifests: []archivetest.Manifest{
		{Platform: amd64, Config: config, Annotations: map[string]string{manifest.AnnotationReferenceType: manifest.AttestationManifest}, Layers: []archivetest.Layer{{Size: 100, Seed: 1}}},
	}}}, archivetest.Options{})
	plan, _ := planOf(t, w.Path, nil, func(o *loader.Options) { o.Provenance = true })
	img := plan.Images[0]
	if img.Err != nil || len(img.Manifests()) != 1 {
		t.Fatalf("image planned with error %v and %d manifests, want 1 manifest", img.Err, len(img.Manifests()))
	}
	t.Logf("tag %q", img.Manifests()[0].Tag())
}

// planOf opens the archive at path and plans its load to reg.example.com
// with lines and the default options as set changes them (set may be
// nil); the archive is closed when the test ends.
func planOf(t *testing.T, path string, lines []loader.ListLine, set func(*loader.Options)) (*loader.Plan, *archive.Reader) {
	t.Helper()
	ar, err := archive.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ar.Close() })
	opts := loader.DefaultOptions()
	opts.Source, opts.Destination = path, "reg.example.com"
	if set != nil {
		set(&opts)
	}
	plan, err := loader.NewPlan(ar, lines, opts)
	if err != nil {
		t.Fatal(err)
	}
	return plan, ar
}
