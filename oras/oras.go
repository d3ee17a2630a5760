// Package oras gives the loader its access to registries: oras-go v2
// repositories authenticated with docker's credentials, a transport that
// behaves like docker's (TLS, certs.d, loopback plain-HTTP fallback,
// proxies), retries with backoff, stall limits, the login probe and
// Harbor's project API.
//
// A Registry settles its scheme (HTTPS, or plain HTTP where D6 allows it)
// with the first request, normally Ping's GET /v2/, and keeps it;
// concurrent callers share that request and each returns on its own
// context's end.
//
// Retries. Requests whose body can be rewound (pings, tokens, HEADs,
// manifests, Harbor calls) are retried by the transport; blob uploads,
// which stream from the archive, are retried whole (open is called again)
// by PushBlob and MountBlob. Retried, up to RegistryOptions.MaxAttempts
// attempts with exponential backoff and jitter or the registry's
// Retry-After: 408, 429, 5xx other than 501 and 505, connections cut
// after an answer began, and uploads the registry lost or received
// truncated (DIGEST_INVALID, SIZE_INVALID, BLOB_UPLOAD_INVALID,
// BLOB_UPLOAD_UNKNOWN, 416). Connection failures (refused, reset, EOF
// before any answer, or a kept-alive connection the registry had closed)
// are retried like those while the registry answers
// other requests; while it answers none they are retried beyond
// MaxAttempts, until it has been unreachable for
// RegistryOptions.UnreachableTimeout, shared by all requests of the
// Registry: then they fail with ErrUnreachable, and so does every later
// request, at once. A registry that never answered fails the first
// contact with ErrUnreachable at once. Never retried: 401, 403, 404,
// other 4xx, content mismatches, source read errors, stalls and TLS
// errors. (The auth flow itself answers a 401 challenge once with
// credentials or a fresh token; a chunked upload whose token expires
// mid-way asks for a new one once per chunk.)
//
// Limits (RegistryOptions.StallTimeout, T): a small request must be
// answered completely within T; a blob upload must send at least
// T × MinTransferRate bytes in every window of T and be answered within T
// of its last byte. Else it fails with ErrStalled.
//
// Large blobs: a blob is uploaded in one PUT until the registry (or a
// proxy before it) answers 413; the Registry then uploads blobs larger
// than its chunk size in chunks (PATCH with Content-Range), halving the
// chunk size at each 413 (RegistryOptions.MaxChunkSize forces chunks).
//
// Errors carry a sentinel (ErrNotFound, ErrLoginRequired, ErrUnauthorized,
// ErrNotRegistry, ErrStalled, ErrTLS, ErrUnreachable, ErrDigestMismatch)
// for errors.Is, name the operation, blob or manifest and repository, and
// never hold a secret. ErrNotFound comes only from lookups
// (ResolveManifest, FetchManifest); ManifestExists and BlobExists answer
// false instead.
//
// Credentials are sent only to the registry's own origin, and for a token
// to the realm its challenge names (as docker does); never along a
// redirect to another origin, and no redirect may leave HTTPS.
//
// References: decisions.md D2, D4, D5, D6; hangar-load.md 2.6, 2.15, 5.15;
// OCI distribution-spec v1.1 (pushing blobs, in chunks, mounting).
package oras

import (
	"bytes"
	"context"
	_ "crypto/sha256" // digest algorithms
	_ "crypto/sha512"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/cli/cli/config"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/retry"

	"github.com/cnrancher/docker-hangar/internal/digestcheck"
)

// MaxManifestSize bounds the manifests (and image configs) read or
// written: distribution's limit on a manifest PUT body (4 MiB,
// registry/handlers/manifests.go maxManifestBodySize).
const MaxManifestSize = 4 << 20

// manifestMediaTypes are the manifest types accepted when fetching.
var manifestMediaTypes = []string{
	ocispec.MediaTypeImageIndex,
	ocispec.MediaTypeImageManifest,
	"application/vnd.docker.distribution.manifest.list.v2+json",
	"application/vnd.docker.distribution.manifest.v2+json",
}

