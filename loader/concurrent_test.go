package loader_test

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnrancher/docker-hangar/archive/archivetest"
	"github.com/cnrancher/docker-hangar/internal/registrytest"
	"github.com/cnrancher/docker-hangar/loader"
)

// slowAnswer delays the answer to a request that the registry has handled.
type slowAnswer struct {
	http.ResponseWriter
	d    time.Duration
	once sync.Once
}

func (s *slowAnswer) WriteHeader(code int) {
	s.once.Do(func() { time.Sleep(s.d) })
	s.ResponseWriter.WriteHeader(code)
}

func (s *slowAnswer) Write(b []byte) (int, error) {
	s.once.Do(func() { time.Sleep(s.d) })
	return s.ResponseWriter.Write(b)
}

// slowManifestAnswers delays the answers to manifest PUTs by d: the write
// lands when it arrives, its writer learns it d later.
func slowManifestAnswers(d time.Duration) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
				w = &slowAnswer{ResponseWriter: w, d: d}
			}
			h.ServeHTTP(w, r)
		})
	}
}

// slowManifestPuts delays every manifest PUT by d before the registry
// handles it: the write lands d after it was sent.
func slowManifestPuts(d time.Duration) func(http.Handler) http.Handler {
	return func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") {
				time.Sleep(d)
			}
			h.ServeHTTP(w, r)
		})
	}
}

// TestTwoLoadsAtOnce loads an amd64 archive and an arm64 archive of the
// same images at the same moment into one empty registry (issue 12.2),
// ten times with a fresh registry: each main tag must end up with both
// platforms and their attestations, as after loading one archive then the
// other. The registry answers manifest PUTs 20 ms late, or handles them
// 20 ms after they arrive (a push still on its way when the other load
// reads its own index back: settle catches it), so that the two loads'
// index pushes overlap.
func TestTwoLoadsAtOnce(t *testing.T) {
	tests := []struct {
		name string
		wrap func(http.Handler) http.Handler
	}{
		{name: "answers delayed", wrap: slowManifestAnswers(20 * time.Millisecond)},
		{
			name: "writes delayed in flight",
			wrap: slowManifestPuts(20 * time.Millisecond),
		},
	}
	names := []string{"docker.io/library/web", "docker.io/rancher/api", "docker.io/cnrancher/agent"}
	archiveOf := func(seed int64, p ocispec.Platform) *archivetest.Written {
		var images []archivetest.Image
		for i, n := range names {
			images = append(images, archivetest.Image{Source: n, Tag: "1.0", Manifests: withAttestations(seed+int64(i), nil, p)})
		}
		return writeArchive(t, images, archivetest.Options{})
	}
	archives := []*archivetest.Written{archiveOf(10, amd64), archiveOf(20, arm64)}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for run := range 10 {
				twoLoads(t, run, archives, names, tt.wrap)
				if t.Failed() {
					t.Fatalf("run %d of 10 lost a platform", run)
				}
			}
		})
	}
}

// twoLoads runs one round of TestTwoLoadsAtOnce.
func twoLoads(t *testing.T, run int, archives []*archivetest.Written, names []string, wrap func(http.Handler) http.Handler) {
	t.Helper()
	reg := registrytest.MustStart(t, registrytest.Options{Wrap: wrap})
	defer reg.Close()
	start := make(chan struct{})
	results := make([]*loader.Result, len(archives))
	errs := make([]error, len(archives))
	var wg sync.WaitGroup
	for i, w := range archives {
		opts := testOptions(t, w.Path, reg.Host())
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = loader.Load(context.Background(), opts)
		}()
	}
	close(start)
	wg.Wait()
	for i := range archives {
		if errs[i] != nil {
			t.Fatalf("run %d: load %d: %v", run, i, errs[i])
		}
		if len(results[i].Failed) != 0 {
			t.Fatalf("run %d: load %d failed: %v", run, i, results[i].Failed)
		}
	}
	for i, n := range names {
		repo := strings.TrimPrefix(n, "docker.io/")
		var want []string
		for _, w := range archives {
			for _, m := range w.Images[i].Manifests {
				want = append(want, m.Descriptor.Digest.String())
			}
		}
		if got := indexDigests(t, reg, repo, "1.0"); !sameSet(got, want) {
			t.Errorf("run %d: %s:1.0 names %v, want both platforms and their attestations %v", run, repo, got, want)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
