package oras

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"
)

const (
	// defaultBackoff is the first retry delay; it doubles on each attempt.
	defaultBackoff = 200 * time.Millisecond
	// maxBackoff caps the exponential delay.
	maxBackoff = 10 * time.Second
	// maxReconnectDelay caps the delay between attempts to reach a
	// registry that does not accept connections, so that one that
	// restarts is used again within a second.
	maxReconnectDelay = time.Second
	// maxRetryAfter caps the delay a Retry-After header may ask for.
	maxRetryAfter = time.Minute
	// DefaultUnreachableTimeout is how long requests wait for a registry
	// that stopped accepting connections (RegistryOptions.UnreachableTimeout
	// of DefaultRegistryOptions): a restarting registry is back in seconds.
	DefaultUnreachableTimeout = 30 * time.Second
)

// policy is the retry policy of a registry: attempts and backoff.
//
// References: hangar-load.md 2.15 (with longer, exponential delays).
type policy struct {
	maxAttempts int
	base        time.Duration
}

// delay returns the wait before retry number retry (0 for the first
// retry): Retry-After when the registry gave one, else exponential backoff
// with ±10% jitter.
func (p *policy) delay(retry int, after time.Duration) time.Duration {
	if after > 0 {
		return after
	}
	d := p.base << min(retry, 16)
	if d <= 0 || d > maxBackoff {
		d = maxBackoff
	}
	jitter := time.Duration(float64(d) * 0.1)
	if jitter > 0 {
		d += time.Duration(rand.Int64N(int64(2*jitter))) - jitter
	}
	return d
}

// requestPolicy is the oras retry.Policy of one request through the
// retrying transport (requests whose body can be rewound): transient
// answers (classTransient) are retried up to MaxAttempts, connection
// failures as connRetry says; nothing else is.
type requestPolicy struct {
	p    *policy
	conn connRetry
}

// Retry implements oras retry.Policy.
func (rp *requestPolicy) Retry(attempt int, resp *http.Response, err error) (time.Duration, error) {
	if err != nil {
		if classify(err) != classNetwork {
			return -1, nil
		}
		return rp.conn.next(attempt, err)
	}
	if attempt+1 >= rp.p.maxAttempts || classifyStatus(resp.StatusCode) != classTransient {
		return -1, nil
	}
	return rp.p.delay(attempt, retryAfter(resp)), nil
}

// reachability is what a Registry knows of its registry's availability,
// shared by all its requests: whether it ever answered, since when no
// connection could be made (cleared by any answer), and whether it was
// given up for unreachable.
type reachability struct {
	host   string
	bound  time.Duration
	debugf func(string, ...any)

	mu         sync.Mutex
	answered   bool
	lastAnswer time.Time
	downSince  time.Time
	gaveUp     error
}

// answer records an answer (any HTTP response).
func (t *reachability) answer() {
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.downSince.IsZero() && t.gaveUp == nil {
		t.debugf("registry %s: answering again after %s", t.host, now.Sub(t.downSince).Round(time.Millisecond))
	}
	t.answered, t.lastAnswer, t.downSince = true, now, time.Time{}
}

// connectionFailed records a request that got no answer (refused, reset,
// cut).
func (t *reachability) connectionFailed(cause error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.answered && t.downSince.IsZero() && t.gaveUp == nil {
		t.downSince = time.Now()
		t.debugf("registry %s: no connection (%s); waiting up to %s for it", t.host, describe(cause), t.bound)
	}
}

// failFast returns the ErrUnreachable error once the registry was given
// up, else nil.
func (t *reachability) failFast() error {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.gaveUp
}

// expired gives the registry up, returning an error wrapping
// ErrUnreachable, when no connection could be made for the bound; else it
// returns nil.
func (t *reachability) expired(now time.Time, cause error) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.gaveUp != nil {
		return t.gaveUp
	}
	if t.downSince.IsZero() || now.Sub(t.downSince) < t.bound {
		return nil
	}
	t.gaveUp = newError(ErrUnreachable, cause, fmt.Sprintf("registry %s unreachable for %s: %s",
		t.host, now.Sub(t.downSince).Round(time.Second), describe(cause)))
	t.debugf("registry %s: unreachable for %s, giving up", t.host, t.bound)
	return t.gaveUp
}

// status reports whether the registry ever answered, and whether it
// answered after t.
func (t *reachability) status(since time.Time) (everAnswered, answeredSince bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.answered, t.lastAnswer.After(since)
}

