// Package layering holds a test of the import rules between packages.
package layering

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/cnrancher/docker-hangar"

// TestLibraryImports checks that the library packages never depend on cobra
// or on docker's plugin and command packages, nor on the command layer:
// only plugin/ does.
func TestLibraryImports(t *testing.T) {
	libs := []string{"archive", "manifest", "oras", "loader"}
	forbidden := []string{
		"github.com/spf13/cobra",
		"github.com/docker/cli/cli-plugins",
		"github.com/docker/cli/cli/command",
		module + "/plugin",
	}
	for _, lib := range libs {
		deps, err := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}`, module+"/"+lib).CombinedOutput()
		if err != nil {
			t.Fatalf("go list %s: %v\n%s", lib, err, deps)
		}
		for _, dep := range strings.Fields(string(deps)) {
			for _, f := range forbidden {
				if dep == f || strings.HasPrefix(dep, f+"/") {
					t.Errorf("%s imports %s (directly or not): library packages must stay free of the command layer", lib, dep)
				}
			}
		}
	}
}
