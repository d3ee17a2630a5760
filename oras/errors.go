package oras

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"

	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// Sentinel errors returned (wrapped with context) by this package.
var (
	// ErrNotFound means the manifest or blob does not exist: the registry
	// answered 404 to a lookup (ResolveManifest, FetchManifest).
	ErrNotFound = errors.New("not found")
	// ErrLoginRequired means the registry wants credentials that docker's
	// configuration does not have; the message tells to run docker login.
	ErrLoginRequired = errors.New("login required")
	// ErrUnauthorized means the registry refused the credentials given, or
	// the scope they grant.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrNotRegistry means the destination does not speak the registry
	// API (no /v2/ endpoint).
	ErrNotRegistry = errors.New("not a registry")
	// ErrStalled means a transfer moved too little for the stall timeout,
	// or a small request got no complete answer within it.
	ErrStalled = errors.New("transfer stalled")
	// ErrTLS means the TLS connection failed (untrusted or invalid
	// certificate, or a plain-HTTP registry where HTTPS is required), or a
	// redirect from HTTPS to plain HTTP was refused; the message says
	// which flag or certs.d file fixes it.
	//
	// References: decisions.md D6.
	ErrTLS = errors.New("tls error")
	// ErrUnreachable means no connection could be made to the registry:
	// at the first contact, or for longer than
	// RegistryOptions.UnreachableTimeout once it had answered. The message
	// names the registry. After that, every request of the Registry fails
	// at once with it.
	ErrUnreachable = errors.New("registry unreachable")
	// ErrDigestMismatch means the content given for a blob or manifest
	// does not match its descriptor (size or digest). Such a blob is never
	// committed to the registry and never retried.
	//
	// References: decisions.md D4 (a blob whose bytes do not match its
	// digest fails only the images that use it).
	ErrDigestMismatch = errors.New("content does not match its descriptor")
)

// class is what a failure means for retries and for the sentinel it gets.
// classify is the one place that decides it.
type class int

const (
	// classOther is any other failure: final, returned as it is.
	classOther class = iota
	// classCanceled: the caller's context ended.
	classCanceled
	// classNotFound: 404, or oras' errdef.ErrNotFound.
	classNotFound
	// classNoCredentials: a Basic challenge and no credentials.
	classNoCredentials
	// classDenied: 401 or 403.
	classDenied
	// classStalled: ErrStalled, from the stall watch or a request deadline.
	classStalled
	// classTLS: certificate, handshake or scheme mismatch.
	classTLS
	// classUnreachable: ErrUnreachable, already decided.
	classUnreachable
	// classNetwork: a connection refused, reset, cut or timed out, or a
	// name that does not resolve. Before any answer (a request that
	// failed) it is a connection failure; after one (a body cut) it is
	// transient.
	classNetwork
	// classTransient: 408, 429, 5xx other than 501 and 505.
	classTransient
	// classUploadLost: the registry lost or received a truncated upload
	// (DIGEST_INVALID, SIZE_INVALID, BLOB_UPLOAD_INVALID,
	// BLOB_UPLOAD_UNKNOWN on 400, 404 or 416). Our bytes were verified
	// while streaming, so the upload is worth repeating.
	classUploadLost
	// classTooLarge: 413, a body limit (e.g. a proxy's).
	classTooLarge
	// classRange: 416 without an upload error code: the registry has a
	// different offset for a chunked upload.
	classRange
	// classContent: ErrDigestMismatch or a failure of the blob's source.
	classContent
)

