package archive

import (
	"archive/zip"
	"bytes"
	"cmp"
	"compress/flate"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"io/fs"
	"math"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/opencontainers/go-digest"

	"github.com/cnrancher/docker-hangar/internal/digestcheck"
)

// Entry names inside an archive.
const (
	// IndexName is the name of the top-level index entry.
	IndexName = "index.json"
	// BlobPrefix prefixes the hex of a sha256 digest in the name of a
	// blob entry: share/sha256/<hex>.
	BlobPrefix = "share/sha256/"
)

// Reader serves the index and the blobs of one Hangar archive. It is safe
// for concurrent use.
type Reader struct {
	f *os.File
	// records is where central directory records are read from: f (a
	// test counts the reads).
	records io.ReaderAt
	size    int64
	blobs   []blobRef // share/sha256/<hex> entries, sorted by digest, the first of each name
	index   zipEntry  // index.json
	// base is the offset of the archive in the file (data before it, as
	// in a self-extracting archive), and dir that of its central
	// directory in the file (blobRef.record counts from it).
	base, dir int64
}

// blobRef is what the reader keeps of the zip entry of a blob: 8 bytes,
// the first 4 of its sha256 (big-endian: they sort as the digest does) and
// where its central directory record is, from the directory's start. The
// rest (the whole name, the sizes, where the data is) is read from the
// record when the blob is looked up, so that an archive of many blobs
// costs little memory; digests that share the prefix (a few in an archive
// of 100,000 blobs) are told apart by the names in their records.
type blobRef struct {
	prefix uint32
	record uint32
}

// Open opens the archive at path, indexes its central directory, and reads,
// parses and validates its top-level index.json. Damaged archives give an
// error wrapping one of the sentinel errors of this package.
//
// Anything but a regular file (after symbolic links: a directory, a named
// pipe, a device) is refused at once with ErrNotArchive, without waiting
// for it.
//
// Every entry name must be a local path (ErrUnsafeName). Where a name
// appears twice, the first entry in central-directory order is used, as
// Hangar does. Of the entries, the reader keeps only those of the blobs
// (about 64 bytes each).
func Open(path string) (*Reader, error) {
	f, size, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	r, err := newReader(path, f, size)
	if err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

// openRegular opens the file at path for reading, refusing what is not a
// regular file (after symbolic links) before opening it: open(2) of a named
// pipe blocks until a writer comes, and a device may never end. The check
// is made again on the open file, which is opened so that it cannot block
// (openNonBlocking), in case the path changed in between.
func openRegular(path string) (*os.File, int64, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, 0, err
	}
	if err := checkRegular(path, fi.Mode()); err != nil {
		return nil, 0, err
	}
	f, err := openNonBlocking(path)
	if err != nil {
		return nil, 0, err
	}
	if fi, err = f.Stat(); err == nil {
		err = checkRegular(path, fi.Mode())
	}
	if err != nil {
		f.Close()
		return nil, 0, err
	}
	return f, fi.Size(), nil
}

// checkRegular returns an error wrapping ErrNotArchive unless m is the mode
// of a regular file.
func checkRegular(path string, m fs.FileMode) error {
	if m.IsRegular() {
		return nil
	}
	kind := "a " + m.Type().String()
	switch {
	case m.IsDir():
		kind = "a directory"
	case m&fs.ModeNamedPipe != 0:
		kind = "a named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		kind = "a socket"
	case m&fs.ModeCharDevice != 0:
		kind = "a character device"
	case m&fs.ModeDevice != 0:
		kind = "a device"
	case m&fs.ModeIrregular != 0:
		kind = "an irregular file"
	}
	return fmt.Errorf("open %s: %w: %s, not a regular file", path, ErrNotArchive, kind)
}

func newReader(path string, f *os.File, size int64) (*Reader, error) {
	dir, err := scanDirectory(f, size)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		return nil, fmt.Errorf("open %s: %w: %w%s", path, ErrNotArchive, err, oldFormatHint(f))
	}
	if dir.unsafeName != nil {
		return nil, fmt.Errorf("open %s: %w: %q", path, ErrUnsafeName, dir.unsafeName)
	}
	r := &Reader{f: f, records: f, size: size, blobs: dir.blobs, base: dir.base, dir: dir.dir}
	if err := r.checkIndex(dir.index); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	r.index = *dir.index
	return r, nil
}

