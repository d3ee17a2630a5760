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
// Errors wrap ErrInvalidIndex or ErrUnsupportedVersion; an invalid
// version is reported before an invalid item.
//
// It streams: the list is decoded one item at a time, so that the whole
// JSON is never held (megabytes for thousands of images). With each set,
// the list is not kept either: each valid item is given to each, in order,
// until an item is invalid (the version, which may come after the list,
// is checked at the end), and an error of each ends the decoding and is
// returned as is. A document that is not an object is decoded whole, as
// json.Unmarshal does, for its errors.
func decodeIndex(r io.Reader, each func(Image) error) (*Index, error) {
	br := bufio.NewReader(r)
	d := &indexDecoder{each: each}
	if !startsObject(br) {
		// Not an object: json.Unmarshal says why (null decodes to
		// nothing, and the version check refuses it).
		data, err := io.ReadAll(br)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidIndex, err)
		}
		if err := json.Unmarshal(data, &d.idx); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidIndex, err)
		}
	} else if err := d.decodeObject(json.NewDecoder(br)); err != nil {
		var ce callbackError
		if errors.As(err, &ce) {
			return nil, ce.err
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			err = errUnexpectedEnd // as json.Unmarshal says it
		}
		return nil, fmt.Errorf("%w: %w", ErrInvalidIndex, err)
	}
	if err := checkIndexVersion(d.idx.Version); err != nil {
		return nil, err
	}
	if d.invalid != nil {
		return nil, d.invalid
	}
	return &d.idx, nil
}

// indexDecoder is the state of decodeIndex.
type indexDecoder struct {
	idx     Index
	each    func(Image) error
	lists   int   // list members seen
	items   int   // items decoded of the list
	invalid error // the first invalid item
}

// callbackError carries an error of decodeIndex's each out of the decoder.
type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

// startList begins a list member. A later one replaces an earlier one, as
// json.Unmarshal does, but items given to each cannot be taken back: then
// a second list member is refused.
func (d *indexDecoder) startList() error {
	d.lists++
	if d.each != nil && d.lists > 1 {
		return errors.New("the list member appears twice")
	}
	d.items, d.invalid = 0, nil
	return nil
}

// item validates one list item and keeps it, or gives it to each.
func (d *indexDecoder) item(img Image) error {
	d.items++
	if d.invalid != nil {
		return nil
	}
	if err := img.validate(); err != nil {
		d.invalid = fmt.Errorf("%w: list item %d: %w", ErrInvalidIndex, d.items, err)
		return nil
	}
	if d.each == nil {
		img.intern() // a whole index kept: one copy of each shared string
		d.idx.List = append(d.idx.List, img)
		return nil
	}
	return d.each(img) // kept or not by each: as decoded
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
func (d *indexDecoder) decodeObject(dec *json.Decoder) error {
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
			if err := d.decodeList(dec); err != nil {
				return err
			}
		case strings.EqualFold(key, "version"):
			err = dec.Decode(&d.idx.Version)
		case strings.EqualFold(key, "time"):
			err = dec.Decode(&d.idx.Time)
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
func (d *indexDecoder) decodeList(dec *json.Decoder) error {
	tok, err := dec.Token()
	switch {
	case err != nil:
		return err
	case tok == nil:
		d.idx.List = nil
		return d.startList()
	case tok != json.Delim('['):
		return fmt.Errorf("json: cannot unmarshal %v into Go struct field Index.list of type []archive.Image", tok)
	}
	if err := d.startList(); err != nil {
		return err
	}
	d.idx.List = d.idx.List[:0]
	if d.idx.List == nil && d.each == nil {
		d.idx.List = []Image{} // an empty array is an empty, non-nil list
	}
	for dec.More() {
		var img Image
		if err := dec.Decode(&img); err != nil {
			return err
		}
		if err := d.item(img); err != nil {
			return callbackError{err}
		}
	}
	_, err = dec.Token() // ']'
	return err
}

// intern makes the equal strings of an index entry share their bytes
// with those of the other entries (unique.Make): the digests of the layers
// that images share, the digests that attestations name, platforms and
// media types. No handle is kept, so the unique package forgets the
// strings once no entry or plan holds them.
func (img *Image) intern() {
	in := func(s *string) { *s = unique.Make(*s).Value() }
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
