package oras

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/auth/token"

	"github.com/cnrancher/docker-hangar/internal/registrytest"
)

// jwtIssuer is a token service for distribution's own token auth: it
// signs JWTs (ES256) whose access claim grants each user's actions. The
// registry in front of which it runs is the real distribution registry
// with its token access controller, which verifies those JWTs.
type jwtIssuer struct {
	requests atomic.Int64 // token requests served
	server   *httptest.Server
	key      *ecdsa.PrivateKey
	kid      string
	users    map[string]jwtUser
	service  string
}

type jwtUser struct {
	password string
	actions  []string
}

// startTokenAuthRegistry starts a registry with distribution's token auth
// and its token service.
func startTokenAuthRegistry(t *testing.T, users map[string]jwtUser) *registrytest.Registry {
	t.Helper()
	reg, _ := startTokenAuth(t, users)
	return reg
}

// startTokenAuth starts a registry with distribution's token auth and
// returns its token service too.
func startTokenAuth(t *testing.T, users map[string]jwtUser) (*registrytest.Registry, *jwtIssuer) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "token-issuer"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(t.TempDir(), "issuer.pem")
	if err := os.WriteFile(bundle, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	iss := &jwtIssuer{key: key, kid: token.GetJWKThumbprint(&key.PublicKey), users: users, service: "registrytest"}
	iss.server = httptest.NewServer(http.HandlerFunc(iss.serveToken))
	t.Cleanup(iss.server.Close)
	return registrytest.MustStart(t, registrytest.Options{Auth: configuration.Auth{"token": configuration.Parameters{
		"realm": iss.server.URL + "/token", "service": iss.service, "issuer": "jwt-issuer", "rootcertbundle": bundle,
	}}}), iss
}

