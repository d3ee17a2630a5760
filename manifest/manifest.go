// Package manifest builds the OCI index that `hangar load` pushes to an
// image's main tag: it merges the platform manifests being loaded into what
// the destination tag already holds, by Hangar v1.9.4's rules, and
// serialises the result exactly as Hangar does so that the digests agree.
//
// It also names the per-platform tags Hangar pushes next to the index
// (PlatformTag) and says which manifests are attestations (IsAttestation).
//
// References: hangar-load.md sections 2.8, 2.9 and 2.10
// (pkg/image/manifest/builder.go and struct.go in cnrancher/hangar), and
// decisions.md D3 and D4.
package manifest

import (
	"errors"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types this package recognises at a destination tag, besides the
// OCI ones of ocispec.
const (
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
	// MediaTypeDockerManifestSchema1 and MediaTypeDockerManifestSchema1Signed
	// are the legacy Docker schema 1 manifests; a tag holding one is treated
	// as a single manifest and replaced by an index.
	MediaTypeDockerManifestSchema1       = "application/vnd.docker.distribution.manifest.v1+json"
	MediaTypeDockerManifestSchema1Signed = "application/vnd.docker.distribution.manifest.v1+prettyjws"
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

// PlatformUnknown is the architecture and OS BuildKit gives attestation
// manifests in an index.
const PlatformUnknown = "unknown"

// Errors returned by this package; test with errors.Is.
var (
	// ErrEmpty is returned by Merge when the resulting index would have no
	// entries (Hangar: "some images failed to load").
	//
	// References: hangar-load.md section 2.10 ("After adding").
	ErrEmpty = errors.New("no manifests to index")

	// ErrUnsupportedMediaType is returned by ParseExisting for a media type
	// that is neither an index/list nor an image manifest.
	ErrUnsupportedMediaType = errors.New("unsupported manifest media type")

	// ErrInvalidManifest is returned by ParseExisting for a body that is not
	// a JSON object of the expected shape.
	ErrInvalidManifest = errors.New("invalid manifest")
)

// Existing is what a destination tag holds before a load.
type Existing struct {
	// MediaType is the media type of the manifest at the tag.
	MediaType string
	// Manifests holds the entries of an OCI index or Docker manifest list
	// (entries of a Docker list carry no annotations); it is empty for a
	// single manifest.
	Manifests []ocispec.Descriptor
}

// HasDigest reports whether an entry of the index or list at the tag has the
// digest d: Hangar then skips copying that platform manifest. It is false
// for a nil Existing and for a single manifest.
//
// References: hangar-load.md section 2.8 step 6 ("Skip-copy").
func (e *Existing) HasDigest(d digest.Digest) bool {
	if e == nil {
		return false
	}
	for _, m := range e.Manifests {
		if m.Digest == d {
			return true
		}
	}
	return false
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
	// Index is the merged index, as serialised in Bytes.
	Index ocispec.Index
	// Bytes is Index serialised as Hangar does (2-space indented JSON, no
	// trailing newline); its sha256 is the digest the main tag gets.
	Bytes []byte
	// Unchanged reports that the destination already holds an equivalent
	// OCI index, so Hangar does not push: the tag must be left as it is.
	// Index and Bytes are still filled with what would have been pushed.
	Unchanged bool
}

// Digest returns the digest of Bytes, i.e. of the main tag once pushed.
func (r Result) Digest() digest.Digest { return digest.FromBytes(r.Bytes) }

// AttestationManifest is the vnd.docker.reference.type of BuildKit
// attestation manifests.
const AttestationManifest = "attestation-manifest"

// IsAttestation reports whether a manifest is a BuildKit attestation as
// `hangar load` decides when it selects and names manifests: platform
// unknown/unknown and a vnd.docker.reference.type of
// "attestation-manifest". The loader applies it to the archive item (to
// select the attestations of selected platforms) and to the platform of the
// manifest's config (to tag it <repo>:sha256-<subject>.att).
//
// The index builder has rules of its own for entries of an index (the SLSA
// entry of Merge, and the attestation-like entries it drops); they are
// unexported in this package, next to the builder.
//
// References: hangar-load.md sections 1.7, 2.8 and 2.9
// (archive.ImageSpec.IsAttestations and private.IsAttestations in
// cnrancher/hangar).
func IsAttestation(p ocispec.Platform, annotations map[string]string) bool {
	return p.Architecture == PlatformUnknown && p.OS == PlatformUnknown &&
		annotations[AnnotationReferenceType] == AttestationManifest
}
