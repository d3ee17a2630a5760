package oras

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cnrancher/docker-hangar/internal/registrytest"
)

// credentialSink records the Authorization headers it receives.
type credentialSink struct {
	srv *httptest.Server
	mu  sync.Mutex
	got []string // "METHOD path: Authorization"
}

func newCredentialSink(t *testing.T, tlsServer bool) *credentialSink {
	t.Helper()
	s := &credentialSink{}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.got = append(s.got, r.Method+" "+r.URL.Path+": "+r.Header.Get("Authorization"))
		s.mu.Unlock()
		w.WriteHeader(http.StatusUnauthorized)
	})
	if tlsServer {
		s.srv = httptest.NewTLSServer(h)
	} else {
		s.srv = httptest.NewServer(h)
	}
	t.Cleanup(s.srv.Close)
	return s
}

func (s *credentialSink) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

// redirecting sends requests to paths matching match to target+path with
// a 307.
func redirecting(match func(*http.Request) bool, target func(*http.Request) string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if match(r) {
				http.Redirect(w, r, target(r), http.StatusTemporaryRedirect)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

func TestRedirectsNeverCarryCredentials(t *testing.T) {
	const user, pass = "admin", "Harbor12345"
	isProjects := func(r *http.Request) bool { return r.URL.Path == "/api/v2.0/projects" }

	t.Run("harbor API redirected to another port", func(t *testing.T) {
		sink := newCredentialSink(t, false)
		api := &harborAPI{postStatus: http.StatusCreated}
		reg := startRegistry(t, func(next http.Handler) http.Handler {
			return redirecting(isProjects, func(r *http.Request) string { return sink.srv.URL + r.URL.RequestURI() })(api.wrap(next))
		})
		r := harborClient(t, reg.Host(), user, pass)
		_, err := r.EnsureHarborProject(testContext(t), "team")
		if err == nil {
			t.Fatal("EnsureHarborProject succeeded against a redirect to a server that refuses it")
		}
		got := sink.requests()
		if len(got) == 0 {
			t.Fatal("the redirect was not followed at all")
		}
		for _, g := range got {
			if !strings.HasSuffix(g, ": ") {
				t.Fatalf("another origin received credentials: %q", g)
			}
		}
	})

	t.Run("harbor API redirected from https to http", func(t *testing.T) {
		sink := newCredentialSink(t, false)
		ca, err := registrytest.NewCA()
		if err != nil {
			t.Fatal(err)
		}
		conf, err := ca.ServerTLS("127.0.0.1")
		if err != nil {
			t.Fatal(err)
		}
		api := &harborAPI{postStatus: http.StatusCreated}
		reg := registrytest.MustStart(t, registrytest.Options{TLS: conf, Wrap: func(next http.Handler) http.Handler {
			return redirecting(isProjects, func(r *http.Request) string { return sink.srv.URL + r.URL.RequestURI() })(api.wrap(next))
		}})
		r := harborClient(t, reg.Host(), user, pass)
		_, err = r.EnsureHarborProject(testContext(t), "team")
		if !errors.Is(err, ErrTLS) || !strings.Contains(err.Error(), "from https to http") {
			t.Fatalf("EnsureHarborProject = %v; want a refused https-to-http redirect (ErrTLS)", err)
		}
		secretsAbsent(t, "error", err.Error(), pass)
		if got := sink.requests(); len(got) != 0 {
			t.Fatalf("the plain-HTTP target was contacted: %q", got)
		}
	})

	t.Run("harbor API redirected on the same origin keeps working", func(t *testing.T) {
		api := &harborAPI{postStatus: http.StatusCreated}
		moved := func(r *http.Request) bool { return r.URL.Path == "/moved/api/v2.0/projects" }
		reg := startRegistry(t, func(next http.Handler) http.Handler {
			inner := api.wrap(next)
			return redirecting(isProjects, func(r *http.Request) string { return "/moved" + r.URL.RequestURI() })(
				http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if moved(r) {
						r.URL.Path = strings.TrimPrefix(r.URL.Path, "/moved")
					}
					inner.ServeHTTP(w, r)
				}))
		})
		r := harborClient(t, reg.Host(), user, pass)
		created, err := r.EnsureHarborProject(testContext(t), "team")
		if err != nil || !created {
			t.Fatalf("EnsureHarborProject = %t, %v; want created through a same-origin redirect", created, err)
		}
	})

	t.Run("registry API redirected to another port", func(t *testing.T) {
		sink := newCredentialSink(t, false)
		authCfg, err := registrytest.HtpasswdAuth(filepath.Join(t.TempDir(), "htpasswd"), map[string]string{user: pass})
		if err != nil {
			t.Fatal(err)
		}
		reg := registrytest.MustStart(t, registrytest.Options{Auth: authCfg, Wrap: redirecting(isManifestGet,
			func(r *http.Request) string { return sink.srv.URL + r.URL.RequestURI() })})
		r := harborClient(t, reg.Host(), user, pass)
		if err := r.Ping(testContext(t), true); err != nil {
			t.Fatal(err)
		}
		if _, _, err := mustRepository(t, r, "library/app").FetchManifest(testContext(t), "v1"); err == nil {
			t.Fatal("FetchManifest succeeded")
		}
		got := sink.requests()
		if len(got) == 0 {
			t.Fatal("the redirect was not followed at all")
		}
		for _, g := range got {
			if !strings.HasSuffix(g, ": ") {
				t.Fatalf("another origin received credentials: %q", g)
			}
		}
	})

	t.Run("token service redirected to another port", func(t *testing.T) {
		sink := newCredentialSink(t, false)
		realm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, sink.srv.URL+r.URL.RequestURI(), http.StatusTemporaryRedirect)
		}))
		t.Cleanup(realm.Close)
		reg := startRegistry(t, func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ") {
					next.ServeHTTP(w, r)
					return
				}
				w.Header().Set("WWW-Authenticate", `Bearer realm="`+realm.URL+`/token",service="test"`)
				w.WriteHeader(http.StatusUnauthorized)
			})
		})
		r := harborClient(t, reg.Host(), user, pass)
		if err := r.Ping(testContext(t), true); err == nil {
			t.Fatal("Ping succeeded without a token")
		}
		got := sink.requests()
		if len(got) == 0 {
			t.Fatal("the token request's redirect was not followed")
		}
		for _, g := range got {
			if !strings.HasSuffix(g, ": ") {
				t.Fatalf("another origin received credentials: %q", g)
			}
		}
	})
}

// harborClient returns a Registry for host with docker credentials user
// and pass.
func harborClient(t *testing.T, host, user, pass string) *Registry {
	t.Helper()
	opts, _ := testOptions(t)
	if err := registrytest.WriteDockerConfig(opts.ConfigDir, registrytest.DockerConfig{
		Auths: map[string]registrytest.DockerAuth{host: {Username: user, Password: pass}},
	}); err != nil {
		t.Fatal(err)
	}
	return mustRegistry(t, host, opts)
}
