package oras

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cnrancher/docker-hangar/internal/registrytest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Request kinds a fault applies to.
func isUploadPost(r *http.Request) bool {
	return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/blobs/uploads/")
}
func isUploadPut(r *http.Request) bool {
	return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/blobs/uploads/")
}
func isManifestPut(r *http.Request) bool {
	return r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/")
}
func isManifestGet(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/manifests/")
}

// fault answers the n-th (1-based) matching request itself and returns
// true, or returns false to let the registry answer.
type fault func(w http.ResponseWriter, r *http.Request, n int) bool

// faultRegistry starts a registry with f in front of the requests match
// selects; it returns the registry and a counter of matching requests. done
// is closed before the registry stops, to release blocked handlers.
func faultRegistry(t *testing.T, match func(*http.Request) bool, f fault) (reg *registrytest.Registry, count func() int, done chan struct{}) {
	t.Helper()
	return faultRegistryOn(t, nil, match, f)
}

// faultRegistryOn is faultRegistry serving on ln (nil: a new listener).
func faultRegistryOn(t *testing.T, ln net.Listener, match func(*http.Request) bool, f fault) (reg *registrytest.Registry, count func() int, done chan struct{}) {
	t.Helper()
	var (
		mu sync.Mutex
		n  int
	)
	done = make(chan struct{})
	reg = registrytest.MustStart(t, registrytest.Options{Listener: ln, Wrap: func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if match(r) {
				mu.Lock()
				n++
				k := n
				mu.Unlock()
				if f(w, r, k) {
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	}})
	t.Cleanup(func() { close(done) })
	return reg, func() int {
		mu.Lock()
		defer mu.Unlock()
		return n
	}, done
}

// status answers code (with headers) to the first times matching requests
// (times < 0: always).
func status(code, times int, header map[string]string, body string) fault {
	return func(w http.ResponseWriter, r *http.Request, n int) bool {
		if times >= 0 && n > times {
			return false
		}
		for k, v := range header {
			w.Header().Set(k, v)
		}
		if body != "" {
			w.Header().Set("Content-Type", "application/json")
		}
		w.WriteHeader(code)
		_, _ = io.WriteString(w, body)
		return true
	}
}

// cut reads part of the body of the first times matching requests, then
// closes the connection.
func cut(after int64, times int) fault {
	return func(w http.ResponseWriter, r *http.Request, n int) bool {
		if n > times {
			return false
		}
		_, _ = io.CopyN(io.Discard, r.Body, after)
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			panic(http.ErrAbortHandler)
		}
		conn.Close()
		return true
	}
}

