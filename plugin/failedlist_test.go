package plugin_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cnrancher/docker-hangar/internal/registrytest"
)

// TestLargeFailedList loads a 100,000-line image list whose lines are not
// in the archive: the failed list, once built in quadratic time, is
// written within a generous bound, with every line, in order, and the
// summary counts them all.
func TestLargeFailedList(t *testing.T) {
	const n = 100_000
	archive := smallArchive(t, 1, 1024)
	reg := registrytest.MustStart(t, registrytest.Options{})
	dir := t.TempDir()
	var list strings.Builder
	for i := range n {
		fmt.Fprintf(&list, "docker.io/library/missing%06d:1\n", i)
	}
	listPath := filepath.Join(dir, "list.txt")
	if err := os.WriteFile(listPath, []byte(list.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	failed := filepath.Join(dir, "failed.txt")
	start := time.Now()
	stdout, stderr, code := run(t, "load", "-s", archive, "-d", reg.Host(), "-f", listPath, "-o", failed)
	// generous: linear takes about a second; quadratic, tens of seconds
	if took := time.Since(start); took > 10*time.Second {
		t.Errorf("a %d-line failed list took %s", n, took)
	}
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%.2000s", code, stderr)
	}
	got, err := os.ReadFile(failed)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != list.String() {
		lines := strings.Split(string(got), "\n")
		t.Errorf("failed list has %d lines, not the %d lines of the list in order (first %q)", len(lines)-1, n, lines[0])
	}
	if want := fmt.Sprintf("] Summary: 0 failed, %d not in archive;", n); !strings.Contains(stdout, want) {
		t.Errorf("stdout lacks %q", want)
	}
}
