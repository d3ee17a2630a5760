package loader

import (
	"errors"
	"fmt"
	"time"

	"github.com/cnrancher/docker-hangar/oras"
)

// Options configures a load or a validation. Field names follow the
// `hangar load` flags they come from; DefaultOptions holds their defaults,
// which the command layer shows as the flag defaults.
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
	// Jobs bounds the images whose manifests are pushed at once (-j), 1-20;
	// they take their turns in plan order. An image's index push does not
	// hold its turn, unless another image of the plan writes one of its
	// tags.
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
	// IndexAttempts bounds the pushes of one index when another writer
	// changes the tag at the same time (see commitIndex).
	IndexAttempts int
	// Registry configures registry access (credentials, TLS, retries).
	Registry oras.RegistryOptions
	// Events receives what happens during the load; nil discards it.
	Events EventHandler
	// Debug sends Debug events.
	Debug bool
}

// Bounds of Options.Jobs, as Hangar's.
const (
	MinJobs = 1
	MaxJobs = 20
)

// ProgressInterval is the least time between two ImageProgress events of
// one image, except when a blob completes.
const ProgressInterval = 200 * time.Millisecond

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
		IndexAttempts:   5,
		Registry:        oras.DefaultRegistryOptions(),
	}
}

// ErrOptions means the options cannot work; nothing was done.
var ErrOptions = errors.New("invalid options")

// Check reports options that cannot work, before anything is read or
// written: no source or destination, a negative timeout, an empty
// architecture or OS filter, jobs out of range. Callers clamp Jobs first
// if they prefer Hangar's warning.
func (o Options) Check() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrOptions, fmt.Sprintf(format, args...))
	}
	switch {
	case o.Source == "":
		return bad("no source archive")
	case o.Destination == "":
		return bad("no destination registry")
	case o.Timeout < 0:
		return bad("timeout %s is negative (0 means none)", o.Timeout)
	case o.Jobs < MinJobs || o.Jobs > MaxJobs:
		return bad("jobs %d is not between %d and %d", o.Jobs, MinJobs, MaxJobs)
	}
	for _, f := range []struct {
		name string
		list []string
	}{{"arch", o.Arch}, {"os", o.OS}} {
		if len(f.list) == 0 {
			return bad("the %s list is empty", f.name)
		}
		for _, v := range f.list {
			if v == "" {
				return bad("the %s list %q has an empty item", f.name, f.list)
			}
		}
	}
	if _, _, err := splitDestination(o.Destination); err != nil {
		return err
	}
	return nil
}
