package archive

import "errors"

// Sentinel errors returned (wrapped with context) by this package.
var (
	// ErrNotArchive means the file is not a readable zip archive (for
	// example truncated, or a tar file written by Hangar v1.6).
	ErrNotArchive = errors.New("not a hangar archive")
	// ErrNoIndex means the archive has no top-level index.json.
	ErrNoIndex = errors.New("archive has no index.json")
	// ErrInvalidIndex means index.json is not valid: bad JSON, a digest
	// that is not algorithm:hex, an empty source, or similar.
	ErrInvalidIndex = errors.New("invalid archive index")
	// ErrUnsupportedVersion means the index version is empty, not a
	// semantic version, or outside the supported range [v1.2.0, v2.0.0).
	ErrUnsupportedVersion = errors.New("unsupported archive index version")
	// ErrIndexTooLarge means index.json is larger than MaxIndexSize, or
	// would take more memory than that decoded.
	ErrIndexTooLarge = errors.New("archive index too large")
	// ErrUnsafeName means the zip holds an entry whose name is not a
	// local path (empty, absolute, "..", backslash).
	ErrUnsafeName = errors.New("unsafe entry name in archive")
	// ErrBlobNotFound means no share/sha256/<hex> entry exists for a
	// digest.
	ErrBlobNotFound = errors.New("blob not found in archive")
	// ErrDigestMismatch means the bytes of a blob do not hash to its
	// digest, or its zip entry is damaged (truncated, bad header, bad
	// compressed data) so that its bytes cannot be read whole.
	ErrDigestMismatch = errors.New("blob content does not match its digest")
	// ErrUnsupportedDigest means a digest algorithm other than sha256.
	ErrUnsupportedDigest = errors.New("unsupported digest algorithm")
	// ErrInvalidDigest means a digest given to a Reader method is not in
	// algorithm:hex form.
	ErrInvalidDigest = errors.New("invalid digest")
	// ErrBlobTooLarge means a blob is larger than the limit given to
	// Reader.ReadBlob.
	ErrBlobTooLarge = errors.New("blob too large")
)
