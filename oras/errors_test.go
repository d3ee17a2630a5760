package oras

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cnrancher/docker-hangar/internal/registrytest"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

func TestClassify(t *testing.T) {
	response := func(status int, codes ...string) error {
		er := &errcode.ErrorResponse{Method: http.MethodPut, URL: &url.URL{Path: "/v2/x/blobs/uploads/1"}, StatusCode: status}
		for _, c := range codes {
			er.Errors = append(er.Errors, errcode.Error{Code: c})
		}
		return fmt.Errorf("oras: %w", er)
	}
	urlErr := func(err error) error { return &url.Error{Op: "Put", URL: "http://x/v2/", Err: err} }
	dial := func(errno syscall.Errno) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: &os.SyscallError{Syscall: "connect", Err: errno}}
	}
	tests := []struct {
		name string
		err  error
		want class
	}{
		{"caller cancelled", urlErr(context.Canceled), classCanceled},
		{"caller deadline", context.DeadlineExceeded, classCanceled},
		{"stall", urlErr(newError(ErrStalled, nil, "stalled")), classStalled},
		{"given up", newError(ErrUnreachable, dial(syscall.ECONNREFUSED), "gone"), classUnreachable},
		{"digest mismatch", newError(ErrDigestMismatch, nil, "x"), classContent},
		{"source error", newError(errSource, io.ErrUnexpectedEOF, "read blob"), classContent},
		{"no credentials", fmt.Errorf("x: %w", auth.ErrBasicCredentialNotFound), classNoCredentials},
		{"401", response(401, errcode.ErrorCodeUnauthorized), classDenied},
		{"403", response(403, errcode.ErrorCodeDenied), classDenied},
		{"404 manifest unknown", response(404, errcode.ErrorCodeManifestUnknown), classNotFound},
		{"404 without body", response(404), classNotFound},
		{"oras not found", fmt.Errorf("%s: %w", "v1", errdef.ErrNotFound), classNotFound},
		{"404 upload unknown", response(404, errcode.ErrorCodeBlobUploadUnknown), classUploadLost},
		{"400 digest invalid", response(400, errcode.ErrorCodeDigestInvalid), classUploadLost},
		{"400 size invalid", response(400, errcode.ErrorCodeSizeInvalid), classUploadLost},
		{"400 manifest blob unknown", response(400, errcode.ErrorCodeManifestBlobUnknown), classOther},
		{"405", response(405, errcode.ErrorCodeUnsupported), classOther},
		{"408", response(408), classTransient},
		{"413", response(413), classTooLarge},
		{"416", response(416, "RANGE_INVALID"), classRange},
		{"429", response(429, "TOOMANYREQUESTS"), classTransient},
		{"500", response(500), classTransient},
		{"501", response(501), classOther},
		{"503", response(503), classTransient},
		{"505", response(505), classOther},
		{"refused", urlErr(dial(syscall.ECONNREFUSED)), classNetwork},
		{"reset", urlErr(&net.OpError{Op: "read", Err: &os.SyscallError{Syscall: "read", Err: syscall.ECONNRESET}}), classNetwork},
		{"broken pipe", urlErr(&net.OpError{Op: "write", Err: &os.SyscallError{Syscall: "write", Err: syscall.EPIPE}}), classNetwork},
		{"EOF before an answer", urlErr(io.EOF), classNetwork},
		{"server closed an idle connection", fmt.Errorf("push manifest: %w", urlErr(errors.New(serverClosedIdle))), classNetwork},
		{"that message in other words", errors.New("registry says: " + serverClosedIdle), classOther},
		{"body cut", io.ErrUnexpectedEOF, classNetwork},
		{"dns", urlErr(&net.OpError{Op: "dial", Err: &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}}), classNetwork},
		{"unknown authority", urlErr(&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), classTLS},
		{"hostname", urlErr(x509.HostnameError{Certificate: &x509.Certificate{}, Host: "x"}), classTLS},
		{"not TLS", urlErr(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), classTLS},
		{"plain HTTP answer", urlErr(http.ErrSchemeMismatch), classTLS},
		{"client certificate refused", urlErr(&net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")}), classTLS},
		{"refused https redirect", urlErr(newError(ErrTLS, nil, "refused")), classTLS},
		{"anything else", errors.New("boom"), classOther},
	}
	for _, tt := range tests {
		if got := classify(tt.err); got != tt.want {
			t.Errorf("classify(%s: %v) = %d; want %d", tt.name, tt.err, got, tt.want)
		}
	}
	if !beforeAnswer(urlErr(io.EOF)) || beforeAnswer(io.ErrUnexpectedEOF) {
		t.Error("beforeAnswer does not tell a failed request from a cut body")
	}
}

