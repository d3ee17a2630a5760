// Package oras gives the loader its access to registries: oras-go v2
// repositories authenticated with docker's credentials, a transport that
// behaves like docker's (TLS, certs.d, loopback plain-HTTP fallback,
// proxies), retries with backoff, a stall timeout, the login probe and
// Harbor's project API.
package oras

import (
	"context"
	"errors"
	"io"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote"
)

// Sentinel errors returned (wrapped with context) by this package.
var (
	// ErrNotFound means the manifest or blob does not exist.
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
	// ErrStalled means a transfer made no progress for the stall timeout.
	ErrStalled = errors.New("transfer stalled")
)

var errNotImplemented = errors.New("not implemented")

// RegistryOptions configures a Registry.
type RegistryOptions struct {
	// ConfigDir is docker's configuration directory; empty means docker's
	// default ($DOCKER_CONFIG, else ~/.docker).
	ConfigDir string
	// TLSVerify is nil by default: verify certificates, and let loopback
	// registries fall back to plain HTTP like docker. False skips
	// verification and allows plain HTTP for any host; true forbids the
	// plain-HTTP fallback even for loopback.
	TLSVerify *bool
	// StallTimeout fails a transfer that makes no progress for this long;
	// zero disables it.
	StallTimeout time.Duration
	// MaxAttempts bounds the attempts of each request or upload (>= 1).
	MaxAttempts int
	// Debugf, when set, receives debug lines (never secrets).
	Debugf func(format string, args ...any)
	// UserAgent is sent with every request.
	UserAgent string
}

// DefaultRegistryOptions returns the options used unless told otherwise.
func DefaultRegistryOptions() RegistryOptions {
	return RegistryOptions{StallTimeout: 10 * time.Minute, MaxAttempts: 6, UserAgent: "docker-hangar"}
}

// Registry is one destination registry. It is safe for concurrent use.
type Registry struct {
	// TODO(oras): implementation.
}

// NewRegistry returns a Registry for host ("host[:port]"). It makes no
// request: the scheme (HTTPS, or plain HTTP where allowed) is settled by the
// first request, once.
func NewRegistry(host string, opts RegistryOptions) (*Registry, error) {
	return nil, errNotImplemented
}

// Host returns the registry host as given.
func (r *Registry) Host() string { return "" }

// Ping sends one request to /v2/. With requireLogin, a registry that wants
// credentials we do not have fails with ErrLoginRequired ("run `docker login
// <host>`"), and refused credentials with ErrUnauthorized. Without it only
// reachability (and the scheme) is checked.
func (r *Registry) Ping(ctx context.Context, requireLogin bool) error { return errNotImplemented }

// Repository returns the repository name (e.g. "library/nginx").
func (r *Registry) Repository(name string) (*Repository, error) { return nil, errNotImplemented }

// IsHarbor reports whether the registry is Harbor v2 (GET /api/v2.0/ping
// answers 200).
func (r *Registry) IsHarbor(ctx context.Context) (bool, error) { return false, errNotImplemented }

// EnsureHarborProject creates the Harbor project (private) unless it
// exists, and reports whether it was created.
func (r *Registry) EnsureHarborProject(ctx context.Context, project string) (created bool, err error) {
	return false, errNotImplemented
}

// Repository is one repository of a Registry. It is safe for concurrent use.
type Repository struct {
	// TODO(oras): implementation.
	repo *remote.Repository
}

// Name returns the repository name.
func (r *Repository) Name() string { return "" }

// BlobExists reports whether the repository has the blob.
func (r *Repository) BlobExists(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	return false, errNotImplemented
}

// PushBlob uploads a blob, calling open for a fresh reader of its bytes on
// each attempt; retryable failures (5xx, 429, resets, cut uploads) are
// retried with backoff, and a stalled transfer fails with ErrStalled.
func (r *Repository) PushBlob(ctx context.Context, desc ocispec.Descriptor, open func() (io.ReadCloser, error)) error {
	return errNotImplemented
}

// MountBlob mounts a blob from another repository of the same registry;
// when the registry declines, it uploads it with open instead. It reports
// whether the blob was mounted (true) or uploaded (false).
func (r *Repository) MountBlob(ctx context.Context, desc ocispec.Descriptor, from string, open func() (io.ReadCloser, error)) (mounted bool, err error) {
	return false, errNotImplemented
}

// ManifestExists reports whether the repository has the manifest.
func (r *Repository) ManifestExists(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	return false, errNotImplemented
}

// PushManifest pushes manifest bytes (exactly as given) with desc's media
// type, to reference (a tag), or by digest when reference is empty.
func (r *Repository) PushManifest(ctx context.Context, desc ocispec.Descriptor, body []byte, reference string) error {
	return errNotImplemented
}

// FetchManifest fetches the manifest at reference (tag or digest). A tag or
// digest that does not exist gives an error wrapping ErrNotFound; any other
// failure is returned as such.
func (r *Repository) FetchManifest(ctx context.Context, reference string) (ocispec.Descriptor, []byte, error) {
	return ocispec.Descriptor{}, nil, errNotImplemented
}
