package loader

import (
	"crypto/sha256"
	"hash/maphash"
	"math"
	"slices"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestBlobSizes(t *testing.T) {
	tests := []struct {
		name string
		size int64
	}{
		{"empty", 0},
		{"small", 1234},
		{"largest of 4 bytes", math.MaxUint32},
		{"4 GiB", math.MaxUint32 + 1},
		{"a terabyte", 1 << 40},
	}
	sizes := newBlobSizes(len(tests))
	for i, tt := range tests {
		sizes.set(int32(i), tt.size)
	}
	sizes.set(0, 5<<30) // a size set again replaces the first,
	sizes.set(0, 0)     // whichever half held it
	for i, tt := range tests {
		if got := sizes.get(int32(i)); got != tt.size {
			t.Errorf("%s: get = %d, want %d", tt.name, got, tt.size)
		}
	}
}

// TestImageLookupCollision checks the planner's image lookup where two
// destinations hash alike: a 64-bit collision cannot be made to order, so
// the test files an image under the other's hash.
func TestImageLookupCollision(t *testing.T) {
	p := &planner{byRef: map[uint64]*Image{}, collided: map[imageKey]*Image{}, seed: maphash.MakeSeed()}
	a := &Image{Repository: "library/a", Tag: "v1"}
	b := &Image{Repository: "library/b", Tag: "v1"}
	p.store(a)
	p.byRef[maphash.Comparable(p.seed, b.key())] = a // b's hash is a's
	if got := p.lookup(&Image{Repository: "library/b", Tag: "v1"}); got != nil {
		t.Fatalf("lookup of b before it is stored = %+v, want nil", got)
	}
	p.store(b)
	for _, want := range []*Image{a, b} {
		if got := p.lookup(&Image{Repository: want.Repository, Tag: want.Tag}); got != want {
			t.Errorf("lookup(%s) = %p, want %p", want.Repository, got, want)
		}
	}
	if got := p.lookup(&Image{Repository: "library/a", Tag: "v2"}); got != nil {
		t.Errorf("lookup of another tag = %+v, want nil", got)
	}
}

// TestPackRoundTrip checks that an image's packed manifests and steps
// unpack to what was packed: every field, the subject of an attestation as
// the unpacked manifest it names, steps naming the image's manifests (or
// manifests of their own), and blob lists shared as they were.
func TestPackRoundTrip(t *testing.T) {
	amd := &indexEntry{platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}}
	annotated := &indexEntry{platform: amd.platform, annotations: map[string]string{"a": "b"}}
	blobs := []int32{1, 2, 70000}
	m0 := &Manifest{BlobIDs: blobs, mediaType: mediaTypeOCI, size: 1234, tag: "1-amd64", sum: sha256.Sum256([]byte("0")), entry: amd}
	m1 := &Manifest{BlobIDs: []int32{4}, Attestation: true, subjectTag: true, size: 99, sum: sha256.Sum256([]byte("1")), entry: amd, subject: m0}
	m2 := &Manifest{mediaType: mediaTypeDocker, size: 1 << 20, sum: sha256.Sum256([]byte("2")), entry: annotated}
	own := &Manifest{BlobIDs: blobs, mediaType: mediaTypeOCI, size: 1234, sum: m0.sum, entry: annotated, subject: m2}
	tests := []struct {
		name      string
		manifests []*Manifest
		steps     [][]*Manifest
	}{
		{"none", nil, nil},
		{"one step", []*Manifest{m0, m1, m2}, nil},
		{"steps", []*Manifest{m0, m1, m2}, [][]*Manifest{{m0, m1}, {m2, own}}},
	}
	b := newTableBuilder(&planTables{host: "reg"})
	images := make([]*Image, len(tests))
	for i, tt := range tests {
		images[i] = &Image{planning: &planning{manifests: tt.manifests, steps: tt.steps}, tables: b.t}
		images[i].pack(b)
	}
	b.finish()
	same := func(t *testing.T, got, want *Manifest, gotAll, wantAll []*Manifest) {
		t.Helper()
		if got.sum != want.sum || got.size != want.size || got.mediaType != want.mediaType || got.Attestation != want.Attestation ||
			got.subjectTag != want.subjectTag || got.tag != want.tag || got.entry != want.entry || !slices.Equal(got.BlobIDs, want.BlobIDs) {
			t.Errorf("unpacked %+v, want %+v", got, want)
		}
		if i := slices.Index(wantAll, want.subject); i >= 0 && got.subject != gotAll[i] || want.subject == nil && got.subject != nil {
			t.Errorf("the subject of %x unpacked as %p, want the image's manifest %d", want.sum[:4], got.subject, i)
		}
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			img := images[i]
			if img.planning != nil {
				t.Fatal("the image still holds its Manifests after pack")
			}
			manifests, steps := img.unpack()
			if len(manifests) != len(tt.manifests) || len(steps) != len(tt.steps) || (steps == nil) != (tt.steps == nil) {
				t.Fatalf("unpacked %d manifests and %d steps (nil %t), want %d and %d", len(manifests), len(steps), steps == nil, len(tt.manifests), len(tt.steps))
			}
			for j, m := range manifests {
				same(t, m, tt.manifests[j], manifests, tt.manifests)
			}
			for j, step := range steps {
				if len(step) != len(tt.steps[j]) {
					t.Fatalf("step %d: %d manifests, want %d", j, len(step), len(tt.steps[j]))
				}
				for k, m := range step {
					same(t, m, tt.steps[j][k], manifests, tt.manifests)
					if at := slices.Index(tt.manifests, tt.steps[j][k]); at >= 0 && m != manifests[at] || at < 0 && slices.Contains(manifests, m) {
						t.Errorf("step %d manifest %d: unpacked as %p, want the image's manifest %d", j, k, m, at)
					}
				}
			}
			if len(manifests) > 0 && &manifests[0].BlobIDs[0] != &manifestsOf(t, images[1])[0].BlobIDs[0] {
				t.Error("two images' unpacked manifests of one blob list do not share it")
			}
		})
	}
}

// manifestsOf returns the unpacked manifests of img.
func manifestsOf(t *testing.T, img *Image) []*Manifest {
	t.Helper()
	manifests, _ := img.unpack()
	return manifests
}