// TestServerClosedIdleMessage checks that net/http's errServerClosedIdle,
// which is not exported and too rare to provoke reliably, still has the
// message isServerClosedIdle looks for.
func TestServerClosedIdleMessage(t *testing.T) {
	goroot, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Skipf("no go command to find net/http's source: %v", err)
	}
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(goroot)), "src", "net", "http", "transport.go"))
	if err != nil {
		t.Skipf("net/http's source is not here to check: %v", err)
	}
	if want := fmt.Sprintf("errServerClosedIdle = errors.New(%q)", serverClosedIdle); !strings.Contains(string(src), want) {
		t.Errorf("net/http's transport.go has no %s: the message changed, update serverClosedIdle", want)
	}
}

// TestRetryPromises checks the package doc's list of what is retried and
// what is not, request by request, against a real registry.
func TestRetryPromises(t *testing.T) {
	const uploadUnknown = `{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN","message":"blob upload unknown to registry"}]}`
	tests := []struct {
		status    int
		body      string
		wantCount int // manifest GETs (MaxAttempts 3)
	}{
		{http.StatusBadRequest, "", 1},
		{http.StatusUnauthorized, "", 1},
		{http.StatusForbidden, "", 1},
		{http.StatusNotFound, "", 1},
		{http.StatusMethodNotAllowed, "", 1},
		{http.StatusRequestTimeout, "", 3},
		{http.StatusTooManyRequests, "", 3},
		{http.StatusInternalServerError, "", 3},
		{http.StatusNotImplemented, "", 1},
		{http.StatusBadGateway, "", 3},
		{http.StatusServiceUnavailable, "", 3},
		{http.StatusGatewayTimeout, "", 3},
		{http.StatusHTTPVersionNotSupported, "", 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("manifest GET answered %d", tt.status), func(t *testing.T) {
			reg, count, _ := faultRegistry(t, isManifestGet, status(tt.status, -1, nil, tt.body))
			opts, _ := testOptions(t)
			opts.MaxAttempts = 3
			_, _, err := mustRepository(t, mustRegistry(t, reg.Host(), opts), "library/app").FetchManifest(testContext(t), "v1")
			if err == nil {
				t.Fatal("FetchManifest succeeded")
			}
			if errors.Is(err, ErrNotFound) != (tt.status == http.StatusNotFound) {
				t.Fatalf("FetchManifest = %v; ErrNotFound only for 404", err)
			}
			if count() != tt.wantCount {
				t.Fatalf("%d requests; want %d", count(), tt.wantCount)
			}
		})
	}

	t.Run("upload lost (404 BLOB_UPLOAD_UNKNOWN) is retried whole", func(t *testing.T) {
		reg, count, _ := faultRegistry(t, isUploadPut, status(http.StatusNotFound, 1, nil, uploadUnknown))
		opts, _ := testOptions(t)
		blob := randomBlob(t, 1000)
		if err := mustRepository(t, mustRegistry(t, reg.Host(), opts), "library/app").PushBlob(testContext(t), blob.desc, blob.open); err != nil {
			t.Fatal(err)
		}
		if count() != 2 {
			t.Fatalf("%d upload PUTs; want 2", count())
		}
	})

	t.Run("404 to a manifest push is not ErrNotFound", func(t *testing.T) {
		reg, count, _ := faultRegistry(t, isManifestPut, status(http.StatusNotFound, -1, nil,
			`{"errors":[{"code":"NOT_FOUND","message":"project library not found"}]}`))
		opts, _ := testOptions(t)
		repo := mustRepository(t, mustRegistry(t, reg.Host(), opts), "library/app")
		body, desc := manifestFor(newBlob([]byte("{}")))
		err := repo.PushManifest(testContext(t), desc, body, "v1")
		if err == nil || errors.Is(err, ErrNotFound) || count() != 1 {
			t.Fatalf("PushManifest = %v after %d requests; want a plain error after 1", err, count())
		}
		if ok, err := repo.ManifestExists(testContext(t), desc); err != nil || ok {
			t.Fatalf("ManifestExists of an absent manifest = %t, %v; want false, nil", ok, err)
		}
	})

	t.Run("a TLS failure is not retried", func(t *testing.T) {
		ca, err := registrytest.NewCA()
		if err != nil {
			t.Fatal(err)
		}
		conf, err := ca.ServerTLS("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var accepted atomic.Int32
		reg := registrytest.MustStart(t, registrytest.Options{TLS: conf, Listener: countingListener{ln, &accepted}})
		opts, _ := testOptions(t)
		opts.TLSVerify = boolp(true)
		err = mustRegistry(t, reg.Host(), opts).Ping(testContext(t), true)
		if !errors.Is(err, ErrTLS) || accepted.Load() != 1 {
			t.Fatalf("Ping = %v after %d connections; want ErrTLS after 1", err, accepted.Load())
		}
	})
}

// countingListener counts the connections accepted.
type countingListener struct {
	net.Listener
	n *atomic.Int32
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

func TestSchemeWaitIsCancellable(t *testing.T) {
	release := make(chan struct{})
	var pings atomic.Int32
	reg := startRegistry(t, func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/v2/" && pings.Add(1) == 1 {
				select {
				case <-release:
				case <-r.Context().Done():
					return
				}
			}
			next.ServeHTTP(w, r)
		})
	})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	opts, _ := testOptions(t)
	r := mustRegistry(t, reg.Host(), opts)
	repo := mustRepository(t, r, "library/app")

	first := make(chan error, 1)
	go func() { first <- r.Ping(testContext(t), true) }()
	for pings.Load() == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	// A second caller waits for the scheme the first one is settling, and
	// gives up on its own context.
	ctx, cancel := context.WithCancel(context.Background())
	waiting := make(chan error, 1)
	go func() {
		_, err := repo.BlobExists(ctx, ocispec.Descriptor{Digest: digest.FromString("x"), Size: 1})
		waiting <- err
	}()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-waiting:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled waiter got %v; want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a caller waiting for the scheme did not return on its context's cancellation")
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("Ping: %v", err)
	}
	if ok, err := repo.BlobExists(testContext(t), ocispec.Descriptor{Digest: digest.FromString("x"), Size: 1}); err != nil || ok {
		t.Fatalf("BlobExists after the scheme settled = %t, %v", ok, err)
	}
	if n := pings.Load(); n != 1 {
		t.Fatalf("%d GET /v2/; the scheme is settled once", n)
	}
}