// scannedDirectory is what Open keeps of the central directory.
type scannedDirectory struct {
	blobs      []blobRef // sorted by digest, the first entry of each
	dir        int64     // the central directory's offset in the file
	base       int64     // of the archive in the file
	index      *zipEntry // the first index.json, if any
	unsafeName []byte    // the first name that is not a local path, if any
}

// scanDirectory reads the central directory of the zip file r of size
// bytes: the blob table, the index entry, the first unsafe name. Errors are
// those of zip.NewReader.
func scanDirectory(r io.ReaderAt, size int64) (*scannedDirectory, error) {
	dir, err := readDirectoryEnd(r, size)
	if err != nil {
		return nil, err
	}
	s := &scannedDirectory{}
	// The table is made as it is kept (8 bytes an entry: an archive of
	// 100,000 blobs held 5 MB of full digests here while it was sorted).
	blobs := make([]blobRef, 0, dir.sizeHint(1<<18))
	s.base, s.dir = dir.baseOffset, dir.baseOffset+dir.dirOffset
	var tooLarge bool
	err = dir.each(func(name []byte, e *zipEntry, record int64) {
		switch {
		case !isLocalName(name):
			if s.unsafeName == nil {
				s.unsafeName = append([]byte{}, name...) // not nil when empty
			}
		case string(name) == IndexName:
			if s.index == nil {
				s.index = new(*e)
			}
		case bytes.HasPrefix(name, blobPrefix):
			if sum, ok := digestcheck.DecodeSHA256Hex(name[len(blobPrefix):]); ok && len(blobs) < math.MaxInt32 {
				tooLarge = tooLarge || record-s.dir > math.MaxUint32
				blobs = append(blobs, blobRef{prefix: binary.BigEndian.Uint32(sum[:]), record: uint32(record - s.dir)})
			}
		}
	})
	if err != nil {
		return nil, err
	}
	if tooLarge {
		return nil, fmt.Errorf("%w: the central directory holds more than 4 GiB of records", zip.ErrFormat)
	}
	// Sorted by digest, the first entry of each name wins. Records come
	// in directory order, so among entries of one prefix the first is the
	// one of the lowest record; entries that share a prefix (rare) are
	// told apart, and their duplicates found, by the names in their
	// records.
	slices.SortFunc(blobs, func(a, b blobRef) int {
		return cmp.Or(cmp.Compare(a.prefix, b.prefix), cmp.Compare(a.record, b.record))
	})
	out := blobs[:0]
	for run := blobs; len(run) > 0; {
		n := 1
		for n < len(run) && run[n].prefix == run[0].prefix {
			n++
		}
		if n == 1 {
			out = append(out, run[0])
		} else {
			same, err := s.sortRun(r, size, run[:n])
			if err != nil {
				return nil, err
			}
			out = append(out, same...)
		}
		run = run[n:]
	}
	s.blobs = slices.Clone(out) // its own array: the scan's was sized by a guess
	return s, nil
}

// sortRun orders entries that share a prefix, in directory order, by the
// digests their records name, and returns them without the later entries
// of a name. It reuses run.
func (s *scannedDirectory) sortRun(r io.ReaderAt, size int64, run []blobRef) ([]blobRef, error) {
	type named struct {
		ref blobRef
		sum [sha256.Size]byte
	}
	list := make([]named, len(run))
	for i, b := range run {
		var e zipEntry
		sum, ok, err := readBlobRecord(r, size, s.dir+int64(b.record), s.base, &e)
		if err == nil && !ok {
			err = zip.ErrFormat
		}
		if err != nil {
			return nil, err
		}
		list[i] = named{b, sum}
	}
	slices.SortStableFunc(list, func(a, b named) int { return bytes.Compare(a.sum[:], b.sum[:]) })
	list = slices.CompactFunc(list, func(a, b named) bool { return a.sum == b.sum })
	out := run[:0]
	for _, n := range list {
		out = append(out, n.ref)
	}
	return out, nil
}

