package registrytest

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
)

// BodyLimitProxy is a reverse proxy on loopback that refuses request
// bodies larger than a limit with 413 before reading them, as nginx does
// with client_max_body_size, and forwards everything else to a registry.
type BodyLimitProxy struct {
	// Server serves the proxy; clients use its Host.
	Server *httptest.Server
	// Limit is the largest body accepted, in bytes.
	Limit int64

	mu      sync.Mutex
	refused []int64 // sizes refused, in order
	bodies  []string
}

// StartBodyLimitProxy starts a proxy in front of the registry at target
// (e.g. a Registry's Server.URL) refusing bodies over limit bytes. Close
// it with Close.
func StartBodyLimitProxy(target string, limit int64) (*BodyLimitProxy, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, err
	}
	p := &BodyLimitProxy{Limit: limit}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	p.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.bodies = append(p.bodies, fmt.Sprintf("%s %s %d", r.Method, r.URL.Path, r.ContentLength))
		p.mu.Unlock()
		if r.ContentLength > limit || (r.ContentLength < 0 && r.Body != http.NoBody) {
			p.mu.Lock()
			p.refused = append(p.refused, r.ContentLength)
			p.mu.Unlock()
			w.Header().Set("Content-Type", "text/html")
			w.Header().Set("Connection", "close")
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			_, _ = fmt.Fprint(w, "<html><head><title>413 Request Entity Too Large</title></head><body><h1>413 Request Entity Too Large</h1></body></html>\n")
			return
		}
		rp.ServeHTTP(w, r)
	}))
	return p, nil
}

// Host returns host:port of the proxy.
func (p *BodyLimitProxy) Host() string {
	u, _ := url.Parse(p.Server.URL)
	return u.Host
}

// Refused returns the sizes of the bodies refused, in order.
func (p *BodyLimitProxy) Refused() []int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int64(nil), p.refused...)
}

// Requests returns "METHOD path Content-Length" of every request, in
// order.
func (p *BodyLimitProxy) Requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.bodies...)
}

// Close stops the proxy.
func (p *BodyLimitProxy) Close() { p.Server.Close() }
