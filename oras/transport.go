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
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
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
	// RootCAs stays nil (the system's roots, which Go loads at the first
	// verification: 10 ms of CPU, a tenth of a warm load) unless certs.d
	// adds a CA.
	conf := &tls.Config{
		MinVersion:         tls.VersionTLS12,
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
			if conf.RootCAs == nil {
				if conf.RootCAs, err = x509.SystemCertPool(); err != nil || conf.RootCAs == nil {
					conf.RootCAs = x509.NewCertPool()
				}
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

// uploadBufferSize is the write buffer of the connections that upload
// blobs: bodies go out in 64 KiB writes rather than 4 KiB ones. The other
// connections (manifests, HEADs, tokens) keep net/http's 4 KiB buffers: a
// warm re-load opens dozens of them, and 128 KiB each was half of what it
// allocated.
const uploadBufferSize = 64 << 10

// newTransport returns the tuned base transport of a registry, with
// writeBuffer bytes of write buffer per connection (0: net/http's).
// Timeouts of requests are the observer's, not the transport's.
func newTransport(conf *tls.Config, opts RegistryOptions, writeBuffer int) *http.Transport {
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
		WriteBufferSize:       writeBuffer,
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

// maxRedirects bounds the redirects a request follows.
const maxRedirects = 10

// checkRedirect is the redirect policy of every client of a Registry
// (registry API, token service, Harbor API): at most maxRedirects
// redirects, none from HTTPS to plain HTTP (ErrTLS), and once a redirect
// leaves the origin of the first request (scheme, host and port) the
// request goes on without Authorization or Cookie headers. oras' auth
// client adds the same stripping for the requests it sends; this covers
// the requests that carry credentials set by this package (Harbor's basic
// auth).
func (r *Registry) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= maxRedirects {
		return fmt.Errorf("stopped after %d redirects", maxRedirects)
	}
	prev := via[len(via)-1]
	if prev.URL.Scheme == "https" && req.URL.Scheme != "https" {
		return newError(ErrTLS, nil, fmt.Sprintf("registry %s redirected %s %s from https to %s://%s: refused (a redirect never leaves HTTPS)",
			r.host, prev.Method, prev.URL.Path, req.URL.Scheme, req.URL.Host))
	}
	left := !sameOrigin(via[0].URL, req.URL)
	for _, v := range via[1:] {
		left = left || !sameOrigin(via[0].URL, v.URL)
	}
	if left && (req.Header.Get("Authorization") != "" || req.Header.Get("Cookie") != "") {
		req.Header.Del("Authorization")
		req.Header.Del("Cookie")
		r.debugf("registry %s: redirect of %s %s to %s://%s: credentials not sent to another origin",
			r.host, prev.Method, prev.URL.Path, req.URL.Scheme, req.URL.Host)
	}
	return nil
}

// sameOrigin reports whether a and b have the same scheme, host and port
// (default ports made explicit).
func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) && strings.EqualFold(a.Hostname(), b.Hostname()) && port(a) == port(b)
}

func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "http") {
		return "80"
	}
	return "443"
}

// observer sits on the base transport, below the retries: it fails fast
// once the registry was given up for unreachable, records answers and
// connection failures for reachability, writes debug lines (method, URL
// without query, status: never headers or bodies), records Retry-After
// for the whole-operation retries of uploads, and enforces the stall
// timeout T (RegistryOptions.StallTimeout; 0 disables it):
//   - a small request (everything but blob bodies: ping, tokens, HEADs,
//     manifests, upload POSTs and final PUTs, Harbor's API) must be
//     answered completely, body included, within T;
//   - a blob upload (PUT or PATCH with a body under /blobs/) must send at
//     least max(1, T × minimum rate) bytes in every window of T, then be
//     answered within T of its last byte;
//   - a blob download (GET under /blobs/) must be answered within T, and
//     then receive its body at the same minimum rate.
//
// A request that breaks these fails with an error wrapping ErrStalled.
type observer struct {
	base     http.RoundTripper
	debugf   func(string, ...any)
	stall    time.Duration
	minBytes int64 // per window of stall, for blob bodies
	reach    *reachability
}

