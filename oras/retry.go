package oras

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

const (
	// defaultBackoff is the first retry delay; it doubles on each attempt.
	defaultBackoff = 200 * time.Millisecond
	// maxBackoff caps the exponential delay.
	maxBackoff = 10 * time.Second
	// maxRetryAfter caps the delay a Retry-After header may ask for.
	maxRetryAfter = time.Minute
)

// policy is the retry policy of a registry, used by the transport
// (oras retry.Transport, for requests whose body can be rewound) and by
// the whole-operation retries of blob uploads.
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

// Retry implements oras retry.Policy for the transport: 5xx (except 501
// and 505), 408, 429 and cut or reset connections are retried; refused
// connections, TLS errors, cancellations and the stall timeout are not.
func (p *policy) Retry(attempt int, resp *http.Response, err error) (time.Duration, error) {
	if attempt+1 >= p.maxAttempts {
		return -1, nil
	}
	if err != nil {
		if !retryableNetError(err) {
			return -1, nil
		}
		return p.delay(attempt, 0), nil
	}
	if !retryableStatus(resp.StatusCode) {
		return -1, nil
	}
	return p.delay(attempt, retryAfter(resp)), nil
}

// errFinal marks an attempt's error as not worth another attempt (the
// transport already retried it).
var errFinal = errors.New("final")

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

// uploadRetryable reports whether a failed upload attempt is worth
// repeating from the start: server errors, throttling, cut connections and
// an upload the registry received truncated. Refusals (401, 403), missing
// repositories (404 NAME_UNKNOWN), content that does not match its
// descriptor, source read errors and stalls are final.
func uploadRetryable(err error) bool {
	if err == nil || errors.Is(err, errFinal) || errors.Is(err, ErrStalled) || errors.Is(err, ErrDigestMismatch) ||
		errors.Is(err, errSource) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if code := statusCode(err); code != 0 {
		if retryableStatus(code) {
			return true
		}
		// Our bytes were verified while streaming, so a digest or size
		// complaint means the registry got a truncated body.
		switch code {
		case http.StatusBadRequest, http.StatusNotFound, http.StatusRequestedRangeNotSatisfiable:
			return hasErrorCode(err, errcode.ErrorCodeDigestInvalid, errcode.ErrorCodeSizeInvalid,
				errcode.ErrorCodeBlobUploadInvalid, errcode.ErrorCodeBlobUploadUnknown)
		}
		return false
	}
	return retryableNetError(err)
}

// retry runs fn until it succeeds, fails for good, or MaxAttempts is
// reached, waiting with backoff (or Retry-After) between attempts. Each
// attempt gets a context and its cancel function, which the stall watchdog
// calls with an ErrStalled cause. The final error names op and, after
// several attempts, their number.
func (r *Registry) retry(ctx context.Context, op string, fn func(ctx context.Context, cancel context.CancelCauseFunc) error) error {
	for n := 1; ; n++ {
		st := &attempt{}
		actx, cancel := context.WithCancelCause(context.WithValue(ctx, attemptKey{}, st))
		err := fn(actx, cancel)
		cause := context.Cause(actx)
		cancel(nil)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", op, context.Cause(ctx))
		}
		if errors.Is(cause, ErrStalled) {
			err = cause
		} else if isHeaderTimeout(err) {
			err = newError(ErrStalled, err, fmt.Sprintf("transfer stalled: no answer from the registry for %s", r.opts.StallTimeout))
		}
		switch {
		case isDenied(err):
			err = r.deniedError(err)
		case errors.Is(err, auth.ErrBasicCredentialNotFound):
			err = newError(ErrLoginRequired, err, r.loginRequired().Error())
		}
		if !uploadRetryable(err) || n >= r.policy.maxAttempts {
			if n > 1 {
				return &detailedError{msg: fmt.Sprintf("%s: %s after %d attempts", op, describe(err), n), errs: []error{err}}
			}
			return opError(op, err)
		}
		wait := r.policy.delay(n-1, st.getRetryAfter())
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