func TestPushBlobRetries(t *testing.T) {
	const digestInvalid = `{"errors":[{"code":"DIGEST_INVALID","message":"provided digest did not match uploaded content"}]}`
	const nameUnknown = `{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}`
	tests := []struct {
		name        string
		match       func(*http.Request) bool
		fault       fault
		maxAttempts int
		wantCount   int
		wantErr     error    // nil: success
		wantMsg     []string // in the error
		minElapsed  time.Duration
	}{
		{name: "503 on upload PUT", match: isUploadPut, fault: status(503, 2, nil, ""), wantCount: 3},
		{name: "503 on upload POST", match: isUploadPost, fault: status(503, 2, nil, ""), wantCount: 3},
		{name: "500 then 502", match: isUploadPut, fault: func(w http.ResponseWriter, r *http.Request, n int) bool {
			return status([]int{500, 502}[min(n, 2)-1], 2, nil, "")(w, r, n)
		}, wantCount: 3},
		{name: "429 with Retry-After", match: isUploadPost, fault: status(429, 1, map[string]string{"Retry-After": "1"}, ""),
			wantCount: 2, minElapsed: 900 * time.Millisecond},
		{name: "upload cut mid-body", match: isUploadPut, fault: cut(64<<10, 1), wantCount: 2},
		{name: "upload cut twice", match: isUploadPut, fault: cut(1, 2), wantCount: 3},
		{name: "truncated upload refused with DIGEST_INVALID", match: isUploadPut, fault: status(400, 1, nil, digestInvalid), wantCount: 2},
		{name: "always 503", match: isUploadPut, fault: status(503, -1, nil, ""), maxAttempts: 3, wantCount: 3,
			wantErr: errors.New("any"), wantMsg: []string{"push blob sha256:", "to library/app", "503 Service Unavailable", "after 3 attempts"}},
		{name: "403 is not retried", match: isUploadPut, fault: status(403, -1, nil, ""), wantCount: 1,
			wantErr: ErrUnauthorized, wantMsg: []string{"403 Forbidden"}},
		{name: "404 NAME_UNKNOWN is not retried", match: isUploadPost, fault: status(404, -1, nil, nameUnknown), wantCount: 1,
			wantErr: errors.New("any"), wantMsg: []string{"404 Not Found", "repository name not known"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg, count, _ := faultRegistry(t, tt.match, tt.fault)
			opts, _ := testOptions(t)
			if tt.maxAttempts > 0 {
				opts.MaxAttempts = tt.maxAttempts
			}
			repo := mustRepository(t, mustRegistry(t, reg.Host(), opts), "library/app")
			blob := randomBlob(t, 1<<20)
			open, opens := blob.countingOpen()
			start := time.Now()
			err := repo.PushBlob(testContext(t), blob.desc, open)
			elapsed := time.Since(start)
			if count() != tt.wantCount {
				t.Errorf("%d matching requests; want %d", count(), tt.wantCount)
			}
			if opens() > count() {
				t.Errorf("opened %d times for %d attempts", opens(), count())
			}
			if tt.wantErr != nil {
				if err == nil || (tt.wantErr != nil && tt.wantErr.Error() != "any" && !errors.Is(err, tt.wantErr)) {
					t.Fatalf("PushBlob = %v; want %v", err, tt.wantErr)
				}
				for _, m := range tt.wantMsg {
					if !strings.Contains(err.Error(), m) {
						t.Errorf("error %q does not mention %q", err, m)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("PushBlob: %v", err)
			}
			if elapsed < tt.minElapsed {
				t.Errorf("took %s; want at least %s", elapsed, tt.minElapsed)
			}
			if got := readBlob(t, reg, "library/app", blob.desc.Digest); !bytes.Equal(got, blob.data) {
				t.Fatal("blob differs")
			}
		})
	}
}

func TestMountBlobRetries(t *testing.T) {
	var mountPosts atomic.Int32
	reg, _, _ := faultRegistry(t, isUploadPost, func(w http.ResponseWriter, r *http.Request, n int) bool {
		if r.URL.Query().Get("mount") == "" {
			return false
		}
		return status(503, 1, nil, "")(w, r, int(mountPosts.Add(1)))
	})
	opts, _ := testOptions(t)
	r := mustRegistry(t, reg.Host(), opts)
	ctx := testContext(t)
	blob := randomBlob(t, 1000)
	if err := mustRepository(t, r, "library/src").PushBlob(ctx, blob.desc, blob.open); err != nil {
		t.Fatal(err)
	}
	mounted, err := mustRepository(t, r, "library/dst").MountBlob(ctx, blob.desc, "library/src", blob.open)
	if err != nil || !mounted || mountPosts.Load() != 2 {
		t.Fatalf("MountBlob = %t, %v after %d mount requests; want mounted after 2", mounted, err, mountPosts.Load())
	}
}

func TestManifestRetries(t *testing.T) {
	tests := []struct {
		name      string
		match     func(*http.Request) bool
		fault     fault
		push      bool
		wantCount int
		wantErr   bool
	}{
		{name: "push after 503s", match: isManifestPut, fault: status(503, 2, nil, ""), push: true, wantCount: 3},
		{name: "push after a reset", match: isManifestPut, fault: cut(10, 1), push: true, wantCount: 2},
		{name: "fetch after 503s", match: isManifestGet, fault: status(503, 2, nil, ""), wantCount: 3},
		{name: "fetch after a cut body", match: isManifestGet, fault: func(w http.ResponseWriter, r *http.Request, n int) bool {
			if n > 1 {
				return false
			}
			w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
			w.Header().Set("Content-Length", "500")
			w.WriteHeader(http.StatusOK)
			_, _ = io.WriteString(w, "{")
			panic(http.ErrAbortHandler)
		}, wantCount: 2},
		{name: "fetch always 500", match: isManifestGet, fault: status(500, -1, nil, ""), wantCount: 3, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg, count, _ := faultRegistry(t, tt.match, func(w http.ResponseWriter, r *http.Request, n int) bool {
				if r.Header.Get("X-Setup") != "" {
					return false
				}
				return tt.fault(w, r, n)
			})
			opts, _ := testOptions(t)
			opts.MaxAttempts = 3
			r := mustRegistry(t, reg.Host(), opts)
			ctx := testContext(t)
			repo := mustRepository(t, r, "library/app")
			config, layer := newBlob([]byte("{}")), randomBlob(t, 100)
			for _, b := range []testBlob{config, layer} {
				if err := repo.PushBlob(ctx, b.desc, b.open); err != nil {
					t.Fatal(err)
				}
			}
			body, desc := manifestFor(config, layer)
			if !tt.push {
				// Set up the manifest straight through the registry handler.
				req, _ := http.NewRequest(http.MethodPut, reg.Server.URL+"/v2/library/app/manifests/v1", bytes.NewReader(body))
				req.Header.Set("Content-Type", desc.MediaType)
				req.Header.Set("X-Setup", "1")
				resp, err := reg.Client().Do(req)
				if err != nil || resp.StatusCode != http.StatusCreated {
					t.Fatalf("setup: %v %v", resp, err)
				}
				resp.Body.Close()
				_, got, err := repo.FetchManifest(ctx, "v1")
				if tt.wantErr {
					if err == nil || errors.Is(err, ErrNotFound) {
						t.Fatalf("FetchManifest = %v; want an error other than ErrNotFound", err)
					}
				} else if err != nil || !bytes.Equal(got, body) {
					t.Fatalf("FetchManifest = %q, %v", got, err)
				}
			} else {
				if err := repo.PushManifest(ctx, desc, body, "v1"); err != nil {
					t.Fatalf("PushManifest: %v", err)
				}
				got, _, err := registrytest.Manifest(reg.Client(), reg.Server.URL, "library/app", "v1")
				if err != nil || !bytes.Equal(got, body) {
					t.Fatalf("registry has %q, %v", got, err)
				}
			}
			if count() != tt.wantCount {
				t.Errorf("%d matching requests; want %d", count(), tt.wantCount)
			}
		})
	}
}

// slowReader yields chunk bytes every delay.
type slowReader struct {
	data  []byte
	chunk int
	delay time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(s.delay)
	n := copy(p[:min(len(p), s.chunk)], s.data)
	s.data = s.data[n:]
	return n, nil
}

// smallBuffers makes the TCP buffers of conn small, so that what a peer
// reads shows at once as progress at the other end (loopback buffers hold
// megabytes otherwise).
func smallBuffers(conn net.Conn) net.Conn {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetReadBuffer(16 << 10)
		_ = tc.SetWriteBuffer(16 << 10)
	}
	return conn
}