// blobPrefix is BlobPrefix as bytes.
var blobPrefix = []byte(BlobPrefix)

// checkIndex checks the top-level index.json, bounded by MaxIndexSize, in
// two passes over its entry, neither of which holds it: the first checks
// its size, CRC-32 and the memory its decoded form would take
// (sizeEstimate); the second decodes and validates it (decodeIndex),
// keeping nothing. Index and Entries decode it again: a load decodes it
// twice (about 18 ms for 400 images, 210 ms for 4000 here), because the
// version, which Hangar writes after the list, must be checked, and every
// entry validated, before any entry is planned.
func (r *Reader) checkIndex(e *zipEntry) error {
	if e == nil {
		return ErrNoIndex
	}
	if e.usize > MaxIndexSize {
		return fmt.Errorf("%w: %s is %d bytes, the limit is %d", ErrIndexTooLarge, IndexName, e.usize, MaxIndexSize)
	}
	var est sizeEstimate
	if err := r.streamEntry(e, func(rd io.Reader) error {
		_, err := io.Copy(&est, rd)
		return err
	}); err != nil {
		return fmt.Errorf("%w: read %s: %w", ErrInvalidIndex, IndexName, err)
	}
	if err := checkDecodedSize(est.size(), est.bytes); err != nil {
		return err
	}
	_, err := r.streamIndex(e, func(Image) error { return nil })
	return err
}

// streamIndex decodes the index.json of entry e (decodeIndex), reading
// its entry to the end for the entry's checks.
func (r *Reader) streamIndex(e *zipEntry, each func(Image) error) (*Index, error) {
	var idx *Index
	var decodeErr error
	if err := r.streamEntry(e, func(rd io.Reader) error {
		idx, decodeErr = decodeIndex(rd, each)
		if decodeErr != nil {
			return nil
		}
		_, err := io.Copy(io.Discard, rd) // to the end, for the checks
		return err
	}); err != nil {
		return nil, fmt.Errorf("%w: read %s: %w", ErrInvalidIndex, IndexName, err)
	}
	return idx, decodeErr
}

// streamEntry gives fn a stream of the data of entry e that, at its end,
// checks the entry's size and CRC-32 as zip.File.Open does (an error
// instead of io.EOF); fn must read it to the end for the checks.
func (r *Reader) streamEntry(e *zipEntry, fn func(io.Reader) error) error {
	rd, c, err := openEntry(r.f, r.size, e)
	if err != nil {
		return err
	}
	if c != nil {
		defer c.Close()
	}
	return fn(&checkedEntry{r: io.LimitReader(rd, int64(e.usize)+1), e: e, crc: crc32.NewIEEE()})
}

// checkedEntry is the data of a zip entry, checked at its end.
type checkedEntry struct {
	r   io.Reader
	e   *zipEntry
	crc hash.Hash32
	n   uint64
}

func (c *checkedEntry) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += uint64(n)
	c.crc.Write(p[:n])
	switch {
	case c.n > c.e.usize:
		return n, zip.ErrFormat
	case err == io.EOF && c.n < c.e.usize:
		return n, io.ErrUnexpectedEOF
	case err == io.EOF && c.e.crc != 0 && c.crc.Sum32() != c.e.crc: // a CRC-32 that seems set
		return n, zip.ErrChecksum
	}
	return n, err
}

// oldFormatHint recognises the gzip and zstd streams of Hangar v1.6 and
// older, and returns a hint for the error message.
func oldFormatHint(f *os.File) string {
	var magic [4]byte
	if n, _ := f.ReadAt(magic[:], 0); n < 4 {
		return ""
	}
	if (magic[0] == 0x1f && magic[1] == 0x8b) || bytes.Equal(magic[:], []byte{0x28, 0xb5, 0x2f, 0xfd}) {
		return " (compressed tar archives of hangar v1.6 and older are not supported: load them with hangar v1.6)"
	}
	return ""
}

