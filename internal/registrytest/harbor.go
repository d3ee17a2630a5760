package registrytest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
)

// Harbor emulates Harbor v2's REST API in front of a real registry handler
// (see Options.Wrap), for what a real Harbor (internal/harbortest) cannot
// be made to show on demand: a failing project API (FailCreate).
//
//   - GET /api/v2.0/ping answers 200 "Pong", without authentication.
//   - HEAD /api/v2.0/projects?project_name=P answers 200 when P exists, 404
//     when it does not (basic auth required).
//   - POST /api/v2.0/projects with a JSON body {"project_name":P,...}
//     creates P: 201 with a Location, 409 when it exists (basic auth
//     required).
//   - Requests under /v2/<project>/ while the project does not exist are
//     answered as Harbor does: 401 with an empty challenge and
//     {"errors":[{"code":"UNAUTHORIZED","message":"project P not found:
//     project P not found"}]}.
//
// Give the registry an htpasswd auth with the same Users: the emulation
// checks the same accounts on its API.
type Harbor struct {
	users map[string]string

	mu         sync.Mutex
	projects   map[string]int // name -> id
	nextID     int
	failCreate int
}

// NewHarbor returns a Harbor emulation accepting users (name -> password),
// with projects already created.
func NewHarbor(users map[string]string, projects ...string) *Harbor {
	h := &Harbor{users: users, projects: map[string]int{}, nextID: 1}
	for _, p := range projects {
		h.projects[p] = h.nextID
		h.nextID++
	}
	return h
}

// FailCreate makes POST /api/v2.0/projects answer status (0: behave).
func (h *Harbor) FailCreate(status int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failCreate = status
}

// Wrap puts the emulation in front of a registry handler.
func (h *Harbor) Wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			h.serveAPI(w, r)
			return
		}
		if project := harborProjectOf(r.URL.Path); project != "" {
			h.mu.Lock()
			_, ok := h.projects[project]
			h.mu.Unlock()
			if !ok {
				w.Header().Set("Www-Authenticate", "")
				msg := fmt.Sprintf("project %s not found", project)
				harborError(w, http.StatusUnauthorized, "UNAUTHORIZED", msg+": "+msg)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

var harborRepoPath = regexp.MustCompile(`^/v2/([^/]+)/.+/(manifests|blobs|tags)(/.*)?$`)

// harborProjectOf returns the project of a repository API path, or "".
func harborProjectOf(path string) string {
	if m := harborRepoPath.FindStringSubmatch(path); m != nil {
		return m[1]
	}
	return ""
}

func (h *Harbor) authorized(r *http.Request) bool {
	if h.users == nil {
		return true
	}
	user, pass, ok := r.BasicAuth()
	want, known := h.users[user]
	return ok && known && want == pass
}

func (h *Harbor) serveAPI(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/api/v2.0/ping":
		if r.Method != http.MethodGet {
			harborError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "method not allowed")
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "Pong")
		return
	case "/api/v2.0/projects":
	default:
		harborError(w, http.StatusNotFound, "NOT_FOUND", "not found")
		return
	}
	if !h.authorized(r) {
		harborError(w, http.StatusUnauthorized, "UNAUTHORIZED", "unauthorized")
		return
	}
	switch r.Method {
	case http.MethodHead:
		name := r.URL.Query().Get("project_name")
		if name == "" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		_, ok := h.projects[name]
		h.mu.Unlock()
		if ok {
			w.WriteHeader(http.StatusOK)
		} else {
			w.WriteHeader(http.StatusNotFound)
		}
	case http.MethodPost:
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
		if err != nil {
			harborError(w, http.StatusBadRequest, "BAD_REQUEST", "cannot read body")
			return
		}
		h.mu.Lock()
		fail := h.failCreate
		h.mu.Unlock()
		if fail != 0 {
			harborError(w, fail, "UNKNOWN", "internal server error")
			return
		}
		var req struct {
			ProjectName string `json:"project_name"`
		}
		if err := json.Unmarshal(body, &req); err != nil || req.ProjectName == "" {
			harborError(w, http.StatusBadRequest, "BAD_REQUEST", "invalid project request")
			return
		}
		h.mu.Lock()
		_, exists := h.projects[req.ProjectName]
		id := h.nextID
		if !exists {
			h.projects[req.ProjectName] = id
			h.nextID++
		}
		h.mu.Unlock()
		if exists {
			harborError(w, http.StatusConflict, "CONFLICT", fmt.Sprintf("The project named %s already exists", req.ProjectName))
			return
		}
		w.Header().Set("Location", fmt.Sprintf("/api/v2.0/projects/%d", id))
		w.WriteHeader(http.StatusCreated)
	default:
		harborError(w, http.StatusMethodNotAllowed, "METHOD_NOT_ALLOWED", "method not allowed")
	}
}

// harborError writes Harbor's (and the registry API's) error body.
func harborError(w http.ResponseWriter, status int, code, message string) {
	data, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"code": code, "message": message}}})
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(data)
}
