package loader

import (
	"time"

	"github.com/cnrancher/docker-hangar/oras"
)

// Options configures a load or a validation. Field names follow the
// `hangar load` flags they come from.
//
// References: hangar-load.md section 2.1, decisions.md D2.
type Options struct {
	// Source is the archive path (-s).
	Source string
	// Destination is the registry, optionally with a path prefix (-d).
	Destination string
	// ImageList is the image-list path (-f); empty loads every entry.
	ImageList string
	// Arch and OS filter platform manifests (-a, --os).
	Arch []string
	OS   []string
	// Jobs bounds the images whose manifests are pushed at once (-j), 1-20.
	Jobs int
	// Project overrides the destination project (--project).
	Project string
	// SourceRegistry replaces the registry of image-list lines when looking
	// them up in the archive (--source-registry).
	SourceRegistry string
	// Provenance loads BuildKit attestations (--provenance).
	Provenance bool
	// Overwrite ignores what the destination tag holds (--overwrite).
	Overwrite bool
	// PlatformTags pushes Hangar's per-platform tags (T-linux-amd64, ...).
	PlatformTags bool
	// SkipLogin skips the login probe (--skip-login).
	SkipLogin bool
	// DryRun plans the load and reads the registry, but writes nothing.
	DryRun bool
	// Timeout fails a transfer that makes no progress for this long (0:
	// never).
	Timeout time.Duration
	// BlobConcurrency bounds blob transfers in flight across the load.
	BlobConcurrency int
	// Registry configures registry access (credentials, TLS, retries).
	Registry oras.RegistryOptions
	// Log receives Hangar-style log lines; nil discards them.
	Log *Logger
	// Progress, when set, is told about transfers as they happen.
	Progress Progress
}

// DefaultOptions returns `hangar load`'s defaults.
func DefaultOptions() Options {
	return Options{
		Arch:            []string{"amd64", "arm64"},
		OS:              []string{"linux"},
		Jobs:            1,
		Provenance:      true,
		PlatformTags:    true,
		Timeout:         10 * time.Minute,
		BlobConcurrency: 8,
		Registry:        oras.DefaultRegistryOptions(),
	}
}

// Progress is told about a load as it happens. Implementations must be safe
// for concurrent use.
type Progress interface {
	// LoadStarted is called once the registry answered, before any image.
	LoadStarted(plan *Plan)
	// ImageStarted is called when an image starts loading.
	ImageStarted(img *Image)
	// BlobBytes is called as blob bytes are uploaded (n may repeat bytes of
	// a retried upload).
	BlobBytes(img *Image, n int64)
	// ImageDone is called when an image is loaded, skipped or failed.
	ImageDone(img *Image, res *ImageResult)
}
