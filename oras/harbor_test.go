package oras

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/cnrancher/docker-hangar/internal/registrytest"
)

// The real Harbor tests (harbor_real_test.go) cover project creation,
// refusals and name escaping. What a real Harbor cannot be made to show
// on demand is emulated here: a project created by someone else between
// Hangar's HEAD and POST (409), and a server failure.

// harborAPI emulates Harbor v2's ping and project API in front of a
// registry: every project is missing, POST answers postStatus.
type harborAPI struct {
	postStatus int
	mu         sync.Mutex
	posts      int
}

func (h *harborAPI) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/api/v2.0/ping" && r.Method == http.MethodGet:
			_, _ = io.WriteString(w, "Pong")
		case r.URL.Path == "/api/v2.0/projects" && r.Method == http.MethodHead:
			w.WriteHeader(http.StatusNotFound)
		case r.URL.Path == "/api/v2.0/projects" && r.Method == http.MethodPost:
			h.mu.Lock()
			h.posts++
			h.mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(h.postStatus)
			_, _ = io.WriteString(w, `{"errors":[{"code":"X","message":"emulated answer"}]}`)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func TestHarborEmulated(t *testing.T) {
	tests := []struct {
		name       string
		postStatus int
		wantErr    string
	}{
		{name: "created concurrently (409)", postStatus: http.StatusConflict},
		{name: "server error", postStatus: http.StatusInternalServerError, wantErr: "create harbor project \"team\": 500 Internal Server Error: emulated answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := &harborAPI{postStatus: tt.postStatus}
			reg := startRegistry(t, api.wrap)
			opts, _ := testOptions(t)
			opts.MaxAttempts = 1
			if err := registrytest.WriteDockerConfig(opts.ConfigDir, registrytest.DockerConfig{
				Auths: map[string]registrytest.DockerAuth{reg.Host(): {Username: "admin", Password: "Harbor12345"}},
			}); err != nil {
				t.Fatal(err)
			}
			created, err := mustRegistry(t, reg.Host(), opts).EnsureHarborProject(testContext(t), "team")
			switch {
			case tt.wantErr == "" && (err != nil || created):
				t.Fatalf("EnsureHarborProject = %t, %v; want exists", created, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("EnsureHarborProject = %t, %v; want %q", created, err, tt.wantErr)
			}
			if api.posts != 1 {
				t.Errorf("%d POSTs; want 1", api.posts)
			}
		})
	}
}

func TestHarborNotHarbor(t *testing.T) {
	reg := startRegistry(t, nil)
	opts, _ := testOptions(t)
	if ok, err := mustRegistry(t, reg.Host(), opts).IsHarbor(testContext(t)); err != nil || ok {
		t.Fatalf("IsHarbor = %t, %v; want false", ok, err)
	}
}

func TestHarborInvalidProjectNames(t *testing.T) {
	opts, _ := testOptions(t)
	r := mustRegistry(t, "127.0.0.1:1", opts) // never contacted
	for _, bad := range []string{"", "a/b", "a b", "a?b", "a#b", "a%b"} {
		if _, err := r.EnsureHarborProject(testContext(t), bad); err == nil || !strings.Contains(err.Error(), "invalid project name") {
			t.Errorf("EnsureHarborProject(%q) = %v; want invalid project name", bad, err)
		}
	}
}

func TestShareTokensGroups(t *testing.T) {
	for _, tt := range []struct {
		repos, groups int
		push          bool
	}{{1, 1, true}, {MaxSharedScopes, 1, true}, {MaxSharedScopes + 1, 2, false}, {3*MaxSharedScopes + 2, 4, true}} {
		opts := DefaultRegistryOptions()
		opts.PushScope = tt.push
		r, err := NewRegistry("127.0.0.1:1", opts)
		if err != nil {
			t.Fatal(err)
		}
		var repos []string
		for i := range tt.repos {
			repos = append(repos, fmt.Sprintf("p/r%03d", i), fmt.Sprintf("p/r%03d", i)) // twice: counted once
		}
		// as after a Ping answered with a bearer challenge
		r.bearer.Store(true)
		r.ShareTokens(repos)
		groups := map[*tokenGroup]bool{}
		for i := range tt.repos {
			g := r.tokenGroup(fmt.Sprintf("p/r%03d", i))
			if g == nil || len(g.scopes) > MaxSharedScopes {
				t.Fatalf("%d repositories: repository %d has group %+v", tt.repos, i, g)
			}
			want := auth.ScopeRepository(fmt.Sprintf("p/r%03d", i), auth.ActionPull)
			if tt.push {
				want = auth.ScopeRepository(fmt.Sprintf("p/r%03d", i), auth.ActionPull, auth.ActionPush)
			}
			if !slices.Contains(g.scopes, want) || g.key != strings.Join(g.scopes, " ") {
				t.Errorf("%d repositories: group of repository %d lacks %q or has key %q", tt.repos, i, want, g.key)
			}
			groups[g] = true
		}
		if len(groups) != tt.groups {
			t.Errorf("%d repositories in %d groups, want %d", tt.repos, len(groups), tt.groups)
		}
		if r.tokenGroup("p/other") != nil {
			t.Error("a repository not shared has a group")
		}
		plain, _ := NewRegistry("127.0.0.1:1", opts)
		if plain.ShareTokens(repos); plain.tokenGroup(repos[0]) != nil {
			t.Error("tokens shared on a registry that asked for none")
		}
	}
}
