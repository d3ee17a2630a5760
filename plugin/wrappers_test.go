package plugin_test

import (
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/cnrancher/docker-hangar/internal/registrytest"
)

// tags returns ref -> digest of every tag in the registry.
func tags(t *testing.T, reg *registrytest.Registry) map[string]string {
	t.Helper()
	state, err := registrytest.State(reg.Client(), reg.Server.URL)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, s := range state {
		m[s.Ref] = s.Digest
	}
	return m
}

// requestCount counts the requests that reach a registry, and those that
// change it.
type requestCount struct{ all, writes atomic.Int64 }

func (c *requestCount) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.all.Add(1)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			c.writes.Add(1)
		}
		h.ServeHTTP(w, r)
	})
}

// startCounted starts a registry that counts the requests reaching it.
func startCounted(t *testing.T, c *requestCount) *registrytest.Registry {
	t.Helper()
	return registrytest.MustStart(t, registrytest.Options{Wrap: c.wrap})
}
