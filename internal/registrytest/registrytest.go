// Package registrytest runs a real distribution registry
// (github.com/distribution/distribution/v3) in-process on loopback for
// tests, benchmarks and the demo, and reads back the state a load left.
package registrytest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/sirupsen/logrus"

	_ "github.com/distribution/distribution/v3/registry/auth/htpasswd" // htpasswd access controller
	_ "github.com/distribution/distribution/v3/registry/auth/token"    // token access controller
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
)

var quietOnce sync.Once

var errNotFound = errors.New("not found")

// Options configures a registry.
type Options struct {
	// RootDir stores content on disk under this directory; empty keeps it
	// in memory.
	RootDir string
	// Auth is the distribution auth configuration (e.g. "htpasswd" or
	// "token" with their parameters); nil means no authentication.
	Auth configuration.Auth
	// TLS serves HTTPS with this configuration when non-nil.
	TLS *tls.Config
	// Listener serves on this listener when non-nil, instead of a new one
	// on 127.0.0.1:0.
	Listener net.Listener
	// Wrap, when set, wraps the registry handler (to inject faults or
	// emulate APIs in front of it).
	Wrap func(http.Handler) http.Handler
}

// Registry is a running registry.
type Registry struct {
	// Server is the HTTP server; Server.URL is the base URL.
	Server *httptest.Server
	// Handler is the bare registry handler, without Wrap.
	Handler http.Handler
}

// Handler returns a distribution registry handler configured by opts.
func NewHandler(opts Options) (http.Handler, error) {
	quietOnce.Do(func() { logrus.SetOutput(io.Discard) })
	storage := configuration.Storage{"inmemory": configuration.Parameters{}}
	if opts.RootDir != "" {
		storage = configuration.Storage{"filesystem": configuration.Parameters{"rootdirectory": opts.RootDir}}
	}
	storage["delete"] = configuration.Parameters{"enabled": true}
	storage["maintenance"] = configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}}
	cfg := &configuration.Configuration{Storage: storage, Auth: opts.Auth}
	cfg.Log.Level = "error"
	cfg.Log.AccessLog.Disabled = true
	cfg.HTTP.Secret = "registrytest"
	cfg.Catalog.MaxEntries = 1000
	var (
		app      http.Handler
		panicErr any
	)
	func() {
		defer func() { panicErr = recover() }()
		app = handlers.NewApp(context.Background(), cfg)
	}()
	if panicErr != nil {
		return nil, fmt.Errorf("start registry: %v", panicErr)
	}
	return app, nil
}

// Start starts a registry on loopback. Close it with Close.
func Start(opts Options) (*Registry, error) {
	h, err := NewHandler(opts)
	if err != nil {
		return nil, err
	}
	served := h
	if opts.Wrap != nil {
		served = opts.Wrap(h)
	}
	srv := httptest.NewUnstartedServer(served)
	if opts.Listener != nil {
		srv.Listener.Close()
		srv.Listener = opts.Listener
	}
	if opts.TLS != nil {
		srv.TLS = opts.TLS
		srv.StartTLS()
	} else {
		srv.Start()
	}
	return &Registry{Server: srv, Handler: h}, nil
}

// Host returns host:port of the registry.
func (r *Registry) Host() string {
	u, _ := url.Parse(r.Server.URL)
	return u.Host
}

// Close stops the registry.
func (r *Registry) Close() { r.Server.Close() }

// Client returns an HTTP client that trusts the registry's certificate.
func (r *Registry) Client() *http.Client { return r.Server.Client() }

// TB is the part of testing.TB that MustStart needs.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// MustStart starts a registry and closes it when the test ends.
func MustStart(t TB, opts Options) *Registry {
	t.Helper()
	r, err := Start(opts)
	if err != nil {
		t.Fatalf("start registry: %v", err)
	}
	t.Cleanup(r.Close)
	return r
}

// Tag is one tag in the registry with what it points at.
type Tag struct {
	Ref       string `json:"ref"` // repository:tag
	Digest    string `json:"digest"`
	MediaType string `json:"mediaType"`
}

// manifestAccept lists every manifest media type a state read accepts.
var manifestAccept = strings.Join([]string{
	"application/vnd.oci.image.index.v1+json",
	"application/vnd.oci.image.manifest.v1+json",
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}, ", ")

// State lists every tag of every repository of the registry at base URL
// (e.g. "http://127.0.0.1:5000"), sorted by ref, using client (which must
// carry any credentials the registry needs).
func State(client *http.Client, base string) ([]Tag, error) {
	var catalog struct {
		Repositories []string `json:"repositories"`
	}
	if err := getJSON(client, base+"/v2/_catalog?n=1000", &catalog); err != nil {
		return nil, err
	}
	var tags []Tag
	for _, repo := range catalog.Repositories {
		var list struct {
			Tags []string `json:"tags"`
		}
		if err := getJSON(client, base+"/v2/"+repo+"/tags/list?n=1000", &list); err != nil {
			if errors.Is(err, errNotFound) {
				continue // only untagged manifests
			}
			return nil, err
		}
		for _, tag := range list.Tags {
			req, _ := http.NewRequest(http.MethodHead, base+"/v2/"+repo+"/manifests/"+tag, nil)
			req.Header.Set("Accept", manifestAccept)
			resp, err := client.Do(req)
			if err != nil {
				return nil, err
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return nil, fmt.Errorf("head %s:%s: %s", repo, tag, resp.Status)
			}
			tags = append(tags, Tag{
				Ref:       repo + ":" + tag,
				Digest:    resp.Header.Get("Docker-Content-Digest"),
				MediaType: resp.Header.Get("Content-Type"),
			})
		}
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i].Ref < tags[j].Ref })
	return tags, nil
}

// Manifest fetches the raw manifest at repo:reference.
func Manifest(client *http.Client, base, repo, reference string) ([]byte, string, error) {
	req, _ := http.NewRequest(http.MethodGet, base+"/v2/"+repo+"/manifests/"+reference, nil)
	req.Header.Set("Accept", manifestAccept)
	resp, err := client.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, "", err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, "", fmt.Errorf("get %s:%s: %s", repo, reference, resp.Status)
	}
	return body, resp.Header.Get("Content-Type"), nil
}

// ReadStateFile reads a *.state.jsonl fixture file.
func ReadStateFile(path string) ([]Tag, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var tags []Tag
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		var t Tag
		if err := json.Unmarshal([]byte(line), &t); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		tags = append(tags, t)
	}
	sort.Slice(tags, func(i, j int) bool { return tags[i].Ref < tags[j].Ref })
	return tags, nil
}

// DiffState describes how got differs from want by ref and digest (media
// types are not compared); it returns "" when they agree.
func DiffState(want, got []Tag) string {
	w := map[string]string{}
	for _, t := range want {
		w[t.Ref] = t.Digest
	}
	g := map[string]string{}
	for _, t := range got {
		g[t.Ref] = t.Digest
	}
	var b strings.Builder
	for _, t := range want {
		if d, ok := g[t.Ref]; !ok {
			fmt.Fprintf(&b, "missing %s (%s)\n", t.Ref, t.Digest)
		} else if d != t.Digest {
			fmt.Fprintf(&b, "%s: got %s, want %s\n", t.Ref, d, t.Digest)
		}
	}
	for _, t := range got {
		if _, ok := w[t.Ref]; !ok {
			fmt.Fprintf(&b, "unexpected %s (%s)\n", t.Ref, t.Digest)
		}
	}
	return b.String()
}

func getJSON(client *http.Client, u string, v any) error {
	resp, err := client.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("get %s: %w", u, errNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("get %s: %s", u, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