// isLocalName reports whether an entry name is a local, slash-separated
// path: not empty, not absolute, no ".." element, no backslash, no NUL.
func isLocalName(name []byte) bool {
	if len(name) == 0 || name[0] == '/' || bytes.IndexByte(name, '\\') >= 0 || bytes.IndexByte(name, 0) >= 0 {
		return false
	}
	for elem := range bytes.SplitSeq(name, []byte("/")) {
		if string(elem) == ".." {
			return false
		}
	}
	// A Windows volume name such as "C:" would make the name absolute
	// there.
	if len(name) >= 2 && name[1] == ':' {
		return false
	}
	return true
}

// Close releases the archive file. Blob readers still open fail after it.
func (r *Reader) Close() error { return r.f.Close() }

// Index reads and returns the whole top-level index, decoding it again
// at each call (Open checked it): for an archive of thousands of images,
// megabytes that a load does not hold (it reads the entries one by one
// with Entries).
func (r *Reader) Index() (*Index, error) { return r.streamIndex(&r.index, nil) }

// Entries calls fn with each entry of the top-level index, in order, as
// it decodes the index (again: Open checked it), keeping none of them. It
// stops at the first error of fn, and returns it as is. Unlike those of
// Index, an entry's strings are as decoded, shared with no other entry:
// fn keeps what it needs.
func (r *Reader) Entries(fn func(Image) error) error {
	_, err := r.streamIndex(&r.index, fn)
	return err
}

// blob finds the blob with digest d: its position in r.blobs and its zip
// entry, read from its central directory record.
func (r *Reader) blob(d digest.Digest) (int, zipEntry, error) {
	alg, enc, ok := strings.Cut(string(d), ":")
	if !ok || alg == "" || enc == "" {
		return 0, zipEntry{}, fmt.Errorf("blob %s: %w", quoteShort(string(d)), ErrInvalidDigest)
	}
	if alg != string(digest.SHA256) {
		return 0, zipEntry{}, fmt.Errorf("blob %s: %w %s: only sha256 is supported", quoteShort(string(d)), ErrUnsupportedDigest, quoteShort(alg))
	}
	if !digestcheck.IsSHA256Hex(enc) {
		return 0, zipEntry{}, fmt.Errorf("blob %s: %w: %w", quoteShort(string(d)), ErrInvalidDigest, digest.SHA256.Validate(enc))
	}
	sum, ok := digestcheck.DecodeSHA256Hex(enc)
	if !ok {
		return 0, zipEntry{}, fmt.Errorf("blob %s: %w", quoteShort(string(d)), ErrInvalidDigest)
	}
	// Digests that share their first 4 bytes are next to each other, in
	// digest order: among them the blob is searched by the names in
	// their records, a few reads even where a hostile archive names
	// thousands of blobs with one prefix.
	prefix := binary.BigEndian.Uint32(sum[:])
	lo, _ := slices.BinarySearchFunc(r.blobs, prefix, func(b blobRef, p uint32) int { return cmp.Compare(b.prefix, p) })
	hi := lo + sort.Search(len(r.blobs)-lo, func(k int) bool { return r.blobs[lo+k].prefix != prefix })
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		e, got, err := r.record(mid, d)
		if err != nil {
			return 0, zipEntry{}, err
		}
		switch c := bytes.Compare(got[:], sum[:]); {
		case c == 0:
			return mid, e, nil
		case c < 0:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return 0, zipEntry{}, fmt.Errorf("blob %s: %w", d, ErrBlobNotFound)
}

// record reads the zip entry of r.blobs[i] from its central directory
// record, and the sha256 its name gives; d names the blob looked up, for
// errors.
func (r *Reader) record(i int, d digest.Digest) (zipEntry, [sha256.Size]byte, error) {
	var e zipEntry
	sum, ok, err := readBlobRecord(r.records, r.size, r.dir+int64(r.blobs[i].record), r.base, &e)
	if err != nil {
		return e, sum, &corruptError{d: d, reason: "its central directory record cannot be read again (has the archive changed?)", err: err}
	}
	if !ok || binary.BigEndian.Uint32(sum[:]) != r.blobs[i].prefix {
		return e, sum, &corruptError{d: d, reason: "its central directory record names another entry now (has the archive changed?)"}
	}
	if e.usize > math.MaxInt64 {
		return e, sum, &corruptError{d: d, reason: fmt.Sprintf("entry size %d is out of range", e.usize)}
	}
	return e, sum, nil
}

// Stat returns the size of the blob with digest d and its number: its
// place among the archive's blobs, from 0 to Blobs()-1, the same in every
// call. The error wraps ErrBlobNotFound, ErrUnsupportedDigest,
// ErrInvalidDigest or, when the archive cannot be read, ErrDigestMismatch.
// A load keeps what it knows of a blob by its number.
func (r *Reader) Stat(d digest.Digest) (id int32, size int64, err error) {
	i, e, err := r.blob(d)
	if err != nil {
		return 0, 0, err
	}
	return int32(i), int64(e.usize), nil
}

// Blobs returns the number of distinct blobs in the archive.
func (r *Reader) Blobs() int { return len(r.blobs) }

// Blob returns the digest and size of blob number id (see Stat); id must
// be below Blobs(). The error is that of an archive that cannot be read.
func (r *Reader) Blob(id int32) (digest.Digest, int64, error) {
	e, sum, err := r.record(int(id), "")
	if err != nil {
		return "", 0, fmt.Errorf("blob number %d: %w", id, err)
	}
	return digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(sum[:])), int64(e.usize), nil
}

