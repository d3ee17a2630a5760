package floor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// ErrChallenge is returned when a registry's answer to GET /v2/ is neither
// 200 nor a 401 with a Bearer challenge.
var ErrChallenge = errors.New("unsupported registry challenge")

// Credentials are a username and password, for a registry's token service
// and for Harbor's API.
type Credentials struct {
	Username, Password string
}

// Challenge asks the registry at base (scheme://host:port) GET /v2/ and
// returns the realm and service of its Bearer challenge, or an empty realm
// when it answers 200 (no authentication).
//
// References: the distribution token authentication specification
// (docs/spec/auth/token.md).
func Challenge(ctx context.Context, client *http.Client, base string) (realm, service string, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(base, "/")+"/v2/", nil)
	if err != nil {
		return "", "", err
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("floor: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
		return "", "", nil
	case http.StatusUnauthorized:
	default:
		return "", "", fmt.Errorf("floor: GET /v2/: %s: %w", resp.Status, ErrChallenge)
	}
	header := resp.Header.Get("Www-Authenticate")
	scheme, params := parseChallenge(header)
	if !strings.EqualFold(scheme, "bearer") || params["realm"] == "" {
		return "", "", fmt.Errorf("floor: GET /v2/: 401 with challenge %q (only Bearer tokens are supported): %w", header, ErrChallenge)
	}
	return params["realm"], params["service"], nil
}

// parseChallenge splits a WWW-Authenticate value `Scheme k="v",k2=v2` into
// its scheme and parameters (keys lower-cased).
func parseChallenge(h string) (scheme string, params map[string]string) {
	params = map[string]string{}
	h = strings.TrimSpace(h)
	scheme, rest, _ := strings.Cut(h, " ")
	for rest = strings.TrimSpace(rest); rest != ""; {
		key, after, ok := strings.Cut(rest, "=")
		if !ok {
			break
		}
		key = strings.ToLower(strings.TrimSpace(key))
		var val string
		if strings.HasPrefix(after, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(after) && after[i] != '"'; i++ {
				if after[i] == '\\' && i+1 < len(after) {
					i++
				}
				b.WriteByte(after[i])
			}
			val, after = b.String(), after[min(i+1, len(after)):]
		} else {
			val, after, _ = strings.Cut(after, ",")
			after = "," + after
		}
		params[key] = strings.TrimSpace(val)
		_, after, _ = strings.Cut(after, ",")
		rest = strings.TrimSpace(after)
	}
	return scheme, params
}

// TokenTransport adds the bearer token of the distribution token flow to
// each registry request, fetched before the request is sent, so no request
// is ever refused and sent again: the token service at Realm is asked
// (GET Realm?service=Service&scope=..., basic auth with Credentials) once
// per set of scopes, and the token cached. The scopes of a request are
// repository:R:pull,push for its repository R, and repository:F:pull for
// the source F of a cross-repository mount (the registry checks both).
// Requests outside a repository go without a token.
type TokenTransport struct {
	// Base sends the requests (nil: http.DefaultTransport).
	Base http.RoundTripper
	// Realm and Service are those of the registry's challenge.
	Realm, Service string
	// Credentials are sent to the token service only.
	Credentials Credentials

	mu       sync.Mutex
	tokens   map[string]*tokenEntry // scope list -> token
	requests atomic.Int64
}

type tokenEntry struct {
	done  chan struct{}
	token string
	err   error
}

// Requests returns the number of token requests sent.
func (t *TokenTransport) Requests() int64 { return t.requests.Load() }

// RoundTrip implements http.RoundTripper.
func (t *TokenTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	scopes := requestScopes(req.URL)
	if len(scopes) == 0 {
		return t.base().RoundTrip(req)
	}
	token, err := t.token(req.Context(), scopes)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	out := req.Clone(req.Context())
	out.Header.Set("Authorization", "Bearer "+token)
	return t.base().RoundTrip(out)
}

func (t *TokenTransport) base() http.RoundTripper {
	if t.Base != nil {
		return t.Base
	}
	return http.DefaultTransport
}

