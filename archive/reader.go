package archive

import (
	"errors"
	"io"

	"github.com/opencontainers/go-digest"
)

var errNotImplemented = errors.New("not implemented")

// Reader serves the index and the blobs of one Hangar archive. It is safe
// for concurrent use.
type Reader struct {
	// TODO(archive): implementation.
}

// Open opens the archive at path, indexes its central directory, and reads,
// parses and validates its top-level index.json. Damaged archives give an
// error wrapping one of the sentinel errors of this package.
func Open(path string) (*Reader, error) { return nil, errNotImplemented }

// Close releases the archive file.
func (r *Reader) Close() error { return nil }

// Index returns the parsed top-level index.
func (r *Reader) Index() *Index { return nil }

// Size returns the size in bytes of the blob with digest d, or an error
// wrapping ErrBlobNotFound or ErrUnsupportedDigest.
func (r *Reader) Size(d digest.Digest) (int64, error) { return 0, errNotImplemented }

// Open returns a reader of the blob with digest d. Each call returns an
// independent reader starting at the blob's first byte. The returned reader
// fails with an error wrapping ErrDigestMismatch at its end when the bytes do
// not match d.
func (r *Reader) Open(d digest.Digest) (io.ReadCloser, error) { return nil, errNotImplemented }

// ReadBlob reads the whole blob with digest d, verified, refusing blobs
// larger than limit bytes. It is meant for manifests and configs.
func (r *Reader) ReadBlob(d digest.Digest, limit int64) ([]byte, error) {
	return nil, errNotImplemented
}

// ParseIndex parses and validates the bytes of a top-level index.json:
// version range (D7), digests in algorithm:hex form, non-empty sources.
func ParseIndex(data []byte) (*Index, error) { return nil, errNotImplemented }
