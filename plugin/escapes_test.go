package plugin_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnrancher/docker-hangar/archive/archivetest"
	"github.com/cnrancher/docker-hangar/internal/registrytest"
)

// TestEscapesQuoted loads an archive whose source names hold terminal
// control sequences (a retitle, a screen clear), with an image list of
// such lines (one also an OSC 8 hyperlink): every mode prints them quoted
// (\x1b, \a), never raw, on stdout and stderr. On a terminal, the title
// is unchanged and the screen is not cleared. Sequences in paths given on
// the command line are quoted too.
func TestEscapesQuoted(t *testing.T) {
	layer := func(seed int64) []archivetest.Manifest {
		return []archivetest.Manifest{{Platform: ocispec.Platform{OS: "linux", Architecture: "amd64"}, Layers: []archivetest.Layer{{Size: 1000, Seed: seed}}}}
	}
	w, err := archivetest.Write(filepath.Join(t.TempDir(), "evil.zip"), []archivetest.Image{
		{Source: "docker.io/library/ok", Tag: "1", Manifests: layer(1)},
		{Source: "docker.io/library/ev\x1b]0;pwned\x07il", Tag: "1", Manifests: layer(2)},
		{Source: "docker.io/library/clear", Tag: "1\x1b[2J", Manifests: layer(3)},
	}, archivetest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	list := filepath.Join(t.TempDir(), "list.txt")
	lines := "ok:1\ndocker.io/library/ev\x1b]0;pwned\x07il:1\ndocker.io/library/clear:1\x1b[2J\nx\x1b[2J:1\n\x1b]8;;http://evil\x07link\x1b]8;;\x07:1\n"
	if err := os.WriteFile(list, []byte(lines), 0o644); err != nil {
		t.Fatal(err)
	}
	quoted := []string{`ev\x1b]0;pwned\ail`, `clear:1\x1b[2J`, `x\x1b[2J:1`, `\x1b]8;;http:`}
	check := func(t *testing.T, out string, quoted []string) {
		t.Helper()
		if strings.ContainsAny(out, "\x1b\a") {
			t.Errorf("raw control characters in the output: %q", out)
		}
		for _, q := range quoted {
			if !strings.Contains(out, q) {
				t.Errorf("output lacks %s quoted: %q", q, out)
			}
		}
	}
	for _, mode := range [][]string{{"--progress=plain"}, {"--progress=json"}, {"--dry-run"}} {
		t.Run(strings.Join(mode, " "), func(t *testing.T) {
			reg := registrytest.MustStart(t, registrytest.Options{})
			args := append([]string{"hangar", "load", "-s", w.Path, "-d", reg.Host(), "-f", list}, mode...)
			stdout, stderr, code := docker(t, dockerConfig(t), args...)
			if code != 1 {
				t.Errorf("exit %d, want 1 (lines fail)", code)
			}
			check(t, stdout, nil)
			check(t, stderr, nil)
			check(t, stdout+stderr, quoted)
		})
	}
	t.Run("terminal", func(t *testing.T) {
		reg := registrytest.MustStart(t, registrytest.Options{})
		term := startTerminal(t, t.TempDir(), dockerConfig(t), "hangar", "load", "-s", w.Path, "-d", reg.Host(), "-f", list)
		if code := term.wait(20 * time.Second); code != 1 {
			t.Errorf("exit %d, want 1 (lines fail)", code)
		}
		check(t, ownEscapes.ReplaceAllString(term.rawOutput(), ""), quoted)
		if title := term.title(); strings.Contains(title, "pwned") {
			t.Errorf("the terminal was retitled %q", title)
		}
		if screen := term.screen(); !strings.HasPrefix(strings.TrimSpace(screen), "[") || !strings.Contains(screen, "] Arch List: ") {
			t.Errorf("the screen was cleared:\n%s", screen)
		}
	})
	t.Run("paths on the command line", func(t *testing.T) {
		report := filepath.Join(t.TempDir(), "missing", "r\x1b]0;pwned\x07.json")
		_, stderr, code := docker(t, dockerConfig(t), "hangar", "load", "-s", w.Path, "-d", "127.0.0.1:1", "--report", report)
		if code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
		check(t, stderr, []string{`r\x1b]0;pwned\a.json`})
	})
}
