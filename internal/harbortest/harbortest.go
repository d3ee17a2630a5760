// Package harbortest runs a real Harbor v2 for tests: Harbor's core,
// PostgreSQL, Redis and a distribution registry on loopback, started by
// the scripts in ../shared/harbor beside the project root (up.sh DIR PORT,
// down.sh DIR). Each instance gets free ports and a temporary directory of
// its own, so that test packages running at the same time each have their
// own Harbor.
//
// A test package shares one instance: Shared starts it on first use (or
// skips the test with the reason when Harbor cannot run here), and
// StopShared, called from TestMain after m.Run, stops it. A watchdog
// process stops it too when the test binary dies without StopShared (a
// panic, a timeout, a kill), so no Harbor outlives its test binary.
package harbortest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Harbor's initial administrator.
const (
	AdminUser     = "admin"
	AdminPassword = "Harbor12345"
)

// startTimeout bounds up.sh, which may first install Debian packages.
const startTimeout = 5 * time.Minute

// Harbor is a running Harbor.
type Harbor struct {
	// Host is "127.0.0.1:port" of Harbor's core, which serves the registry
	// API (/v2/), the token service and the REST API (/api/v2.0/).
	Host string
	// Dir holds the instance's data and logs (core.log, registry.log, ...).
	Dir string

	watchdog *exec.Cmd
	stopOnce sync.Once
	stopErr  error
	keepOpen *os.File // closing it makes the watchdog run down.sh
}

// URL returns the base URL of Harbor's core ("http://127.0.0.1:port").
func (h *Harbor) URL() string { return "http://" + h.Host }

// ScriptsDir returns the directory of up.sh and down.sh, found by walking
// up from the working directory to the project root (the directory with
// go.mod) and taking ../shared/harbor beside it, or "" when it is absent.
func ScriptsDir() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for i := 0; i < 8; i++ {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, "..", "shared", "harbor")
			for _, f := range []string{"up.sh", "down.sh"} {
				if _, err := os.Stat(filepath.Join(p, f)); err != nil {
					return ""
				}
			}
			return p
		}
		dir = filepath.Dir(dir)
	}
	return ""
}

// Unavailable returns why a real Harbor cannot run here, or "".
func Unavailable() string {
	if ScriptsDir() == "" {
		return "real Harbor not available: ../shared/harbor (up.sh, down.sh) is absent beside the project root"
	}
	if os.Geteuid() != 0 {
		return "real Harbor not available: ../shared/harbor/up.sh must run as root (it runs PostgreSQL as the postgres user)"
	}
	return ""
}

// Start starts a Harbor with free ports in a new temporary directory and
// returns once it answers; stop it with Stop. Starts are serialised across
// processes (up.sh may install packages and unpack Harbor's core into a
// cache shared by every instance).
func Start(ctx context.Context) (*Harbor, error) {
	if reason := Unavailable(); reason != "" {
		return nil, errors.New(reason)
	}
	scripts := ScriptsDir()
	unlock, err := lockStarts()
	if err != nil {
		return nil, err
	}
	defer unlock()

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		h, err := start(ctx, scripts)
		if err == nil {
			return h, nil
		}
		lastErr = err
		if ctx.Err() != nil || !errors.Is(err, errPortTaken) {
			break
		}
	}
	return nil, lastErr
}

// errPortTaken means another process took one of the ports picked.
var errPortTaken = errors.New("port already in use")

func start(ctx context.Context, scripts string) (*Harbor, error) {
	ports, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "harbortest-")
	if err != nil {
		return nil, err
	}
	h := &Harbor{Host: "127.0.0.1:" + strconv.Itoa(ports[0]), Dir: dir}
	if err := writeTokenKey(dir); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := h.startWatchdog(filepath.Join(scripts, "down.sh")); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	if err := h.up(ctx, filepath.Join(scripts, "up.sh"), ports); err != nil {
		if serr := h.Stop(); serr != nil {
			err = fmt.Errorf("%w (and stopping it: %v)", err, serr)
		}
		return nil, err
	}
	if err := h.waitReady(ctx); err != nil {
		err = fmt.Errorf("%w\n%s", err, h.LogTail("core.log", 20))
		if serr := h.Stop(); serr != nil {
			err = fmt.Errorf("%w (and stopping it: %v)", err, serr)
		}
		return nil, err
	}
	return h, nil
}

