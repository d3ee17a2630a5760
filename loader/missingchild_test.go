package loader_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/cnrancher/docker-hangar/archive/archivetest"
	"github.com/cnrancher/docker-hangar/internal/registrytest"
	"github.com/cnrancher/docker-hangar/loader"
)

// TestIndexChildDeleted re-loads onto an index one of whose platform
// manifests was deleted from the registry (issue 12.9): when this archive
// holds it, it is pushed again and the load succeeds; when only another
// archive has it, the registry refuses the merged index, and the error says
// which manifest is missing and what to do, instead of a bare "manifest
// blob unknown".
func TestIndexChildDeleted(t *testing.T) {
	src := "docker.io/library/child"
	amd := writeArchive(t, []archivetest.Image{{Source: src, Tag: "1", Manifests: withAttestations(51, nil, amd64)}}, archivetest.Options{})
	arm := writeArchive(t, []archivetest.Image{{Source: src, Tag: "1", Manifests: withAttestations(52, nil, arm64)}}, archivetest.Options{})
	// a rebuilt arm64 image: its load changes the index
	arm2 := writeArchive(t, []archivetest.Image{{Source: src, Tag: "1", Manifests: withAttestations(53, nil, arm64)}}, archivetest.Options{})
	amdManifest := amd.Images[0].Manifests[0].Descriptor.Digest.String()
	setup := func(t *testing.T) *registrytest.Registry {
		reg := registrytest.MustStart(t, registrytest.Options{})
		for _, w := range []*archivetest.Written{amd, arm} {
			if res := load(t, testOptions(t, w.Path, reg.Host())); len(res.Failed) != 0 {
				t.Fatalf("failed: %v", res.FailedKeys())
			}
		}
		registryDo(t, reg, http.MethodDelete, "/v2/library/child/manifests/"+amdManifest, "", nil, http.StatusAccepted)
		return reg
	}

	t.Run("the archive holds it", func(t *testing.T) {
		reg := setup(t)
		if res := load(t, testOptions(t, amd.Path, reg.Host())); len(res.Failed) != 0 {
			t.Fatalf("failed: %v", res.FailedKeys())
		}
		if res := validate(t, testOptions(t, amd.Path, reg.Host())); len(res.Failed) != 0 {
			t.Fatalf("validate failed after the re-load: %v", res.FailedKeys())
		}
	})
	t.Run("another archive holds it", func(t *testing.T) {
		reg := setup(t)
		res := load(t, testOptions(t, arm2.Path, reg.Host()))
		if len(res.Failed) != 1 {
			t.Fatalf("failed %v; want the image", res.FailedKeys())
		}
		for _, ir := range res.Images {
			msg := ""
			if ir.Err != nil {
				msg = ir.Err.Error()
			}
			for _, want := range []string{amdManifest, "linux/amd64", "missing from the registry", "--overwrite"} {
				if ir.Status != loader.StatusFailed || !strings.Contains(msg, want) {
					t.Errorf("status %s, error %q; want it to mention %q", ir.Status, msg, want)
				}
			}
		}
	})
}
