package plugin_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cnrancher/docker-hangar/internal/fixtures"
	"github.com/cnrancher/docker-hangar/internal/harbortest"
	"github.com/cnrancher/docker-hangar/internal/registrytest"
)

// Tests of `docker hangar load` against a real Harbor v2 (one instance for
// the package, internal/harbortest), through the real docker CLI with a
// temporary DOCKER_CONFIG. docker hangar talks to Harbor through a
// recording proxy (as to a Harbor behind a load balancer), which sees
// every request it sends. They skip where ../shared/harbor is absent.

// hangarProject is Hangar's project creation body.
func hangarProject(name string) string {
	return `{"project_name":"` + name + `","metadata":{"public":"false"}}`
}

// harborState reads the tags of the repositories under projects, as the
// administrator.
func harborState(t *testing.T, h *harbortest.Harbor, projects []string) []registrytest.Tag {
	t.Helper()
	all, err := registrytest.State(h.Client(harbortest.AdminUser, harbortest.AdminPassword), h.URL())
	if err != nil {
		t.Fatal(err)
	}
	var kept []registrytest.Tag
	for _, tag := range all {
		if project, _, _ := strings.Cut(tag.Ref, "/"); slices.Contains(projects, project) {
			kept = append(kept, tag)
		}
	}
	return kept
}

func projectsOf(tags []registrytest.Tag) []string {
	var out []string
	for _, tag := range tags {
		if project, _, _ := strings.Cut(tag.Ref, "/"); !slices.Contains(out, project) {
			out = append(out, project)
		}
	}
	return out
}

// dockerLogin runs `docker login` with the password on stdin.
func dockerLogin(t *testing.T, cfg, host, user, password string) {
	t.Helper()
	out, errOut, code := dockerStdin(t, cfg, password+"\n", "login", "-u", user, "--password-stdin", host)
	if code != 0 || !strings.Contains(out, "Login Succeeded") {
		t.Fatalf("docker login %s as %s: exit %d\n%s%s", host, user, code, out, errOut)
	}
}

func writeRequests(reqs []harbortest.Request) []string {
	var out []string
	for _, r := range reqs {
		if r.IsWrite() {
			out = append(out, r.String())
		}
	}
	return out
}

