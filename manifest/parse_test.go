package manifest

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	testOCIIndex = `{
  "schemaVersion": 2,
  "mediaType": "application/vnd.oci.image.index.v1+json",
  "manifests": [
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:aaaa", "size": 1,
     "urls": ["https://example.com"], "artifactType": "x/y",
     "platform": {"architecture": "arm64", "os": "linux", "variant": "v8", "os.features": ["a", "b"]}},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:bbbb", "size": 2,
     "annotations": {"vnd.docker.reference.digest": "sha256:aaaa", "vnd.docker.reference.type": "attestation-manifest"},
     "platform": {"architecture": "unknown", "os": "unknown"}},
    {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:cccc", "size": 3}
  ],
  "annotations": {"ignored": "yes"}
}`
	testDockerList = `{
  "schemaVersion": 2,
  "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
  "manifests": [
    {"mediaType": "application/vnd.docker.distribution.manifest.v2+json", "digest": "sha256:aaaa", "size": 1,
     "annotations": {"k": "v"},
     "platform": {"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.5576", "features": ["sse4"]}}
  ]
}`
	testOCIManifest    = `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:cccc","size":2},"layers":[]}`
	testDockerManifest = `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:cccc","size":2},"layers":[]}`
)

func TestParseExisting(t *testing.T) {
	ociEntries := []ocispec.Descriptor{
		{MediaType: ocispec.MediaTypeImageManifest, Digest: "sha256:aaaa", Size: 1,
			Platform: &ocispec.Platform{Architecture: "arm64", OS: "linux", Variant: "v8", OSFeatures: []string{"a", "b"}}},
		{MediaType: ocispec.MediaTypeImageManifest, Digest: "sha256:bbbb", Size: 2,
			Annotations: map[string]string{AnnotationReferenceDigest: "sha256:aaaa", AnnotationReferenceType: "attestation-manifest"},
			Platform:    &ocispec.Platform{Architecture: "unknown", OS: "unknown"}},
		{MediaType: ocispec.MediaTypeImageManifest, Digest: "sha256:cccc", Size: 3},
	}
	dockerEntries := []ocispec.Descriptor{
		{MediaType: MediaTypeDockerManifest, Digest: "sha256:aaaa", Size: 1,
			Platform: &ocispec.Platform{Architecture: "amd64", OS: "windows", OSVersion: "10.0.17763.5576"}},
	}
	tests := []struct {
		name      string
		mediaType string
		body      string
		want      *Existing
		wantErr   error
	}{
		{"oci index", ocispec.MediaTypeImageIndex, testOCIIndex,
			&Existing{MediaType: ocispec.MediaTypeImageIndex, Manifests: ociEntries}, nil},
		{"oci index, media type from body", "", testOCIIndex,
			&Existing{MediaType: ocispec.MediaTypeImageIndex, Manifests: ociEntries}, nil},
		{"oci index without media type", "", `{"schemaVersion":2,"manifests":[]}`,
			&Existing{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}, nil},
		{"media type with parameters", " Application/vnd.oci.image.index.v1+json; charset=utf-8", testOCIIndex,
			&Existing{MediaType: ocispec.MediaTypeImageIndex, Manifests: ociEntries}, nil},
		{"header wins over body", ocispec.MediaTypeImageIndex, testDockerList,
			&Existing{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{
				withAnnotations(dockerEntries[0], map[string]string{"k": "v"})}}, nil},
		{"docker list drops annotations", MediaTypeDockerManifestList, testDockerList,
			&Existing{MediaType: MediaTypeDockerManifestList, Manifests: dockerEntries}, nil},
		{"docker list, media type from body", "", testDockerList,
			&Existing{MediaType: MediaTypeDockerManifestList, Manifests: dockerEntries}, nil},
		{"oci manifest", ocispec.MediaTypeImageManifest, testOCIManifest,
			&Existing{MediaType: ocispec.MediaTypeImageManifest}, nil},
		{"oci manifest without media type", "", `{"schemaVersion":2,"config":{}}`,
			&Existing{MediaType: ocispec.MediaTypeImageManifest}, nil},
		{"docker manifest", "", testDockerManifest,
			&Existing{MediaType: MediaTypeDockerManifest}, nil},
		{"docker schema 1", MediaTypeDockerManifestSchema1Signed, `{"schemaVersion":1,"name":"a","tag":"b"}`,
			&Existing{MediaType: MediaTypeDockerManifestSchema1Signed}, nil},
		{"single manifest ignores manifests", ocispec.MediaTypeImageManifest, testOCIIndex,
			&Existing{MediaType: ocispec.MediaTypeImageManifest}, nil},
		{"unknown media type", "application/json", testOCIIndex, nil, ErrUnsupportedMediaType},
		{"unknown media type in body", "", `{"mediaType":"text/plain"}`, nil, ErrUnsupportedMediaType},
		{"no media type at all", "", `{"schemaVersion":2}`, nil, ErrUnsupportedMediaType},
		{"bad json", ocispec.MediaTypeImageIndex, `{"manifests": [`, nil, ErrInvalidManifest},
		{"wrong field type", ocispec.MediaTypeImageIndex, `{"manifests": [{"size": "big"}]}`, nil, ErrInvalidManifest},
		{"null", ocispec.MediaTypeImageIndex, `null`, nil, ErrInvalidManifest},
		{"array", ocispec.MediaTypeImageIndex, `[]`, nil, ErrInvalidManifest},
		{"empty", "", ``, nil, ErrInvalidManifest},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseExisting(tt.mediaType, []byte(tt.body))
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("ParseExisting() error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseExisting() error = %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				g, _ := json.Marshal(got)
				w, _ := json.Marshal(tt.want)
				t.Errorf("ParseExisting():\ngot  %s\nwant %s", g, w)
			}
		})
	}
}