// classify returns the class of err from its types, HTTP status and
// registry error codes (never from its message).
func classify(err error) class {
	var (
		er  *errcode.ErrorResponse
		dns *net.DNSError
		ne  net.Error
	)
	switch {
	case err == nil:
		return classOther
	case errors.Is(err, ErrStalled):
		return classStalled
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return classCanceled
	case errors.Is(err, ErrUnreachable):
		return classUnreachable
	case errors.Is(err, ErrDigestMismatch), errors.Is(err, errSource):
		return classContent
	case errors.Is(err, ErrTLS), isTLSError(err):
		return classTLS
	case errors.Is(err, auth.ErrBasicCredentialNotFound):
		return classNoCredentials
	case errors.Is(err, ErrLoginRequired):
		return classNoCredentials
	case errors.Is(err, ErrUnauthorized):
		return classDenied
	case errors.Is(err, ErrNotFound):
		return classNotFound
	case errors.As(err, &er):
		switch er.StatusCode {
		case http.StatusBadRequest, http.StatusNotFound, http.StatusRequestedRangeNotSatisfiable:
			if hasErrorCode(er, errcode.ErrorCodeDigestInvalid, errcode.ErrorCodeSizeInvalid,
				errcode.ErrorCodeBlobUploadInvalid, errcode.ErrorCodeBlobUploadUnknown) {
				return classUploadLost
			}
		}
		return classifyStatus(er.StatusCode)
	case errors.Is(err, errdef.ErrNotFound):
		return classNotFound
	case errors.As(err, &dns):
		return classNetwork
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, syscall.ETIMEDOUT), errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return classNetwork
	case errors.As(err, &ne) && ne.Timeout():
		return classNetwork
	case errors.As(err, new(*net.OpError)):
		return classNetwork
	case isServerClosedIdle(err):
		return classNetwork
	}
	return classOther
}

// serverClosedIdle is the message of net/http's errServerClosedIdle: a
// request went out on a kept-alive connection that the server had closed
// meanwhile, so the server never handled it (net/http sends it again
// itself only for GET, HEAD, OPTIONS and TRACE). It comes when a registry
// closes its connections, as on a restart. The error is not exported;
// TestServerClosedIdleMessage checks the message against net/http's
// source.
const serverClosedIdle = "http: server closed idle connection"

// isServerClosedIdle reports whether err wraps net/http's
// errServerClosedIdle.
func isServerClosedIdle(err error) bool {
	for ; err != nil; err = errors.Unwrap(err) {
		if err.Error() == serverClosedIdle {
			return true
		}
	}
	return false
}

// classifyStatus returns the class of an HTTP error status.
func classifyStatus(code int) class {
	switch {
	case code == http.StatusUnauthorized, code == http.StatusForbidden:
		return classDenied
	case code == http.StatusNotFound:
		return classNotFound
	case code == http.StatusRequestEntityTooLarge:
		return classTooLarge
	case code == http.StatusRequestedRangeNotSatisfiable:
		return classRange
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests:
		return classTransient
	case code == http.StatusNotImplemented, code == http.StatusHTTPVersionNotSupported:
		return classOther
	case code >= 500 && code <= 599:
		return classTransient
	}
	return classOther
}

// beforeAnswer reports whether err is the failure of a request as a whole
// (net/http's *url.Error: no answer came), rather than of reading an
// answer's body.
func beforeAnswer(err error) bool {
	var ue *url.Error
	return errors.As(err, &ue)
}

// isTLSError reports whether err comes from the TLS layer: certificate
// verification, a record that is not TLS, an alert from the server, or a
// plain-HTTP answer to an HTTPS request.
func isTLSError(err error) bool {
	var (
		cve *tls.CertificateVerificationError
		uae x509.UnknownAuthorityError
		he  x509.HostnameError
		cie x509.CertificateInvalidError
		rhe tls.RecordHeaderError
		ae  tls.AlertError
	)
	return errors.As(err, &cve) || errors.As(err, &uae) || errors.As(err, &he) ||
		errors.As(err, &cie) || errors.As(err, &rhe) || errors.As(err, &ae) ||
		isRemoteAlert(err) || errors.Is(err, http.ErrSchemeMismatch)
}

// isRemoteAlert reports whether err is a TLS alert sent by the server (for
// instance when it wants a client certificate): crypto/tls reports those
// as a *net.OpError with Op "remote error".
func isRemoteAlert(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error"
}

