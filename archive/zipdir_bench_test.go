package archive_test

import (
	"archive/zip"
	"encoding/hex"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cnrancher/docker-hangar/archive"
	"github.com/cnrancher/docker-hangar/archive/archivetest"
)

// BenchmarkDirectory compares the reader's own central directory reader
// (zipdir.go) with archive/zip on the archive with 10x the images and
// entries of docs/benchmarks.md (archivetest.Synthetic with 300 images,
// 304 MiB: 302 index entries, 1082 manifests, 4462 blobs, 6627 zip
// entries). Each variant builds what a Reader needs to serve blobs by
// digest:
//
//   - ours: archive.Open's directory scan, a table of 64 bytes per blob
//     with the offset of each local header, read when the blob is opened;
//   - zip-DataOffset: zip.NewReader, then (*zip.File).DataOffset of every
//     blob, for a table of the same size: DataOffset reads each blob's
//     local header, scattered over the whole file, at open;
//   - zip-Files: zip.NewReader, keeping the *zip.File of every blob, sorted
//     by name, to call DataOffset when the blob is opened.
//
// Besides the time and allocations, it reports retained-B, the heap kept
// by the result (see retained). The cold sub-benchmarks drop the file's
// pages from the page cache before each iteration (Linux only), as for the
// first load after the archive was copied to the machine.
func BenchmarkDirectory(b *testing.B) {
	path := filepath.Join(b.TempDir(), "x10-entries.zip")
	if _, err := archivetest.Write(path, archivetest.Synthetic(archivetest.SyntheticOptions{Images: 300, Size: 300 << 20}), archivetest.Options{}); err != nil {
		b.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	size := fi.Size()
	variants := []struct {
		name string
		scan func() (any, error)
	}{
		{"ours", func() (any, error) { return archive.ScanDirectory(f, size) }},
		{"zip-DataOffset", func() (any, error) { return zipDataOffsets(f, size) }},
		{"zip-Files", func() (any, error) { return zipFiles(f, size) }},
	}
	for _, v := range variants {
		b.Run(v.name+"/warm", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.scan(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(retained(b, func() io.Closer {
				dir, err := v.scan()
				if err != nil {
					b.Fatal(err)
				}
				return keep{dir}
			})), "retained-B")
		})
	}
	for _, v := range variants {
		b.Run(v.name+"/cold", func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				dropPageCache(b, f)
				b.StartTimer()
				if _, err := v.scan(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// keep holds a value alive until it is closed.
type keep struct{ v any }

func (k keep) Close() error {
	_ = k.v
	return nil
}

// zipEntry is what a Reader built on archive/zip would keep of a blob.
type zipEntry struct {
	sum          [32]byte
	offset       int64 // of the data
	csize, usize uint64
	method       uint16
}

// zipDataOffsets builds the blob table with archive/zip and DataOffset.
func zipDataOffsets(r io.ReaderAt, size int64) ([]zipEntry, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, err
	}
	var table []zipEntry
	for _, zf := range zr.File {
		enc, ok := strings.CutPrefix(zf.Name, archive.BlobPrefix)
		if !ok {
			continue
		}
		sum, err := hex.DecodeString(enc)
		if err != nil || len(sum) != 32 {
			continue
		}
		off, err := zf.DataOffset()
		if err != nil {
			return nil, err
		}
		table = append(table, zipEntry{sum: [32]byte(sum), offset: off, csize: zf.CompressedSize64, usize: zf.UncompressedSize64, method: zf.Method})
	}
	slices.SortStableFunc(table, func(a, b zipEntry) int { return slices.Compare(a.sum[:], b.sum[:]) })
	return slices.Clip(table), nil
}

// zipFiles keeps the *zip.File of every blob, sorted by name.
func zipFiles(r io.ReaderAt, size int64) ([]*zip.File, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, err
	}
	var files []*zip.File
	for _, zf := range zr.File {
		if strings.HasPrefix(zf.Name, archive.BlobPrefix) {
			files = append(files, zf)
		}
	}
	slices.SortStableFunc(files, func(a, b *zip.File) int { return strings.Compare(a.Name, b.Name) })
	return slices.Clip(files), nil
}