// smallBufferListener is a loopback listener whose connections have small
// buffers.
type smallBufferListener struct{ net.Listener }

func (l smallBufferListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return smallBuffers(c), nil
}

// trickle answers 200 with a 500-byte body announced, then sends it one
// byte every delay: always moving, never done in time.
func trickle(done chan struct{}, contentType string, delay time.Duration) fault {
	return func(w http.ResponseWriter, r *http.Request, n int) bool {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Content-Length", "500")
		w.WriteHeader(http.StatusOK)
		for i := 0; i < 500; i++ {
			_, _ = w.Write([]byte{' '})
			_ = http.NewResponseController(w).Flush()
			select {
			case <-done:
				return true
			case <-r.Context().Done():
				return true
			case <-time.After(delay):
			}
		}
		return true
	}
}

func TestStallTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	big := newBlob(make([]byte, 48<<20)) // more than socket buffers hold
	small := randomBlob(t, 15<<10)
	tests := []struct {
		name      string
		match     func(*http.Request) bool
		fault     func(done chan struct{}) fault
		blob      testBlob
		open      func(testBlob) func() (io.ReadCloser, error)
		fetch     bool
		ping      bool
		minRate   int64 // bytes per second; 0: MinTransferRate
		small     bool  // small TCP buffers at both ends
		wantStall bool
		wantCount int
	}{
		{name: "server stops reading the upload", match: isUploadPut, blob: big, wantStall: true, wantCount: 1,
			fault: func(done chan struct{}) fault {
				return func(w http.ResponseWriter, r *http.Request, n int) bool {
					_, _ = io.CopyN(io.Discard, r.Body, 4096)
					conn, _, err := http.NewResponseController(w).Hijack()
					if err != nil {
						panic(http.ErrAbortHandler)
					}
					<-done
					conn.Close()
					return true
				}
			}},
		{name: "server never answers the upload", match: isUploadPut, blob: small, wantStall: true, wantCount: 1,
			fault: func(done chan struct{}) fault {
				return func(w http.ResponseWriter, r *http.Request, n int) bool {
					_, _ = io.Copy(io.Discard, r.Body)
					select {
					case <-done:
					case <-r.Context().Done():
					}
					return true
				}
			}},
		{name: "server stalls a manifest body", match: isManifestGet, fetch: true, wantStall: true, wantCount: 1,
			fault: func(done chan struct{}) fault {
				return func(w http.ResponseWriter, r *http.Request, n int) bool {
					w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
					w.Header().Set("Content-Length", "500")
					w.WriteHeader(http.StatusOK)
					_, _ = io.WriteString(w, "{")
					_ = http.NewResponseController(w).Flush()
					select {
					case <-done:
					case <-r.Context().Done():
					}
					return true
				}
			}},
		{name: "registry never answers the ping", match: func(r *http.Request) bool { return r.URL.Path == "/v2/" }, ping: true, wantStall: true, wantCount: 1,
			fault: func(done chan struct{}) fault {
				return func(w http.ResponseWriter, r *http.Request, n int) bool {
					select {
					case <-done:
					case <-r.Context().Done():
					}
					return true
				}
			}},
		{name: "server trickles a manifest", match: isManifestGet, fetch: true, wantStall: true, wantCount: 1,
			fault: func(done chan struct{}) fault { return trickle(done, ocispec.MediaTypeImageManifest, timeout/6) }},
		{name: "server trickles the ping answer", match: func(r *http.Request) bool { return r.URL.Path == "/v2/" }, ping: true, wantStall: true, wantCount: 1,
			fault: func(done chan struct{}) fault { return trickle(done, "application/json", timeout/6) }},
		{name: "server reads the upload too slowly", match: isUploadPut, blob: big, minRate: 4 << 20, small: true, wantStall: true, wantCount: 1,
			fault: func(done chan struct{}) fault {
				return func(w http.ResponseWriter, r *http.Request, n int) bool {
					for {
						if _, err := io.CopyN(io.Discard, r.Body, 32<<10); err != nil {
							return true
						}
						select {
						case <-done:
							return true
						case <-r.Context().Done():
							return true
						case <-time.After(timeout / 6):
						}
					}
				}
			}},
		{name: "slow upload above the minimum rate succeeds", match: isUploadPut, blob: small, minRate: 4 << 10, wantCount: 1,
			open: func(b testBlob) func() (io.ReadCloser, error) {
				return func() (io.ReadCloser, error) {
					return io.NopCloser(&slowReader{data: b.data, chunk: 1024, delay: timeout / 4}), nil
				}
			},
			fault: func(chan struct{}) fault { return func(http.ResponseWriter, *http.Request, int) bool { return false } }},
		{name: "slow but moving upload succeeds", match: isUploadPut, blob: small, wantCount: 1,
			open: func(b testBlob) func() (io.ReadCloser, error) {
				return func() (io.ReadCloser, error) {
					return io.NopCloser(&slowReader{data: b.data, chunk: 1024, delay: timeout / 4}), nil
				}
			},
			fault: func(chan struct{}) fault { return func(http.ResponseWriter, *http.Request, int) bool { return false } }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var (
				f  fault
				ln net.Listener
			)
			if tt.small {
				l, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				ln = smallBufferListener{l}
			}
			reg, count, done := faultRegistryOn(t, ln, tt.match, func(w http.ResponseWriter, r *http.Request, n int) bool { return f(w, r, n) })
			f = tt.fault(done)
			opts, _ := testOptions(t)
			if tt.small {
				opts.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
					var d net.Dialer
					c, err := d.DialContext(ctx, network, addr)
					if err != nil {
						return nil, err
					}
					return smallBuffers(c), nil
				}
			}
			opts.StallTimeout = timeout
			opts.minRate = tt.minRate
			r := mustRegistry(t, reg.Host(), opts)
			ctx := testContext(t)
			repo := mustRepository(t, r, "library/app")
			start := time.Now()
			var err error
			switch {
			case tt.ping:
				err = r.Ping(ctx, true)
			case tt.fetch:
				_, _, err = repo.FetchManifest(ctx, "v1")
			default:
				open := tt.blob.open
				if tt.open != nil {
					open = tt.open(tt.blob)
				}
				err = repo.PushBlob(ctx, tt.blob.desc, open)
			}
			elapsed := time.Since(start)
			if tt.wantStall {
				if !errors.Is(err, ErrStalled) {
					t.Fatalf("got %v; want ErrStalled", err)
				}
				t.Logf("%v (after %s)", err, elapsed.Round(time.Millisecond))
				if elapsed > 10*time.Second {
					t.Errorf("stall detected after %s", elapsed)
				}
			} else if err != nil {
				t.Fatalf("PushBlob: %v", err)
			}
			if count() != tt.wantCount {
				t.Errorf("%d matching requests; want %d (a stall is not retried)", count(), tt.wantCount)
			}
		})
	}
}

