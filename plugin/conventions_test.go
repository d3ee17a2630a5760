package plugin_test

import (
	"strings"
	"testing"
)

// TestDockerUnknownCommand checks that a mistyped or missing subcommand
// is refused as docker refuses `docker imag`: a non-zero status, "unknown
// command" and, when one is close, a suggestion.
func TestDockerUnknownCommand(t *testing.T) {
	cfg := dockerConfig(t)
	tests := []struct {
		args    []string
		want    []string
		notWant []string
	}{
		{[]string{"hangar", "lod"}, []string{"docker hangar: unknown command: docker hangar lod", "Did you mean this?\n\tload\n"}, nil},
		{[]string{"hangar", "version"}, []string{"docker hangar: unknown command: docker hangar version"}, []string{"Did you mean"}},
	}
	for _, tt := range tests {
		stdout, stderr, code := docker(t, cfg, tt.args...)
		if code == 0 {
			t.Errorf("docker %v: exit 0, want non-zero", tt.args)
		}
		if stdout != "" {
			t.Errorf("docker %v: unexpected stdout:\n%s", tt.args, stdout)
		}
		for _, w := range tt.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("docker %v: stderr lacks %q:\n%s", tt.args, w, stderr)
			}
		}
		for _, w := range tt.notWant {
			if strings.Contains(stderr, w) {
				t.Errorf("docker %v: stderr has %q:\n%s", tt.args, w, stderr)
			}
		}
	}
}

// TestDockerUsage checks the help of load and validate against docker's
// layout: the usage line names the required flags first, the required
// flags say so, and validate shows only the flags it uses and no
// subcommand section (it has none).
func TestDockerUsage(t *testing.T) {
	cfg := dockerConfig(t)
	tests := []struct {
		args    []string
		usage   string
		flags   []string
		notWant []string
		want    []string
	}{
		{
			args:  []string{"hangar", "load", "--help"},
			usage: "Usage:  docker hangar load -s ARCHIVE -d REGISTRY [OPTIONS]",
			flags: []string{"--source", "--destination", "--file", "--arch", "--os", "--jobs", "--failed", "--progress",
				"--overwrite", "--dry-run", "--report", "--platform-tags"},
			want: []string{"\nCommands:\n  validate ", "Run 'docker hangar load COMMAND --help'"},
		},
		{
			args:    []string{"hangar", "load", "validate", "--help"},
			usage:   "Usage:  docker hangar load validate -s ARCHIVE -d REGISTRY [OPTIONS]",
			flags:   []string{"--source", "--destination", "--file", "--arch", "--os", "--jobs", "--failed", "--progress"},
			notWant: []string{"--overwrite", "--dry-run", "--report", "--platform-tags", "Commands:", "COMMAND"},
		},
	}
	for _, tt := range tests {
		help, stderr, code := docker(t, cfg, tt.args...)
		if code != 0 {
			t.Fatalf("docker %v: exit %d: %s", tt.args, code, stderr)
		}
		if first, _, _ := strings.Cut(help, "\n"); first != tt.usage {
			t.Errorf("docker %v: first line %q, want %q", tt.args, first, tt.usage)
		}
		for _, f := range tt.flags {
			if !strings.Contains(help, " "+f+" ") {
				t.Errorf("docker %v: no %s:\n%s", tt.args, f, help)
			}
		}
		for _, f := range []string{"-s, --source ", "-d, --destination "} {
			line := ""
			for _, l := range strings.Split(help, "\n") {
				if strings.HasPrefix(strings.TrimSpace(l), f) {
					line = l
				}
			}
			if !strings.HasSuffix(line, "(required)") {
				t.Errorf("docker %v: %q is not marked (required): %q", tt.args, f, line)
			}
		}
		for _, w := range tt.want {
			if !strings.Contains(help, w) {
				t.Errorf("docker %v: help lacks %q:\n%s", tt.args, w, help)
			}
		}
		for _, w := range tt.notWant {
			if strings.Contains(help, w) {
				t.Errorf("docker %v: help has %q:\n%s", tt.args, w, help)
			}
		}
	}
}
