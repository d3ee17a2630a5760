package plugin_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cnrancher/docker-hangar/internal/harbortest"
	"github.com/cnrancher/docker-hangar/internal/registrytest"
)

// pluginBinary is the docker-hangar binary built once for these tests.
var pluginBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "docker-hangar-test")
	if err != nil {
		panic(err)
	}
	pluginBinary = filepath.Join(dir, "docker-hangar")
	if runtime.GOOS == "windows" {
		pluginBinary += ".exe"
	}
	build := exec.Command("go", "build", "-o", pluginBinary, "..")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		os.RemoveAll(dir)
		panic("build docker-hangar: " + err.Error())
	}
	code := harbortest.Main(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// dockerConfig returns a temporary DOCKER_CONFIG with the plugin installed.
func dockerConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	plugins := filepath.Join(dir, "cli-plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(pluginBinary, filepath.Join(plugins, "docker-hangar")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// docker runs the real docker CLI with DOCKER_CONFIG=config (docker's
// default when empty), in a temporary working directory, and returns
// stdout, stderr and the exit status.
func docker(t *testing.T, config string, args ...string) (string, string, int) {
	t.Helper()
	return dockerStdin(t, config, "", args...)
}

// dockerStdin is docker with stdin.
func dockerStdin(t *testing.T, config, stdin string, args ...string) (string, string, int) {
	t.Helper()
	if _, err := exec.LookPath("docker"); err != nil {
		t.Skip("the docker CLI is not installed")
	}
	cmd := exec.Command("docker", args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "DOCKER_CONFIG="+config, "DOCKER_CLI_HINTS=false")
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("docker %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

func TestDockerListsPlugin(t *testing.T) {
	cfg := dockerConfig(t)
	out, errOut, code := docker(t, cfg, "--help")
	if code != 0 {
		t.Fatalf("docker --help: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "hangar*") || !strings.Contains(out, "Load Hangar archives into a registry") {
		t.Errorf("docker --help does not list the plugin:\n%s", out)
	}
	if strings.Contains(out+errOut, "Invalid Plugins") {
		t.Errorf("docker reports an invalid plugin:\n%s%s", out, errOut)
	}
}

func TestDockerLoadHelp(t *testing.T) {
	cfg := dockerConfig(t)
	out, errOut, code := docker(t, cfg, "hangar", "load", "--help")
	if code != 0 {
		t.Fatalf("docker hangar load --help: exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"docker hangar load", "--source", "--destination", "--file", "--arch", "--os", "--jobs",
		"--failed", "--project", "--source-registry", "--timeout", "--provenance", "--overwrite",
		"--tls-verify", "--skip-login", "--debug", "--dry-run", "--report", "validate", "Examples:",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("help lacks %q:\n%s", want, out)
		}
	}
}

func TestDockerLoadWithDockerLoginCredentials(t *testing.T) {
	archive := basicArchive(t)
	want := basicState(t, archive)
	auth, err := registrytest.HtpasswdAuth(filepath.Join(t.TempDir(), "htpasswd"), map[string]string{"alice": "s3cret-pass"})
	if err != nil {
		t.Fatal(err)
	}
	reg := registrytest.MustStart(t, registrytest.Options{Auth: auth})

	t.Run("no credentials", func(t *testing.T) {
		cfg := dockerConfig(t)
		out, errOut, code := docker(t, cfg, "hangar", "load", "-s", archive, "-d", reg.Host())
		if code == 0 {
			t.Fatalf("load without credentials succeeded:\n%s%s", out, errOut)
		}
		if !strings.Contains(out+errOut, "docker login "+reg.Host()) {
			t.Errorf("error does not tell to run docker login:\n%s%s", out, errOut)
		}
		if strings.Contains(out, "Loading [") {
			t.Errorf("images were loaded before the login check failed:\n%s", out)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		cfg := dockerConfig(t)
		if err := registrytest.WriteDockerConfig(cfg, registrytest.DockerConfig{Auths: map[string]registrytest.DockerAuth{
			reg.Host(): {Username: "alice", Password: "wrong-pass"},
		}}); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := docker(t, cfg, "hangar", "load", "-s", archive, "-d", reg.Host(), "--debug")
		if code == 0 {
			t.Fatalf("load with a wrong password succeeded:\n%s%s", out, errOut)
		}
		if strings.Contains(out+errOut, "wrong-pass") {
			t.Errorf("the password appears in the output:\n%s%s", out, errOut)
		}
	})
	t.Run("credentials from docker login", func(t *testing.T) {
		cfg := dockerConfig(t)
		if err := registrytest.WriteDockerConfig(cfg, registrytest.DockerConfig{Auths: map[string]registrytest.DockerAuth{
			reg.Host(): {Username: "alice", Password: "s3cret-pass"},
		}}); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := docker(t, cfg, "hangar", "load", "-s", archive, "-d", reg.Host(), "--debug")
		if code != 0 {
			t.Fatalf("load: exit %d\n%s%s", code, out, errOut)
		}
		if strings.Contains(out+errOut, "s3cret-pass") {
			t.Errorf("the password appears in the output:\n%s%s", out, errOut)
		}
		client := reg.Client()
		client.Transport = basicAuth{"alice", "s3cret-pass", client.Transport}
		got, err := registrytest.State(client, reg.Server.URL)
		if err != nil {
			t.Fatal(err)
		}
		if diff := registrytest.DiffState(want, got); diff != "" {
			t.Errorf("registry state differs from the reference state:\n%s", diff)
		}
		out, errOut, code = docker(t, cfg, "hangar", "load", "validate", "-s", archive, "-d", reg.Host())
		if code != 0 || !strings.Contains(out, "PASS: [127.0.0.1:5557/library/app00:v1.0.0]") {
			t.Errorf("validate: exit %d\n%s%s", code, out, errOut)
		}
		// docker's --config flag instead of DOCKER_CONFIG
		out, errOut, code = docker(t, "", "--config", cfg, "hangar", "load", "validate", "-s", archive, "-d", reg.Host())
		if code != 0 || !strings.Contains(out, "PASS: [127.0.0.1:5557/library/app00:v1.0.0]") {
			t.Errorf("validate with --config: exit %d\n%s%s", code, out, errOut)
		}
	})
}

func TestDockerCompletion(t *testing.T) {
	cfg := dockerConfig(t)
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"hangar", "l"}, []string{"load\t"}},
		{[]string{"hangar", "load", "--so"}, []string{"--source\t", "--source-registry\t"}},
		{[]string{"hangar", "load", "-s", ""}, []string{"zip", "ShellCompDirectiveFilterFileExt"}},
		{[]string{"hangar", "load", "--arch", ""}, []string{"amd64", "arm64"}},
		{[]string{"hangar", "load", "validate", "--fil"}, []string{"--file\t"}},
	}
	for _, tt := range tests {
		out, errOut, code := docker(t, cfg, append([]string{"__complete"}, tt.args...)...)
		if code != 0 {
			t.Fatalf("docker __complete %v: exit %d: %s", tt.args, code, errOut)
		}
		for _, w := range tt.want {
			if !strings.Contains(out+errOut, w) {
				t.Errorf("completion of %v lacks %q:\n%s%s", tt.args, w, out, errOut)
			}
		}
	}
}
