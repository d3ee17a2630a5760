package plugin_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnrancher/docker-hangar/archive/archivetest"
	"github.com/cnrancher/docker-hangar/internal/registrytest"
)

// gate holds the transfer of one blob before it starts (its existence
// check, the first request naming it) until it is opened, or 10 s pass:
// the load then lasts as long as the test needs to see a frame of
// progress with the other blobs of that image uploaded. (Holding the
// upload itself would not do: its bytes would count as sent once they fit
// in socket buffers.)
type gate struct {
	digest digest.Digest
	open   chan struct{}
	once   sync.Once
	// held is closed when a request is first held.
	held     chan struct{}
	heldOnce sync.Once
}

func newGate(d digest.Digest) *gate {
	return &gate{digest: d, open: make(chan struct{}), held: make(chan struct{})}
}

func (g *gate) release() { g.once.Do(func() { close(g.open) }) }

func (g *gate) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/blobs/"+g.digest.String()) || r.URL.Query().Get("digest") == g.digest.String() {
			g.heldOnce.Do(func() { close(g.held) })
			select {
			case <-g.open:
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}
		next.ServeHTTP(w, r)
	})
}

// bigLayer is the large layer of app0 in smallArchive, the one a gate
// holds; it is large enough to be checked before its upload.
var bigLayer = archivetest.Layer{Size: 1 << 20, Seed: 7}

// smallArchive writes an archive of n images (docker.io/library/appN:v1)
// of two platforms, each with layers of its own of about size bytes; app0
// also has bigLayer.
func smallArchive(t *testing.T, n int, size int64) string {
	t.Helper()
	var images []archivetest.Image
	for i := range n {
		amd64 := []archivetest.Layer{{Size: size, Seed: int64(10 + i)}, {Size: size / 2, Seed: int64(100 + i)}}
		if i == 0 {
			amd64 = append(amd64, bigLayer)
		}
		images = append(images, archivetest.Image{
			Source: fmt.Sprintf("docker.io/library/app%d", i), Tag: "v1",
			Manifests: []archivetest.Manifest{
				{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}, Layers: amd64},
				{Platform: ocispec.Platform{OS: "linux", Architecture: "arm64"}, Layers: []archivetest.Layer{{Size: size, Seed: int64(1000 + i)}}},
			},
		})
	}
	w, err := archivetest.Write(filepath.Join(t.TempDir(), "small.zip"), images, archivetest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return w.Path
}

var (
	// partialBar is a progress line of an image part uploaded.
	partialBar = regexp.MustCompile(`(?m)^  \S+/library/app0:v1 \[=*>\s*\] \S+/\S+\r?$`)
	// anyBar is any progress line: an image's bar or the total.
	anyBar = regexp.MustCompile(`(?m)^(  .*\[[=> ]+\] |Images \d+/\d+)`)
	// totalLine is the total line of a frame while a load runs.
	totalLine = regexp.MustCompile(`(?m)^Images 0/4, \S+/\S+ \(\S+/s\)\r?$`)
	// ownEscapes are the control sequences the progress display writes:
	// back to the start of the frame, erase it.
	ownEscapes = regexp.MustCompile(`\r\x1b\[\d+A\x1b\[J`)
)

// TestTerminalProgress loads under docker in a real terminal: while the
// load runs, the frame shows each image's bar and the total line; when it
// ends, the bars are gone and the screen holds Hangar's log lines and the
// summary, each from the start of its line.
func TestTerminalProgress(t *testing.T) {
	archive := smallArchive(t, 4, 256<<10)
	g := newGate(archivetest.LayerDigest(bigLayer))
	defer g.release()
	reg := registrytest.MustStart(t, registrytest.Options{Wrap: g.wrap})
	term := startTerminal(t, t.TempDir(), dockerConfig(t), "hangar", "load", "-s", archive, "-d", reg.Host())
	term.waitFor("frame with app0 part uploaded", 15*time.Second, func(raw string) bool {
		// a frame starts with the erase of the one before
		raw = ownEscapes.ReplaceAllString(raw, "")
		return partialBar.MatchString(raw) && totalLine.MatchString(raw)
	})
	g.release()
	if code := term.wait(20 * time.Second); code != 0 {
		t.Fatalf("exit status %d; screen:\n%s", code, term.screen())
	}
	screen := term.screen()
	if anyBar.MatchString(screen) {
		t.Errorf("progress lines left on the screen:\n%s", screen)
	}
	for _, l := range strings.Split(strings.TrimSpace(screen), "\n") {
		if !logLine.MatchString(l) {
			t.Errorf("screen line is not a Hangar log line: %q", l)
		}
	}
	for i := range 4 {
		if want := fmt.Sprintf("[IMG:%d] Loading [docker.io/library/app%d:v1] => [%s/library/app%[2]d:v1]", i+1, i, reg.Host()); !strings.Contains(screen, want) {
			t.Errorf("screen lacks %q:\n%s", want, screen)
		}
	}
	if !strings.Contains(screen, "] Summary: 4 loaded, 0 failed; uploaded ") || !strings.HasSuffix(screen, "[INFO] Done") {
		t.Errorf("screen does not end with the summary and Done:\n%s", screen)
	}
	if rest := ownEscapes.ReplaceAllString(term.rawOutput(), ""); strings.ContainsAny(rest, "\x1b\a") {
		t.Errorf("output has control sequences other than the frame's erase: %q", rest)
	}
}