// RegistryOptions configures a Registry.
type RegistryOptions struct {
	// ConfigDir is docker's configuration directory; empty means docker's
	// default ($DOCKER_CONFIG, else ~/.docker). Its certs.d directory is
	// read too.
	ConfigDir string
	// TLSVerify is nil by default: verify certificates, and let loopback
	// registries fall back to plain HTTP like docker. False skips
	// verification and allows plain HTTP for any host; true forbids the
	// plain-HTTP fallback even for loopback.
	//
	// References: decisions.md D6.
	TLSVerify *bool
	// StallTimeout T bounds the requests; zero disables the limits. A
	// small request (ping, token, HEAD, manifest, upload POST and final
	// PUT, Harbor API) fails when it is not answered completely within T.
	// A blob upload fails when it sends fewer than T × MinTransferRate
	// bytes (at least one) in any window of T, or gets no answer within T
	// of its last byte; a blob download likewise. The error wraps
	// ErrStalled.
	//
	// References: decisions.md D2.
	StallTimeout time.Duration
	// MaxAttempts bounds the attempts of each request or upload (>= 1;
	// smaller values mean 1), except after connection failures while the
	// registry answers nothing (see UnreachableTimeout).
	MaxAttempts int
	// UnreachableTimeout bounds how long requests wait for a registry that
	// answered before and now accepts no connection (restarting, killed):
	// they are retried with backoff (at most a second apart) until it
	// answers again, or until it has answered nothing for this long; then
	// every request of the Registry fails with ErrUnreachable. Zero or
	// less means DefaultUnreachableTimeout (30 s).
	UnreachableTimeout time.Duration
	// MaxChunkSize, when positive, uploads blobs larger than it in chunks
	// of at most that many bytes. Zero uploads each blob in one request
	// until a body is refused as too large (413, e.g. nginx's
	// client_max_body_size); from then on the Registry uploads larger
	// blobs in chunks of DefaultChunkSize (64 MiB) or half the refused
	// body, whichever is smaller. Every 413 halves the chunk size again,
	// down to MinChunkSize (64 KiB).
	MaxChunkSize int64
	// PushScope asks every token of a repository for pull and push, so
	// that one token serves a load's reads and writes of the repository
	// (otherwise reads get a pull token and the first write another).
	PushScope bool
	// CredentialHelperTimeout bounds each run of a docker credential
	// helper (credsStore, credHelpers); the helper and its children are
	// killed when it passes or the caller gives up. Zero or less means
	// DefaultCredentialHelperTimeout (30 s).
	CredentialHelperTimeout time.Duration
	// Debugf, when set, receives debug lines (never secrets).
	Debugf func(format string, args ...any)
	// UserAgent is sent with every request.
	UserAgent string
	// SystemCertsDir replaces DefaultSystemCertsDir (/etc/docker/certs.d)
	// when not empty; tests use it.
	SystemCertsDir string
	// DialContext, when set, replaces the dialer and turns off proxies from
	// the environment. It is for tests and custom networks: e.g. reaching a
	// registry name that DNS does not resolve, while TLS still verifies
	// that name.
	DialContext func(ctx context.Context, network, addr string) (net.Conn, error)

	// backoff replaces the first retry delay (tests shorten it).
	backoff time.Duration
	// dial replaces the dialer and disables proxies (tests map names to
	// loopback).
	dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// minRate replaces MinTransferRate when positive (tests).
	minRate int64
}

// DefaultRegistryOptions returns the options used unless told otherwise.
func DefaultRegistryOptions() RegistryOptions {
	return RegistryOptions{
		StallTimeout:            10 * time.Minute,
		MaxAttempts:             6,
		UnreachableTimeout:      DefaultUnreachableTimeout,
		CredentialHelperTimeout: DefaultCredentialHelperTimeout,
		UserAgent:               "docker-hangar",
	}
}