// token returns the cached token for scopes, fetching it once.
func (t *TokenTransport) token(ctx context.Context, scopes []string) (string, error) {
	key := strings.Join(scopes, " ")
	t.mu.Lock()
	if t.tokens == nil {
		t.tokens = map[string]*tokenEntry{}
	}
	e, ok := t.tokens[key]
	if !ok {
		e = &tokenEntry{done: make(chan struct{})}
		t.tokens[key] = e
	}
	t.mu.Unlock()
	if ok {
		select {
		case <-e.done:
			return e.token, e.err
		case <-ctx.Done():
			return "", context.Cause(ctx)
		}
	}
	e.token, e.err = t.fetch(ctx, scopes)
	close(e.done)
	return e.token, e.err
}

func (t *TokenTransport) fetch(ctx context.Context, scopes []string) (string, error) {
	u, err := url.Parse(t.Realm)
	if err != nil {
		return "", fmt.Errorf("floor: token realm: %w", err)
	}
	q := u.Query()
	if t.Service != "" {
		q.Set("service", t.Service)
	}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", err
	}
	if t.Credentials.Username != "" {
		req.SetBasicAuth(t.Credentials.Username, t.Credentials.Password)
	}
	t.requests.Add(1)
	resp, err := t.base().RoundTrip(req)
	if err != nil {
		return "", fmt.Errorf("floor: token for %s: %w", strings.Join(scopes, " "), err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("floor: token for %s: %s", strings.Join(scopes, " "), resp.Status)
	}
	var body struct {
		Token       string `json:"token"`
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return "", fmt.Errorf("floor: token for %s: %w", strings.Join(scopes, " "), err)
	}
	token := body.Token
	if token == "" {
		token = body.AccessToken
	}
	if token == "" {
		return "", fmt.Errorf("floor: token for %s: no token in the answer", strings.Join(scopes, " "))
	}
	return token, nil
}

// repoPath matches the repository API paths and captures the repository.
var repoPath = regexp.MustCompile(`^/v2/(.+)/(?:blobs|manifests|tags)/`)

// requestScopes returns the scopes a request to u needs: push and pull on
// its repository, and pull on the source of a mount.
func requestScopes(u *url.URL) []string {
	m := repoPath.FindStringSubmatch(u.Path)
	if m == nil {
		return nil
	}
	scopes := []string{"repository:" + m[1] + ":pull,push"}
	if from := u.Query().Get("from"); from != "" && from != m[1] {
		scopes = append(scopes, "repository:"+from+":pull")
	}
	return scopes
}

// Projects returns the Harbor projects of manifests (the first path
// element of each repository), sorted, each once.
func Projects(manifests []Manifest) []string {
	seen := map[string]bool{}
	var list []string
	for _, m := range manifests {
		p, _, _ := strings.Cut(m.Repo, "/")
		if !seen[p] {
			seen[p] = true
			list = append(list, p)
		}
	}
	sort.Strings(list)
	return list
}

// CreateHarborProjects creates each project, private, with Harbor's API at
// base (scheme://host:port): one POST /api/v2.0/projects
// {"project_name":P,"metadata":{"public":"false"}} each (the body Hangar
// and the loader send), with basic auth; 201 (created) and 409 (already
// there) both succeed. Up to concurrency requests are in flight. It
// returns the number of requests sent.
//
// References: hangar-load.md 2.6.
func CreateHarborProjects(ctx context.Context, client *http.Client, base string, cred Credentials, projects []string, concurrency int) (int, error) {
	base = strings.TrimSuffix(base, "/")
	var sent atomic.Int64
	err := parallel(ctx, len(projects), concurrency, func(ctx context.Context, i int) error {
		var body struct {
			ProjectName string `json:"project_name"`
			Metadata    struct {
				Public string `json:"public"`
			} `json:"metadata"`
		}
		body.ProjectName = projects[i]
		body.Metadata.Public = "false"
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/api/v2.0/projects", bytes.NewReader(data))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json")
		req.SetBasicAuth(cred.Username, cred.Password)
		sent.Add(1)
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("floor: create harbor project %q: %w", projects[i], err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusConflict {
			return fmt.Errorf("floor: create harbor project %q: %s", projects[i], resp.Status)
		}
		return nil
	})
	return int(sent.Load()), err
}
