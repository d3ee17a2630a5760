package loader_test

import (
	"path/filepath"
	"runtime"
	"testing"

	"github.com/cnrancher/docker-hangar/archive"
	"github.com/cnrancher/docker-hangar/archive/archivetest"
	"github.com/cnrancher/docker-hangar/loader"
)

// heapAt is a Source that measures the live heap when its last entry has
// been planned: the plan with the planner's caches, the peak of planning.
type heapAt struct {
	*archive.Reader
	entries, seen int
	live          uint64
}

func (s *heapAt) Entries(fn func(archive.Image) error) error {
	return s.Reader.Entries(func(e archive.Image) error {
		err := fn(e)
		if s.seen++; s.seen == s.entries {
			s.live = liveHeap()
		}
		return err
	})
}

// liveHeap returns the live heap: after two collections, the second
// freeing what sync.Pools let go in the first.
func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestPlanMemory bounds what planning keeps of each image of a generated
// archive like Rancher's (two platforms with attestations, shared layers):
// the plan for the load, and the peak of planning, with the planner's
// caches. The bounds are about 1.3 times what was measured (some 600 and
// 1200 bytes an image); before the plan packed its manifests (Image.pack)
// they were 900 and 1360, and with the planner's caches in maps by blob
// number the peak was 1760.
func TestPlanMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes an archive of 2000 images")
	}
	const images = 2000
	path := filepath.Join(t.TempDir(), "many.zip")
	set := archivetest.Synthetic(archivetest.SyntheticOptions{Images: images, Projects: 100, Size: 4 << 20})
	if _, err := archivetest.Write(path, set, archivetest.Options{}); err != nil {
		t.Fatal(err)
	}
	entries := len(set)
	set = nil // not to be collected between the measurements
	ar, err := archive.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ar.Close()
	opts := loader.DefaultOptions()
	opts.Destination = "127.0.0.1:5000"
	src := &heapAt{Reader: ar, entries: entries}
	base := liveHeap()
	plan, err := loader.NewPlan(src, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	kept := liveHeap()
	if len(plan.Images) < images {
		t.Fatalf("planned %d images, want at least %d", len(plan.Images), images)
	}
	perImage := func(n uint64) float64 { return float64(n) / float64(len(plan.Images)) }
	planBytes, peak := perImage(kept-base), perImage(src.live-base)
	t.Logf("per image: plan %.0f bytes, planning's peak %.0f", planBytes, peak)
	if planBytes > 800 {
		t.Errorf("the plan keeps %.0f bytes an image, want at most 800", planBytes)
	}
	if peak > 1550 {
		t.Errorf("planning holds %.0f bytes an image at its peak, want at most 1550", peak)
	}
	runtime.KeepAlive(plan)
}
