package oras

import (
	"context"
	"maps"
	"sync"
)

// RequestCounts counts the HTTP requests a Registry sends under a context
// (CountRequests), by method: every attempt of a retried request, token
// and Harbor API requests included. It is safe for concurrent use.
type RequestCounts struct {
	mu       sync.Mutex
	byMethod map[string]int
}

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
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byMethod == nil {
		c.byMethod = map[string]int{}
	}
	c.byMethod[method]++
}

// ByMethod returns the counts so far, by HTTP method.
func (c *RequestCounts) ByMethod() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.byMethod)
}
