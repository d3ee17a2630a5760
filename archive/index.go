package archive

import (
	_ "crypto/sha256" // digest.SHA256
	_ "crypto/sha512" // digest.SHA384, digest.SHA512: valid in an index
	"encoding/json"
	"errors"
	"fmt"
	"unique"
	"unsafe"

	"github.com/opencontainers/go-digest"

	"github.com/cnrancher/docker-hangar/internal/digestcheck"
)

// MaxIndexSize bounds the size of the top-level index.json that is read,
// and the memory its decoded form may take, as estimated from its JSON
// before it is decoded (decodedSize). An index takes about 2.5 times its
// size decoded, so the indexes accepted are up to about 25 MiB, some
// 40,000 manifests (the index of 1082 manifests of docs/benchmarks.md is
// 0.65 MB); the estimate refuses the JSON of a few bytes per object or
// element that would take 60 times its size, and compresses to almost
// nothing. Decoding peaks at about three times the limit.
const MaxIndexSize = 64 << 20

// Estimated heap, in bytes, of the parts of a decoded index (decodedSize):
// a JSON object becomes at most a Manifest, an array element or an object
// member at most a string, a slice or a map slot.
const (
	objectCost = int64(unsafe.Sizeof(Manifest{}))
	memberCost = 48
)

// decodedSize estimates, from one scan of its bytes, the heap that the
// index in data takes once decoded: its bytes, and the cost of every
// object, array element and object member.
func decodedSize(data []byte) int64 {
	var objects, members int64
	inString, escaped := false, false
	for _, c := range data {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{':
			objects++
		case '[', ',':
			members++
		}
	}
	return int64(len(data)) + objects*objectCost + members*memberCost
}

// Index is the top-level index.json of a Hangar archive.
//
// References: hangar-load.md section 1.4 (pkg/hangar/archive/index.go).
type Index struct {
	// List holds the images in archive order; the same source:tag may
	// appear more than once.
	List []Image `json:"list,omitempty"`
	// Version is the index version, e.g. "v1.2.0".
	Version string `json:"version"`
	// Time is when the index was created (RFC 3339).
	Time string `json:"time,omitempty"`
}

// Image is one entry of Index.List: a source image and its stored manifests.
type Image struct {
	// Source is registry/project/name as saved, e.g. docker.io/library/nginx.
	Source string `json:"source"`
	// Tag is the source tag.
	Tag      string   `json:"tag"`
	ArchList []string `json:"archList,omitempty"`
	OSList   []string `json:"osList,omitempty"`
	// Images holds one item per stored manifest.
	Images []Manifest `json:"images"`
}

// Ref returns Source + ":" + Tag, the key Hangar uses for an entry.
func (i Image) Ref() string { return i.Source + ":" + i.Tag }

// Manifest is one stored manifest of an Image: a platform manifest, an
// attestation, a chart or a file.
type Manifest struct {
	Arch        string            `json:"arch"`
	OS          string            `json:"os"`
	Variant     string            `json:"variant,omitempty"`
	OSVersion   string            `json:"osVersion,omitempty"`
	OSFeatures  []string          `json:"osFeatures,omitempty"`
	MediaType   string            `json:"mediaType"`
	Layers      []digest.Digest   `json:"layers"`
	Config      digest.Digest     `json:"config"`
	Digest      digest.Digest     `json:"digest"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// parseIndex parses and validates the bytes of a top-level index.json:
// version range (D7), digests in algorithm:hex form, non-empty sources.
//
// It decodes as Hangar does (encoding/json: keys match case-insensitively,
// unknown fields are ignored). An images[] item may have an empty digest
// (Hangar skips such items) or an empty config; every non-empty digest
// must pass digest.Digest.Validate, and layer digests must not be empty.
// An index whose decoded form would take more than MaxIndexSize bytes
// (decodedSize) is refused before it is decoded. Errors wrap
// ErrInvalidIndex, ErrUnsupportedVersion or ErrIndexTooLarge.
func parseIndex(data []byte) (*Index, error) {
	if n := decodedSize(data); n > MaxIndexSize {
		return nil, fmt.Errorf("%w: %s of %d bytes would take about %d MiB decoded, the limit is %d MiB", ErrIndexTooLarge, IndexName, len(data), n>>20, MaxIndexSize>>20)
	}
	var idx Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidIndex, err)
	}
	if err := checkIndexVersion(idx.Version); err != nil {
		return nil, err
	}
	for i := range idx.List {
		if err := idx.List[i].validate(); err != nil {
			return nil, fmt.Errorf("%w: list item %d: %w", ErrInvalidIndex, i+1, err)
		}
	}
	idx.intern()
	return &idx, nil
}

// intern makes the equal strings of the index share their bytes
// (unique.Make): the digests of the layers that images share, the digests
// that attestations name, platforms and media types. An archive reader
// keeps its index for as long as it is open. No handle is kept, so the
// unique package forgets the strings once the index is gone.
func (idx *Index) intern() {
	in := func(s *string) { *s = unique.Make(*s).Value() }
	for i := range idx.List {
		img := &idx.List[i]
		in(&img.Tag)
		for j := range img.ArchList {
			in(&img.ArchList[j])
		}
		for j := range img.OSList {
			in(&img.OSList[j])
		}
		for j := range img.Images {
			m := &img.Images[j]
			for _, s := range []*string{&m.Arch, &m.OS, &m.Variant, &m.OSVersion, &m.MediaType, (*string)(&m.Config), (*string)(&m.Digest)} {
				in(s)
			}
			for k := range m.OSFeatures {
				in(&m.OSFeatures[k])
			}
			for k := range m.Layers {
				in((*string)(&m.Layers[k]))
			}
			for k, v := range m.Annotations {
				m.Annotations[k] = unique.Make(v).Value()
			}
		}
	}
}

// validate checks the source and every digest of an image entry.
func (img *Image) validate() error {
	if img.Source == "" {
		return errors.New("empty source")
	}
	for j := range img.Images {
		m := &img.Images[j]
		if err := checkDigest("digest", m.Digest, true); err != nil {
			return fmt.Errorf("image %s: images[%d]: %w", quoteShort(img.Ref()), j, err)
		}
		if err := checkDigest("config digest", m.Config, true); err != nil {
			return fmt.Errorf("image %s: images[%d]: %w", quoteShort(img.Ref()), j, err)
		}
		for k, l := range m.Layers {
			if err := checkDigest(fmt.Sprintf("layers[%d] digest", k), l, false); err != nil {
				return fmt.Errorf("image %s: images[%d]: %w", quoteShort(img.Ref()), j, err)
			}
		}
	}
	return nil
}

// checkDigest validates one digest of the index.
func checkDigest(what string, d digest.Digest, emptyOK bool) error {
	if d == "" {
		if emptyOK {
			return nil
		}
		return fmt.Errorf("empty %s", what)
	}
	if err := digestcheck.Validate(d); err != nil {
		return fmt.Errorf("invalid %s %s: %w", what, quoteShort(string(d)), err)
	}
	return nil
}