// Size returns the size in bytes of the blob with digest d, or an error
// wrapping ErrBlobNotFound or ErrUnsupportedDigest.
func (r *Reader) Size(d digest.Digest) (int64, error) {
	_, size, err := r.Stat(d)
	return size, err
}

// Open returns a reader of the blob with digest d. Each call returns an
// independent reader starting at the blob's first byte. The returned reader
// fails with an error wrapping ErrDigestMismatch at its end when the bytes do
// not match d.
//
// The check is made as soon as the blob's size in bytes has been read: the
// Read that would deliver the last bytes of a blob that fails it returns
// no bytes and the error instead, so a consumer that stops after the
// expected size (io.ReadFull, an HTTP body with a Content-Length) still
// sees it, and never receives the complete bad content. The error is
// sticky. Stored entries are read in place from the archive file, with no
// lock; deflated entries through a deflate decompressor.
func (r *Reader) Open(d digest.Digest) (io.ReadCloser, error) {
	_, e, err := r.blob(d)
	if err != nil {
		return nil, err
	}
	return r.open(d, &e)
}

// open returns a verified reader of blob d, whose zip entry is e.
func (r *Reader) open(d digest.Digest, e *zipEntry) (io.ReadCloser, error) {
	if e.method == zip.Store && e.csize != e.usize {
		return nil, &corruptError{d: d, reason: fmt.Sprintf("stored entry sizes disagree (%d and %d bytes)", e.csize, e.usize)}
	}
	if e.method == zip.Deflate && e.usize > maxInflated(e.csize) {
		return nil, &corruptError{d: d, reason: fmt.Sprintf("deflated entry claims %d bytes from %d compressed bytes", e.usize, e.csize)}
	}
	rd, c, err := openEntry(r.f, r.size, e)
	switch {
	case err == nil:
	case errors.Is(err, zip.ErrAlgorithm):
		return nil, fmt.Errorf("blob %s: zip entry method %d: %w", d, e.method, err)
	case errors.Is(err, errPastEnd):
		return nil, &corruptError{d: d, reason: err.Error()}
	default:
		return nil, &corruptError{d: d, reason: "bad entry header", err: err}
	}
	want, _ := digestcheck.DecodeSHA256Hex(d.Encoded())
	return &blobReader{r: rd, c: c, d: d, want: want, size: int64(e.usize), h: sha256.New()}, nil
}

// maxInflated returns the most bytes that csize bytes of deflate data can
// hold: 258 bytes for every 2 bits (a length and a distance code of one bit
// each, RFC 1951), 1032 a byte, and a KiB of slack.
func maxInflated(csize uint64) uint64 {
	const ratio, slack = 1032, 1 << 10
	if csize > (math.MaxUint64-slack)/ratio {
		return math.MaxUint64
	}
	return csize*ratio + slack
}

