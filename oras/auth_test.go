package oras

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cnrancher/docker-hangar/internal/registrytest"
	"oras.land/oras-go/v2/registry/remote/auth"
)

// secretsAbsent fails the test when a secret shows in text.
func secretsAbsent(t *testing.T, what, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%s contains a secret: %q", what, text)
		}
	}
}

// helperCalls counts the invocations recorded by a test credential helper.
func helperCalls(t *testing.T, dir, name string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name+".calls"))
	if errors.Is(err, os.ErrNotExist) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "get")
}

// loadOps runs what a load does and returns the first error.
func loadOps(t *testing.T, r *Registry, name string) error {
	t.Helper()
	ctx := testContext(t)
	repo := mustRepository(t, r, name)
	blob := randomBlob(t, 2048)
	if _, err := repo.BlobExists(ctx, blob.desc); err != nil {
		return err
	}
	if err := repo.PushBlob(ctx, blob.desc, blob.open); err != nil {
		return err
	}
	if ok, err := repo.BlobExists(ctx, blob.desc); err != nil || !ok {
		t.Fatalf("BlobExists after push = %t, %v", ok, err)
	}
	config := newBlob([]byte(`{}`))
	if err := repo.PushBlob(ctx, config.desc, config.open); err != nil {
		return err
	}
	body, desc := manifestFor(config, blob)
	if err := repo.PushManifest(ctx, desc, body, "v1"); err != nil {
		return err
	}
	if _, got, err := repo.FetchManifest(ctx, "v1"); err != nil || string(got) != string(body) {
		t.Fatalf("FetchManifest = %q, %v", got, err)
	}
	other := mustRepository(t, r, name+"-copy")
	if mounted, err := other.MountBlob(ctx, blob.desc, name, blob.open); err != nil || !mounted {
		t.Fatalf("MountBlob = %t, %v; want mounted", mounted, err)
	}
	return nil
}

