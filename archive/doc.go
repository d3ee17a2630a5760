// Package archive reads Hangar archives: the zip files written by
// `hangar save` (cnrancher/hangar v1.7.0 and later, index versions v1.2.0 up
// to, not including, v2.0.0).
//
// An archive is opened once; its central directory is indexed into a map and
// the top-level index.json is parsed and validated. Blobs are served by
// digest straight from the zip: stored entries are read in place at their
// data offset through an io.SectionReader (safe for concurrent readers),
// deflated entries through the zip decompressor. Nothing is extracted to disk.
//
// Every blob read is verified: the bytes must hash to the digest that names
// them, otherwise the read fails with ErrDigestMismatch at its end.
package archive
