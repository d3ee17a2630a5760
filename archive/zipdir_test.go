package archive_test

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/cnrancher/docker-hangar/archive"
	"github.com/cnrancher/docker-hangar/archive/archivetest"
	"github.com/cnrancher/docker-hangar/internal/fixtures"
)

// sameAsArchiveZip checks that the reader's directory parser accepts the
// zip in data exactly when archive/zip does, with the same error, and finds
// the same entries at the same places.
func sameAsArchiveZip(t testing.TB, data []byte) {
	t.Helper()
	zr, zerr := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if errors.Is(zerr, zip.ErrInsecurePath) {
		zerr = nil // names are checked by Open itself
	}
	list, err := archive.ListDirectory(bytes.NewReader(data), int64(len(data)))
	if zerr != nil || err != nil {
		if zerr == nil || err == nil || err.Error() != zerr.Error() {
			t.Fatalf("error %v, archive/zip: %v", err, zerr)
		}
		return
	}
	if len(list) != len(zr.File) {
		t.Fatalf("%d entries, archive/zip: %d", len(list), len(zr.File))
	}
	for i, zf := range zr.File {
		e := list[i]
		off, oerr := zf.DataOffset()
		if e.Name != zf.Name || e.CSize != zf.CompressedSize64 || e.USize != zf.UncompressedSize64 ||
			e.CRC != zf.CRC32 || e.Method != zf.Method || (oerr == nil) != (e.DataErr == nil) || oerr == nil && off != e.DataOffset {
			t.Fatalf("entry %d: %+v\narchive/zip: %q csize %d usize %d crc %x method %d data at %d, %v",
				i, e, zf.Name, zf.CompressedSize64, zf.UncompressedSize64, zf.CRC32, zf.Method, off, oerr)
		}
	}
}

// tinyZip is a small generated archive, stored or deflated.
func tinyZip(t testing.TB, deflate bool) []byte {
	t.Helper()
	tiny := []archivetest.Image{{Source: "a/b", Tag: "1", Manifests: []archivetest.Manifest{{Layers: []archivetest.Layer{{Data: []byte("x")}}}}}}
	w, err := archivetest.Write(filepath.Join(t.TempDir(), "tiny.zip"), tiny, archivetest.Options{Deflate: deflate})
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(w.Path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestDirectoryMatchesArchiveZip(t *testing.T) {
	for _, deflate := range []bool{false, true} {
		data := tinyZip(t, deflate)
		sameAsArchiveZip(t, data)
		// Every truncation and every flipped byte of the directory
		// (and of the local headers before it).
		for n := range len(data) {
			sameAsArchiveZip(t, data[:n])
		}
		for i := range data {
			bad := bytes.Clone(data)
			bad[i] ^= 0xff
			sameAsArchiveZip(t, bad)
		}
	}

	// Data before the archive (offsets relative to the archive, or to the
	// file), and a comment.
	var buf bytes.Buffer
	buf.WriteString("#!/bin/sh\nexit 0\n")
	for _, absolute := range []bool{false, true} {
		buf.Truncate(17)
		zw := zip.NewWriter(&buf)
		if absolute {
			zw.SetOffset(17)
		}
		zw.SetComment("a comment")
		for _, name := range []string{"index.json", "share/sha256/x", "index.json"} {
			w, err := zw.Create(name)
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte("{}"))
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		sameAsArchiveZip(t, buf.Bytes())
	}

	if dir := fixtures.Dir(); dir != "" {
		for _, name := range []string{"basic.zip", "amd64.zip", "arm64.zip"} {
			data, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			sameAsArchiveZip(t, data)
		}
	}
}

// TestZip64Entries reads entries whose sizes and offsets are in zip64 extra
// fields, as in archives larger than 4 GiB, without writing one.
func TestZip64Entries(t *testing.T) {
	w := write(t, sharedImages(), archivetest.Options{})
	data, err := os.ReadFile(w.Path)
	if err != nil {
		t.Fatal(err)
	}
	for _, sizes := range []bool{false, true} {
		z64 := rewriteZip64(t, data, sizes)
		sameAsArchiveZip(t, z64)
		path := filepath.Join(t.TempDir(), "z64.zip")
		if err := os.WriteFile(path, z64, 0o644); err != nil {
			t.Fatal(err)
		}
		r := open(t, path)
		for d, size := range w.Blobs {
			got, err := readAll(r, d)
			if err != nil || int64(len(got)) != size {
				t.Fatalf("sizes in zip64 fields %v: blob %s: %d bytes, %v", sizes, d, len(got), err)
			}
		}
	}
	// Every flipped byte of a small one.
	z64 := rewriteZip64(t, tinyZip(t, false), true)
	for i := range z64 {
		bad := bytes.Clone(z64)
		bad[i] ^= 0xff
		sameAsArchiveZip(t, bad)
	}
}

// rewriteZip64 rewrites the zip in data with every local header offset, and
// with sizes every size, in the zip64 extra field of its directory record.
func rewriteZip64(t testing.TB, data []byte, sizes bool) []byte {
	t.Helper()
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var out, dir bytes.Buffer
	le := binary.LittleEndian
	put := func(b *bytes.Buffer, vs ...any) {
		for _, v := range vs {
			binary.Write(b, le, v)
		}
	}
	for _, zf := range zr.File {
		rd, err := zf.OpenRaw()
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(rd)
		if err != nil {
			t.Fatal(err)
		}
		offset := uint64(out.Len())
		csize, usize := uint32(zf.CompressedSize64), uint32(zf.UncompressedSize64)
		var extra bytes.Buffer
		if sizes {
			csize, usize = math.MaxUint32, math.MaxUint32
			put(&extra, uint16(1), uint16(24), zf.UncompressedSize64, zf.CompressedSize64, offset)
		} else {
			put(&extra, uint16(1), uint16(8), offset)
		}
		put(&out, uint32(0x04034b50), uint16(45), uint16(0), zf.Method, uint16(0), uint16(0x21), zf.CRC32, csize, usize, uint16(len(zf.Name)), uint16(0))
		out.WriteString(zf.Name)
		out.Write(raw)
		put(&dir, uint32(0x02014b50), uint16(45), uint16(45), uint16(0), zf.Method, uint16(0), uint16(0x21), zf.CRC32, csize, usize,
			uint16(len(zf.Name)), uint16(extra.Len()), uint16(0), uint16(0), uint16(0), uint32(0), uint32(math.MaxUint32))
		dir.WriteString(zf.Name)
		dir.Write(extra.Bytes())
	}
	dirOffset := out.Len()
	out.Write(dir.Bytes())
	put(&out, uint32(0x06054b50), uint16(0), uint16(0), uint16(len(zr.File)), uint16(len(zr.File)), uint32(dir.Len()), uint32(dirOffset), uint16(0))
	return out.Bytes()
}

// FuzzDirectory checks the reader's directory parser against archive/zip.
func FuzzDirectory(f *testing.F) {
	f.Add(tinyZip(f, false))
	f.Add(tinyZip(f, true))
	f.Add(rewriteZip64(f, tinyZip(f, false), true))
	f.Add([]byte("PK\x05\x06" + string(make([]byte, 18))))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) { sameAsArchiveZip(t, data) })
}
