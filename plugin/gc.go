package plugin

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// gcPercent is the garbage collector's target (GOGC overrides it): the
// heap may grow to 1.5 times what is live. Blobs stream, so what is live
// is the plan and the requests in flight; a soft memory limit instead
// would make the collector run without end once a large plan passes it.
const gcPercent = 50

// gcFloor is the heap the collector lets grow before it runs while what is
// live is small. The runtime's own floor is 4 MiB scaled by GOGC, 2 MiB at
// gcPercent: a warm re-load of 30 images, which makes a few MiB of garbage
// in 30 ms, was collected five times and spent a quarter of its CPU on it.
const gcFloor = 8 << 20

// tuneGC sets the collector's target to gcPercent with a floor of gcFloor,
// and keeps it so: after each collection, the target is raised for as
// long as 1.5 times the live heap is below gcFloor. Calls after the first
// do nothing.
func tuneGC() { gcTuner.Do(startGCTuner) }

var gcTuner sync.Once

func startGCTuner() {
	// Before the first collection the goal is 4 MiB * GOGC / 100.
	debug.SetGCPercent(gcFloorPercent)
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var arm func()
	arm = func() {
		runtime.AddCleanup(&gcSentinel{}, func(struct{}) {
			metrics.Read(sample)
			debug.SetGCPercent(gcTarget(sample[0].Value.Uint64()))
			arm()
		}, struct{}{})
	}
	arm()
}

// gcSentinel is collected at every cycle: its cleanup retunes the
// collector. It is large enough not to share a tiny allocation block.
type gcSentinel struct{ _ [2]*int }

// gcTarget returns the GOGC value for a live heap of live bytes: gcPercent,
// or more so that the next goal is at least gcFloor. It is at most
// gcFloorPercent: the runtime's minimum goal is 4 MiB scaled by GOGC, so
// a larger value for a tiny live heap (GOGC 700 for 1 MiB live) set a
// goal of 28 MiB, and a load of 400 images grew its heap to 24 MB.
func gcTarget(live uint64) int {
	if live == 0 || live*(100+gcPercent)/100 >= gcFloor {
		return gcPercent
	}
	return min(int(gcFloor*100/live)-100, gcFloorPercent)
}

// gcFloorPercent is the GOGC whose minimum goal is gcFloor: the runtime's
// minimum is 4 MiB * GOGC / 100.
const gcFloorPercent = gcFloor / (4 << 20) * 100