// connRetry decides the retries of one request or operation after
// connection failures (no answer at all):
//   - before the registry ever answered, none: the first contact reports
//     ErrUnreachable at once;
//   - while the registry answers other requests, up to MaxAttempts, like
//     any transient failure;
//   - while it answers none, beyond MaxAttempts, until it has been
//     unreachable for the registry's bound (UnreachableTimeout, shared by
//     all requests): then the failure wraps ErrUnreachable and every
//     later request fails at once.
type connRetry struct {
	p     *policy
	reach *reachability
	last  time.Time // the previous connection failure
}

// next returns the wait before retrying after the connection failure
// cause of attempt (0-based), -1 when it is final, or the error that
// declares the registry unreachable. The registry counts as answering
// others when it answered a request after this operation's previous
// failure: a registry killed while answering does not make the requests
// it dropped give up early.
func (c *connRetry) next(attempt int, cause error) (time.Duration, error) {
	now := time.Now()
	since := c.last
	if since.IsZero() {
		since = now
	}
	c.last = now
	everAnswered, answeredSince := c.reach.status(since)
	if !everAnswered {
		return -1, nil
	}
	if err := c.reach.expired(now, cause); err != nil {
		return -1, err
	}
	if attempt+1 >= c.p.maxAttempts && answeredSince {
		return -1, nil
	}
	return min(c.p.delay(attempt, 0), maxReconnectDelay), nil
}

// errFinal marks an attempt's error as not worth another attempt (the
// transport already retried it).
var errFinal = errors.New("final")

// errRetryNow marks an attempt's error as calling for another attempt at
// once, not counted (the upload switched to smaller chunks).
var errRetryNow = errors.New("retry now")

// attempt is the state of one attempt of a retried operation.
type attempt struct {
	mu         sync.Mutex
	retryAfter time.Duration
}

type attemptKey struct{}

func (a *attempt) setRetryAfter(d time.Duration) {
	a.mu.Lock()
	a.retryAfter = d
	a.mu.Unlock()
}

func (a *attempt) getRetryAfter() time.Duration {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.retryAfter
}

// retry runs fn until it succeeds, fails for good, or MaxAttempts is
// reached, waiting with backoff (or Retry-After) between attempts. Worth
// another attempt: transient answers (5xx but 501 and 505, 408, 429),
// lost uploads (classUploadLost), 416 (a chunked upload resumes at the
// registry's offset), connections cut after an answer began,
// and connection failures as connRetry says. Never: refusals, 404s,
// content mismatches, source errors, stalls, TLS errors, and errors
// marked errFinal. The final error names op and, after several attempts,
// their number.
func (r *Registry) retry(ctx context.Context, op string, fn func(ctx context.Context) error) error {
	conn := connRetry{p: r.policy, reach: r.reach}
	for n, counted := 1, 1; ; n++ {
		st := &attempt{}
		err := fn(context.WithValue(ctx, attemptKey{}, st))
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", op, context.Cause(ctx))
		}
		wait := time.Duration(-1)
		switch c := classify(err); {
		case errors.Is(err, errFinal):
		case errors.Is(err, errRetryNow):
			wait = 0
		case c == classNetwork && beforeAnswer(err):
			d, uerr := conn.next(counted-1, err)
			if uerr != nil {
				err = uerr
			}
			wait = d
		case c == classNetwork, c == classTransient, c == classUploadLost, c == classRange:
			if counted < r.policy.maxAttempts {
				wait = r.policy.delay(counted-1, st.getRetryAfter())
			}
		}
		if wait < 0 {
			return r.finalError(ctx, op, err, counted)
		}
		if !errors.Is(err, errRetryNow) {
			counted++
		}
		r.debugf("%s: attempt %d failed: %s; retrying in %s", op, n, describe(err), wait.Round(time.Millisecond))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w", op, context.Cause(ctx))
		case <-t.C:
		}
	}
}

// finalError is the error of op that failed with err after attempts
// attempts.
func (r *Registry) finalError(ctx context.Context, op string, err error, attempts int) error {
	mapped := r.mapError(ctx, op, err, false)
	if attempts < 2 {
		return mapped
	}
	return &detailedError{msg: fmt.Sprintf("%s after %d attempts", mapped.Error(), attempts), errs: []error{mapped}}
}
