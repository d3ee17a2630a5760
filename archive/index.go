package archive

import (
	"bufio"
	_ "crypto/sha256" // digest.SHA256
	_ "crypto/sha512" // digest.SHA384, digest.SHA512: valid in an index
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unique"
	"unsafe"

	"github.com/opencontainers/go-digest"

	"github.com/cnrancher/docker-hangar/internal/digestcheck"
)

// MaxIndexSize bounds the size of the top-level index.json that is read,
// and the memory its decoded form may take, as estimated from its JSON
// before it is decoded (sizeEstimate). An index takes about 2.5 times its
// size decoded, so the indexes accepted are up to about 25 MiB, some
// 40,000 manifests (the index of 1082 manifests of docs/benchmarks.md is
// 0.65 MB); the estimate refuses the JSON of a few bytes per object or
// element that would take 60 times its size, and compresses to almost
// nothing. The JSON streams as it is decoded, so decoding peaks at about
// the limit.
const MaxIndexSize = 64 << 20

// Estimated heap, in bytes, of the parts of a decoded index (sizeEstimate):
// a JSON object becomes at most a Manifest, an array element or an object
// member at most a string, a slice or a map slot.
const (
	objectCost = int64(unsafe.Sizeof(Manifest{}))
	memberCost = 48
)

// sizeEstimate estimates, from one scan of the bytes written to it (an
// io.Writer, so that an index is measured as it streams by), the heap that
// an index takes once decoded: its bytes, and the cost of every object,
// array element and object member.
type sizeEstimate struct {
	bytes, objects, members int64
	inString, escaped       bool
}

// Write scans p; it never fails.
func (e *sizeEstimate) Write(p []byte) (int, error) {
	e.bytes += int64(len(p))
	for _, c := range p {
		if e.inString {
			switch {
			case e.escaped:
				e.escaped = false
			case c == '\\':
				e.escaped = true
			case c == '"':
				e.inString = false
			}
			continue
		}
		switch c {
		case '"':
			e.inString = true
		case '{':
			e.objects++
		case '[', ',':
			e.members++
		}
	}
	return len(p), nil
}

func (e *sizeEstimate) size() int64 {
	return e.bytes + e.objects*objectCost + e.members*memberCost
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

// checkDecodedSize refuses an index of n bytes whose decoded form is
// estimated to take more than MaxIndexSize.
func checkDecodedSize(estimate, n int64) error {
	if estimate > MaxIndexSize {
		return fmt.Errorf("%w: %s of %d bytes would take about %d MiB decoded, the limit is %d MiB", ErrIndexTooLarge, IndexName, n, estimate>>20, MaxIndexSize>>20)
	}
	return nil
}

// decodeIndex decodes and validates an index.json whose decoded size was
// checked (sizeEstimate), from a stream: version range (D7), digests in
// algorithm:hex form, non-empty sources.
//
// It decodes as Hangar does (encoding/json: keys match case-insensitively,
// unknown fields are ignored). An images[] item may have an empty digest
// (Hangar skips such items) or an empty config; every non-empty digest
// must pass digest.Digest.Validate, and layer digests must not be empty.
// Errors wrap ErrInvalidIndex or ErrUnsupportedVersion.
//
// It streams: the list is decoded one item at a time, so that the whole
// JSON is never held (megabytes for thousands of images). A document that
// is not an object is decoded whole, as json.Unmarshal does, for its
// errors.
func decodeIndex(r io.Reader) (*Index, error) {
	br := bufio.NewReader(r)
	var idx Index
	if !startsObject(br) {
		data, err := io.ReadAll(br)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidIndex, err)
		}
		if err := json.Unmarshal(data, &idx); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidIndex, err)
		}
	} else if err := decodeObject(json.NewDecoder(br), &idx); err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = errUnexpectedEnd // as json.Unmarshal says it
		}
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

var errUnexpectedEnd = errors.New("unexpected end of JSON input")

// startsObject reports whether the first byte after white space is '{'.
func startsObject(br *bufio.Reader) bool {
	for {
		c, err := br.ReadByte()
		if err != nil {
			return false
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		}
		br.UnreadByte()
		return c == '{'
	}
}

// decodeObject decodes the members of the index object as json.Unmarshal
// into an Index does (keys folded, later members win, unknown ones
// skipped), the list one item at a time, and refuses data after it.
func decodeObject(dec *json.Decoder, idx *Index) error {
	if _, err := dec.Token(); err != nil { // '{'
		return err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		switch {
		case strings.EqualFold(key, "list"):
			if err := decodeList(dec, idx); err != nil {
				return err
			}
		case strings.EqualFold(key, "version"):
			err = dec.Decode(&idx.Version)
		case strings.EqualFold(key, "time"):
			err = dec.Decode(&idx.Time)
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		if err == nil {
			err = errors.New("invalid data after top-level value")
		}
		return err
	}
	return nil
}

// decodeList decodes the value of the list member: null, or an array of
// images decoded one by one.
func decodeList(dec *json.Decoder, idx *Index) error {
	tok, err := dec.Token()
	switch {
	case err != nil:
		return err
	case tok == nil:
		idx.List = nil
		return nil
	case tok != json.Delim('['):
		return fmt.Errorf("json: cannot unmarshal %v into Go struct field Index.list of type []archive.Image", tok)
	}
	idx.List = idx.List[:0]
	if idx.List == nil {
		idx.List = []Image{} // an empty array is an empty, non-nil list
	}
	for dec.More() {
		var img Image
		if err := dec.Decode(&img); err != nil {
			return err
		}
		idx.List = append(idx.List, img)
	}
	_, err = dec.Token() // ']'
	return err
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
