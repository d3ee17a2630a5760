package loader_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cnrancher/docker-hangar/internal/registrytest"
	"github.com/cnrancher/docker-hangar/loader"
	"github.com/cnrancher/docker-hangar/oras"
)

// Tests of loads into registries that authenticate (htpasswd basic auth,
// docker's token flow, Harbor) and serve HTTPS with their own CA. Each
// loads basic.zip and, where the load succeeds, compares the registry with
// what the real Hangar left (basic.load-default.state.jsonl); without the
// golden fixtures, a stand-in and the state of a plain load of it
// (basicArchive).
//
// References: decisions.md D4 (Harbor), D5 (credentials), D6 (transport).

const (
	testUser = "alice"
	testPass = "s3cret-Pa55"
)

// regOptions returns load options for archive into dest, with an empty
// docker config, an empty system certs.d, debug logging into the returned
// buffer and retries short enough for tests.
func regOptions(t *testing.T, archive, dest string) (loader.Options, *recorder) {
	t.Helper()
	opts := loader.DefaultOptions()
	opts.Source = archive
	opts.Destination = dest
	opts.Registry.ConfigDir = t.TempDir()
	opts.Registry.SystemCertsDir = filepath.Join(t.TempDir(), "certs.d")
	opts.Registry.MaxAttempts = 2
	opts.Timeout = 10 * time.Second
	return opts, record(t, &opts)
}

// withAuth returns a client that sends basic credentials through base.
func withAuth(base *http.Client, user, pass string) *http.Client {
	c := *base
	rt := c.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	c.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
		r = r.Clone(r.Context())
		r.SetBasicAuth(user, pass)
		return rt.RoundTrip(r)
	})
	return &c
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// handlerClient returns a client served by h in-process (to read a
// registry behind a gate without going through the gate).
func handlerClient(h http.Handler) *http.Client {
	return &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		return rec.Result(), nil
	})}
}

// checkState compares the registry at base, read with client, with want.
func checkState(t *testing.T, client *http.Client, base string, want []registrytest.Tag) {
	t.Helper()
	got, err := registrytest.State(client, base)
	if err != nil {
		t.Fatalf("read registry state: %v", err)
	}
	if diff := registrytest.DiffState(want, got); diff != "" {
		t.Errorf("registry state differs from the reference state:\n%s", diff)
	}
}

func writeDockerConfig(t *testing.T, dir string, cfg registrytest.DockerConfig) {
	t.Helper()
	if err := registrytest.WriteDockerConfig(dir, cfg); err != nil {
		t.Fatal(err)
	}
}

