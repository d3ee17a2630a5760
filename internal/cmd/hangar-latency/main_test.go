package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/cnrancher/docker-hangar/internal/registrytest"
)

// countingListener counts the connections it accepts.
type countingListener struct {
	net.Listener
	accepted atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.accepted.Add(1)
	}
	return c, err
}

// sleepRecorder is a proxy.sleep that records its calls and does not wait.
type sleepRecorder struct {
	mu    sync.Mutex
	calls []time.Duration
}

func (s *sleepRecorder) sleep(_ context.Context, d time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, d)
	return nil
}

func (s *sleepRecorder) n() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.calls)
}

// startProxy serves a proxy to target on loopback; it counts the client
// connections the proxy accepts.
func startProxy(t *testing.T, target string, delay time.Duration) (*proxy, *httptest.Server, *atomic.Int64) {
	t.Helper()
	u, err := parseTarget(target)
	if err != nil {
		t.Fatal(err)
	}
	p := newProxy(u, delay)
	srv := httptest.NewUnstartedServer(p)
	var conns atomic.Int64
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return p, srv, &conns
}

func do(t *testing.T, client *http.Client, method, u string, body io.Reader, header map[string]string, want int) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, u, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	data, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %s (want %d): %s", method, u, resp.Status, want, data)
	}
	resp.Body = io.NopCloser(bytes.NewReader(data))
	return resp
}