// isBlobTransfer reports whether req moves a blob's bytes.
func isBlobTransfer(req *http.Request) (upload, download bool) {
	if !strings.Contains(req.URL.Path, "/blobs/") {
		return false, false
	}
	switch req.Method {
	case http.MethodGet:
		return false, true
	case http.MethodPut, http.MethodPatch:
		return req.Body != nil && req.Body != http.NoBody && req.ContentLength != 0, false
	}
	return false, false
}

func (o *observer) RoundTrip(req *http.Request) (*http.Response, error) {
	countRequest(req.Context(), req.Method)
	if err := o.reach.failFast(); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	req = req.WithContext(ctx)
	w := &watch{cancel: cancel}
	upload, download := isBlobTransfer(req)
	if o.stall > 0 {
		switch {
		case upload:
			w.rate(o.stall, o.minBytes)
			req.Body = &sentBody{rc: req.Body, w: w, stall: o.stall}
		case download:
			w.deadline(o.stall, "no answer from the registry within %s")
		default:
			w.deadline(o.stall, "no complete answer from the registry within %s")
		}
	}
	start := time.Now()
	resp, err := o.base.RoundTrip(req)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, ErrStalled) {
			err = cause
		}
		w.stop()
		cancel(nil)
		if classify(err) == classNetwork {
			o.reach.connectionFailed(err)
		}
		if o.debugf != nil {
			o.debugf("%s %s: %s", req.Method, redactURL(req.URL), describe(err))
		}
		return nil, err
	}
	o.reach.answer()
	if o.debugf != nil {
		o.debugf("%s %s: %s (%s)", req.Method, redactURL(req.URL), resp.Status, time.Since(start).Round(time.Millisecond))
	}
	if st, ok := req.Context().Value(attemptKey{}).(*attempt); ok {
		if d := retryAfter(resp); d > 0 {
			st.setRetryAfter(d)
		}
	}
	if resp.Body == nil || resp.Body == http.NoBody {
		w.stop()
		cancel(nil)
		return resp, nil
	}
	if o.stall > 0 {
		switch {
		case download:
			w.rate(o.stall, o.minBytes)
		case upload:
			// The answer to an upload is small.
			w.deadline(o.stall, "no complete answer from the registry within %s")
		}
	}
	// Error answers are read only in part: drain them on Close so that
	// the connection is reused (a 404 is part of every cold load).
	resp.Body = &answerBody{rc: resp.Body, ctx: ctx, w: w, cancel: cancel, drain: resp.StatusCode >= 400}
	return resp, nil
}

// redactURL returns u without its query (upload URLs carry state).
func redactURL(u *url.URL) string {
	return u.Scheme + "://" + u.Host + u.Path
}

// maxDrain bounds what Close reads of an error answer to keep its
// connection.
const maxDrain = 64 << 10

// answerBody is a response body under the observer's watch; reads fail
// with the stall error once the watch fired.
type answerBody struct {
	rc     io.ReadCloser
	ctx    context.Context
	w      *watch
	cancel context.CancelCauseFunc
	drain  bool
}

func (b *answerBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.w.add(n)
	if err != nil {
		if cause := context.Cause(b.ctx); errors.Is(cause, ErrStalled) {
			return n, cause
		}
		if err == io.EOF {
			b.w.stop()
		}
	}
	return n, err
}

func (b *answerBody) Close() error {
	if b.drain && b.ctx.Err() == nil {
		_, _ = io.CopyN(io.Discard, b.rc, maxDrain)
	}
	err := b.rc.Close()
	b.w.stop()
	b.cancel(nil)
	return err
}

// sentBody is an upload's request body under the observer's watch: bytes
// read count as progress, and its end starts the wait for the answer.
type sentBody struct {
	rc    io.ReadCloser
	w     *watch
	stall time.Duration
	ended atomic.Bool
}

func (b *sentBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	b.w.add(n)
	if err == io.EOF && !b.ended.Swap(true) {
		b.w.deadline(b.stall, "no answer from the registry within %s of the end of the upload")
	}
	return n, err
}