// hasErrorCode reports whether a registry error response carries one of
// codes.
func hasErrorCode(er *errcode.ErrorResponse, codes ...string) bool {
	for _, e := range er.Errors {
		for _, c := range codes {
			if e.Code == c {
				return true
			}
		}
	}
	return false
}

// statusCode returns the HTTP status of a registry error response in err's
// chain, or 0.
func statusCode(err error) int {
	var er *errcode.ErrorResponse
	if errors.As(err, &er) {
		return er.StatusCode
	}
	return 0
}

// detailedError is an error with its own message whose chain holds a
// sentinel and the cause, so that errors.Is and errors.As see both.
type detailedError struct {
	msg  string
	errs []error
}

func (e *detailedError) Error() string   { return e.msg }
func (e *detailedError) Unwrap() []error { return e.errs }

// newError returns an error reading msg whose chain holds sentinel and cause
// (either may be nil).
func newError(sentinel, cause error, msg string) error {
	e := &detailedError{msg: msg}
	if sentinel != nil {
		e.errs = append(e.errs, sentinel)
	}
	if cause != nil {
		e.errs = append(e.errs, cause)
	}
	return e
}

// opError prefixes an error with the operation that failed, keeping its
// chain.
func opError(op string, err error) error {
	return &detailedError{msg: op + ": " + describe(err), errs: []error{err}}
}

// describe returns a short message for err: URL errors lose their method
// and URL (upload URLs carry session state, and the caller names the
// operation) and registry error responses read "503 Service Unavailable:
// <registry message>".
func describe(err error) string {
	if de, ok := err.(*detailedError); ok {
		return de.msg
	}
	var er *errcode.ErrorResponse
	if errors.As(err, &er) {
		return statusText(er)
	}
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return describe(ue.Err)
	}
	return err.Error()
}

// statusText renders a registry error response without its URL.
func statusText(er *errcode.ErrorResponse) string {
	s := fmt.Sprintf("%d %s", er.StatusCode, http.StatusText(er.StatusCode))
	if len(er.Errors) > 0 {
		s += ": " + er.Errors.Error()
	}
	return s
}

// mapError gives the failure of op its sentinel, by class: the caller's
// cancellation as it is; ErrNotFound for a 404 when notFound (a lookup:
// elsewhere a 404 is no proof of absence); ErrLoginRequired or
// ErrUnauthorized for refusals; ErrTLS with a hint; ErrStalled,
// ErrUnreachable, ErrDigestMismatch and source errors kept. The message
// names op.
func (r *Registry) mapError(ctx context.Context, op string, err error, notFound bool) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s: %w", op, context.Cause(ctx))
	}
	switch classify(err) {
	case classNotFound:
		if notFound {
			return newError(ErrNotFound, err, op+": "+ErrNotFound.Error())
		}
	case classNoCredentials:
		if !errors.Is(err, ErrLoginRequired) {
			return opError(op, newError(ErrLoginRequired, err, r.loginRequired().Error()))
		}
	case classDenied:
		return opError(op, r.deniedError(ctx, err))
	case classTLS:
		if !errors.Is(err, ErrTLS) {
			return opError(op, r.tlsError(err))
		}
	}
	return opError(op, err)
}

// deniedError gives a 401 or 403 answer its sentinel and a hint:
// ErrLoginRequired for a 401 when docker has no credentials for the
// registry, else ErrUnauthorized.
func (r *Registry) deniedError(ctx context.Context, err error) error {
	if errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrLoginRequired) {
		return err
	}
	if missing := r.harborMissingProject(err); missing != nil {
		return missing
	}
	if cred, cerr := r.creds.lookup(ctx, r.host); cerr == nil && cred == auth.EmptyCredential && statusCode(err) == http.StatusUnauthorized {
		return newError(ErrLoginRequired, err, fmt.Sprintf("%s (run `docker login %s`)", describe(err), r.host))
	}
	return newError(ErrUnauthorized, err, fmt.Sprintf("%s (the credentials for %s were refused or lack this access)", describe(err), r.host))
}
