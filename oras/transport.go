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
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultSystemCertsDir is docker's system-wide certs.d directory.
const DefaultSystemCertsDir = "/etc/docker/certs.d"

// tlsMode is how a registry is contacted.
type tlsMode struct {
	// verify checks the server certificate.
	verify bool
	// fallback allows plain HTTP when HTTPS fails at the TLS layer.
	fallback bool
}

// modeFor applies decisions.md D6 to host and the --tls-verify value.
func modeFor(host string, tlsVerify *bool) tlsMode {
	switch {
	case tlsVerify == nil && isLoopback(host):
		return tlsMode{verify: false, fallback: true}
	case tlsVerify == nil:
		return tlsMode{verify: true}
	case *tlsVerify:
		return tlsMode{verify: true}
	default:
		return tlsMode{verify: false, fallback: true}
	}
}

// isLoopback reports whether host ("host[:port]") is localhost, in
// 127.0.0.0/8 or ::1.
func isLoopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if strings.EqualFold(h, "localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// tlsConfig builds the client TLS configuration of host: the system pool
// plus CAs (*.crt) and client certificates (*.cert + *.key) from docker's
// certs.d directories.
//
// References: decisions.md D6.
func tlsConfig(host string, mode tlsMode, certsDirs []string, debugf func(string, ...any)) (*tls.Config, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		RootCAs:            pool,
		InsecureSkipVerify: !mode.verify, //nolint:gosec // decisions.md D6: --tls-verify=false and loopback
	}
	for _, base := range certsDirs {
		if base == "" {
			continue
		}
		if err := loadCertsDir(conf, filepath.Join(base, host), debugf); err != nil {
			return nil, err
		}
	}
	return conf, nil
}

// loadCertsDir adds the certificates of one certs.d/<host> directory.
func loadCertsDir(conf *tls.Config, dir string, debugf func(string, ...any)) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("read certificates directory: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		name := e.Name()
		path := filepath.Join(dir, name)
		switch filepath.Ext(name) {
		case ".crt":
			data, err := os.ReadFile(path)
			if err != nil {
				return fmt.Errorf("read CA certificate: %w", err)
			}
			if !conf.RootCAs.AppendCertsFromPEM(data) {
				return fmt.Errorf("no PEM certificate in %s", path)
			}
			if debugf != nil {
				debugf("tls: trusting CA %s", path)
			}
		case ".cert":
			keyPath := strings.TrimSuffix(path, ".cert") + ".key"
			if _, err := os.Stat(keyPath); err != nil {
				return fmt.Errorf("missing key %s for client certificate %s", keyPath, path)
			}
			pair, err := tls.LoadX509KeyPair(path, keyPath)
			if err != nil {
				return fmt.Errorf("load client certificate %s: %w", path, err)
			}
			conf.Certificates = append(conf.Certificates, pair)
			if debugf != nil {
				debugf("tls: using client certificate %s", path)
			}
		case ".key":
			certPath := strings.TrimSuffix(path, ".key") + ".cert"
			if _, err := os.Stat(certPath); err != nil {
				return fmt.Errorf("missing client certificate %s for key %s", certPath, path)
			}
		}
	}
	return nil
}

// newTransport returns the tuned base transport of a registry.
func newTransport(conf *tls.Config, opts RegistryOptions) *http.Transport {
	dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
	t := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           dialer.DialContext,
		TLSClientConfig:       conf,
		TLSHandshakeTimeout:   10 * time.Second,
		MaxIdleConns:          128,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		ExpectContinueTimeout: time.Second,
		ResponseHeaderTimeout: opts.StallTimeout,
		WriteBufferSize:       64 << 10,
		ReadBufferSize:        64 << 10,
	}
	dial := opts.DialContext
	if opts.dial != nil {
		dial = opts.dial
	}
	if dial != nil {
		t.DialContext = dial
		t.Proxy = nil
	}
	return t
}

// observer sits on the base transport: it writes debug lines (method, URL
// without query, status: never headers or bodies), records Retry-After for
// the whole-operation retries of uploads, and, with a stall timeout, watches
// each response body: a body that makes no progress for the timeout fails
// its reads with ErrStalled.
type observer struct {
	base   http.RoundTripper
	debugf func(string, ...any)
	stall  time.Duration
}

func (o *observer) RoundTrip(req *http.Request) (*http.Response, error) {
	var cancel context.CancelCauseFunc
	if o.stall > 0 {
		var ctx context.Context
		ctx, cancel = context.WithCancelCause(req.Context())
		req = req.WithContext(ctx)
	}
	start := time.Now()
	resp, err := o.base.RoundTrip(req)
	if o.debugf != nil {
		u := req.URL.Scheme + "://" + req.URL.Host + req.URL.Path
		if err != nil {
			o.debugf("%s %s: %s", req.Method, u, describe(err))
		} else {
			o.debugf("%s %s: %s (%s)", req.Method, u, resp.Status, time.Since(start).Round(time.Millisecond))
		}
	}
	if err != nil {
		if cancel != nil {
			cancel(nil)
		}
		return nil, err
	}
	if st, ok := req.Context().Value(attemptKey{}).(*attempt); ok {
		if d := retryAfter(resp); d > 0 {
			st.setRetryAfter(d)
		}
	}
	if resp.StatusCode >= 400 && resp.Body != nil && resp.Body != http.NoBody {
		// Error answers are read only in part: drain them on Close so
		// that the connection is reused (a 404 is part of every cold
		// load).
		resp.Body = &drainingBody{resp.Body}
	}
	if cancel != nil {
		if resp.Body == nil || resp.Body == http.NoBody {
			cancel(nil)
		} else {
			resp.Body = &watchedBody{rc: resp.Body, dog: startWatchdog(o.stall, cancel), cancel: cancel}
		}
	}
	return resp, nil
}

