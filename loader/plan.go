package loader

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/cnrancher/docker-hangar/archive"
	"github.com/cnrancher/docker-hangar/manifest"
)

// maxManifestSize bounds the manifests and configs read from an archive.
const maxManifestSize = 4 << 20

// ErrNotInArchive means an image-list line names no archive entry.
var ErrNotInArchive = errors.New("not exists in archive")

// Plan is everything a load will do, decided before the first request.
type Plan struct {
	// Host is the registry host[:port] of the destination.
	Host string
	// Lines are the units of the failed list, in image-list order (archive
	// order without an image list).
	Lines []*Line
	// Images are the destination images, in the order of their first line.
	Images []*Image
}

// Line is one image-list line, or one archive entry without a list.
type Line struct {
	// Number is Hangar's IMG number.
	Number int
	// Key is what the failed list records: the raw line, or source:tag.
	Key string
	// Source is the archive entry's source:tag ("" when not found).
	Source string
	// Image is where the line loads to; nil when Err is set.
	Image *Image
	// Err is set when the line cannot be loaded at all (not in archive).
	Err error
}

// Image is one destination image: the archive entries that load to the same
// destination reference, loaded together (decisions D4).
type Image struct {
	// Lines are the lines that load this image.
	Lines []*Line
	// Source is the first entry's source:tag.
	Source string
	// Project is the destination project.
	Project string
	// Repository is the destination repository path (prefix/project/name).
	Repository string
	// Tag is the destination tag; empty for an image loaded by digest.
	Tag string
	// Digest is set for image-list lines of the form name@sha256:<hex>.
	Digest digest.Digest
	// Reference is what logs show: <destination>/<project>/<name>:<tag>.
	Reference string
	// Manifests are the manifests to push, in archive order.
	Manifests []*Manifest
	// SkipIndex is set for charts and files: pushed to the tag, no index.
	SkipIndex bool
	// Err is set when the image cannot load (damaged archive content).
	Err error
	// Notes are warnings about skipped items, logged when the image loads.
	Notes []string
}

// Manifest is one manifest to push with its blobs.
type Manifest struct {
	// Descriptor is the manifest's entry in the image index (platform and
	// annotations from the archive item).
	Descriptor ocispec.Descriptor
	// Body is the manifest bytes, pushed as they are.
	Body []byte
	// Blobs are the config and the stored layers (foreign layers with
	// URLs are not stored and not pushed).
	Blobs []ocispec.Descriptor
	// Tag is the tag the manifest is pushed to ("" means by digest only).
	Tag string
	// Attestation marks BuildKit attestation manifests.
	Attestation bool
}

// Size returns the bytes of the manifest's blobs.
func (m *Manifest) Size() int64 {
	var n int64
	for _, b := range m.Blobs {
		n += b.Size
	}
	return n
}

// ref returns repository:tag or repository@digest of an image.
func (img *Image) ref() string {
	if img.Tag == "" {
		return img.Repository + "@" + img.Digest.String()
	}
	return img.Repository + ":" + img.Tag
}

var digestTag = regexp.MustCompile(`^[a-f0-9]{64}$`)

// NewPlan selects and names what a load of ar does with opts: image-list
// lookups, destination names, platform filters and provenance, duplicate
// entries merged into one image.
//
// References: hangar-load.md sections 2.3-2.5, 2.8, 2.9; decisions.md D4.
func NewPlan(ar *archive.Reader, lines []ListLine, opts Options) (*Plan, error) {
	host, prefix, err := splitDestination(opts.Destination)
	if err != nil {
		return nil, err
	}
	p := &Plan{Host: host}
	index := ar.Index()
	bySource := map[string][]int{}
	for i, e := range index.List {
		bySource[e.Ref()] = append(bySource[e.Ref()], i)
	}
	byRef := map[string]*Image{}
	add := func(line *Line, entries []archive.Image) {
		first := entries[0]
		line.Source = first.Ref()
		n := ParseName(first.Ref())
		name, tag := n.Name, first.Tag
		var dgst digest.Digest
		if base, ok := strings.CutSuffix(name, "@sha256"); ok && digestTag.MatchString(tag) {
			name, tag, dgst = base, "", digest.NewDigestFromEncoded(digest.SHA256, first.Tag)
		}
		project := n.Project
		if opts.Project != "" {
			project = opts.Project
		}
		repo := project + "/" + name
		if prefix != "" {
			repo = prefix + "/" + repo
		}
		img := &Image{Source: first.Ref(), Project: project, Repository: repo, Tag: tag, Digest: dgst}
		img.Reference = opts.Destination + "/" + project + "/" + name
		if tag != "" {
			img.Reference += ":" + tag
		} else {
			img.Reference += "@" + dgst.String()
		}
		if existing, ok := byRef[img.ref()]; ok {
			img = existing
		} else {
			byRef[img.ref()] = img
			p.Images = append(p.Images, img)
		}
		line.Image = img
		img.Lines = append(img.Lines, line)
		for _, e := range entries {
			selectManifests(ar, img, e, opts)
		}
		if img.Digest != "" && slices.ContainsFunc(img.Manifests, func(m *Manifest) bool { return m.Descriptor.Digest == img.Digest }) {
			// the digest names a manifest: push it (by digest), no index
			img.SkipIndex = true
		}
	}
	if lines == nil && opts.ImageList == "" {
		for i, e := range index.List {
			line := &Line{Number: i + 1, Key: e.Ref()}
			p.Lines = append(p.Lines, line)
			add(line, []archive.Image{e})
		}
	} else {
		for _, l := range lines {
			switch l.Kind {
			case LineMirror, LineUnknown:
				opts.Log.Warnf(0, "Ignore image list line %q: invalid format", l.Text)
				continue
			}
			line := &Line{Number: l.Number, Key: l.Text}
			p.Lines = append(p.Lines, line)
			key := lookupKey(l.Text, opts.SourceRegistry)
			idx := bySource[key]
			if len(idx) == 0 {
				line.Err = fmt.Errorf("image [%s] %w", key, ErrNotInArchive)
				continue
			}
			entries := make([]archive.Image, len(idx))
			for i, j := range idx {
				entries[i] = index.List[j]
			}
			add(line, entries)
		}
	}
	return p, nil
}