// TestLoadHTTPSBasicAuth loads into a real distribution registry serving
// HTTPS with a certificate of a generated CA and htpasswd basic auth:
// refused before any upload without credentials or with a wrong password,
// loaded with credentials from config.json, a credential helper or the
// credential store, and, under a name that is not loopback (dialled to
// 127.0.0.1, so that certificates are really verified), with the CA from
// a certs.d directory; without it, the load fails with a TLS error.
func TestLoadHTTPSBasicAuth(t *testing.T) {
	archive, want := basicArchive(t)
	ca, err := registrytest.NewCA()
	if err != nil {
		t.Fatal(err)
	}
	serverTLS, err := ca.ServerTLS("registry.test", "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	auth, err := registrytest.HtpasswdAuth(filepath.Join(t.TempDir(), "htpasswd"), map[string]string{testUser: testPass})
	if err != nil {
		t.Fatal(err)
	}
	stateClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.Pool()}}}
	stateClient = withAuth(stateClient, testUser, testPass)

	type caPlace int
	const (
		noCA caPlace = iota
		systemCertsD
		configCertsD
	)
	type credSource int
	const (
		noCreds credSource = iota
		wrongPassword
		auths
		credHelpers // docker-credential-hangartest on PATH
		credsStore  // the same, as the default store
	)
	tests := []struct {
		name    string
		named   bool // load to registry.test:<port>, a name TLS verifies
		ca      caPlace
		creds   credSource
		wantErr error
		wantMsg []string // HOST stands for the registry host
	}{
		{name: "no credentials", creds: noCreds, wantErr: oras.ErrLoginRequired,
			wantMsg: []string{"run `docker login HOST`"}},
		{name: "wrong password", creds: wrongPassword, wantErr: oras.ErrUnauthorized,
			wantMsg: []string{"wrong username or password for HOST", "docker login HOST"}},
		{name: "auths entry", creds: auths},
		{name: "credHelpers", creds: credHelpers},
		{name: "credsStore", creds: credsStore},
		{name: "CA in system certs.d", named: true, ca: systemCertsD, creds: auths},
		{name: "CA in docker config certs.d", named: true, ca: configCertsD, creds: auths},
		{name: "untrusted CA", named: true, creds: auths, wantErr: oras.ErrTLS,
			wantMsg: []string{"tls", "certificate", "certs.d/HOST/ca.crt", "--tls-verify=false"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var writes writeCounter
			reg := registrytest.MustStart(t, registrytest.Options{Auth: auth, TLS: serverTLS, Wrap: writes.wrap})
			host := reg.Host()
			if tt.named {
				_, port, _ := net.SplitHostPort(host)
				host = "registry.test:" + port
			}
			opts, log := regOptions(t, archive, host)
			if tt.named {
				addr := reg.Host()
				opts.Registry.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, network, addr)
				}
			}
			switch tt.ca {
			case systemCertsD:
				if _, err := ca.WriteCertsDir(opts.Registry.SystemCertsDir, host); err != nil {
					t.Fatal(err)
				}
			case configCertsD:
				if _, err := ca.WriteCertsDir(filepath.Join(opts.Registry.ConfigDir, "certs.d"), host); err != nil {
					t.Fatal(err)
				}
			}
			helperDir := t.TempDir()
			var cfg registrytest.DockerConfig
			switch tt.creds {
			case wrongPassword:
				cfg.Auths = map[string]registrytest.DockerAuth{host: {Username: testUser, Password: "wrong-Pa55"}}
			case auths:
				cfg.Auths = map[string]registrytest.DockerAuth{host: {Username: testUser, Password: testPass}}
			case credHelpers, credsStore:
				if tt.creds == credHelpers {
					cfg.CredHelpers = map[string]string{host: "hangartest"}
				} else {
					cfg.CredsStore = "hangartest"
				}
				if err := registrytest.WriteCredentialHelper(helperDir, "hangartest", map[string]registrytest.HelperCredential{
					host: {Username: testUser, Secret: testPass},
				}); err != nil {
					t.Fatal(err)
				}
				t.Setenv("PATH", helperDir+string(os.PathListSeparator)+os.Getenv("PATH"))
			}
			writeDockerConfig(t, opts.Registry.ConfigDir, cfg)

			res, err := loader.Load(context.Background(), opts)
			if tt.wantErr != nil {
				if err == nil {
					t.Fatalf("load succeeded (failed: %v); want %v", res.Failed, tt.wantErr)
				}
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("load error %q is not %v", err, tt.wantErr)
				}
				t.Logf("error: %v", err)
				for _, m := range tt.wantMsg {
					if m = strings.ReplaceAll(m, "HOST", host); !strings.Contains(err.Error(), m) {
						t.Errorf("load error %q does not mention %q", err, m)
					}
				}
				if n := writes.n.Load(); n != 0 {
					t.Errorf("%d writes reached the registry; want none", n)
				}
				if strings.Contains(log.String(), "Loading [") {
					t.Errorf("images started loading before the refusal:\n%s", log)
				}
				for _, secret := range []string{"wrong-Pa55", testPass, base64.StdEncoding.EncodeToString([]byte(testUser + ":wrong-Pa55"))} {
					if strings.Contains(err.Error()+log.String(), secret) {
						t.Errorf("a secret (%q) appears in the error or the debug log", secret)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			if len(res.Failed) != 0 {
				t.Fatalf("failed: %v", res.Failed)
			}
			if strings.Contains(log.String(), testPass) {
				t.Errorf("the password appears in the debug log")
			}
			if tt.creds == credHelpers || tt.creds == credsStore {
				calls, _ := os.ReadFile(filepath.Join(helperDir, "hangartest.calls"))
				if !strings.Contains(string(calls), "get") {
					t.Errorf("the credential helper was not asked (calls: %q)", calls)
				}
			}
			checkState(t, stateClient, reg.Server.URL, want)
		})
	}
}

