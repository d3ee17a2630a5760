package manifest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// ParseExisting parses the manifest a destination tag holds. mediaType is
// the one the registry reported (parameters such as "; charset=utf-8" are
// ignored); when it is empty, the body's mediaType field decides, and a body
// without one is taken for an OCI index if it has "manifests" and for an OCI
// image manifest if it has "config".
//
// An OCI index or Docker manifest list yields its entries with their media
// type, digest, size and platform; OCI entries keep their annotations,
// Docker list entries get none, and other descriptor fields (urls, data,
// artifactType) are dropped as Hangar drops them. A single manifest (OCI,
// Docker schema 2 or schema 1) yields no entries: Merge replaces it with an
// index.
//
// An OCI index entry without a platform crashes Hangar; here it is kept
// unchanged: it never matches a loaded entry, it is never an attestation,
// and it is serialised as it was, without a platform.
//
// The errors wrap ErrUnsupportedMediaType or ErrInvalidManifest.
//
// References: hangar-load.md sections 2.8 step 2, 2.10 ("Order of Adds")
// and 5.13.
func ParseExisting(mediaType string, body []byte) (*Existing, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return nil, fmt.Errorf("%w: body is not a json object", ErrInvalidManifest)
	}
	var doc struct {
		MediaType string               `json:"mediaType"`
		Manifests []ocispec.Descriptor `json:"manifests"`
		Config    json.RawMessage      `json:"config"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidManifest, err)
	}

	mt := baseMediaType(mediaType)
	if mt == "" {
		mt = baseMediaType(doc.MediaType)
	}
	if mt == "" {
		switch {
		case doc.Manifests != nil:
			mt = ocispec.MediaTypeImageIndex
		case doc.Config != nil:
			mt = ocispec.MediaTypeImageManifest
		default:
			return nil, fmt.Errorf("%w: no media type given and none in the body", ErrUnsupportedMediaType)
		}
	}

	switch mt {
	case ocispec.MediaTypeImageIndex, MediaTypeDockerManifestList:
		entries := make([]ocispec.Descriptor, 0, len(doc.Manifests))
		for _, m := range doc.Manifests {
			if mt == MediaTypeDockerManifestList {
				m.Annotations = nil
			}
			entries = append(entries, normalize(m, false))
		}
		return &Existing{MediaType: mt, Manifests: entries}, nil
	case ocispec.MediaTypeImageManifest, MediaTypeDockerManifest,
		MediaTypeDockerManifestSchema1, MediaTypeDockerManifestSchema1Signed:
		return &Existing{MediaType: mt}, nil
	default:
		return nil, fmt.Errorf("%w %q", ErrUnsupportedMediaType, mt)
	}
}

// baseMediaType strips parameters and surrounding space from a media type.
func baseMediaType(mt string) string {
	if i := strings.IndexByte(mt, ';'); i >= 0 {
		mt = mt[:i]
	}
	return strings.ToLower(strings.TrimSpace(mt))
}
