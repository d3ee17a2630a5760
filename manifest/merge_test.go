package manifest

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// dg returns a stable digest named after s.
func dg(s string) digest.Digest { return digest.FromString(s) }

// img returns a platform entry; platform is "os/arch[/variant]".
func img(name, platform string) ocispec.Descriptor {
	parts := strings.Split(platform, "/")
	p := ocispec.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) > 2 {
		p.Variant = parts[2]
	}
	return descriptor(ocispec.MediaTypeImageManifest, dg(name), int64(len(name)), p, nil)
}

// att returns a BuildKit attestation entry for the entry named subject.
func att(name, subject string) ocispec.Descriptor {
	return descriptor(ocispec.MediaTypeImageManifest, dg(name), int64(len(name)),
		ocispec.Platform{Architecture: PlatformUnknown, OS: PlatformUnknown},
		map[string]string{
			AnnotationReferenceDigest: dg(subject).String(),
			AnnotationReferenceType:   "attestation-manifest",
		})
}

func withAnnotations(d ocispec.Descriptor, a map[string]string) ocispec.Descriptor {
	d.Annotations = a
	return d
}

func noPlatform(name string) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: dg(name), Size: int64(len(name))}
}

func ociIndex(entries ...ocispec.Descriptor) *Existing {
	return &Existing{MediaType: ocispec.MediaTypeImageIndex, Manifests: entries}
}

func dockerList(entries ...ocispec.Descriptor) *Existing {
	for i := range entries {
		entries[i].MediaType = MediaTypeDockerManifest
		entries[i].Annotations = nil
	}
	return &Existing{MediaType: MediaTypeDockerManifestList, Manifests: entries}
}

func list(entries ...ocispec.Descriptor) []ocispec.Descriptor { return entries }

