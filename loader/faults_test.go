package loader_test

import (
	"testing"

	"github.com/cnrancher/docker-hangar/internal/registrytest"
)

// TestLoadThroughFaults loads basic.zip (or its stand-in, see
// basicArchive) through a proxy that answers 10% of requests 503, 5% 429
// (Retry-After: 1) and cuts 5% of the uploads mid-body: the load must
// still succeed and leave exactly the state of a load without faults.
func TestLoadThroughFaults(t *testing.T) {
	archive, want := basicArchive(t)
	faults := &registrytest.Faults{Every503: 10, Every429: 20, RetryAfter: "1", EveryCut: 20}
	reg := registrytest.MustStart(t, registrytest.Options{Wrap: faults.Wrap})
	opts := testOptions(t, archive, reg.Host())
	opts.Jobs = 4
	res := load(t, opts)
	if len(res.Failed) != 0 {
		t.Fatalf("failed: %v", res.Failed)
	}
	t.Logf("injected %d 503s, %d 429s, %d cut uploads", faults.Served503.Load(), faults.Served429.Load(), faults.Cut.Load())
	if faults.Served503.Load() == 0 || faults.Served429.Load() == 0 || faults.Cut.Load() == 0 {
		t.Errorf("not every kind of fault was injected: the test proves less than it claims")
	}
	faults.Off.Store(true)
	checkState(t, reg.Client(), reg.Server.URL, want)
}
