package loader_test

import (
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/cnrancher/docker-hangar/archive/archivetest"
	"github.com/cnrancher/docker-hangar/internal/fixtures"
	"github.com/cnrancher/docker-hangar/internal/registrytest"
)

// basicArchive returns the archive that the registry tests load and the
// state that a load of it with default flags leaves in an empty registry:
// Hangar's basic.zip and the state Hangar's own load left
// (basic.load-default.state.jsonl) when the golden fixtures are there;
// otherwise the generated stand-in (fixtures.BasicImages: the same
// images, sources and shapes, other bytes) and the state a plain load of
// it leaves in a fresh registry. The plain load is compared with Hangar's
// by TestFixtureBasic and, for the stand-in, by TestFixtureStandIn.
func basicArchive(t *testing.T) (string, []registrytest.Tag) {
	t.Helper()
	if dir := fixtures.Dir(); dir != "" {
		want, err := registrytest.ReadStateFile(filepath.Join(dir, "basic.load-default.state.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		return filepath.Join(dir, "basic.zip"), want
	}
	return generatedBasic(t, nil, nil)
}

// generatedBasic writes the stand-in of basic.zip and loads it, with the
// platforms given (the defaults when nil), into a fresh registry: the
// archive's path and the state that load left.
func generatedBasic(t *testing.T, arch, os []string) (string, []registrytest.Tag) {
	t.Helper()
	w := writeArchive(t, fixtures.BasicImages(), archivetest.Options{})
	reg := registrytest.MustStart(t, registrytest.Options{})
	opts := testOptions(t, w.Path, reg.Host())
	if arch != nil {
		opts.Arch, opts.OS = arch, os
	}
	if res := load(t, opts); len(res.Failed) != 0 {
		t.Fatalf("plain load of the stand-in of basic.zip failed: %v", res.Failed)
	}
	state, err := registrytest.State(reg.Client(), reg.Server.URL)
	if err != nil {
		t.Fatal(err)
	}
	return w.Path, state
}

// inProjects returns the tags of state in the repositories of projects.
func inProjects(state []registrytest.Tag, projects ...string) []registrytest.Tag {
	var kept []registrytest.Tag
	for _, tag := range state {
		if project, _, _ := strings.Cut(tag.Ref, "/"); slices.Contains(projects, project) {
			kept = append(kept, tag)
		}
	}
	return kept
}

// digestOf returns the digest of ref in state.
func digestOf(t *testing.T, state []registrytest.Tag, ref string) string {
	t.Helper()
	for _, tag := range state {
		if tag.Ref == ref {
			return tag.Digest
		}
	}
	t.Fatalf("no tag %s in the reference state", ref)
	return ""
}

// attestationTag is the tag of an attestation: the main tag, a hyphen and
// the first 16 hex digits of the attestation's digest (decisions.md D3).
var attestationTag = regexp.MustCompile(`-[0-9a-f]{16}$`)

// TestFixtureStandIn checks that the stand-in of basic.zip, which the
// registry tests load when the fixtures are absent, is one: loaded like
// basic.zip, it leaves the tags Hangar's loads of basic.zip left, with
// the same media types (the digests differ, and so do the attestation
// tags, named after them: those are compared by count per main tag).
func TestFixtureStandIn(t *testing.T) {
	dir := fixtures.Require(t)
	tests := []struct {
		name     string
		arch, os []string
		state    string
	}{
		{name: "default flags", state: "basic.load-default.state.jsonl"},
		{name: "all platforms", arch: []string{"amd64", "arm64", "arm"}, os: []string{"linux", "windows"}, state: "basic.load-all.state.jsonl"},
	}
	// shape is ref -> media type, with the attestation tags of each main
	// tag numbered in the order of their digests.
	shape := func(state []registrytest.Tag) map[string]string {
		m := map[string]string{}
		n := map[string]int{}
		for _, tag := range state { // sorted by ref
			ref := tag.Ref
			if suffix := attestationTag.FindString(ref); suffix != "" && strings.HasPrefix(tag.Digest, "sha256:"+suffix[1:]) {
				main := strings.TrimSuffix(ref, suffix)
				n[main]++
				ref = fmt.Sprintf("%s-<attestation %d>", main, n[main])
			}
			m[ref] = tag.MediaType
		}
		return m
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hangar, err := registrytest.ReadStateFile(filepath.Join(dir, tt.state))
			if err != nil {
				t.Fatal(err)
			}
			_, got := generatedBasic(t, tt.arch, tt.os)
			want := shape(hangar)
			have := shape(got)
			for _, ref := range slices.Sorted(maps.Keys(want)) {
				if mediaType, ok := have[ref]; !ok {
					t.Errorf("%s: missing (Hangar's load left it)", ref)
				} else if mediaType != want[ref] {
					t.Errorf("%s: media type %q, want %q (Hangar's)", ref, mediaType, want[ref])
				}
			}
			for _, ref := range slices.Sorted(maps.Keys(have)) {
				if _, ok := want[ref]; !ok {
					t.Errorf("%s: a tag Hangar's load of basic.zip did not leave", ref)
				}
			}
		})
	}
}
