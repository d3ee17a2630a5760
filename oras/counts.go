package oras

import (
	"context"
	"net/http"
	"sync/atomic"
)

// methods are the HTTP methods Requests counts one by one; any other
// counts as "OTHER".
var methods = [...]string{http.MethodGet, http.MethodHead, http.MethodPut, http.MethodPost, http.MethodPatch, http.MethodDelete, "OTHER"}

// Requests is a count of HTTP requests by method, in a few bytes.
type Requests struct{ n [len(methods)]int32 }

// ByMethod returns the counts by HTTP method, without the methods not
// used (nil when there were none).
func (r Requests) ByMethod() map[string]int {
	var out map[string]int
	for i, n := range r.n {
		if n > 0 {
			if out == nil {
				out = map[string]int{}
			}
			out[methods[i]] = int(n)
		}
	}
	return out
}

// RequestCounts counts the HTTP requests a Registry sends under a context
// (CountRequests), by method: every attempt of a retried request, token
// and Harbor API requests included. It is safe for concurrent use.
type RequestCounts struct{ n [len(methods)]atomic.Int32 }

type countsKey struct{}

// CountRequests returns a context under which the requests of any
// Registry are counted into c.
func CountRequests(ctx context.Context, c *RequestCounts) context.Context {
	return context.WithValue(ctx, countsKey{}, c)
}

func countRequest(ctx context.Context, method string) {
	c, _ := ctx.Value(countsKey{}).(*RequestCounts)
	if c == nil {
		return
	}
	i := len(methods) - 1
	for j, m := range methods[:i] {
		if m == method {
			i = j
			break
		}
	}
	c.n[i].Add(1)
}

// Snapshot returns the counts so far.
func (c *RequestCounts) Snapshot() Requests {
	var r Requests
	for i := range c.n {
		r.n[i] = c.n[i].Load()
	}
	return r
}
