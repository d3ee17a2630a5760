package archivetest

import (
	"archive/zip"
	"fmt"
	"os"
	"strings"

	"github.com/cnrancher/docker-hangar/archive"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// FlipByte corrupts the blob d of the archive at path in place: it inverts
// the bits of its middle byte. The entry must be stored and not empty. The
// zip stays readable; only the content of that blob is wrong.
func FlipByte(path string, d digest.Digest) error {
	_, enc, _ := strings.Cut(string(d), ":")
	return FlipEntryByte(path, archive.BlobPrefix+enc, -1)
}

// FlipEntryByte inverts the bits of the byte at offset off of the data of
// the stored entry name in the archive at path; a negative off means the
// middle byte.
func FlipEntryByte(path, name string, off int64) error {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return err
	}
	var pos int64 = -1
	for _, zf := range zr.File {
		if zf.Name != name {
			continue
		}
		if zf.Method != zip.Store {
			zr.Close()
			return fmt.Errorf("flip byte of %s: entry is not stored", name)
		}
		size := int64(zf.UncompressedSize64)
		if off < 0 {
			off = size / 2
		}
		if off >= size {
			zr.Close()
			return fmt.Errorf("flip byte of %s: offset %d is past the entry size %d", name, off, size)
		}
		start, err := zf.DataOffset()
		if err != nil {
			zr.Close()
			return err
		}
		pos = start + off
		break
	}
	zr.Close()
	if pos < 0 {
		return fmt.Errorf("flip byte of %s: no such entry", name)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	var b [1]byte
	if _, err := f.ReadAt(b[:], pos); err != nil {
		f.Close()
		return err
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b[:], pos); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// Sample returns images shaped like the fixture basic.zip of Hangar v1.9.4:
// a Docker manifest list (linux/amd64, linux/arm64/v8), an OCI index with
// BuildKit attestations, a single Docker v2 image, a nested repository
// with linux/amd64, linux/arm/v7 and windows/amd64 with an OS version, a
// file and a chart. Layers are small (a few KiB) and some are shared
// between images.
func Sample() []Image {
	base := Layer{Size: 4096, Seed: 1} // shared by several images
	amd64 := ocispec.Platform{OS: "linux", Architecture: "amd64"}
	arm64 := ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	return []Image{
		{
			Source: "docker.io/rancher/app01", Tag: "v1.0.0",
			Manifests: []Manifest{
				{Platform: amd64, Docker: true, Layers: []Layer{base, {Size: 3000, Seed: 11}}},
				{Platform: arm64, Docker: true, Layers: []Layer{{Size: 3000, Seed: 12}}},
			},
		},
		{
			Source: "docker.io/library/app00", Tag: "v1.0.0",
			Manifests: []Manifest{
				{Platform: amd64, Layers: []Layer{base, {Size: 2000, Seed: 21}}},
				{Attestation: true},
				{Platform: arm64, Layers: []Layer{{Size: 2000, Seed: 22}}},
				{Attestation: true},
			},
		},
		{
			Source: "docker.io/library/tool", Tag: "1.0",
			Manifests: []Manifest{
				{Platform: amd64, Docker: true, Layers: []Layer{base, {Size: 1000, Seed: 31}}},
			},
		},
		{
			Source: "docker.io/extra/nested/tool", Tag: "1.0",
			Manifests: []Manifest{
				{Platform: amd64, Layers: []Layer{{Size: 1500, Seed: 41}}},
				{Platform: ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, Layers: []Layer{{Size: 1500, Seed: 42}}},
				{Platform: ocispec.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763.5576"}, Layers: []Layer{{Size: 1500, Seed: 43}}},
			},
		},
		{File: &File{Name: "notes.txt", Data: []byte("hello from hangar\n")}},
		{Chart: &Chart{Name: "demo", Version: "0.1.7"}},
	}
}

// SharedManifest returns n images, docker.io/hostile/shared-<i>:1, whose
// index entries all name one linux/amd64 manifest padded to size bytes
// (Manifest.PadTo), with one small layer: the manifest blob is stored once
// and named n times. Written with Options{Deflate: true}, 250 entries
// naming a 4 MiB manifest make an archive of a few KiB that names 1000 MiB
// of manifests: a loader that reads each entry's manifest anew reads 4 MiB
// per entry (memory amplification, issue 12.3).
func SharedManifest(n int, size int64) []Image {
	m := Manifest{Layers: []Layer{{Data: []byte("shared layer")}}, PadTo: size}
	images := make([]Image, n)
	for i := range images {
		images[i] = Image{Source: fmt.Sprintf("docker.io/hostile/shared-%d", i), Tag: "1", Manifests: []Manifest{m}}
	}
	return images
}
