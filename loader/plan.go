package loader

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry"

	"github.com/cnrancher/docker-hangar/archive"
	"github.com/cnrancher/docker-hangar/internal/digestcheck"
	"github.com/cnrancher/docker-hangar/manifest"
	"github.com/cnrancher/docker-hangar/oras"
)

// MaxPlanManifestBytes bounds the manifest bytes a plan reads: the sum of
// the sizes of the archive's distinct selected manifests. Each distinct
// manifest is read once however many entries name it, and its body is not
// kept (it is read again when pushed), so the plan holds about this much
// at most in parsed blob lists.
const MaxPlanManifestBytes = 32 << 20

// Errors of planning, for errors.Is.
var (
	// ErrNotInArchive means an image-list line names no archive entry.
	ErrNotInArchive = errors.New("not exists in archive")
	// ErrPlanTooLarge means the archive's manifests exceed
	// MaxPlanManifestBytes.
	ErrPlanTooLarge = errors.New("archive too large to plan")
	// ErrInvalidReference means a destination reference is not valid.
	ErrInvalidReference = errors.New("invalid destination reference")
)

// Plan is everything a load will do, decided before the first request.
type Plan struct {
	// Host is the registry host[:port] of the destination, and Prefix the
	// path it gives every repository ("" for none).
	Host, Prefix string
	// Entries is the number of entries of the archive index.
	Entries int
	// Lines are the units of the failed list, in image-list order (archive
	// order without an image list).
	Lines []*Line
	// Ignored are the image-list lines that are not image references
	// (Hangar's mirror format, or garbage): Hangar warns and skips them.
	Ignored []ListLine
	// Images are the destination images, in the order of their first line.
	Images []*Image
	// Blobs is the number of distinct blobs of the archive; the blob
	// numbers of the manifests (Manifest.BlobIDs, Blob.ID) are below it.
	Blobs int

	repositories []string // the destination repositories, by Image.repo
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
// destination reference, loaded together.
//
// Hangar loads such entries one after the other (different sources folded
// into one name by --project, or the same source:tag twice); the plan
// keeps their manifests once each, with each platform tag given to the
// last manifest that claims it, and the index entries of each entry as one
// Step, so that the index is merged as Hangar merges it, entry by entry.
//
// References: decisions.md D4.
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
	// planning holds the image's manifests while it is planned; packed
	// holds them once it is (Image.pack), with tables.
	*planning
	packed string
	// SkipIndex is set for charts, files and manifests named by digest:
	// they are pushed to the tag (or by digest) and get no index.
	SkipIndex bool
	repo      int32 // the repository's number (Plan.repositories); here, it fills SkipIndex's padding
	// Err is set when the image cannot load (damaged archive content, an
	// invalid destination reference); nothing is pushed for it.
	Err error
	// Notes are warnings about skipped items, reported when it loads.
	Notes []string

	size   int64       // of the distinct blobs of the manifests
	tables *planTables // the plan's: the host (Reference), what packed names
}

// planning is what an image holds of its manifests while it is planned.
type planning struct {
	// manifests are the manifests to push, distinct, in archive order
	// (see Manifests), and steps the index entries of each archive entry
	// of the image, in order (one step per entry), as the Manifests whose
	// Descriptor they are (an entry that names a manifest again has its
	// own Manifest here, with its own annotations); nil when the only step
	// is the manifests (see Steps).
	manifests []*Manifest
	steps     [][]*Manifest
}

// Manifest is one manifest to push with its blobs. A Manifest keeps its
// index entry in parts (digest as bytes, platform shared, an attestation's
// annotations as the manifest they name) and makes it on demand
// (Descriptor); a plan stores them more compactly still, and makes them
// when asked (Image.Manifests).
type Manifest struct {
	// BlobIDs are the numbers (Source.Stat) of the config and the stored
	// layers (foreign layers with URLs are not stored and not pushed);
	// shared by every Manifest of the same digest (not to be modified). A
	// plan keeps blobs by number, 4 bytes each, and the load makes their
	// Blob when it needs them.
	BlobIDs []int32
	// Attestation marks BuildKit attestation manifests.
	Attestation bool
	// subjectTag says the tag is the attestation's subject tag (made by
	// Tag: some 80 bytes a manifest not kept); tag is the tag otherwise.
	subjectTag bool
	mediaType  mediaType
	size       int32 // at most oras.MaxManifestSize
	tag        string
	sum        [sha256.Size]byte
	entry      *indexEntry
	// subject is set for an attestation whose annotations are exactly
	// BuildKit's two, naming this manifest of the same image.
	subject *Manifest
}

