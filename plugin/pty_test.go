package plugin_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// terminal is a real pseudo-terminal: a detached tmux session (its own
// server, on a socket of its own) running one command, 200x50. tmux is
// the terminal emulator: the screen it shows (capture-pane) is what a user
// would see, and the raw bytes the command wrote are kept (pipe-pane).
type terminal struct {
	t      *testing.T
	sock   string
	raw    string
	status string
}

var terminals atomic.Int64

// Size of the terminal.
const termCols, termRows = 200, 50

// startTerminal runs `docker args...` in a new terminal, in dir, with
// DOCKER_CONFIG=config; the server is killed when the test ends. The
// command starts once the raw output is being recorded.
func startTerminal(t *testing.T, dir, config string, args ...string) *terminal {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("the docker CLI is not installed")
	}
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Skip("tmux is not installed: terminal tests need it for a pseudo-terminal")
	}
	tmp := t.TempDir()
	term := &terminal{
		t:      t,
		sock:   fmt.Sprintf("hangar-test-%d-%d", os.Getpid(), terminals.Add(1)),
		raw:    filepath.Join(tmp, "raw"),
		status: filepath.Join(tmp, "status"),
	}
	// The shell waits for a line (sent below) so that nothing is written
	// before pipe-pane records; then it runs docker (in the terminal's
	// foreground process group, with the shell) and records its exit
	// status, which tmux does not always do. Its trap keeps it alive on
	// Ctrl-C; docker does not inherit a trap.
	script := `trap : INT; read _ && "$@"; echo $? >` + term.status + `.tmp && mv ` + term.status + `.tmp ` + term.status
	cmd := append([]string{"sh", "-c", script, "sh",
		"env", "-u", "TMUX", "DOCKER_CONFIG=" + config, "DOCKER_CLI_HINTS=false", "docker"}, args...)
	term.tmux(append([]string{"-f", "/dev/null", "new-session", "-d", "-s", "main", "-c", dir,
		"-x", strconv.Itoa(termCols), "-y", strconv.Itoa(termRows), "--"}, cmd...)...)
	t.Cleanup(func() {
		exec.Command("tmux", "-L", term.sock, "kill-server").Run()
		// the server leaves its socket behind
		dir := os.Getenv("TMUX_TMPDIR")
		if dir == "" {
			dir = "/tmp"
		}
		os.Remove(filepath.Join(dir, fmt.Sprintf("tmux-%d", os.Getuid()), term.sock))
	})
	term.tmux("set-option", "-t", "main", "remain-on-exit", "on")
	term.tmux("pipe-pane", "-t", "main", "-o", "cat >> "+term.raw)
	term.tmux("send-keys", "-t", "main", "Enter")
	return term
}

// tmux runs a tmux command on the terminal's server and returns its output.
func (term *terminal) tmux(args ...string) string {
	term.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", term.sock}, args...)...).CombinedOutput()
	if err != nil {
		term.t.Fatalf("tmux %v: %v: %s", args, err, out)
	}
	return string(out)
}

// screen returns what the terminal shows, scrollback included, with lines
// wrapped by the terminal joined and trailing blank lines dropped.
func (term *terminal) screen() string {
	term.t.Helper()
	out := term.tmux("capture-pane", "-p", "-J", "-S", "-", "-E", "-", "-t", "main")
	// tmux's own note on a pane whose command ended
	if i := strings.Index(out, "\nPane is dead ("); i >= 0 {
		out = out[:i]
	}
	return strings.TrimRight(out, "\n")
}

// rawOutput returns every byte the command wrote to the terminal so far.
func (term *terminal) rawOutput() string {
	term.t.Helper()
	b, err := os.ReadFile(term.raw)
	if err != nil && !os.IsNotExist(err) {
		term.t.Fatal(err)
	}
	return string(b)
}

// title returns the terminal's title (set by OSC 0 and 2).
func (term *terminal) title() string {
	term.t.Helper()
	return strings.TrimSpace(term.tmux("display-message", "-p", "-t", "main", "#{pane_title}"))
}

// ctrlC types Ctrl-C: the terminal sends SIGINT to its foreground process
// group, docker and the plugin.
func (term *terminal) ctrlC() {
	term.t.Helper()
	term.tmux("send-keys", "-t", "main", "C-c")
}

// exited reports whether the command ended, and its exit status.
func (term *terminal) exited() (bool, int) {
	term.t.Helper()
	b, err := os.ReadFile(term.status)
	if os.IsNotExist(err) {
		return false, 0
	}
	if err != nil {
		term.t.Fatal(err)
	}
	code, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		term.t.Fatalf("exit status %q: %v", b, err)
	}
	return true, code
}

// wait waits up to timeout for the command to end and returns its exit
// status; then it waits for the raw output to be recorded. It fails the
// test when the command does not end in time.
func (term *terminal) wait(timeout time.Duration) int {
	term.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if done, code := term.exited(); done {
			term.settle()
			return code
		}
		if time.Now().After(deadline) {
			term.t.Fatalf("the command did not end within %s; screen:\n%s", timeout, term.screen())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitFor polls the terminal's raw output until cond accepts it, for up to
// timeout; it fails the test if the command ends first or time runs out.
func (term *terminal) waitFor(what string, timeout time.Duration, cond func(raw string) bool) {
	term.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond(term.rawOutput()) {
		if done, code := term.exited(); done {
			if term.settle(); cond(term.rawOutput()) {
				return
			}
			term.t.Fatalf("the command ended (status %d) before %s; screen:\n%s\nraw output: %q", code, what, term.screen(), term.rawOutput())
		}
		if time.Now().After(deadline) {
			term.t.Fatalf("no %s within %s; screen:\n%s\nraw output: %q", what, timeout, term.screen(), term.rawOutput())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// settle waits, after the command ended, for the raw output to be
// recorded: pipe-pane's cat writes asynchronously.
func (term *terminal) settle() {
	term.t.Helper()
	n := -1
	for i := 0; i < 50 && len(term.rawOutput()) != n; i++ {
		n = len(term.rawOutput())
		time.Sleep(20 * time.Millisecond)
	}
}
