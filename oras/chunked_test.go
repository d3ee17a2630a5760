package oras

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cnrancher/docker-hangar/archive"
	"github.com/cnrancher/docker-hangar/archive/archivetest"
	"github.com/cnrancher/docker-hangar/internal/registrytest"
	"github.com/opencontainers/go-digest"
)

// bodyLimitRegistry starts a registry behind a proxy refusing bodies over
// limit bytes (as nginx's client_max_body_size does); wrap, when set, sits
// between the proxy and the registry.
func bodyLimitRegistry(t *testing.T, limit int64, wrap func(http.Handler) http.Handler) (*registrytest.Registry, *registrytest.BodyLimitProxy) {
	t.Helper()
	reg := startRegistry(t, wrap)
	proxy, err := registrytest.StartBodyLimitProxy(reg.Server.URL, limit)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(proxy.Close)
	return reg, proxy
}

// countMethod counts the requests of method under /blobs/uploads/.
func countMethod(reqs []string, method string) int {
	n := 0
	for _, r := range reqs {
		if strings.HasPrefix(r, method+" ") && strings.Contains(r, "/blobs/uploads/") {
			n++
		}
	}
	return n
}

func TestChunkedUploads(t *testing.T) {
	t.Run("413 on a monolithic upload falls back to chunks, remembered by the registry", func(t *testing.T) {
		const limit = 1 << 20
		reg, proxy := bodyLimitRegistry(t, limit, nil)
		opts, log := testOptions(t)
		r := mustRegistry(t, proxy.Host(), opts)
		ctx := testContext(t)
		repo := mustRepository(t, r, "library/big")
		blob := randomBlob(t, 5<<20+123)
		open, opens := blob.countingOpen()
		if err := repo.PushBlob(ctx, blob.desc, open); err != nil {
			t.Fatalf("PushBlob: %v\n%s", err, log)
		}
		if got := readBlob(t, reg, "library/big", blob.desc.Digest); !bytes.Equal(got, blob.data) {
			t.Fatal("blob differs")
		}
		refused := proxy.Refused()
		if len(refused) == 0 || refused[0] != blob.desc.Size {
			t.Fatalf("refused %v; want the monolithic body first", refused)
		}
		t.Logf("refused %v, chunk size now %d, %d opens", refused, r.chunkSize.Load(), opens())
		if cs := r.chunkSize.Load(); cs <= 0 || cs > limit {
			t.Fatalf("chunk size %d; want at most the limit %d", cs, limit)
		}
		// One session for the monolithic attempt, one for the chunks:
		// a chunk refused as too large resumes its session.
		if n := countMethod(proxy.Requests(), http.MethodPost); n != 2 {
			t.Fatalf("%d upload sessions opened; want 2\n%s", n, strings.Join(proxy.Requests(), "\n"))
		}
		// The next big blob goes in chunks at once: no 413 at all.
		second := randomBlob(t, 3<<20)
		if err := mustRepository(t, r, "library/other").PushBlob(ctx, second.desc, second.open); err != nil {
			t.Fatalf("second PushBlob: %v", err)
		}
		if n := len(proxy.Refused()); n != len(refused) {
			t.Fatalf("second upload was refused %d times; the registry should remember the chunk size", n-len(refused))
		}
		if got := readBlob(t, reg, "library/other", second.desc.Digest); !bytes.Equal(got, second.data) {
			t.Fatal("second blob differs")
		}
		// A small blob still goes in one request.
		small := randomBlob(t, 1000)
		before := countMethod(proxy.Requests(), http.MethodPatch)
		if err := repo.PushBlob(ctx, small.desc, small.open); err != nil {
			t.Fatal(err)
		}
		if countMethod(proxy.Requests(), http.MethodPatch) != before {
			t.Fatal("a blob smaller than the chunk size was sent in chunks")
		}
	})

	t.Run("MaxChunkSize forces chunks", func(t *testing.T) {
		reg := startRegistry(t, nil)
		proxy, err := registrytest.StartBodyLimitProxy(reg.Server.URL, 1<<40)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(proxy.Close)
		opts, _ := testOptions(t)
		opts.MaxChunkSize = 256 << 10
		r := mustRegistry(t, proxy.Host(), opts)
		blob := randomBlob(t, 1<<20+1)
		if err := mustRepository(t, r, "library/app").PushBlob(testContext(t), blob.desc, blob.open); err != nil {
			t.Fatal(err)
		}
		if got := readBlob(t, reg, "library/app", blob.desc.Digest); !bytes.Equal(got, blob.data) {
			t.Fatal("blob differs")
		}
		if n := countMethod(proxy.Requests(), http.MethodPatch); n != 5 {
			t.Fatalf("%d PATCH requests; want 5 chunks of at most 256 KiB", n)
		}
	})

	t.Run("mount declined uploads in chunks", func(t *testing.T) {
		reg, proxy := bodyLimitRegistry(t, 512<<10, nil)
		opts, _ := testOptions(t)
		opts.MaxChunkSize = 256 << 10
		r := mustRegistry(t, proxy.Host(), opts)
		ctx := testContext(t)
		blob := randomBlob(t, 700<<10)
		mounted, err := mustRepository(t, r, "library/dst").MountBlob(ctx, blob.desc, "library/empty", blob.open)
		if err != nil || mounted {
			t.Fatalf("MountBlob = %t, %v; want uploaded", mounted, err)
		}
		if got := readBlob(t, reg, "library/dst", blob.desc.Digest); !bytes.Equal(got, blob.data) {
			t.Fatal("blob differs")
		}
		mounted, err = mustRepository(t, r, "library/dst2").MountBlob(ctx, blob.desc, "library/dst", blob.open)
		if err != nil || !mounted {
			t.Fatalf("MountBlob from a repository with the blob = %t, %v; want mounted", mounted, err)
		}
	})

	t.Run("a chunk cut mid-way is retried", func(t *testing.T) {
		var patches atomic.Int32
		reg, proxy := bodyLimitRegistry(t, 1<<40, func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPatch && patches.Add(1) == 2 {
					_, _ = io.CopyN(io.Discard, r.Body, r.ContentLength/2)
					panic(http.ErrAbortHandler)
				}
				next.ServeHTTP(w, r)
			})
		})
		opts, _ := testOptions(t)
		opts.MaxChunkSize = 256 << 10
		r := mustRegistry(t, proxy.Host(), opts)
		blob := randomBlob(t, 1<<20)
		open, opens := blob.countingOpen()
		if err := mustRepository(t, r, "library/app").PushBlob(testContext(t), blob.desc, open); err != nil {
			t.Fatal(err)
		}
		if got := readBlob(t, reg, "library/app", blob.desc.Digest); !bytes.Equal(got, blob.data) {
			t.Fatal("blob differs")
		}
		if opens() != 2 {
			t.Fatalf("opened %d times; want 2 (one retry)", opens())
		}
	})

	t.Run("the registry's offset wins after a 416", func(t *testing.T) {
		var patches atomic.Int32
		reg, proxy := bodyLimitRegistry(t, 1<<40, func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodPatch && patches.Add(1) == 3 {
					_, _ = io.Copy(io.Discard, r.Body)
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
					_, _ = io.WriteString(w, `{"errors":[{"code":"RANGE_INVALID","message":"invalid content range"}]}`)
					return
				}
				next.ServeHTTP(w, r)
			})
		})
		opts, _ := testOptions(t)
		opts.MaxChunkSize = 256 << 10
		r := mustRegistry(t, proxy.Host(), opts)
		blob := randomBlob(t, 1<<20)
		if err := mustRepository(t, r, "library/app").PushBlob(testContext(t), blob.desc, blob.open); err != nil {
			t.Fatal(err)
		}
		if got := readBlob(t, reg, "library/app", blob.desc.Digest); !bytes.Equal(got, blob.data) {
			t.Fatal("blob differs")
		}
		if n := countMethod(proxy.Requests(), http.MethodPost); n != 1 {
			t.Fatalf("%d POST requests; want the session resumed, not restarted", n)
		}
	})

	t.Run("corrupt content in chunks is never committed", func(t *testing.T) {
		reg := startRegistry(t, nil)
		opts, _ := testOptions(t)
		opts.MaxChunkSize = 256 << 10
		r := mustRegistry(t, reg.Host(), opts)
		blob := randomBlob(t, 1<<20)
		bad := append([]byte(nil), blob.data...)
		bad[len(bad)-1] ^= 1
		open, opens := newBlob(bad).countingOpen()
		err := mustRepository(t, r, "library/app").PushBlob(testContext(t), blob.desc, open)
		if !errors.Is(err, ErrDigestMismatch) || opens() != 1 {
			t.Fatalf("PushBlob = %v after %d opens; want ErrDigestMismatch after 1", err, opens())
		}
		if hasBlob(t, reg, "library/app", blob.desc.Digest) {
			t.Fatal("corrupt content was committed")
		}
	})

	t.Run("a body limit below the smallest chunk fails clearly", func(t *testing.T) {
		_, proxy := bodyLimitRegistry(t, 1000, nil)
		opts, _ := testOptions(t)
		r := mustRegistry(t, proxy.Host(), opts)
		blob := randomBlob(t, 300<<10)
		err := mustRepository(t, r, "library/app").PushBlob(testContext(t), blob.desc, blob.open)
		if err == nil || !strings.Contains(err.Error(), "too large") {
			t.Fatalf("PushBlob = %v; want a too-large error", err)
		}
		t.Log(err)
		if n := len(proxy.Refused()); n > 10 {
			t.Fatalf("%d refused requests; the chunk size must reach its minimum quickly", n)
		}
	})
}

