package loader_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/cnrancher/docker-hangar/archive/archivetest"
	"github.com/cnrancher/docker-hangar/internal/floor"
	"github.com/cnrancher/docker-hangar/internal/registrytest"
	"github.com/cnrancher/docker-hangar/loader"
)

// BenchmarkLoad loads a synthetic archive (archivetest.Synthetic: 30
// images over 4 projects, amd64 and arm64, shared base layers,
// attestations) into an in-process registry, and compares with the floor
// client of scripts/bench.sh (floor.Push):
//
//   - cold: default options, a fresh registry each iteration;
//   - warm: default options, the registry already holds everything;
//   - floor-c8, floor-c1: each distinct blob pushed once, 8 or 1 requests
//     in flight, then the manifests (the same end state as cold).
//
// Besides ns/op and MB/s (of the blob bytes), it reports the requests sent
// per method. The size is HANGAR_BENCH_SIZE_MB (default 64), the number of
// images HANGAR_BENCH_IMAGES (default 30). HANGAR_BENCH_REGISTRY picks the
// registry: "memory" (default: in-process, in memory), "disk" (in-process,
// on disk) or "process" (a hangar-registry process on disk, built with `go
// build`, as scripts/bench.sh runs it; no request counts then).
//
// It is also the profiling harness. With "process" the CPU profile holds the
// client only:
//
//	HANGAR_BENCH_REGISTRY=process go test ./loader -run '^$' -bench 'Load/cold' \
//	    -benchtime 5x -cpuprofile cpu.out -o loader.test
//	go tool pprof -top loader.test cpu.out
//
// With an in-process registry the profile holds the registry's work too.
// HANGAR_BENCH_HEAPPROFILE=FILE writes a heap profile of the first cold load
// when half of the images are done (go tool pprof -sample_index=inuse_space),
// sampled every 4 KiB allocated rather than every 512 KiB.
func BenchmarkLoad(b *testing.B) {
	sizeMB := envInt(b, "HANGAR_BENCH_SIZE_MB", 64)
	images := envInt(b, "HANGAR_BENCH_IMAGES", 30)
	mode := os.Getenv("HANGAR_BENCH_REGISTRY")
	switch mode {
	case "":
		mode = "memory"
	case "memory", "disk", "process":
	default:
		b.Fatalf("HANGAR_BENCH_REGISTRY=%q: want memory, disk or process", mode)
	}
	dir := b.TempDir()
	path := filepath.Join(dir, "bench.zip")
	w, err := archivetest.Write(path, archivetest.Synthetic(archivetest.SyntheticOptions{Images: images, Size: int64(sizeMB) << 20}), archivetest.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var blobBytes int64
	for _, n := range w.Blobs {
		blobBytes += n
	}

	start := func(b *testing.B, counts *methodCounts) benchRegistry {
		b.Helper()
		if mode == "process" {
			return startProcess(b, dir)
		}
		opts := registrytest.Options{Wrap: counts.wrap}
		if mode == "disk" {
			opts.RootDir = b.TempDir()
		}
		reg, err := registrytest.Start(opts)
		if err != nil {
			b.Fatal(err)
		}
		return reg
	}
	options := func(b *testing.B, host string) loader.Options {
		opts := loader.DefaultOptions()
		opts.Source, opts.Destination = path, host
		opts.Registry.ConfigDir = dir
		return opts
	}
	check := func(b *testing.B, res *loader.Result, err error) {
		b.Helper()
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Failed) > 0 {
			for img, ir := range res.Images {
				if ir.Err != nil {
					b.Errorf("%s: %v", img.Reference(), ir.Err)
				}
			}
			b.Fatalf("failed: %v", res.Failed)
		}
	}

	b.Run("cold", func(b *testing.B) {
		b.SetBytes(blobBytes)
		var counts methodCounts
		heapProfile := os.Getenv("HANGAR_BENCH_HEAPPROFILE")
		for b.Loop() {
			b.StopTimer()
			reg := start(b, &counts)
			opts := options(b, reg.Host())
			if heapProfile != "" {
				opts.Events = (&heapSnapshot{path: heapProfile, at: images / 2}).event
				heapProfile = "" // first iteration only
			}
			b.StartTimer()
			res, err := loader.Load(context.Background(), opts)
			b.StopTimer()
			reg.Close()
			check(b, res, err)
			b.StartTimer()
		}
		counts.report(b)
	})

	b.Run("warm", func(b *testing.B) {
		var counts methodCounts
		reg := start(b, nil)
		res, err := loader.Load(context.Background(), options(b, reg.Host()))
		check(b, res, err)
		warm := reg
		if r, ok := reg.(*registrytest.Registry); ok {
			// The same storage behind a counting handler.
			r.Close()
			if warm, err = registrytest.Start(registrytest.Options{Wrap: func(http.Handler) http.Handler { return counts.wrap(r.Handler) }}); err != nil {
				b.Fatal(err)
			}
		}
		defer warm.Close()
		for b.Loop() {
			res, err := loader.Load(context.Background(), options(b, warm.Host()))
			check(b, res, err)
			if res.Uploaded+res.Mounted != 0 {
				b.Fatalf("warm load moved %d bytes", res.Uploaded+res.Mounted)
			}
		}
		counts.report(b)
	})

	for _, conc := range []int{8, 1} {
		b.Run(fmt.Sprintf("floor-c%d", conc), func(b *testing.B) {
			b.SetBytes(blobBytes)
			var counts methodCounts
			for b.Loop() {
				b.StopTimer()
				reg := start(b, &counts)
				b.StartTimer()
				pushFloor(b, path, reg, conc)
				b.StopTimer()
				reg.Close()
				b.StartTimer()
			}
			counts.report(b)
		})
	}
}