// maxDrain bounds what Close reads of an error answer to keep its
// connection.
const maxDrain = 64 << 10

// drainingBody reads the rest of a (small) response body on Close.
type drainingBody struct{ io.ReadCloser }

func (b *drainingBody) Close() error {
	io.CopyN(io.Discard, b.ReadCloser, maxDrain)
	return b.ReadCloser.Close()
}

// watchedBody is a response body under a stall watchdog.
type watchedBody struct {
	rc     io.ReadCloser
	dog    *watchdog
	cancel context.CancelCauseFunc
}

func (w *watchedBody) Read(p []byte) (int, error) {
	n, err := w.rc.Read(p)
	if n > 0 {
		w.dog.touch()
	}
	if err != nil {
		if serr := w.dog.err(); serr != nil {
			return n, serr
		}
		if err == io.EOF {
			w.dog.stop()
		}
	}
	return n, err
}

func (w *watchedBody) Close() error {
	w.dog.stop()
	err := w.rc.Close()
	w.cancel(nil)
	return err
}

// retryAfter returns the delay a 429 or 503 response asks for, or 0.
func retryAfter(resp *http.Response) time.Duration {
	if resp == nil || (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
		return 0
	}
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		if secs > int64(maxRetryAfter/time.Second) {
			return maxRetryAfter
		}
		return time.Duration(secs) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(time.Until(t), 0), maxRetryAfter)
	}
	return 0
}

// probe is what a GET answered.
type probe struct {
	status int
	header http.Header
	body   []byte // at most 4 KiB
}

// get sends an unauthenticated GET for path with scheme and reads at most 4
// KiB of the answer.
func (r *Registry) get(ctx context.Context, scheme, path string) (*probe, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+r.endpoint+path, nil)
	if err != nil {
		return nil, err
	}
	r.setUserAgent(req)
	resp, err := r.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	return &probe{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

func (r *Registry) setUserAgent(req *http.Request) {
	if r.opts.UserAgent != "" {
		req.Header.Set("User-Agent", r.opts.UserAgent)
	}
}

// scheme settles, once, whether the registry speaks HTTPS or (where
// allowed) plain HTTP, by a GET /v2/. The caller that settles it gets the
// answer of that GET; later callers get nil. Failures that are not TLS
// failures (refused connection, context cancelled) leave it unsettled.
func (r *Registry) scheme(ctx context.Context) (plainHTTP bool, p *probe, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.settled {
		return r.plainHTTP, nil, nil
	}
	p, err = r.get(ctx, "https", "/v2/")
	if err == nil {
		r.settled, r.plainHTTP = true, false
		r.debugf("registry %s: using HTTPS", r.host)
		return false, p, nil
	}
	if ctx.Err() != nil {
		return false, nil, context.Cause(ctx)
	}
	tlsFailed := isTLSError(err)
	if !r.mode.fallback || !(tlsFailed || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
		// An EOF or reset during the handshake may be a plain-HTTP
		// server too: worth the fallback where it is allowed.
		return false, nil, r.connError(err)
	}
	r.debugf("registry %s: HTTPS failed (%s), trying plain HTTP", r.host, describe(err))
	p, herr := r.get(ctx, "http", "/v2/")
	if herr != nil {
		if ctx.Err() != nil {
			return false, nil, context.Cause(ctx)
		}
		if isHeaderTimeout(herr) {
			return false, nil, r.connError(herr)
		}
		return false, nil, newError(ErrUnreachable, herr, fmt.Sprintf(
			"cannot reach registry %s: https: %s; http: %s", r.host, describe(err), describe(herr)))
	}
	r.settled, r.plainHTTP = true, true
	r.debugf("registry %s: using plain HTTP", r.host)
	return true, p, nil
}

// schemeName returns the settled scheme.
func (r *Registry) schemeName() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.plainHTTP {
		return "http"
	}
	return "https"
}

// tlsError explains a TLS failure with what the user can do about it.
func (r *Registry) tlsError(err error) error {
	cause := describe(err)
	var hint string
	switch {
	case isPlainHTTPAnswer(err):
		cause = "the registry answers plain HTTP"
		hint = "use --tls-verify=false to allow plain HTTP"
	case chainHas(err, func(e error) bool { return strings.Contains(e.Error(), "remote error: tls:") }):
		hint = fmt.Sprintf("the registry refused the client certificate: put client.cert and client.key in %s/%s/", r.systemCertsDir(), r.host)
	case isUnknownAuthority(err):
		hint = fmt.Sprintf("use --tls-verify=false or put the CA in %s/%s/ca.crt", r.systemCertsDir(), r.host)
	default:
		hint = "use --tls-verify=false to skip verification"
	}
	return newError(ErrTLS, err, fmt.Sprintf("tls connection to %s failed: %s (%s)", r.host, cause, hint))
}

// connError explains a failure to reach the registry.
func (r *Registry) connError(err error) error {
	if isHeaderTimeout(err) {
		return newError(ErrStalled, err, fmt.Sprintf("registry %s did not answer within %s", r.host, r.opts.StallTimeout))
	}
	if isTLSError(err) {
		return r.tlsError(err)
	}
	return newError(ErrUnreachable, err, fmt.Sprintf("cannot reach registry %s: %s", r.host, describe(err)))
}

func (r *Registry) systemCertsDir() string {
	if r.opts.SystemCertsDir != "" {
		return r.opts.SystemCertsDir
	}
	return DefaultSystemCertsDir
}
