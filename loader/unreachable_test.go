package loader_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnrancher/docker-hangar/archive/archivetest"
	"github.com/cnrancher/docker-hangar/internal/registrytest"
	"github.com/cnrancher/docker-hangar/loader"
)

// TestRegistryGoesAway stops the registry (listener and connections
// closed, as when it is killed) after the first images loaded: the load
// stops once, with one Stopped event naming the registry, and no image
// reports an error of its own; every line not loaded is in the failed
// list. When the registry comes back within the bound, the load goes on.
func TestRegistryGoesAway(t *testing.T) {
	var images []archivetest.Image
	for i := range 12 {
		images = append(images, archivetest.Image{
			Source: fmt.Sprintf("docker.io/library/gone%02d", i), Tag: "1",
			Manifests: []archivetest.Manifest{{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}, Layers: []archivetest.Layer{{Size: 300 << 10, Seed: int64(i + 1)}}}},
		})
	}
	w := writeArchive(t, images, archivetest.Options{})
	for _, tt := range []struct {
		name    string
		restart time.Duration // 0: never
	}{
		{"gone for good", 0},
		{"restarted", 1500 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h, err := registrytest.NewHandler(registrytest.Options{})
			if err != nil {
				t.Fatal(err)
			}
			// The registry stops at the first manifest push that arrives
			// once two index pushes were handled: an image's index push
			// overlaps the next image's manifests, so a count of pushes
			// would not say that any image is loaded.
			var indexes atomic.Int64
			var stopOnce sync.Once
			var srv *registrytest.Restartable
			stopped := make(chan struct{})
			srv, err = registrytest.StartRestartable(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				isPut := r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/")
				if isPut && indexes.Load() >= 2 {
					stopOnce.Do(func() { go func() { srv.Stop(); close(stopped) }() })
				}
				h.ServeHTTP(rw, r)
				if isPut && r.Header.Get("Content-Type") == ocispec.MediaTypeImageIndex {
					indexes.Add(1)
				}
			}))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Stop)
			if tt.restart > 0 {
				go func() {
					<-stopped
					time.Sleep(tt.restart)
					if err := srv.Restart(); err != nil {
						t.Error(err)
					}
				}()
			}
			opts := testOptions(t, w.Path, srv.Addr)
			opts.Registry.UnreachableTimeout = 4 * time.Second
			rec := record(t, &opts)
			start := time.Now()
			res, err := loader.Load(context.Background(), opts)
			if err != nil {
				t.Fatal(err)
			}
			took := time.Since(start)
			stops := all[loader.Stopped](rec)
			if tt.restart > 0 {
				if len(res.Failed) != 0 || len(stops) != 0 {
					t.Fatalf("after a restart: failed %v, stops %v", res.FailedKeys(), stops)
				}
				return
			}
			if len(stops) != 1 || !errors.Is(stops[0].Err, loader.ErrRegistryUnreachable) || !errors.Is(res.Stopped, loader.ErrRegistryUnreachable) {
				t.Fatalf("stopped events %v, result %v; want one naming the unreachable registry", stops, res.Stopped)
			}
			if took > 20*time.Second {
				t.Errorf("the load took %s to stop", took)
			}
			s := res.Summary()
			if s.Failed != 0 || s.Loaded == 0 || s.Loaded+s.Interrupted+s.NotAttempted != len(images) || len(res.Failed) != s.Interrupted+s.NotAttempted {
				t.Errorf("summary %+v, failed list %v", s, res.FailedKeys())
			}
			for _, d := range all[loader.ImageDone](rec) {
				if d.Result.Status == loader.StatusFailed {
					t.Errorf("%s failed on its own: %v", d.Image.Reference(), d.Result.Err)
				}
			}
		})
	}
}