// TestPlainProgress checks the output without a terminal (a pipe, as in
// CI or `| tee`), and with --progress=plain on a terminal: Hangar's lines
// only, no bars and no escape sequence.
func TestPlainProgress(t *testing.T) {
	archive := smallArchive(t, 4, 64<<10)
	check := func(t *testing.T, out string) {
		t.Helper()
		if strings.ContainsAny(out, "\x1b\a") {
			t.Errorf("output has control characters: %q", out)
		}
		for _, l := range strings.Split(strings.TrimSpace(strings.ReplaceAll(out, "\r\n", "\n")), "\n") {
			if !logLine.MatchString(l) {
				t.Errorf("line is not a Hangar log line: %q", l)
			}
		}
		if !strings.Contains(out, "] Summary: 4 loaded, 0 failed; uploaded ") {
			t.Errorf("no summary:\n%s", out)
		}
	}
	t.Run("pipe", func(t *testing.T) {
		reg := registrytest.MustStart(t, registrytest.Options{})
		stdout, stderr, code := docker(t, dockerConfig(t), "hangar", "load", "-s", archive, "-d", reg.Host())
		if code != 0 || stderr != "" {
			t.Fatalf("exit %d, stderr:\n%s", code, stderr)
		}
		check(t, stdout)
	})
	t.Run("plain on a terminal", func(t *testing.T) {
		reg := registrytest.MustStart(t, registrytest.Options{})
		term := startTerminal(t, t.TempDir(), dockerConfig(t), "hangar", "load", "--progress=plain", "-s", archive, "-d", reg.Host())
		if code := term.wait(20 * time.Second); code != 0 {
			t.Fatalf("exit status %d; screen:\n%s", code, term.screen())
		}
		check(t, term.rawOutput())
	})
}

// jsonLine is what the JSON progress tests read of a line.
type jsonLine struct {
	Event    string `json:"event"`
	Image    string `json:"image"`
	Status   string `json:"status"`
	Done     *int64 `json:"done"`
	Total    *int64 `json:"total"`
	Uploaded *int64 `json:"bytesUploaded"`
	Mounted  *int64 `json:"bytesMounted"`
	Present  *int64 `json:"bytesPresent"`
	Summary  *struct {
		Loaded, Unchanged, Failed, NotInArchive, Interrupted, NotAttempted int
	} `json:"summary"`
	Failed []struct{ Key, Status string } `json:"failed"`
}

// parseJSONLines parses stdout of --progress=json: every line must be one
// JSON object with an event (nothing else may be on stdout).
func parseJSONLines(t *testing.T, stdout string) []jsonLine {
	t.Helper()
	if !strings.HasSuffix(stdout, "\n") {
		t.Errorf("stdout does not end with a newline: %q", stdout)
	}
	var out []jsonLine
	for i, l := range strings.Split(strings.TrimSuffix(stdout, "\n"), "\n") {
		var e jsonLine
		dec := json.NewDecoder(strings.NewReader(l))
		dec.UseNumber()
		if err := dec.Decode(&e); err != nil || e.Event == "" || dec.More() || !strings.HasPrefix(l, "{") {
			t.Errorf("stdout line %d is not one JSON event: %q (%v)", i+1, l, err)
			continue
		}
		out = append(out, e)
	}
	return out
}

