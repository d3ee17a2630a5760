package loader_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnrancher/docker-hangar/archive"
	"github.com/cnrancher/docker-hangar/archive/archivetest"
	"github.com/cnrancher/docker-hangar/internal/registrytest"
	"github.com/cnrancher/docker-hangar/loader"
)

var (
	amd64 = ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm64 = ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
)

// writeArchive writes a generated Hangar archive into the test's temp dir.
func writeArchive(t *testing.T, images []archivetest.Image, opts archivetest.Options) *archivetest.Written {
	t.Helper()
	w, err := archivetest.Write(filepath.Join(t.TempDir(), "archive.zip"), images, opts)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// tags returns ref -> digest of every tag in the registry.
func tags(t *testing.T, reg *registrytest.Registry) map[string]string {
	t.Helper()
	state, err := registrytest.State(reg.Client(), reg.Server.URL)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, s := range state {
		m[s.Ref] = s.Digest
	}
	return m
}

// indexDigests returns the manifest digests named by the index at repo:tag.
func indexDigests(t *testing.T, reg *registrytest.Registry, repo, tag string) []string {
	t.Helper()
	body, _, err := registrytest.Manifest(reg.Client(), reg.Server.URL, repo, tag)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := parseIndex(body)
	if err != nil {
		t.Fatal(err)
	}
	var ds []string
	for _, m := range idx.Manifests {
		ds = append(ds, m.Digest.String())
	}
	return ds
}

func TestCorruptLayerFailsOnlyItsImage(t *testing.T) {
	images := archivetest.Sample()
	w := writeArchive(t, images, archivetest.Options{})
	// the second layer of library/app00 linux/amd64 is used by no other image
	bad := w.Images[1].Manifests[0].Layers[1].Digest
	if err := archivetest.FlipByte(w.Path, bad); err != nil {
		t.Fatal(err)
	}
	reg := registrytest.MustStart(t, registrytest.Options{})
	res := load(t, testOptions(t, w.Path, reg.Host()))
	if want := []string{"docker.io/library/app00:v1.0.0"}; !slices.Equal(res.FailedKeys(), want) {
		t.Fatalf("failed = %v, want %v", res.Failed, want)
	}
	for img, ir := range res.Images {
		if img.Source == "docker.io/library/app00:v1.0.0" {
			if ir.Err == nil || !strings.Contains(ir.Err.Error(), bad.String()) {
				t.Errorf("error %v does not name the corrupt blob %s", ir.Err, bad)
			}
		}
	}
	got := tags(t, reg)
	if _, ok := got["library/app00:v1.0.0"]; ok {
		t.Error("the broken image got a main tag")
	}
	for _, ref := range []string{"rancher/app01:v1.0.0", "library/tool:1.0", "extra/nested/tool:1.0", "hangar-file/notes.txt:latest", "hangar-helm/demo:0.1.7"} {
		if _, ok := got[ref]; !ok {
			t.Errorf("%s was not loaded", ref)
		}
	}
}

func TestGeneratedArchives(t *testing.T) {
	base := archivetest.Layer{Size: 2048, Seed: 1}
	twoEntries := []archivetest.Image{
		{Source: "docker.io/library/web", Tag: "1", Manifests: []archivetest.Manifest{{Platform: amd64, Layers: []archivetest.Layer{base}}, {Attestation: true}}},
		{Source: "docker.io/library/web", Tag: "1", Manifests: []archivetest.Manifest{{Platform: arm64, Layers: []archivetest.Layer{base, {Size: 100, Seed: 2}}}, {Attestation: true}}},
	}
	tests := []struct {
		name    string
		images  []archivetest.Image
		archive archivetest.Options
		setup   func(*loader.Options, *archivetest.Written, string)
		check   func(t *testing.T, reg *registrytest.Registry, w *archivetest.Written, res *loader.Result)
	}{
		{
			name:   "duplicate source:tag entries load as one image",
			images: twoEntries,
			setup:  func(o *loader.Options, _ *archivetest.Written, _ string) { o.Jobs = 4 },
			check: func(t *testing.T, reg *registrytest.Registry, w *archivetest.Written, res *loader.Result) {
				if len(res.Plan.Images) != 1 {
					t.Errorf("planned %d images, want 1", len(res.Plan.Images))
				}
				want := []string{
					w.Images[0].Manifests[0].Descriptor.Digest.String(), w.Images[0].Manifests[1].Descriptor.Digest.String(),
					w.Images[1].Manifests[0].Descriptor.Digest.String(), w.Images[1].Manifests[1].Descriptor.Digest.String(),
				}
				if got := indexDigests(t, reg, "library/web", "1"); !slices.Equal(got, want) {
					t.Errorf("index = %v, want %v", got, want)
				}
			},
		},
		{
			name:   "duplicate entries with an image list",
			images: twoEntries,
			setup: func(o *loader.Options, _ *archivetest.Written, dir string) {
				o.ImageList = writeList(dir, "web:1")
			},
			check: func(t *testing.T, reg *registrytest.Registry, w *archivetest.Written, res *loader.Result) {
				if got := indexDigests(t, reg, "library/web", "1"); len(got) != 4 {
					t.Errorf("index has %d entries, want the 4 of both entries", len(got))
				}
			},
		},
		{
			name:   "provenance false skips attestations and loads every platform",
			images: twoEntries,
			setup:  func(o *loader.Options, _ *archivetest.Written, _ string) { o.Provenance = false },
			check: func(t *testing.T, reg *registrytest.Registry, w *archivetest.Written, res *loader.Result) {
				want := []string{w.Images[0].Manifests[0].Descriptor.Digest.String(), w.Images[1].Manifests[0].Descriptor.Digest.String()}
				if got := indexDigests(t, reg, "library/web", "1"); !slices.Equal(got, want) {
					t.Errorf("index = %v, want %v", got, want)
				}
			},
		},
		{
			name:   "project override and destination prefix",
			images: archivetest.Sample()[:3],
			setup: func(o *loader.Options, _ *archivetest.Written, _ string) {
				o.Project = "mirror"
				o.Destination += "/prefix"
			},
			check: func(t *testing.T, reg *registrytest.Registry, w *archivetest.Written, res *loader.Result) {
				got := tags(t, reg)
				for _, ref := range []string{"prefix/mirror/app01:v1.0.0", "prefix/mirror/app00:v1.0.0", "prefix/mirror/tool:1.0", "prefix/mirror/tool:1.0-linux-amd64"} {
					if _, ok := got[ref]; !ok {
						t.Errorf("%s missing; have %v", ref, got)
					}
				}
			},
		},
		{
			name:    "deflated archive",
			images:  archivetest.Sample(),
			archive: archivetest.Options{Deflate: true},
			check: func(t *testing.T, reg *registrytest.Registry, w *archivetest.Written, res *loader.Result) {
				if len(tags(t, reg)) < 10 {
					t.Errorf("too few tags: %v", tags(t, reg))
				}
			},
		},
		{
			name: "digest line loads by digest, without a tag",
			images: []archivetest.Image{{
				Source: "docker.io/library/pinned@sha256", Tag: "",
				Manifests: []archivetest.Manifest{{Platform: amd64, Layers: []archivetest.Layer{base}}},
			}},
			archive: archivetest.Options{Mutate: func(ix *archive.Index) {
				// hangar save stores name@sha256:<hex> as source name@sha256, tag <hex>
				ix.List[0].Tag = ix.List[0].Images[0].Digest.Encoded()
			}},
			setup: func(o *loader.Options, w *archivetest.Written, dir string) {
				o.ImageList = writeList(dir, "pinned@"+w.Images[0].Manifests[0].Descriptor.Digest.String())
			},
			check: func(t *testing.T, reg *registrytest.Registry, w *archivetest.Written, res *loader.Result) {
				d := w.Images[0].Manifests[0].Descriptor.Digest.String()
				if len(res.Failed) != 0 {
					t.Fatalf("failed: %v", res.Failed)
				}
				if _, _, err := registrytest.Manifest(reg.Client(), reg.Server.URL, "library/pinned", d); err != nil {
					t.Errorf("manifest %s not pushed: %v", d, err)
				}
				if got := tags(t, reg); len(got) != 0 {
					t.Errorf("a load by digest left tags: %v", got)
				}
			},
		},
		{
			name:   "image without a selected platform fails as in hangar",
			images: []archivetest.Image{{Source: "docker.io/library/armonly", Tag: "1", Manifests: []archivetest.Manifest{{Platform: ocispec.Platform{OS: "linux", Architecture: "s390x"}, Layers: []archivetest.Layer{base}}}}},
			check: func(t *testing.T, reg *registrytest.Registry, w *archivetest.Written, res *loader.Result) {
				if !slices.Equal(res.FailedKeys(), []string{"docker.io/library/armonly:1"}) {
					t.Errorf("failed = %v", res.Failed)
				}
			},
		},
		{
			name:    "missing blob fails the image that needs it",
			images:  archivetest.Sample()[:3],
			archive: archivetest.Options{OmitBlobs: []digest.Digest{archivetest.LayerDigest(archivetest.Layer{Size: 1000, Seed: 31})}},
			check: func(t *testing.T, reg *registrytest.Registry, w *archivetest.Written, res *loader.Result) {
				if !slices.Equal(res.FailedKeys(), []string{"docker.io/library/tool:1.0"}) {
					t.Fatalf("failed = %v", res.Failed)
				}
				for img, ir := range res.Images {
					if img.Source == "docker.io/library/tool:1.0" && !errors.Is(ir.Err, archive.ErrBlobNotFound) {
						t.Errorf("error %v is not a missing blob", ir.Err)
					}
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := writeArchive(t, tt.images, tt.archive)
			reg := registrytest.MustStart(t, registrytest.Options{})
			opts := testOptions(t, w.Path, reg.Host())
			if tt.setup != nil {
				tt.setup(&opts, w, t.TempDir())
			}
			res, err := loader.Load(context.Background(), opts)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			tt.check(t, reg, w, res)
		})
	}
}

func TestUnsupportedArchiveVersion(t *testing.T) {
	w := writeArchive(t, archivetest.Sample()[:1], archivetest.Options{Version: "v1.1.0"})
	reg := registrytest.MustStart(t, registrytest.Options{})
	_, err := loader.Load(context.Background(), testOptions(t, w.Path, reg.Host()))
	if !errors.Is(err, archive.ErrUnsupportedVersion) || !strings.Contains(err.Error(), "v1.1.0") {
		t.Fatalf("err = %v, want an unsupported version naming v1.1.0", err)
	}
}

func writeList(dir string, lines ...string) string {
	path := filepath.Join(dir, "list.txt")
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		panic(err)
	}
	return path
}
