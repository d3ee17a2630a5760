package plugin

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestGCTarget(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		live uint64
		want int
	}{
		{0, gcPercent},                         // nothing measured yet
		{1 * mib, gcFloorPercent},              // goal 8 MiB, the runtime's minimum
		{4 * mib, 100},                         // goal 8 MiB
		{5 * mib, 60},                          // goal 8 MiB
		{gcFloor * 2 / 3, 50},                  // 1.5x live is the floor
		{6 * mib, gcPercent},                   // 1.5x live is above the floor
		{1 << 30, gcPercent},                   // a large plan: live + 50%
		{gcFloor, gcPercent},                   // at the floor
		{gcFloor/2 + 1, 99},                    // just over half the floor
		{uint64(gcFloor) / 8, gcFloorPercent},  // an eighth
		{uint64(gcFloor) / 16, gcFloorPercent}, // a sixteenth
	}
	for _, tt := range tests {
		got := gcTarget(tt.live)
		if got != tt.want {
			t.Errorf("gcTarget(%d) = %d, want %d", tt.live, got, tt.want)
		}
		// The next goal, as the runtime sets it (the larger of 4 MiB
		// scaled by GOGC and live grown by GOGC), is the floor or 1.5x
		// live, whichever is larger (within the rounding down to a
		// whole percent), and never more: a goal of several times the
		// floor for a tiny heap was the defect.
		if tt.live == 0 {
			continue
		}
		goal := max(float64(4<<20)*float64(got)/100, float64(tt.live)*float64(100+got)/100)
		want := max(float64(gcFloor), 1.5*float64(tt.live))
		if goal < 0.99*want || goal > 1.01*want {
			t.Errorf("gcTarget(%d) = %d: goal %.0f, want %.0f", tt.live, got, goal, want)
		}
	}
}

// currentGCPercent reads the collector's target (SetGCPercent returns the
// previous one).
func currentGCPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// TestTuneGCFollowsTheLiveHeap checks the tuner in this process: after a
// collection with little live, the target is raised above gcPercent; with
// more than the floor live, it is gcPercent again; and it keeps retuning
// cycle after cycle.
func TestTuneGCFollowsTheLiveHeap(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	tuneGC()
	waitFor := func(what string, ok func(int) bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			runtime.GC()
			time.Sleep(10 * time.Millisecond) // cleanups run after the cycle
			if p := currentGCPercent(); ok(p) {
				return
			} else if time.Now().After(deadline) {
				t.Fatalf("%s: GOGC is %d", what, p)
			}
		}
	}
	for round := range 2 {
		waitFor("small live heap", func(p int) bool { return p > gcPercent })
		live := make([][]byte, 0, 4)
		for range 4 {
			live = append(live, make([]byte, gcFloor/2))
		}
		waitFor("live heap twice the floor", func(p int) bool { return p == gcPercent })
		runtime.KeepAlive(live)
		live = nil
		t.Logf("round %d: retuned both ways", round)
	}
}
