package plugin_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRefusedEarly checks that options that cannot work are refused
// before the load starts: one error line, exit status 1, nothing on
// stdout, and no request that writes reaching the registry.
func TestRefusedEarly(t *testing.T) {
	var requests requestCount
	reg := startCounted(t, &requests)
	archive := smallArchive(t, 1, 1024)
	dir := t.TempDir()
	readOnly := filepath.Join(dir, "read-only")
	if err := os.Mkdir(readOnly, 0o555); err != nil {
		t.Fatal(err)
	}
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
		skip string
	}{
		{name: "report in a missing directory", args: []string{"--report", filepath.Join(dir, "missing", "r.json")}, want: "--report: open " + filepath.Join(dir, "missing", "r.json") + ": no such file or directory"},
		{name: "failed list in a missing directory", args: []string{"-o", filepath.Join(dir, "missing", "f.txt")}, want: "--failed: open " + filepath.Join(dir, "missing", "f.txt") + ": no such file or directory"},
		{name: "failed list under a file", args: []string{"--failed", filepath.Join(notDir, "f.txt")}, want: "--failed: open " + filepath.Join(notDir, "f.txt") + ": not a directory"},
		{name: "report is a directory", args: []string{"--report", dir}, want: "--report: " + dir + " is not a regular file"},
		{name: "failed list in a read-only directory", args: []string{"-o", filepath.Join(readOnly, "f.txt")}, want: "permission denied",
			skip: map[bool]string{true: "root writes in a read-only directory"}[os.Geteuid() == 0]},
		{name: "failed list where no one may create a file", args: []string{"-o", "/sys/hangar-failed.txt"}, want: "--failed: open /sys/hangar-failed.txt: permission denied",
			skip: map[bool]string{true: "no /sys"}[!isDir("/sys")]},
		{name: "validate: failed list in a missing directory", args: []string{"validate", "-o", filepath.Join(dir, "missing", "f.txt")}, want: "--failed: open "},
		{name: "upper-case destination path", args: []string{"-d", reg.Host() + "/UPPER"}, want: `invalid destination reference: destination "` + reg.Host() + `/UPPER": the path "UPPER" is not a valid repository prefix`},
		{name: "negative timeout", args: []string{"--timeout", "-1s"}, want: "invalid options: timeout -1s is negative (0 means none)"},
		{name: "empty arch", args: []string{"--arch", ""}, want: "invalid options: the arch list is empty"},
		{name: "empty os item", args: []string{"--os", "linux,"}, want: `invalid options: the os list ["linux" ""] has an empty item`},
	}
	cfg := dockerConfig(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.skip != "" {
				t.Skip(tt.skip)
			}
			args := []string{"hangar", "load"}
			if tt.args[0] == "validate" {
				args, tt.args = append(args, "validate"), tt.args[1:]
			}
			args = append(append(args, "-s", archive, "-d", reg.Host()), tt.args...)
			before := requests.writes.Load()
			stdout, stderr, code := docker(t, cfg, args...)
			if code != 1 || stdout != "" {
				t.Errorf("exit %d, stdout %q; want 1 and nothing", code, stdout)
			}
			if lines := strings.Split(strings.TrimSpace(stderr), "\n"); len(lines) != 1 || !strings.Contains(lines[0], tt.want) {
				t.Errorf("stderr %q, want one line with %q", stderr, tt.want)
			}
			if n := requests.writes.Load() - before; n != 0 {
				t.Errorf("%d writing requests reached the registry", n)
			}
		})
	}
	if entries, _ := os.ReadDir(readOnly); len(entries) != 0 {
		t.Errorf("files left in %s: %v", readOnly, entries)
	}
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