// Registry is one destination registry. It is safe for concurrent use.
type Registry struct {
	host     string // as given
	endpoint string // host to contact (Docker Hub's API host for docker.io)
	opts     RegistryOptions
	mode     tlsMode
	policy   *policy
	creds    *credentialStore
	reach    *reachability

	client *http.Client // retrying, no credentials
	auth   *auth.Client // retrying, docker credentials
	tokens *authCache   // the token cache of auth and upload
	upload *auth.Client // no transport retries (uploads retry whole)

	schemeOnce flight[schemeResult]
	harbor     flight[bool] // IsHarbor
	chunkSize  atomic.Int64 // 0: monolithic uploads
	bearer     atomic.Bool  // the first GET /v2/ challenged with a bearer token

	mu        sync.Mutex
	plainHTTP bool

	groupsMu sync.RWMutex
	sharing  []string               // ShareTokens, until groups are made
	groups   map[string]*tokenGroup // made from sharing
	first    *tokenGroup            // the group of the first repository
	projects map[string]string      // project -> its first shared repository
}

// NewRegistry returns a Registry for host ("host[:port]"). It makes no
// request: the scheme (HTTPS, or plain HTTP where allowed) is settled by the
// first request, once.
func NewRegistry(host string, opts RegistryOptions) (*Registry, error) {
	if strings.Contains(host, "://") {
		return nil, fmt.Errorf("invalid registry %q: give host[:port] without a scheme", host)
	}
	ref := registry.Reference{Registry: host}
	if host == "" || ref.ValidateRegistry() != nil {
		return nil, fmt.Errorf("invalid registry %q", host)
	}
	if opts.MaxAttempts < 1 {
		opts.MaxAttempts = 1
	}
	if opts.backoff <= 0 {
		opts.backoff = defaultBackoff
	}
	if opts.StallTimeout < 0 {
		opts.StallTimeout = 0
	}
	if opts.UnreachableTimeout <= 0 {
		opts.UnreachableTimeout = DefaultUnreachableTimeout
	}
	if opts.minRate <= 0 {
		opts.minRate = MinTransferRate
	}
	if opts.MaxChunkSize < 0 {
		opts.MaxChunkSize = 0
	}
	r := &Registry{
		host:     host,
		endpoint: ref.Host(),
		opts:     opts,
		mode:     modeFor(host, opts.TLSVerify),
		policy:   &policy{maxAttempts: opts.MaxAttempts, base: opts.backoff},
	}
	r.reach = &reachability{host: host, bound: opts.UnreachableTimeout, debugf: r.debugf}
	r.chunkSize.Store(opts.MaxChunkSize)
	r.creds = newCredentialStore(opts.ConfigDir, opts.CredentialHelperTimeout, opts.Debugf)
	configDir := opts.ConfigDir
	if configDir == "" {
		configDir = config.Dir()
	}
	conf, err := tlsConfig(host, r.mode, []string{r.systemCertsDir(), filepath.Join(configDir, "certs.d")}, opts.Debugf)
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", host, err)
	}
	observe := func(t *http.Transport) *observer {
		return &observer{
			base:     t,
			debugf:   opts.Debugf,
			stall:    opts.StallTimeout,
			minBytes: windowBytes(opts.StallTimeout, opts.minRate),
			reach:    r.reach,
		}
	}
	base := observe(newTransport(conf, opts, 0))
	r.client = &http.Client{
		Transport: &retry.Transport{Base: base, Policy: func() retry.Policy {
			return &requestPolicy{p: r.policy, conn: connRetry{p: r.policy, reach: r.reach}}
		}},
		CheckRedirect: r.checkRedirect,
	}
	header := http.Header{}
	if opts.UserAgent != "" {
		header.Set("User-Agent", opts.UserAgent)
	}
	cache := newAuthCache()
	r.tokens = cache
	credFunc := r.creds.credentialFunc(host)
	r.auth = &auth.Client{Client: r.client, Header: header, Credential: credFunc, Cache: cache}
	uploads := observe(newTransport(conf, opts, uploadBufferSize))
	r.upload = &auth.Client{Client: &http.Client{Transport: uploads, CheckRedirect: r.checkRedirect}, Header: header, Credential: credFunc, Cache: cache}
	return r, nil
}

// Host returns the registry host as given.
func (r *Registry) Host() string { return r.host }

func (r *Registry) debugf(format string, args ...any) {
	if r.opts.Debugf != nil {
		r.opts.Debugf(format, args...)
	}
}