// ReadBlob reads the whole blob with digest d, verified, refusing blobs
// larger than limit bytes (ErrBlobTooLarge) before reading them, or
// allocating room for them. It is meant for manifests and configs. The size
// is the one the zip directory gives; a deflated entry that claims more
// than its compressed bytes can hold is refused as corrupt
// (ErrDigestMismatch) before anything is allocated.
func (r *Reader) ReadBlob(d digest.Digest, limit int64) ([]byte, error) {
	_, e, err := r.blob(d)
	if err != nil {
		return nil, err
	}
	size := int64(e.usize)
	if size > limit {
		return nil, fmt.Errorf("blob %s: %w: %d bytes, the limit is %d", d, ErrBlobTooLarge, size, limit)
	}
	rc, err := r.open(d, &e)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	buf := make([]byte, size)
	if _, err := io.ReadFull(rc, buf); err != nil {
		return nil, err
	}
	// Collect the verification (needed for an empty blob).
	if _, err := rc.Read(buf[len(buf):]); err != io.EOF {
		if err == nil {
			err = &corruptError{d: d, reason: "longer than its entry size"}
		}
		return nil, err
	}
	return buf, nil
}

// corruptError reports a blob whose bytes cannot be read whole or do not
// match its digest; it matches ErrDigestMismatch with errors.Is.
type corruptError struct {
	d      digest.Digest
	reason string
	err    error
}

func (e *corruptError) Error() string {
	msg := fmt.Sprintf("blob %s in archive is corrupt: %s", e.d, e.reason)
	if e.d == "" {
		msg = "blob in archive is corrupt: " + e.reason
	}
	if e.err != nil {
		msg += ": " + e.err.Error()
	}
	return msg
}

func (e *corruptError) Is(target error) bool { return target == ErrDigestMismatch }

func (e *corruptError) Unwrap() error { return e.err }

// blobReader streams a blob and verifies its size and sha256.
type blobReader struct {
	r    io.Reader // the entry data
	c    io.Closer // the decompressor, if any
	d    digest.Digest
	want [sha256.Size]byte
	size int64
	n    int64
	h    hash.Hash
	err  error // sticky: io.EOF once verified, or the failure
}

func (b *blobReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	rem := b.size - b.n
	if rem == 0 {
		b.finish()
		return 0, b.err
	}
	if int64(len(p)) > rem {
		p = p[:rem]
	}
	if len(p) == 0 {
		return 0, nil
	}
	n, err := b.r.Read(p)
	if n > 0 {
		b.h.Write(p[:n])
		b.n += int64(n)
	}
	if b.n == b.size {
		if b.finish(); b.err != io.EOF {
			// Withhold the last bytes of a corrupt blob.
			return 0, b.err
		}
		return n, nil
	}
	if err != nil {
		b.fail(err)
		return 0, b.err
	}
	return n, nil
}

// finish checks the digest once all bytes are read.
func (b *blobReader) finish() {
	var sum [sha256.Size]byte
	if b.h.Sum(sum[:0]); sum != b.want {
		b.err = &corruptError{d: b.d, reason: "content does not match its digest"}
		return
	}
	b.err = io.EOF
}

// fail records a read error met before the end of the blob.
func (b *blobReader) fail(err error) {
	var ce flate.CorruptInputError
	switch {
	case err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF):
		b.err = &corruptError{d: b.d, reason: fmt.Sprintf("entry is truncated (%d of %d bytes)", b.n, b.size)}
	case errors.Is(err, zip.ErrChecksum), errors.Is(err, zip.ErrFormat), errors.As(err, &ce):
		b.err = &corruptError{d: b.d, reason: "bad entry data", err: err}
	default:
		b.err = fmt.Errorf("read blob %s: %w", b.d, err)
	}
}

// VerifiesDigest reports that this reader checks d itself: it fails its
// last read unless the bytes match d, so a consumer need not hash them
// again (see oras.DigestVerifier).
func (b *blobReader) VerifiesDigest(d digest.Digest) bool { return d == b.d }

// Close releases the decompressor of a deflated entry. Reads after Close
// fail.
func (b *blobReader) Close() error {
	if b.err == nil || b.err == io.EOF {
		b.err = fmt.Errorf("read blob %s: %w", b.d, os.ErrClosed)
	}
	if b.c != nil {
		c := b.c
		b.c = nil
		return c.Close()
	}
	return nil
}