// lookupKey returns the archive source:tag an image-list line names.
func lookupKey(line, sourceRegistry string) string {
	n := ParseName(line)
	if sourceRegistry != "" {
		n.Registry = sourceRegistry
	}
	return n.String()
}

// splitDestination splits -d into the registry host and a path prefix.
func splitDestination(dest string) (host, prefix string, err error) {
	d := strings.TrimPrefix(strings.TrimPrefix(dest, "https://"), "http://")
	d = strings.Trim(d, "/")
	host, prefix, _ = strings.Cut(d, "/")
	if host == "" {
		return "", "", fmt.Errorf("invalid destination %q", dest)
	}
	return host, prefix, nil
}

// allowed reports whether a platform value passes a filter list: the list is
// empty, the value is empty, or the list holds it.
func allowed(list []string, value string) bool {
	return len(list) == 0 || value == "" || slices.Contains(list, value)
}

// isAttestationItem reports whether an archive item is a BuildKit
// attestation.
func isAttestationItem(m archive.Manifest) bool {
	return m.Arch == "unknown" && m.OS == "unknown" &&
		m.Annotations[manifest.AnnotationReferenceDigest] != "" &&
		m.Annotations[manifest.AnnotationReferenceType] != ""
}

// imageConfig is the part of an image config that names its platform.
type imageConfig struct {
	Architecture string   `json:"architecture"`
	OS           string   `json:"os"`
	OSVersion    string   `json:"os.version,omitempty"`
	OSFeatures   []string `json:"os.features,omitempty"`
	Variant      string   `json:"variant,omitempty"`
}

// selectManifests adds the manifests of entry e that pass the filters to img.
//
// References: hangar-load.md section 2.8 steps 5-6, with decisions.md D4
// (skip only the item that does not pass, attestations follow
// --provenance).
func selectManifests(ar *archive.Reader, img *Image, e archive.Image, opts Options) {
	if img.Err != nil {
		return
	}
	pass := map[digest.Digest]bool{}
	for _, m := range e.Images {
		if m.Digest != "" && !isAttestationItem(m) && allowed(opts.Arch, m.Arch) && allowed(opts.OS, m.OS) {
			pass[m.Digest] = true
		}
	}
	for _, item := range e.Images {
		if item.Digest == "" {
			img.Notes = append(img.Notes, fmt.Sprintf("Skip invalid image [%s] [%s] [%s]", e.Ref(), item.Arch, item.OS))
			continue
		}
		att := isAttestationItem(item)
		if att {
			if !opts.Provenance || !pass[digest.Digest(item.Annotations[manifest.AnnotationReferenceDigest])] {
				continue
			}
		} else if !pass[item.Digest] {
			continue
		}
		if slices.ContainsFunc(img.Manifests, func(m *Manifest) bool { return m.Descriptor.Digest == item.Digest }) {
			continue
		}
		m, skip, err := readManifest(ar, e, item, att, opts)
		if err != nil {
			img.Err = err
			return
		}
		if skip != "" {
			img.Notes = append(img.Notes, skip)
			continue
		}
		switch {
		case m.Tag == tagMain:
			img.SkipIndex = true
			m.Tag = img.Tag
		case img.Tag == "" || !opts.PlatformTags:
			m.Tag = ""
		default:
			m.Tag = img.Tag + m.Tag
		}
		if m.Tag != "" && !manifest.ValidTag(m.Tag) {
			img.Err = fmt.Errorf("destination tag %q of manifest %s is not a valid tag", m.Tag, item.Digest)
			return
		}
		img.Manifests = append(img.Manifests, m)
	}
}

