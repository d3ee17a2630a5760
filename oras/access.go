package oras

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"

	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/auth"
)

// CheckPushAccess checks, before anything is uploaded, that docker's
// credentials for the registry may push to repository. It reads the
// actions granted by the token for the repository's pull and push scope
// (its group's, see ShareTokens): the one the login check fetched, else a
// new one (none from before a Harbor project was created: Harbor refuses
// them, and EnsureHarborProject forgets them); with
// RegistryOptions.PushScope the token is then kept for the repository's
// requests. When push is not among them
// the error wraps ErrUnauthorized and reads "no push permission for
// project P on registry H as user U", P being the first path component of
// repository (on Harbor, where a missing project is the reason, it says
// so).
//
// Where the answer cannot be read, CheckPushAccess returns nil and the
// pushes will tell: registries with basic auth or none, and tokens that
// are not JWTs with an access claim (distribution's token auth and Harbor
// issue such JWTs; some services issue opaque tokens). It sends no request
// where GET /v2/ asked for no bearer token or the token is held, else one
// GET /v2/ and one token request, and writes nothing.
//
// References: decisions.md D5; hangar-load.md 2.6.
func (r *Registry) CheckPushAccess(ctx context.Context, repository string) error {
	if _, err := r.Repository(repository); err != nil {
		return err
	}
	if _, _, err := r.scheme(ctx); err != nil {
		return err
	}
	op := "check push access to " + repository
	if !r.bearer.Load() {
		// GET /v2/ asked for no token: nothing to read, no request.
		r.debugf("registry %s: %s: no token auth, the pushes will tell", r.host, op)
		return nil
	}
	sctx, key := r.scopeContext(ctx, repository, auth.ActionPull, auth.ActionPush)
	token, err := r.auth.Cache.GetToken(ctx, r.endpoint, auth.SchemeBearer, key)
	if err != nil {
		// Ask for a new token.
		rec := &recordingCache{}
		client := &auth.Client{Client: r.client, Header: r.auth.Header, Credential: r.auth.Credential, Cache: rec}
		req, err := http.NewRequestWithContext(sctx, http.MethodGet, r.schemeName()+"://"+r.endpoint+"/v2/", nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return r.mapError(ctx, op, err, false)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		resp.Body.Close()
		var scheme auth.Scheme
		if scheme, token = rec.result(); scheme != auth.SchemeBearer {
			r.debugf("registry %s: %s: no token auth, the pushes will tell", r.host, op)
			return nil
		}
		if r.opts.PushScope {
			// The load's requests to the repository (and to its token
			// group) ask for this very scope: let them use this token
			// rather than ask for another.
			_, _ = r.auth.Cache.Set(ctx, r.endpoint, auth.SchemeBearer, key, func(context.Context) (string, error) { return token, nil })
		}
	}
	claims, ok := parseTokenClaims(token)
	if !ok {
		r.debugf("registry %s: %s: the token does not say what it grants, the pushes will tell", r.host, op)
		return nil
	}
	granted := claims.actions(repository)
	r.debugf("registry %s: token for %s grants %v", r.host, repository, granted)
	if grantsPush(granted) {
		return nil
	}
	return r.noPushError(ctx, repository, claims)
}

// grantsPush reports whether granted actions include push.
func grantsPush(granted []string) bool {
	return slices.Contains(granted, auth.ActionPush) || slices.Contains(granted, "*")
}

// noPushError explains a token that does not grant push.
func (r *Registry) noPushError(ctx context.Context, repository string, claims *tokenClaims) error {
	project, _, _ := strings.Cut(repository, "/")
	cred, err := r.creds.lookup(ctx, r.host)
	if err != nil {
		return err
	}
	user := cred.Username
	if user == "" || user == "<token>" {
		user = claims.Subject
	}
	if user == "" {
		user = "anonymous"
	}
	msg := fmt.Sprintf("no push permission for project %s on registry %s as user %s", project, r.host, user)
	switch {
	case cred.Username != "" && cred.Password != "" && claims.Subject == "":
		// Harbor answers a wrong password with an anonymous token when a
		// scope is asked for.
		msg += fmt.Sprintf(": the registry did not accept the password and granted anonymous access only (run `docker login %s`)", r.host)
	case r.harborProjectMissing(ctx, project, cred.Username, cred.Password):
		msg += fmt.Sprintf(": project %s does not exist", project)
	}
	return newError(ErrUnauthorized, nil, msg)
}

// harborProjectMissing reports whether the registry is Harbor and says
// that project does not exist. Any failure to tell means false.
func (r *Registry) harborProjectMissing(ctx context.Context, project, user, password string) bool {
	if ok, err := r.IsHarbor(ctx); err != nil || !ok {
		return false
	}
	status, _, err := r.harborDo(ctx, http.MethodHead, r.harborProjectsURL()+"?project_name="+url.QueryEscape(project), nil, auth.Credential{Username: user, Password: password})
	return err == nil && status == http.StatusNotFound
}

// tokenClaims are the claims of a registry token that matter here: its
// subject and, as distribution's token auth defines them, the access
// granted.
type tokenClaims struct {
	Subject string        `json:"sub"`
	Access  []tokenAccess `json:"access"`
}

type tokenAccess struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// actions returns the actions granted on repository.
func (c *tokenClaims) actions(repository string) []string {
	var out []string
	for _, a := range c.Access {
		if a.Type == "repository" && a.Name == repository {
			out = append(out, a.Actions...)
		}
	}
	return out
}

// parseTokenClaims reads the claims of a JWT without checking its
// signature (the registry does); ok is false unless token is a JWT with an
// access claim.
func parseTokenClaims(token string) (*tokenClaims, bool) {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	if err != nil {
		return nil, false
	}
	var raw struct {
		tokenClaims
		Access *[]tokenAccess `json:"access"`
	}
	if err := json.Unmarshal(payload, &raw); err != nil || raw.Access == nil {
		return nil, false
	}
	raw.tokenClaims.Access = *raw.Access
	return &raw.tokenClaims, true
}

// recordingCache is an auth cache that caches nothing, so that every
// request fetches a new token, and records the scheme and token last
// fetched.
type recordingCache struct {
	mu     sync.Mutex
	scheme auth.Scheme
	token  string
}

func (c *recordingCache) GetScheme(context.Context, string) (auth.Scheme, error) {
	return auth.SchemeUnknown, errdef.ErrNotFound
}

func (c *recordingCache) GetToken(context.Context, string, auth.Scheme, string) (string, error) {
	return "", errdef.ErrNotFound
}

func (c *recordingCache) Set(ctx context.Context, _ string, scheme auth.Scheme, _ string, fetch func(context.Context) (string, error)) (string, error) {
	token, err := fetch(ctx)
	if err != nil {
		return "", err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scheme, c.token = scheme, token
	return token, nil
}

func (c *recordingCache) result() (auth.Scheme, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.scheme, c.token
}