// TestRealHarborLoad is a user's session with a real Harbor: docker login
// as admin; load two images whose projects do not exist (only those two
// projects are created, private, with Hangar's request, and the load
// succeeds with tokens issued after they exist); load the whole archive;
// the registry then holds exactly what Hangar left; a second load writes
// nothing; validate passes.
func TestRealHarborLoad(t *testing.T) {
	dir := fixtures.Require(t)
	h := harbortest.Shared(t)
	proxy := h.StartProxy()
	defer proxy.Close()
	ctx := context.Background()
	archive := filepath.Join(dir, "basic.zip")
	golden, err := registrytest.ReadStateFile(filepath.Join(dir, "basic.load-default.state.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	projects := projectsOf(golden) // cnrancher extra hangar-file hangar-helm library rancher
	for _, p := range projects {
		if _, err := h.Project(ctx, p); p != "library" && !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("project %s before the load: %v; want none", p, err)
		}
	}

	cfg := dockerConfig(t)
	dockerLogin(t, cfg, proxy.Host, harbortest.AdminUser, harbortest.AdminPassword)
	load := func(t *testing.T, args ...string) string {
		t.Helper()
		out, errOut, code := docker(t, cfg, append([]string{"hangar", "load", "-s", archive, "-d", proxy.Host}, args...)...)
		if code != 0 {
			t.Fatalf("docker hangar load %v: exit %d\n%s%s", args, code, out, errOut)
		}
		if strings.Contains(out+errOut, harbortest.AdminPassword) {
			t.Errorf("the password appears in the output:\n%s%s", out, errOut)
		}
		return out + errOut
	}

	t.Run("projects of the loaded images only", func(t *testing.T) {
		list := filepath.Join(t.TempDir(), "list.txt")
		if err := os.WriteFile(list, []byte("127.0.0.1:5557/rancher/app01:v1.0.0\n127.0.0.1:5557/cnrancher/app02:v1.0.0\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		proxy.Reset()
		out := load(t, "-f", list)
		var bodies []string
		for _, r := range proxy.Requests() {
			if r.Method == "POST" && r.Path == "/api/v2.0/projects" {
				bodies = append(bodies, string(r.Body))
			}
		}
		if want := []string{hangarProject("rancher"), hangarProject("cnrancher")}; !slices.Equal(bodies, want) {
			t.Errorf("project creations %q; want %q", bodies, want)
		}
		for _, p := range []string{"rancher", "cnrancher"} {
			if got, err := h.Project(ctx, p); err != nil || got.Metadata.Public != "false" {
				t.Errorf("project %s: %+v, %v; want private", p, got, err)
			}
			if !strings.Contains(out, `Created Harbor V2 project "`+p+`"`) {
				t.Errorf("log lacks the creation of %s:\n%s", p, out)
			}
		}
		for _, p := range []string{"extra", "hangar-file", "hangar-helm"} {
			if _, err := h.Project(ctx, p); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("project %s: %v; want none (no image of it was loaded)", p, err)
			}
		}
		want := slices.DeleteFunc(slices.Clone(golden), func(tag registrytest.Tag) bool {
			return !strings.HasPrefix(tag.Ref, "rancher/") && !strings.HasPrefix(tag.Ref, "cnrancher/")
		})
		if diff := registrytest.DiffState(want, harborState(t, h, projects)); diff != "" {
			t.Errorf("Harbor differs from Hangar's state:\n%s", diff)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("whole archive", func(t *testing.T) {
		out := load(t)
		if !strings.Contains(out, `Project "rancher" already exists`) || !strings.Contains(out, `Project "library" already exists`) {
			t.Errorf("log does not report the existing projects:\n%s", out)
		}
		if diff := registrytest.DiffState(golden, harborState(t, h, projects)); diff != "" {
			t.Errorf("Harbor differs from Hangar's state (tag for tag, digest for digest):\n%s", diff)
		}
	})
	if t.Failed() {
		return
	}

	t.Run("reload writes nothing", func(t *testing.T) {
		proxy.Reset()
		out := load(t)
		if w := writeRequests(proxy.Requests()); len(w) > 0 {
			t.Errorf("a second load wrote %d requests: %q", len(w), w)
		}
		if !strings.Contains(out, "Summary: 8 unchanged, 0 failed;") {
			t.Errorf("summary does not say everything was unchanged:\n%s", out)
		}
		// The fewest requests that prove the images are there (issue 13):
		// one token (the login check's, for every repository: a password
		// check each on Harbor), no project lookup (the token's grants
		// prove the projects), one request per image (Harbor keeps the
		// manifests an index names).
		var tokens, projectCalls, manifestCalls int
		for _, r := range proxy.Requests() {
			switch {
			case r.Path == "/service/token":
				tokens++
			case strings.HasPrefix(r.Path, "/api/v2.0/projects"):
				projectCalls++
			case strings.Contains(r.Path, "/manifests/"):
				manifestCalls++
			}
		}
		if tokens != 1 || projectCalls != 0 || manifestCalls != 8 {
			t.Errorf("reload: %d token requests, %d project API calls, %d manifest requests; want 1, 0 and 8 (one per image)", tokens, projectCalls, manifestCalls)
		}
	})

	t.Run("validate", func(t *testing.T) {
		proxy.Reset()
		out, errOut, code := docker(t, cfg, "hangar", "load", "validate", "-s", archive, "-d", proxy.Host)
		if code != 0 || strings.Count(out+errOut, "PASS: [") != 8 {
			t.Errorf("validate: exit %d; want 8 PASS\n%s%s", code, out, errOut)
		}
		if w := writeRequests(proxy.Requests()); len(w) > 0 {
			t.Errorf("validate wrote: %q", w)
		}
	})
}

// TestRealHarborNoPushPermission: a user who is no member of an existing
// project gets one error naming the project, the registry, the user and
// the missing permission, before any upload, and exit status 1.
func TestRealHarborNoPushPermission(t *testing.T) {
	dir := fixtures.Require(t)
	h := harbortest.Shared(t)
	ctx := context.Background()
	const user, pass, project = "plugin-viewer", "Viewer-Pa55word", "plugin-team"
	if err := h.CreateUser(ctx, user, pass); err != nil {
		t.Fatal(err)
	}
	if err := h.CreateProject(ctx, project, false); err != nil {
		t.Fatal(err)
	}
	proxy := h.StartProxy()
	defer proxy.Close()
	cfg := dockerConfig(t)
	dockerLogin(t, cfg, proxy.Host, user, pass)

	proxy.Reset()
	out, errOut, code := docker(t, cfg, "hangar", "load", "-s", filepath.Join(dir, "basic.zip"), "-d", proxy.Host, "--project", project)
	all := out + errOut
	if code != 1 {
		t.Fatalf("exit %d; want 1\n%s", code, all)
	}
	want := "no push permission for project " + project + " on registry " + proxy.Host + " as user " + user
	if n := strings.Count(all, want); n != 1 {
		t.Errorf("the output says %q %d times; want once:\n%s", want, n, all)
	}
	if strings.Contains(all, "Loading [") || strings.Contains(all, pass) {
		t.Errorf("images were loaded, or the password shows:\n%s", all)
	}
	for _, r := range proxy.Requests() {
		if strings.HasPrefix(r.Path, "/v2/") && r.IsWrite() {
			t.Errorf("%s reached Harbor; want no upload", r)
		}
	}
	t.Logf("docker hangar load as %s:\n%s", user, all)
}
