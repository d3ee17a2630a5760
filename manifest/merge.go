package manifest

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Merge adds the loaded manifests (in archive order) to what the destination
// tag holds (nil when the tag does not exist), by Hangar's builder rules,
// and serialises the result.
//
// Without opts.Overwrite the existing entries are added first, in their
// order (without annotations when the tag holds a Docker list), then the
// loaded ones; with it the existing entries are ignored.
// Each Add removes the entry it replaces (same platform, where an existing
// arm64 entry matches any arm64 variant; the attestation with the same
// annotations; the entry with the same digest and platform) and appends the
// new one, so a replaced entry moves to the end. Attestation-like entries
// (arch or os "unknown") whose vnd.docker.reference.digest names no
// remaining platform entry are then dropped.
//
// Loaded descriptors are the index entries of the manifests: media type,
// digest and size as pushed, the platform and annotations of the archive
// item (hangar-load.md 1.4, 2.8 step 6); one without a platform is given an
// empty one, as Hangar always writes a platform. Merge returns
// ErrEmpty when there is nothing to index, before or after that drop.
// Result.Unchanged is set, and the tag must not be pushed, when Hangar would
// skip the push: not Overwrite, the tag holds an OCI index (a Docker list is
// always rewritten) with at least one entry and as many entries as the
// merged builder, and every loaded entry equals one of them exactly (digest,
// platform including the variant, and annotations when either side has
// some).
//
// References: hangar-load.md section 2.10; decisions.md D3.
func Merge(existing *Existing, loaded []ocispec.Descriptor, opts MergeOptions) (Result, error) {
	var b builder
	if existing != nil && !opts.Overwrite {
		for _, d := range existing.Manifests {
			d = normalize(d, false)
			if existing.MediaType == MediaTypeDockerManifestList {
				d.Annotations = nil
			}
			b.add(d)
		}
	}
	news := make([]ocispec.Descriptor, 0, len(loaded))
	for _, d := range loaded {
		n := normalize(d, true)
		news = append(news, n)
		b.add(n)
	}
	if len(b.entries) == 0 {
		return Result{}, ErrEmpty
	}

	unchanged := !opts.Overwrite && isUnchanged(existing, news, len(b.entries))

	entries := dropOrphanAttestations(b.entries)
	if len(entries) == 0 && !unchanged {
		return Result{}, fmt.Errorf("%w: every entry is an attestation of a missing manifest", ErrEmpty)
	}
	index := newIndex(entries)
	body, err := marshal(index)
	if err != nil {
		return Result{}, err
	}
	return Result{Index: index, Bytes: body, Unchanged: unchanged}, nil
}

func marshal(index ocispec.Index) ([]byte, error) {
	body, err := json.MarshalIndent(index, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("marshal index: %w", err)
	}
	return body, nil
}

// newIndex returns the index Hangar pushes for entries, which must be
// normalised already.
func newIndex(entries []ocispec.Descriptor) ocispec.Index {
	if entries == nil {
		entries = []ocispec.Descriptor{}
	}
	return ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: entries,
	}
}

// normalize returns a deep copy of d reduced to what Hangar's builder keeps:
// media type, digest, size, non-empty annotations and the platform. With
// forcePlatform a missing platform becomes an empty one.
func normalize(d ocispec.Descriptor, forcePlatform bool) ocispec.Descriptor {
	n := ocispec.Descriptor{
		MediaType: d.MediaType,
		Digest:    d.Digest,
		Size:      d.Size,
	}
	if len(d.Annotations) > 0 {
		n.Annotations = maps.Clone(d.Annotations)
	}
	switch {
	case d.Platform != nil:
		p := *d.Platform
		p.OSFeatures = slices.Clone(p.OSFeatures)
		n.Platform = &p
	case forcePlatform:
		n.Platform = &ocispec.Platform{}
	}
	return n
}

// builder is Hangar's manifest Builder: an ordered list of index entries.
type builder struct {
	entries []ocispec.Descriptor
}

