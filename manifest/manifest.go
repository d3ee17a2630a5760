// Package manifest builds the OCI index that `hangar load` pushes to an
// image's main tag: it merges the platform manifests being loaded into what
// the destination tag already holds, by Hangar v1.9.4's rules, and
// serialises the result exactly as Hangar does so that the digests agree.
//
// References: hangar-load.md sections 2.9 and 2.10
// (pkg/image/manifest/builder.go and struct.go in cnrancher/hangar).
package manifest

import (
	"errors"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types this package recognises at a destination tag.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	// MediaTypeHelmConfig is the config media type of Helm charts, and of the
	// files that `hangar archive store file` writes: such artifacts are
	// pushed to the main tag and get no index.
	MediaTypeHelmConfig = "application/vnd.cncf.helm.config.v1+json"
)

// Annotation keys of BuildKit attestation manifests.
const (
	AnnotationReferenceDigest = "vnd.docker.reference.digest"
	AnnotationReferenceType   = "vnd.docker.reference.type"
)

// ErrEmpty is returned by Merge when the resulting index would have no
// entries (Hangar: "some images failed to load").
var ErrEmpty = errors.New("no manifests to index")

// errNotImplemented marks stubs.
var errNotImplemented = errors.New("not implemented")

// Existing is what a destination tag holds before a load.
type Existing struct {
	// MediaType is the media type of the manifest at the tag.
	MediaType string
	// Manifests holds the entries of an OCI index or Docker manifest list
	// (entries of a Docker list carry no annotations); it is empty for a
	// single manifest.
	Manifests []ocispec.Descriptor
}

// ParseExisting parses the manifest a destination tag holds.
func ParseExisting(mediaType string, body []byte) (*Existing, error) {
	return nil, errNotImplemented
}

// MergeOptions tunes Merge.
type MergeOptions struct {
	// Overwrite ignores what the destination tag holds (--overwrite).
	Overwrite bool
}

// DefaultMergeOptions returns the options `hangar load` uses by default.
func DefaultMergeOptions() MergeOptions { return MergeOptions{} }

// Result is the outcome of Merge.
type Result struct {
	// Index is the merged index.
	Index ocispec.Index
	// Bytes is Index serialised as Hangar does (2-space indented JSON).
	Bytes []byte
	// Unchanged reports that the destination already holds an equivalent
	// OCI index, so no push is needed.
	Unchanged bool
}

// Merge adds the loaded manifests (in archive order) to what the destination
// tag holds (nil when the tag does not exist), by Hangar's builder rules,
// and serialises the result.
func Merge(existing *Existing, loaded []ocispec.Descriptor, opts MergeOptions) (Result, error) {
	return Result{}, errNotImplemented
}

// Marshal serialises an index as Hangar does: 2-space indented JSON with
// schemaVersion, mediaType and manifests, no trailing newline.
func Marshal(index ocispec.Index) ([]byte, error) { return nil, errNotImplemented }

// IsAttestation reports whether an entry is a BuildKit attestation
// (Hangar's SLSA entry): platform unknown/unknown with both reference
// annotations set.
func IsAttestation(desc ocispec.Descriptor) bool { return false }

// PlatformTag returns the tag Hangar gives a platform manifest of the image
// tagged tag: "<tag>-<os>-<arch><variant>", with the OS version when set
// ("<tag>-<os>-<osVersion>-<arch><variant>"), or "<tag>-<first 16 hex of
// the digest>" when arch or os is empty or "unknown". platform is the one
// read from the manifest's config.
func PlatformTag(tag string, platform ocispec.Platform, desc ocispec.Descriptor) string {
	return ""
}
