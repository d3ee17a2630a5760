package oras

import (
	"context"

	"oras.land/oras-go/v2/registry/remote/auth"
)

// authCache is the token cache of a Registry: oras's, except that a Basic
// challenge does not turn a registry that uses bearer tokens into a
// basic-auth one. Harbor answers a request whose token lacks the access
// with `Basic realm="harbor"`; oras's cache would then drop every token
// and send the password with every later request, each one checked by
// Harbor anew (slow, and a user locked out after a failure). Here that
// request alone is retried with basic auth.
type authCache struct{ auth.Cache }

func newAuthCache() auth.Cache { return authCache{auth.NewCache()} }

func (c authCache) Set(ctx context.Context, registry string, scheme auth.Scheme, key string, fetch func(context.Context) (string, error)) (string, error) {
	if scheme == auth.SchemeBasic {
		if s, err := c.Cache.GetScheme(ctx, registry); err == nil && s == auth.SchemeBearer {
			return fetch(ctx)
		}
	}
	return c.Cache.Set(ctx, registry, scheme, key, fetch)
}
