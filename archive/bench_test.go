package archive_test

import (
	"io"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/cnrancher/docker-hangar/archive"
	"github.com/cnrancher/docker-hangar/archive/archivetest"
)

// BenchmarkBlob measures verified reads of a 64 MiB stored layer: through
// io.Copy (32 KiB reads to the end), and through 32 KiB reads of the
// blob's size, as an HTTP transport with a Content-Length does.
func BenchmarkBlob(b *testing.B) {
	layer := archivetest.Layer{Size: 64 << 20, Seed: 1}
	w := write(b, []archivetest.Image{{Source: "docker.io/a/b", Tag: "1", Manifests: []archivetest.Manifest{{Layers: []archivetest.Layer{layer}}}}},
		archivetest.Options{})
	r := open(b, w.Path)
	d := archivetest.LayerDigest(layer)
	for _, bc := range []struct {
		name string
		copy func(io.Reader) error
	}{
		{"Copy", func(rd io.Reader) error { _, err := io.Copy(io.Discard, rd); return err }},
		{"Read32K", func(rd io.Reader) error {
			_, err := io.CopyBuffer(io.Discard, io.LimitReader(rd, layer.Size), make([]byte, 32<<10))
			return err
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(layer.Size)
			for b.Loop() {
				rc, err := r.Open(d)
				if err != nil {
					b.Fatal(err)
				}
				if err := bc.copy(rc); err != nil {
					b.Fatal(err)
				}
				rc.Close()
			}
		})
	}
}

// BenchmarkOpen measures opening an archive with 2,000 blobs, one with
// 65,600 more blob entries (a zip64 directory), and the archive with 10x the
// images and entries of docs/benchmarks.md (archivetest.Synthetic with 300
// images, 304 MiB: 302 index entries, 1082 manifests, 4462 blobs). Besides
// the time and the allocations of Open, it reports the heap an open Reader
// keeps (retained-B: heap in use after a GC, Reader open, minus before).
func BenchmarkOpen(b *testing.B) {
	var images []archivetest.Image
	for i := range 500 {
		images = append(images, archivetest.Image{Source: "docker.io/a/b", Tag: "1", Manifests: []archivetest.Manifest{
			{Layers: []archivetest.Layer{{Size: 10, Seed: int64(i)}, {Size: 11, Seed: int64(i)}}},
		}})
	}
	extra := make([]archivetest.Entry, 65600)
	for i := range extra {
		extra[i] = archivetest.Entry{Name: blobName(digest.FromString(strconv.Itoa(i))), Data: []byte{}}
	}
	for _, bc := range []struct {
		name   string
		images []archivetest.Image
		opts   archivetest.Options
	}{
		{"blobs=2000", images, archivetest.Options{}},
		{"blobs=67600", images, archivetest.Options{Extra: extra}},
		{"entries=10x", archivetest.Synthetic(archivetest.SyntheticOptions{Images: 300, Size: 300 << 20}), archivetest.Options{}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			path := write(b, bc.images, bc.opts).Path
			b.ReportAllocs()
			for b.Loop() {
				r, err := archive.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				r.Close()
			}
			b.ReportMetric(float64(retained(b, func() io.Closer {
				r, err := archive.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				return r
			})), "retained-B")
		})
	}
}

// retained returns the growth of the heap in use while the value open
// returns is alive; it closes the value then.
func retained(b *testing.B, open func() io.Closer) int64 {
	b.Helper()
	var before, after runtime.MemStats
	settle()
	runtime.ReadMemStats(&before)
	c := open()
	settle()
	runtime.ReadMemStats(&after)
	c.Close()
	return int64(after.HeapAlloc) - int64(before.HeapAlloc)
}

// settle collects the garbage: twice, as the second GC empties the
// sync.Pools, then once more after a pause, when the background cleanup of
// the unique package's map has run.
func settle() {
	runtime.GC()
	runtime.GC()
	time.Sleep(20 * time.Millisecond)
	runtime.GC()
}
