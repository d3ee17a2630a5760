package plugin_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnrancher/docker-hangar/archive/archivetest"
	"github.com/cnrancher/docker-hangar/internal/registrytest"
)

// slowUploads delays every blob upload body, so that a load lasts long
// enough to be interrupted in the middle.
func slowUploads(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/") {
			time.Sleep(100 * time.Millisecond)
		}
		next.ServeHTTP(w, r)
	})
}

// bigArchive writes an archive of n images, each with its own layers.
func bigArchive(t *testing.T, n int) string {
	t.Helper()
	var images []archivetest.Image
	base := archivetest.Layer{Size: 1 << 20, Seed: 1}
	for i := range n {
		images = append(images, archivetest.Image{
			Source: fmt.Sprintf("docker.io/proj%d/app%02d", i%3, i), Tag: "v1",
			Manifests: []archivetest.Manifest{
				{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}, Layers: []archivetest.Layer{base, {Size: 256 << 10, Seed: int64(100 + i)}}},
				{Attestation: true},
				{Platform: ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, Layers: []archivetest.Layer{{Size: 256 << 10, Seed: int64(1000 + i)}}},
				{Attestation: true},
			},
		})
	}
	w, err := archivetest.Write(filepath.Join(t.TempDir(), "big.zip"), images, archivetest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return w.Path
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// standalone runs bin/docker-hangar standalone in dir.
func standalone(dir, config string, args ...string) *exec.Cmd {
	cmd := exec.Command(pluginBinary, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+config)
	return cmd
}

// checkIndexesComplete fails when an index in the registry names a
// manifest that is not there.
func checkIndexesComplete(t *testing.T, reg *registrytest.Registry) int {
	t.Helper()
	state, err := registrytest.State(reg.Client(), reg.Server.URL)
	if err != nil {
		t.Fatal(err)
	}
	indexes := 0
	for _, s := range state {
		if s.MediaType != ocispec.MediaTypeImageIndex {
			continue
		}
		indexes++
		repo, tag, _ := strings.Cut(s.Ref, ":")
		body, _, err := registrytest.Manifest(reg.Client(), reg.Server.URL, repo, tag)
		if err != nil {
			t.Fatal(err)
		}
		var idx ocispec.Index
		if err := json.Unmarshal(body, &idx); err != nil {
			t.Fatal(err)
		}
		for _, m := range idx.Manifests {
			if _, _, err := registrytest.Manifest(reg.Client(), reg.Server.URL, repo, m.Digest.String()); err != nil {
				t.Errorf("%s names %s, which is missing: %v", s.Ref, m.Digest, err)
			}
		}
	}
	return indexes
}

func TestInterruptThenResume(t *testing.T) {
	archive := bigArchive(t, 30)
	reg := registrytest.MustStart(t, registrytest.Options{Wrap: slowUploads})
	dir, cfg := t.TempDir(), t.TempDir()

	cmd := standalone(dir, cfg, "load", "-s", archive, "-d", reg.Host(), "-j", "2")
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// interrupt once a few images are loading and three are loaded (an
	// image's index push overlaps the next images' turns, so a Loading
	// line alone does not say which are)
	loaded := func() bool {
		state, err := registrytest.State(reg.Client(), reg.Server.URL)
		n := 0
		for _, st := range state {
			if err == nil && st.MediaType == ocispec.MediaTypeImageIndex {
				n++
			}
		}
		return n >= 3
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "[IMG:5] Loading") || !loaded() {
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the load did not reach image 5:\n%s", out.String())
		}
		select {
		case err := <-done:
			t.Fatalf("the load ended before it could be interrupted (%v):\n%s", err, out.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("interrupted load exited 0:\n%s", out.String())
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("interrupted load did not exit within 10 seconds:\n%s", out.String())
	}
	failed, err := os.ReadFile(filepath.Join(dir, "load-failed.txt"))
	if err != nil {
		t.Fatalf("no failed list after the interrupt: %v\n%s", err, out.String())
	}
	// three images were loaded before the interrupt
	if lines := strings.Fields(string(failed)); len(lines) == 0 || len(lines) > 27 {
		t.Fatalf("failed list does not reflect a partial load:\n%s", failed)
	}
	if !strings.Contains(string(failed), "docker.io/proj2/app29:v1") {
		t.Errorf("the last image, never started, is not in the failed list:\n%s", failed)
	}
	checkIndexesComplete(t, reg)

	// a second run with the failed list finishes the job
	rerun := standalone(dir, cfg, "load", "-s", archive, "-d", reg.Host(), "-f", "load-failed.txt", "-o", "again-failed.txt", "-j", "4")
	if b, err := rerun.CombinedOutput(); err != nil {
		t.Fatalf("re-run: %v\n%s", err, b)
	}
	if n := checkIndexesComplete(t, reg); n != 30 {
		t.Errorf("%d images have an index after the re-run, want 30", n)
	}
	validate := standalone(dir, cfg, "load", "validate", "-s", archive, "-d", reg.Host())
	if b, err := validate.CombinedOutput(); err != nil {
		t.Fatalf("validate after the re-run: %v\n%s", err, b)
	}
}
