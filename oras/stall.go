package oras

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// MinTransferRate is the rate, in bytes per second averaged over the stall
// timeout, below which a blob upload or download counts as stalled: with
// the default timeout of 10 minutes, fewer than 600 KiB in 10 minutes. A
// slow but moving transfer above it never fails; a server that trickles a
// few bytes at a time to keep a connection open does.
//
// References: decisions.md D2 (--timeout is a stall timeout).
const MinTransferRate = 1 << 10

// rateSteps is the number of samples per window of the rate watch.
const rateSteps = 4

// watch cancels a request's context with an ErrStalled cause when the
// request breaks its time limit: a deadline, or a minimum number of bytes
// per window (checked every window/rateSteps over the last window). Its
// limit can be replaced while it runs (a request body sent, then its
// answer awaited).
//
// References: decisions.md D2 (--timeout is a stall timeout).
type watch struct {
	cancel context.CancelCauseFunc
	moved  atomic.Int64

	mu      sync.Mutex
	timer   *time.Timer
	gen     int // identifies the current limit; older timers do nothing
	stopped bool
	// rate limit
	window  time.Duration
	min     int64
	samples [rateSteps + 1]int64
	ticks   int
}

// add records n bytes moved.
func (w *watch) add(n int) {
	if n > 0 {
		w.moved.Add(int64(n))
	}
}

// deadline replaces the limit with a deadline d from now; msg (with %s
// for d) explains the stall.
func (w *watch) deadline(d time.Duration, msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	w.gen++
	gen := w.gen
	if w.timer != nil {
		w.timer.Stop()
	}
	w.timer = time.AfterFunc(d, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.stopped || w.gen != gen {
			return
		}
		w.fire(fmt.Sprintf("transfer stalled: "+msg, d))
	})
}

// rate replaces the limit with at least min bytes in every window from now.
func (w *watch) rate(window time.Duration, min int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	w.gen++
	if w.timer != nil {
		w.timer.Stop()
	}
	w.window, w.min, w.ticks = window, max(min, 1), 0
	w.samples[0] = w.moved.Load()
	w.schedule(w.gen)
}

func (w *watch) schedule(gen int) {
	w.timer = time.AfterFunc(w.window/rateSteps, func() { w.tick(gen) })
}

func (w *watch) tick(gen int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped || w.gen != gen {
		return
	}
	w.ticks++
	now := w.moved.Load()
	w.samples[w.ticks%(rateSteps+1)] = now
	if w.ticks >= rateSteps {
		if moved := now - w.samples[(w.ticks-rateSteps)%(rateSteps+1)]; moved < w.min {
			if w.min == 1 {
				w.fire(fmt.Sprintf("transfer stalled: no progress for %s", w.window))
			} else {
				w.fire(fmt.Sprintf("transfer stalled: %d bytes in %s, fewer than %d (%d B/s)",
					moved, w.window, w.min, int64(float64(w.min)/w.window.Seconds())))
			}
			return
		}
	}
	w.schedule(gen)
}

// fire cancels with the stall error; w.mu is held.
func (w *watch) fire(msg string) {
	w.stopped = true
	w.cancel(newError(ErrStalled, nil, msg))
}

// stop ends the watch.
func (w *watch) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return
	}
	w.stopped = true
	if w.timer != nil {
		w.timer.Stop()
	}
}

// windowBytes returns the bytes a blob transfer must move per window of
// stall at rate bytes per second (at least 1).
func windowBytes(stall time.Duration, rate int64) int64 {
	return max(1, int64(stall.Seconds()*float64(rate)))
}

// errSource marks failures to open or read the blob's source: they are not
// retried and keep their own error in the chain.
var errSource = errors.New("read blob source")

// errBodyClosed is what a Read after Close returns.
var errBodyClosed = errors.New("upload body closed")

// DigestVerifier is implemented by blob sources that check the digest of
// what they read themselves, failing their last read when the bytes do not
// match (the archive reader does). PushBlob and MountBlob do not hash the
// bytes of such a source again.
type DigestVerifier interface {
	VerifiesDigest(d digest.Digest) bool
}

// uploadBody is the body of a blob upload. It opens the source on the
// first Read (so a refused POST never opens it) and verifies size and
// digest while streaming: content that does not match the descriptor fails
// the request before its last byte, so the registry never commits it.
// Read and Close are safe to call concurrently (net/http may close the
// body from another goroutine).
type uploadBody struct {
	desc ocispec.Descriptor
	open func() (io.ReadCloser, error)

	mu      sync.Mutex
	rc      io.ReadCloser
	hash    hash.Hash
	n       int64
	closed  bool
	started bool
	err     error // sticky content or source error
}

func newUploadBody(desc ocispec.Descriptor, open func() (io.ReadCloser, error)) *uploadBody {
	return &uploadBody{desc: desc, open: open}
}

func (b *uploadBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errBodyClosed
	}
	if b.err != nil {
		return 0, b.err
	}
	if !b.started {
		b.started = true
		rc, err := b.open()
		if err != nil {
			b.err = newError(errSource, err, fmt.Sprintf("open blob: %v", err))
			return 0, b.err
		}
		b.rc = rc
		if v, ok := rc.(DigestVerifier); (!ok || !v.VerifiesDigest(b.desc.Digest)) && b.desc.Digest.Algorithm().Available() {
			b.hash = b.desc.Digest.Algorithm().Hash()
		}
	}
	if b.rc == nil {
		return 0, b.err
	}
	n, err := b.rc.Read(p)
	if n > 0 {
		if b.n+int64(n) > b.desc.Size {
			b.err = newError(ErrDigestMismatch, nil, fmt.Sprintf("blob has more than the %d bytes its descriptor says", b.desc.Size))
			return 0, b.err
		}
		b.n += int64(n)
		if b.hash != nil {
			b.hash.Write(p[:n])
		}
	}
	switch {
	case err == io.EOF:
		if b.n != b.desc.Size {
			b.err = newError(ErrDigestMismatch, nil, fmt.Sprintf("blob has %d bytes, its descriptor says %d", b.n, b.desc.Size))
			return n, b.err
		}
		if b.hash != nil {
			if got := fmt.Sprintf("%s:%x", b.desc.Digest.Algorithm(), b.hash.Sum(nil)); got != b.desc.Digest.String() {
				b.err = newError(ErrDigestMismatch, nil, fmt.Sprintf("blob content has digest %s", got))
				return n, b.err
			}
		}
		return n, io.EOF
	case err != nil:
		b.err = newError(errSource, err, fmt.Sprintf("read blob: %v", err))
		return n, b.err
	}
	return n, nil
}

// Close closes the source; it may be called more than once.
func (b *uploadBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if b.rc != nil {
		return b.rc.Close()
	}
	return nil
}

// contentErr returns the content or source error the body met, if any.
func (b *uploadBody) contentErr() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}