// Ping sends one request to /v2/. With requireLogin, a registry that wants
// credentials we do not have fails with ErrLoginRequired ("run `docker login
// <host>`"), and refused credentials with ErrUnauthorized. Without it only
// reachability (and the scheme) is checked. A server that does not answer
// like a registry gives ErrNotRegistry, an unreachable one ErrUnreachable,
// a TLS failure ErrTLS, no answer within the stall timeout ErrStalled.
//
// References: decisions.md D5, D6.
func (r *Registry) Ping(ctx context.Context, requireLogin bool) error {
	_, p, err := r.scheme(ctx)
	if err != nil {
		return err
	}
	if p == nil {
		if p, err = r.get(ctx, r.schemeName(), "/v2/"); err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return r.connError(err)
		}
	}
	switch {
	case p.status == http.StatusOK:
		if p.header.Get("Docker-Distribution-Api-Version") == "" && looksLikeHTML(p) {
			return r.notRegistry(p)
		}
		return nil
	case p.status == http.StatusUnauthorized:
		if !requireLogin {
			return nil
		}
		cred, err := r.creds.lookup(ctx, r.host)
		if err != nil {
			return err
		}
		if cred == auth.EmptyCredential {
			return r.loginRequired()
		}
		return r.checkLogin(ctx)
	case p.status == http.StatusForbidden:
		return newError(ErrUnauthorized, nil, fmt.Sprintf("registry %s refused access: GET /v2/ answered %d %s", r.host, p.status, http.StatusText(p.status)))
	case p.status >= 500:
		return fmt.Errorf("ping %s: GET /v2/ answered %d %s", r.host, p.status, http.StatusText(p.status))
	default:
		return r.notRegistry(p)
	}
}

func looksLikeHTML(p *probe) bool {
	mt, _, _ := mime.ParseMediaType(p.header.Get("Content-Type"))
	body := bytes.TrimSpace(bytes.ToLower(p.body))
	return mt == "text/html" || bytes.HasPrefix(body, []byte("<!doctype html")) || bytes.HasPrefix(body, []byte("<html"))
}

func (r *Registry) notRegistry(p *probe) error {
	return newError(ErrNotRegistry, nil, fmt.Sprintf("%s is not a registry: GET %s://%s/v2/ answered %d %s",
		r.host, r.schemeName(), r.endpoint, p.status, http.StatusText(p.status)))
}

func (r *Registry) loginRequired() error {
	return newError(ErrLoginRequired, nil, fmt.Sprintf("registry %s requires login: run `docker login %s`", r.host, r.host))
}

// checkLogin lets the auth client answer the /v2/ challenge with our
// credentials. Where tokens are shared (ShareTokens), the token asked for
// is that of the first group, which the load's first requests then use: a
// token request is a password check on Harbor, as long as a few dozen
// manifest requests.
func (r *Registry) checkLogin(ctx context.Context) error {
	var scopes []string
	if g := r.firstGroup(); g != nil {
		scopes = g.scopes
	}
	resp, err := r.getV2(ctx, scopes)
	if err != nil {
		switch classify(err) {
		case classCanceled:
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
		case classNoCredentials:
			return r.loginRequired()
		case classDenied:
			return r.wrongCredentials(err)
		case classStalled, classTLS, classNetwork, classUnreachable:
			return r.connError(err)
		}
		return fmt.Errorf("log in to %s: %s", r.host, describe(err))
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		r.debugf("registry %s: logged in", r.host)
		return nil
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return r.wrongCredentials(nil)
	default:
		return fmt.Errorf("log in to %s: GET /v2/ answered %s", r.host, resp.Status)
	}
}

