package main

import (
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	const pkg = `"Package":"github.com/cnrancher/docker-hangar/p"`
	lines := func(ls ...string) string { return strings.Join(ls, "\n") + "\n" }
	tests := []struct {
		name   string
		in     string
		status int
		want   []string
	}{
		{"all pass", lines(
			`{"Action":"run",`+pkg+`,"Test":"TestA"}`,
			`{"Action":"pass",`+pkg+`,"Test":"TestA"}`,
			`{"Action":"output",`+pkg+`,"Output":"ok  \tgithub.com/cnrancher/docker-hangar/p\t0.1s\n"}`,
			`{"Action":"pass",`+pkg+`}`,
		), 0, []string{"ok  \tgithub.com/cnrancher/docker-hangar/p", "1 tests passed, 0 failed, 0 skipped"}},
		{"skip with reason", lines(
			`{"Action":"output",`+pkg+`,"Test":"TestB","Output":"=== RUN   TestB\n"}`,
			`{"Action":"output",`+pkg+`,"Test":"TestB","Output":"    b_test.go:9: golden fixtures not found: ../shared/fixtures is absent\n"}`,
			`{"Action":"output",`+pkg+`,"Test":"TestB","Output":"--- SKIP: TestB (0.00s)\n"}`,
			`{"Action":"skip",`+pkg+`,"Test":"TestB"}`,
			`{"Action":"pass",`+pkg+`}`,
		), 0, []string{"p TestB: b_test.go:9: golden fixtures not found: ../shared/fixtures is absent", "0 tests passed, 0 failed, 1 skipped"}},
		{"a failure shows its output", lines(
			`{"Action":"output",`+pkg+`,"Test":"TestC","Output":"    c_test.go:3: boom\n"}`,
			`{"Action":"fail",`+pkg+`,"Test":"TestC"}`,
			`{"Action":"fail",`+pkg+`}`,
		), 1, []string{"--- FAIL: github.com/cnrancher/docker-hangar/p TestC", "c_test.go:3: boom", "0 tests passed, 1 failed, 0 skipped"}},
		{"a package that failed to build", lines(
			`# github.com/cnrancher/docker-hangar/p`,
			`p/x.go:1:1: syntax error`,
			`{"Action":"fail",`+pkg+`}`,
		), 1, []string{"p/x.go:1:1: syntax error"}},
		{"no results", "", 1, []string{"0 tests passed"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			if got := summarize(strings.NewReader(tt.in), &out); got != tt.status {
				t.Errorf("status %d, want %d", got, tt.status)
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}
