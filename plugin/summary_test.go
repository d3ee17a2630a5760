package plugin_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnrancher/docker-hangar/archive/archivetest"
	"github.com/cnrancher/docker-hangar/internal/registrytest"
)

// holdIndex lets the index push of repo:tag reach the registry and then
// holds the response of the push, until the client gives up (or 10 s);
// the manifest pushes to stall are held before they reach the registry.
// landed is closed when the index is in the registry and the client is
// held, so that a test can interrupt the load at that very point.
type holdIndex struct {
	repo, tag, stall string
	landed           chan struct{}
	once             sync.Once
}

func newHoldIndex(repo, tag, stall string) *holdIndex {
	return &holdIndex{repo: repo, tag: tag, stall: stall, landed: make(chan struct{})}
}

// wait holds a request until the client gives up (or 10 s).
func wait(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-time.After(10 * time.Second):
	}
}

func (h *holdIndex) wrap(next http.Handler) http.Handler {
	path := "/v2/" + h.repo + "/manifests/" + h.tag
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/v2/"+h.stall+"/manifests/") {
			io.Copy(io.Discard, r.Body) // the server sees the client go only once the body is read
			wait(r)
			http.Error(w, "held", http.StatusServiceUnavailable)
			return
		}
		isIndex := r.Header.Get("Content-Type") == ocispec.MediaTypeImageIndex
		if r.URL.Path != path || r.Method != http.MethodPut || !isIndex {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		if rec.Code == http.StatusCreated {
			h.once.Do(func() { close(h.landed) })
			wait(r)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	})
}

// TestInterruptCountsLandedIndex interrupts a load (Ctrl-C in a terminal)
// at the moment the first image's index is in the registry but the
// client has not yet seen the push's response, while the second image's
// manifests are on their way (the registry holds them). The first image
// is loaded (its tag is in the registry): the summary counts it loaded
// and the failed list leaves it out; the images after it are interrupted
// and listed. The exit status is 130, and the Abort message stays on the
// screen once the bars are gone.
func TestInterruptCountsLandedIndex(t *testing.T) {
	archive := smallArchive(t, 3, 64<<10)
	for _, tt := range []struct {
		name string
	}{
		{"index push response pending"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hold := newHoldIndex("library/app0", "v1", "library/app1")
			reg := registrytest.MustStart(t, registrytest.Options{Wrap: hold.wrap})
			dir := t.TempDir()
			term := startTerminal(t, dir, dockerConfig(t), "hangar", "load", "-s", archive, "-d", reg.Host())
			select {
			case <-hold.landed:
			case <-time.After(15 * time.Second):
				t.Fatalf("the index of app0 was not pushed within 15 s; screen:\n%s", term.screen())
			}
			term.ctrlC()
			code := term.wait(10 * time.Second)
			screen := term.screen()
			if code != 130 {
				t.Errorf("exit status %d after Ctrl-C, want 130; screen:\n%s", code, screen)
			}
			if _, ok := tags(t, reg)["library/app0:v1"]; !ok {
				t.Fatalf("app0:v1 is not in the registry: the test did not hold the client after the push")
			}
			failed, err := os.ReadFile(filepath.Join(dir, "load-failed.txt"))
			if err != nil {
				t.Fatalf("no failed list: %v; screen:\n%s", err, screen)
			}
			if strings.Contains(string(failed), "app0") {
				t.Errorf("app0, whose index is in the registry, is in the failed list:\n%s", failed)
			}
			if !strings.Contains(string(failed), "docker.io/library/app2:v1") {
				t.Errorf("app2, never loaded, is not in the failed list:\n%s", failed)
			}
			if !strings.Contains(screen, "Summary: 1 loaded, 0 failed, ") {
				t.Errorf("the summary does not count app0 loaded:\n%s", screen)
			}
			if !strings.Contains(screen, "[WARN] Abort: [interrupt] received") {
				t.Errorf("the Abort message is not on the screen:\n%s", screen)
			}
			if anyBar.MatchString(screen) {
				t.Errorf("progress lines left on the screen:\n%s", screen)
			}
			// every line from its start: Hangar's log lines and the
			// failed list's lines, nothing left of a frame or of ^C
			keys := map[string]bool{}
			for _, k := range strings.Fields(string(failed)) {
				keys[k] = true
			}
			for _, l := range strings.Split(strings.TrimSpace(screen), "\n") {
				if !logLine.MatchString(l) && !keys[l] {
					t.Errorf("screen line is neither a log line nor a failed-list line: %q", l)
				}
			}
		})
	}
}