func TestMerge(t *testing.T) {
	overwrite := MergeOptions{Overwrite: true}
	amd64A, arm64B := img("A", "linux/amd64"), img("B", "linux/arm64/v8")
	tests := []struct {
		name          string
		existing      *Existing
		loaded        []ocispec.Descriptor
		opts          MergeOptions
		want          []ocispec.Descriptor
		wantUnchanged bool
		wantErr       error
	}{
		{
			name:   "absent tag",
			loaded: list(amd64A, att("X", "A")),
			want:   list(amd64A, att("X", "A")),
		},
		{
			name:     "oci index: existing entries first, then loaded",
			existing: ociIndex(amd64A, att("X", "A")),
			loaded:   list(arm64B, att("Y", "B")),
			want:     list(amd64A, att("X", "A"), arm64B, att("Y", "B")),
		},
		{
			name:     "oci index: existing annotations are carried",
			existing: ociIndex(withAnnotations(amd64A, map[string]string{"k": "v"})),
			loaded:   list(arm64B),
			want:     list(withAnnotations(amd64A, map[string]string{"k": "v"}), arm64B),
		},
		{
			name:     "docker list: rewritten even when nothing changed",
			existing: dockerList(amd64A, arm64B),
			loaded:   list(img("B", "linux/arm64/v8")),
			want: list(
				func() ocispec.Descriptor { d := amd64A; d.MediaType = MediaTypeDockerManifest; return d }(),
				arm64B),
		},
		{
			name: "docker list: annotations are not carried",
			existing: &Existing{MediaType: MediaTypeDockerManifestList, Manifests: list(
				withAnnotations(img("C", "linux/amd64"), map[string]string{"k": "v"}))},
			loaded: list(arm64B),
			want:   list(img("C", "linux/amd64"), arm64B),
		},
		{
			name:     "single manifest: replaced by an index",
			existing: &Existing{MediaType: MediaTypeDockerManifest},
			loaded:   list(amd64A),
			want:     list(amd64A),
		},
		{
			name:     "entry without platform: kept, never matched",
			existing: ociIndex(noPlatform("A"), img("C", "linux/amd64")),
			loaded:   list(amd64A),
			want:     list(noPlatform("A"), amd64A),
		},
		{
			name:     "overwrite: existing ignored",
			existing: ociIndex(img("C", "linux/amd64"), arm64B),
			loaded:   list(amd64A),
			opts:     overwrite,
			want:     list(amd64A),
		},
		{
			name:     "same platform: replaced and moved to the end",
			existing: ociIndex(img("C", "linux/amd64"), arm64B),
			loaded:   list(amd64A),
			want:     list(arm64B, amd64A),
		},
		{
			name:     "present arm64 replaced by arm64/v8",
			existing: ociIndex(img("C", "linux/arm64"), amd64A),
			loaded:   list(arm64B),
			want:     list(amd64A, arm64B),
		},
		{
			name:     "present arm64/v8 replaced by arm64",
			existing: ociIndex(arm64B, amd64A),
			loaded:   list(img("C", "linux/arm64")),
			want:     list(amd64A, img("C", "linux/arm64")),
		},
		{
			name:     "arm variants differ: both kept",
			existing: ociIndex(img("C", "linux/arm/v7")),
			loaded:   list(img("D", "linux/arm/v6")),
			want:     list(img("C", "linux/arm/v7"), img("D", "linux/arm/v6")),
		},
		{
			name:     "os version differs: both kept",
			existing: ociIndex(withOSVersion(img("C", "windows/amd64"), "10.0.17763.1")),
			loaded:   list(withOSVersion(img("D", "windows/amd64"), "10.0.20348.1")),
			want: list(withOSVersion(img("C", "windows/amd64"), "10.0.17763.1"),
				withOSVersion(img("D", "windows/amd64"), "10.0.20348.1")),
		},
		{
			name:     "same attestation annotations: replaced",
			existing: ociIndex(amd64A, att("X", "A"), arm64B),
			loaded:   list(amd64A, att("Y", "A")),
			want:     list(arm64B, amd64A, att("Y", "A")),
		},
		{
			name:          "same digest and platform: replaced, still unchanged",
			existing:      ociIndex(amd64A, arm64B),
			loaded:        list(img("A", "linux/amd64")),
			want:          list(arm64B, amd64A),
			wantUnchanged: true,
		},
		{
			name:     "same digest, other platform: both kept",
			existing: ociIndex(amd64A),
			loaded:   list(img("A", "linux/386")),
			want:     list(amd64A, img("A", "linux/386")),
		},
		{
			name:     "attestation of a replaced platform: dropped",
			existing: ociIndex(amd64A, att("X", "A"), arm64B, att("Y", "B")),
			loaded:   list(img("C", "linux/amd64")),
			want:     list(arm64B, att("Y", "B"), img("C", "linux/amd64")),
		},
		{
			name: "attestation-like entries without a subject: dropped",
			existing: ociIndex(amd64A,
				img("U", "unknown/amd64"),
				img("V", "linux/unknown"),
				withAnnotations(img("W", "unknown/unknown"), map[string]string{AnnotationReferenceDigest: dg("A").String()})),
			loaded: list(arm64B),
			want: list(amd64A,
				withAnnotations(img("W", "unknown/unknown"), map[string]string{AnnotationReferenceDigest: dg("A").String()}),
				arm64B),
		},
		{
			name:          "unchanged",
			existing:      ociIndex(amd64A, att("X", "A"), arm64B, att("Y", "B")),
			loaded:        list(arm64B, att("Y", "B")),
			want:          list(amd64A, att("X", "A"), arm64B, att("Y", "B")),
			wantUnchanged: true,
		},
		{
			name:          "unchanged: nothing loaded",
			existing:      ociIndex(amd64A),
			want:          list(amd64A),
			wantUnchanged: true,
		},
		{
			name:     "changed: overwrite",
			existing: ociIndex(amd64A, arm64B),
			loaded:   list(amd64A, arm64B),
			opts:     overwrite,
			want:     list(amd64A, arm64B),
		},
		{
			name:     "changed: index had no entry",
			existing: ociIndex(),
			loaded:   list(amd64A),
			want:     list(amd64A),
		},
		{
			name:     "changed: digest differs",
			existing: ociIndex(amd64A),
			loaded:   list(img("C", "linux/amd64")),
			want:     list(img("C", "linux/amd64")),
		},
		{
			name:     "changed: variant differs (no arm64 leniency)",
			existing: ociIndex(img("B", "linux/arm64")),
			loaded:   list(arm64B),
			want:     list(arm64B),
		},
		{
			name:     "changed: annotations differ",
			existing: ociIndex(withAnnotations(amd64A, map[string]string{"k": "v"})),
			loaded:   list(amd64A),
			want:     list(amd64A),
		},
		{
			name:     "changed: docker list",
			existing: dockerList(img("A", "linux/amd64")),
			loaded:   list(dockerList(img("A", "linux/amd64")).Manifests[0]),
			want:     dockerList(img("A", "linux/amd64")).Manifests,
		},
		{
			name:     "changed: entry count differs",
			existing: ociIndex(amd64A, img("A", "linux/amd64")),
			loaded:   list(amd64A),
			want:     list(amd64A),
		},
		{
			name:    "empty: nothing at all",
			wantErr: ErrEmpty,
		},
		{
			name:     "empty: overwrite and nothing loaded",
			existing: ociIndex(amd64A),
			opts:     overwrite,
			wantErr:  ErrEmpty,
		},
		{
			name:     "empty: single manifest and nothing loaded",
			existing: &Existing{MediaType: ocispec.MediaTypeImageManifest},
			wantErr:  ErrEmpty,
		},
		{
			name:     "empty: only orphan attestations",
			existing: dockerList(img("X", "unknown/unknown")),
			wantErr:  ErrEmpty,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Merge(tt.existing, tt.loaded, tt.opts)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Merge() error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Merge() error = %v", err)
			}
			if res.Unchanged != tt.wantUnchanged {
				t.Errorf("Merge() Unchanged = %v, want %v", res.Unchanged, tt.wantUnchanged)
			}
			if !reflect.DeepEqual(res.Index.Manifests, tt.want) {
				t.Errorf("Merge() manifests:\ngot  %s\nwant %s", names(res.Index.Manifests), names(tt.want))
			}
			if res.Index.SchemaVersion != 2 || res.Index.MediaType != ocispec.MediaTypeImageIndex {
				t.Errorf("Merge() index header = %d %q", res.Index.SchemaVersion, res.Index.MediaType)
			}
			body, err := marshalIndex(res.Index)
			if err != nil {
				t.Fatal(err)
			}
			if string(body) != string(res.Bytes) {
				t.Errorf("Merge() Bytes differ from marshalIndex(Index)")
			}
		})
	}
}