// writeTokenKey writes the key core signs registry tokens with, where
// up.sh keeps it: up.sh would generate a 4096-bit one with openssl, which
// takes seconds; 2048 bits are plenty for tests.
func writeTokenKey(dir string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	secrets := filepath.Join(dir, "secret")
	if err := os.MkdirAll(secrets, 0o755); err != nil {
		return err
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	return os.WriteFile(filepath.Join(secrets, "private_key.pem"), data, 0o600)
}

// startWatchdog starts a process that waits for the end of its standard
// input, then runs down.sh DIR and removes DIR. Its standard input is a
// pipe whose only writer is this process: Stop closes it, and so does the
// kernel when this process dies.
func (h *Harbor) startWatchdog(downScript string) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd := exec.Command("/bin/sh", "-c", `cat >/dev/null; "$0" "$1"; rm -rf "$1"`, downScript, h.Dir)
	cmd.Stdin = r
	// Its own process group, so that a Ctrl-C to the tests does not stop
	// the watchdog before it stopped Harbor.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return fmt.Errorf("start harbor watchdog: %w", err)
	}
	r.Close()
	h.watchdog, h.keepOpen = cmd, w
	return nil
}

// up runs up.sh with the ports: core, registry, postgres, redis, and the
// jobservice port core is told about (nothing listens there).
func (h *Harbor) up(ctx context.Context, script string, ports []int) error {
	logPath := filepath.Join(h.Dir, "up.log")
	// A file, not a pipe: the daemons up.sh starts inherit its output, and
	// a pipe would stay open as long as they run.
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := exec.CommandContext(ctx, script, h.Dir, strconv.Itoa(ports[0]))
	cmd.Env = append(os.Environ(),
		"REG_PORT="+strconv.Itoa(ports[1]),
		"PG_PORT="+strconv.Itoa(ports[2]),
		"REDIS_PORT="+strconv.Itoa(ports[3]),
		"JOB_PORT="+strconv.Itoa(ports[4]),
		"DEBIAN_FRONTEND=noninteractive",
	)
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()
	if runErr == nil {
		return nil
	}
	out, _ := os.ReadFile(logPath)
	if bytes.Contains(out, []byte("already in use")) {
		return fmt.Errorf("%s: %w: %s", filepath.Base(script), errPortTaken, bytes.TrimSpace(out))
	}
	if ctx.Err() != nil {
		runErr = fmt.Errorf("not ready after %s", startTimeout)
	}
	return fmt.Errorf("%s %s: %v\n%s\n%s", script, h.Dir, runErr, bytes.TrimSpace(out), h.LogTail("core.log", 20))
}

