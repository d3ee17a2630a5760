package loader

import (
	"encoding/binary"
	"slices"
)

// A plan packs each image's manifests as soon as the image is planned:
// some 40 bytes a manifest (its digest, size and flags, and by number its
// index entry, tag and blob list) instead of a Manifest of 96 bytes with
// its tag string and a pointer to it, about 120. Image.Manifests and
// Image.Steps make Manifests from the packed form when asked; a load asks
// once per image, when it prepares the image.

// planTables are what the images of a plan share: the destination host,
// and the index entries, tags and blob lists that packed manifests name by
// number. The blob lists are one array, each distinct list once (the
// manifests of one digest share theirs, however many images name it).
type planTables struct {
	host    string
	entries []*indexEntry
	tags    []string // tags[0] is ""
	blobIDs []int32
}

// tableBuilder numbers the index entries, tags and blob lists of the
// images being packed; finish ends it.
type tableBuilder struct {
	t       *planTables
	entryAt map[*indexEntry]uint64
	tagAt   map[string]uint64
	blobsAt map[*int32]uint64 // by the list's first element: the planner shares lists
}

// newTableBuilder returns a builder that fills t.
func newTableBuilder(t *planTables) *tableBuilder {
	t.tags = append(t.tags[:0], "")
	return &tableBuilder{t: t, entryAt: map[*indexEntry]uint64{}, tagAt: map[string]uint64{"": 0}, blobsAt: map[*int32]uint64{}}
}

// finish gives the tables arrays of their length.
func (b *tableBuilder) finish() {
	b.t.entries, b.t.tags, b.t.blobIDs = slices.Clone(b.t.entries), slices.Clone(b.t.tags), slices.Clone(b.t.blobIDs)
}

// blobs returns where the blob list ids is in the tables.
func (b *tableBuilder) blobs(ids []int32) uint64 {
	if len(ids) == 0 {
		return 0
	}
	start, ok := b.blobsAt[&ids[0]]
	if !ok || !slices.Equal(b.t.blobIDs[start:start+uint64(len(ids))], ids) {
		start = uint64(len(b.t.blobIDs))
		b.t.blobIDs = append(b.t.blobIDs, ids...)
		b.blobsAt[&ids[0]] = start
	}
	return start
}

// entry returns the number of index entry e in the tables.
func (b *tableBuilder) entry(e *indexEntry) uint64 { return number(b.entryAt, &b.t.entries, e) }

// tag returns the number of tag in the tables.
func (b *tableBuilder) tag(tag string) uint64 { return number(b.tagAt, &b.t.tags, tag) }

// number returns the position of v in table, appending it (and noting its
// position in at) on first use.
func number[T comparable](at map[T]uint64, table *[]T, v T) uint64 {
	n, ok := at[v]
	if !ok {
		n = uint64(len(*table))
		*table = append(*table, v)
		at[v] = n
	}
	return n
}

// Flags of a packed manifest, above its media type (the low bits).
const (
	packedAttestation = 1 << (4 + iota)
	packedSubjectTag
	packedSubject
	packedMediaType = 1<<4 - 1
)

// pack replaces the image's manifests and steps with their packed form:
// the number of manifests, each manifest, the number of steps
// (0: the only step is the manifests), and for each step its length and
// its manifests, each the position of one of the image's manifests or,
// for a manifest of its own, the number of manifests followed by it.
func (img *Image) pack(b *tableBuilder) {
	if len(img.manifests) == 0 && len(img.steps) == 0 {
		img.planning, img.packed = nil, ""
		return
	}
	at := make(map[*Manifest]uint64, len(img.manifests))
	for i, m := range img.manifests {
		at[m] = uint64(i)
	}
	buf := make([]byte, 0, 64*len(img.manifests))
	buf = binary.AppendUvarint(buf, uint64(len(img.manifests)))
	for _, m := range img.manifests {
		buf = b.appendManifest(buf, m, at)
	}
	buf = binary.AppendUvarint(buf, uint64(len(img.steps)))
	for _, step := range img.steps {
		buf = binary.AppendUvarint(buf, uint64(len(step)))
		for _, m := range step {
			if i, ok := at[m]; ok {
				buf = binary.AppendUvarint(buf, i)
				continue
			}
			buf = binary.AppendUvarint(buf, uint64(len(img.manifests)))
			buf = b.appendManifest(buf, m, at)
		}
	}
	img.planning, img.packed = nil, string(buf)
}

