package plugin_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cnrancher/docker-hangar/internal/fixtures"
	"github.com/cnrancher/docker-hangar/internal/registrytest"
	"github.com/cnrancher/docker-hangar/loader"
	"github.com/cnrancher/docker-hangar/plugin"
)

// run runs the real command tree in-process, as `docker-hangar args...`
// in a temporary working directory, and returns stdout, stderr and the
// exit status.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	t.Chdir(t.TempDir())
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	root := plugin.NewRootCommand()
	var stdout, stderr bytes.Buffer
	root.SetArgs(args)
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	code := plugin.Execute(root, &stderr)
	return stdout.String(), stderr.String(), code
}

// writes counts the requests that change a registry.
type writes struct{ n atomic.Int64 }

func (c *writes) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			c.n.Add(1)
		}
		h.ServeHTTP(w, r)
	})
}

var logLine = regexp.MustCompile(`^\[\d\d:\d\d:\d\d\] \[(INFO|WARN|ERRO|FATA|DEBU)\] (\[IMG:\d+\] )?`)

// TestLogMatchesHangar checks the non-terminal output: the lines of the
// real `hangar load` log (basic.load-default.log), in the same order, with
// Hangar's line shape; the summary is the only line added.
func TestLogMatchesHangar(t *testing.T) {
	dir := fixtures.Require(t)
	reg := registrytest.MustStart(t, registrytest.Options{})
	stdout, stderr, code := run(t, "load", "-s", filepath.Join(dir, "basic.zip"), "-d", reg.Host())
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	if stderr != "" {
		t.Errorf("unexpected stderr:\n%s", stderr)
	}
	hangar, err := os.ReadFile(filepath.Join(dir, "basic.load-default.log"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, l := range strings.Split(string(hangar), "\n") {
		if logLine.MatchString(l) {
			want = append(want, strings.ReplaceAll(logLine.ReplaceAllString(l, "$1 $2"), "127.0.0.1:5558", reg.Host()))
		}
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		if !logLine.MatchString(l) {
			t.Errorf("line not shaped like Hangar's: %q", l)
			continue
		}
		if strings.Contains(l, "] Summary: ") {
			continue
		}
		got = append(got, logLine.ReplaceAllString(l, "$1 $2"))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log differs from Hangar's:\ngot:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestDryRun(t *testing.T) {
	archive := basicArchive(t)
	var w writes
	reg := registrytest.MustStart(t, registrytest.Options{Wrap: w.wrap})
	stdout, stderr, code := run(t, "load", "--dry-run", "-s", archive, "-d", reg.Host())
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	if n := w.n.Load(); n != 0 {
		t.Errorf("dry run sent %d writing requests", n)
	}
	state, err := registrytest.State(reg.Client(), reg.Server.URL)
	if err != nil {
		t.Fatal(err)
	}
	if len(state) != 0 {
		t.Errorf("dry run left tags: %v", state)
	}
	for _, want := range []string{
		reg.Host() + "/library/app00:v1.0.0 <= 127.0.0.1:5557/library/app00:v1.0.0: 4 manifests",
		reg.Host() + "/extra/nested/tool:1.0 <= 127.0.0.1:5557/extra/nested/tool:1.0: 1 manifests",
		reg.Host() + "/hangar-helm/demo:0.1.7 <= docker.io/hangar-helm/demo:0.1.7: 1 manifests",
		"(would load)",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("plan lacks %q:\n%s", want, stdout)
		}
	}

	// after a real load, the plan says everything is up to date
	if _, _, code := run(t, "load", "-s", archive, "-d", reg.Host()); code != 0 {
		t.Fatal("load failed")
	}
	before := w.n.Load()
	stdout, _, code = run(t, "load", "--dry-run", "-s", archive, "-d", reg.Host())
	if code != 0 || w.n.Load() != before {
		t.Fatalf("second dry run: exit %d, %d writes", code, w.n.Load()-before)
	}
	if strings.Count(stdout, "(up to date)") != 8 {
		t.Errorf("after a load, not every image is up to date:\n%s", stdout)
	}
}

func TestReport(t *testing.T) {
	archive := basicArchive(t)
	reg := registrytest.MustStart(t, registrytest.Options{})
	report := filepath.Join(t.TempDir(), "report.json")
	list := filepath.Join(t.TempDir(), "partial-list.txt") // as in the fixtures
	if err := os.WriteFile(list, []byte("127.0.0.1:5557/library/app00:v1.0.0\n127.0.0.1:5557/library/missing:9.9\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, code := run(t, "load", "-s", archive, "-d", reg.Host(), "-f", list, "--report", report)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (one image is missing)", code)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatal(err)
	}
	var rep loader.Report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, data)
	}
	if len(rep.Images) != 1 || len(rep.Failed) != 1 || rep.Failed[0] != "127.0.0.1:5557/library/missing:9.9" {
		t.Fatalf("report images %d, failed %v", len(rep.Images), rep.Failed)
	}
	img := rep.Images[0]
	state, err := registrytest.State(reg.Client(), reg.Server.URL)
	if err != nil {
		t.Fatal(err)
	}
	tags := map[string]string{}
	for _, s := range state {
		tags[s.Ref] = s.Digest
	}
	if img.Status != "loaded" || img.Destination != reg.Host()+"/library/app00:v1.0.0" || img.Index != tags["library/app00:v1.0.0"] {
		t.Errorf("report image %+v does not match the registry (main tag %s)", img, tags["library/app00:v1.0.0"])
	}
	if len(img.Manifests) != 4 || img.Uploaded == 0 {
		t.Errorf("report image manifests %d, uploaded %d", len(img.Manifests), img.Uploaded)
	}
	for _, m := range img.Manifests {
		if m.Tag != "" && tags["library/app00:"+m.Tag] != m.Digest {
			t.Errorf("manifest %s: tag %s holds %s", m.Digest, m.Tag, tags["library/app00:"+m.Tag])
		}
	}
}

func TestFlagErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"load", "-d", "r.example"}, "source file not provided"},
		{[]string{"load", "-s", "a.zip"}, "destination registry not provided"},
		{[]string{"load", "-s", "a.zip", "-d", "r", "--sigstore-private-key", "k"}, "cosign"},
		{[]string{"load", "-s", "missing.zip", "-d", "127.0.0.1:1"}, "missing.zip"},
		{[]string{"load", "validate", "-s", "missing.zip", "-d", "127.0.0.1:1"}, "missing.zip"},
	}
	for _, tt := range tests {
		_, stderr, code := run(t, tt.args...)
		if code != 1 || !strings.Contains(stderr, tt.want) {
			t.Errorf("%v: exit %d, stderr %q, want 1 and %q", tt.args, code, stderr, tt.want)
		}
	}
}
