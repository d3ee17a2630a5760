package oras

import (
	"context"
	"slices"
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
// before Ping, whose login check then asks for the first group's token,
// and before the repositories' first requests. The groups are used only
// where the registry answered the first GET /v2/ with a bearer-token
// challenge: scopes are of no use elsewhere, and sorting a group's scopes
// for every request costs CPU.
//
// The groups are made when a bearer-token registry first needs them: a
// load of thousands of repositories elsewhere keeps only the list (which
// it must not modify afterwards).
func (r *Registry) ShareTokens(repositories []string) {
	r.groupsMu.Lock()
	defer r.groupsMu.Unlock()
	r.sharing, r.groups, r.first, r.projects = slices.Clip(repositories), nil, nil, nil
}

// tokenGroups returns the groups of ShareTokens, the first one and the
// first shared repository of each project, making them on first use;
// nil where the registry asked for no bearer token.
func (r *Registry) tokenGroups() (groups map[string]*tokenGroup, first *tokenGroup, projects map[string]string) {
	if !r.bearer.Load() {
		return nil, nil, nil
	}
	r.groupsMu.RLock()
	groups, first, projects, made := r.groups, r.first, r.projects, r.sharing == nil
	r.groupsMu.RUnlock()
	if made {
		return groups, first, projects
	}
	r.groupsMu.Lock()
	defer r.groupsMu.Unlock()
	if r.sharing != nil {
		r.groups, r.first, r.projects = makeTokenGroups(r.sharing, r.opts.PushScope)
		r.sharing = nil
	}
	return r.groups, r.first, r.projects
}

// makeTokenGroups groups repositories as ShareTokens says.
func makeTokenGroups(repositories []string, push bool) (groups map[string]*tokenGroup, first *tokenGroup, projects map[string]string) {
	actions := []string{auth.ActionPull}
	if push {
		actions = append(actions, auth.ActionPush)
	}
	groups = map[string]*tokenGroup{}
	projects = map[string]string{}
	var current *tokenGroup
	for _, repo := range repositories {
		if groups[repo] != nil {
			continue
		}
		if p, _, _ := strings.Cut(repo, "/"); projects[p] == "" {
			projects[p] = repo
		}
		if current == nil || len(current.scopes) == MaxSharedScopes {
			current = &tokenGroup{}
		}
		if first == nil {
			first = current
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
	return groups, first, projects
}

// tokenGroup returns the group of a repository (nil when not shared).
func (r *Registry) tokenGroup(repository string) *tokenGroup {
	groups, _, _ := r.tokenGroups()
	return groups[repository]
}

// firstGroup returns the group of the first shared repository (nil when
// not shared).
func (r *Registry) firstGroup() *tokenGroup {
	_, first, _ := r.tokenGroups()
	return first
}

// projectGranted reports whether the token of the group of one of
// project's shared repositories grants push to it: the project then
// exists (Harbor grants nothing on a missing project). A token not held
// yet is fetched: the load needs it anyway, and it costs Harbor one
// password check for up to MaxSharedScopes repositories, where a project
// lookup costs one per project.
func (r *Registry) projectGranted(ctx context.Context, project string) bool {
	groups, _, projects := r.tokenGroups()
	repo := projects[project]
	g := groups[repo]
	if g == nil {
		return false
	}
	token, err := r.auth.Cache.GetToken(ctx, r.endpoint, auth.SchemeBearer, g.key)
	if err != nil {
		if token, err = r.groupToken(ctx, g); err != nil {
			r.debugf("registry %s: token for %s: %s", r.host, repo, describe(err))
			return false
		}
	}
	claims, ok := parseTokenClaims(token)
	return ok && grantsPush(claims.actions(repo))
}

// groupToken fetches the token of a group, as the load's requests would:
// one GET /v2/ with its scopes.
func (r *Registry) groupToken(ctx context.Context, g *tokenGroup) (string, error) {
	if _, err := r.getV2(ctx, g.scopes); err != nil {
		return "", err
	}
	return r.auth.Cache.GetToken(ctx, r.endpoint, auth.SchemeBearer, g.key)
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