// waitReady waits until the registry API answers through core: an
// anonymous GET /v2/ gets 401 with a Bearer challenge.
func (h *Harbor) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: 5 * time.Second}
	var last string
	for i := 0; i < 60; i++ {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, h.URL()+"/v2/", nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized && strings.HasPrefix(resp.Header.Get("Www-Authenticate"), "Bearer ") {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("harbor at %s not ready: %s", h.Host, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
	return fmt.Errorf("harbor at %s not ready: GET /v2/: %s", h.Host, last)
}

// Stop stops Harbor (down.sh) and removes its directory. It may be called
// more than once.
func (h *Harbor) Stop() error {
	h.stopOnce.Do(func() {
		h.keepOpen.Close()
		done := make(chan error, 1)
		go func() { done <- h.watchdog.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				h.stopErr = fmt.Errorf("stop harbor in %s: %w", h.Dir, err)
			}
		case <-time.After(2 * time.Minute):
			h.stopErr = fmt.Errorf("stop harbor in %s: down.sh still running after 2m", h.Dir)
		}
	})
	return h.stopErr
}

// LogTail returns the last n lines of one of the instance's logs (e.g.
// "core.log", "registry.log"), for failure messages.
func (h *Harbor) LogTail(name string, n int) string {
	data, err := os.ReadFile(filepath.Join(h.Dir, name))
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return name + ":\n" + strings.Join(lines, "\n")
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// lockStarts takes an exclusive lock shared by every process on the
// machine, and returns its release.
func lockStarts() (func(), error) {
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "docker-hangar-harbortest.lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock harbor starts: %w", err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// API sends a request to Harbor's REST API (path under /api/v2.0) as
// user, with body marshalled to JSON when not nil, and returns the status
// and the response body.
func (h *Harbor) API(ctx context.Context, user, password, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(ctx, method, h.URL()+"/api/v2.0"+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, data, err
}

// adminAPI is API as the administrator, expecting want.
func (h *Harbor) adminAPI(ctx context.Context, method, path string, body any, want int) ([]byte, error) {
	status, data, err := h.API(ctx, AdminUser, AdminPassword, method, path, body)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if status != want {
		return nil, fmt.Errorf("%s %s: %d %s: %s", method, path, status, http.StatusText(status), bytes.TrimSpace(data))
	}
	return data, nil
}

// CreateUser creates a user (not an administrator, member of no project).
// Harbor wants passwords of 8 to 128 characters with an upper-case letter,
// a lower-case letter and a digit.
func (h *Harbor) CreateUser(ctx context.Context, name, password string) error {
	_, err := h.adminAPI(ctx, http.MethodPost, "/users", map[string]string{
		"username": name, "password": password, "email": name + "@example.com", "realname": name,
	}, http.StatusCreated)
	return err
}

// CreateProject creates a project as the administrator.
func (h *Harbor) CreateProject(ctx context.Context, name string, public bool) error {
	_, err := h.adminAPI(ctx, http.MethodPost, "/projects", map[string]any{
		"project_name": name, "metadata": map[string]string{"public": strconv.FormatBool(public)},
	}, http.StatusCreated)
	return err
}

// Project roles for AddMember.
const (
	RoleProjectAdmin = 1
	RoleDeveloper    = 2 // pull and push
	RoleGuest        = 3 // pull only
	RoleMaintainer   = 4
)

// AddMember makes user a member of project with role.
func (h *Harbor) AddMember(ctx context.Context, project, user string, role int) error {
	_, err := h.adminAPI(ctx, http.MethodPost, "/projects/"+project+"/members", map[string]any{
		"role_id": role, "member_user": map[string]string{"username": user},
	}, http.StatusCreated)
	return err
}

// Configure changes Harbor's system configuration (e.g.
// {"project_creation_restriction": "adminonly"}).
func (h *Harbor) Configure(ctx context.Context, settings map[string]any) error {
	_, err := h.adminAPI(ctx, http.MethodPut, "/configurations", settings, http.StatusOK)
	return err
}

// Project describes an existing project.
type Project struct {
	Name     string `json:"name"`
	OwnerID  int    `json:"owner_id"`
	Metadata struct {
		Public string `json:"public"`
	} `json:"metadata"`
}

// Project returns the project name, or an error wrapping os.ErrNotExist
// when there is none.
func (h *Harbor) Project(ctx context.Context, name string) (*Project, error) {
	status, data, err := h.API(ctx, AdminUser, AdminPassword, http.MethodGet, "/projects?name="+name, nil)
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, fmt.Errorf("list projects: %d %s", status, bytes.TrimSpace(data))
	}
	var list []Project
	if err := json.Unmarshal(data, &list); err != nil {
		return nil, fmt.Errorf("list projects: %w", err)
	}
	for i := range list {
		if list[i].Name == name {
			return &list[i], nil
		}
	}
	return nil, fmt.Errorf("project %s: %w", name, os.ErrNotExist)
}

// Client returns an HTTP client that sends user's credentials with basic
// auth, which Harbor accepts on its registry API too (e.g. for
// registrytest.State as the administrator).
func (h *Harbor) Client(user, password string) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: basicAuth{user, password}}
}

type basicAuth struct{ user, password string }

func (b basicAuth) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.SetBasicAuth(b.user, b.password)
	return http.DefaultTransport.RoundTrip(r)
}

// TB is the part of testing.TB that Shared needs.
type TB interface {
	Helper()
	Skip(args ...any)
	Fatalf(format string, args ...any)
}

var shared struct {
	mu      sync.Mutex
	harbor  *Harbor
	err     error
	started bool
}

// Shared returns the test binary's Harbor, starting it on first use. It
// skips the test when Harbor cannot run here (see Unavailable) and fails
// it when Harbor does not start. Call StopShared from TestMain.
func Shared(t TB) *Harbor {
	t.Helper()
	if reason := Unavailable(); reason != "" {
		t.Skip(reason)
	}
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if !shared.started {
		shared.started = true
		shared.harbor, shared.err = Start(context.Background())
	}
	if shared.err != nil {
		t.Fatalf("start harbor: %v", shared.err)
	}
	return shared.harbor
}

// StopShared stops the Harbor Shared started, if any.
func StopShared() error {
	shared.mu.Lock()
	defer shared.mu.Unlock()
	if shared.harbor == nil {
		return nil
	}
	return shared.harbor.Stop()
}

// Main runs the tests of m, then stops the shared Harbor; it returns the
// exit code for os.Exit. Use it as TestMain's body:
//
//	func TestMain(m *testing.M) { os.Exit(harbortest.Main(m)) }
func Main(m interface{ Run() int }) int {
	code := m.Run()
	if err := StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		if code == 0 {
			code = 1
		}
	}
	return code
}
