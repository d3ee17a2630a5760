package loader

import (
	"hash/maphash"
	"math"
	"testing"
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
