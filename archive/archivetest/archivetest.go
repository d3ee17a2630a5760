// Package archivetest writes Hangar-style archives for tests and
// benchmarks, following the recipe of hangar-load.md 4.2 and the layout of
// sections 1.2 and 1.3:
//
//   - per stored manifest, <hex>/index.json (a containers/image style
//     compact OCI index with one descriptor; without the index mediaType
//     for charts and files, as `hangar archive store` writes it) and
//     <hex>/oci-layout;
//   - share/sha256/<hex> once per blob (manifests, configs, layers);
//   - within one image, the layout pairs sorted by hex, then the blobs not
//     yet written sorted by hex;
//   - the compact top-level index.json last, with no modification time;
//   - every entry written by Go's zip.Writer with Store (or Deflate on
//     request), so with data descriptors, and a modification time.
//
// Content is deterministic: the same images and options give the same
// bytes. Layers can be generated from a size and a seed while they are
// written, so a large archive needs little memory: each generated layer is
// read twice (once to compute its digest, once to write it).
package archivetest

import (
	"archive/zip"
	"compress/flate"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/cnrancher/docker-hangar/archive"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// Media types and annotations used in generated archives.
const (
	MediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerConfig   = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerLayer    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeHelmConfig     = "application/vnd.cncf.helm.config.v1+json"
	MediaTypeHelmChart      = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"
	MediaTypeHangarFile     = "application/vnd.content.hangar.file.layer.v1"
	MediaTypeInToto         = "application/vnd.in-toto+json"

	AnnotationReferenceDigest = "vnd.docker.reference.digest"
	AnnotationReferenceType   = "vnd.docker.reference.type"
	AttestationManifest       = "attestation-manifest"
	AnnotationPredicateType   = "in-toto.io/predicate-type"
)

// Defaults of Options.
const (
	DefaultVersion = archive.MinIndexVersion
	DefaultTime    = "2025-02-13T18:56:27.123456789+08:00"
	// DefaultCreated is the org.opencontainers.image.created annotation of
	// charts and files.
	DefaultCreated = "2025-02-13T10:56:27Z"
)

// DefaultModified is the modification time of entries other than
// index.json unless Options.Modified is set.
var DefaultModified = time.Date(2025, 2, 13, 10, 56, 27, 0, time.UTC)

// Manifest is one platform manifest, or attestation, of an Image.
type Manifest struct {
	// Platform goes to the index item and to the image config; the zero
	// value means linux/amd64. Ignored for attestations (unknown/unknown).
	Platform ocispec.Platform
	// Docker writes a Docker v2 schema2 manifest (Docker config and layer
	// media types) instead of an OCI manifest.
	Docker bool
	// Layers of the manifest. An attestation with no layers gets one
	// generated in-toto statement naming its subject.
	Layers []Layer
	// Attestation makes this a BuildKit attestation manifest for the
	// previous non-attestation manifest of the same Image: index item
	// unknown/unknown with the vnd.docker.reference.* annotations, always
	// OCI, with the config that AttestationConfig selects.
	Attestation bool
	// AttestationConfig selects the image config of an attestation: the
	// zero value writes the one of docker buildx.
	AttestationConfig AttestationConfig
	// Annotations are added to the index item (Hangar copies them from
	// the source OCI index descriptor).
	Annotations map[string]string
	// Config, when not nil, is the config blob used as is.
	Config []byte
	// PadTo, when larger than the manifest, pads the manifest blob with
	// spaces after its JSON to PadTo bytes: still the same manifest to a
	// JSON parser, of any size, and compressible to almost nothing (for
	// hostile archives, see SharedManifest).
	PadTo int64
}

// AttestationConfig is a shape of the image config of an attestation
// manifest. In both, the index item and the index descriptor of the
// attestation say unknown/unknown, and rootfs.diff_ids lists the digests of
// the manifest's layers (the in-toto statements, not compressed).
type AttestationConfig int

const (
	// AttestationConfigBuildx is the config BuildKit writes for the
	// attestations of `docker buildx build` (an ocispec.Image with the
	// platform unknown/unknown):
	//
	//	{"architecture":"unknown","os":"unknown","config":{},
	//	 "rootfs":{"type":"layers","diff_ids":["sha256:…"]}}
	AttestationConfigBuildx AttestationConfig = iota
	// AttestationConfigFixture is the config of the attestations in the
	// Hangar v1.9.4 fixtures (basic.zip), as go-containerregistry
	// serialises the config of an image built on its empty image: an
	// empty platform, a zero creation time, one history item per layer:
	//
	//	{"architecture":"","created":"0001-01-01T00:00:00Z",
	//	 "history":[{"created":"0001-01-01T00:00:00Z"}],"os":"",
	//	 "rootfs":{"type":"layers","diff_ids":["sha256:…"]},"config":{}}
	AttestationConfigFixture
)

// Chart is a Helm chart stored as `hangar archive store chart` does from a
// .tgz.
type Chart struct {
	// Name and Version of the chart; defaults "demo" and "0.1.0".
	Name, Version string
	// Description goes to the config and the annotations.
	Description string
	// Data is the .tgz; a small valid chart is generated when nil.
	Data []byte
	// Created is the created annotation; DefaultCreated when empty.
	Created string
}

// File is a plain file stored as `hangar archive store file` does.
type File struct {
	// Name is the base name; default "file.txt".
	Name string
	// Data is the file content.
	Data []byte
	// Description is the original path or URL; default "./" + Name.
	Description string
	// Created is the created annotation; DefaultCreated when empty.
	Created string
}

// Image is one entry of the index: an image with its manifests, or a chart,
// or a file. Several Images may share a Source and Tag (duplicate entries,
// as after `hangar archive merge`).
type Image struct {
	// Source and Tag of the entry. For charts and files they default to
	// Hangar's docker.io/hangar-helm/<name>:<version> and
	// docker.io/hangar-file/<name>:latest.
	Source, Tag string
	// Manifests of an image, in index order.
	Manifests []Manifest
	// Chart, when set, makes the entry a Helm chart (Manifests must be
	// empty).
	Chart *Chart
	// File, when set, makes the entry a stored file (Manifests must be
	// empty).
	File *File
}

// Entry is a raw zip entry, for archives that tests need broken or odd.
type Entry struct {
	// Name is the entry name, written as is (it may be unsafe).
	Name string
	// Data is the entry content.
	Data []byte
	// Deflate compresses the entry instead of storing it.
	Deflate bool
}

// Options tunes Write. The zero value writes a Hangar v1.9.4-like archive.
type Options struct {
	// Version of the index; DefaultVersion when empty (use Mutate to write
	// an empty version).
	Version string
	// Time of the index; DefaultTime when empty.
	Time string
	// Modified is the modification time of entries other than index.json;
	// DefaultModified when zero.
	Modified time.Time
	// Deflate compresses every entry (fastest level) instead of storing it.
	Deflate bool
	// Mutate, when set, edits the index before it is serialised (e.g. to
	// write a bad digest or an empty version).
	Mutate func(*archive.Index)
	// IndexJSON, when not nil, is written as index.json instead of the
	// serialised index.
	IndexJSON []byte
	// NoIndex leaves index.json out.
	NoIndex bool
	// OmitBlobs lists blobs whose share/sha256/<hex> entry is not written.
	OmitBlobs []digest.Digest
	// Omit, when set, leaves out every entry whose name it accepts.
	Omit func(name string) bool
	// Extra entries are written after the images, before index.json.
	Extra []Entry
}

// Written describes what Write wrote.
type Written struct {
	// Path of the archive.
	Path string
	// Index is the index as serialised (after Options.Mutate).
	Index archive.Index
	// IndexJSON holds the bytes of the index.json entry (nil with NoIndex).
	IndexJSON []byte
	// Images holds one item per Image given, in the same order.
	Images []WrittenImage
	// Blobs maps every blob written in share/sha256 to its size.
	Blobs map[digest.Digest]int64
	// Entries lists the entry names in the order written.
	Entries []string
}

// WrittenImage describes one Image written.
type WrittenImage struct {
	// Source and Tag of the index entry (with the chart and file defaults
	// filled in).
	Source, Tag string
	// Manifests holds one item per stored manifest (one for a chart or a
	// file), in index order.
	Manifests []WrittenManifest
}

// WrittenManifest describes one stored manifest.
type WrittenManifest struct {
	// Descriptor of the manifest: media type, digest and size, the
	// platform of the index item (nil for charts and files) and its
	// annotations.
	Descriptor ocispec.Descriptor
	// Bytes of the manifest.
	Bytes []byte
	// Config descriptor and bytes.
	Config      ocispec.Descriptor
	ConfigBytes []byte
	// Layers descriptors, in manifest order.
	Layers []ocispec.Descriptor
	// Item is the index item.
	Item archive.Manifest
	// Attestation reports a BuildKit attestation manifest.
	Attestation bool
}

// blob is one blob to write.
type blob struct {
	d    digest.Digest
	data []byte
	gen  *Layer // generated content when data is nil
}

type writer struct {
	opts  Options
	zw    *zip.Writer
	omit  map[string]bool
	blobs map[digest.Digest]bool // written or omitted
	dirs  map[digest.Digest]bool
	gens  map[[2]int64]digest.Digest
	pads  map[padKey]blob // padded manifests
	out   *Written
}

// Write writes an archive of images at path (truncating it) and describes
// what it wrote.
func Write(path string, images []Image, opts Options) (_ *Written, err error) {
	if opts.Version == "" {
		opts.Version = DefaultVersion
	}
	if opts.Time == "" {
		opts.Time = DefaultTime
	}
	if opts.Modified.IsZero() {
		opts.Modified = DefaultModified
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	w := &writer{
		opts:  opts,
		zw:    zip.NewWriter(f),
		omit:  make(map[string]bool),
		blobs: make(map[digest.Digest]bool),
		dirs:  make(map[digest.Digest]bool),
		gens:  make(map[[2]int64]digest.Digest),
		pads:  make(map[padKey]blob),
		out: &Written{
			Path:  path,
			Index: archive.Index{Version: opts.Version, Time: opts.Time},
			Blobs: make(map[digest.Digest]int64),
		},
	}
	w.zw.RegisterCompressor(zip.Deflate, func(out io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(out, flate.BestSpeed)
	})
	for _, d := range opts.OmitBlobs {
		if _, enc, ok := strings.Cut(string(d), ":"); ok {
			w.omit[archive.BlobPrefix+enc] = true
		}
	}
	for i, img := range images {
		if err := w.image(img); err != nil {
			return nil, fmt.Errorf("image %d (%s:%s): %w", i, img.Source, img.Tag, err)
		}
	}
	for _, e := range opts.Extra {
		if _, err := w.entry(e.Name, true, e.Deflate, writeBytes(e.Data)); err != nil {
			return nil, err
		}
	}
	if opts.Mutate != nil {
		opts.Mutate(&w.out.Index)
	}
	if !opts.NoIndex {
		data := opts.IndexJSON
		if data == nil {
			if data, err = json.Marshal(&w.out.Index); err != nil {
				return nil, err
			}
		}
		w.out.IndexJSON = data
		if _, err := w.entry(archive.IndexName, false, false, writeBytes(data)); err != nil {
			return nil, err
		}
	}
	if err := w.zw.Close(); err != nil {
		return nil, err
	}
	return w.out, nil
}

// entry writes one zip entry unless it is omitted.
func (w *writer) entry(name string, modified, deflate bool, write func(io.Writer) error) (bool, error) {
	if w.omit[name] || (w.opts.Omit != nil && w.opts.Omit(name)) {
		return false, nil
	}
	h := &zip.FileHeader{Name: name, Method: zip.Store}
	if w.opts.Deflate || deflate {
		h.Method = zip.Deflate
	}
	if modified {
		h.Modified = w.opts.Modified
	}
	out, err := w.zw.CreateHeader(h)
	if err != nil {
		return false, err
	}
	if err := write(out); err != nil {
		return false, fmt.Errorf("write %s: %w", name, err)
	}
	w.out.Entries = append(w.out.Entries, name)
	return true, nil
}

// writeBytes returns a write function for entry.
func writeBytes(data []byte) func(io.Writer) error {
	return func(out io.Writer) error {
		_, err := out.Write(data)
		return err
	}
}

// layer returns the descriptor and blob of a layer.
func (w *writer) layer(l Layer, mediaType string) (ocispec.Descriptor, blob) {
	if l.MediaType != "" {
		mediaType = l.MediaType
	}
	var d digest.Digest
	if l.Data != nil {
		d = digest.FromBytes(l.Data)
	} else {
		key := [2]int64{l.size(), l.Seed}
		if d = w.gens[key]; d == "" {
			d = LayerDigest(l)
			w.gens[key] = d
		}
	}
	b := blob{d: d, data: l.Data}
	if l.Data == nil {
		b.gen = &l
	}
	return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: l.size()}, b
}

// image builds and writes the entries of one Image, and appends it to the
// index.
func (w *writer) image(img Image) error {
	var (
		wi    WrittenImage
		blobs []blob
		err   error
	)
	switch {
	case img.Chart != nil || img.File != nil:
		if len(img.Manifests) > 0 || (img.Chart != nil && img.File != nil) {
			return errors.New("set one of Manifests, Chart and File")
		}
		var wm WrittenManifest
		if img.Chart != nil {
			wm, blobs, err = w.chart(&img, *img.Chart)
		} else {
			wm, blobs, err = w.file(&img, *img.File)
		}
		if err != nil {
			return err
		}
		wi.Manifests = append(wi.Manifests, wm)
	default:
		var subject *WrittenManifest
		for j, m := range img.Manifests {
			var wm WrittenManifest
			var bs []blob
			if m.Attestation {
				if subject == nil {
					return fmt.Errorf("manifest %d: attestation with no platform manifest before it", j)
				}
				wm, bs, err = w.attestation(img, m, subject.Descriptor.Digest)
			} else {
				wm, bs, err = w.platform(m)
			}
			if err != nil {
				return fmt.Errorf("manifest %d: %w", j, err)
			}
			wi.Manifests = append(wi.Manifests, wm)
			if !m.Attestation {
				subject = &wi.Manifests[len(wi.Manifests)-1]
			}
			blobs = append(blobs, bs...)
		}
	}
	wi.Source, wi.Tag = img.Source, img.Tag

	// Layout pairs of new manifests, sorted by hex.
	var dirs []WrittenManifest
	for _, wm := range wi.Manifests {
		if !w.dirs[wm.Descriptor.Digest] {
			w.dirs[wm.Descriptor.Digest] = true
			dirs = append(dirs, wm)
		}
	}
	slices.SortFunc(dirs, func(a, b WrittenManifest) int {
		return strings.Compare(a.Descriptor.Digest.Encoded(), b.Descriptor.Digest.Encoded())
	})
	for _, wm := range dirs {
		idx := ocispec.Index{
			Versioned: ocispecVersioned,
			Manifests: []ocispec.Descriptor{{MediaType: wm.Descriptor.MediaType, Digest: wm.Descriptor.Digest, Size: wm.Descriptor.Size}},
		}
		if img.Chart == nil && img.File == nil {
			idx.MediaType = ocispec.MediaTypeImageIndex
		}
		data, err := json.Marshal(idx)
		if err != nil {
			return err
		}
		hex := wm.Descriptor.Digest.Encoded()
		if _, err := w.entry(hex+"/index.json", true, false, writeBytes(data)); err != nil {
			return err
		}
		if _, err := w.entry(hex+"/oci-layout", true, false, writeBytes([]byte(`{"imageLayoutVersion":"1.0.0"}`))); err != nil {
			return err
		}
	}

	// Blobs not yet written, sorted by hex.
	var todo []blob
	for _, b := range blobs {
		if !w.blobs[b.d] {
			w.blobs[b.d] = true
			todo = append(todo, b)
		}
	}
	slices.SortFunc(todo, func(a, b blob) int { return strings.Compare(a.d.Encoded(), b.d.Encoded()) })
	for _, b := range todo {
		var n int64
		written, err := w.entry(archive.BlobPrefix+b.d.Encoded(), true, false, func(out io.Writer) error {
			var err error
			if b.data != nil {
				var m int
				m, err = out.Write(b.data)
				n = int64(m)
			} else {
				n, err = io.CopyBuffer(out, LayerReader(*b.gen), make([]byte, 256<<10))
			}
			return err
		})
		if err != nil {
			return err
		}
		if written {
			w.out.Blobs[b.d] = n
		}
	}

	// The index entry.
	item := archive.Image{Source: img.Source, Tag: img.Tag, Images: []archive.Manifest{}}
	for _, wm := range wi.Manifests {
		item.Images = append(item.Images, wm.Item)
		if img.Chart == nil && img.File == nil {
			if !slices.Contains(item.ArchList, wm.Item.Arch) {
				item.ArchList = append(item.ArchList, wm.Item.Arch)
			}
			if !slices.Contains(item.OSList, wm.Item.OS) {
				item.OSList = append(item.OSList, wm.Item.OS)
			}
		}
	}
	w.out.Index.List = append(w.out.Index.List, item)
	w.out.Images = append(w.out.Images, wi)
	return nil
}