// verifyingSource is a blob source that says it checks the digest itself
// (as the archive reader does).
type verifyingSource struct {
	io.Reader
	d digest.Digest
}

func (v *verifyingSource) VerifiesDigest(d digest.Digest) bool { return d == v.d }
func (v *verifyingSource) Close() error                        { return nil }

func TestChunkedUploadsTrustVerifyingSources(t *testing.T) {
	reg := startRegistry(t, nil)
	opts, _ := testOptions(t)
	opts.MaxChunkSize = 256 << 10
	r := mustRegistry(t, reg.Host(), opts)
	blob := randomBlob(t, 600<<10)
	open := func() (io.ReadCloser, error) {
		return &verifyingSource{Reader: bytes.NewReader(blob.data), d: blob.desc.Digest}, nil
	}
	repo := mustRepository(t, r, "library/app")
	if err := repo.PushBlob(testContext(t), blob.desc, open); err != nil {
		t.Fatal(err)
	}
	if got := readBlob(t, reg, "library/app", blob.desc.Digest); !bytes.Equal(got, blob.data) {
		t.Fatal("blob differs")
	}
	// The body does not hash what a verifying source verifies.
	b := newUploadBody(blob.desc, open)
	if _, err := io.Copy(io.Discard, b); err != nil || b.hash != nil {
		t.Fatalf("uploadBody over a verifying source: err %v, hashing %t", err, b.hash != nil)
	}
}

