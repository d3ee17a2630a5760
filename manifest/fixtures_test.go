package manifest

import (
	"archive/zip"
	"bufio"
	"encoding/json"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry"

	"github.com/cnrancher/docker-hangar/internal/fixtures"
)

// fixtureDir holds archives and registry states written by the real Hangar
// v1.9.4 (see its README.md), or is "" when they are absent: the tests
// that read it start with fixtures.Require.
var fixtureDir = fixtures.Dir()

// archiveItem and archiveImage mirror the archive's top-level index.json
// (hangar-load.md section 1.4).
type archiveItem struct {
	Arch        string            `json:"arch"`
	OS          string            `json:"os"`
	Variant     string            `json:"variant"`
	OSVersion   string            `json:"osVersion"`
	OSFeatures  []string          `json:"osFeatures"`
	MediaType   string            `json:"mediaType"`
	Digest      digest.Digest     `json:"digest"`
	Annotations map[string]string `json:"annotations"`
}

type archiveImage struct {
	Source string        `json:"source"`
	Tag    string        `json:"tag"`
	Images []archiveItem `json:"images"`
}

type fixtureArchive struct {
	files map[string]*zip.File
	list  []archiveImage
}

func openArchive(t *testing.T, name string) *fixtureArchive {
	t.Helper()
	z, err := zip.OpenReader(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { z.Close() })
	a := &fixtureArchive{files: map[string]*zip.File{}}
	for _, f := range z.File {
		a.files[f.Name] = f
	}
	var index struct {
		List []archiveImage `json:"list"`
	}
	if err := json.Unmarshal(a.read(t, "index.json"), &index); err != nil {
		t.Fatalf("%s: index.json: %v", name, err)
	}
	a.list = index.List
	return a
}

func (a *fixtureArchive) read(t *testing.T, name string) []byte {
	t.Helper()
	f, ok := a.files[name]
	if !ok {
		t.Fatalf("%s not in archive", name)
	}
	r, err := f.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (a *fixtureArchive) blob(t *testing.T, d digest.Digest) []byte {
	t.Helper()
	b := a.read(t, "share/sha256/"+d.Encoded())
	if got := digest.FromBytes(b); got != d {
		t.Fatalf("blob %s has digest %s", d, got)
	}
	return b
}

// filter is the --arch / --os selection (hangar-load.md section 2.8 step 5).
type filter struct{ arch, os []string }

func passes(v string, list []string) bool {
	return len(list) == 0 || v == "" || slices.Contains(list, v)
}

// fakeRegistry is the ref -> digest state of a registry, plus the bodies
// of the indexes pushed to main tags.
type fakeRegistry struct {
	tags    map[string]digest.Digest
	indexes map[string][]byte
}

func newFakeRegistry() *fakeRegistry {
	return &fakeRegistry{tags: map[string]digest.Digest{}, indexes: map[string][]byte{}}
}

// loadReport says, per main tag, whether the index push was skipped.
type loadReport map[string]bool

// load simulates `hangar load` of one archive: platform manifests go to
// their per-platform tags, charts and files to their tag, and the merged
// index to the main tag.
func (reg *fakeRegistry) load(t *testing.T, a *fixtureArchive, f filter) loadReport {
	t.Helper()
	report := loadReport{}
	for _, img := range a.list {
		_, repo, ok := strings.Cut(img.Source, "/")
		if !ok {
			t.Fatalf("source %q has no registry", img.Source)
		}
		mainRef := repo + ":" + img.Tag

		allowed := map[digest.Digest]bool{}
		for _, it := range img.Images {
			if passes(it.Arch, f.arch) && passes(it.OS, f.os) {
				allowed[it.Digest] = true
			}
		}
		var loaded []ocispec.Descriptor
		skipIndex := false
		for _, it := range img.Images {
			body := a.blob(t, it.Digest)
			desc := descriptor(it.MediaType, it.Digest, int64(len(body)), ocispec.Platform{
				Architecture: it.Arch,
				OS:           it.OS,
				Variant:      it.Variant,
				OSVersion:    it.OSVersion,
				OSFeatures:   it.OSFeatures,
			}, it.Annotations)
			if IsAttestation(*desc.Platform, desc.Annotations) {
				if !allowed[digest.Digest(it.Annotations[AnnotationReferenceDigest])] {
					continue
				}
			} else if !allowed[it.Digest] {
				continue
			}

			var m ocispec.Manifest
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatalf("%s: manifest %s: %v", mainRef, it.Digest, err)
			}
			if m.Config.MediaType == MediaTypeHelmConfig {
				reg.tags[mainRef] = it.Digest
				skipIndex = true
				continue
			}
			var config ocispec.Platform
			if err := json.Unmarshal(a.blob(t, m.Config.Digest), &config); err != nil {
				t.Fatalf("%s: config %s: %v", mainRef, m.Config.Digest, err)
			}
			tag := PlatformTag(img.Tag, config, desc)
			if (registry.Reference{Reference: tag}).ValidateReferenceAsTag() != nil {
				t.Errorf("%s: invalid platform tag %q", mainRef, tag)
			}
			reg.tags[repo+":"+tag] = it.Digest
			loaded = append(loaded, desc)
		}
		if skipIndex {
			continue
		}

		var existing *Existing
		if body, ok := reg.indexes[mainRef]; ok {
			var err error
			if existing, err = ParseExisting(ocispec.MediaTypeImageIndex, body); err != nil {
				t.Fatalf("%s: %v", mainRef, err)
			}
		}
		res, err := Merge(existing, loaded, DefaultMergeOptions())
		if err != nil {
			t.Fatalf("%s: merge: %v", mainRef, err)
		}
		report[mainRef] = res.Unchanged
		if res.Unchanged {
			continue
		}
		if res.Digest() != digest.FromBytes(res.Bytes) {
			t.Fatalf("%s: Result.Digest disagrees with Bytes", mainRef)
		}
		reg.tags[mainRef] = res.Digest()
		reg.indexes[mainRef] = res.Bytes
	}
	return report
}

