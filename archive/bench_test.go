package archive_test

import (
	"io"
	"strconv"
	"testing"

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

// BenchmarkOpen measures opening an archive with 2,000 blobs, and one with
// 65,600 more blob entries (a zip64 directory).
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
		name string
		opts archivetest.Options
	}{
		{"blobs=2000", archivetest.Options{}},
		{"blobs=67600", archivetest.Options{Extra: extra}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			w := write(b, images, bc.opts)
			b.ReportAllocs()
			for b.Loop() {
				r, err := archive.Open(w.Path)
				if err != nil {
					b.Fatal(err)
				}
				r.Close()
			}
		})
	}
}
