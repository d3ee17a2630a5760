package oras

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/auth"

	"github.com/cnrancher/docker-hangar/internal/registrytest"
)

// TestAuthCacheForgetTokens: forgetTokens drops the tokens stored so far
// (Harbor refuses one issued before a project existed) and keeps the
// scheme; a token stored afterwards is kept.
func TestAuthCacheForgetTokens(t *testing.T) {
	ctx := context.Background()
	c := newAuthCache()
	fetches := 0
	fetch := func(token string) func(context.Context) (string, error) {
		return func(context.Context) (string, error) { fetches++; return token, nil }
	}
	if got, _ := c.Set(ctx, "h", auth.SchemeBearer, "repository:p/a:pull", fetch("old")); got != "old" {
		t.Fatalf("Set = %q; want old", got)
	}
	if got, err := c.GetToken(ctx, "h", auth.SchemeBearer, "repository:p/a:pull"); err != nil || got != "old" {
		t.Fatalf("GetToken = %q, %v; want old", got, err)
	}
	c.forgetTokens()
	if got, err := c.GetToken(ctx, "h", auth.SchemeBearer, "repository:p/a:pull"); !errors.Is(err, errdef.ErrNotFound) {
		t.Fatalf("GetToken after forgetTokens = %q, %v; want not found", got, err)
	}
	if s, err := c.GetScheme(ctx, "h"); err != nil || s != auth.SchemeBearer {
		t.Fatalf("GetScheme after forgetTokens = %v, %v; want bearer", s, err)
	}
	if got, _ := c.Set(ctx, "h", auth.SchemeBearer, "repository:p/a:pull", fetch("new")); got != "new" || fetches != 2 {
		t.Fatalf("Set after forgetTokens = %q after %d fetches; want new after 2", got, fetches)
	}
	if got, err := c.GetToken(ctx, "h", auth.SchemeBearer, "repository:p/a:pull"); err != nil || got != "new" {
		t.Fatalf("GetToken = %q, %v; want new", got, err)
	}
}

// TestLoginTokenServesTheLoad: with shared tokens, the login check asks
// for the first group's scopes, so the push checks of its repositories
// and the lookups of their projects need no other token; against the real
// distribution registry with token auth.
func TestLoginTokenServesTheLoad(t *testing.T) {
	reg, iss := startTokenAuth(t, map[string]jwtUser{"pusher": {password: "push-Pa55", actions: []string{"pull", "push"}}})
	opts, _ := testOptions(t)
	opts.PushScope = true
	if err := registrytest.WriteDockerConfig(opts.ConfigDir, registrytest.DockerConfig{
		Auths: map[string]registrytest.DockerAuth{reg.Host(): {Username: "pusher", Password: "push-Pa55"}},
	}); err != nil {
		t.Fatal(err)
	}
	r := mustRegistry(t, reg.Host(), opts)
	ctx := testContext(t)
	repos := []string{"team/app", "team/web", "tools/cli"}
	for i := range MaxSharedScopes {
		repos = append(repos, fmt.Sprintf("team/app%02d", i))
	}
	repos = append(repos, "late/app") // in the second group
	r.ShareTokens(repos)
	if err := r.Ping(ctx, true); err != nil {
		t.Fatal(err)
	}
	for _, repo := range repos[:MaxSharedScopes] {
		if err := r.CheckPushAccess(ctx, repo); err != nil {
			t.Fatalf("CheckPushAccess(%s) = %v", repo, err)
		}
	}
	for _, tt := range []struct {
		project string
		want    bool
	}{{"team", true}, {"tools", true}, {"other", false}} {
		if got := r.projectGranted(ctx, tt.project); got != tt.want {
			t.Errorf("projectGranted(%s) = %v; want %v", tt.project, got, tt.want)
		}
	}
	if n := iss.requests.Load(); n != 1 {
		t.Errorf("%d token requests; want 1 (the login check's)", n)
	}
	// A project of the second group only: its group's token is fetched,
	// once, and serves the push checks of that group.
	if !r.projectGranted(ctx, "late") {
		t.Error("projectGranted(late) = false; want true")
	}
	for _, repo := range repos[MaxSharedScopes:] {
		if err := r.CheckPushAccess(ctx, repo); err != nil {
			t.Fatalf("CheckPushAccess(%s) = %v", repo, err)
		}
	}
	if n := iss.requests.Load(); n != 2 {
		t.Errorf("%d token requests; want 2 (one per group)", n)
	}
	// Forgotten tokens (a project was created) are fetched again.
	r.tokens.forgetTokens()
	if err := r.CheckPushAccess(ctx, "team/app"); err != nil || iss.requests.Load() != 3 {
		t.Errorf("CheckPushAccess after forgetTokens = %v after %d token requests; want access after a new one", err, iss.requests.Load())
	}
	if !r.projectGranted(ctx, "team") || iss.requests.Load() != 3 {
		t.Errorf("projectGranted(team) after the new token: %d token requests; want true after 3", iss.requests.Load())
	}
}