func withOSVersion(d ocispec.Descriptor, v string) ocispec.Descriptor {
	d.Platform.OSVersion = v
	return d
}

// names renders entries for failure messages.
func names(entries []ocispec.Descriptor) string {
	var b strings.Builder
	for _, e := range entries {
		b.WriteString(e.Digest.Encoded()[:8])
		if e.Platform != nil {
			b.WriteString("(" + e.Platform.OS + "/" + e.Platform.Architecture + "/" + e.Platform.Variant + ")")
		}
		if len(e.Annotations) > 0 {
			b.WriteString("+a")
		}
		b.WriteString(" ")
	}
	return b.String()
}

func TestMergeDoesNotAlias(t *testing.T) {
	existing := ociIndex(withAnnotations(img("A", "linux/amd64"), map[string]string{"k": "v"}))
	loaded := list(img("B", "linux/arm64/v8"))
	res, err := Merge(existing, loaded, DefaultMergeOptions())
	if err != nil {
		t.Fatal(err)
	}
	res.Index.Manifests[0].Annotations["k"] = "changed"
	res.Index.Manifests[1].Platform.Variant = "changed"
	if existing.Manifests[0].Annotations["k"] != "v" || loaded[0].Platform.Variant != "v8" {
		t.Error("Merge() result aliases its inputs")
	}
}

