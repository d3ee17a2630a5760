package oras

import (
	"context"
	"strings"

	"oras.land/oras-go/v2/registry/remote/auth"
)

// MaxSharedScopes bounds the repositories one shared token covers
// (ShareTokens): a token lists what it grants per repository, and it
// travels in a header with every request.
const MaxSharedScopes = 25

// tokenGroup is the scopes a group of repositories asks every token for.
type tokenGroup struct {
	scopes []string
	key    string // the cache key of their token, as oras-go builds it
}

// ShareTokens makes the given repositories share bearer tokens: they are
// grouped in order, MaxSharedScopes at a time, and every token a request
// to one of them needs is asked for the scopes of its whole group (pull,
// and push with RegistryOptions.PushScope). A load of many repositories
// then asks the token service once per group rather than once per
// repository (and once more per mount source), which matters where each
// token request costs a password check: about 0.1 s on Harbor. Call it
// after Ping and before the repositories' first requests. It does nothing
// unless the registry answered Ping with a bearer-token challenge: scopes
// are of no use elsewhere, and sorting a group's scopes for every request
// costs CPU.
func (r *Registry) ShareTokens(ctx context.Context, repositories []string) {
	if s, err := r.auth.Cache.GetScheme(ctx, r.endpoint); err != nil || s != auth.SchemeBearer {
		return
	}
	actions := []string{auth.ActionPull}
	if r.opts.PushScope {
		actions = append(actions, auth.ActionPush)
	}
	groups := map[string]*tokenGroup{}
	seen := map[string]bool{}
	var current *tokenGroup
	for _, repo := range repositories {
		if seen[repo] {
			continue
		}
		seen[repo] = true
		if current == nil || len(current.scopes) == MaxSharedScopes {
			current = &tokenGroup{}
		}
		current.scopes = append(current.scopes, auth.ScopeRepository(repo, actions...))
		groups[repo] = current
	}
	for _, g := range groups {
		if g.key == "" {
			g.scopes = auth.CleanScopes(g.scopes)
			g.key = strings.Join(g.scopes, " ")
		}
	}
	r.groupsMu.Lock()
	r.groups = groups
	r.groupsMu.Unlock()
}

// tokenGroup returns the group of a repository (nil when not shared).
func (r *Registry) tokenGroup(repository string) *tokenGroup {
	r.groupsMu.RLock()
	defer r.groupsMu.RUnlock()
	return r.groups[repository]
}

// scopeContext returns ctx with the scopes a token for repository is
// asked for, and the key of that token in the cache.
func (r *Registry) scopeContext(ctx context.Context, repository string, actions ...string) (context.Context, string) {
	if g := r.tokenGroup(repository); g != nil {
		return auth.AppendScopesForHost(ctx, r.endpoint, g.scopes...), g.key
	}
	scope := auth.ScopeRepository(repository, actions...)
	return auth.AppendScopesForHost(ctx, r.endpoint, scope), scope
}
