package harbortest

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
)

// Request is one request a Proxy forwarded.
type Request struct {
	Method string
	// Path and Query are the request's URL path and raw query.
	Path, Query string
	// Auth is the scheme of its Authorization header ("Basic", "Bearer"
	// or "").
	Auth string
	// Status is Harbor's answer.
	Status int
	// Body is the request body of REST API calls (under /api/), else nil.
	Body []byte
}

// IsWrite reports whether the request may write to the registry or to
// Harbor: POST, PUT, PATCH or DELETE.
func (r Request) IsWrite() bool {
	switch r.Method {
	case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// String is "METHOD path?query".
func (r Request) String() string {
	s := r.Method + " " + r.Path
	if r.Query != "" {
		s += "?" + r.Query
	}
	return s
}

// Proxy is a recording reverse proxy in front of a Harbor on loopback, as
// a load balancer in front of a real Harbor is: clients use Proxy.Host as
// the registry, and the absolute URLs Harbor answers with (token realm,
// upload locations) are rewritten to the proxy, as Harbor's external URL
// would name it. So every request a client sends goes through the proxy
// and is recorded.
type Proxy struct {
	// Host is the proxy's "127.0.0.1:port".
	Host string

	server *httptest.Server
	mu     sync.Mutex
	reqs   []Request
}

// StartProxy starts a Proxy in front of h; close it with Close.
func (h *Harbor) StartProxy() *Proxy {
	target, _ := url.Parse(h.URL())
	p := &Proxy{}
	p.server = httptest.NewUnstartedServer(nil)
	p.Host = p.server.Listener.Addr().String()
	from, to := h.URL(), "http://"+p.Host
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Host = target.Host
		},
		ModifyResponse: func(resp *http.Response) error {
			for _, name := range []string{"Location", "Www-Authenticate"} {
				if v := resp.Header.Get(name); v != "" {
					resp.Header.Set(name, strings.ReplaceAll(v, from, to))
				}
			}
			return nil
		},
	}
	p.server.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := Request{Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery}
		rec.Auth, _, _ = strings.Cut(r.Header.Get("Authorization"), " ")
		if strings.HasPrefix(r.URL.Path, "/api/") && r.Body != nil {
			rec.Body, _ = io.ReadAll(io.LimitReader(r.Body, 1<<20))
			r.Body = io.NopCloser(bytes.NewReader(rec.Body))
		}
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		rp.ServeHTTP(sw, r)
		rec.Status = sw.status
		p.mu.Lock()
		p.reqs = append(p.reqs, rec)
		p.mu.Unlock()
	})
	p.server.Start()
	return p
}

// Requests returns the requests forwarded so far, in the order they ended.
func (p *Proxy) Requests() []Request {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Request(nil), p.reqs...)
}

// Reset forgets the requests recorded so far.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reqs = nil
}

// Close stops the proxy.
func (p *Proxy) Close() { p.server.Close() }

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