func readCounts(t *testing.T, client *http.Client, proxyURL string, reset bool) string {
	t.Helper()
	u := proxyURL + controlPath
	if reset {
		u += "?reset=1"
	}
	resp := do(t, client, http.MethodGet, u, nil, nil, http.StatusOK)
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestProxyRegistry pushes a blob and a manifest to a real registry through
// the proxy: the upload location leads back to the proxy, every request is
// delayed once and counted by method, and one connection to the registry
// (and from the client) serves them all.
func TestProxyRegistry(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backend := &countingListener{Listener: ln}
	reg := registrytest.MustStart(t, registrytest.Options{Listener: backend})
	p, srv, clientConns := startProxy(t, reg.Server.URL, 3*time.Millisecond)
	rec := &sleepRecorder{}
	p.sleep = rec.sleep
	client := &http.Client{Timeout: 10 * time.Second}
	proxyHost := strings.TrimPrefix(srv.URL, "http://")

	blob := make([]byte, 1<<20)
	if _, err := rand.Read(blob); err != nil {
		t.Fatal(err)
	}
	d := digest.FromBytes(blob)
	resp := do(t, client, http.MethodPost, srv.URL+"/v2/lat/test/blobs/uploads/", nil, nil, http.StatusAccepted)
	loc, err := resp.Location()
	if err != nil {
		t.Fatal(err)
	}
	if loc.Host != proxyHost {
		t.Fatalf("upload location %s: host %q, want the proxy %q", loc, loc.Host, proxyHost)
	}
	q := loc.Query()
	q.Set("digest", d.String())
	loc.RawQuery = q.Encode()
	do(t, client, http.MethodPut, loc.String(), bytes.NewReader(blob), map[string]string{"Content-Type": "application/octet-stream"}, http.StatusCreated)
	do(t, client, http.MethodHead, srv.URL+"/v2/lat/test/blobs/"+d.String(), nil, nil, http.StatusOK)

	config := []byte(`{}`)
	cd := digest.FromBytes(config)
	resp = do(t, client, http.MethodPost, srv.URL+"/v2/lat/test/blobs/uploads/", nil, nil, http.StatusAccepted)
	loc, err = resp.Location()
	if err != nil {
		t.Fatal(err)
	}
	q = loc.Query()
	q.Set("digest", cd.String())
	loc.RawQuery = q.Encode()
	do(t, client, http.MethodPut, loc.String(), bytes.NewReader(config), map[string]string{"Content-Type": "application/octet-stream"}, http.StatusCreated)
	manifest := []byte(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"` + cd.String() + `","size":2},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"` + d.String() + `","size":1048576}]}`)
	do(t, client, http.MethodPut, srv.URL+"/v2/lat/test/manifests/v1", bytes.NewReader(manifest), map[string]string{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}, http.StatusCreated)
	got := do(t, client, http.MethodGet, srv.URL+"/v2/lat/test/manifests/v1", nil, map[string]string{"Accept": "application/vnd.oci.image.manifest.v1+json"}, http.StatusOK)
	if body, _ := io.ReadAll(got.Body); !bytes.Equal(body, manifest) {
		t.Fatalf("manifest read back through the proxy differs:\n%s\nwant\n%s", body, manifest)
	}
	// the blob arrived whole: read it from the registry directly
	direct := do(t, client, http.MethodGet, reg.Server.URL+"/v2/lat/test/blobs/"+d.String(), nil, nil, http.StatusOK)
	if body, _ := io.ReadAll(direct.Body); !bytes.Equal(body, blob) {
		t.Fatalf("blob in the registry differs from the one sent through the proxy (%d bytes)", len(body))
	}
	backendBefore := backend.accepted.Load()

	if got, want := readCounts(t, client, srv.URL, false), "GET 1\nHEAD 1\nPOST 2\nPUT 3\n"; got != want {
		t.Fatalf("counts:\n%swant\n%s", got, want)
	}
	if rec.n() != 7 {
		t.Fatalf("%d delays for 7 forwarded requests", rec.n())
	}
	for i, c := range rec.calls {
		if c != 3*time.Millisecond {
			t.Fatalf("delay %d: %s, want 3ms", i, c)
		}
	}
	for range 20 {
		do(t, client, http.MethodHead, srv.URL+"/v2/lat/test/blobs/"+d.String(), nil, nil, http.StatusOK)
	}
	if got, want := readCounts(t, client, srv.URL, true), "GET 1\nHEAD 21\nPOST 2\nPUT 3\n"; got != want {
		t.Fatalf("counts after 20 HEADs:\n%swant\n%s", got, want)
	}
	if got := readCounts(t, client, srv.URL, false); got != "" {
		t.Fatalf("counts after reset: %q, want none", got)
	}
	if rec.n() != 27 {
		t.Fatalf("%d delays for 27 forwarded requests (the control path must not be delayed)", rec.n())
	}
	// one direct GET above opened its own connection to the registry
	if n := backendBefore - 1; n != 1 {
		t.Fatalf("the proxy opened %d connections to the registry for 7 sequential requests, want 1 (kept alive)", n)
	}
	if n := backend.accepted.Load() - 1; n != 1 {
		t.Fatalf("the proxy opened %d connections to the registry for 27 sequential requests, want 1 (kept alive)", n)
	}
	if n := clientConns.Load(); n != 1 {
		t.Fatalf("the proxy accepted %d client connections for sequential requests, want 1 (kept alive)", n)
	}
}

// TestProxyStreams checks that request and response bodies pass through as
// they come: the backend sees the first bytes of an upload before the
// client sends the rest, and the client sees the first bytes of a response
// before the backend writes the rest. A buffering proxy deadlocks here (cut
// by the 10 s bounds).
func TestProxyStreams(t *testing.T) {
	gotFirst := make(chan struct{})
	clientGot := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first := make([]byte, 5)
		if _, err := io.ReadFull(r.Body, first); err != nil || string(first) != "first" {
			http.Error(w, "bad first chunk", http.StatusBadRequest)
			return
		}
		close(gotFirst)
		rest, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, "head:"+string(rest))
		w.(http.Flusher).Flush()
		select {
		case <-clientGot:
		case <-time.After(10 * time.Second):
			return
		}
		_, _ = io.WriteString(w, ":tail")
	}))
	t.Cleanup(backend.Close)
	_, srv, _ := startProxy(t, backend.URL, 0)

	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		if _, err := io.WriteString(pw, "first"); err != nil {
			errc <- err
			return
		}
		select {
		case <-gotFirst:
		case <-time.After(10 * time.Second):
			errc <- errors.New("the backend did not see the first chunk of the upload before its end: the proxy buffers request bodies")
			pw.CloseWithError(errors.New("timeout"))
			return
		}
		_, err := io.WriteString(pw, "second")
		pw.CloseWithError(err)
		errc <- err
	}()
	req, err := http.NewRequest(http.MethodPut, srv.URL+"/v2/x/blobs/uploads/1", pr)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	head := make([]byte, len("head:second"))
	if _, err := io.ReadFull(resp.Body, head); err != nil || string(head) != "head:second" {
		t.Fatalf("first part of the response: %q, %v", head, err)
	}
	close(clientGot)
	tail, err := io.ReadAll(resp.Body)
	if err != nil || string(tail) != ":tail" {
		t.Fatalf("rest of the response: %q, %v (the proxy must pass the response on as it comes)", tail, err)
	}
}

// TestProxyClientGone checks that a request whose client leaves during the
// delay is neither forwarded nor counted.
func TestProxyClientGone(t *testing.T) {
	var forwarded atomic.Int64
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { forwarded.Add(1) }))
	t.Cleanup(backend.Close)
	p, srv, _ := startProxy(t, backend.URL, time.Hour)
	sleeping := make(chan struct{})
	var once sync.Once
	p.sleep = func(ctx context.Context, d time.Duration) error {
		once.Do(func() { close(sleeping) })
		return sleepContext(ctx, d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/v2/", nil)
	done := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	select {
	case <-sleeping:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the delay")
	}
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a canceled request got an answer")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the canceled request did not end")
	}
	client := &http.Client{Timeout: 10 * time.Second}
	// the handler may still be unwinding: the counts are read after the
	// server is done with the request
	srv.Config.SetKeepAlivesEnabled(false)
	if got := readCounts(t, client, srv.URL, false); got != "" || forwarded.Load() != 0 {
		t.Fatalf("counts %q, forwarded %d: want neither", got, forwarded.Load())
	}
}

func TestControlMethod(t *testing.T) {
	p := newProxy(&url.URL{Scheme: "http", Host: "127.0.0.1:1"}, 0)
	rec := httptest.NewRecorder()
	p.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, controlPath, nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Fatalf("POST %s: %d, want 405", controlPath, rec.Code)
	}
}

func TestParseTarget(t *testing.T) {
	tests := []struct {
		in, want, err string
	}{
		{in: "http://127.0.0.1:5000", want: "http://127.0.0.1:5000"},
		{in: "http://127.0.0.1:5000/", want: "http://127.0.0.1:5000"},
		{in: "https://localhost:5000", want: "https://localhost:5000"},
		{in: "http://[::1]:5000", want: "http://[::1]:5000"},
		{in: "127.0.0.1:5000", err: "-target"},
		{in: "ftp://127.0.0.1:5000", err: "want http://"},
		{in: "http://10.0.0.1:5000", err: "only loopback"},
		{in: "http://example.com:80", err: "only loopback"},
		{in: "http://127.0.0.1:5000/v2", err: "no path"},
		{in: "http://127.0.0.1", err: "missing port"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			u, err := parseTarget(tt.in)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseTarget(%q) = %v, %v; want an error with %q", tt.in, u, err, tt.err)
				}
				return
			}
			if err != nil || u.String() != tt.want {
				t.Fatalf("parseTarget(%q) = %v, %v; want %s", tt.in, u, err, tt.want)
			}
		})
	}
}