func TestMergeLoadedWithoutPlatform(t *testing.T) {
	res, err := Merge(nil, list(noPlatform("A")), DefaultMergeOptions())
	if err != nil {
		t.Fatal(err)
	}
	if p := res.Index.Manifests[0].Platform; p == nil || !reflect.DeepEqual(*p, ocispec.Platform{}) {
		t.Errorf("loaded entry platform = %+v, want empty", p)
	}
}

func TestMarshalIndex(t *testing.T) {
	index := ocispec.Index{
		MediaType:    "ignored",
		ArtifactType: "ignored",
		Annotations:  map[string]string{"ignored": "yes"},
		Subject:      &ocispec.Descriptor{Digest: dg("S")},
		Manifests: []ocispec.Descriptor{
			{
				MediaType: MediaTypeDockerManifest,
				Digest:    "sha256:1111111111111111111111111111111111111111111111111111111111111111",
				Size:      10,
				URLs:      []string{"https://example.com"},
				Platform: &ocispec.Platform{
					Architecture: "amd64", OS: "windows", OSVersion: "10.0.17763.5576",
					OSFeatures: []string{"win32k"}, Variant: "v3",
				},
				ArtifactType: "ignored",
			},
			{
				MediaType:   ocispec.MediaTypeImageManifest,
				Digest:      "sha256:2222222222222222222222222222222222222222222222222222222222222222",
				Size:        20,
				Annotations: map[string]string{"b": "<&>", "a": "1"},
				Platform:    &ocispec.Platform{Architecture: "unknown", OS: "unknown"},
			},
			{
				MediaType:   ocispec.MediaTypeImageManifest,
				Digest:      "sha256:3333333333333333333333333333333333333333333333333333333333333333",
				Size:        30,
				Annotations: map[string]string{},
			},
		},
	}
	want := `{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {
      "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
      "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
      "size": 10,
      "platform": {
        "architecture": "amd64",
        "os": "windows",
        "os.version": "10.0.17763.5576",
        "os.features": [
          "win32k"
        ],
        "variant": "v3"
      }
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:2222222222222222222222222222222222222222222222222222222222222222",
      "size": 20,
      "annotations": {
        "a": "1",
        "b": "\u003c\u0026\u003e"
      },
      "platform": {
        "architecture": "unknown",
        "os": "unknown"
      }
    },
    {
      "mediaType": "application/vnd.oci.image.manifest.v1+json",
      "digest": "sha256:3333333333333333333333333333333333333333333333333333333333333333",
      "size": 30
    }
  ]
}`
	got, err := marshalIndex(index)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("marshalIndex():\n%s\nwant:\n%s", got, want)
	}

	empty, err := marshalIndex(ocispec.Index{})
	if err != nil {
		t.Fatal(err)
	}
	if want := "{\n  \"schemaVersion\": 2,\n  \"mediaType\": \"application/vnd.oci.image.index.v1+json\",\n  \"manifests\": []\n}"; string(empty) != want {
		t.Errorf("marshalIndex(empty) = %s", empty)
	}
}