func TestRetryAfter(t *testing.T) {
	date := time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		status int
		value  string
		min    time.Duration
		max    time.Duration
	}{
		{429, "1", time.Second, time.Second},
		{503, "3", 3 * time.Second, 3 * time.Second},
		{429, "100000", maxRetryAfter, maxRetryAfter},
		{429, date, 500 * time.Millisecond, 2 * time.Second},
		{500, "1", 0, 0},
		{429, "soon", 0, 0},
		{429, "", 0, 0},
	}
	for _, tt := range tests {
		resp := &http.Response{StatusCode: tt.status, Header: http.Header{"Retry-After": {tt.value}}}
		if got := retryAfter(resp); got < tt.min || got > tt.max {
			t.Errorf("retryAfter(%d, %q) = %s; want %s..%s", tt.status, tt.value, got, tt.min, tt.max)
		}
	}
	p := &policy{maxAttempts: 3, base: 100 * time.Millisecond}
	for i, want := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond} {
		if got := p.delay(i, 0); got < want*9/10 || got > want*11/10 {
			t.Errorf("delay(%d) = %s; want %s ±10%%", i, got, want)
		}
	}
	if got := p.delay(40, 0); got > maxBackoff*11/10 {
		t.Errorf("delay(40) = %s; want at most %s", got, maxBackoff)
	}
	rp := &requestPolicy{p: p, conn: connRetry{p: p, reach: &reachability{debugf: func(string, ...any) {}}}}
	resp503 := &http.Response{StatusCode: 503, Header: http.Header{}}
	if d, _ := rp.Retry(0, resp503, nil); d < 0 {
		t.Error("503 not retried")
	}
	if d, _ := rp.Retry(2, resp503, nil); d >= 0 {
		t.Error("retried beyond MaxAttempts")
	}
	if d, _ := rp.Retry(0, &http.Response{StatusCode: 404}, nil); d >= 0 {
		t.Error("404 retried")
	}
}
