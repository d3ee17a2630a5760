package archive

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxLayoutSize bounds the size of a per-manifest <hex>/index.json.
const maxLayoutSize = 1 << 20

// CheckLayout checks the per-manifest OCI layout that Hangar writes beside
// the manifest with digest d (hangar-load.md 1.3): <hex>/oci-layout must
// exist, and <hex>/index.json must be an OCI index with exactly one
// descriptor, whose digest is d and whose size is the size of the blob d
// when the archive holds it. Errors wrap ErrInvalidLayout (or
// ErrInvalidDigest, ErrUnsupportedDigest for d itself).
//
// The layout is informational: everything needed to load an image comes
// from the top-level index and the blobs, so a loader may only warn about
// it.
func (r *Reader) CheckLayout(d digest.Digest) error {
	alg, enc, ok := strings.Cut(string(d), ":")
	if !ok || d.Validate() != nil {
		return fmt.Errorf("layout of %s: %w", quoteShort(string(d)), ErrInvalidDigest)
	}
	if alg != string(digest.SHA256) {
		return fmt.Errorf("layout of %s: %w %s", d, ErrUnsupportedDigest, alg)
	}
	layoutName, name := enc+"/oci-layout", enc+"/index.json"
	layout, index, err := r.layoutEntries(layoutName, name)
	if err != nil {
		return fmt.Errorf("layout of %s: %w: read the zip directory: %w", d, ErrInvalidLayout, err)
	}
	if layout == nil {
		return fmt.Errorf("layout of %s: %w: no %s", d, ErrInvalidLayout, layoutName)
	}
	if index == nil {
		return fmt.Errorf("layout of %s: %w: no %s", d, ErrInvalidLayout, name)
	}
	if index.usize > maxLayoutSize {
		return fmt.Errorf("layout of %s: %w: %s is %d bytes", d, ErrInvalidLayout, name, index.usize)
	}
	data, err := r.readEntry(index)
	if err != nil {
		return fmt.Errorf("layout of %s: %w: read %s: %w", d, ErrInvalidLayout, name, err)
	}
	var idx ocispec.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return fmt.Errorf("layout of %s: %w: %s: %w", d, ErrInvalidLayout, name, err)
	}
	if len(idx.Manifests) != 1 {
		return fmt.Errorf("layout of %s: %w: %s has %d descriptors, want 1", d, ErrInvalidLayout, name, len(idx.Manifests))
	}
	desc := idx.Manifests[0]
	if desc.Digest != d {
		return fmt.Errorf("layout of %s: %w: %s names %s", d, ErrInvalidLayout, name, quoteShort(string(desc.Digest)))
	}
	if size, err := r.Size(d); err == nil && size != desc.Size {
		return fmt.Errorf("layout of %s: %w: %s gives size %d, the blob has %d bytes", d, ErrInvalidLayout, name, desc.Size, size)
	}
	return nil
}

// layoutEntries reads the zip directory again (the reader keeps the blob
// entries only) for the first entries named layout and index.
func (r *Reader) layoutEntries(layout, index string) (l, i *zipEntry, err error) {
	err = readDirectory(r.f, r.size, func(name []byte, e *zipEntry) {
		switch {
		case l == nil && string(name) == layout:
			l = new(*e)
		case i == nil && string(name) == index:
			i = new(*e)
		}
	})
	return l, i, err
}