// TestChunkedUploadsFromAnArchive uploads in chunks straight from the
// archive reader, which verifies the digest itself: a good blob lands, a
// corrupt one fails on its last chunk and is never committed.
func TestChunkedUploadsFromAnArchive(t *testing.T) {
	layer := archivetest.Layer{Size: 1<<20 + 17, Seed: 7}
	path := filepath.Join(t.TempDir(), "a.zip")
	w, err := archivetest.Write(path, []archivetest.Image{{Source: "docker.io/library/app", Tag: "v1",
		Manifests: []archivetest.Manifest{{Layers: []archivetest.Layer{layer}}}}}, archivetest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	d := archivetest.LayerDigest(layer)
	desc := w.Images[0].Manifests[0].Layers[0]
	if desc.Digest != d {
		t.Fatalf("layer descriptor %s; want %s", desc.Digest, d)
	}
	reg := startRegistry(t, nil)
	opts, _ := testOptions(t)
	opts.MaxChunkSize = 256 << 10
	r := mustRegistry(t, reg.Host(), opts)
	push := func(repo string) error {
		ar, err := archive.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer ar.Close()
		return mustRepository(t, r, repo).PushBlob(testContext(t), desc, func() (io.ReadCloser, error) { return ar.Open(d) })
	}
	if err := push("library/good"); err != nil {
		t.Fatalf("PushBlob from the archive: %v", err)
	}
	if got := readBlob(t, reg, "library/good", d); digest.FromBytes(got) != d {
		t.Fatal("blob differs")
	}
	if err := archivetest.FlipByte(path, d); err != nil {
		t.Fatal(err)
	}
	err = push("library/bad")
	if !errors.Is(err, archive.ErrDigestMismatch) {
		t.Fatalf("PushBlob of a corrupt archive blob = %v; want archive.ErrDigestMismatch", err)
	}
	if hasBlob(t, reg, "library/bad", d) {
		t.Fatal("corrupt content was committed")
	}
}

// TestChunkedUploadTokenExpiry: a chunk refused with 401 (the session's
// token expired) is sent again with a fresh authorization, in the same
// session.
func TestChunkedUploadTokenExpiry(t *testing.T) {
	ts := registrytest.StartTokenServer(map[string]registrytest.TokenUser{"w": {Password: "w-pass", Actions: []string{"pull", "push"}}})
	t.Cleanup(ts.Close)
	var patches, posts atomic.Int32
	gate := ts.Gate()
	reg := startRegistry(t, func(next http.Handler) http.Handler {
		gated := gate(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/blobs/uploads/") && r.Header.Get("Authorization") != "" {
				posts.Add(1)
			}
			if r.Method == http.MethodPatch && patches.Add(1) == 2 {
				_, _ = io.Copy(io.Discard, r.Body)
				w.Header().Set("WWW-Authenticate", `Bearer realm="`+ts.Realm()+`",service="`+ts.Service+`",error="invalid_token"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			gated.ServeHTTP(w, r)
		})
	})
	opts, _ := testOptions(t)
	opts.MaxChunkSize = 256 << 10
	if err := registrytest.WriteDockerConfig(opts.ConfigDir, registrytest.DockerConfig{
		Auths: map[string]registrytest.DockerAuth{reg.Host(): {Username: "w", Password: "w-pass"}},
	}); err != nil {
		t.Fatal(err)
	}
	r := mustRegistry(t, reg.Host(), opts)
	blob := randomBlob(t, 1<<20)
	if err := mustRepository(t, r, "library/app").PushBlob(testContext(t), blob.desc, blob.open); err != nil {
		t.Fatalf("PushBlob: %v", err)
	}
	// Read the blob from the registry itself, behind the token gate.
	rec := httptest.NewRecorder()
	reg.Handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/v2/library/app/blobs/"+blob.desc.Digest.String(), nil))
	if rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), blob.data) {
		t.Fatalf("registry has %d, %d bytes; want the blob", rec.Code, rec.Body.Len())
	}
	if n := posts.Load(); n != 1 {
		t.Fatalf("%d upload sessions; want the session kept", n)
	}
}