func TestBasicAuth(t *testing.T) {
	const user, pass = "alice", "s3cret-pass"
	authCfg, err := registrytest.HtpasswdAuth(filepath.Join(t.TempDir(), "htpasswd"), map[string]string{user: pass})
	if err != nil {
		t.Fatal(err)
	}
	reg := registrytest.MustStart(t, registrytest.Options{Auth: authCfg})
	host := reg.Host()

	helperDir := t.TempDir()
	if err := registrytest.WriteCredentialHelper(helperDir, "test", map[string]registrytest.HelperCredential{
		host: {Username: user, Secret: pass},
	}); err != nil {
		t.Fatal(err)
	}
	if err := registrytest.WriteCredentialHelper(helperDir, "wrong", map[string]registrytest.HelperCredential{
		host: {Username: user, Secret: "not-" + pass},
	}); err != nil {
		t.Fatal(err)
	}
	if err := registrytest.WriteCredentialHelper(helperDir, "empty", nil); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", helperDir+string(os.PathListSeparator)+os.Getenv("PATH"))
	secrets := []string{pass, base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}

	tests := []struct {
		name    string
		cfg     *registrytest.DockerConfig
		helper  string // helper expected to run exactly once
		wantErr error
		wantMsg string
	}{
		{name: "auths entry", cfg: &registrytest.DockerConfig{Auths: map[string]registrytest.DockerAuth{host: {Username: user, Password: pass}}}},
		{name: "credHelpers", cfg: &registrytest.DockerConfig{CredHelpers: map[string]string{host: "test"}}, helper: "test"},
		{name: "credsStore", cfg: &registrytest.DockerConfig{CredsStore: "test"}, helper: "test"},
		{name: "credHelpers wins over credsStore", cfg: &registrytest.DockerConfig{CredsStore: "empty", CredHelpers: map[string]string{host: "test"}}, helper: "test"},
		{name: "wrong password", cfg: &registrytest.DockerConfig{Auths: map[string]registrytest.DockerAuth{host: {Username: user, Password: "wrong"}}},
			wantErr: ErrUnauthorized, wantMsg: "wrong username or password for " + host},
		{name: "wrong password from helper", cfg: &registrytest.DockerConfig{CredHelpers: map[string]string{host: "wrong"}}, helper: "wrong",
			wantErr: ErrUnauthorized, wantMsg: "wrong username or password for " + host},
		{name: "no config", wantErr: ErrLoginRequired, wantMsg: "run `docker login " + host + "`"},
		{name: "other registry only", cfg: &registrytest.DockerConfig{Auths: map[string]registrytest.DockerAuth{"example.com": {Username: user, Password: pass}}},
			wantErr: ErrLoginRequired, wantMsg: "run `docker login " + host + "`"},
		{name: "helper without the registry", cfg: &registrytest.DockerConfig{CredsStore: "empty"}, helper: "empty",
			wantErr: ErrLoginRequired, wantMsg: "run `docker login " + host + "`"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, h := range []string{"test", "wrong", "empty"} {
				_ = os.Remove(filepath.Join(helperDir, h+".calls"))
			}
			opts, log := testOptions(t)
			if tt.cfg != nil {
				if err := registrytest.WriteDockerConfig(opts.ConfigDir, *tt.cfg); err != nil {
					t.Fatal(err)
				}
			}
			r := mustRegistry(t, host, opts)
			ctx := testContext(t)
			err := r.Ping(ctx, true)
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Ping: %v", err)
				}
				if err := loadOps(t, r, "team/app"); err != nil {
					t.Fatalf("load: %v", err)
				}
			} else {
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("Ping = %v; want %v mentioning %q", err, tt.wantErr, tt.wantMsg)
				}
				t.Logf("Ping: %v", err)
				secretsAbsent(t, "Ping error", err.Error(), secrets...)
				if err := r.Ping(ctx, false); err != nil {
					t.Fatalf("Ping without requireLogin = %v; want nil", err)
				}
				err := loadOps(t, r, "team/app")
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("load = %v; want %v", err, tt.wantErr)
				}
				t.Logf("load: %v", err)
				secretsAbsent(t, "load error", err.Error(), secrets...)
			}
			if tt.helper != "" {
				if n := helperCalls(t, helperDir, tt.helper); n != 1 {
					t.Fatalf("credential helper ran %d times; want once", n)
				}
			}
			secretsAbsent(t, "debug log", log.String(), secrets...)
		})
	}
}

func TestTokenAuth(t *testing.T) {
	ts := registrytest.StartTokenServer(map[string]registrytest.TokenUser{
		"writer": {Password: "w-pass", RefreshToken: "writer-identity-token", Actions: []string{"pull", "push"}},
		"reader": {Password: "r-pass", Actions: []string{"pull"}},
	})
	t.Cleanup(ts.Close)
	reg := registrytest.MustStart(t, registrytest.Options{Wrap: ts.Gate()})
	host := reg.Host()
	secrets := []string{"w-pass", "r-pass", "writer-identity-token"}

	tests := []struct {
		name     string
		auth     *registrytest.DockerAuth
		wantPing error
		wantLoad error
		wantMsg  string
	}{
		{name: "push scope", auth: &registrytest.DockerAuth{Username: "writer", Password: "w-pass"}},
		{name: "identity token", auth: &registrytest.DockerAuth{IdentityToken: "writer-identity-token"}},
		{name: "pull scope only", auth: &registrytest.DockerAuth{Username: "reader", Password: "r-pass"},
			wantLoad: ErrUnauthorized, wantMsg: "push blob"},
		{name: "wrong password", auth: &registrytest.DockerAuth{Username: "writer", Password: "nope"},
			wantPing: ErrUnauthorized, wantLoad: ErrUnauthorized, wantMsg: "wrong username or password for " + host},
		{name: "no credentials", wantPing: ErrLoginRequired, wantLoad: ErrLoginRequired, wantMsg: "run `docker login " + host + "`"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, log := testOptions(t)
			if tt.auth != nil {
				if err := registrytest.WriteDockerConfig(opts.ConfigDir, registrytest.DockerConfig{
					Auths: map[string]registrytest.DockerAuth{host: *tt.auth},
				}); err != nil {
					t.Fatal(err)
				}
			}
			r := mustRegistry(t, host, opts)
			err := r.Ping(testContext(t), true)
			if !errors.Is(err, tt.wantPing) || (tt.wantPing != nil && !strings.Contains(err.Error(), tt.wantMsg)) {
				t.Fatalf("Ping = %v; want %v", err, tt.wantPing)
			}
			err = loadOps(t, r, "team/"+strings.ReplaceAll(tt.name, " ", "-"))
			if !errors.Is(err, tt.wantLoad) {
				t.Fatalf("load = %v; want %v", err, tt.wantLoad)
			}
			if err != nil {
				t.Logf("load: %v", err)
				if !strings.Contains(err.Error(), tt.wantMsg) && tt.wantPing == nil {
					t.Fatalf("load error %q does not mention %q", err, tt.wantMsg)
				}
				secretsAbsent(t, "load error", err.Error(), secrets...)
			}
			secretsAbsent(t, "debug log", log.String(), secrets...)
		})
	}

	t.Run("pull with pull scope", func(t *testing.T) {
		opts, _ := testOptions(t)
		if err := registrytest.WriteDockerConfig(opts.ConfigDir, registrytest.DockerConfig{
			Auths: map[string]registrytest.DockerAuth{host: {Username: "reader", Password: "r-pass"}},
		}); err != nil {
			t.Fatal(err)
		}
		repo := mustRepository(t, mustRegistry(t, host, opts), "team/push-scope")
		if _, _, err := repo.FetchManifest(testContext(t), "v1"); err != nil {
			t.Fatalf("FetchManifest: %v", err)
		}
		if _, _, err := repo.FetchManifest(testContext(t), "missing"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("FetchManifest(missing) = %v; want ErrNotFound", err)
		}
	})
}

