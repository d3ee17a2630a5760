package registrytest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
)

// TokenUser is a user of a TokenServer.
type TokenUser struct {
	// Password is checked with basic auth on GET /token and with the
	// OAuth2 password grant on POST /token.
	Password string
	// RefreshToken, when set, is accepted by the OAuth2 refresh_token grant
	// (docker's identity tokens).
	RefreshToken string
	// Actions the user may be granted on any repository ("pull", "push").
	Actions []string
}

// TokenServer is a minimal bearer-token service for tests (docker's token
// authentication flow): GET /token with basic auth (or anonymous) and POST
// /token (OAuth2 password and refresh_token grants) answer opaque random
// tokens carrying the requested scopes the user may have. Gate puts the
// matching check in front of a registry handler, in place of distribution's
// JWT-based token auth: the flow seen by clients (401 + Bearer challenge,
// token request, retry) is the same, without signing keys.
type TokenServer struct {
	// Server serves /token.
	Server *httptest.Server
	// Service is the service name in challenges and token requests.
	Service string

	mu       sync.Mutex
	users    map[string]TokenUser
	tokens   map[string]map[string][]string // token -> repository -> actions
	requests int                            // token requests served
}

// StartTokenServer starts a token server on loopback; close it with Close.
func StartTokenServer(users map[string]TokenUser) *TokenServer {
	ts := &TokenServer{Service: "registrytest", users: users, tokens: map[string]map[string][]string{}}
	ts.Server = httptest.NewServer(http.HandlerFunc(ts.serveToken))
	return ts
}

// Close stops the server.
func (ts *TokenServer) Close() { ts.Server.Close() }

// Realm returns the token endpoint URL.
func (ts *TokenServer) Realm() string { return ts.Server.URL + "/token" }

// Requests returns the number of token requests served.
func (ts *TokenServer) Requests() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.requests
}

func (ts *TokenServer) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/token" {
		http.NotFound(w, r)
		return
	}
	ts.mu.Lock()
	ts.requests++
	ts.mu.Unlock()
	var (
		user   TokenUser
		ok     bool
		scopes []string
		oauth  bool
	)
	switch r.Method {
	case http.MethodGet:
		scopes = r.URL.Query()["scope"]
		if name, pass, has := r.BasicAuth(); has {
			u, found := ts.users[name]
			ok = found && u.Password == pass
			user = u
		} else {
			ok = true // anonymous: no actions
		}
	case http.MethodPost:
		oauth = true
		if err := r.ParseForm(); err != nil {
			http.Error(w, "bad form", http.StatusBadRequest)
			return
		}
		scopes = strings.Fields(r.PostForm.Get("scope"))
		switch r.PostForm.Get("grant_type") {
		case "password":
			u, found := ts.users[r.PostForm.Get("username")]
			ok = found && u.Password == r.PostForm.Get("password")
			user = u
		case "refresh_token":
			for _, u := range ts.users {
				if u.RefreshToken != "" && u.RefreshToken == r.PostForm.Get("refresh_token") {
					ok, user = true, u
				}
			}
		}
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"invalid username or password"}]}`))
		return
	}
	grants := map[string][]string{}
	for _, s := range scopes {
		for _, one := range strings.Fields(s) {
			parts := strings.Split(one, ":")
			if len(parts) != 3 || parts[0] != "repository" {
				continue
			}
			for _, a := range strings.Split(parts[2], ",") {
				if slices.Contains(user.Actions, a) && !slices.Contains(grants[parts[1]], a) {
					grants[parts[1]] = append(grants[parts[1]], a)
				}
			}
		}
	}
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	token := hex.EncodeToString(b)
	ts.mu.Lock()
	ts.tokens[token] = grants
	ts.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	resp := map[string]any{"access_token": token, "expires_in": 300}
	if !oauth {
		resp["token"] = token
	}
	_ = json.NewEncoder(w).Encode(resp)
}

// repoPath matches the repository API paths.
var repoPath = regexp.MustCompile(`^/v2/(.+)/(manifests|blobs|tags|referrers)(/.*)?$`)

// Gate returns a Wrap function (see Options.Wrap) that admits only
// requests carrying a token of this server with the scope they need: any
// valid token for /v2/, pull for GET and HEAD of a repository, pull and
// push for other methods. Others get 401 and a Bearer challenge naming the
// scope.
func (ts *TokenServer) Gate() func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if !strings.HasPrefix(r.URL.Path, "/v2/") {
				next.ServeHTTP(w, r)
				return
			}
			var repo string
			need := []string{"pull"}
			if m := repoPath.FindStringSubmatch(r.URL.Path); m != nil {
				repo = m[1]
				if r.Method != http.MethodGet && r.Method != http.MethodHead {
					need = []string{"pull", "push"}
				}
			}
			token, hasToken := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			ts.mu.Lock()
			grants, valid := ts.tokens[token]
			ts.mu.Unlock()
			allowed := hasToken && valid
			if allowed && repo != "" {
				for _, a := range need {
					if !slices.Contains(grants[repo], a) {
						allowed = false
					}
				}
			}
			if allowed {
				next.ServeHTTP(w, r)
				return
			}
			challenge := fmt.Sprintf(`Bearer realm=%q,service=%q`, ts.Realm(), ts.Service)
			if repo != "" {
				challenge += fmt.Sprintf(`,scope="repository:%s:%s"`, repo, strings.Join(need, ","))
			}
			if hasToken && valid {
				challenge += `,error="insufficient_scope"`
			}
			w.Header().Set("WWW-Authenticate", challenge)
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`))
		})
	}
}