func TestIsSLSAEntry(t *testing.T) {
	ann := map[string]string{AnnotationReferenceDigest: dg("A").String(), AnnotationReferenceType: "attestation-manifest"}
	tests := []struct {
		name string
		desc ocispec.Descriptor
		want bool
	}{
		{"attestation", att("X", "A"), true},
		{"no platform", withAnnotations(noPlatform("X"), ann), false},
		{"arch known", withAnnotations(img("X", "unknown/amd64"), ann), false},
		{"os known", withAnnotations(img("X", "linux/unknown"), ann), false},
		{"no reference type", withAnnotations(img("X", "unknown/unknown"), map[string]string{AnnotationReferenceDigest: "d"}), false},
		{"empty reference digest", withAnnotations(img("X", "unknown/unknown"), map[string]string{AnnotationReferenceDigest: "", AnnotationReferenceType: "t"}), false},
		{"no annotations", img("X", "unknown/unknown"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := isSLSAEntry(tt.desc); got != tt.want {
				t.Errorf("isSLSAEntry() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestIsAttestation(t *testing.T) {
	unknown := ocispec.Platform{Architecture: "unknown", OS: "unknown"}
	typed := map[string]string{AnnotationReferenceType: AttestationManifest}
	tests := []struct {
		name        string
		platform    ocispec.Platform
		annotations map[string]string
		want        bool
	}{
		{"buildkit attestation", unknown, map[string]string{AnnotationReferenceType: AttestationManifest, AnnotationReferenceDigest: dg("A").String()}, true},
		{"type only", unknown, typed, true},
		{"other reference type", unknown, map[string]string{AnnotationReferenceType: "signature", AnnotationReferenceDigest: dg("A").String()}, false},
		{"digest only", unknown, map[string]string{AnnotationReferenceDigest: dg("A").String()}, false},
		{"no platform", ocispec.Platform{}, typed, false},
		{"arch known", ocispec.Platform{Architecture: "amd64", OS: "unknown"}, typed, false},
		{"os known", ocispec.Platform{Architecture: "unknown", OS: "linux"}, typed, false},
		{"no annotations", unknown, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsAttestation(tt.platform, tt.annotations); got != tt.want {
				t.Errorf("IsAttestation() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDescriptorHelper(t *testing.T) {
	features := []string{"f"}
	ann := map[string]string{"k": "v"}
	d := descriptor(MediaTypeDockerManifest, dg("A"), 5, ocispec.Platform{Architecture: "amd64", OS: "linux", OSFeatures: features}, ann)
	features[0], ann["k"] = "changed", "changed"
	if d.Platform.OSFeatures[0] != "f" || d.Annotations["k"] != "v" {
		t.Error("descriptor() aliases its arguments")
	}
	if d.MediaType != MediaTypeDockerManifest || d.Digest != dg("A") || d.Size != 5 {
		t.Errorf("descriptor() = %+v", d)
	}
	if e := descriptor(ocispec.MediaTypeImageManifest, dg("A"), 5, ocispec.Platform{}, map[string]string{}); e.Platform == nil || e.Annotations != nil {
		t.Errorf("descriptor() with empty platform and annotations = %+v", e)
	}
}

func TestHasDigest(t *testing.T) {
	e := ociIndex(img("A", "linux/amd64"))
	if !e.HasDigest(dg("A")) || e.HasDigest(dg("B")) {
		t.Error("HasDigest() wrong on an index")
	}
	var none *Existing
	if none.HasDigest(dg("A")) {
		t.Error("HasDigest() true on nil")
	}
}

// marshalIndex serialises an index as Hangar does: 2-space indented JSON with
// schemaVersion 2, the OCI index media type and manifests, no trailing
// newline. Index annotations, subject and artifactType are not written, nor
// are urls, data and artifactType of the entries; an entry keeps its
// platform (nil only for an existing entry that had none, see ParseExisting)
// and its annotations when non-empty.
//
// References: hangar-load.md section 2.10 ("Push").
func marshalIndex(index ocispec.Index) ([]byte, error) {
	entries := make([]ocispec.Descriptor, 0, len(index.Manifests))
	for _, d := range index.Manifests {
		entries = append(entries, normalize(d, false))
	}
	return marshal(newIndex(entries))
}

// descriptor returns the index entry of a loaded manifest as the loader
// makes it, normalised as Merge normalises it.
func descriptor(mediaType string, dgst digest.Digest, size int64, platform ocispec.Platform, annotations map[string]string) ocispec.Descriptor {
	return normalize(ocispec.Descriptor{MediaType: mediaType, Digest: dgst, Size: size, Annotations: annotations, Platform: &platform}, true)
}
