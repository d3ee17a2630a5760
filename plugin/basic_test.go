package plugin_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cnrancher/docker-hangar/archive/archivetest"
	"github.com/cnrancher/docker-hangar/internal/fixtures"
	"github.com/cnrancher/docker-hangar/internal/registrytest"
	"github.com/cnrancher/docker-hangar/loader"
)

// basicArchive returns Hangar's basic.zip when the golden fixtures are
// there; otherwise a stand-in written for the test (fixtures.BasicImages:
// the same images, sources and shapes, other bytes).
func basicArchive(t *testing.T) string {
	t.Helper()
	if dir := fixtures.Dir(); dir != "" {
		return filepath.Join(dir, "basic.zip")
	}
	w, err := archivetest.Write(filepath.Join(t.TempDir(), "basic.zip"), fixtures.BasicImages(), archivetest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return w.Path
}

// basicState returns the state a load of archive (from basicArchive) with
// default flags leaves in an empty registry: the one Hangar's load of
// basic.zip left (basic.load-default.state.jsonl) when the golden fixtures
// are there; otherwise the one a plain in-process load of the stand-in
// leaves in a fresh registry (loader's TestFixtureStandIn compares that
// with Hangar's).
func basicState(t *testing.T, archive string) []registrytest.Tag {
	t.Helper()
	if dir := fixtures.Dir(); dir != "" {
		state, err := registrytest.ReadStateFile(filepath.Join(dir, "basic.load-default.state.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		return state
	}
	reg := registrytest.MustStart(t, registrytest.Options{})
	opts := loader.DefaultOptions()
	opts.Source, opts.Destination = archive, reg.Host()
	opts.Registry.ConfigDir = t.TempDir()
	res, err := loader.Load(context.Background(), opts)
	if err != nil {
		t.Fatalf("plain load of %s: %v", archive, err)
	}
	if len(res.Failed) != 0 {
		t.Fatalf("plain load of %s failed: %v", archive, res.Failed)
	}
	state, err := registrytest.State(reg.Client(), reg.Server.URL)
	if err != nil {
		t.Fatal(err)
	}
	return state
}