func TestMaxManifestSize(t *testing.T) {
	if MaxManifestSize != 4<<20 {
		t.Fatalf("MaxManifestSize = %d; distribution's manifest PUT limit is 4 MiB", MaxManifestSize)
	}
	reg, _, _ := faultRegistry(t, isManifestGet, func(w http.ResponseWriter, r *http.Request, n int) bool {
		w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
		w.Header().Set("Content-Length", fmt.Sprint(MaxManifestSize+1))
		w.Header().Set("Docker-Content-Digest", digest.FromString("big").String())
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, strings.Repeat(" ", 1024))
		return true
	})
	opts, _ := testOptions(t)
	repo := mustRepository(t, mustRegistry(t, reg.Host(), opts), "library/app")
	_, _, err := repo.FetchManifest(testContext(t), "v1")
	if err == nil || errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("FetchManifest of a manifest over the limit = %v; want a size error", err)
	}
	big := make([]byte, MaxManifestSize+1)
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(big), Size: int64(len(big))}
	if err := repo.PushManifest(testContext(t), desc, big, "v1"); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("PushManifest over the limit = %v; want a size error", err)
	}
}

func TestPushManifestTagValidation(t *testing.T) {
	reg := startRegistry(t, nil)
	opts, _ := testOptions(t)
	repo := mustRepository(t, mustRegistry(t, reg.Host(), opts), "library/app")
	config := newBlob([]byte("{}"))
	if err := repo.PushBlob(testContext(t), config.desc, config.open); err != nil {
		t.Fatal(err)
	}
	body, desc := manifestFor(config)
	for _, tag := range []string{"a@b", "bad tag", "-x", strings.Repeat("a", 129), "sha256:" + strings.Repeat("0", 64)} {
		if err := repo.PushManifest(testContext(t), desc, body, tag); err == nil || !strings.Contains(err.Error(), "invalid tag") {
			t.Errorf("PushManifest(%q) = %v; want invalid tag", tag, err)
		}
	}
	for _, tag := range []string{"v1", "1.0_rc-1", "A", strings.Repeat("a", 128)} {
		if err := repo.PushManifest(testContext(t), desc, body, tag); err != nil {
			t.Errorf("PushManifest(%q): %v", tag, err)
		}
	}
}
