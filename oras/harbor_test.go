package oras

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/cnrancher/docker-hangar/internal/registrytest"
)

// harborAPI emulates Harbor v2's ping and project API in front of a
// registry: basic auth with user/pass, projects held in memory.
type harborAPI struct {
	user, pass string
	mu         sync.Mutex
	projects   map[string]bool
	posts      []harborPost
	heads      []string // raw queries of HEAD requests
	postStatus int      // replaces 201 when set
}

type harborPost struct {
	body, contentType string
}

func (h *harborAPI) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/api/v2.0/ping" && r.Method == http.MethodGet:
			_, _ = io.WriteString(w, "Pong")
		case r.URL.Path == "/api/v2.0/projects":
			if u, p, ok := r.BasicAuth(); !ok || u != h.user || p != h.pass {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			switch r.Method {
			case http.MethodHead:
				h.heads = append(h.heads, r.URL.RawQuery)
				if h.projects[r.URL.Query().Get("project_name")] {
					w.WriteHeader(http.StatusOK)
				} else {
					w.WriteHeader(http.StatusNotFound)
				}
			case http.MethodPost:
				body, _ := io.ReadAll(r.Body)
				h.posts = append(h.posts, harborPost{string(body), r.Header.Get("Content-Type")})
				if h.postStatus != 0 {
					w.WriteHeader(h.postStatus)
					return
				}
				w.WriteHeader(http.StatusCreated)
			default:
				w.WriteHeader(http.StatusMethodNotAllowed)
			}
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func TestHarbor(t *testing.T) {
	tests := []struct {
		name        string
		project     string
		existing    bool
		postStatus  int
		auth        *registrytest.DockerAuth
		wantCreated bool
		wantPosts   []string
		wantErr     error
		wantMsg     string
	}{
		{name: "creates a private project", project: "team-a", auth: &registrytest.DockerAuth{Username: "admin", Password: "Harbor12345"},
			wantCreated: true, wantPosts: []string{`{"project_name":"team-a","metadata":{"public":"false"}}`}},
		{name: "existing project", project: "library", existing: true, auth: &registrytest.DockerAuth{Username: "admin", Password: "Harbor12345"}},
		{name: "created concurrently (409)", project: "team-b", postStatus: http.StatusConflict, auth: &registrytest.DockerAuth{Username: "admin", Password: "Harbor12345"},
			wantPosts: []string{`{"project_name":"team-b","metadata":{"public":"false"}}`}},
		{name: "creation refused", project: "team-c", postStatus: http.StatusForbidden, auth: &registrytest.DockerAuth{Username: "admin", Password: "Harbor12345"},
			wantPosts: []string{`{"project_name":"team-c","metadata":{"public":"false"}}`}, wantErr: ErrUnauthorized, wantMsg: "403 Forbidden"},
		{name: "server error", project: "team-d", postStatus: http.StatusBadRequest, auth: &registrytest.DockerAuth{Username: "admin", Password: "Harbor12345"},
			wantPosts: []string{`{"project_name":"team-d","metadata":{"public":"false"}}`}, wantErr: errors.New("any"), wantMsg: "400 Bad Request"},
		{name: "wrong password", project: "team-e", auth: &registrytest.DockerAuth{Username: "admin", Password: "nope"},
			wantErr: ErrUnauthorized, wantMsg: "401 Unauthorized"},
		{name: "no credentials", project: "team-f", wantErr: ErrLoginRequired, wantMsg: "docker login"},
		{name: "identity token only", project: "team-g", auth: &registrytest.DockerAuth{IdentityToken: "idtok-1234"},
			wantErr: ErrUnauthorized, wantMsg: "needs a username and password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := &harborAPI{user: "admin", pass: "Harbor12345", projects: map[string]bool{}, postStatus: tt.postStatus}
			if tt.existing {
				api.projects[tt.project] = true
			}
			reg := startRegistry(t, api.wrap)
			opts, log := testOptions(t)
			if tt.auth != nil {
				if err := registrytest.WriteDockerConfig(opts.ConfigDir, registrytest.DockerConfig{
					Auths: map[string]registrytest.DockerAuth{reg.Host(): *tt.auth},
				}); err != nil {
					t.Fatal(err)
				}
			}
			r := mustRegistry(t, reg.Host(), opts)
			ctx := testContext(t)
			if ok, err := r.IsHarbor(ctx); err != nil || !ok {
				t.Fatalf("IsHarbor = %t, %v; want true", ok, err)
			}
			created, err := r.EnsureHarborProject(ctx, tt.project)
			if tt.wantErr != nil {
				if err == nil || (tt.wantErr.Error() != "any" && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("EnsureHarborProject = %v; want %v mentioning %q", err, tt.wantErr, tt.wantMsg)
				}
				secretsAbsent(t, "error", err.Error(), "Harbor12345", "nope", "idtok-1234")
			} else if err != nil || created != tt.wantCreated {
				t.Fatalf("EnsureHarborProject = %t, %v; want %t", created, err, tt.wantCreated)
			}
			api.mu.Lock()
			defer api.mu.Unlock()
			var posts []string
			for _, p := range api.posts {
				if p.contentType != "application/json" {
					t.Errorf("POST Content-Type %q", p.contentType)
				}
				posts = append(posts, p.body)
			}
			if strings.Join(posts, "\n") != strings.Join(tt.wantPosts, "\n") {
				t.Errorf("POST bodies %q; want %q", posts, tt.wantPosts)
			}
			if (tt.wantErr == nil || len(tt.wantPosts) > 0) && (len(api.heads) != 1 || api.heads[0] != "project_name="+tt.project) {
				t.Errorf("HEAD queries %q; want one project_name=%s", api.heads, tt.project)
			}
			secretsAbsent(t, "debug log", log.String(), "Harbor12345")
		})
	}

	t.Run("not harbor", func(t *testing.T) {
		reg := startRegistry(t, nil)
		opts, _ := testOptions(t)
		if ok, err := mustRegistry(t, reg.Host(), opts).IsHarbor(testContext(t)); err != nil || ok {
			t.Fatalf("IsHarbor = %t, %v; want false", ok, err)
		}
	})

	t.Run("project name escaped", func(t *testing.T) {
		api := &harborAPI{user: "u", pass: "p", projects: map[string]bool{}}
		reg := startRegistry(t, api.wrap)
		opts, _ := testOptions(t)
		if err := registrytest.WriteDockerConfig(opts.ConfigDir, registrytest.DockerConfig{
			Auths: map[string]registrytest.DockerAuth{reg.Host(): {Username: "u", Password: "p"}},
		}); err != nil {
			t.Fatal(err)
		}
		r := mustRegistry(t, reg.Host(), opts)
		if _, err := r.EnsureHarborProject(testContext(t), "a&b=c"); err != nil {
			t.Fatal(err)
		}
		if len(api.heads) != 1 || api.heads[0] != "project_name=a%26b%3Dc" {
			t.Fatalf("HEAD queries %q", api.heads)
		}
		for _, bad := range []string{"", "a/b", "a b"} {
			if _, err := r.EnsureHarborProject(testContext(t), bad); err == nil {
				t.Errorf("EnsureHarborProject(%q) succeeded", bad)
			}
		}
	})
}
