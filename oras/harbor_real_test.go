package oras

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnrancher/docker-hangar/internal/harbortest"
	"github.com/cnrancher/docker-hangar/internal/registrytest"
)

// Tests against a real Harbor v2 (internal/harbortest, one instance for
// the package), through a recording proxy where the requests matter. They
// skip where ../shared/harbor is absent.

func TestMain(m *testing.M) { os.Exit(harbortest.Main(m)) }

// Users and projects of the shared Harbor, created once.
const (
	devUser    = "oras-dev"    // developer (pull, push) in devProj
	guestUser  = "oras-guest"  // guest (pull only) in devProj
	lockedUser = "oras-locked" // only ever given a wrong password
	userPass   = "Oras-Pa55word"
	wrongPass  = "Wrong-Pa55word"
	devProj    = "oras-dev"
	privProj   = "oras-private" // private, no member but admin
)

var setupOnce struct {
	sync.Once
	err error
}

// realHarbor returns the shared Harbor with the users and projects above.
func realHarbor(t *testing.T) *harbortest.Harbor {
	t.Helper()
	h := harbortest.Shared(t)
	setupOnce.Do(func() {
		ctx := context.Background()
		for _, step := range []func() error{
			func() error { return h.CreateUser(ctx, devUser, userPass) },
			func() error { return h.CreateUser(ctx, guestUser, userPass) },
			func() error { return h.CreateUser(ctx, lockedUser, userPass) },
			func() error { return h.CreateProject(ctx, devProj, false) },
			func() error { return h.CreateProject(ctx, privProj, false) },
			func() error { return h.AddMember(ctx, devProj, devUser, harbortest.RoleDeveloper) },
			func() error { return h.AddMember(ctx, devProj, guestUser, harbortest.RoleGuest) },
		} {
			if setupOnce.err = step(); setupOnce.err != nil {
				return
			}
		}
	})
	if setupOnce.err != nil {
		t.Fatalf("set up harbor: %v", setupOnce.err)
	}
	return h
}

// harborAs returns a Registry for host with docker credentials user /
// password (none when user is empty).
func harborAs(t *testing.T, host, user, password string) (*Registry, *debugLog) {
	t.Helper()
	opts, log := testOptions(t)
	if user != "" {
		if err := registrytest.WriteDockerConfig(opts.ConfigDir, registrytest.DockerConfig{
			Auths: map[string]registrytest.DockerAuth{host: {Username: user, Password: password}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("debug log:\n%s", log.String())
		}
	})
	return mustRegistry(t, host, opts), log
}

func writes(reqs []harbortest.Request) []string {
	var out []string
	for _, r := range reqs {
		if r.IsWrite() {
			out = append(out, r.String())
		}
	}
	return out
}

// TestRealHarborProjects creates projects as Hangar does and checks what
// Harbor made of them; every refusal comes from Harbor itself.
func TestRealHarborProjects(t *testing.T) {
	h := realHarbor(t)
	proxy := h.StartProxy()
	defer proxy.Close()
	ctx := testContext(t)

	t.Run("creates a private project, then finds it", func(t *testing.T) {
		r, _ := harborAs(t, proxy.Host, harbortest.AdminUser, harbortest.AdminPassword)
		if ok, err := r.IsHarbor(ctx); err != nil || !ok {
			t.Fatalf("IsHarbor = %t, %v; want true", ok, err)
		}
		proxy.Reset()
		created, err := r.EnsureHarborProject(ctx, "oras-created")
		if err != nil || !created {
			t.Fatalf("EnsureHarborProject = %t, %v; want created", created, err)
		}
		var bodies []string
		for _, req := range proxy.Requests() {
			if req.Method == "POST" {
				bodies = append(bodies, string(req.Body))
			}
		}
		if want := `{"project_name":"oras-created","metadata":{"public":"false"}}`; len(bodies) != 1 || bodies[0] != want {
			t.Errorf("POST bodies %q; want Hangar's %s", bodies, want)
		}
		p, err := h.Project(ctx, "oras-created")
		if err != nil || p.Metadata.Public != "false" {
			t.Fatalf("project: %+v, %v; want private", p, err)
		}
		if created, err := r.EnsureHarborProject(ctx, "oras-created"); err != nil || created {
			t.Fatalf("second EnsureHarborProject = %t, %v; want exists", created, err)
		}
		if created, err := r.EnsureHarborProject(ctx, "library"); err != nil || created {
			t.Fatalf("EnsureHarborProject(library) = %t, %v; want exists", created, err)
		}
	})

	t.Run("project name escaped", func(t *testing.T) {
		r, _ := harborAs(t, proxy.Host, harbortest.AdminUser, harbortest.AdminPassword)
		proxy.Reset()
		_, err := r.EnsureHarborProject(ctx, "a&b=c")
		if err == nil || !strings.Contains(err.Error(), "400 Bad Request: project name is not in lower case or contains illegal characters") {
			t.Fatalf("EnsureHarborProject(a&b=c) = %v; want Harbor's 400 with its message", err)
		}
		var heads []string
		for _, req := range proxy.Requests() {
			if req.Method == "HEAD" {
				heads = append(heads, req.String())
			}
		}
		if len(heads) != 1 || heads[0] != "HEAD /api/v2.0/projects?project_name=a%26b%3Dc" {
			t.Fatalf("HEAD requests %q; want one with the name escaped", heads)
		}
	})

	tests := []struct {
		name       string
		user, pass string
		identity   string // identity token instead of a password
		project    string
		adminOnly  bool // project creation restricted to administrators
		wantErr    error
		wantMsg    string
	}{
		{name: "name Harbor refuses", user: harbortest.AdminUser, pass: harbortest.AdminPassword, project: "Oras-Upper",
			wantMsg: "400 Bad Request: project name is not in lower case"},
		{name: "creation restricted to administrators", user: devUser, pass: userPass, project: "oras-by-dev", adminOnly: true,
			wantErr: ErrUnauthorized, wantMsg: "403 Forbidden: Only system admin can create project"},
		{name: "wrong password", user: lockedUser, pass: wrongPass, project: "oras-wrong",
			wantErr: ErrUnauthorized, wantMsg: "401 Unauthorized"},
		{name: "no credentials", project: "oras-anonymous", wantErr: ErrLoginRequired, wantMsg: "docker login"},
		{name: "identity token only", identity: "idtok-1234", project: "oras-idtoken",
			wantErr: ErrUnauthorized, wantMsg: "needs a username and password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.adminOnly {
				if err := h.Configure(ctx, map[string]any{"project_creation_restriction": "adminonly"}); err != nil {
					t.Fatal(err)
				}
				defer func() {
					if err := h.Configure(context.Background(), map[string]any{"project_creation_restriction": "everyone"}); err != nil {
						t.Error(err)
					}
				}()
			}
			opts, log := testOptions(t)
			if tt.user != "" || tt.identity != "" {
				if err := registrytest.WriteDockerConfig(opts.ConfigDir, registrytest.DockerConfig{Auths: map[string]registrytest.DockerAuth{
					proxy.Host: {Username: tt.user, Password: tt.pass, IdentityToken: tt.identity},
				}}); err != nil {
					t.Fatal(err)
				}
			}
			r := mustRegistry(t, proxy.Host, opts)
			created, err := r.EnsureHarborProject(ctx, tt.project)
			if err == nil || created || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("EnsureHarborProject = %t, %v; want %v mentioning %q", created, err, tt.wantErr, tt.wantMsg)
			}
			secretsAbsent(t, "error", err.Error(), harbortest.AdminPassword, userPass, wrongPass, "idtok-1234")
			secretsAbsent(t, "debug log", log.String(), harbortest.AdminPassword, userPass, wrongPass, "idtok-1234")
			if _, err := h.Project(ctx, tt.project); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("project %s: %v; want none", tt.project, err)
			}
		})
	}
}