// indexEntry is the platform of a manifest's index entry, shared with
// every equal one of the plan, and its annotations: the archive item's
// (shared with the archive's index), or nil when there are none or
// Manifest.subject stands for them. Manifests of one platform and no
// annotations share one.
type indexEntry struct {
	platform    *ocispec.Platform
	annotations map[string]string
}

// Tag returns the tag the manifest is pushed to; "" pushes it by digest.
func (m *Manifest) Tag() string {
	if !m.subjectTag {
		return m.tag
	}
	var subject string
	if m.subject != nil {
		subject = hex.EncodeToString(m.subject.sum[:])
	} else {
		// (not Digest.Encoded, which panics on a value without ':')
		_, subject, _ = strings.Cut(m.entry.annotations[manifest.AnnotationReferenceDigest], ":")
	}
	// Hangar tags attestations with their subject:
	// <repo>:sha256-<subject hex>.att.
	return "sha256-" + subject + ".att"
}

func (m *Manifest) setTag(tag string) { m.tag, m.subjectTag = tag, false }

// Digest returns the manifest's digest.
func (m *Manifest) Digest() digest.Digest {
	return digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(m.sum[:]))
}

// Descriptor returns the manifest's entry in the image index: media type,
// digest and size, platform and annotations from the archive item. The
// platform and annotations may be shared: not to be modified.
func (m *Manifest) Descriptor() ocispec.Descriptor {
	desc := ocispec.Descriptor{MediaType: m.mediaType.String(), Digest: m.Digest(), Size: int64(m.size), Platform: m.entry.platform, Annotations: m.entry.annotations}
	if m.subject != nil {
		desc.Annotations = map[string]string{
			manifest.AnnotationReferenceDigest: m.subject.Digest().String(),
			manifest.AnnotationReferenceType:   manifest.AttestationManifest,
		}
	}
	return desc
}

// Blob is a blob of a manifest being loaded: what its transfer needs.
type Blob struct {
	Digest digest.Digest
	Size   int64
	// ID is the blob's number in the archive (Source.Stat), from 0 to
	// Plan.Blobs-1: the load keeps what it knows of each blob by number.
	ID int32
}

// Descriptor returns the blob's descriptor (a blob transfer needs no media
// type).
func (b Blob) Descriptor() ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaTypeBlob, Digest: b.Digest, Size: b.Size}
}

// mediaTypeBlob is the media type of blob descriptors: registries store
// blobs as bytes, whatever manifest names them.
const mediaTypeBlob = "application/octet-stream"

// Size returns the bytes of the distinct blobs of the image's manifests.
func (img *Image) Size() int64 { return img.size }

// setSize computes the image's Size from the blob sizes by number.
func (img *Image) setSize(sizes *blobSizes) {
	img.size = 0
	seen := map[int32]bool{}
	for _, m := range img.manifests {
		for _, id := range m.BlobIDs {
			if !seen[id] {
				seen[id] = true
				img.size += sizes.get(id)
			}
		}
	}
}

// Manifests returns the manifests to push, distinct, in archive order. They
// are made from the plan's compact store on each call.
func (img *Image) Manifests() []*Manifest {
	manifests, _ := img.unpack()
	return manifests
}

// Steps returns the index entries of each archive entry of the image, in
// order (one step per entry), as the Manifests whose Descriptor they are:
// an entry that names a manifest again has its own Manifest there, with
// its own annotations. The index is merged step by step, as Hangar loads
// the entries one after the other. They are made on each call, as
// Manifests are.
func (img *Image) Steps() [][]*Manifest {
	manifests, steps := img.unpack()
	return stepsOf(manifests, steps)
}

// stepsOf returns the steps of an image of these manifests and steps (nil
// when the only one is the manifests).
func stepsOf(manifests []*Manifest, steps [][]*Manifest) [][]*Manifest {
	if steps == nil && len(manifests) > 0 {
		return [][]*Manifest{manifests}
	}
	return steps
}

// Reference returns what logs show of the image:
// host[/prefix]/<project>/<name>:<tag>, or @<digest> for an image loaded
// by digest. It is made when asked for: a plan of thousands of images
// keeps no copy.
func (img *Image) Reference() string { return img.tables.host + "/" + img.ref() }

