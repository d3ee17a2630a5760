package archive

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math"
	"os"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
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
	path    string
	f       *os.File
	size    int64
	entries map[string]*zip.File // first entry of each name, central directory order
	index   *Index
}

// Open opens the archive at path, indexes its central directory, and reads,
// parses and validates its top-level index.json. Damaged archives give an
// error wrapping one of the sentinel errors of this package.
//
// Every entry name must be a local path (ErrUnsafeName). Where a name
// appears twice, the first entry in central-directory order is used, as
// Hangar does.
func Open(path string) (*Reader, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := newReader(path, f)
	if err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

func newReader(path string, f *os.File) (*Reader, error) {
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("open %s: %w: not a regular file", path, ErrNotArchive)
	}
	zr, err := zip.NewReader(f, fi.Size())
	if err != nil && !(errors.Is(err, zip.ErrInsecurePath) && zr != nil) {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("open %s: %w", path, err)
		}
		return nil, fmt.Errorf("open %s: %w: %w%s", path, ErrNotArchive, err, oldFormatHint(f))
	}
	r := &Reader{
		path:    path,
		f:       f,
		size:    fi.Size(),
		entries: make(map[string]*zip.File, len(zr.File)),
	}
	for _, zf := range zr.File {
		if !isLocalName(zf.Name) {
			return nil, fmt.Errorf("open %s: %w: %q", path, ErrUnsafeName, zf.Name)
		}
		if _, dup := r.entries[zf.Name]; !dup {
			r.entries[zf.Name] = zf
		}
	}
	data, err := r.readIndex()
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if r.index, err = ParseIndex(data); err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return r, nil
}

// readIndex reads the top-level index.json, bounded by MaxIndexSize.
func (r *Reader) readIndex() ([]byte, error) {
	zf := r.entries[IndexName]
	if zf == nil {
		return nil, ErrNoIndex
	}
	if zf.UncompressedSize64 > MaxIndexSize {
		return nil, fmt.Errorf("%w: %s is %d bytes, the limit is %d", ErrIndexTooLarge, IndexName, zf.UncompressedSize64, MaxIndexSize)
	}
	rc, err := zf.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: read %s: %w", ErrInvalidIndex, IndexName, err)
	}
	defer rc.Close()
	var buf bytes.Buffer
	buf.Grow(int(min(zf.UncompressedSize64, 1<<20)))
	if _, err := buf.ReadFrom(io.LimitReader(rc, MaxIndexSize+1)); err != nil {
		return nil, fmt.Errorf("%w: read %s: %w", ErrInvalidIndex, IndexName, err)
	}
	if buf.Len() > MaxIndexSize {
		return nil, fmt.Errorf("%w: %s is larger than the limit of %d bytes", ErrIndexTooLarge, IndexName, MaxIndexSize)
	}
	return buf.Bytes(), nil
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
func isLocalName(name string) bool {
	if name == "" || name[0] == '/' || strings.ContainsAny(name, "\\\x00") {
		return false
	}
	for elem := range strings.SplitSeq(name, "/") {
		if elem == ".." {
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

// Index returns the parsed top-level index. It is shared: callers must not
// modify it.
func (r *Reader) Index() *Index { return r.index }

// Path returns the path the archive was opened with.
func (r *Reader) Path() string { return r.path }

// blobEntry returns the zip entry of the blob with digest d.
func (r *Reader) blobEntry(d digest.Digest) (*zip.File, []byte, error) {
	alg, enc, ok := strings.Cut(string(d), ":")
	if !ok || alg == "" || enc == "" {
		return nil, nil, fmt.Errorf("blob %s: %w", quoteShort(string(d)), ErrInvalidDigest)
	}
	if alg != string(digest.SHA256) {
		return nil, nil, fmt.Errorf("blob %s: %w %s: only sha256 is supported", quoteShort(string(d)), ErrUnsupportedDigest, quoteShort(alg))
	}
	if err := digest.SHA256.Validate(enc); err != nil {
		return nil, nil, fmt.Errorf("blob %s: %w: %w", quoteShort(string(d)), ErrInvalidDigest, err)
	}
	sum, err := hex.DecodeString(enc)
	if err != nil {
		return nil, nil, fmt.Errorf("blob %s: %w: %w", quoteShort(string(d)), ErrInvalidDigest, err)
	}
	zf := r.entries[BlobPrefix+enc]
	if zf == nil {
		return nil, nil, fmt.Errorf("blob %s: %w", d, ErrBlobNotFound)
	}
	if zf.UncompressedSize64 > math.MaxInt64 {
		return nil, nil, &corruptError{d: d, reason: fmt.Sprintf("entry size %d is out of range", zf.UncompressedSize64)}
	}
	return zf, sum, nil
}

// Size returns the size in bytes of the blob with digest d, or an error
// wrapping ErrBlobNotFound or ErrUnsupportedDigest.
func (r *Reader) Size(d digest.Digest) (int64, error) {
	zf, _, err := r.blobEntry(d)
	if err != nil {
		return 0, err
	}
	return int64(zf.UncompressedSize64), nil
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
// lock; deflated entries through the zip decompressor. The reader
// implements io.WriterTo, with the same verification.
func (r *Reader) Open(d digest.Digest) (io.ReadCloser, error) {
	zf, sum, err := r.blobEntry(d)
	if err != nil {
		return nil, err
	}
	size := int64(zf.UncompressedSize64)
	br := &blobReader{d: d, want: sum, size: size, h: sha256.New()}
	switch zf.Method {
	case zip.Store:
		if zf.CompressedSize64 != zf.UncompressedSize64 {
			return nil, &corruptError{d: d, reason: fmt.Sprintf("stored entry sizes disagree (%d and %d bytes)", zf.CompressedSize64, zf.UncompressedSize64)}
		}
		off, err := zf.DataOffset()
		if err != nil {
			return nil, &corruptError{d: d, reason: "bad entry header", err: err}
		}
		if off < 0 || off > r.size || size > r.size-off {
			return nil, &corruptError{d: d, reason: "entry extends past the end of the file"}
		}
		br.r = io.NewSectionReader(r.f, off, size)
	default:
		rc, err := zf.Open()
		if err != nil {
			return nil, fmt.Errorf("blob %s: zip entry method %d: %w", d, zf.Method, err)
		}
		br.r, br.c = rc, rc
	}
	return br, nil
}

// ReadBlob reads the whole blob with digest d, verified, refusing blobs
// larger than limit bytes (ErrBlobTooLarge) before reading them. It is
// meant for manifests and configs.
func (r *Reader) ReadBlob(d digest.Digest, limit int64) ([]byte, error) {
	size, err := r.Size(d)
	if err != nil {
		return nil, err
	}
	if size > limit {
		return nil, fmt.Errorf("blob %s: %w: %d bytes, the limit is %d", d, ErrBlobTooLarge, size, limit)
	}
	rc, err := r.Open(d)
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
	want []byte
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
	if !bytes.Equal(b.h.Sum(sum[:0]), b.want) {
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

// bufPool holds the buffers of WriteTo.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// WriteTo writes the blob to w with large reads, verified as by Read: the
// last chunk of a corrupt blob is not written and the error is returned.
func (b *blobReader) WriteTo(w io.Writer) (int64, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var total int64
	for {
		n, err := b.Read(buf)
		if n > 0 {
			m, werr := w.Write(buf[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
			if m != n {
				return total, io.ErrShortWrite
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
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
