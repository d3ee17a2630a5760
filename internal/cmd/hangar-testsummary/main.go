// Command hangar-testsummary reads `go test -json` output on stdin and
// prints what `make test` shows: a line per package as `go test` prints
// it, the output of every failed test, every skipped test with its reason,
// and the counts of passed, failed and skipped tests. It exits 1 when a
// test or a package failed (or the input holds no result at all).
//
//	go test -json ./... | hangar-testsummary
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

// event is one line of test2json output.
type event struct {
	Action  string
	Package string
	Test    string
	Elapsed float64
	Output  string
}

type key struct{ pkg, test string }

func main() {
	os.Exit(summarize(os.Stdin, os.Stdout))
}

func summarize(in io.Reader, out io.Writer) int {
	output := map[key]*strings.Builder{}
	var passed, failed, skipped []key
	var pkgFailed []string
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	results := 0
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			fmt.Fprintln(out, sc.Text()) // build errors and the like
			continue
		}
		k := key{e.Package, e.Test}
		switch e.Action {
		case "output":
			b := output[k]
			if b == nil {
				b = &strings.Builder{}
				output[k] = b
			}
			if b.Len() < 1<<20 {
				b.WriteString(e.Output)
			}
			if e.Test == "" && (strings.HasPrefix(e.Output, "ok ") || strings.HasPrefix(e.Output, "FAIL") || strings.HasPrefix(e.Output, "?")) {
				fmt.Fprint(out, e.Output)
			}
		case "pass", "fail", "skip":
			results++
			if e.Test == "" {
				if e.Action == "fail" {
					pkgFailed = append(pkgFailed, e.Package)
				}
				continue
			}
			switch e.Action {
			case "pass":
				passed = append(passed, k)
			case "fail":
				failed = append(failed, k)
			default:
				skipped = append(skipped, k)
			}
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintln(out, "hangar-testsummary:", err)
		return 1
	}
	for _, k := range failed {
		fmt.Fprintf(out, "\n--- FAIL: %s %s\n%s", k.pkg, k.test, output[k])
	}
	if len(skipped) > 0 {
		fmt.Fprintf(out, "\nSkipped tests:\n")
		sort.Slice(skipped, func(i, j int) bool { return skipped[i].pkg+skipped[i].test < skipped[j].pkg+skipped[j].test })
		for _, k := range skipped {
			fmt.Fprintf(out, "  %s %s: %s\n", strings.TrimPrefix(k.pkg, "github.com/cnrancher/docker-hangar/"), k.test, skipReason(output[k]))
		}
	}
	fmt.Fprintf(out, "\n%d tests passed, %d failed, %d skipped\n", len(passed), len(failed), len(skipped))
	if len(failed) > 0 || len(pkgFailed) > 0 || results == 0 {
		return 1
	}
	return 0
}

// skipReason returns the message a skipped test gave to t.Skip.
func skipReason(b *strings.Builder) string {
	if b == nil {
		return ""
	}
	var reason []string
	for _, l := range strings.Split(b.String(), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "=== ") || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		reason = append(reason, l)
	}
	return strings.Join(reason, " ")
}