func init() {
	if os.Getenv("HANGAR_BENCH_HEAPPROFILE") != "" {
		runtime.MemProfileRate = 4 << 10
	}
}

// benchRegistry is a registry a benchmark loads into.
type benchRegistry interface {
	Host() string
	Close()
}

// pushFloor runs the floor client of scripts/bench.sh (internal/cmd/hangar-floor)
// against reg.
func pushFloor(b *testing.B, path string, reg benchRegistry, conc int) {
	b.Helper()
	opts := loader.DefaultOptions()
	opts.Source, opts.Destination = path, reg.Host()
	ar, plan, err := loader.Open(opts)
	if err != nil {
		b.Fatal(err)
	}
	defer ar.Close()
	list, err := floor.FromPlan(plan, ar)
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 2 * conc}}
	defer client.CloseIdleConnections()
	open := func(d digest.Digest) (io.ReadCloser, error) { return ar.Open(d) }
	if _, err := floor.Push(context.Background(), client, "http://"+reg.Host(), open, list, conc); err != nil {
		b.Fatal(err)
	}
}

// processRegistry is a hangar-registry process storing on disk.
type processRegistry struct {
	cmd  *exec.Cmd
	host string
	root string
}

func (p *processRegistry) Host() string { return p.host }

func (p *processRegistry) Close() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	_ = p.cmd.Wait()
	_ = os.RemoveAll(p.root)
}

var (
	registryBinOnce sync.Once
	registryBin     string
	registryBinErr  error
)

// startProcess starts internal/cmd/hangar-registry (built once, into dir)
// on disk, as scripts/bench.sh does.
func startProcess(b *testing.B, dir string) benchRegistry {
	b.Helper()
	registryBinOnce.Do(func() {
		bin := filepath.Join(dir, "hangar-registry")
		out, err := exec.Command("go", "build", "-o", bin, "github.com/cnrancher/docker-hangar/internal/cmd/hangar-registry").CombinedOutput()
		if err != nil {
			registryBinErr = fmt.Errorf("build hangar-registry: %v\n%s", err, out)
		}
		registryBin = bin
	})
	if registryBinErr != nil {
		b.Fatal(registryBinErr)
	}
	root, err := os.MkdirTemp(dir, "registry")
	if err != nil {
		b.Fatal(err)
	}
	addrFile := filepath.Join(root, "addr")
	cmd := exec.Command(registryBin, "serve", "-root", filepath.Join(root, "data"), "-addr-file", addrFile)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	p := &processRegistry{cmd: cmd, root: root}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if data, err := os.ReadFile(addrFile); err == nil && len(data) > 0 {
			p.host = strings.TrimSpace(string(data))
			return p
		}
	}
	p.Close()
	b.Fatal("hangar-registry did not listen within 10 s")
	return nil
}

// heapSnapshot writes a heap profile (after a GC) when the at-th image is
// done: what a load holds in the middle of its work.
type heapSnapshot struct {
	path string
	at   int
	done atomic.Int64
}

func (h *heapSnapshot) event(ev loader.Event) {
	if _, ok := ev.(loader.ImageDone); !ok || h.done.Add(1) != int64(h.at) {
		return
	}
	runtime.GC()
	f, err := os.Create(h.path)
	if err != nil {
		return
	}
	defer f.Close()
	_ = pprof.WriteHeapProfile(f)
}

// methodCounts counts the requests a registry receives, by method.
type methodCounts struct {
	head, get, post, put, patch, other atomic.Int64
}

func (c *methodCounts) wrap(h http.Handler) http.Handler {
	if c == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodHead:
			c.head.Add(1)
		case http.MethodGet:
			c.get.Add(1)
		case http.MethodPost:
			c.post.Add(1)
		case http.MethodPut:
			c.put.Add(1)
		case http.MethodPatch:
			c.patch.Add(1)
		default:
			c.other.Add(1)
		}
		h.ServeHTTP(w, r)
	})
}

// report reports the requests per load. Registries are started once per
// iteration, or once for the whole warm run.
func (c *methodCounts) report(b *testing.B) {
	n := float64(b.N)
	if n == 0 || c.head.Load()+c.get.Load()+c.post.Load()+c.put.Load() == 0 {
		return // not counted (registry process)
	}
	for _, m := range []struct {
		name string
		v    *atomic.Int64
	}{{"HEAD", &c.head}, {"GET", &c.get}, {"POST", &c.post}, {"PUT", &c.put}, {"PATCH", &c.patch}} {
		b.ReportMetric(float64(m.v.Load())/n, m.name+"/op")
	}
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}