// appendManifest appends the packed form of m to buf; at gives the
// positions of the image's manifests, among which is m's subject (the
// planner names a subject only among them).
func (b *tableBuilder) appendManifest(buf []byte, m *Manifest, at map[*Manifest]uint64) []byte {
	buf = append(buf, m.sum[:]...)
	buf = binary.AppendUvarint(buf, uint64(m.size))
	flags := byte(m.mediaType) & packedMediaType
	if m.Attestation {
		flags |= packedAttestation
	}
	if m.subjectTag {
		flags |= packedSubjectTag
	}
	subject, hasSubject := at[m.subject]
	if m.subject != nil && hasSubject {
		flags |= packedSubject
	}
	buf = append(buf, flags)
	buf = binary.AppendUvarint(buf, b.entry(m.entry))
	if flags&packedSubject != 0 {
		buf = binary.AppendUvarint(buf, subject)
	}
	buf = binary.AppendUvarint(buf, b.tag(m.tag))
	buf = binary.AppendUvarint(buf, uint64(len(m.BlobIDs)))
	if len(m.BlobIDs) > 0 {
		buf = binary.AppendUvarint(buf, b.blobs(m.BlobIDs))
	}
	return buf
}

// unpack returns the image's manifests and steps: as planned while the
// image is planned (or was made by hand), else made from the packed form.
func (img *Image) unpack() ([]*Manifest, [][]*Manifest) {
	if img.planning != nil {
		return img.manifests, img.steps
	}
	if img.packed == "" {
		return nil, nil
	}
	r := packReader{s: img.packed, t: img.tables}
	n := r.uvarint()
	all := make([]Manifest, n)
	manifests := make([]*Manifest, n)
	for i := range manifests {
		manifests[i] = &all[i]
	}
	for _, m := range manifests {
		r.manifest(m, manifests)
	}
	var steps [][]*Manifest
	if count := r.uvarint(); count > 0 {
		steps = make([][]*Manifest, count)
		for i := range steps {
			steps[i] = make([]*Manifest, r.uvarint())
			for j := range steps[i] {
				if k := r.uvarint(); k < n {
					steps[i][j] = manifests[k]
					continue
				}
				m := new(Manifest)
				r.manifest(m, manifests)
				steps[i][j] = m
			}
		}
	}
	return manifests, steps
}

// unpackForMore makes the image's manifests and steps Manifests again, for
// the planner to add an entry: the steps are listed even where the only
// one is the manifests (the entry adds a step).
func (img *Image) unpackForMore() {
	manifests, steps := img.unpack()
	img.planning, img.packed = &planning{manifests: manifests, steps: stepsOf(manifests, steps)}, ""
}

// packReader reads the packed form of an image (see Image.pack), which
// the plan wrote: it is not checked as input would be.
type packReader struct {
	s string
	t *planTables
}

// uvarint reads a varint (binary.AppendUvarint's).
func (r *packReader) uvarint() uint64 {
	var v uint64
	for shift := 0; ; shift += 7 {
		b := r.s[0]
		r.s = r.s[1:]
		v |= uint64(b&0x7f) << shift
		if b < 0x80 {
			return v
		}
	}
}

// manifest reads a manifest into m; subjects are the manifests a subject
// may be.
func (r *packReader) manifest(m *Manifest, subjects []*Manifest) {
	copy(m.sum[:], r.s)
	r.s = r.s[len(m.sum):]
	m.size = int32(r.uvarint())
	flags := r.s[0]
	r.s = r.s[1:]
	m.mediaType = mediaType(flags & packedMediaType)
	m.Attestation = flags&packedAttestation != 0
	m.subjectTag = flags&packedSubjectTag != 0
	m.entry = r.t.entries[r.uvarint()]
	if flags&packedSubject != 0 {
		m.subject = subjects[r.uvarint()]
	}
	m.tag = r.t.tags[r.uvarint()]
	if n := r.uvarint(); n > 0 {
		start := r.uvarint()
		m.BlobIDs = r.t.blobIDs[start : start+n : start+n]
	}
}