// TestRealHarborNotFound: Harbor answers a missing tag with 404 NOT_FOUND
// (not MANIFEST_UNKNOWN), a missing repository likewise, a missing blob
// with 404 BLOB_UNKNOWN; all are "not found", never an error that fails an
// image.
func TestRealHarborNotFound(t *testing.T) {
	h := realHarbor(t)
	ctx := testContext(t)
	r, _ := harborAs(t, h.Host, harbortest.AdminUser, harbortest.AdminPassword)
	repo := mustRepository(t, r, devProj+"/notfound")
	body, desc := pushImage(t, ctx, repo, "v1")

	if got, data, err := repo.FetchManifest(ctx, "v1"); err != nil || got.Digest != desc.Digest || string(data) != string(body) {
		t.Fatalf("FetchManifest(v1) = %v, %v; want the manifest pushed", got.Digest, err)
	}
	if _, _, err := repo.FetchManifest(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("FetchManifest(missing tag) = %v; want ErrNotFound", err)
	}
	if _, err := repo.ResolveManifest(ctx, "missing"); !errors.Is(err, ErrNotFound) {
		t.Errorf("ResolveManifest(missing tag) = %v; want ErrNotFound", err)
	}
	if _, _, err := mustRepository(t, r, devProj+"/nothing").FetchManifest(ctx, "v1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("FetchManifest(missing repository) = %v; want ErrNotFound", err)
	}
	absent := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("absent"), Size: 6}
	if ok, err := repo.ManifestExists(ctx, absent); ok || err != nil {
		t.Errorf("ManifestExists(absent) = %t, %v; want false", ok, err)
	}
	if ok, err := repo.BlobExists(ctx, absent); ok || err != nil {
		t.Errorf("BlobExists(absent) = %t, %v; want false", ok, err)
	}
}