// readState reads a *.state.jsonl file into ref -> digest.
func readState(t *testing.T, name string) map[string]digest.Digest {
	t.Helper()
	f, err := os.Open(filepath.Join(fixtureDir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	state := map[string]digest.Digest{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var line struct {
			Ref    string        `json:"ref"`
			Digest digest.Digest `json:"digest"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		state[line.Ref] = line.Digest
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return state
}

func compareState(t *testing.T, got, want map[string]digest.Digest) {
	t.Helper()
	for _, ref := range slices.Sorted(maps.Keys(want)) {
		if got[ref] != want[ref] {
			t.Errorf("%s: got %q, want %s", ref, got[ref], want[ref])
		}
	}
	for _, ref := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[ref]; !ok {
			t.Errorf("%s: unexpected tag (%s)", ref, got[ref])
		}
	}
}

func TestFixtureBasicLoad(t *testing.T) {
	fixtures.Require(t)
	tests := []struct {
		name   string
		filter filter
		state  string
	}{
		{"default", filter{arch: []string{"amd64", "arm64"}, os: []string{"linux"}}, "basic.load-default.state.jsonl"},
		{"all", filter{arch: []string{"amd64", "arm64", "arm"}, os: []string{"linux", "windows"}}, "basic.load-all.state.jsonl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := openArchive(t, "basic.zip")
			reg := newFakeRegistry()
			report := reg.load(t, a, tt.filter)
			for ref, unchanged := range report {
				if unchanged {
					t.Errorf("%s: Unchanged on an empty registry", ref)
				}
			}
			compareState(t, reg.tags, readState(t, tt.state))
		})
	}
}

func TestFixtureMerge(t *testing.T) {
	fixtures.Require(t)
	f := filter{arch: []string{"amd64", "arm64"}, os: []string{"linux"}}
	reg := newFakeRegistry()
	reg.load(t, openArchive(t, "amd64.zip"), f)
	arm64 := openArchive(t, "arm64.zip")
	reg.load(t, arm64, f)
	compareState(t, reg.tags, readState(t, "merge.state.jsonl"))

	files, err := filepath.Glob(filepath.Join(fixtureDir, "merge.indexes", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no merge.indexes/*.json")
	}
	for _, file := range files {
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var ref string
		for r := range reg.indexes {
			if strings.NewReplacer("/", "_", ":", "_").Replace(r)+".json" == filepath.Base(file) {
				ref = r
			}
		}
		if ref == "" {
			t.Errorf("%s: no index pushed for it", filepath.Base(file))
			continue
		}
		if got := reg.indexes[ref]; string(got) != string(want) {
			t.Errorf("%s: index differs\ngot:\n%s\nwant:\n%s", ref, got, want)
		}
	}

	// Loading arm64.zip again changes nothing and pushes no index.
	before := maps.Clone(reg.tags)
	report := reg.load(t, arm64, f)
	if len(report) != len(files) {
		t.Errorf("re-merge: %d indexes, want %d", len(report), len(files))
	}
	for ref, unchanged := range report {
		if !unchanged {
			t.Errorf("%s: re-merge of arm64.zip is not Unchanged", ref)
		}
	}
	compareState(t, reg.tags, before)
}

// TestFixtureMarshalRoundTrip checks that parsing and re-serialising each
// index the real Hangar pushed gives the same bytes.
func TestFixtureMarshalRoundTrip(t *testing.T) {
	fixtures.Require(t)
	files, err := filepath.Glob(filepath.Join(fixtureDir, "merge.indexes", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range files {
		want, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		e, err := ParseExisting("", want)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		got, err := marshalIndex(ocispec.Index{Manifests: e.Manifests})
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("%s: round trip differs\ngot:\n%s\nwant:\n%s", filepath.Base(file), got, want)
		}
	}
}
