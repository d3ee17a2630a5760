package floor_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"

	"github.com/cnrancher/docker-hangar/archive/archivetest"
	"github.com/cnrancher/docker-hangar/internal/floor"
	"github.com/cnrancher/docker-hangar/internal/registrytest"
	"github.com/cnrancher/docker-hangar/loader"
)

// writeArchive writes a small synthetic archive: images over three
// projects sharing base layers, so blobs are mounted across projects.
func writeArchive(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "a.zip")
	set := archivetest.Synthetic(archivetest.SyntheticOptions{Images: 6, Projects: 3, Size: 256 << 10})
	if _, err := archivetest.Write(path, set, archivetest.Options{}); err != nil {
		t.Fatal(err)
	}
	return path
}

// pushArchive pushes the archive at path to host with the floor through
// client.
func pushArchive(t *testing.T, path, host string, client *http.Client) ([]floor.Manifest, floor.Stats, error) {
	t.Helper()
	opts := loader.DefaultOptions()
	opts.Source, opts.Destination = path, host
	ar, plan, err := loader.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer ar.Close()
	list, err := floor.FromPlan(plan, ar)
	if err != nil {
		t.Fatal(err)
	}
	open := func(d digest.Digest) (io.ReadCloser, error) { return ar.Open(d) }
	st, err := floor.Push(context.Background(), client, "http://"+host, open, list, 4)
	return list, st, err
}