// TestSummaryAddsUp checks that the summary explains the exit status: its
// counts add up to the lines of the failed list, each line counted under
// why it is there (failed, not in archive), in the log and in the JSON
// summary; a dry run says what it would load.
func TestSummaryAddsUp(t *testing.T) {
	const size = 32 << 10
	archive := smallArchive(t, 3, size)
	// app1's first amd64 layer is its own: the image fails, the others load
	if err := archivetest.FlipByte(archive, archivetest.LayerDigest(archivetest.Layer{Size: size, Seed: 11})); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		list    []string
		args    []string
		code    int
		summary string
		failed  []string // the failed list, with the status of each line
	}{
		{
			name:    "line not in archive",
			list:    []string{"docker.io/library/app0:v1", "docker.io/library/nothere:1"},
			code:    1,
			summary: "Summary: 1 loaded, 0 failed, 1 not in archive; uploaded ",
			failed:  []string{"docker.io/library/nothere:1 not-in-archive"},
		},
		{
			name:    "failed image and line not in archive",
			list:    []string{"app0:v1", "library/app1:v1", "nothere:1", "docker.io/library/app2:v1"},
			code:    1,
			summary: "Summary: 2 loaded, 1 failed, 1 not in archive; uploaded ",
			failed:  []string{"docker.io/library/app1:v1 failed", "nothere:1 not-in-archive"},
		},
		{
			name:    "every image loads",
			list:    []string{"app0:v1", "app2:v1"},
			summary: "Summary: 2 loaded, 0 failed; uploaded ",
		},
		{
			name:    "dry run",
			list:    []string{"app0:v1", "nothere:1"},
			args:    []string{"--dry-run"},
			code:    1,
			summary: "Summary (dry run): 1 would load, 0 failed, 1 not in archive; to upload ",
			failed:  []string{"nothere:1 not-in-archive"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := registrytest.MustStart(t, registrytest.Options{})
			cfg := dockerConfig(t)
			dir := t.TempDir()
			list := filepath.Join(dir, "list.txt")
			if err := os.WriteFile(list, []byte(strings.Join(tt.list, "\n")+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			failedFile := filepath.Join(dir, "failed.txt")
			args := append([]string{"hangar", "load", "-s", archive, "-d", reg.Host(), "-f", list, "-o", failedFile}, tt.args...)

			stdout, stderr, code := docker(t, cfg, args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.code, stdout, stderr)
			}
			var summary string
			for _, l := range strings.Split(stdout, "\n") {
				if strings.Contains(l, "] Summary") {
					summary = l
				}
			}
			if !strings.Contains(summary, tt.summary) {
				t.Errorf("summary %q, want %q", summary, tt.summary)
			}
			dryRun := slices.Contains(tt.args, "--dry-run")
			if strings.Contains(summary, "would load") != dryRun || strings.Contains(summary, " loaded") == dryRun {
				t.Errorf("summary %q: a dry run says would load, a load loaded", summary)
			}
			var wantKeys []string
			for _, f := range tt.failed {
				key, _, _ := strings.Cut(f, " ")
				wantKeys = append(wantKeys, key)
			}
			got, err := os.ReadFile(failedFile)
			if tt.failed == nil {
				if err == nil {
					t.Errorf("a failed list was written:\n%s", got)
				}
			} else if strings.Join(strings.Fields(string(got)), "\n") != strings.Join(wantKeys, "\n") {
				t.Errorf("failed list:\n%s\nwant:\n%s", got, strings.Join(wantKeys, "\n"))
			}
			// the counts of the failed list's kinds add up to its lines
			n := 0
			for _, kind := range []string{"failed", "not in archive", "interrupted", "not attempted"} {
				if i := strings.Index(summary, " "+kind); i > 0 {
					f := strings.Fields(summary[:i])
					c, _ := strconv.Atoi(f[len(f)-1])
					n += c
				}
			}
			if n != len(tt.failed) {
				t.Errorf("summary %q counts %d lines of the failed list, which has %d", summary, n, len(tt.failed))
			}
			for _, k := range wantKeys {
				if !strings.Contains(stderr, k) {
					t.Errorf("stderr does not name %s:\n%s", k, stderr)
				}
			}

			// the JSON summary names every line with why
			stdout, _, code = docker(t, cfg, append(args, "--progress=json")...)
			if code != tt.code {
				t.Fatalf("--progress=json: exit %d, want %d", code, tt.code)
			}
			events := parseJSONLines(t, stdout)
			last := events[len(events)-1]
			var gotFailed []string
			for _, f := range last.Failed {
				gotFailed = append(gotFailed, f.Key+" "+f.Status)
			}
			if last.Event != "summary" || strings.Join(gotFailed, "\n") != strings.Join(tt.failed, "\n") {
				t.Errorf("JSON summary failed list:\n%s\nwant:\n%s", strings.Join(gotFailed, "\n"), strings.Join(tt.failed, "\n"))
			}
		})
	}
}
