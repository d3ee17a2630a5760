package oras

import (
	"context"
	"sync"
)

// flight runs a function for concurrent callers at most once at a time and
// keeps its result once it is final (a settled scheme, a credential read).
// Each caller waits under its own context and returns when that context
// ends; the call's own context (detached from the caller that started it,
// with its values) is cancelled when every caller has given up, and the
// next caller starts a new call.
type flight[T any] struct {
	mu      sync.Mutex
	settled bool
	val     T
	err     error
	call    *flightCall[T]
}

type flightCall[T any] struct {
	done    chan struct{}
	waiters int
	cancel  context.CancelFunc
	val     T
	err     error
}

// do returns the kept result, or the result of fn called once for all
// the callers waiting at the time. keep says whether a result is final and
// what to keep of it for later callers.
func (f *flight[T]) do(ctx context.Context, fn func(context.Context) (T, error), keep func(T, error) (T, bool)) (T, error) {
	f.mu.Lock()
	if f.settled {
		defer f.mu.Unlock()
		return f.val, f.err
	}
	c := f.call
	if c == nil {
		cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		c = &flightCall[T]{done: make(chan struct{}), cancel: cancel}
		f.call = c
		go func() {
			v, err := fn(cctx)
			cancel()
			f.mu.Lock()
			c.val, c.err = v, err
			if f.call == c {
				f.call = nil
				if kv, ok := keep(v, err); ok {
					f.settled, f.val, f.err = true, kv, err
				}
			}
			f.mu.Unlock()
			close(c.done)
		}()
	}
	c.waiters++
	f.mu.Unlock()

	select {
	case <-c.done:
		return c.val, c.err
	case <-ctx.Done():
		f.mu.Lock()
		c.waiters--
		if c.waiters == 0 && f.call == c {
			// Nobody waits any more: stop the call, and let the next
			// caller start afresh.
			f.call = nil
			c.cancel()
		}
		f.mu.Unlock()
		var zero T
		return zero, context.Cause(ctx)
	}
}
