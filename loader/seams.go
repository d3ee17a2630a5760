package loader

import (
	"context"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnrancher/docker-hangar/archive"
	"github.com/cnrancher/docker-hangar/oras"
)

// Source is what a load reads from an archive; *archive.Reader implements
// it. Blob reads must verify the bytes against their digest (a mismatch
// fails with an error wrapping archive.ErrDigestMismatch).
type Source interface {
	// Entries calls fn with each entry of the archive's index.json, in
	// order, stopping at (and returning) fn's first error.
	Entries(fn func(archive.Image) error) error
	// Stat returns the stored size of a blob and its number, below Blobs
	// (archive.ErrBlobNotFound when the archive lacks it).
	Stat(d digest.Digest) (id int32, size int64, err error)
	// Blobs returns the number of distinct blobs of the archive.
	Blobs() int
	// Blob returns the digest and size of blob number id.
	Blob(id int32) (digest.Digest, int64, error)
	// ReadBlob reads a whole blob of at most limit bytes.
	ReadBlob(d digest.Digest, limit int64) ([]byte, error)
	// Open returns a verified stream of a blob's bytes.
	Open(d digest.Digest) (io.ReadCloser, error)
}

// Registry is the destination of a load; Connect returns the real one,
// tests may give their own to Run.
type Registry interface {
	// Repository returns a repository of the registry.
	Repository(name string) (Repository, error)
	// IsHarbor reports whether the registry is a Harbor (project API).
	IsHarbor(ctx context.Context) (bool, error)
	// HarborProjectExists reports whether a Harbor project exists.
	HarborProjectExists(ctx context.Context, project string) (bool, error)
	// EnsureHarborProject creates a Harbor project unless it exists.
	EnsureHarborProject(ctx context.Context, project string) (created bool, err error)
	// CheckPushAccess reports credentials that may not push to a
	// repository (nil when it cannot tell), before anything is uploaded.
	CheckPushAccess(ctx context.Context, repository string) error
}

// Repository is one destination repository, as *oras.Repository offers it.
//
// References: oras.Repository for the contract of each method.
type Repository interface {
	Name() string
	BlobExists(ctx context.Context, desc ocispec.Descriptor) (bool, error)
	PushBlob(ctx context.Context, desc ocispec.Descriptor, open func() (io.ReadCloser, error)) error
	MountBlob(ctx context.Context, desc ocispec.Descriptor, from string, open func() (io.ReadCloser, error)) (mounted bool, err error)
	ManifestExists(ctx context.Context, desc ocispec.Descriptor) (bool, error)
	PushManifest(ctx context.Context, desc ocispec.Descriptor, body []byte, reference string) error
	ResolveManifest(ctx context.Context, reference string) (ocispec.Descriptor, error)
	FetchManifest(ctx context.Context, reference string) (ocispec.Descriptor, []byte, error)
}

// orasRegistry adapts *oras.Registry to Registry.
type orasRegistry struct{ *oras.Registry }

func (r orasRegistry) Repository(name string) (Repository, error) {
	return r.Registry.Repository(name)
}

// connect returns the registry of a plan, probed as Hangar does: with the
// login check unless opts.SkipLogin. The probe also settles the scheme
// (HTTPS, or plain HTTP where allowed). Debug lines of the registry client
// become Debug events when opts.Debug is set.
func connect(ctx context.Context, plan *Plan, opts Options, em *emitter, validate bool) (Registry, error) {
	ropts := opts.Registry
	ropts.StallTimeout = opts.Timeout
	ropts.PushScope = !opts.DryRun && !validate
	if opts.Debug && ropts.Debugf == nil && em.enabled() {
		ropts.Debugf = func(format string, args ...any) { em.emit(Debug{Message: fmt.Sprintf(format, args...)}) }
	}
	reg, err := oras.NewRegistry(plan.Host, ropts)
	if err != nil {
		return nil, err
	}
	repos := make([]string, 0, len(plan.Images))
	for _, img := range plan.Images {
		if img.Err == nil {
			repos = append(repos, img.Repository)
		}
	}
	reg.ShareTokens(repos) // before Ping: its login check fetches the first group's token
	if err := reg.Ping(ctx, !opts.SkipLogin); err != nil {
		return nil, err
	}
	return orasRegistry{reg}, nil
}
