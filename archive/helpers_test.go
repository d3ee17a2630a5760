package archive_test

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/cnrancher/docker-hangar/archive"
	"github.com/cnrancher/docker-hangar/archive/archivetest"
	"github.com/opencontainers/go-digest"
)

// write writes a generated archive in a temporary directory.
func write(t testing.TB, images []archivetest.Image, opts archivetest.Options) *archivetest.Written {
	t.Helper()
	w, err := archivetest.Write(filepath.Join(t.TempDir(), "a.zip"), images, opts)
	if err != nil {
		t.Fatalf("archivetest.Write: %v", err)
	}
	return w
}

// open opens an archive and closes it at the end of the test.
func open(t testing.TB, path string) *archive.Reader {
	t.Helper()
	r, err := archive.Open(path)
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// indexDigests returns every digest named by an index, once each.
func indexDigests(idx *archive.Index) []digest.Digest {
	seen := make(map[digest.Digest]bool)
	var ds []digest.Digest
	add := func(d digest.Digest) {
		if d != "" && !seen[d] {
			seen[d] = true
			ds = append(ds, d)
		}
	}
	for _, img := range idx.List {
		for _, m := range img.Images {
			add(m.Digest)
			add(m.Config)
			for _, l := range m.Layers {
				add(l)
			}
		}
	}
	return ds
}

// readAll reads a blob through Open and io.ReadAll.
func readAll(r *archive.Reader, d digest.Digest) ([]byte, error) {
	rc, err := r.Open(d)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

// patchCentral edits the central directory record of the entry name in
// the zip at path: fn gets the 46-byte fixed part of the record.
func patchCentral(t testing.TB, path, name string, fn func(rec []byte)) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sig := []byte{'P', 'K', 1, 2}
	for i := 0; i+46 <= len(data); {
		j := bytes.Index(data[i:], sig)
		if j < 0 {
			break
		}
		j += i
		n := int(binary.LittleEndian.Uint16(data[j+28:]))
		if j+46+n <= len(data) && string(data[j+46:j+46+n]) == name {
			fn(data[j : j+46])
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		i = j + 4
	}
	t.Fatalf("no central directory record for %s in %s", name, path)
}

// flipRaw inverts a byte in the middle of the raw (possibly compressed)
// data of the entry name.
func flipRaw(t testing.TB, path, name string) {
	t.Helper()
	zr, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	for _, zf := range zr.File {
		if zf.Name != name {
			continue
		}
		off, err := zf.DataOffset()
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		pos := off + int64(zf.CompressedSize64)/2
		var b [1]byte
		if _, err := f.ReadAt(b[:], pos); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0xff
		if _, err := f.WriteAt(b[:], pos); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no entry %s in %s", name, path)
}

// wantErr checks that err wraps target (nil target: no error).
func wantErr(t testing.TB, err, target error) {
	t.Helper()
	if target == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if !errors.Is(err, target) {
		t.Fatalf("error = %v, want one wrapping %q", err, target)
	}
}

// blobName returns the entry name of a blob.
func blobName(d digest.Digest) string { return archive.BlobPrefix + d.Encoded() }

// index returns the whole index of r (Reader.Index), failing t on an error.
func index(t testing.TB, r *archive.Reader) *archive.Index {
	t.Helper()
	idx, err := r.Index()
	if err != nil {
		t.Fatal(err)
	}
	return idx
}