// TestLoadTokenAuth loads into a registry behind docker's token flow (a
// bearer-token server and a gate checking the token scopes): a user who
// may push loads the archive; a user whose tokens grant only pull fails
// every image that needs a write, with an unauthorized error, and leaves
// the tags as they were.
func TestLoadTokenAuth(t *testing.T) {
	archive, reference := basicArchive(t)
	ts := registrytest.StartTokenServer(map[string]registrytest.TokenUser{
		"pusher": {Password: "push-Pa55", Actions: []string{"pull", "push"}},
		"reader": {Password: "read-Pa55", Actions: []string{"pull"}},
	})
	t.Cleanup(ts.Close)

	t.Run("push scope", func(t *testing.T) {
		reg := registrytest.MustStart(t, registrytest.Options{Wrap: ts.Gate()})
		opts, log := regOptions(t, archive, reg.Host())
		writeDockerConfig(t, opts.Registry.ConfigDir, registrytest.DockerConfig{Auths: map[string]registrytest.DockerAuth{
			reg.Host(): {Username: "pusher", Password: "push-Pa55"},
		}})
		before := ts.Requests()
		res := load(t, opts)
		if len(res.Failed) != 0 {
			t.Fatalf("failed: %v", res.Failed)
		}
		if ts.Requests() == before {
			t.Error("no token was requested")
		}
		if strings.Contains(log.String(), "push-Pa55") {
			t.Error("the password appears in the debug log")
		}
		checkState(t, handlerClient(reg.Handler), reg.Server.URL, reference)
	})

	t.Run("pull scope only", func(t *testing.T) {
		reg := registrytest.MustStart(t, registrytest.Options{Wrap: ts.Gate()})
		// First, the pusher loads three of the images.
		opts, _ := regOptions(t, archive, reg.Host())
		opts.ImageList = writeList(t.TempDir(), // some.txt of the fixtures
			"127.0.0.1:5557/library/app00:v1.0.0", "127.0.0.1:5557/rancher/app01:v1.0.0", "127.0.0.1:5557/cnrancher/app02:v1.0.0")
		writeDockerConfig(t, opts.Registry.ConfigDir, registrytest.DockerConfig{Auths: map[string]registrytest.DockerAuth{
			reg.Host(): {Username: "pusher", Password: "push-Pa55"},
		}})
		if res := load(t, opts); len(res.Failed) != 0 {
			t.Fatalf("pusher failed: %v", res.Failed)
		}
		state := handlerClient(reg.Handler)
		want := slices.DeleteFunc(inProjects(reference, "library", "rancher", "cnrancher"), func(tag registrytest.Tag) bool {
			return strings.HasPrefix(tag.Ref, "library/app03:") || strings.HasPrefix(tag.Ref, "library/tool:")
		})
		checkState(t, state, reg.Server.URL, want)

		// Then the reader loads the whole archive.
		opts, _ = regOptions(t, archive, reg.Host())
		writeDockerConfig(t, opts.Registry.ConfigDir, registrytest.DockerConfig{Auths: map[string]registrytest.DockerAuth{
			reg.Host(): {Username: "reader", Password: "read-Pa55"},
		}})
		res := load(t, opts)
		if len(res.Failed) == 0 {
			t.Fatal("load without push scope succeeded")
		}
		failed := 0
		for img, ir := range res.Images {
			switch {
			case strings.HasPrefix(img.Repository, "library/app00") || strings.HasPrefix(img.Repository, "rancher/") || strings.HasPrefix(img.Repository, "cnrancher/"):
				if ir.Status != loader.StatusUnchanged {
					t.Errorf("%s: status %v (%v); want unchanged (pull is allowed)", img.Reference(), ir.Status, ir.Err)
				}
			case ir.Status != loader.StatusFailed:
				t.Errorf("%s: status %v; want failed", img.Reference(), ir.Status)
			case !errors.Is(ir.Err, oras.ErrUnauthorized):
				t.Errorf("%s: error %q is not ErrUnauthorized", img.Reference(), ir.Err)
			case !strings.Contains(strings.ToLower(ir.Err.Error()), "unauthorized"):
				t.Errorf("%s: error %q does not say unauthorized", img.Reference(), ir.Err)
			default:
				failed++
				t.Logf("%s: %v", img.Reference(), ir.Err)
			}
		}
		if failed != 5 {
			t.Errorf("%d images failed as unauthorized; want 5", failed)
		}
		checkState(t, state, reg.Server.URL, want)
	})
}

