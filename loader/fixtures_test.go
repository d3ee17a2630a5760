package loader_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnrancher/docker-hangar/internal/fixtures"
	"github.com/cnrancher/docker-hangar/internal/registrytest"
	"github.com/cnrancher/docker-hangar/loader"
)

// writeCounter counts the requests that write to a registry.
type writeCounter struct{ n atomic.Int64 }

func (c *writeCounter) wrap(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPut, http.MethodPost, http.MethodPatch, http.MethodDelete:
			c.n.Add(1)
		}
		h.ServeHTTP(w, r)
	})
}

func testOptions(t *testing.T, source, dest string) loader.Options {
	t.Helper()
	opts := loader.DefaultOptions()
	opts.Source = source
	opts.Destination = dest
	opts.Registry.ConfigDir = t.TempDir()
	record(t, &opts)
	return opts
}

func load(t *testing.T, opts loader.Options) *loader.Result {
	t.Helper()
	res, err := loader.Load(context.Background(), opts)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return res
}

func assertState(t *testing.T, reg *registrytest.Registry, stateFile string) {
	t.Helper()
	want, err := registrytest.ReadStateFile(stateFile)
	if err != nil {
		t.Fatal(err)
	}
	got, err := registrytest.State(reg.Client(), reg.Server.URL)
	if err != nil {
		t.Fatal(err)
	}
	if diff := registrytest.DiffState(want, got); diff != "" {
		t.Errorf("registry state differs from %s:\n%s", filepath.Base(stateFile), diff)
	}
}

func TestFixtureBasic(t *testing.T) {
	dir := fixtures.Require(t)
	tests := []struct {
		name   string
		arch   []string
		os     []string
		state  string
		jobs   int
		images int
	}{
		{name: "default flags", state: "basic.load-default.state.jsonl", jobs: 1},
		{name: "all platforms", arch: []string{"amd64", "arm64", "arm"}, os: []string{"linux", "windows"}, state: "basic.load-all.state.jsonl", jobs: 1},
		{name: "default flags, 8 jobs", state: "basic.load-default.state.jsonl", jobs: 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := registrytest.MustStart(t, registrytest.Options{})
			opts := testOptions(t, filepath.Join(dir, "basic.zip"), reg.Host())
			opts.Jobs = tt.jobs
			if tt.arch != nil {
				opts.Arch, opts.OS = tt.arch, tt.os
			}
			res := load(t, opts)
			if len(res.Failed) != 0 {
				t.Fatalf("failed: %v", res.Failed)
			}
			assertState(t, reg, filepath.Join(dir, tt.state))
		})
	}
}

func TestFixturePartialList(t *testing.T) {
	dir := fixtures.Require(t)
	reg := registrytest.MustStart(t, registrytest.Options{})
	opts := testOptions(t, filepath.Join(dir, "basic.zip"), reg.Host())
	opts.ImageList = filepath.Join(dir, "partial-list.txt")
	res := load(t, opts)
	if len(res.Failed) == 0 {
		t.Fatal("load with a missing image succeeded")
	}
	failedFile := filepath.Join(t.TempDir(), "failed.txt")
	if err := loader.WriteFailedList(failedFile, res.Failed); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(failedFile)
	want, _ := os.ReadFile(filepath.Join(dir, "partial.failed.txt"))
	if string(got) != string(want) {
		t.Errorf("failed list = %q, want %q", got, want)
	}
	state, err := registrytest.State(reg.Client(), reg.Server.URL)
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, s := range state {
		refs = append(refs, s.Ref)
	}
	if !strings.Contains(strings.Join(refs, " "), "library/app00:v1.0.0") {
		t.Errorf("library/app00:v1.0.0 was not loaded: %v", refs)
	}
}

func TestFixtureMerge(t *testing.T) {
	dir := fixtures.Require(t)
	var writes writeCounter
	reg := registrytest.MustStart(t, registrytest.Options{Wrap: writes.wrap})
	for _, archive := range []string{"amd64.zip", "arm64.zip"} {
		res := load(t, testOptions(t, filepath.Join(dir, archive), reg.Host()))
		if len(res.Failed) != 0 {
			t.Fatalf("%s failed: %v", archive, res.Failed)
		}
	}
	assertState(t, reg, filepath.Join(dir, "merge.state.jsonl"))
	indexes, err := filepath.Glob(filepath.Join(dir, "merge.indexes", "*.json"))
	if err != nil || len(indexes) == 0 {
		t.Fatalf("no merge indexes: %v", err)
	}
	for _, path := range indexes {
		want, _ := os.ReadFile(path)
		name := strings.TrimSuffix(filepath.Base(path), ".json")
		i := strings.LastIndex(name, "_")
		repo, tag := strings.ReplaceAll(name[:i], "_", "/"), name[i+1:]
		got, _, err := registrytest.Manifest(reg.Client(), reg.Server.URL, repo, tag)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s:%s index differs from Hangar's:\ngot:\n%s\nwant:\n%s", repo, tag, got, want)
		}
	}

	before := writes.n.Load()
	res := load(t, testOptions(t, filepath.Join(dir, "arm64.zip"), reg.Host()))
	if len(res.Failed) != 0 {
		t.Fatalf("reload failed: %v", res.Failed)
	}
	if n := writes.n.Load() - before; n != 0 {
		t.Errorf("reloading arm64.zip wrote %d times to the registry, want 0", n)
	}
	for img, ir := range res.Images {
		if ir.Status != loader.StatusUnchanged {
			t.Errorf("%s: status %v on reload, want unchanged", img.Reference(), ir.Status)
		}
	}
	assertState(t, reg, filepath.Join(dir, "merge.state.jsonl"))
}

func parseIndex(body []byte) (ocispec.Index, error) {
	var idx ocispec.Index
	err := json.Unmarshal(body, &idx)
	return idx, err
}