// TestParseExistingNoPlatformRoundTrip checks that an entry without a
// platform survives a merge unchanged and is written without one.
func TestParseExistingNoPlatformRoundTrip(t *testing.T) {
	e, err := ParseExisting("", []byte(testOCIIndex))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Merge(e, nil, DefaultMergeOptions())
	if err != nil {
		t.Fatal(err)
	}
	var back struct {
		Manifests []map[string]json.RawMessage `json:"manifests"`
	}
	if err := json.Unmarshal(res.Bytes, &back); err != nil {
		t.Fatal(err)
	}
	if len(back.Manifests) != 3 {
		t.Fatalf("got %d entries, want 3", len(back.Manifests))
	}
	if _, ok := back.Manifests[2]["platform"]; ok {
		t.Errorf("entry without platform was written with one: %s", res.Bytes)
	}
	for _, k := range []string{"urls", "artifactType"} {
		if _, ok := back.Manifests[0][k]; ok {
			t.Errorf("%s was kept: %s", k, res.Bytes)
		}
	}
}

func FuzzParseExisting(f *testing.F) {
	for _, mt := range []string{"", ocispec.MediaTypeImageIndex, MediaTypeDockerManifestList, ocispec.MediaTypeImageManifest} {
		for _, body := range []string{testOCIIndex, testDockerList, testOCIManifest, testDockerManifest,
			`{}`, `null`, `{"manifests":[null,{}]}`, `{"manifests":[{"platform":null,"annotations":null}]}`} {
			f.Add(mt, []byte(body))
		}
	}
	f.Fuzz(func(t *testing.T, mediaType string, body []byte) {
		e, err := ParseExisting(mediaType, body)
		if err != nil {
			if !errors.Is(err, ErrInvalidManifest) && !errors.Is(err, ErrUnsupportedMediaType) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		for _, opts := range []MergeOptions{{}, {Overwrite: true}} {
			loaded := []ocispec.Descriptor{att("X", "A"), img("A", "linux/arm64")}
			res, err := Merge(e, loaded, opts)
			if err != nil {
				t.Fatalf("Merge() error = %v", err)
			}
			if _, err := marshalIndex(res.Index); err != nil {
				t.Fatal(err)
			}
			_, _ = Merge(e, nil, opts)
		}
		for _, m := range e.Manifests {
			_ = PlatformTag("t", ocispec.Platform{}, m)
			_ = isSLSAEntry(m)
		}
	})
}