// TestLoadHarborProjectAPIFailure: when Harbor's project API fails, like
// Hangar the load warns and goes on, and the images of the projects that
// could not be created fail. The real Harbor (plugin/harbor_test.go,
// oras/harbor_real_test.go) covers project creation, Hangar's request,
// tokens and permissions; a failing project API is what it cannot be made
// to show, so registrytest.Harbor emulates that API in front of a real
// distribution registry with htpasswd auth.
func TestLoadHarborProjectAPIFailure(t *testing.T) {
	archive, reference := basicArchive(t)
	users := map[string]string{"admin": "Harbor12345"}
	auth, err := registrytest.HtpasswdAuth(filepath.Join(t.TempDir(), "htpasswd"), users)
	if err != nil {
		t.Fatal(err)
	}
	client := func(reg *registrytest.Registry) *http.Client { return withAuth(reg.Client(), "admin", "Harbor12345") }
	options := func(t *testing.T, reg *registrytest.Registry) (loader.Options, *recorder) {
		opts, log := regOptions(t, archive, reg.Host())
		writeDockerConfig(t, opts.Registry.ConfigDir, registrytest.DockerConfig{Auths: map[string]registrytest.DockerAuth{
			reg.Host(): {Username: "admin", Password: "Harbor12345"},
		}})
		return opts, log
	}

	t.Run("project API failure", func(t *testing.T) {
		harbor := registrytest.NewHarbor(users, "rancher")
		harbor.FailCreate(http.StatusInternalServerError)
		reg := registrytest.MustStart(t, registrytest.Options{Auth: auth, Wrap: harbor.Wrap})
		opts, log := options(t, reg)
		res := load(t, opts)
		if got := harborEvents(log); !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "failed library: ") }) {
			t.Errorf("Harbor events %q; want a failed creation of library", got)
		}
		if strings.Contains(log.String(), "Harbor12345") {
			t.Error("the password appears in the debug log")
		}
		for img, ir := range res.Images {
			if img.Project == "rancher" {
				if ir.Status != loader.StatusLoaded {
					t.Errorf("%s: status %v (%v); want loaded", img.Reference(), ir.Status, ir.Err)
				}
				continue
			}
			t.Logf("%s: %v", img.Reference(), ir.Err)
			// Harbor refuses every request into a missing project with a 401;
			// a HEAD answer has no body to say why (with tokens, the
			// preflight names the project: plugin/harbor_test.go).
			if ir.Status != loader.StatusFailed {
				t.Errorf("%s: status %v; want failed", img.Reference(), ir.Status)
			} else if !errors.Is(ir.Err, oras.ErrUnauthorized) && !errors.Is(ir.Err, oras.ErrNotFound) {
				t.Errorf("%s: error %q is neither ErrUnauthorized nor ErrNotFound", img.Reference(), ir.Err)
			}
		}
		if len(res.Failed) != 7 {
			t.Errorf("failed list %q; want every line but rancher/app01", res.Failed)
		}
		checkState(t, client(reg), reg.Server.URL, inProjects(reference, "rancher"))
	})
}

// harborEvents describes the HarborProject events of a load: "detected",
// then "created P", "exists P" or "failed P: error" per project.
func harborEvents(rec *recorder) []string {
	var out []string
	for _, e := range all[loader.HarborProject](rec) {
		if e.Detected {
			out = append(out, "detected")
		}
		switch {
		case e.Err != nil:
			out = append(out, fmt.Sprintf("failed %s: %v", e.Project, e.Err))
		case e.Created:
			out = append(out, "created "+e.Project)
		default:
			out = append(out, "exists "+e.Project)
		}
	}
	return out
}