// statusCounter counts the answers of a handler with a given status.
func statusCounter(status int, n *atomic.Int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sw := &statusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r)
			if sw.status == status {
				n.Add(1)
			}
		})
	}
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(s int) {
	if w.status == 0 {
		w.status = s
	}
	w.ResponseWriter.WriteHeader(s)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// TestPushWithTokens pushes through a registry that wants bearer tokens of
// a token service: the state is the same as without authentication, no
// request is refused, and one token is fetched per set of scopes (each
// repository, and each repository with a mount source).
func TestPushWithTokens(t *testing.T) {
	path := writeArchive(t)
	plain := registrytest.MustStart(t, registrytest.Options{})
	if _, _, err := pushArchive(t, path, plain.Host(), &http.Client{}); err != nil {
		t.Fatal(err)
	}
	want, err := registrytest.State(plain.Client(), plain.Server.URL)
	if err != nil {
		t.Fatal(err)
	}

	ts := registrytest.StartTokenServer(map[string]registrytest.TokenUser{"bench": {Password: "s3cret", Actions: []string{"pull", "push"}}})
	t.Cleanup(ts.Close)
	var refused atomic.Int64
	gate := ts.Gate()
	gated := registrytest.MustStart(t, registrytest.Options{Wrap: func(h http.Handler) http.Handler {
		return statusCounter(http.StatusUnauthorized, &refused)(gate(h))
	}})
	realm, service, err := floor.Challenge(context.Background(), &http.Client{}, gated.Server.URL)
	if err != nil {
		t.Fatal(err)
	}
	if realm != ts.Realm() || service != ts.Service {
		t.Fatalf("challenge: realm %q service %q, want %q %q", realm, service, ts.Realm(), ts.Service)
	}
	refused.Store(0) // the challenge itself was one
	tt := &floor.TokenTransport{Realm: realm, Service: service, Credentials: floor.Credentials{Username: "bench", Password: "s3cret"}}
	list, st, err := pushArchive(t, path, gated.Host(), &http.Client{Transport: tt})
	if err != nil {
		t.Fatal(err)
	}
	if n := refused.Load(); n != 0 {
		t.Fatalf("%d requests refused with 401: tokens must be fetched before the request", n)
	}
	if st.MountedBlobs == 0 {
		t.Fatal("no blob mounted: the archive does not test mount scopes")
	}
	// one token per repository, and one per repository and mount source
	// (the floor mounts from the first repository that got the blob)
	scopes := map[string]bool{}
	first := map[digest.Digest]string{}
	for _, m := range list {
		scopes[m.Repo] = true
		for _, b := range m.Blobs {
			if from, ok := first[b.Digest]; !ok {
				first[b.Digest] = m.Repo
			} else if from != m.Repo {
				scopes[m.Repo+" "+from] = true
			}
		}
	}
	if got := tt.Requests(); got != int64(len(scopes)) || int64(ts.Requests()) != got {
		t.Fatalf("%d token requests (server saw %d), want %d (one per set of scopes)", got, ts.Requests(), len(scopes))
	}
	got, err := registrytest.State(plain.Client(), "http://"+gated.Host())
	if err == nil {
		t.Fatal("reading a gated registry's state without a token worked: the gate is not on")
	}
	// read it behind the gate: the same registry handler, unwrapped
	bare := httptest.NewServer(gated.Handler)
	defer bare.Close()
	got, err = registrytest.State(bare.Client(), bare.URL)
	if err != nil {
		t.Fatal(err)
	}
	if d := registrytest.DiffState(want, got); d != "" {
		t.Fatalf("state with tokens differs from the state without:\n%s", d)
	}
}

// TestPushWrongPassword checks that a refused token fails the push with a
// clear error that does not show the password.
func TestPushWrongPassword(t *testing.T) {
	path := writeArchive(t)
	ts := registrytest.StartTokenServer(map[string]registrytest.TokenUser{"bench": {Password: "s3cret", Actions: []string{"pull", "push"}}})
	t.Cleanup(ts.Close)
	gated := registrytest.MustStart(t, registrytest.Options{Wrap: ts.Gate()})
	tt := &floor.TokenTransport{Realm: ts.Realm(), Service: ts.Service, Credentials: floor.Credentials{Username: "bench", Password: "wrong-pass"}}
	_, _, err := pushArchive(t, path, gated.Host(), &http.Client{Transport: tt})
	if err == nil {
		t.Fatal("push with a wrong password succeeded")
	}
	if !strings.Contains(err.Error(), "401") || !strings.Contains(err.Error(), "token for repository:") {
		t.Fatalf("error %q: want the token request's 401 and its scope", err)
	}
	if strings.Contains(err.Error(), "wrong-pass") {
		t.Fatalf("error %q shows the password", err)
	}
}

func TestChallenge(t *testing.T) {
	plain := registrytest.MustStart(t, registrytest.Options{})
	realm, _, err := floor.Challenge(context.Background(), &http.Client{}, plain.Server.URL)
	if err != nil || realm != "" {
		t.Fatalf("plain registry: realm %q, %v; want none", realm, err)
	}
	htpasswd, err := registrytest.HtpasswdAuth(filepath.Join(t.TempDir(), "htpasswd"), map[string]string{"u": "p"})
	if err != nil {
		t.Fatal(err)
	}
	basic := registrytest.MustStart(t, registrytest.Options{Auth: htpasswd})
	_, _, err = floor.Challenge(context.Background(), &http.Client{}, basic.Server.URL)
	if !errors.Is(err, floor.ErrChallenge) || !strings.Contains(err.Error(), "Basic") {
		t.Fatalf("basic-auth registry: %v; want ErrChallenge naming the Basic challenge", err)
	}
}

func TestRequestScopes(t *testing.T) {
	tests := []struct {
		url  string
		want []string
	}{
		{"http://h/v2/", nil},
		{"http://h/v2/_catalog", nil},
		{"http://h/v2/p/r/blobs/uploads/", []string{"repository:p/r:pull,push"}},
		{"http://h/v2/p/r/blobs/uploads/abc?_state=x&digest=sha256:1", []string{"repository:p/r:pull,push"}},
		{"http://h/v2/p/r/blobs/uploads/?mount=sha256:1&from=q/s", []string{"repository:p/r:pull,push", "repository:q/s:pull"}},
		{"http://h/v2/p/r/blobs/uploads/?mount=sha256:1&from=p/r", []string{"repository:p/r:pull,push"}},
		{"http://h/v2/a/b/c/manifests/v1", []string{"repository:a/b/c:pull,push"}},
		{"http://h/v2/r/tags/list", []string{"repository:r:pull,push"}},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := floor.RequestScopes(u); !slices.Equal(got, tt.want) {
			t.Errorf("scopes of %s: %q, want %q", tt.url, got, tt.want)
		}
	}
}

func TestParseChallenge(t *testing.T) {
	tests := []struct {
		in     string
		scheme string
		params map[string]string
	}{
		{`Bearer realm="http://h/service/token",service="harbor-registry"`, "Bearer",
			map[string]string{"realm": "http://h/service/token", "service": "harbor-registry"}},
		{`Bearer realm="https://a/t",service="s",scope="repository:p/r:pull,push"`, "Bearer",
			map[string]string{"realm": "https://a/t", "service": "s", "scope": "repository:p/r:pull,push"}},
		{`Bearer Realm=https://a/t, service=s`, "Bearer", map[string]string{"realm": "https://a/t", "service": "s"}},
		{`Basic realm="harbor"`, "Basic", map[string]string{"realm": "harbor"}},
		{`Bearer realm="q\"uote"`, "Bearer", map[string]string{"realm": `q"uote`}},
		{``, "", map[string]string{}},
		{`Bearer realm="unterminated`, "Bearer", map[string]string{"realm": "unterminated"}},
	}
	for _, tt := range tests {
		scheme, params := floor.ParseChallenge(tt.in)
		if scheme != tt.scheme || !mapsEqual(params, tt.params) {
			t.Errorf("parseChallenge(%q) = %q %v, want %q %v", tt.in, scheme, params, tt.scheme, tt.params)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestCreateHarborProjects creates projects with Harbor's API. Harbor
// cannot run in go test: its API is emulated (registrytest.Harbor);
// scripts/bench.sh runs the floor against a real Harbor.
func TestCreateHarborProjects(t *testing.T) {
	users := map[string]string{"admin": "Harbor12345"}
	h := registrytest.NewHarbor(users, "existing")
	var mu sync.Mutex
	var bodies []string // of the project creations
	reg := registrytest.MustStart(t, registrytest.Options{Wrap: func(next http.Handler) http.Handler {
		api := h.Wrap(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.URL.Path == "/api/v2.0/projects" {
				b, _ := io.ReadAll(r.Body)
				mu.Lock()
				bodies = append(bodies, string(b))
				mu.Unlock()
				r.Body = io.NopCloser(bytes.NewReader(b))
			}
			api.ServeHTTP(w, r)
		})
	}})
	client := &http.Client{}
	projects := []string{"existing", "one", "two"}
	n, err := floor.CreateHarborProjects(context.Background(), client, reg.Server.URL, floor.Credentials{Username: "admin", Password: "Harbor12345"}, projects, 2)
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 {
		t.Fatalf("%d requests, want 3 (one POST per project)", n)
	}
	for _, p := range projects {
		req, _ := http.NewRequest(http.MethodHead, reg.Server.URL+"/api/v2.0/projects?project_name="+p, nil)
		req.SetBasicAuth("admin", "Harbor12345")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("project %s: HEAD answered %s, want 200", p, resp.Status)
		}
	}
	mu.Lock()
	bodies = slices.Sorted(slices.Values(bodies))
	mu.Unlock()
	want := []string{
		`{"project_name":"existing","metadata":{"public":"false"}}`,
		`{"project_name":"one","metadata":{"public":"false"}}`,
		`{"project_name":"two","metadata":{"public":"false"}}`,
	}
	if !slices.Equal(bodies, want) {
		t.Fatalf("bodies:\n%s\nwant\n%s", strings.Join(bodies, "\n"), strings.Join(want, "\n"))
	}
	_, err = floor.CreateHarborProjects(context.Background(), client, reg.Server.URL, floor.Credentials{Username: "admin", Password: "nope-pass"}, []string{"three"}, 1)
	if err == nil || !strings.Contains(err.Error(), "401") || strings.Contains(err.Error(), "nope-pass") {
		t.Fatalf("wrong password: %v; want a 401 error without the password", err)
	}
}

func TestProjects(t *testing.T) {
	list := []floor.Manifest{{Repo: "b/x"}, {Repo: "a/y/z"}, {Repo: "b/w"}, {Repo: "c"}}
	if got, want := floor.Projects(list), []string{"a", "b", "c"}; !slices.Equal(got, want) {
		t.Fatalf("Projects = %q, want %q", got, want)
	}
}
