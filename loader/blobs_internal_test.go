package loader

import (
	"context"
	"testing"
)

// TestBlobSchedulerForgetsReleasedRepositories checks that the blobs moved
// into a repository are remembered while an expected image of it is still
// loading, and forgotten once the last one is released, while the blob's
// first repository (where others mount it from) is kept.
func TestBlobSchedulerForgetsReleasedRepositories(t *testing.T) {
	s := newBlobScheduler(context.Background(), nil, 4, []string{"a", "b", "c"}, 1, false)
	number := map[string]int32{"a": 0, "b": 1, "c": 2}
	s.expect(number["a"])
	s.expect(number["a"])
	s.expect(number["b"])
	moved := func(repo string, blob int32) {
		s.mu.Lock()
		key := makePair(number[repo], blob)
		task, leads := &blobTask{done: make(chan struct{})}, s.first[blob] == 0
		if leads {
			s.leaders[blob] = task
		}
		s.mu.Unlock()
		s.finish(key, task, leads)
	}
	known := func(repo string) int {
		s.mu.Lock()
		defer s.mu.Unlock()
		return len(s.present[number[repo]])
	}
	moved("a", 0)
	moved("a", 1)
	moved("b", 1)
	steps := []struct {
		release string
		a, b    int
	}{
		{"", 2, 1},
		{"a", 2, 1}, // one image of a is still expected
		{"a", 0, 1},
		{"b", 0, 0},
		{"b", 0, 0}, // released once too often: nothing happens
		{"c", 0, 0}, // never expected
	}
	for _, st := range steps {
		if st.release != "" {
			s.release(number[st.release])
		}
		if a, b := known("a"), known("b"); a != st.a || b != st.b {
			t.Errorf("after releasing %q: a knows %d blobs, b %d; want %d and %d", st.release, a, b, st.a, st.b)
		}
	}
	if s.first[0] != number["a"]+1 || s.first[1] != number["a"]+1 {
		t.Errorf("first repositories %v, want a (%d) for blobs 0 and 1", s.first[:2], number["a"]+1)
	}
	if len(s.present) != 0 {
		t.Errorf("%d repositories still have sets, want none", len(s.present))
	}
}
