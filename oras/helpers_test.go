package oras

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cnrancher/docker-hangar/internal/registrytest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// testBlob is a blob with its descriptor.
type testBlob struct {
	desc ocispec.Descriptor
	data []byte
}

func newBlob(data []byte) testBlob {
	return testBlob{
		desc: ocispec.Descriptor{
			MediaType: "application/vnd.oci.image.layer.v1.tar+gzip",
			Digest:    digest.FromBytes(data),
			Size:      int64(len(data)),
		},
		data: data,
	}
}

func randomBlob(t *testing.T, n int) testBlob {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return newBlob(b)
}

func (b testBlob) open() (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(b.data)), nil
}

// countingOpen returns an open function and a counter of its calls.
func (b testBlob) countingOpen() (func() (io.ReadCloser, error), func() int) {
	var (
		mu sync.Mutex
		n  int
	)
	return func() (io.ReadCloser, error) {
			mu.Lock()
			n++
			mu.Unlock()
			return b.open()
		}, func() int {
			mu.Lock()
			defer mu.Unlock()
			return n
		}
}

func boolp(b bool) *bool { return &b }

// debugLog collects Debugf lines; it is safe to call after the test ends.
type debugLog struct {
	mu    sync.Mutex
	lines []string
}

func (d *debugLog) Debugf(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.lines = append(d.lines, fmt.Sprintf(format, args...))
}

func (d *debugLog) String() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return strings.Join(d.lines, "\n")
}

// testOptions returns fast options with an empty docker config and
// certs.d, and a debug log.
func testOptions(t *testing.T) (RegistryOptions, *debugLog) {
	t.Helper()
	log := &debugLog{}
	opts := DefaultRegistryOptions()
	opts.ConfigDir = t.TempDir()
	opts.SystemCertsDir = t.TempDir()
	opts.StallTimeout = 10 * time.Second
	opts.Debugf = log.Debugf
	opts.backoff = time.Millisecond
	return opts, log
}

// dialTo makes every connection go to addr (a loopback host:port), so that
// tests can use names that are not loopback.
func dialTo(addr string) func(ctx context.Context, network, _ string) (net.Conn, error) {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func mustRegistry(t *testing.T, host string, opts RegistryOptions) *Registry {
	t.Helper()
	r, err := NewRegistry(host, opts)
	if err != nil {
		t.Fatalf("NewRegistry(%s): %v", host, err)
	}
	return r
}

func mustRepository(t *testing.T, r *Registry, name string) *Repository {
	t.Helper()
	repo, err := r.Repository(name)
	if err != nil {
		t.Fatalf("Repository(%s): %v", name, err)
	}
	return repo
}

// startRegistry starts a plain-HTTP registry with an optional wrapper.
func startRegistry(t *testing.T, wrap func(http.Handler) http.Handler) *registrytest.Registry {
	t.Helper()
	return registrytest.MustStart(t, registrytest.Options{Wrap: wrap})
}

// readBlob reads a blob straight from the registry handler.
func readBlob(t *testing.T, reg *registrytest.Registry, repo string, d digest.Digest) []byte {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, reg.Server.URL+"/v2/"+repo+"/blobs/"+d.String(), nil)
	resp, err := reg.Client().Do(req)
	if err != nil {
		t.Fatalf("get blob: %v", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read blob: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("get blob %s: %s", d, resp.Status)
	}
	return data
}

// hasBlob reports whether the registry handler has the blob in repo.
func hasBlob(t *testing.T, reg *registrytest.Registry, repo string, d digest.Digest) bool {
	t.Helper()
	req, _ := http.NewRequest(http.MethodHead, reg.Server.URL+"/v2/"+repo+"/blobs/"+d.String(), nil)
	resp, err := reg.Client().Do(req)
	if err != nil {
		t.Fatalf("head blob: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// manifestFor returns an image manifest (with irregular formatting, so
// that exact bytes matter) for config and layers.
func manifestFor(config testBlob, layers ...testBlob) ([]byte, ocispec.Descriptor) {
	var b strings.Builder
	fmt.Fprintf(&b, "{\n   \"schemaVersion\": 2,\n   \"mediaType\": %q,\n", ocispec.MediaTypeImageManifest)
	fmt.Fprintf(&b, "   \"config\": {\"mediaType\": %q, \"digest\": %q, \"size\": %d},\n   \"layers\": [",
		ocispec.MediaTypeImageConfig, config.desc.Digest, config.desc.Size)
	for i, l := range layers {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "\n      {\"mediaType\": %q, \"digest\": %q, \"size\": %d}", l.desc.MediaType, l.desc.Digest, l.desc.Size)
	}
	b.WriteString("\n   ]\n}")
	body := []byte(b.String())
	return body, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(body), Size: int64(len(body))}
}

// pushImage pushes a config, a layer and their manifest to repo:tag and
// returns the manifest.
func pushImage(t *testing.T, ctx context.Context, repo *Repository, tag string) ([]byte, ocispec.Descriptor) {
	t.Helper()
	config := newBlob([]byte(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}`))
	config.desc.MediaType = ocispec.MediaTypeImageConfig
	layer := randomBlob(t, 4096)
	for _, b := range []testBlob{config, layer} {
		if err := repo.PushBlob(ctx, b.desc, b.open); err != nil {
			t.Fatalf("push blob: %v", err)
		}
	}
	body, desc := manifestFor(config, layer)
	if err := repo.PushManifest(ctx, desc, body, tag); err != nil {
		t.Fatalf("push manifest: %v", err)
	}
	return body, desc
}
