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
	"strings"
	"syscall"

	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

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
		if isHeaderTimeout(ue.Err) {
			return "no response from the registry in time"
		}
		return ue.Err.Error()
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

// statusCode returns the HTTP status of a registry error response in err's
// chain, or 0.
func statusCode(err error) int {
	var er *errcode.ErrorResponse
	if errors.As(err, &er) {
		return er.StatusCode
	}
	return 0
}

// hasErrorCode reports whether a registry error response in err's chain
// carries one of codes.
func hasErrorCode(err error, codes ...string) bool {
	var er *errcode.ErrorResponse
	if !errors.As(err, &er) {
		return false
	}
	for _, e := range er.Errors {
		for _, c := range codes {
			if e.Code == c {
				return true
			}
		}
	}
	return false
}

// isNotFound reports whether err means the manifest, blob or repository
// does not exist.
func isNotFound(err error) bool {
	if errors.Is(err, errdef.ErrNotFound) || statusCode(err) == http.StatusNotFound {
		return true
	}
	return hasErrorCode(err, errcode.ErrorCodeManifestUnknown, errcode.ErrorCodeNameUnknown, errcode.ErrorCodeBlobUnknown)
}

// isDenied reports whether err is a refusal of credentials or scope.
func isDenied(err error) bool {
	c := statusCode(err)
	return c == http.StatusUnauthorized || c == http.StatusForbidden
}

// isHeaderTimeout reports whether err is http.Transport's
// ResponseHeaderTimeout.
func isHeaderTimeout(err error) bool {
	return chainHas(err, func(e error) bool { return strings.Contains(e.Error(), "timeout awaiting response headers") })
}

// chainHas reports whether f holds for err or any error in its chain.
func chainHas(err error, f func(error) bool) bool {
	if err == nil {
		return false
	}
	if f(err) {
		return true
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return chainHas(u.Unwrap(), f)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if chainHas(e, f) {
				return true
			}
		}
	}
	return false
}

// isTLSError reports whether err comes from the TLS layer: verification,
// handshake, or a plain-HTTP server answering an HTTPS client.
func isTLSError(err error) bool {
	if err == nil {
		return false
	}
	var (
		cve *tls.CertificateVerificationError
		uae x509.UnknownAuthorityError
		he  x509.HostnameError
		cie x509.CertificateInvalidError
		rhe tls.RecordHeaderError
		ae  tls.AlertError
	)
	switch {
	case errors.As(err, &cve), errors.As(err, &uae), errors.As(err, &he),
		errors.As(err, &cie), errors.As(err, &rhe), errors.As(err, &ae):
		return true
	}
	msg := err.Error()
	return isPlainHTTPAnswer(err) || strings.Contains(msg, "tls: ") || strings.Contains(msg, "x509: ")
}

// isPlainHTTPAnswer reports whether err is net/http's "server gave HTTP
// response to HTTPS client".
func isPlainHTTPAnswer(err error) bool {
	return chainHas(err, func(e error) bool { return strings.Contains(e.Error(), "server gave HTTP response to HTTPS client") })
}

// isUnknownAuthority reports whether err is a certificate signed by an
// authority we do not trust.
func isUnknownAuthority(err error) bool {
	var uae x509.UnknownAuthorityError
	return errors.As(err, &uae) || chainHas(err, func(e error) bool { return strings.Contains(e.Error(), "unknown authority") })
}

// retryableNetError reports whether a transport error is worth another
// attempt: cut or reset connections, unexpected EOFs and timeouts other
// than the response-header (stall) timeout. Refused connections, TLS
// failures, DNS failures and cancellations are not.
func retryableNetError(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		isHeaderTimeout(err) || isTLSError(err) || errors.Is(err, syscall.ECONNREFUSED) {
		return false
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		return dnsErr.IsTemporary || dnsErr.IsTimeout
	}
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return true
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	msg := err.Error()
	for _, s := range []string{
		"connection reset", "broken pipe", "unexpected EOF", "server closed",
		"transport connection broken", "use of closed network connection",
		"connection was aborted",
	} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op != "dial"
}

// retryableStatus reports whether an HTTP status is worth another attempt.
func retryableStatus(code int) bool {
	switch {
	case code == http.StatusTooManyRequests, code == http.StatusRequestTimeout:
		return true
	case code == http.StatusNotImplemented, code == http.StatusHTTPVersionNotSupported:
		return false
	default:
		return code >= 500 && code <= 599
	}
}