// getV2 sends GET /v2/ through the auth client, which answers the
// challenge with our credentials and keeps the token it fetches for
// scopes; the answer's body is read and closed.
func (r *Registry) getV2(ctx context.Context, scopes []string) (*http.Response, error) {
	if len(scopes) > 0 {
		ctx = auth.AppendScopesForHost(ctx, r.endpoint, scopes...)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.schemeName()+"://"+r.endpoint+"/v2/", nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.auth.Do(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	return resp, nil
}

func (r *Registry) wrongCredentials(cause error) error {
	return newError(ErrUnauthorized, cause, fmt.Sprintf("wrong username or password for %s (run `docker login %s`)", r.host, r.host))
}

// Repository returns the repository name (e.g. "library/nginx").
func (r *Registry) Repository(name string) (*Repository, error) {
	ref := registry.Reference{Registry: r.host, Repository: name}
	if err := ref.ValidateRepository(); err != nil {
		return nil, fmt.Errorf("invalid repository name %q", name)
	}
	return &Repository{reg: r, name: name, ref: ref}, nil
}

// Repository is one repository of a Registry. It is safe for concurrent use.
type Repository struct {
	reg  *Registry
	name string
	ref  registry.Reference

	once   sync.Once
	repo   *remote.Repository // retrying client
	upload *remote.Repository // whole-operation retries
}

// Name returns the repository name.
func (r *Repository) Name() string { return r.name }

// scoped adds to ctx the scopes of the repository's tokens: those of its
// group (ShareTokens), else its push scope when the Registry asks tokens
// for push (RegistryOptions.PushScope).
func (r *Repository) scoped(ctx context.Context) context.Context {
	if g := r.reg.tokenGroup(r.name); g != nil {
		return auth.AppendScopesForHost(ctx, r.reg.endpoint, g.scopes...)
	}
	if !r.reg.opts.PushScope {
		return ctx
	}
	return auth.AppendRepositoryScope(ctx, r.ref, auth.ActionPull, auth.ActionPush)
}

// remotes returns the oras repositories, settling the scheme first.
func (r *Repository) remotes(ctx context.Context) (repo, upload *remote.Repository, err error) {
	plainHTTP, _, err := r.reg.scheme(ctx)
	if err != nil {
		return nil, nil, err
	}
	r.once.Do(func() {
		mk := func(c remote.Client) *remote.Repository {
			rr := &remote.Repository{
				Client:             c,
				Reference:          r.ref,
				PlainHTTP:          plainHTTP,
				ManifestMediaTypes: manifestMediaTypes,
				MaxMetadataBytes:   MaxManifestSize,
			}
			// Never let oras create referrers tag indexes: the registry
			// must end up with Hangar's tags only.
			_ = rr.SetReferrersCapability(true)
			return rr
		}
		r.repo = mk(r.reg.auth)
		r.upload = mk(r.reg.upload)
	})
	return r.repo, r.upload, nil
}

// BlobExists reports whether the repository has the blob (HEAD).
func (r *Repository) BlobExists(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	ctx = r.scoped(ctx)
	op := fmt.Sprintf("check blob %s in %s", desc.Digest, r.name)
	if err := digestcheck.Validate(desc.Digest); err != nil {
		return false, fmt.Errorf("%s: invalid digest: %w", op, err)
	}
	repo, _, err := r.remotes(ctx)
	if err != nil {
		return false, err
	}
	ok, err := repo.Blobs().Exists(ctx, desc)
	if err != nil {
		return false, r.reg.mapError(ctx, op, err, false)
	}
	return ok, nil
}

// PushBlob uploads a blob, calling open for a fresh reader of its bytes on
// each attempt; retryable failures (5xx, 429, resets, cut uploads) are
// retried with backoff, and a stalled transfer fails with ErrStalled. A
// blob larger than the Registry's chunk size goes in chunks (see
// RegistryOptions.MaxChunkSize).
//
// The bytes are checked against desc while streaming: a mismatch fails
// with ErrDigestMismatch before the registry can commit them. Errors from
// open or from reading are returned in the chain and not retried.
func (r *Repository) PushBlob(ctx context.Context, desc ocispec.Descriptor, open func() (io.ReadCloser, error)) error {
	ctx = r.scoped(ctx)
	op := fmt.Sprintf("push blob %s to %s", desc.Digest, r.name)
	if err := validateBlob(desc, open); err != nil {
		return opError(op, err)
	}
	_, up, err := r.remotes(ctx)
	if err != nil {
		return err
	}
	chunked := &chunkedUpload{}
	return r.reg.retry(ctx, op, func(ctx context.Context) error {
		if r.useChunks(desc) {
			_, err := r.pushChunked(ctx, desc, open, "", chunked)
			return err
		}
		body := newUploadBody(desc, open)
		defer body.Close()
		return r.monolithicError(up.Push(ctx, desc, body), body, desc)
	})
}

// useChunks reports whether desc is uploaded in chunks.
func (r *Repository) useChunks(desc ocispec.Descriptor) bool {
	size := r.reg.chunkSize.Load()
	return size > 0 && desc.Size > size
}

// monolithicError is the error of a one-request upload attempt: the
// content error when the body met one, errRetryNow (in chunks) for a 413.
func (r *Repository) monolithicError(err error, body *uploadBody, desc ocispec.Descriptor) error {
	if err == nil {
		return nil
	}
	if cerr := body.contentErr(); cerr != nil {
		return cerr
	}
	if classify(err) == classTooLarge {
		return r.reg.tooLarge(err, desc.Size)
	}
	return err
}

// MountBlob mounts a blob from another repository of the same registry;
// when the registry declines, it uploads it with open instead. It reports
// whether the blob was mounted (true: the registry answered 201 to the
// mount) or uploaded (false). Retries and errors are as PushBlob's.
func (r *Repository) MountBlob(ctx context.Context, desc ocispec.Descriptor, from string, open func() (io.ReadCloser, error)) (mounted bool, err error) {
	ctx = r.scoped(ctx)
	op := fmt.Sprintf("mount blob %s from %s to %s", desc.Digest, from, r.name)
	if err := validateBlob(desc, open); err != nil {
		return false, opError(op, err)
	}
	if from == "" || from == r.name {
		return false, r.PushBlob(ctx, desc, open)
	}
	if err := (registry.Reference{Registry: r.reg.host, Repository: from}).ValidateRepository(); err != nil {
		return false, fmt.Errorf("%s: invalid repository name %q", op, from)
	}
	_, up, err := r.remotes(ctx)
	if err != nil {
		return false, err
	}
	chunked := &chunkedUpload{}
	err = r.reg.retry(ctx, op, func(ctx context.Context) error {
		if r.useChunks(desc) {
			m, err := r.pushChunked(ctx, desc, open, from, chunked)
			mounted = m
			return err
		}
		body := newUploadBody(desc, open)
		defer body.Close()
		uploaded := false
		err := up.Mount(ctx, desc, from, func() (io.ReadCloser, error) {
			uploaded = true
			return body, nil
		})
		mounted = err == nil && !uploaded
		return r.monolithicError(err, body, desc)
	})
	if err != nil {
		return false, err
	}
	r.reg.debugf("%s: mounted=%t", op, mounted)
	return mounted, nil
}

func validateBlob(desc ocispec.Descriptor, open func() (io.ReadCloser, error)) error {
	if err := digestcheck.Validate(desc.Digest); err != nil {
		return fmt.Errorf("invalid digest: %w", err)
	}
	if desc.Size < 0 {
		return fmt.Errorf("invalid size %d", desc.Size)
	}
	if open == nil {
		return errors.New("no content")
	}
	return nil
}

// ManifestExists reports whether the repository has the manifest (HEAD
// by digest): false when the registry answers 404.
func (r *Repository) ManifestExists(ctx context.Context, desc ocispec.Descriptor) (bool, error) {
	ctx = r.scoped(ctx)
	op := fmt.Sprintf("check manifest %s in %s", desc.Digest, r.name)
	if err := digestcheck.Validate(desc.Digest); err != nil {
		return false, fmt.Errorf("%s: invalid digest: %w", op, err)
	}
	repo, _, err := r.remotes(ctx)
	if err != nil {
		return false, err
	}
	ok, err := repo.Manifests().Exists(ctx, desc)
	if err != nil {
		if classify(err) == classNotFound {
			return false, nil
		}
		return false, r.reg.mapError(ctx, op, err, false)
	}
	return ok, nil
}

// PushManifest pushes manifest bytes (exactly as given) with desc's media
// type, to reference (a tag), or by digest when reference is empty. body
// must match desc's size and digest (else ErrDigestMismatch) and be at
// most MaxManifestSize. The request is retried by the transport (the body
// is rewound). A 404 (e.g. a missing Harbor project) is a plain error, not
// ErrNotFound.
func (r *Repository) PushManifest(ctx context.Context, desc ocispec.Descriptor, body []byte, reference string) error {
	ctx = r.scoped(ctx)
	target := reference
	if target == "" {
		target = desc.Digest.String()
	}
	op := fmt.Sprintf("push manifest %s to %s:%s", desc.Digest, r.name, target)
	if reference != "" {
		ref := r.ref
		ref.Reference = reference
		if err := ref.ValidateReferenceAsTag(); err != nil {
			return fmt.Errorf("%s: invalid tag %q", op, reference)
		}
	}
	if err := digestcheck.Validate(desc.Digest); err != nil {
		return fmt.Errorf("%s: invalid digest: %w", op, err)
	}
	if desc.MediaType == "" {
		return fmt.Errorf("%s: no media type", op)
	}
	if len(body) > MaxManifestSize {
		return fmt.Errorf("%s: manifest of %d bytes is larger than %d", op, len(body), MaxManifestSize)
	}
	if int64(len(body)) != desc.Size || desc.Digest.Algorithm().FromBytes(body) != desc.Digest {
		return opError(op, newError(ErrDigestMismatch, nil, fmt.Sprintf("manifest bytes (%d, %s) do not match the descriptor (%d)",
			len(body), desc.Digest.Algorithm().FromBytes(body), desc.Size)))
	}
	repo, _, err := r.remotes(ctx)
	if err != nil {
		return err
	}
	if reference == "" {
		err = repo.Manifests().Push(ctx, desc, bytes.NewReader(body))
	} else {
		err = repo.Manifests().PushReference(ctx, desc, bytes.NewReader(body), reference)
	}
	if err != nil {
		return r.reg.mapError(ctx, op, err, false)
	}
	return nil
}

// ResolveManifest returns the descriptor of the manifest at reference (tag
// or digest) with a HEAD request. A reference that does not exist gives an
// error wrapping ErrNotFound; any other failure is returned as such.
func (r *Repository) ResolveManifest(ctx context.Context, reference string) (ocispec.Descriptor, error) {
	ctx = r.scoped(ctx)
	op := fmt.Sprintf("resolve manifest %s:%s", r.name, reference)
	repo, _, err := r.remotes(ctx)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	desc, err := repo.Manifests().Resolve(ctx, reference)
	if err != nil {
		return ocispec.Descriptor{}, r.reg.mapError(ctx, op, err, true)
	}
	return desc, nil
}

// FetchManifest fetches the manifest at reference (tag or digest), of at
// most MaxManifestSize bytes. A tag or digest that does not exist gives an
// error wrapping ErrNotFound; any other failure (401, 5xx after retries,
// timeouts) is returned as such and must not be taken for absence. An
// answer cut while its body is read is retried.
//
// References: decisions.md D4.
func (r *Repository) FetchManifest(ctx context.Context, reference string) (ocispec.Descriptor, []byte, error) {
	ctx = r.scoped(ctx)
	op := fmt.Sprintf("fetch manifest %s:%s", r.name, reference)
	if d, err := digest.Parse(reference); err == nil {
		op = fmt.Sprintf("fetch manifest %s@%s", r.name, d)
	}
	repo, _, err := r.remotes(ctx)
	if err != nil {
		return ocispec.Descriptor{}, nil, err
	}
	var (
		desc ocispec.Descriptor
		body []byte
	)
	err = r.reg.retry(ctx, op, func(ctx context.Context) error {
		d, rc, err := repo.FetchReference(ctx, reference)
		if err != nil {
			// The transport retried what was worth it.
			return newError(errFinal, err, describe(err))
		}
		defer rc.Close()
		if d.Size > MaxManifestSize {
			return newError(errFinal, nil, fmt.Sprintf("manifest of %d bytes is larger than %d", d.Size, MaxManifestSize))
		}
		b, err := content.ReadAll(rc, d)
		if err != nil {
			return err // a body cut while oras read it is retried
		}
		desc, body = d, b
		return nil
	})
	if err != nil {
		if classify(err) == classNotFound && !errors.Is(err, ErrNotFound) {
			return ocispec.Descriptor{}, nil, newError(ErrNotFound, err, op+": "+ErrNotFound.Error())
		}
		return ocispec.Descriptor{}, nil, err
	}
	return desc, body, nil
}
