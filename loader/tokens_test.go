package loader_test

import (
	"fmt"
	"testing"

	"github.com/cnrancher/docker-hangar/archive/archivetest"
	"github.com/cnrancher/docker-hangar/internal/registrytest"
)

// TestTokensPerRepository counts the tokens a load asks a token server for
// (issue 13): a warm re-load one per repository, reused by every request
// of its images; a cold load one per repository too, plus one per
// cross-repository mount source pair (a mount needs pull on the source),
// never one per request or per image.
func TestTokensPerRepository(t *testing.T) {
	ts := registrytest.StartTokenServer(map[string]registrytest.TokenUser{
		"pusher": {Password: "push-Pa55", Actions: []string{"pull", "push"}},
	})
	t.Cleanup(ts.Close)
	base := archivetest.Layer{Size: 300 << 10, Seed: 77} // shared: mounted after the first upload
	const repos = 4
	var images []archivetest.Image
	for i := range repos * 2 { // two tags per repository
		images = append(images, archivetest.Image{
			Source: fmt.Sprintf("docker.io/library/tok%d", i%repos), Tag: fmt.Sprintf("v%d", i/repos),
			Manifests: []archivetest.Manifest{
				{Platform: amd64, Layers: []archivetest.Layer{base, {Size: 2000, Seed: int64(i + 1)}}},
				{Attestation: true},
			},
		})
	}
	w := writeArchive(t, images, archivetest.Options{})
	reg := registrytest.MustStart(t, registrytest.Options{Wrap: ts.Gate()})
	load1 := func() int {
		opts := testOptions(t, w.Path, reg.Host())
		writeDockerConfig(t, opts.Registry.ConfigDir, registrytest.DockerConfig{Auths: map[string]registrytest.DockerAuth{
			reg.Host(): {Username: "pusher", Password: "push-Pa55"},
		}})
		before := ts.Requests()
		if res := load(t, opts); len(res.Failed) != 0 {
			t.Fatalf("failed: %v", res.FailedKeys())
		}
		return ts.Requests() - before
	}
	// The login probe asks for a token without a scope: one more.
	if cold, limit := load1(), 1+repos+(repos-1); cold > limit {
		t.Errorf("cold load asked for %d tokens; want at most %d (one per repository, one per mount pair, the login probe)", cold, limit)
	}
	if warm, limit := load1(), 1+repos; warm > limit {
		t.Errorf("warm re-load asked for %d tokens; want at most %d (one per repository and the login probe)", warm, limit)
	}
}
