package registrytest

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
)

// Faults injects registry failures in front of a handler at fixed rates, so
// that every run injects the same number of each: one request in
// Every503 is answered 503, one in Every429 is answered 429 with
// Retry-After, and one blob upload body (PUT/PATCH) in EveryCut has its
// connection cut after half of its bytes. Zero disables a kind.
type Faults struct {
	Every503   int
	Every429   int
	RetryAfter string
	EveryCut   int

	// Off turns the faults off (e.g. to read the state afterwards).
	Off atomic.Bool

	requests, uploads atomic.Int64
	// Counts of injected faults.
	Served503, Served429, Cut atomic.Int64
}

// every reports whether the n-th event (1-based) is one of one in k.
func every(n int64, k int) bool { return k > 0 && n%int64(k) == int64(k/2) }

// Wrap returns next with faults injected.
func (f *Faults) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.Off.Load() || !strings.HasPrefix(r.URL.Path, "/v2/") {
			next.ServeHTTP(w, r)
			return
		}
		n := f.requests.Add(1)
		switch {
		case every(n, f.Every503):
			f.Served503.Add(1)
			io.Copy(io.Discard, r.Body)
			http.Error(w, "injected fault", http.StatusServiceUnavailable)
			return
		case every(n+1, f.Every429):
			f.Served429.Add(1)
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Retry-After", f.RetryAfter)
			http.Error(w, "injected fault", http.StatusTooManyRequests)
			return
		}
		upload := (r.Method == http.MethodPut || r.Method == http.MethodPatch) && strings.Contains(r.URL.Path, "/blobs/uploads/") && r.ContentLength > 1
		if upload && every(f.uploads.Add(1), f.EveryCut) {
			f.Cut.Add(1)
			io.CopyN(io.Discard, r.Body, r.ContentLength/2)
			if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
				conn.Close()
				return
			}
			http.Error(w, "injected fault", http.StatusServiceUnavailable)
			return
		}
		next.ServeHTTP(w, r)
	})
}