// checkProgressEvents checks the image events of a load that ran to its
// end: progress within 0..total, total as started, ending at total for
// every image done with status want; the bytes of each image counted
// once. It returns the image-done events.
func checkProgressEvents(t *testing.T, events []jsonLine, want string) map[string]jsonLine {
	t.Helper()
	totals, last, done := map[string]int64{}, map[string]int64{}, map[string]jsonLine{}
	kinds := map[string]int{}
	for _, e := range events {
		kinds[e.Event]++
		switch e.Event {
		case "image-started":
			totals[e.Image] = *e.Total
		case "image-progress":
			if e.Done == nil || e.Total == nil {
				t.Fatalf("image-progress without done or total: %+v", e)
			}
			if *e.Total != totals[e.Image] {
				t.Errorf("%s: progress total %d, started with %d", e.Image, *e.Total, totals[e.Image])
			}
			if *e.Done < 0 || *e.Done > *e.Total {
				t.Errorf("%s: progress done %d out of 0..%d", e.Image, *e.Done, *e.Total)
			}
			last[e.Image] = *e.Done
		case "image-done":
			done[e.Image] = e
			if e.Status != want {
				t.Errorf("%s: status %q, want %q", e.Image, e.Status, want)
			}
			if l, ok := last[e.Image]; !ok || l != totals[e.Image] {
				t.Errorf("%s: last progress %d (reported %v), want the total %d", e.Image, l, ok, totals[e.Image])
			}
			if sum := *e.Uploaded + *e.Mounted + *e.Present; sum != totals[e.Image] {
				t.Errorf("%s: uploaded %d + mounted %d + present %d = %d, want the total %d", e.Image, *e.Uploaded, *e.Mounted, *e.Present, sum, totals[e.Image])
			}
		}
	}
	for _, k := range []string{"planned", "image-started", "image-progress", "image-done", "summary"} {
		if kinds[k] == 0 {
			t.Errorf("no %s event; saw %v", k, kinds)
		}
	}
	if kinds["summary"] != 1 || events[len(events)-1].Event != "summary" {
		t.Errorf("the summary is not the one last event; saw %v", kinds)
	}
	if len(done) != len(totals) || len(done) == 0 {
		t.Errorf("%d images started, %d done", len(totals), len(done))
	}
	return done
}

// TestJSONProgress loads with --progress=json through a proxy that cuts
// uploads mid-body (the client retries them), then loads again into the
// warm registry: stdout holds JSON events only, and every image's progress
// stays within its total, counts no retried byte twice and ends at its
// total; the warm load finds every byte present.
func TestJSONProgress(t *testing.T) {
	archive := smallArchive(t, 3, 128<<10)
	faults := &registrytest.Faults{EveryCut: 3}
	reg := registrytest.MustStart(t, registrytest.Options{Wrap: faults.Wrap})
	cfg := dockerConfig(t)

	stdout, stderr, code := docker(t, cfg, "hangar", "load", "--progress=json", "-s", archive, "-d", reg.Host())
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	if faults.Cut.Load() == 0 {
		t.Fatal("no upload was cut: the test proves less than it claims")
	}
	events := parseJSONLines(t, stdout)
	done := checkProgressEvents(t, events, "loaded")
	pushed := map[string]int{}
	for _, e := range events {
		if e.Event == "manifest-pushed" {
			pushed[e.Image]++
		}
	}
	for img, e := range done {
		if *e.Uploaded == 0 || pushed[img] != 3 {
			t.Errorf("%s: uploaded %d bytes, %d manifests pushed, want some and 3 (2 platforms, the index)", img, *e.Uploaded, pushed[img])
		}
	}
	if s := events[len(events)-1].Summary; s == nil || s.Loaded != 3 || s.Failed != 0 {
		t.Errorf("summary %+v, want 3 loaded", s)
	}

	faults.Off.Store(true)
	stdout, stderr, code = docker(t, cfg, "hangar", "load", "--progress=json", "-s", archive, "-d", reg.Host())
	if code != 0 || stderr != "" {
		t.Fatalf("warm load: exit %d, stderr:\n%s", code, stderr)
	}
	events = parseJSONLines(t, stdout)
	for img, e := range checkProgressEvents(t, events, "unchanged") {
		if *e.Uploaded != 0 || *e.Mounted != 0 {
			t.Errorf("warm load of %s: uploaded %d, mounted %d, want all present", img, *e.Uploaded, *e.Mounted)
		}
	}
}

// TestProgressFlagRefused checks that a bad --progress is refused before
// the archive or the registry is touched.
func TestProgressFlagRefused(t *testing.T) {
	var requests requestCount
	reg := registrytest.MustStart(t, registrytest.Options{Wrap: requests.wrap})
	archive := smallArchive(t, 1, 1024)
	stdout, stderr, code := docker(t, dockerConfig(t), "hangar", "load", "--progress=bogus", "-s", archive, "-d", reg.Host())
	if code != 1 || stdout != "" || strings.TrimSpace(stderr) != `invalid --progress "bogus": use one of auto, tty, plain, json` {
		t.Errorf("exit %d, stdout %q, stderr %q; want 1 and one error", code, stdout, stderr)
	}
	if n := requests.all.Load(); n != 0 {
		t.Errorf("%d requests reached the registry", n)
	}
}