// ref returns repository:tag or repository@digest of an image.
func (img *Image) ref() string {
	if img.Tag == "" {
		return img.Repository + "@" + img.Digest.String()
	}
	return img.Repository + ":" + img.Tag
}

var digestTag = regexp.MustCompile(`^[a-f0-9]{64}$`)

// NewPlan selects and names what a load of src does with opts: image-list
// lookups, destination names (each checked before anything is pushed),
// platform filters and provenance, entries with one destination merged
// into one image. It reads each distinct manifest once, and each config
// once (twice if several manifests name it).
//
// References: hangar-load.md sections 2.3-2.5, 2.8, 2.9; decisions.md D4.
func NewPlan(src Source, lines []ListLine, opts Options) (*Plan, error) {
	host, prefix, err := splitDestination(opts.Destination)
	if err != nil {
		return nil, err
	}
	p := &planner{
		Plan:            &Plan{Host: host, Prefix: prefix},
		src:             src,
		opts:            opts,
		byRef:           map[uint64]*Image{},
		collided:        map[imageKey]*Image{},
		seed:            maphash.MakeSeed(),
		repoNumbers:     map[string]int32{},
		strings:         map[string]string{},
		packer:          newTableBuilder(&planTables{host: host}),
		parsedAt:        make([]int32, src.Blobs()),
		configsRead:     newBitSet(src.Blobs()),
		configPlatforms: map[int32]*ocispec.Platform{},
		failed:          map[int32]error{},
		configFailed:    map[int32]error{},
		configMissing:   map[int32]error{},
		shared:          map[platformKey]*ocispec.Platform{},
		entries:         map[*ocispec.Platform]*indexEntry{},
		sizes:           newBlobSizes(src.Blobs()),
	}
	// The index's entries come one by one and are not kept: the plan
	// takes what it needs of each (without an image list, as it comes;
	// with one, the entries the list names).
	if lines == nil && opts.ImageList == "" {
		err = src.Entries(func(e archive.Image) error {
			p.Entries++
			ref := e.Ref()
			line := &Line{Number: p.Entries, Key: ref}
			p.Lines = append(p.Lines, line)
			return p.add(line, ref, []archive.Image{e})
		})
		if err != nil {
			return nil, err
		}
	} else {
		keys := make([]string, len(lines))
		named := map[string][]archive.Image{}
		for i, l := range lines {
			if l.Kind == LineDefault {
				keys[i] = lookupKey(l.Text, opts.SourceRegistry)
				named[keys[i]] = nil
			}
		}
		err = src.Entries(func(e archive.Image) error {
			p.Entries++
			ref := e.Ref()
			if entries, ok := named[ref]; ok {
				named[ref] = append(entries, e)
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		for i, l := range lines {
			if l.Kind != LineDefault {
				p.Ignored = append(p.Ignored, l)
				continue
			}
			line := &Line{Number: l.Number, Key: l.Text}
			p.Lines = append(p.Lines, line)
			key := keys[i]
			entries := named[key]
			if len(entries) == 0 {
				line.Err = fmt.Errorf("image [%s] %w", key, ErrNotInArchive)
				continue
			}
			if err := p.add(line, key, entries); err != nil {
				return nil, err
			}
		}
	}
	for _, img := range p.merged {
		p.finish(img)
	}
	p.packer.finish()
	p.Blobs = len(p.sizes.small)
	return p.Plan, nil
}

// number gives img the number of its repository (Image.repo), adding the
// repository to p.repositories when numbers has none for it yet; the
// images of a repository share its string.
func (p *Plan) number(numbers map[string]int32, img *Image) {
	n, ok := numbers[img.Repository]
	if !ok {
		n = int32(len(p.repositories))
		numbers[img.Repository] = n
		p.repositories = append(p.repositories, img.Repository)
	}
	img.repo, img.Repository = n, p.repositories[n]
}

// imageKey is the destination of an image, as its ref names it, in the
// strings the image holds.
type imageKey struct {
	repository, tag string
	digest          digest.Digest
}

// planner builds a Plan.
type planner struct {
	*Plan
	src  Source
	opts Options
	// byRef finds the image of a destination by the hash of its
	// imageKey (8 bytes a key rather than 48); the rare key whose hash
	// another took is in collided.
	byRef    map[uint64]*Image
	collided map[imageKey]*Image
	seed     maphash.Seed
	// repoNumbers numbers the repositories (Plan.repositories).
	repoNumbers map[string]int32
	strings     map[string]string // see intern
	packer      *tableBuilder     // fills the images' tables
	merged      []*Image          // unpacked to add entries (planner.add)
	// parsed are the distinct manifests read from the archive, each with
	// its config's platform once read (shared with every equal one), and
	// parsedAt is where each is, by the manifest's blob number (1 + its
	// position in parsed; 0: not read): 4 bytes a blob where maps by
	// number cost some 100 bytes a manifest. A config is rarely named by
	// more than one manifest: configsRead marks those read (a bit each),
	// and configPlatforms keeps the platforms of those read twice, so
	// that none is read a third time. The errors are kept apart (they are
	// rare): failed by manifest, configFailed by config, configMissing by
	// manifest (its config is not in the archive). read counts the
	// manifest bytes read (MaxPlanManifestBytes).
	parsed          []parsedManifest
	parsedAt        []int32
	configsRead     bitSet
	configPlatforms map[int32]*ocispec.Platform
	failed          map[int32]error
	configFailed    map[int32]error
	configMissing   map[int32]error
	shared          map[platformKey]*ocispec.Platform
	entries         map[*ocispec.Platform]*indexEntry // of no annotations
	read            int64
	sizes           blobSizes // of the blobs the manifests name
}

// blobSizes are the sizes of blobs by number: 4 bytes each, the few of
// 4 GiB or more apart.
type blobSizes struct {
	small []uint32
	large map[int32]int64
}

// newBlobSizes returns the sizes of n blobs, all 0.
func newBlobSizes(n int) blobSizes { return blobSizes{small: make([]uint32, n)} }

// set records the size of blob number id.
func (s *blobSizes) set(id int32, size int64) {
	if size > math.MaxUint32 {
		if s.large == nil {
			s.large = map[int32]int64{}
		}
		s.large[id] = size
		size = 0
	} else {
		delete(s.large, id)
	}
	s.small[id] = uint32(size)
}

// get returns the size of blob number id.
func (s *blobSizes) get(id int32) int64 {
	if size, ok := s.large[id]; ok {
		return size
	}
	return int64(s.small[id])
}

// add plans a line whose source names entries of the archive; ref is the
// first entry's source:tag.
func (p *planner) add(line *Line, ref string, entries []archive.Image) error {
	line.Source = ref
	img := p.destination(entries[0], ref)
	fresh := true
	if existing := p.lookup(img); existing != nil {
		img, fresh = existing, false
		if img.planning == nil {
			// rare: unpacked once, and packed when the plan is made
			img.unpackForMore()
			p.merged = append(p.merged, img)
		}
	} else {
		p.store(img)
		p.Images = append(p.Images, img)
	}
	line.Image = img
	img.Lines = append(img.Lines, line)
	for _, e := range entries {
		if err := p.selectManifests(img, e); err != nil {
			return err
		}
	}
	if fresh {
		// Packed now, as if complete, so that a plan of thousands of
		// images holds them packed even before it is made.
		p.finish(img)
	}
	return nil
}

// finish settles the tags and size of an image and packs its manifests.
func (p *planner) finish(img *Image) {
	assignTags(img)
	img.setSize(&p.sizes)
	if len(img.steps) == 1 && slices.Equal(img.steps[0], img.manifests) {
		img.steps = nil // one entry, each manifest once: most images
	}
	img.pack(p.packer)
}

// lookup returns the image of the plan with img's destination, or nil.
func (p *planner) lookup(img *Image) *Image {
	key := img.key()
	if found := p.byRef[maphash.Comparable(p.seed, key)]; found != nil && found.key() == key {
		return found
	}
	return p.collided[key]
}

// store adds img to the images lookup finds.
func (p *planner) store(img *Image) {
	key := img.key()
	h := maphash.Comparable(p.seed, key)
	if _, taken := p.byRef[h]; taken {
		p.collided[key] = img
		return
	}
	p.byRef[h] = img
}

func (img *Image) key() imageKey { return imageKey{img.Repository, img.Tag, img.Digest} }

// destination names the destination image of an archive entry, as Hangar
// does, and checks that the name is a valid reference.
//
// References: hangar-load.md section 2.5.
func (p *planner) destination(e archive.Image, ref string) *Image {
	n := ParseName(ref)
	name, tag := n.Name, e.Tag
	var dgst digest.Digest
	if base, ok := strings.CutSuffix(name, "@sha256"); ok && digestTag.MatchString(tag) {
		name, tag, dgst = base, "", digest.NewDigestFromEncoded(digest.SHA256, e.Tag)
	}
	project := n.Project
	if p.opts.Project != "" {
		project = p.opts.Project
	}
	repo := project + "/" + name
	if p.Prefix != "" {
		repo = p.Prefix + "/" + repo
	}
	img := &Image{Source: ref, Project: p.intern(project), Repository: repo, Tag: p.intern(tag), Digest: dgst, tables: p.packer.t, planning: &planning{}}
	p.number(p.repoNumbers, img)
	if tag == "" && dgst == "" {
		img.Err = fmt.Errorf("%w: %s has an empty tag", ErrInvalidReference, e.Source)
	} else {
		img.Err = checkReference(p.Host, repo, tag)
	}
	return img
}

// intern returns the planner's copy of s, so that the images of a plan share
// their projects and tags (their repositories are shared by number).
// unique.Make would keep a node of some 100 bytes for each string as long
// as the plan lives; this map goes with the planner.
func (p *planner) intern(s string) string {
	if shared, ok := p.strings[s]; ok {
		return shared
	}
	p.strings[s] = s
	return s
}

// checkReference reports a destination repository or tag that is not
// valid by the distribution spec; tag "" is a push by digest.
func checkReference(host, repo, tag string) error {
	ref := registry.Reference{Registry: host, Repository: repo, Reference: tag}
	if err := ref.ValidateRepository(); err != nil {
		return fmt.Errorf("%w: repository %q: names are lower-case letters, digits and separators (. _ __ - /)", ErrInvalidReference, repo)
	}
	if tag == "" {
		return nil
	}
	if err := ref.ValidateReferenceAsTag(); err != nil {
		return fmt.Errorf("%w: tag %q of %s: a tag is 1 to 128 of [A-Za-z0-9_.-], not starting with . or -", ErrInvalidReference, tag, repo)
	}
	return nil
}

// lookupKey returns the archive source:tag an image-list line names.
func lookupKey(line, sourceRegistry string) string {
	n := ParseName(line)
	if sourceRegistry != "" {
		n.Registry = sourceRegistry
	}
	return n.String()
}

// splitDestination splits -d into the registry host and a path prefix,
// and checks both.
func splitDestination(dest string) (host, prefix string, err error) {
	d := strings.TrimPrefix(strings.TrimPrefix(dest, "https://"), "http://")
	d = strings.Trim(d, "/")
	host, prefix, _ = strings.Cut(d, "/")
	if host == "" || (registry.Reference{Registry: host}).ValidateRegistry() != nil {
		return "", "", fmt.Errorf("%w: destination %q: give host[:port][/prefix]", ErrInvalidReference, dest)
	}
	if prefix != "" {
		if (registry.Reference{Registry: host, Repository: prefix}).ValidateRepository() != nil {
			return "", "", fmt.Errorf("%w: destination %q: the path %q is not a valid repository prefix (lower-case letters, digits and separators)", ErrInvalidReference, dest, prefix)
		}
	}
	return host, prefix, nil
}

// allowed reports whether a platform value passes a filter list: the list is
// empty, the value is empty, or the list holds it (Hangar's FilterSet).
func allowed(list []string, value string) bool {
	if len(list) == 0 || value == "" {
		return true
	}
	for _, v := range list {
		if v == value {
			return true
		}
	}
	return false
}

func itemPlatform(item archive.Manifest) ocispec.Platform {
	return ocispec.Platform{Architecture: item.Arch, OS: item.OS, Variant: item.Variant, OSVersion: item.OSVersion, OSFeatures: item.OSFeatures}
}

// selectManifests adds the manifests of entry e that pass the filters to img,
// and the entry's index entries as one step.
//
// References: hangar-load.md section 2.8 steps 5-6, with decisions.md D4
// (skip only the item that does not pass, attestations follow
// --provenance).
func (p *planner) selectManifests(img *Image, e archive.Image) error {
	if img.Err != nil {
		return nil
	}
	pass := map[digest.Digest]bool{}
	for _, m := range e.Images {
		if m.Digest != "" && !manifest.IsAttestation(itemPlatform(m), m.Annotations) && allowed(p.opts.Arch, m.Arch) && allowed(p.opts.OS, m.OS) {
			pass[m.Digest] = true
		}
	}
	var step []*Manifest
	for _, item := range e.Images {
		if item.Digest == "" {
			img.Notes = append(img.Notes, fmt.Sprintf("Skip invalid image [%s] [%s] [%s]", e.Ref(), item.Arch, item.OS))
			continue
		}
		att := manifest.IsAttestation(itemPlatform(item), item.Annotations)
		if att {
			if !p.opts.Provenance || !pass[digest.Digest(item.Annotations[manifest.AnnotationReferenceDigest])] {
				continue
			}
		} else if !pass[item.Digest] {
			continue
		}
		m, note, err := p.manifest(img, e, item, att)
		if errors.Is(err, ErrPlanTooLarge) {
			return err
		}
		if err != nil {
			img.Err = fmt.Errorf("arch [%s] os [%s]: %w", item.Arch, item.OS, err)
			return nil
		}
		if note != "" {
			img.Notes = append(img.Notes, note)
			continue
		}
		step = append(step, m)
		if i := indexOfDigest(img.manifests, item.Digest); i >= 0 {
			// The same manifest again: pushed once; the later entry
			// claims its tag.
			img.manifests[i].setTag(m.Tag())
			continue
		}
		img.manifests = append(img.manifests, m)
	}
	if len(step) > 0 {
		img.steps = append(img.steps, step)
	}
	if img.Digest != "" && indexOfDigest(img.manifests, img.Digest) >= 0 {
		// the digest names a manifest: push it (by digest), no index
		img.SkipIndex = true
	}
	return nil
}

// indexOfDigest returns the position of the manifest with digest d in ms,
// or -1.
func indexOfDigest(ms []*Manifest, d digest.Digest) int {
	sum, ok := digestcheck.SHA256Sum(d)
	if !ok {
		return -1
	}
	for i, m := range ms {
		if m.sum == sum {
			return i
		}
	}
	return -1
}

// manifest returns the Manifest of an archive item: its blobs, its index
// entry and its destination tag (Tag, before assignTags settles tags that
// several manifests claim). A non-empty note says why the item is skipped.
func (p *planner) manifest(img *Image, e archive.Image, item archive.Manifest, att bool) (*Manifest, string, error) {
	at, err := p.parse(item)
	if err != nil {
		return nil, "", err
	}
	pm := p.parsed[at]
	m := &Manifest{BlobIDs: pm.blobs, Attestation: att}
	p.describe(m, img, pm, item)
	if pm.chart {
		img.SkipIndex = true
		m.setTag(img.Tag)
		return m, "", nil
	}
	platform, err := p.platform(at)
	if err != nil {
		return nil, "", err
	}
	switch {
	case manifest.IsAttestation(platform, item.Annotations):
		// Hangar tags attestations whose config says unknown/unknown
		// with their subject (see Tag).
		m.subjectTag = true
	case !allowed(p.opts.Arch, platform.Architecture) || !allowed(p.opts.OS, platform.OS):
		return nil, fmt.Sprintf("Skip loading manifest %s of [%s]: its config platform %s/%s is not selected", item.Digest, e.Ref(), platform.OS, platform.Architecture), nil
	default:
		m.setTag(manifest.PlatformTag(img.Tag, platform, m.Descriptor()))
	}
	if img.Tag == "" || !p.opts.PlatformTags {
		m.setTag("")
	}
	if tag := m.Tag(); tag != "" {
		if err := checkReference(p.Host, img.Repository, tag); err != nil {
			return nil, "", fmt.Errorf("manifest %s: %w", item.Digest, err)
		}
	}
	return m, "", nil
}

// describe sets the index entry of an item's manifest, as
// manifest.Descriptor makes it, but sharing rather than copying: the
// platform with every equal one of the plan, the annotations with the
// archive's index (neither is modified), or, for an attestation with
// BuildKit's two annotations naming a manifest of img, that manifest.
func (p *planner) describe(m *Manifest, img *Image, pm parsedManifest, item archive.Manifest) {
	m.sum, _ = digestcheck.SHA256Sum(item.Digest) // parse checked it
	m.size, m.mediaType = pm.size, pm.mediaType
	annotations := item.Annotations
	if len(annotations) == 0 {
		annotations = nil
	}
	if len(annotations) == 2 && annotations[manifest.AnnotationReferenceType] == manifest.AttestationManifest {
		subject := digest.Digest(annotations[manifest.AnnotationReferenceDigest])
		if i := indexOfDigest(img.manifests, subject); i >= 0 {
			m.subject, annotations = img.manifests[i], nil
		}
	}
	platform := p.share(itemPlatform(item))
	if annotations != nil {
		m.entry = &indexEntry{platform: platform, annotations: annotations}
		return
	}
	if m.entry = p.entries[platform]; m.entry == nil {
		m.entry = &indexEntry{platform: platform}
		p.entries[platform] = m.entry
	}
}

// share returns the plan's copy of platform, shared with every equal one
// (not to be modified), making it on first use.
func (p *planner) share(platform ocispec.Platform) *ocispec.Platform {
	key := platformKey{platform.Architecture, platform.OS, platform.Variant, platform.OSVersion, strings.Join(platform.OSFeatures, "\x00")}
	shared := p.shared[key]
	if shared == nil {
		platform.OSFeatures = slices.Clone(platform.OSFeatures)
		shared = &platform
		p.shared[key] = shared
	}
	return shared
}

// platformKey identifies a platform, for sharing.
type platformKey struct{ arch, os, variant, osVersion, features string }

// assignTags gives each tag claimed by several manifests of an image to
// the last one that claims it, as Hangar, loading entries one after the
// other, leaves it; the others are pushed by digest only.
func assignTags(img *Image) {
	byDigest := make(map[[sha256.Size]byte]*Manifest, len(img.manifests))
	for _, m := range img.manifests {
		byDigest[m.sum] = m
	}
	last := map[string]*Manifest{}
	for _, step := range img.Steps() {
		for _, d := range step {
			if m := byDigest[d.sum]; m.Tag() != "" {
				last[m.Tag()] = m
			}
		}
	}
	for _, m := range img.manifests {
		if tag := m.Tag(); tag != "" && last[tag] != m {
			m.setTag("")
		}
	}
}

// mediaType is the media type of a manifest the plan loads.
type mediaType uint8

const (
	mediaTypeOCI    mediaType = iota // ocispec.MediaTypeImageManifest
	mediaTypeDocker                  // manifest.MediaTypeDockerManifest
)

func (t mediaType) String() string {
	if t == mediaTypeDocker {
		return manifest.MediaTypeDockerManifest
	}
	return ocispec.MediaTypeImageManifest
}

// parsedManifest is what the planner keeps of a distinct manifest.
type parsedManifest struct {
	blobs     []int32
	platform  *ocispec.Platform // its config's, once read (see planner.platform)
	size      int32
	id        int32 // the manifest's blob number
	config    int32 // blob number; -1: not in the archive (planner.configMissing has why)
	mediaType mediaType
	chart     bool
}

// parse reads, checks and summarises the manifest of an item, once per
// digest; the summary is p.parsed[at].
func (p *planner) parse(item archive.Manifest) (at int, err error) {
	if item.Digest.Algorithm() != digest.SHA256 {
		return 0, fmt.Errorf("manifest %s: %w", item.Digest, archive.ErrUnsupportedDigest)
	}
	id, size, err := p.src.Stat(item.Digest)
	if err != nil {
		return 0, fmt.Errorf("read manifest: %w", err)
	}
	if n := p.parsedAt[id]; n > 0 {
		return int(n - 1), nil
	}
	if err, ok := p.failed[id]; ok {
		return 0, err
	}
	pm := parsedManifest{id: id}
	if err := p.readManifest(item, size, &pm); err != nil {
		p.failed[id] = err
		return 0, err
	}
	p.parsed = append(p.parsed, pm)
	p.parsedAt[id] = int32(len(p.parsed))
	return len(p.parsed) - 1, nil
}

// readManifest reads the manifest of an item, of size bytes in the archive.
func (p *planner) readManifest(item archive.Manifest, size int64, pm *parsedManifest) error {
	if size > oras.MaxManifestSize {
		return fmt.Errorf("manifest %s is %d bytes, more than the %d a registry accepts", item.Digest, size, oras.MaxManifestSize)
	}
	if p.read += size; p.read > MaxPlanManifestBytes {
		return fmt.Errorf("%w: its selected manifests hold more than %d MiB; load it in parts with an image list (-f)", ErrPlanTooLarge, MaxPlanManifestBytes>>20)
	}
	body, err := p.src.ReadBlob(item.Digest, oras.MaxManifestSize)
	if err != nil {
		return fmt.Errorf("read manifest: %w", err)
	}
	var parsed ocispec.Manifest
	if err := json.Unmarshal(body, &parsed); err != nil {
		return fmt.Errorf("manifest %s is not valid JSON: %v", item.Digest, err)
	}
	pm.size = int32(len(body)) // at most oras.MaxManifestSize
	mt := item.MediaType
	if mt == "" {
		mt = parsed.MediaType
	}
	switch mt {
	case ocispec.MediaTypeImageManifest:
		pm.mediaType = mediaTypeOCI
	case manifest.MediaTypeDockerManifest:
		pm.mediaType = mediaTypeDocker
	default:
		return fmt.Errorf("manifest %s has unsupported media type %q", item.Digest, mt)
	}
	if parsed.Config.Digest == "" {
		return fmt.Errorf("manifest %s has no config", item.Digest)
	}
	pm.chart = parsed.Config.MediaType == manifest.MediaTypeHelmConfig
	pm.blobs = make([]int32, 0, 1+len(parsed.Layers))
	pm.config = -1
	for i, d := range append([]ocispec.Descriptor{parsed.Config}, parsed.Layers...) {
		if len(d.URLs) > 0 {
			continue // foreign layer: not stored, not pushed
		}
		if err := digestcheck.Validate(d.Digest); err != nil {
			return fmt.Errorf("manifest %s names invalid blob digest %q", item.Digest, d.Digest)
		}
		id, size, err := p.src.Stat(d.Digest)
		if err != nil {
			return err
		}
		if size != d.Size {
			return fmt.Errorf("blob %s is %d bytes in the archive, the manifest says %d", d.Digest, size, d.Size)
		}
		p.sizes.set(id, size)
		pm.blobs = append(pm.blobs, id)
		if i == 0 {
			pm.config = id
		}
	}
	if pm.config < 0 { // a foreign config, not among the blobs pushed
		if pm.config, _, err = p.src.Stat(parsed.Config.Digest); err != nil {
			pm.config = -1
			p.configMissing[pm.id] = fmt.Errorf("read config: %w", err)
		}
	}
	return nil
}

// imageConfig is the part of an image config that names its platform.
type imageConfig struct {
	Architecture string   `json:"architecture"`
	OS           string   `json:"os"`
	OSVersion    string   `json:"os.version,omitempty"`
	OSFeatures   []string `json:"os.features,omitempty"`
	Variant      string   `json:"variant,omitempty"`
}

// platform returns the platform of the image config of manifest
// p.parsed[at], read at most twice per config (see planner.parsed); a
// config that is not JSON is an error, as in Hangar.
func (p *planner) platform(at int) (ocispec.Platform, error) {
	pm := &p.parsed[at]
	if pm.config < 0 {
		return ocispec.Platform{}, p.configMissing[pm.id]
	}
	if pm.platform != nil {
		return *pm.platform, nil
	}
	if err, ok := p.configFailed[pm.config]; ok {
		return ocispec.Platform{}, err
	}
	if shared, ok := p.configPlatforms[pm.config]; ok {
		pm.platform = shared
		return *shared, nil
	}
	platform, err := p.readPlatform(pm.config)
	if err != nil {
		p.configFailed[pm.config] = err
		return ocispec.Platform{}, err
	}
	pm.platform = p.share(platform)
	if p.configsRead.has(pm.config) {
		p.configPlatforms[pm.config] = pm.platform
	}
	p.configsRead.add(pm.config)
	return *pm.platform, nil
}

// bitSet is a set of blob numbers, a bit each.
type bitSet []uint64

// newBitSet returns an empty set of numbers below n.
func newBitSet(n int) bitSet { return make(bitSet, (n+63)/64) }

func (b bitSet) add(id int32)      { b[id/64] |= 1 << (id % 64) }
func (b bitSet) has(id int32) bool { return b[id/64]&(1<<(id%64)) != 0 }

// readPlatform reads the platform of image config number id.
func (p *planner) readPlatform(id int32) (ocispec.Platform, error) {
	config, _, err := p.src.Blob(id)
	if err != nil {
		return ocispec.Platform{}, fmt.Errorf("read config: %w", err)
	}
	b, err := p.src.ReadBlob(config, oras.MaxManifestSize)
	if err != nil {
		return ocispec.Platform{}, fmt.Errorf("read config: %w", err)
	}
	var cfg imageConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		return ocispec.Platform{}, fmt.Errorf("config %s is not valid JSON: %v", config, err)
	}
	return ocispec.Platform{Architecture: cfg.Architecture, OS: cfg.OS, OSVersion: cfg.OSVersion, OSFeatures: cfg.OSFeatures, Variant: cfg.Variant}, nil
}
