package oras

import (
	"context"
	"sync"

	"oras.land/oras-go/v2/errdef"
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
//
// Its tokens can be forgotten (forgetTokens) while the scheme is kept:
// Harbor refuses a token issued before a project existed.
type authCache struct {
	auth.Cache

	mu       sync.Mutex
	inflight map[cacheID]*tokenFetch
	epoch    int             // incremented by forgetTokens
	issued   map[cacheID]int // the epoch each token was stored in
}

// cacheID names a token of the cache (a struct: looking one up allocates
// nothing, on every request).
type cacheID struct {
	registry string
	scheme   auth.Scheme
	key      string
}

type tokenFetch struct {
	done  chan struct{}
	token string
	err   error
}

func newAuthCache() *authCache {
	return &authCache{Cache: auth.NewCache(), inflight: map[cacheID]*tokenFetch{}, issued: map[cacheID]int{}}
}

// GetToken returns a token stored since the last forgetTokens.
func (c *authCache) GetToken(ctx context.Context, registry string, scheme auth.Scheme, key string) (string, error) {
	c.mu.Lock()
	fresh := c.issued[cacheID{registry, scheme, key}] == c.epoch
	c.mu.Unlock()
	if !fresh {
		return "", errdef.ErrNotFound
	}
	return c.Cache.GetToken(ctx, registry, scheme, key)
}

// forgetTokens makes every token stored so far unknown; the schemes stay.
func (c *authCache) forgetTokens() {
	c.mu.Lock()
	c.epoch++
	c.mu.Unlock()
}

func (c *authCache) Set(ctx context.Context, registry string, scheme auth.Scheme, key string, fetch func(context.Context) (string, error)) (string, error) {
	if scheme == auth.SchemeBasic {
		if s, err := c.Cache.GetScheme(ctx, registry); err == nil && s == auth.SchemeBearer {
			return fetch(ctx)
		}
	}
	id := cacheID{registry, scheme, key}
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
	if c.issued[id] == c.epoch {
		if token, err := c.Cache.GetToken(ctx, registry, scheme, key); err == nil {
			c.mu.Unlock()
			return token, nil
		}
	}
	f := &tokenFetch{done: make(chan struct{})}
	c.inflight[id] = f
	epoch := c.epoch
	c.mu.Unlock()
	f.token, f.err = c.Cache.Set(ctx, registry, scheme, key, fetch)
	c.mu.Lock()
	delete(c.inflight, id)
	if f.err == nil {
		c.issued[id] = epoch
	}
	c.mu.Unlock()
	close(f.done)
	return f.token, f.err
}
