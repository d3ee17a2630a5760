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

// errSource marks failures to open or read the blob's source: they are not
// retried and keep their own error in the chain.
var errSource = errors.New("read blob source")

// errBodyClosed is what a Read after Close returns.
var errBodyClosed = errors.New("upload body closed")

// watchdog cancels a context when no progress was reported for timeout.
//
// References: decisions.md D2 (--timeout is a stall timeout).
type watchdog struct {
	timeout time.Duration
	cancel  context.CancelCauseFunc
	last    atomic.Int64 // UnixNano of the last progress
	stopped atomic.Bool
	fired   atomic.Pointer[error]
	mu      sync.Mutex
	timer   *time.Timer
}

// startWatchdog starts a watchdog; it returns nil when timeout is zero.
func startWatchdog(timeout time.Duration, cancel context.CancelCauseFunc) *watchdog {
	if timeout <= 0 || cancel == nil {
		return nil
	}
	w := &watchdog{timeout: timeout, cancel: cancel}
	w.last.Store(time.Now().UnixNano())
	w.mu.Lock()
	w.timer = time.AfterFunc(timeout, w.check)
	w.mu.Unlock()
	return w
}

func (w *watchdog) check() {
	if w.stopped.Load() {
		return
	}
	idle := time.Since(time.Unix(0, w.last.Load()))
	if idle >= w.timeout {
		err := newError(ErrStalled, nil, fmt.Sprintf("transfer stalled: no progress for %s", w.timeout))
		w.fired.Store(&err)
		w.cancel(err)
		return
	}
	w.mu.Lock()
	w.timer.Reset(w.timeout - idle)
	w.mu.Unlock()
}

// touch records progress.
func (w *watchdog) touch() {
	if w != nil {
		w.last.Store(time.Now().UnixNano())
	}
}

// err returns the stall error once the watchdog fired, else nil.
func (w *watchdog) err() error {
	if w == nil {
		return nil
	}
	if p := w.fired.Load(); p != nil {
		return *p
	}
	return nil
}

// stop ends the watch.
func (w *watchdog) stop() {
	if w == nil || w.stopped.Swap(true) {
		return
	}
	w.mu.Lock()
	w.timer.Stop()
	w.mu.Unlock()
}

// DigestVerifier is implemented by blob sources that check the digest of
// what they read themselves, failing their last read when the bytes do not
// match (the archive reader does). PushBlob and MountBlob do not hash the
// bytes of such a source again.
type DigestVerifier interface {
	VerifiesDigest(d digest.Digest) bool
}

// uploadBody is the body of a blob upload. It opens the source on the
// first Read (so a refused POST never opens it), starts the stall watchdog
// then, and verifies size and digest while streaming: content that does
// not match the descriptor fails the request before its last byte, so the
// registry never commits it. Read and Close are safe to call concurrently
// (net/http may close the body from another goroutine).
type uploadBody struct {
	desc    ocispec.Descriptor
	open    func() (io.ReadCloser, error)
	timeout time.Duration
	cancel  context.CancelCauseFunc

	mu      sync.Mutex
	rc      io.ReadCloser
	dog     *watchdog
	hash    hash.Hash
	n       int64
	closed  bool
	started bool
	err     error // sticky content or source error
}

func newUploadBody(desc ocispec.Descriptor, open func() (io.ReadCloser, error), timeout time.Duration, cancel context.CancelCauseFunc) *uploadBody {
	return &uploadBody{desc: desc, open: open, timeout: timeout, cancel: cancel}
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
		b.dog = startWatchdog(b.timeout, b.cancel)
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
		b.dog.touch()
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
		// The whole body is out: waiting for the answer is covered by
		// the transport's ResponseHeaderTimeout.
		b.dog.stop()
		return n, io.EOF
	case err != nil:
		b.err = newError(errSource, err, fmt.Sprintf("read blob: %v", err))
		return n, b.err
	}
	return n, nil
}

// Close closes the source and stops the watchdog; it may be called more
// than once.
func (b *uploadBody) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	b.dog.stop()
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
