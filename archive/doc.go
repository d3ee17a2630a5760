// Package archive reads Hangar archives: the zip files written by
// `hangar save` (cnrancher/hangar v1.7.0 and later, index versions v1.2.0 up
// to, not including, v2.0.0).
//
// An archive is opened once: its central directory is read (as archive/zip
// reads it), every entry name must be a local path, and the blob entries are
// kept in a table sorted by digest, about 64 bytes each; the top-level
// index.json is parsed and validated: digests must be algorithm:hex, the
// version must be in range. Blobs are served by digest
// from share/sha256/<hex>, straight from the zip: stored entries are read in
// place at their data offset through an io.SectionReader (safe for
// concurrent readers, no lock), deflated entries through a deflate
// decompressor. Nothing is extracted to disk.
//
// Every blob read is verified: the bytes must hash to the digest that names
// them, otherwise the read fails with ErrDigestMismatch at its end, and the
// last bytes are withheld. A damaged blob fails only its own reads.
//
// Errors carry context (the archive path, the digest, the index item) and
// wrap the sentinel errors of this package where one applies; no input
// makes the package panic.
package archive