// add applies Hangar's Add rules to n, which must be normalised.
//
// References: hangar-load.md section 2.10 ("Add(new)").
func (b *builder) add(n ocispec.Descriptor) {
	// 1. The first platform entry with n's platform.
	b.removeFirst(func(e ocispec.Descriptor) bool {
		return !isSLSAEntry(e) && samePlatform(e.Platform, n.Platform)
	})
	// 2. The first attestation with n's annotations.
	if len(n.Annotations) > 0 {
		b.removeFirst(func(e ocispec.Descriptor) bool {
			return isSLSAEntry(e) && maps.Equal(e.Annotations, n.Annotations)
		})
	}
	// 3. The first platform entry with n's digest, if its platform matches.
	b.removeFirst(func(e ocispec.Descriptor) bool {
		return !isSLSAEntry(e) && e.Digest == n.Digest && samePlatform(e.Platform, n.Platform)
	})
	// 4. n goes to the end.
	b.entries = append(b.entries, n)
}

func (b *builder) removeFirst(match func(ocispec.Descriptor) bool) {
	if i := slices.IndexFunc(b.entries, match); i >= 0 {
		b.entries = slices.Delete(b.entries, i, i+1)
	}
}

// samePlatform is Hangar's platform equality between an entry already
// present and a new one: arch, os, os.version and os.features (in order)
// equal, and the variants equal unless the present entry is arm64. An entry
// without a platform matches nothing.
func samePlatform(present, n *ocispec.Platform) bool {
	if present == nil || n == nil {
		return false
	}
	return present.Architecture == n.Architecture &&
		present.OS == n.OS &&
		present.OSVersion == n.OSVersion &&
		slices.Equal(present.OSFeatures, n.OSFeatures) &&
		(present.Architecture == "arm64" || present.Variant == n.Variant)
}

// isUnchanged reports whether Hangar skips the push: the tag holds an OCI
// index with at least one entry and count entries, and each loaded entry is
// identical to one of them.
//
// References: hangar-load.md section 2.10 ("The push is skipped").
func isUnchanged(existing *Existing, loaded []ocispec.Descriptor, count int) bool {
	if existing == nil || existing.MediaType != ocispec.MediaTypeImageIndex ||
		len(existing.Manifests) == 0 || len(existing.Manifests) != count {
		return false
	}
	for _, n := range loaded {
		if !slices.ContainsFunc(existing.Manifests, func(e ocispec.Descriptor) bool { return identical(e, n) }) {
			return false
		}
	}
	return true
}

// identical is Hangar's entry equality for the skip-push check: same digest,
// same platform including the variant, and the same annotations whenever
// either side has some.
func identical(a, b ocispec.Descriptor) bool {
	if a.Digest != b.Digest || a.Platform == nil || b.Platform == nil {
		return false
	}
	if (len(a.Annotations) > 0 || len(b.Annotations) > 0) && !maps.Equal(a.Annotations, b.Annotations) {
		return false
	}
	pa, pb := a.Platform, b.Platform
	return pa.Architecture == pb.Architecture &&
		pa.OS == pb.OS &&
		pa.Variant == pb.Variant &&
		pa.OSVersion == pb.OSVersion &&
		slices.Equal(pa.OSFeatures, pb.OSFeatures)
}

// isSLSAEntry reports whether an index entry is what Hangar's builder
// treats as an attestation when replacing entries (its SLSA entry):
// platform unknown/unknown with both reference annotations set and
// non-empty.
//
// References: hangar-load.md sections 1.7 and 2.10 ("SLSA entry";
// Image.IsSLSAProvenance in cnrancher/hangar).
func isSLSAEntry(desc ocispec.Descriptor) bool {
	p := desc.Platform
	return p != nil && p.Architecture == PlatformUnknown && p.OS == PlatformUnknown &&
		desc.Annotations[AnnotationReferenceDigest] != "" &&
		desc.Annotations[AnnotationReferenceType] != ""
}

// attestationLike reports an entry Hangar drops when its subject is gone:
// arch or os "unknown".
func attestationLike(d ocispec.Descriptor) bool {
	return d.Platform != nil &&
		(d.Platform.Architecture == PlatformUnknown || d.Platform.OS == PlatformUnknown)
}

// dropOrphanAttestations removes the attestation-like entries whose
// vnd.docker.reference.digest is not the digest of a platform entry.
//
// References: hangar-load.md section 2.10 ("Before pushing").
func dropOrphanAttestations(entries []ocispec.Descriptor) []ocispec.Descriptor {
	subjects := make(map[digest.Digest]bool, len(entries))
	for _, e := range entries {
		if !attestationLike(e) {
			subjects[e.Digest] = true
		}
	}
	return slices.DeleteFunc(entries, func(e ocispec.Descriptor) bool {
		return attestationLike(e) && !subjects[digest.Digest(e.Annotations[AnnotationReferenceDigest])]
	})
}
