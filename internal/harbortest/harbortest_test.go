package harbortest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv("HARBORTEST_CHILD"); dir != "" {
		child(dir)
		return
	}
	os.Exit(Main(m))
}

// child is a test binary that starts a Harbor, writes its host to
// dir/host and a copy of its pids file to dir/pids, waits for its standard
// input to end and then panics without stopping Harbor.
func child(dir string) {
	h, err := Start(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	procs, err := os.ReadFile(filepath.Join(h.Dir, "pids"))
	if err != nil {
		panic(err)
	}
	for name, data := range map[string][]byte{"pids": procs, "dir": []byte(h.Dir), "host": []byte(h.Host)} {
		if err := os.WriteFile(filepath.Join(dir, name+".part"), data, 0o644); err != nil {
			panic(err)
		}
		if err := os.Rename(filepath.Join(dir, name+".part"), filepath.Join(dir, name)); err != nil {
			panic(err)
		}
	}
	_, _ = io.Copy(io.Discard, os.Stdin)
	panic("test binary dies with its Harbor running")
}

// readPids parses a pids file ("name pid" lines).
func readPids(t *testing.T, path string) map[string]int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, pid, _ := strings.Cut(sc.Text(), " ")
		n, err := strconv.Atoi(pid)
		if err != nil {
			t.Fatalf("pids: %q", sc.Text())
		}
		got[name] = n
	}
	return got
}

func alive(pid int) bool { return syscall.Kill(pid, 0) == nil }

// waitGone waits (at most 90 s) until none of procs runs and dir is gone.
func waitGone(t *testing.T, procs map[string]int, dir string) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		var running []string
		for name, pid := range procs {
			if alive(pid) {
				running = append(running, fmt.Sprintf("%s (%d)", name, pid))
			}
		}
		_, statErr := os.Stat(dir)
		if len(running) == 0 && errors.Is(statErr, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 90s: still running %v; %s removed: %t", running, dir, errors.Is(statErr, os.ErrNotExist))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitFile waits (at most 3 minutes) for path while cmd runs.
func waitFile(t *testing.T, path string, exited <-chan error) []byte {
	t.Helper()
	deadline := time.After(3 * time.Minute)
	for {
		if data, err := os.ReadFile(path); err == nil {
			return data
		}
		select {
		case err := <-exited:
			t.Fatalf("child exited before writing %s: %v", filepath.Base(path), err)
		case <-deadline:
			t.Fatalf("child wrote no %s in 3 minutes", filepath.Base(path))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func ping(t *testing.T, url string) {
	t.Helper()
	resp, err := http.Get(url + "/api/v2.0/ping")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s ping: %s", url, resp.Status)
	}
}

// TestSideBySideAndWatchdog runs a second Harbor in another test binary,
// as when go test runs two packages at once: each has its own ports,
// directory and database. Then that binary panics without stopping its
// Harbor, and the watchdog must stop it, leaving the first one running.
func TestSideBySideAndWatchdog(t *testing.T) {
	first := Shared(t)
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "HARBORTEST_CHILD="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer stdin.Close()

	host := string(waitFile(t, filepath.Join(dir, "host"), exited))
	secondDir := string(waitFile(t, filepath.Join(dir, "dir"), exited))
	procs := readPids(t, filepath.Join(dir, "pids"))
	if host == first.Host || secondDir == first.Dir {
		t.Fatalf("instances share %s / %s", host, secondDir)
	}
	if len(procs) != 4 {
		t.Fatalf("pids %v; want postgres, redis, registry, core", procs)
	}
	ping(t, first.URL())
	ping(t, "http://"+host)

	// Each is a real Harbor with its own database: a project created in the
	// second is absent from the first.
	ctx := context.Background()
	second := &Harbor{Host: host}
	if err := second.CreateProject(ctx, "only-in-second", false); err != nil {
		t.Fatal(err)
	}
	if p, err := second.Project(ctx, "only-in-second"); err != nil || p.Metadata.Public != "false" {
		t.Fatalf("project in second: %+v, %v", p, err)
	}
	if _, err := first.Project(ctx, "only-in-second"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("project in first: %v; want not found", err)
	}

	stdin.Close()
	select {
	case err := <-exited:
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 2 || !strings.Contains(out.String(), "test binary dies with its Harbor running") {
			t.Fatalf("child: %v\n%s", err, out.String())
		}
	case <-time.After(time.Minute):
		t.Fatal("child did not exit")
	}
	waitGone(t, procs, secondDir)
	ping(t, first.URL())
}

// TestUnavailableWithoutScripts: beside a project root without
// ../shared/harbor, Harbor tests skip with a message naming it.
func TestUnavailableWithoutScripts(t *testing.T) {
	root := filepath.Join(t.TempDir(), "project")
	if err := os.MkdirAll(filepath.Join(root, "pkg"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "go.mod"), []byte("module example.com/p\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(filepath.Join(root, "pkg"))
	if dir := ScriptsDir(); dir != "" {
		t.Fatalf("ScriptsDir = %q; want none", dir)
	}
	if got := Unavailable(); !strings.Contains(got, "../shared/harbor") || !strings.Contains(got, "absent") {
		t.Fatalf("Unavailable = %q; want a message naming ../shared/harbor", got)
	}
}