func (b *sentBody) Close() error { return b.rc.Close() }

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
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if err != nil && classify(err) == classStalled {
		return nil, err
	}
	return &probe{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

func (r *Registry) setUserAgent(req *http.Request) {
	if r.opts.UserAgent != "" {
		req.Header.Set("User-Agent", r.opts.UserAgent)
	}
}

// schemeResult is what settling the scheme found.
type schemeResult struct {
	plainHTTP bool
	probe     *probe // the GET /v2/ answer, for the callers of that call only
}

// scheme settles, once, whether the registry speaks HTTPS or (where
// allowed) plain HTTP, by a GET /v2/. Concurrent callers share that GET
// and get its answer; later callers get nil. Each caller returns when its
// own context ends. A failure leaves the scheme unsettled.
func (r *Registry) scheme(ctx context.Context) (plainHTTP bool, p *probe, err error) {
	res, err := r.schemeOnce.do(ctx, r.settleScheme, func(v schemeResult, err error) (schemeResult, bool) {
		return schemeResult{plainHTTP: v.plainHTTP}, err == nil
	})
	return res.plainHTTP, res.probe, err
}

func (r *Registry) settleScheme(ctx context.Context) (schemeResult, error) {
	p, err := r.get(ctx, "https", "/v2/")
	if err == nil {
		r.noteChallenge(p)
		r.setPlainHTTP(false)
		r.debugf("registry %s: using HTTPS", r.host)
		return schemeResult{probe: p}, nil
	}
	if ctx.Err() != nil {
		return schemeResult{}, context.Cause(ctx)
	}
	if !r.mode.fallback || !(isTLSError(err) || errors.Is(err, io.EOF) || errors.Is(err, syscall.ECONNRESET)) {
		// An EOF or reset during the handshake may be a plain-HTTP
		// server too: worth the fallback where it is allowed.
		return schemeResult{}, r.connError(err)
	}
	r.debugf("registry %s: HTTPS failed (%s), trying plain HTTP", r.host, describe(err))
	p, herr := r.get(ctx, "http", "/v2/")
	if herr != nil {
		if ctx.Err() != nil {
			return schemeResult{}, context.Cause(ctx)
		}
		if classify(herr) == classStalled {
			return schemeResult{}, r.connError(herr)
		}
		return schemeResult{}, newError(ErrUnreachable, herr, fmt.Sprintf(
			"cannot reach registry %s: https: %s; http: %s", r.host, describe(err), describe(herr)))
	}
	r.noteChallenge(p)
	r.setPlainHTTP(true)
	r.debugf("registry %s: using plain HTTP", r.host)
	return schemeResult{plainHTTP: true, probe: p}, nil
}

// noteChallenge records whether the probe was challenged for a bearer
// token.
func (r *Registry) noteChallenge(p *probe) {
	challenge := strings.TrimSpace(p.header.Get("Www-Authenticate"))
	r.bearer.Store(p.status == http.StatusUnauthorized && len(challenge) >= 6 && strings.EqualFold(challenge[:6], "bearer"))
}

func (r *Registry) setPlainHTTP(v bool) {
	r.mu.Lock()
	r.plainHTTP = v
	r.mu.Unlock()
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
	case errors.Is(err, http.ErrSchemeMismatch):
		cause = "the registry answers plain HTTP"
		hint = "use --tls-verify=false to allow plain HTTP"
	case isRemoteAlert(err):
		hint = fmt.Sprintf("the registry refused the client certificate: put client.cert and client.key in %s/%s/", r.systemCertsDir(), r.host)
	case errors.As(err, new(x509.UnknownAuthorityError)):
		hint = fmt.Sprintf("use --tls-verify=false or put the CA in %s/%s/ca.crt", r.systemCertsDir(), r.host)
	default:
		hint = "use --tls-verify=false to skip verification"
	}
	return newError(ErrTLS, err, fmt.Sprintf("tls connection to %s failed: %s (%s)", r.host, cause, hint))
}

// connError explains a failure to reach the registry: ErrStalled,
// ErrTLS, or ErrUnreachable.
func (r *Registry) connError(err error) error {
	switch classify(err) {
	case classStalled:
		return newError(ErrStalled, err, fmt.Sprintf("registry %s did not answer within %s", r.host, r.opts.StallTimeout))
	case classTLS:
		if errors.Is(err, ErrTLS) {
			return err
		}
		return r.tlsError(err)
	case classUnreachable:
		return err
	}
	return newError(ErrUnreachable, err, fmt.Sprintf("cannot reach registry %s: %s", r.host, describe(err)))
}

func (r *Registry) systemCertsDir() string {
	if r.opts.SystemCertsDir != "" {
		return r.opts.SystemCertsDir
	}
	return DefaultSystemCertsDir
}