func TestCredentialLookup(t *testing.T) {
	dir := t.TempDir()
	if err := registrytest.WriteDockerConfig(dir, registrytest.DockerConfig{Auths: map[string]registrytest.DockerAuth{
		"https://index.docker.io/v1/": {Username: "hub", Password: "hub-pass"},
		"example.com:5000":            {Username: "ex", Password: "ex-pass"},
		"tokens.example.com":          {IdentityToken: "idt", RegistryToken: "rt"},
		"https://legacy.example.com/": {Username: "legacy", Password: "l-pass"},
	}}); err != nil {
		t.Fatal(err)
	}
	s := newCredentialStore(dir, 0, nil)
	tests := []struct {
		host string
		want auth.Credential
	}{
		{"docker.io", auth.Credential{Username: "hub", Password: "hub-pass"}},
		{"index.docker.io", auth.Credential{Username: "hub", Password: "hub-pass"}},
		{"registry-1.docker.io", auth.Credential{Username: "hub", Password: "hub-pass"}},
		{"example.com:5000", auth.Credential{Username: "ex", Password: "ex-pass"}},
		{"example.com", auth.EmptyCredential},
		{"tokens.example.com", auth.Credential{RefreshToken: "idt", AccessToken: "rt"}},
		{"legacy.example.com", auth.Credential{Username: "legacy", Password: "l-pass"}},
	}
	for _, tt := range tests {
		got, err := s.lookup(testContext(t), tt.host)
		if err != nil || got != tt.want {
			t.Errorf("lookup(%s) = %+v, %v; want %+v", tt.host, got, err, tt.want)
		}
	}
	f := s.credentialFunc("docker.io")
	if got, _ := f(testContext(t), "registry-1.docker.io"); got.Username != "hub" {
		t.Errorf("credentialFunc(docker.io) for registry-1.docker.io = %+v", got)
	}
	if got, _ := f(testContext(t), "evil.example.com"); got != auth.EmptyCredential {
		t.Errorf("credentialFunc(docker.io) gave credentials to another host")
	}

	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "config.json"), []byte(`{"auths": {"x": {"auth": "!!!"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newCredentialStore(bad, 0, nil).lookup(testContext(t), "x"); err == nil {
		t.Error("lookup in a malformed config succeeded")
	}
}