// TestRealHarborMissingProject: Harbor answers every request into a
// project that does not exist with 401, an empty challenge and a message
// naming the project. Reads are "not found"; writes fail naming the
// project, not the credentials. (HEAD answers have no body, so a HEAD
// there stays a 401: the load's preflight, CheckPushAccess, tells.)
func TestRealHarborMissingProject(t *testing.T) {
	h := realHarbor(t)
	ctx := testContext(t)
	r, _ := harborAs(t, h.Host, harbortest.AdminUser, harbortest.AdminPassword)
	repo := mustRepository(t, r, "oras-absent/app")
	want := "project oras-absent does not exist on registry " + h.Host

	if _, _, err := repo.FetchManifest(ctx, "v1"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), want) {
		t.Errorf("FetchManifest = %v; want ErrNotFound saying %q", err, want)
	}
	blob := randomBlob(t, 64)
	err := repo.PushBlob(ctx, blob.desc, blob.open)
	if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "credentials") {
		t.Errorf("PushBlob = %v; want an error saying %q and not blaming the credentials", err, want)
	}
}

// TestRealHarborCheckPushAccess: the preflight asks Harbor's token service
// and reads what it grants, per role; it writes nothing.
func TestRealHarborCheckPushAccess(t *testing.T) {
	h := realHarbor(t)
	proxy := h.StartProxy()
	defer proxy.Close()
	tests := []struct {
		name       string
		user, pass string
		repository string
		wantMsg    string // "" for access
	}{
		{name: "admin", user: harbortest.AdminUser, pass: harbortest.AdminPassword, repository: devProj + "/app"},
		{name: "developer", user: devUser, pass: userPass, repository: devProj + "/nested/app"},
		{name: "guest", user: guestUser, pass: userPass, repository: devProj + "/app",
			wantMsg: "no push permission for project oras-dev on registry " + proxy.Host + " as user oras-guest"},
		{name: "not a member of a private project", user: devUser, pass: userPass, repository: privProj + "/app",
			wantMsg: "no push permission for project oras-private on registry " + proxy.Host + " as user oras-dev"},
		{name: "not a member of a public project", user: devUser, pass: userPass, repository: "library/app",
			wantMsg: "no push permission for project library on registry " + proxy.Host + " as user oras-dev"},
		{name: "missing project", user: harbortest.AdminUser, pass: harbortest.AdminPassword, repository: "oras-absent/app",
			wantMsg: "no push permission for project oras-absent on registry " + proxy.Host + " as user admin: project oras-absent does not exist"},
		{name: "anonymous", repository: "library/app",
			wantMsg: "no push permission for project library on registry " + proxy.Host + " as user anonymous"},
		{name: "wrong password", user: lockedUser, pass: wrongPass, repository: devProj + "/app",
			wantMsg: "as user oras-locked: the registry did not accept the password and granted anonymous access only (run `docker login " + proxy.Host + "`)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := testContext(t)
			r, log := harborAs(t, proxy.Host, tt.user, tt.pass)
			if err := r.Ping(ctx, false); err != nil {
				t.Fatal(err)
			}
			proxy.Reset()
			err := r.CheckPushAccess(ctx, tt.repository)
			switch {
			case tt.wantMsg == "" && err != nil:
				t.Fatalf("CheckPushAccess = %v; want access", err)
			case tt.wantMsg != "" && (!errors.Is(err, ErrUnauthorized) || !strings.Contains(err.Error(), tt.wantMsg)):
				t.Fatalf("CheckPushAccess = %v; want ErrUnauthorized saying %q", err, tt.wantMsg)
			}
			if w := writes(proxy.Requests()); len(w) > 0 {
				t.Errorf("the check wrote: %q", w)
			}
			if err != nil {
				secretsAbsent(t, "error", err.Error(), harbortest.AdminPassword, userPass, wrongPass)
			}
			secretsAbsent(t, "debug log", log.String(), harbortest.AdminPassword, userPass, wrongPass)
		})
	}
}

// TestRealHarborBearerAfterDenial: Harbor answers a token that lacks the
// access with a Basic challenge. That must not turn the registry into a
// basic-auth one for the requests that follow: they keep using tokens.
func TestRealHarborBearerAfterDenial(t *testing.T) {
	h := realHarbor(t)
	proxy := h.StartProxy()
	defer proxy.Close()
	ctx := testContext(t)
	admin, _ := harborAs(t, h.Host, harbortest.AdminUser, harbortest.AdminPassword)
	pushImage(t, ctx, mustRepository(t, admin, devProj+"/bearer"), "v1")

	r, _ := harborAs(t, proxy.Host, guestUser, userPass)
	if err := r.Ping(ctx, true); err != nil {
		t.Fatal(err)
	}
	// Twice: the second request carries the token the first one got, and
	// that token is what Harbor answers with a Basic challenge.
	denied := mustRepository(t, r, privProj+"/app")
	for i := 0; i < 2; i++ {
		if _, _, err := denied.FetchManifest(ctx, "v1"); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("FetchManifest in a project the user cannot read = %v; want ErrUnauthorized", err)
		}
	}
	proxy.Reset()
	repo := mustRepository(t, r, devProj+"/bearer")
	for i := 0; i < 2; i++ {
		if _, _, err := repo.FetchManifest(ctx, "v1"); err != nil {
			t.Fatalf("FetchManifest in a project the user can read: %v", err)
		}
	}
	for _, req := range proxy.Requests() {
		if strings.HasPrefix(req.Path, "/v2/") && req.Auth == "Basic" {
			t.Errorf("%s sent the password (basic auth) after the denial; want a token", req)
		}
	}
}