func (iss *jwtIssuer) serveToken(w http.ResponseWriter, r *http.Request) {
	iss.requests.Add(1)
	var (
		subject string
		user    jwtUser
	)
	if name, pass, ok := r.BasicAuth(); ok {
		u, found := iss.users[name]
		if !found || u.password != pass {
			http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"invalid credentials"}]}`, http.StatusUnauthorized)
			return
		}
		subject, user = name, u
	}
	access := []tokenAccess{}
	for _, scope := range r.URL.Query()["scope"] {
		parts := strings.Split(scope, ":")
		if len(parts) != 3 || parts[0] != "repository" {
			continue
		}
		granted := []string{}
		for _, a := range strings.Split(parts[2], ",") {
			if slices.Contains(user.actions, a) {
				granted = append(granted, a)
			}
		}
		access = append(access, tokenAccess{Type: "repository", Name: parts[1], Actions: granted})
	}
	now := time.Now().Unix()
	claims, _ := json.Marshal(map[string]any{"iss": "jwt-issuer", "sub": subject, "aud": iss.service,
		"exp": now + 300, "nbf": now - 10, "iat": now, "jti": "t", "access": access})
	header, _ := json.Marshal(map[string]string{"alg": "ES256", "typ": "JWT", "kid": iss.kid})
	enc := base64.RawURLEncoding
	signing := enc.EncodeToString(header) + "." + enc.EncodeToString(claims)
	sum := sha256.Sum256([]byte(signing))
	rs, ss, err := ecdsa.Sign(rand.Reader, iss.key, sum[:])
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	sig := make([]byte, 64)
	rs.FillBytes(sig[:32])
	ss.FillBytes(sig[32:])
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"token": signing + "." + enc.EncodeToString(sig), "expires_in": 300})
}

// TestCheckPushAccessDistribution checks the preflight against the real
// distribution registry's token auth, and that its verdict is the
// registry's: where it says no, the push is refused; where it says yes,
// the push goes through.
func TestCheckPushAccessDistribution(t *testing.T) {
	reg := startTokenAuthRegistry(t, map[string]jwtUser{
		"pusher": {password: "push-Pa55", actions: []string{"pull", "push"}},
		"reader": {password: "read-Pa55", actions: []string{"pull"}},
	})
	tests := []struct {
		name       string
		user, pass string
		wantMsg    string
	}{
		{name: "may push", user: "pusher", pass: "push-Pa55"},
		{name: "may pull only", user: "reader", pass: "read-Pa55", wantMsg: "no push permission for project team on registry " + reg.Host() + " as user reader"},
		{name: "anonymous", wantMsg: "no push permission for project team on registry " + reg.Host() + " as user anonymous"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts, log := testOptions(t)
			if tt.user != "" {
				if err := registrytest.WriteDockerConfig(opts.ConfigDir, registrytest.DockerConfig{
					Auths: map[string]registrytest.DockerAuth{reg.Host(): {Username: tt.user, Password: tt.pass}},
				}); err != nil {
					t.Fatal(err)
				}
			}
			r := mustRegistry(t, reg.Host(), opts)
			ctx := testContext(t)
			err := r.CheckPushAccess(ctx, "team/app")
			if tt.wantMsg == "" {
				if err != nil {
					t.Fatalf("CheckPushAccess = %v; want access", err)
				}
			} else if !errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("CheckPushAccess = %v; want ErrUnauthorized saying %q", err, tt.wantMsg)
			}
			secretsAbsent(t, "debug log", log.String(), "push-Pa55", "read-Pa55")

			blob := randomBlob(t, 128)
			pushErr := mustRepository(t, r, "team/app").PushBlob(ctx, blob.desc, blob.open)
			if (pushErr == nil) != (err == nil) {
				t.Errorf("the registry disagrees: CheckPushAccess = %v, PushBlob = %v", err, pushErr)
			}
		})
	}
}

// TestCheckPushAccessCannotTell: where no token says what is granted, the
// preflight lets the pushes tell, and never writes.
func TestCheckPushAccessCannotTell(t *testing.T) {
	htpasswd, err := registrytest.HtpasswdAuth(filepath.Join(t.TempDir(), "htpasswd"), map[string]string{"alice": "s3cret-Pa55"})
	if err != nil {
		t.Fatal(err)
	}
	opaque := registrytest.StartTokenServer(map[string]registrytest.TokenUser{"alice": {Password: "s3cret-Pa55", Actions: []string{"pull"}}})
	t.Cleanup(opaque.Close)
	tests := []struct {
		name string
		opts registrytest.Options
	}{
		{name: "no auth"},
		{name: "basic auth", opts: registrytest.Options{Auth: htpasswd}},
		{name: "opaque tokens", opts: registrytest.Options{Wrap: opaque.Gate()}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var writes atomic.Int64
			wrap := tt.opts.Wrap
			tt.opts.Wrap = func(h http.Handler) http.Handler {
				if wrap != nil {
					h = wrap(h)
				}
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method != http.MethodGet && r.Method != http.MethodHead {
						writes.Add(1)
					}
					h.ServeHTTP(w, r)
				})
			}
			reg := registrytest.MustStart(t, tt.opts)
			opts, _ := testOptions(t)
			if err := registrytest.WriteDockerConfig(opts.ConfigDir, registrytest.DockerConfig{
				Auths: map[string]registrytest.DockerAuth{reg.Host(): {Username: "alice", Password: "s3cret-Pa55"}},
			}); err != nil {
				t.Fatal(err)
			}
			if err := mustRegistry(t, reg.Host(), opts).CheckPushAccess(testContext(t), "team/app"); err != nil {
				t.Fatalf("CheckPushAccess = %v; want nil (cannot tell)", err)
			}
			if n := writes.Load(); n != 0 {
				t.Errorf("%d write requests", n)
			}
		})
	}
}

func TestParseTokenClaims(t *testing.T) {
	enc := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name   string
		token  string
		ok     bool
		access []string // actions on team/app
	}{
		{name: "opaque", token: "0123456789abcdef"},
		{name: "not json", token: enc(`{}`) + "." + enc("nope") + ".sig"},
		{name: "no access claim", token: enc(`{}`) + "." + enc(`{"sub":"u"}`) + ".sig"},
		{name: "empty access", token: enc(`{}`) + "." + enc(`{"access":[]}`) + ".sig", ok: true},
		{name: "padded payload", token: enc(`{}`) + "." + base64.URLEncoding.EncodeToString([]byte(`{"access":[{"type":"repository","name":"team/app","actions":["pull"]}]}`)) + ".sig",
			ok: true, access: []string{"pull"}},
		{name: "other repository", token: enc(`{}`) + "." + enc(`{"access":[{"type":"repository","name":"team/other","actions":["push"]}]}`) + ".sig", ok: true},
		{name: "push", token: enc(`{}`) + "." + enc(`{"access":[{"type":"repository","name":"team/app","actions":["pull","push"]}]}`) + ".sig",
			ok: true, access: []string{"pull", "push"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := parseTokenClaims(tt.token)
			if ok != tt.ok {
				t.Fatalf("ok = %t; want %t", ok, tt.ok)
			}
			if ok && !slices.Equal(c.actions("team/app"), tt.access) {
				t.Errorf("actions = %q; want %q", c.actions("team/app"), tt.access)
			}
		})
	}
}