// commonMediaType returns the constant for a common blob media type, so that
// the plan holds no copy of it per blob.
func commonMediaType(mediaType string) string {
	switch mediaType {
	case ocispec.MediaTypeImageLayerGzip:
		return ocispec.MediaTypeImageLayerGzip
	case ocispec.MediaTypeImageLayer:
		return ocispec.MediaTypeImageLayer
	case ocispec.MediaTypeImageLayerZstd:
		return ocispec.MediaTypeImageLayerZstd
	case ocispec.MediaTypeImageConfig:
		return ocispec.MediaTypeImageConfig
	case ocispec.MediaTypeEmptyJSON:
		return ocispec.MediaTypeEmptyJSON
	case mediaTypeDockerLayer:
		return mediaTypeDockerLayer
	case mediaTypeDockerConfig:
		return mediaTypeDockerConfig
	case mediaTypeInToto:
		return mediaTypeInToto
	}
	return mediaType
}

// Media types of Docker images and BuildKit attestations.
const (
	mediaTypeDockerLayer  = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	mediaTypeDockerConfig = "application/vnd.docker.container.image.v1+json"
	mediaTypeInToto       = "application/vnd.in-toto+json"
)

// tagMain marks a manifest that goes to the image's own tag (charts, files).
const tagMain = "\x00main"

// readManifest reads an item's manifest and config from the archive and
// decides its tag suffix. A non-empty skip explains why the item is skipped.
func readManifest(ar *archive.Reader, e archive.Image, item archive.Manifest, att bool, opts Options) (m *Manifest, skip string, err error) {
	fail := func(format string, args ...any) (*Manifest, string, error) {
		return nil, "", fmt.Errorf("arch [%s] os [%s]: %w", item.Arch, item.OS, fmt.Errorf(format, args...))
	}
	if item.Digest.Algorithm() != digest.SHA256 {
		return fail("manifest %s: %w", item.Digest, archive.ErrUnsupportedDigest)
	}
	body, err := ar.ReadBlob(item.Digest, maxManifestSize)
	if err != nil {
		return fail("read manifest: %w", err)
	}
	var parsed ocispec.Manifest
	if err := json.Unmarshal(body, &parsed); err != nil {
		return fail("manifest %s is not valid JSON: %v", item.Digest, err)
	}
	mediaType := item.MediaType
	if mediaType == "" {
		mediaType = parsed.MediaType
	}
	switch mediaType {
	case ocispec.MediaTypeImageManifest, manifest.MediaTypeDockerManifest:
	default:
		return fail("manifest %s has unsupported media type %q", item.Digest, mediaType)
	}
	if parsed.Config.Digest == "" {
		return fail("manifest %s has no config", item.Digest)
	}
	m = &Manifest{
		Descriptor: manifest.Descriptor(mediaType, item.Digest, int64(len(body)), ocispec.Platform{
			Architecture: item.Arch, OS: item.OS, Variant: item.Variant,
			OSVersion: item.OSVersion, OSFeatures: item.OSFeatures,
		}, item.Annotations),
		Body:        body,
		Attestation: att,
	}
	m.Blobs = make([]ocispec.Descriptor, 0, 1+len(parsed.Layers))
	for i, d := range append([]ocispec.Descriptor{parsed.Config}, parsed.Layers...) {
		if len(d.URLs) > 0 {
			continue // foreign layer: not stored, not pushed
		}
		if err := d.Digest.Validate(); err != nil {
			return fail("manifest %s names invalid blob digest %q", item.Digest, d.Digest)
		}
		size, err := ar.Size(d.Digest)
		if err != nil {
			return fail("%w", err)
		}
		if size != d.Size {
			return fail("blob %s is %d bytes in the archive, the manifest says %d", d.Digest, size, d.Size)
		}
		// The plan holds the strings of the index, which the archive
		// reader keeps anyway, rather than copies.
		switch {
		case i == 0 && d.Digest == item.Config:
			d.Digest = item.Config
		case i > 0 && i-1 < len(item.Layers) && d.Digest == item.Layers[i-1]:
			d.Digest = item.Layers[i-1]
		}
		m.Blobs = append(m.Blobs, ocispec.Descriptor{MediaType: commonMediaType(d.MediaType), Digest: d.Digest, Size: d.Size})
	}
	if parsed.Config.MediaType == manifest.MediaTypeHelmConfig {
		m.Tag = tagMain
		return m, "", nil
	}
	var platform ocispec.Platform
	if !att {
		cfgBytes, err := ar.ReadBlob(parsed.Config.Digest, maxManifestSize)
		if err != nil {
			return fail("read config: %w", err)
		}
		var cfg imageConfig
		if json.Unmarshal(cfgBytes, &cfg) == nil {
			platform = ocispec.Platform{Architecture: cfg.Architecture, OS: cfg.OS, OSVersion: cfg.OSVersion, OSFeatures: cfg.OSFeatures, Variant: cfg.Variant}
		}
		if !allowed(opts.Arch, platform.Architecture) || !allowed(opts.OS, platform.OS) {
			return nil, fmt.Sprintf("Skip loading manifest %s of [%s]: its config platform %s/%s is not selected", item.Digest, e.Ref(), platform.OS, platform.Architecture), nil
		}
	}
	full := manifest.PlatformTag("", platform, m.Descriptor)
	m.Tag = full // a suffix such as "-linux-amd64", joined to the tag by the caller
	return m, "", nil
}
