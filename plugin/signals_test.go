package plugin_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cnrancher/docker-hangar/archive/archivetest"
	"github.com/cnrancher/docker-hangar/internal/registrytest"
)

// startDocker starts `docker args...` in a pipe, in its own process group
// (as a shell runs a pipeline), with DOCKER_CONFIG=config; the group is
// killed when the test ends. done receives the exit status.
func startDocker(t *testing.T, dir, config string, args ...string) (cmd *exec.Cmd, stdout, stderr *syncBuffer, done <-chan int) {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("the docker CLI is not installed")
	}
	cmd = exec.Command("docker", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+config, "DOCKER_CLI_HINTS=false")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, stderr = &syncBuffer{}, &syncBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ch, waited := make(chan int, 1), make(chan struct{})
	go func() {
		defer close(waited)
		err := cmd.Wait()
		code := 0
		if exit, ok := err.(*exec.ExitError); ok {
			code = exit.ExitCode()
		} else if err != nil {
			code = -1
		}
		ch <- code
	}()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-waited
	})
	return cmd, stdout, stderr, ch
}

// TestSourceFIFO gives a FIFO as the archive, which no one writes: the
// command must not hang. Either it refuses the FIFO at once with an error
// naming it, or (while opening it still blocks) one Ctrl-C ends it within
// stopGrace (5 s) with status 130. In a pipe, Ctrl-C reaches docker, which
// closes the plugin's socket, and the plugin; the test sends it in the
// order that could be taken for two: docker first, then the plugin. It
// must not count as the second Ctrl-C that forces an exit at once.
func TestSourceFIFO(t *testing.T) {
	var requests requestCount
	reg := startCounted(t, &requests)
	fifo := filepath.Join(t.TempDir(), "saved.zip")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Skipf("cannot make a FIFO: %v", err)
	}
	cmd, stdout, stderr, done := startDocker(t, t.TempDir(), dockerConfig(t), "hangar", "load", "-s", fifo, "-d", reg.Host())
	select {
	case code := <-done:
		if code != 1 || !strings.Contains(stderr.String(), fifo) {
			t.Errorf("exit %d, want 1 and an error naming %s; stderr:\n%s", code, fifo, stderr.String())
		}
		t.Logf("refused at once: %s", strings.TrimSpace(stderr.String()))
		return
	case <-time.After(2 * time.Second):
	}
	t.Log("opening the FIFO blocks: interrupting")
	waitOutput := func(buf *syncBuffer, want string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(buf.String(), want); {
			if time.Now().After(deadline) {
				t.Fatalf("no %q; stdout:\n%s\nstderr:\n%s", want, stdout.String(), stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	// the signal handler is in place once the options are logged
	waitOutput(stdout, "] OS List: ")
	plugin := children(t, cmd.Process.Pid)
	if len(plugin) != 1 {
		t.Fatalf("docker has children %v, want the plugin alone", plugin)
	}
	if err := syscall.Kill(cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	sent := time.Now()
	waitOutput(stderr, "[WARN] Abort: [stop request from docker] received")
	if err := syscall.Kill(plugin[0], syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		if code != 130 {
			t.Errorf("exit %d after Ctrl-C, want 130; stderr:\n%s", code, stderr.String())
		}
		// the bound is generous: stopGrace is 5 s
		if took := time.Since(sent); took > 8*time.Second {
			t.Errorf("exited %s after Ctrl-C, want within stopGrace (5 s)", took)
		}
		if want := "[ERRO] docker hangar did not stop within 5s: exiting"; !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("still running 10 s after Ctrl-C; stderr:\n%s", stderr.String())
	}
	if n := requests.writes.Load(); n != 0 {
		t.Errorf("%d writing requests reached the registry", n)
	}
}

// children returns the pids of the child processes of pid.
func children(t *testing.T, pid int) []int {
	t.Helper()
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, s := range strings.Fields(string(b)) {
			if n, err := strconv.Atoi(s); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// TestInterruptOneProcess stops a load in a pipe by a signal to one
// process: to docker alone (as a supervisor or `kill` does; docker then
// closes the plugin's socket), or to the plugin alone. Either is an
// interrupt: the Abort message, a failed list of the lines not loaded,
// and status 130.
func TestInterruptOneProcess(t *testing.T) {
	if _, err := os.Stat("/proc/self/task"); err != nil {
		t.Skip("needs /proc to find the plugin process")
	}
	archive := smallArchive(t, 3, 64<<10)
	tests := []struct {
		name   string
		plugin bool
		sig    syscall.Signal
		what   string
	}{
		{"SIGINT to docker", false, syscall.SIGINT, "stop request from docker"},
		{"SIGTERM to docker", false, syscall.SIGTERM, "stop request from docker"},
		{"SIGINT to the plugin", true, syscall.SIGINT, "interrupt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newGate(archivetest.LayerDigest(bigLayer))
			defer g.release()
			reg := registrytest.MustStart(t, registrytest.Options{Wrap: g.wrap})
			dir := t.TempDir()
			cmd, stdout, stderr, done := startDocker(t, dir, dockerConfig(t), "hangar", "load", "-s", archive, "-d", reg.Host())
			select {
			case <-g.held:
			case <-time.After(15 * time.Second):
				t.Fatalf("the load did not reach app0's big layer:\n%s%s", stdout.String(), stderr.String())
			}
			pid := cmd.Process.Pid
			if tt.plugin {
				kids := children(t, pid)
				if len(kids) != 1 {
					t.Fatalf("docker has children %v, want the plugin alone", kids)
				}
				pid = kids[0]
			}
			if err := syscall.Kill(pid, tt.sig); err != nil {
				t.Fatal(err)
			}
			select {
			case code := <-done:
				if code != 130 {
					t.Errorf("exit %d, want 130\n%s%s", code, stdout.String(), stderr.String())
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("still running 10 s after the signal:\n%s%s", stdout.String(), stderr.String())
			}
			if want := "[WARN] Abort: [" + tt.what + "] received"; !strings.Contains(stderr.String(), want) {
				t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
			}
			if strings.Contains(stderr.String(), "context canceled") {
				t.Errorf("the interrupt is reported as an error:\n%s", stderr.String())
			}
			failed, err := os.ReadFile(filepath.Join(dir, "load-failed.txt"))
			if want := "docker.io/library/app0:v1\ndocker.io/library/app1:v1\ndocker.io/library/app2:v1\n"; err != nil || string(failed) != want {
				t.Errorf("failed list %q (%v), want %q", failed, err, want)
			}
		})
	}
}
