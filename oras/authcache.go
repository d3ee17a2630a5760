package oras

import (
	"context"
	"sync"

	"oras.land/oras-go/v2/registry/remote/auth"
)

// authCache is the token cache of a Registry: oras's, with two changes.
//
// A Basic challenge does not turn a registry that uses bearer tokens into a
// basic-auth one. Harbor answers a request whose token lacks the access
// with `Basic realm="harbor"`; oras's cache would then drop every token
// and send the password with every later request, each one checked by
// Harbor anew (slow, and a user locked out after a failure). Here that
// request alone is retried with basic auth.
//
// A token is fetched once per scope however many requests want it at the
// same time: oras's cache forgets a fetch under way a moment before it
// stores its token, so requests arriving in between fetched it again.
type authCache struct {
	auth.Cache

	mu       sync.Mutex
	inflight map[string]*tokenFetch
}

type tokenFetch struct {
	done  chan struct{}
	token string
	err   error
}

func newAuthCache() auth.Cache {
	return &authCache{Cache: auth.NewCache(), inflight: map[string]*tokenFetch{}}
}

func (c *authCache) Set(ctx context.Context, registry string, scheme auth.Scheme, key string, fetch func(context.Context) (string, error)) (string, error) {
	if scheme == auth.SchemeBasic {
		if s, err := c.Cache.GetScheme(ctx, registry); err == nil && s == auth.SchemeBearer {
			return fetch(ctx)
		}
	}
	id := registry + " " + scheme.String() + " " + key
	c.mu.Lock()
	if f := c.inflight[id]; f != nil {
		c.mu.Unlock()
		select {
		case <-f.done:
			if f.err == nil {
				return f.token, nil
			}
		case <-ctx.Done():
			return "", context.Cause(ctx)
		}
		return c.Set(ctx, registry, scheme, key, fetch) // that fetch failed: try ours
	}
	if token, err := c.Cache.GetToken(ctx, registry, scheme, key); err == nil {
		c.mu.Unlock()
		return token, nil
	}
	f := &tokenFetch{done: make(chan struct{})}
	c.inflight[id] = f
	c.mu.Unlock()
	f.token, f.err = c.Cache.Set(ctx, registry, scheme, key, fetch)
	c.mu.Lock()
	delete(c.inflight, id)
	c.mu.Unlock()
	close(f.done)
	return f.token, f.err
}
