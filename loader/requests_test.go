package loader_test

import (
	"maps"

	"fmt"
	"github.com/cnrancher/docker-hangar/loader"
	"testing"

	"github.com/cnrancher/docker-hangar/archive/archivetest"
	"github.com/cnrancher/docker-hangar/internal/registrytest"
)

// TestTokensPerRepository counts the tokens a load asks a token server for
// (issue 13): the repositories of a load share their tokens
// (oras.Registry.ShareTokens), so a load of a few repositories, cold or
// warm, asks for one token for them all (mounts between them included):
// the login check's, which asks for the scopes of the first group; never
// one per request, image or repository.
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
	if cold := load1(); cold != 1 {
		t.Errorf("cold load asked for %d tokens; want 1 (the login check's, for every repository)", cold)
	}
	if warm := load1(); warm != 1 {
		t.Errorf("warm re-load asked for %d tokens; want 1 (the login check's, for every repository)", warm)
	}
}

// TestWarmRequests checks what a warm image costs (issue 13): one GET of
// its tag and one HEAD per manifest, the fewest that prove it is there;
// a chart or file, pushed to its tag with no index, one HEAD. Result and
// report carry the counts (--debug prints them).
func TestWarmRequests(t *testing.T) {
	w := writeArchive(t, archivetest.Demo(), archivetest.Options{})
	reg := registrytest.MustStart(t, registrytest.Options{})
	if res := load(t, testOptions(t, w.Path, reg.Host())); len(res.Failed) != 0 {
		t.Fatalf("failed: %v", res.FailedKeys())
	}
	res := load(t, testOptions(t, w.Path, reg.Host()))
	for _, img := range res.Plan.Images {
		ir := res.Images[img]
		want := map[string]int{"GET": 1, "HEAD": len(img.Manifests())}
		if img.SkipIndex {
			want = map[string]int{"HEAD": len(img.Manifests())}
		}
		if ir.Status != loader.StatusUnchanged || !maps.Equal(ir.Requests.ByMethod(), want) {
			t.Errorf("%s: %s with requests %v; want unchanged with %v", img.Reference(), ir.Status, ir.Requests.ByMethod(), want)
		}
	}
}
