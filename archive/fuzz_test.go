package archive_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/cnrancher/docker-hangar/archive"
	"github.com/cnrancher/docker-hangar/archive/archivetest"
	"github.com/cnrancher/docker-hangar/internal/fixtures"
)

// FuzzParseIndex checks that ParseIndex never panics, that an accepted
// index only holds valid digests and an accepted version, and that it
// survives a round trip.
func FuzzParseIndex(f *testing.F) {
	for _, s := range []string{
		``, `{}`, `null`, `[]`, `{"version":"v1.2.0"}`, `{"version":"1.2.0","list":[]}`,
		`{"version":"v1.1.0"}`, `{"version":"v2.0.0-rc1"}`, `{"version":"v1.2.0-rc1"}`,
		`{"version":"v1.2.0","list":[{"source":"a/b","tag":"1","images":[{"digest":"sha256"}]}]}`,
		`{"version":"v1.2.0","list":[{"source":"a/b","tag":"1","images":[{"layers":["sha256:00"],"digest":""}]}]}`,
		`{"VERSION":"v1.3.0","List":[{"Source":"a","Images":[null]}]}`,
	} {
		f.Add([]byte(s))
	}
	// The real index of the fixture, and generated ones, read through the
	// reader.
	addIndex := func(path string) {
		r, err := archive.Open(path)
		if err != nil {
			f.Fatal(err)
		}
		defer r.Close()
		data, err := json.Marshal(index(f, r))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	if dir := fixtures.Dir(); dir != "" {
		addIndex(filepath.Join(dir, "basic.zip"))
	}
	w, err := archivetest.Write(filepath.Join(f.TempDir(), "s.zip"), archivetest.Sample(), archivetest.Options{})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(w.IndexJSON)

	f.Fuzz(func(t *testing.T, data []byte) {
		idx, err := archive.ParseIndex(data)
		// The index is decoded as a stream: it must decode as
		// json.Unmarshal of the whole does (within the size limit).
		if want, werr := archive.UnmarshalIndex(data); !errors.Is(err, archive.ErrIndexTooLarge) {
			if (err == nil) != (werr == nil) {
				t.Fatalf("streamed: %v; json.Unmarshal: %v", err, werr)
			}
			if err == nil && !reflect.DeepEqual(idx, want) {
				t.Fatalf("streamed:\n%+v\njson.Unmarshal:\n%+v", idx, want)
			}
		}
		if err != nil {
			if idx != nil {
				t.Fatal("index returned with an error")
			}
			if !errors.Is(err, archive.ErrInvalidIndex) && !errors.Is(err, archive.ErrUnsupportedVersion) && !errors.Is(err, archive.ErrIndexTooLarge) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		if err := archive.CheckIndexVersion(idx.Version); err != nil {
			t.Fatalf("accepted index with version %q: %v", idx.Version, err)
		}
		for _, img := range idx.List {
			if img.Source == "" {
				t.Fatal("accepted an empty source")
			}
			for _, m := range img.Images {
				for _, d := range append(m.Layers, m.Config, m.Digest) {
					if d != "" {
						if err := d.Validate(); err != nil {
							t.Fatalf("accepted digest %q: %v", d, err)
						}
						_ = d.Encoded() // must not panic
					}
				}
			}
		}
		out, err := json.Marshal(idx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := archive.ParseIndex(out); err != nil {
			t.Fatalf("round trip refused: %v\n%s", err, out)
		}
	})
}

// FuzzOpen checks that opening any file and reading every blob it names
// never panics, and that whatever reads without error matches its digest.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	tiny := []archivetest.Image{{Source: "a/b", Tag: "1", Manifests: []archivetest.Manifest{{Layers: []archivetest.Layer{{Data: []byte("x")}}}}}}
	seeds := []struct {
		images []archivetest.Image
		opts   archivetest.Options
	}{
		{nil, archivetest.Options{}},
		{tiny, archivetest.Options{}},
		{tiny, archivetest.Options{Deflate: true}},
		{tiny, archivetest.Options{Extra: []archivetest.Entry{{Name: "../x", Data: []byte("y")}}}},
		{[]archivetest.Image{{File: &archivetest.File{Name: "f", Data: []byte("x")}}}, archivetest.Options{}},
		{archivetest.Sample()[1:2], archivetest.Options{}},
	}
	for _, s := range seeds {
		w, err := archivetest.Write(filepath.Join(dir, "seed.zip"), s.images, s.opts)
		if err != nil {
			f.Fatal(err)
		}
		data, err := os.ReadFile(w.Path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("PK\x05\x06" + string(make([]byte, 18))))
	f.Add([]byte{})

	// One file per worker process, rewritten for each input: t.TempDir
	// per input would dominate the run time.
	path := filepath.Join(dir, fmt.Sprintf("fuzz-%d.zip", os.Getpid()))
	f.Fuzz(func(t *testing.T, data []byte) {
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := archive.Open(path)
		if err != nil {
			return
		}
		defer r.Close()
		for _, d := range indexDigests(index(t, r)) {
			r.Size(d)
			if b, err := r.ReadBlob(d, 1<<20); err == nil && d.Algorithm() == "sha256" {
				if got := d.Algorithm().FromBytes(b); got != d {
					t.Fatalf("ReadBlob(%s) returned content of %s", d, got)
				}
			}
			rc, err := r.Open(d)
			if err != nil {
				continue
			}
			h := d.Algorithm().Digester()
			if _, err := io.Copy(h.Hash(), rc); err == nil && h.Digest() != d {
				t.Fatalf("Open(%s) returned content of %s", d, h.Digest())
			}
			rc.Close()
		}
	})
}
