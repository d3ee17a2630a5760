package archive_test

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/cnrancher/docker-hangar/archive"
	"github.com/cnrancher/docker-hangar/archive/archivetest"
	"github.com/cnrancher/docker-hangar/internal/fixtures"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestFixtureBasic(t *testing.T) {
	dir := fixtures.Require(t)
	r := open(t, filepath.Join(dir, "basic.zip"))
	idx := index(t, r)
	if idx.Version != "v1.2.0" || idx.Time != "2026-11-29T11:18:05.819090436Z" {
		t.Errorf("version, time = %q, %q", idx.Version, idx.Time)
	}
	type entry struct {
		ref   string
		items int
	}
	want := []entry{
		{"127.0.0.1:5557/rancher/app01:v1.0.0", 2},
		{"127.0.0.1:5557/library/app00:v1.0.0", 4},
		{"127.0.0.1:5557/cnrancher/app02:v1.0.0", 4},
		{"127.0.0.1:5557/extra/nested/tool:1.0", 3},
		{"127.0.0.1:5557/library/app03:v1.0.0", 4},
		{"127.0.0.1:5557/library/tool:1.0", 1},
		{"docker.io/hangar-file/notes.txt:latest", 1},
		{"docker.io/hangar-helm/demo:0.1.7", 1},
	}
	var got []entry
	for _, img := range idx.List {
		got = append(got, entry{img.Ref(), len(img.Images)})
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("entries:\n got %v\nwant %v", got, want)
	}

	// Spot checks of item fields.
	app01 := idx.List[0].Images[1]
	if app01.Arch != "arm64" || app01.OS != "linux" || app01.Variant != "v8" ||
		app01.MediaType != "application/vnd.docker.distribution.manifest.v2+json" ||
		app01.Digest != "sha256:69528f36de0d8b4525220092dd2756da17b66c5f9c68cd1c4cf44173e1d77500" ||
		len(app01.Layers) != 4 || app01.Annotations != nil {
		t.Errorf("app01 arm64 item = %+v", app01)
	}
	att := idx.List[1].Images[1]
	if att.Arch != "unknown" || att.OS != "unknown" ||
		att.Annotations["vnd.docker.reference.type"] != "attestation-manifest" ||
		att.Annotations["vnd.docker.reference.digest"] != string(idx.List[1].Images[0].Digest) {
		t.Errorf("app00 attestation item = %+v", att)
	}
	win := idx.List[3].Images[2]
	if win.OS != "windows" || win.OSVersion != "10.0.17763.5576" {
		t.Errorf("windows item = %+v", win)
	}
	chart := idx.List[7]
	if chart.ArchList != nil || chart.OSList != nil || chart.Images[0].Arch != "" ||
		chart.Images[0].Annotations["org.opencontainers.image.version"] != "0.1.7" {
		t.Errorf("chart entry = %+v", chart)
	}

	// Every blob reads back verified.
	ds := indexDigests(idx)
	if len(ds) < 50 {
		t.Fatalf("only %d digests", len(ds))
	}
	for _, d := range ds {
		data, err := readAll(r, d)
		if err != nil {
			t.Fatalf("read %s: %v", d, err)
		}
		if got := digest.FromBytes(data); got != d {
			t.Fatalf("read %s: got content of %s", d, got)
		}
		size, err := r.Size(d)
		if err != nil || size != int64(len(data)) {
			t.Fatalf("Size(%s) = %d, %v; read %d bytes", d, size, err, len(data))
		}
	}
	for _, img := range idx.List {
		for _, m := range img.Images {
			if _, err := r.ReadBlob(m.Digest, 4<<20); err != nil {
				t.Errorf("ReadBlob(%s): %v", m.Digest, err)
			}
		}
	}
}

func TestFixtureMerge(t *testing.T) {
	dir := fixtures.Require(t)
	for _, name := range []string{"amd64.zip", "arm64.zip"} {
		t.Run(name, func(t *testing.T) {
			r := open(t, filepath.Join(dir, name))
			if n := len(index(t, r).List); n != 3 {
				t.Errorf("%d entries, want 3", n)
			}
			for _, d := range indexDigests(index(t, r)) {
				if _, err := readAll(r, d); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestGenerated(t *testing.T) {
	for _, deflate := range []bool{false, true} {
		t.Run(fmt.Sprintf("deflate=%v", deflate), func(t *testing.T) {
			w := write(t, archivetest.Sample(), archivetest.Options{Deflate: deflate})
			r := open(t, w.Path)
			if !reflect.DeepEqual(*index(t, r), w.Index) {
				t.Fatalf("index:\n got %+v\nwant %+v", *index(t, r), w.Index)
			}
			// A load reads the entries one by one: the same, in order;
			// an error of the callback stops them and comes back as is.
			var entries []archive.Image
			if err := r.Entries(func(img archive.Image) error { entries = append(entries, img); return nil }); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(entries, w.Index.List) {
				t.Fatalf("entries:\n got %+v\nwant %+v", entries, w.Index.List)
			}
			stop, calls := errors.New("stop"), 0
			if err := r.Entries(func(archive.Image) error { calls++; return stop }); err != stop || calls != 1 {
				t.Fatalf("Entries with a failing callback: %v after %d calls; want the callback's error after 1", err, calls)
			}
			for _, wi := range w.Images {
				for _, wm := range wi.Manifests {
					check := func(d digest.Digest, want []byte) {
						t.Helper()
						got, err := r.ReadBlob(d, 1<<20)
						if err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(got, want) {
							t.Fatalf("blob %s differs", d)
						}
					}
					check(wm.Descriptor.Digest, wm.Bytes)
					check(wm.Config.Digest, wm.ConfigBytes)
					for _, l := range wm.Layers {
						data, err := readAll(r, l.Digest)
						if err != nil {
							t.Fatal(err)
						}
						if int64(len(data)) != l.Size || digest.FromBytes(data) != l.Digest {
							t.Fatalf("layer %s: %d bytes, want %d", l.Digest, len(data), l.Size)
						}
					}
				}
			}
			ids := map[int32]digest.Digest{}
			for d, size := range w.Blobs {
				got, err := r.Size(d)
				if err != nil || got != size {
					t.Errorf("Size(%s) = %d, %v, want %d", d, got, err, size)
				}
				id, got, err := r.Stat(d)
				if err != nil || got != size || id < 0 || int(id) >= r.Blobs() {
					t.Fatalf("Stat(%s) = %d, %d, %v, want a number below %d and %d bytes", d, id, got, err, r.Blobs(), size)
				}
				if other, ok := ids[id]; ok {
					t.Errorf("blobs %s and %s have number %d", other, d, id)
				}
				ids[id] = d
				if gotD, got, err := r.Blob(id); err != nil || gotD != d || got != size {
					t.Errorf("Blob(%d) = %s, %d, %v, want %s, %d", id, gotD, got, err, d, size)
				}
			}
			if r.Blobs() != len(w.Blobs) {
				t.Errorf("Blobs() = %d, the archive holds %d", r.Blobs(), len(w.Blobs))
			}
			if _, _, err := r.Stat(digest.FromString("not in the archive")); !errors.Is(err, archive.ErrBlobNotFound) {
				t.Errorf("Stat of a missing blob: %v, want ErrBlobNotFound", err)
			}
		})
	}
}

// TestDamaged covers archives that Open must refuse.
func TestDamaged(t *testing.T) {
	sample := func(t *testing.T, opts archivetest.Options) string {
		return write(t, archivetest.Sample(), opts).Path
	}
	raw := func(data []byte) func(t *testing.T) string {
		return func(t *testing.T) string {
			path := filepath.Join(t.TempDir(), "x.zip")
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			return path
		}
	}
	mutate := func(fn func(*archive.Index)) func(t *testing.T) string {
		return func(t *testing.T) string { return sample(t, archivetest.Options{Mutate: fn}) }
	}
	extra := func(name string) func(t *testing.T) string {
		return func(t *testing.T) string {
			return sample(t, archivetest.Options{Extra: []archivetest.Entry{{Name: name, Data: []byte("x")}}})
		}
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("saved-images-list.json"))
	zw.Close()

	tests := []struct {
		name    string
		archive func(t *testing.T) string
		want    error
		msg     string // substring of the message
	}{
		{"not a zip", raw([]byte("hello, world\n")), archive.ErrNotArchive, "x.zip: not a hangar archive: zip: not a valid zip file"},
		{"empty file", raw(nil), archive.ErrNotArchive, "not a hangar archive"},
		{"old gzip format", raw(gz.Bytes()), archive.ErrNotArchive, "hangar v1.6"},
		{"truncated half", func(t *testing.T) string {
			p := sample(t, archivetest.Options{})
			fi, _ := os.Stat(p)
			if err := os.Truncate(p, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
			return p
		}, archive.ErrNotArchive, "not a valid zip file"},
		{"truncated by one byte", func(t *testing.T) string {
			p := sample(t, archivetest.Options{})
			fi, _ := os.Stat(p)
			if err := os.Truncate(p, fi.Size()-1); err != nil {
				t.Fatal(err)
			}
			return p
		}, archive.ErrNotArchive, ""},
		{"no index.json", func(t *testing.T) string { return sample(t, archivetest.Options{NoIndex: true}) }, archive.ErrNoIndex, "archive has no index.json"},
		{"index.json in a directory only", func(t *testing.T) string {
			return sample(t, archivetest.Options{NoIndex: true, Extra: []archivetest.Entry{{Name: "x/index.json", Data: []byte(`{"version":"v1.2.0"}`)}}})
		}, archive.ErrNoIndex, ""},
		{"bad json", func(t *testing.T) string { return sample(t, archivetest.Options{IndexJSON: []byte(`{"list":[`)}) }, archive.ErrInvalidIndex, "invalid archive index: unexpected end of JSON input"},
		{"json array", func(t *testing.T) string { return sample(t, archivetest.Options{IndexJSON: []byte(`[]`)}) }, archive.ErrInvalidIndex, ""},
		{"version v1.1.0", mutate(func(x *archive.Index) { x.Version = "v1.1.0" }), archive.ErrUnsupportedVersion,
			"archive index version v1.1.0 is not supported: supported versions are v1.2.0 up to v2.0.0 (exclusive)"},
		{"version v2.0.0", mutate(func(x *archive.Index) { x.Version = "v2.0.0" }), archive.ErrUnsupportedVersion, "version v2.0.0 is not supported"},
		{"version empty", mutate(func(x *archive.Index) { x.Version = "" }), archive.ErrUnsupportedVersion, "archive index has no version"},
		{"version banana", mutate(func(x *archive.Index) { x.Version = "banana" }), archive.ErrUnsupportedVersion, "version banana is not a valid semantic version"},
		{"layer digest without colon", mutate(func(x *archive.Index) { x.List[1].Images[0].Layers[1] = "sha256abc" }), archive.ErrInvalidIndex,
			`image docker.io/library/app00:v1.0.0: images[0]: invalid layers[1] digest sha256abc`},
		{"config digest bad hex", mutate(func(x *archive.Index) {
			x.List[0].Images[0].Config = digest.Digest("sha256:" + strings.Repeat("z", 64))
		}), archive.ErrInvalidIndex,
			"invalid config digest sha256:zzzz"},
		{"manifest digest upper case", mutate(func(x *archive.Index) {
			x.List[2].Images[0].Digest = digest.Digest("sha256:" + strings.Repeat("A", 64))
		}), archive.ErrInvalidIndex,
			"image docker.io/library/tool:1.0"},
		{"empty source", mutate(func(x *archive.Index) { x.List[0].Source = "" }), archive.ErrInvalidIndex, "list item 1: empty source"},
		{"unsafe ../x", extra("../x"), archive.ErrUnsafeName, `unsafe entry name in archive: "../x"`},
		{"unsafe nested ..", extra("share/../../x"), archive.ErrUnsafeName, `"share/../../x"`},
		{"unsafe /abs", extra("/abs"), archive.ErrUnsafeName, `"/abs"`},
		{"unsafe backslash", extra(`a\b`), archive.ErrUnsafeName, `"a\\b"`},
		{"unsafe empty name", extra(""), archive.ErrUnsafeName, `""`},
		{"unsafe volume", extra("C:/x"), archive.ErrUnsafeName, ""},
		{"index too large (declared)", func(t *testing.T) string {
			p := sample(t, archivetest.Options{})
			patchCentral(t, p, "index.json", func(rec []byte) {
				binary.LittleEndian.PutUint32(rec[24:], archive.MaxIndexSize+1)
			})
			return p
		}, archive.ErrIndexTooLarge, "index.json is 67108865 bytes, the limit is 67108864"},
		{"index checksum", func(t *testing.T) string {
			p := sample(t, archivetest.Options{})
			flipRaw(t, p, "index.json")
			return p
		}, archive.ErrInvalidIndex, "checksum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := tt.archive(t)
			r, err := archive.Open(path)
			if err == nil {
				r.Close()
				t.Fatalf("Open succeeded, want %v", tt.want)
			}
			wantErr(t, err, tt.want)
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("message %q does not contain %q", err, tt.msg)
			}
			if !strings.HasPrefix(err.Error(), "open "+path+": ") {
				t.Errorf("message %q does not start with the path", err)
			}
		})
	}
}

func TestOpenMissingFile(t *testing.T) {
	_, err := archive.Open(filepath.Join(t.TempDir(), "nope.zip"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("error = %v, want not exist", err)
	}
	_, err = archive.Open(t.TempDir())
	wantErr(t, err, archive.ErrNotArchive)
}

func TestAcceptedVersions(t *testing.T) {
	for _, v := range []string{"v1.2.0", "1.2.0", "v1.3.0", "v1.99.0", "v1.2.1-rc1", "v1.2.0+build.5", "v1.2"} {
		t.Run(v, func(t *testing.T) {
			w := write(t, nil, archivetest.Options{Version: v})
			r := open(t, w.Path)
			if index(t, r).Version != v || len(index(t, r).List) != 0 {
				t.Errorf("index = %+v", index(t, r))
			}
		})
	}
}

// sharedImages returns two images that share a layer, with a larger layer.
func sharedImages() []archivetest.Image {
	shared := archivetest.Layer{Size: 300 << 10, Seed: 7}
	return []archivetest.Image{
		{Source: "docker.io/library/a", Tag: "1", Manifests: []archivetest.Manifest{{Layers: []archivetest.Layer{shared, {Size: 5000, Seed: 1}}}}},
		{Source: "docker.io/library/b", Tag: "1", Manifests: []archivetest.Manifest{{Layers: []archivetest.Layer{shared, {Size: 6000, Seed: 2}}}}},
	}
}

func TestMissingBlob(t *testing.T) {
	gone := archivetest.LayerDigest(archivetest.Layer{Size: 5000, Seed: 1})
	w := write(t, sharedImages(), archivetest.Options{OmitBlobs: []digest.Digest{gone}})
	r := open(t, w.Path)
	if _, ok := w.Blobs[gone]; ok {
		t.Fatal("omitted blob listed as written")
	}
	_, err := r.Size(gone)
	wantErr(t, err, archive.ErrBlobNotFound)
	if !strings.Contains(err.Error(), string(gone)) {
		t.Errorf("message %q does not name the digest", err)
	}
	_, err = r.Open(gone)
	wantErr(t, err, archive.ErrBlobNotFound)
	_, err = r.ReadBlob(gone, 1<<20)
	wantErr(t, err, archive.ErrBlobNotFound)
	// The rest of the archive is fine.
	for d := range w.Blobs {
		if _, err := readAll(r, d); err != nil {
			t.Error(err)
		}
	}
}

func TestCorruptBlob(t *testing.T) {
	for _, deflate := range []bool{false, true} {
		t.Run(fmt.Sprintf("deflate=%v", deflate), func(t *testing.T) {
			bad := archivetest.LayerDigest(archivetest.Layer{Size: 300 << 10, Seed: 7})
			w := write(t, sharedImages(), archivetest.Options{Deflate: deflate})
			if deflate {
				flipRaw(t, w.Path, blobName(bad))
			} else if err := archivetest.FlipByte(w.Path, bad); err != nil {
				t.Fatal(err)
			}
			r := open(t, w.Path)

			// Small reads succeed until the end, where the error comes
			// instead of the last bytes.
			rc, err := r.Open(bad)
			if err != nil {
				t.Fatal(err)
			}
			var n int64
			buf := make([]byte, 1000)
			for {
				m, err := rc.Read(buf)
				n += int64(m)
				if err == nil {
					continue
				}
				wantErr(t, err, archive.ErrDigestMismatch)
				if !deflate {
					want := fmt.Sprintf("blob %s in archive is corrupt: content does not match its digest", bad)
					if err.Error() != want {
						t.Errorf("message = %q, want %q", err, want)
					}
				}
				break
			}
			if n >= 300<<10 {
				t.Errorf("all %d bytes delivered before the error", n)
			}
			if _, err := rc.Read(buf); !errors.Is(err, archive.ErrDigestMismatch) {
				t.Errorf("error is not sticky: %v", err)
			}
			rc.Close()

			_, err = r.ReadBlob(bad, 1<<20)
			wantErr(t, err, archive.ErrDigestMismatch)
			_, err = readAll(r, bad)
			wantErr(t, err, archive.ErrDigestMismatch)

			// io.Copy with its own buffer.
			rc, _ = r.Open(bad)
			var out bytes.Buffer
			copied, err := io.Copy(&out, rc)
			rc.Close()
			wantErr(t, err, archive.ErrDigestMismatch)
			if copied >= 300<<10 {
				t.Errorf("io.Copy wrote the whole corrupt blob")
			}

			// Only that blob is affected.
			for d := range w.Blobs {
				if d == bad {
					continue
				}
				if _, err := readAll(r, d); err != nil {
					t.Errorf("blob %s: %v", d, err)
				}
			}
		})
	}
}

func TestBadEntries(t *testing.T) {
	big := archivetest.LayerDigest(archivetest.Layer{Size: 300 << 10, Seed: 7})
	other := digest.FromString("other")
	tests := []struct {
		name  string
		opts  archivetest.Options
		patch func(t *testing.T, path string)
		d     digest.Digest
		want  error
	}{
		{"entry past the end of file", archivetest.Options{}, func(t *testing.T, p string) {
			patchCentral(t, p, blobName(big), func(rec []byte) {
				binary.LittleEndian.PutUint32(rec[20:], 1<<30)
				binary.LittleEndian.PutUint32(rec[24:], 1<<30)
			})
		}, big, archive.ErrDigestMismatch},
		{"stored sizes disagree", archivetest.Options{}, func(t *testing.T, p string) {
			patchCentral(t, p, blobName(big), func(rec []byte) { binary.LittleEndian.PutUint32(rec[24:], 10) })
		}, big, archive.ErrDigestMismatch},
		{"shorter than its digest", archivetest.Options{}, func(t *testing.T, p string) {
			patchCentral(t, p, blobName(big), func(rec []byte) {
				binary.LittleEndian.PutUint32(rec[20:], 1000)
				binary.LittleEndian.PutUint32(rec[24:], 1000)
			})
		}, big, archive.ErrDigestMismatch},
		{"bad local header", archivetest.Options{}, func(t *testing.T, p string) {
			patchCentral(t, p, blobName(big), func(rec []byte) { binary.LittleEndian.PutUint32(rec[42:], 1) })
		}, big, archive.ErrDigestMismatch},
		{"empty entry with a wrong digest", archivetest.Options{Extra: []archivetest.Entry{{Name: blobName(other), Data: []byte{}}}}, nil, other, archive.ErrDigestMismatch},
		{"deflated entry with a wrong digest", archivetest.Options{Extra: []archivetest.Entry{{Name: blobName(other), Data: []byte("not other"), Deflate: true}}}, nil, other, archive.ErrDigestMismatch},
		{"unknown compression method", archivetest.Options{}, func(t *testing.T, p string) {
			patchCentral(t, p, blobName(big), func(rec []byte) { binary.LittleEndian.PutUint16(rec[10:], 99) })
		}, big, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := write(t, sharedImages(), tt.opts)
			if tt.patch != nil {
				tt.patch(t, w.Path)
			}
			r := open(t, w.Path)
			_, err := readAll(r, tt.d)
			if tt.want == nil {
				if err == nil {
					t.Fatal("read succeeded")
				}
				t.Logf("error: %v", err)
				return
			}
			wantErr(t, err, tt.want)
			t.Logf("error: %v", err)
			_, err = r.ReadBlob(tt.d, 1<<30)
			wantErr(t, err, tt.want)
		})
	}
}

func TestDigestArguments(t *testing.T) {
	w := write(t, sharedImages(), archivetest.Options{})
	r := open(t, w.Path)
	tests := []struct {
		d    digest.Digest
		want error
	}{
		{"", archive.ErrInvalidDigest},
		{"nocolon", archive.ErrInvalidDigest},
		{"sha256:", archive.ErrInvalidDigest},
		{"sha256:abc", archive.ErrInvalidDigest},
		{digest.Digest("sha256:" + strings.Repeat("G", 64)), archive.ErrInvalidDigest},
		{digest.Digest("sha256:../../" + strings.Repeat("a", 58)), archive.ErrInvalidDigest},
		{digest.SHA512.FromString("x"), archive.ErrUnsupportedDigest},
		{"md5:d41d8cd98f00b204e9800998ecf8427e", archive.ErrUnsupportedDigest},
		{digest.FromString("absent"), archive.ErrBlobNotFound},
	}
	for _, tt := range tests {
		t.Run(string(tt.d), func(t *testing.T) {
			_, err := r.Size(tt.d)
			wantErr(t, err, tt.want)
			_, err = r.Open(tt.d)
			wantErr(t, err, tt.want)
			_, err = r.ReadBlob(tt.d, 100)
			wantErr(t, err, tt.want)
		})
	}
}

func TestReadBlobLimit(t *testing.T) {
	w := write(t, sharedImages(), archivetest.Options{})
	r := open(t, w.Path)
	d := w.Images[0].Manifests[0].Layers[1].Digest // 5000 bytes
	if _, err := r.ReadBlob(d, 4999); !errors.Is(err, archive.ErrBlobTooLarge) {
		t.Fatalf("error = %v, want ErrBlobTooLarge", err)
	}
	if data, err := r.ReadBlob(d, 5000); err != nil || len(data) != 5000 {
		t.Fatalf("ReadBlob = %d bytes, %v", len(data), err)
	}
}

// TestReadBlobAllocation checks that ReadBlob refuses, before allocating
// room for it, a blob larger than its limit and a deflated entry that
// claims more bytes than its compressed data can hold.
func TestReadBlobAllocation(t *testing.T) {
	const size = 4 << 20
	big := write(t, archivetest.SharedManifest(1, size), archivetest.Options{Deflate: true})
	manifest := big.Images[0].Manifests[0].Descriptor.Digest
	liar := digest.FromString("liar")
	lying := write(t, sharedImages()[:1], archivetest.Options{Extra: []archivetest.Entry{{Name: blobName(liar), Data: []byte("x"), Deflate: true}}})
	patchCentral(t, lying.Path, blobName(liar), func(rec []byte) { binary.LittleEndian.PutUint32(rec[24:], size) })
	tests := []struct {
		name  string
		path  string
		d     digest.Digest
		limit int64
		want  error
	}{
		{"larger than the limit", big.Path, manifest, size - 1, archive.ErrBlobTooLarge},
		{"claims more than deflate can hold", lying.Path, liar, 2 * size, archive.ErrDigestMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := open(t, tt.path)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := r.ReadBlob(tt.d, tt.limit)
			runtime.ReadMemStats(&after)
			wantErr(t, err, tt.want)
			t.Logf("error: %v", err)
			if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
				t.Errorf("ReadBlob allocated %d bytes", n)
			}
		})
	}
	// Within the limit, the 4 MiB manifest reads whole.
	r := open(t, big.Path)
	if data, err := r.ReadBlob(manifest, size); err != nil || len(data) != size {
		t.Fatalf("ReadBlob = %d bytes, %v", len(data), err)
	}
}

func TestEmptyBlob(t *testing.T) {
	empty := []archivetest.Layer{{Data: []byte{}}}
	w := write(t, []archivetest.Image{{Source: "docker.io/library/e", Tag: "1", Manifests: []archivetest.Manifest{{Layers: empty}}}}, archivetest.Options{})
	r := open(t, w.Path)
	d := digest.FromBytes(nil)
	data, err := r.ReadBlob(d, 0)
	if err != nil || len(data) != 0 {
		t.Fatalf("ReadBlob = %q, %v", data, err)
	}
	if data, err := readAll(r, d); err != nil || len(data) != 0 {
		t.Fatalf("read = %q, %v", data, err)
	}
}

func TestDuplicates(t *testing.T) {
	images := archivetest.Sample()[:1]
	images = append(images, images[0]) // same source:tag twice
	first := []byte(`{"version":"v1.3.0","list":[{"source":"docker.io/x/y","tag":"1"}]}`)
	w := write(t, images, archivetest.Options{Extra: []archivetest.Entry{{Name: "index.json", Data: first}}})
	r := open(t, w.Path)
	// The first index.json of the central directory wins, as in Hangar.
	if index(t, r).Version != "v1.3.0" {
		t.Errorf("version = %q, want the first index.json", index(t, r).Version)
	}
	if len(w.Index.List) != 2 || w.Index.List[0].Ref() != w.Index.List[1].Ref() {
		t.Errorf("written index = %+v", w.Index.List)
	}
	// Blobs and layouts are written once.
	seen := make(map[string]bool)
	for _, name := range w.Entries {
		if seen[name] && name != "index.json" {
			t.Errorf("entry %s written twice", name)
		}
		seen[name] = true
	}
}

func TestDuplicateBlobs(t *testing.T) {
	// Two entries for each blob: the first of the central directory is
	// read, good or bad, whatever the order of the digests.
	images := sharedImages()
	probe := write(t, images, archivetest.Options{})
	var ds []digest.Digest
	for d := range probe.Blobs {
		ds = append(ds, d)
	}
	var extra []archivetest.Entry
	good, bad := map[digest.Digest]bool{}, map[digest.Digest]bool{}
	for i, d := range ds {
		data, err := readAll(open(t, probe.Path), d)
		if err != nil {
			t.Fatal(err)
		}
		first, second := data, []byte("not "+d.Encoded())
		if i%2 == 1 {
			first, second = second, first
			bad[d] = true
		} else {
			good[d] = true
		}
		extra = append(extra, archivetest.Entry{Name: blobName(d), Data: first}, archivetest.Entry{Name: blobName(d), Data: second})
	}
	// The images' own blob entries are left out, the pairs written instead.
	written := map[string]int{}
	omit := func(name string) bool {
		written[name]++
		return strings.HasPrefix(name, archive.BlobPrefix) && written[name] == 1
	}
	w := write(t, images, archivetest.Options{Omit: omit, Extra: extra})
	r := open(t, w.Path)
	for d := range good {
		if _, err := readAll(r, d); err != nil {
			t.Errorf("blob %s, first entry good: %v", d, err)
		}
	}
	for d := range bad {
		_, err := readAll(r, d)
		wantErr(t, err, archive.ErrDigestMismatch)
	}
	if len(good) == 0 || len(bad) == 0 {
		t.Fatalf("%d good, %d bad", len(good), len(bad))
	}
}

func TestIndexEntryNames(t *testing.T) {
	// Case-insensitive keys and unknown fields, as Hangar's encoding/json.
	data := []byte(`{"VERSION":"v1.2.0","Time":"x","extra":1,"List":[{"Source":"docker.io/a/b","TAG":"1","Images":[{"Digest":"` +
		string(digest.FromString("m")) + `","LAYERS":[],"unknown":{"a":[1,2]}}]}]}`)
	w := write(t, nil, archivetest.Options{IndexJSON: data})
	r := open(t, w.Path)
	idx := index(t, r)
	if idx.Version != "v1.2.0" || len(idx.List) != 1 || idx.List[0].Ref() != "docker.io/a/b:1" ||
		idx.List[0].Images[0].Digest != digest.FromString("m") {
		t.Errorf("index = %+v", idx)
	}
}

func TestZip64(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 65,600 entries")
	}
	extra := make([]archivetest.Entry, 65600)
	for i := range extra {
		extra[i] = archivetest.Entry{Name: fmt.Sprintf("pad/%05d", i), Data: []byte{}}
	}
	w := write(t, sharedImages(), archivetest.Options{Extra: extra})
	data, err := os.ReadFile(w.Path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(data[len(data)-200:], []byte{'P', 'K', 6, 6}) {
		t.Fatal("no zip64 end of central directory record")
	}
	sameAsArchiveZip(t, data)
	r := open(t, w.Path)
	for d := range w.Blobs {
		if _, err := readAll(r, d); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConcurrentReads(t *testing.T) {
	for _, deflate := range []bool{false, true} {
		t.Run(fmt.Sprintf("deflate=%v", deflate), func(t *testing.T) {
			layer := archivetest.Layer{Size: 1 << 20, Seed: 99}
			want := archivetest.LayerDigest(layer)
			w := write(t, []archivetest.Image{{Source: "docker.io/a/b", Tag: "1", Manifests: []archivetest.Manifest{{Layers: []archivetest.Layer{layer}}}}},
				archivetest.Options{Deflate: deflate})
			r := open(t, w.Path)
			var wg sync.WaitGroup
			errs := make(chan error, 32)
			for i := range 32 {
				wg.Go(func() {
					h := sha256.New()
					var err error
					if i%2 == 0 {
						var rc io.ReadCloser
						if rc, err = r.Open(want); err == nil {
							_, err = io.Copy(h, rc)
							rc.Close()
						}
					} else {
						var data []byte
						data, err = r.ReadBlob(want, 2<<20)
						h.Write(data)
					}
					if err == nil && digest.NewDigest(digest.SHA256, h) != want {
						err = errors.New("wrong content")
					}
					errs <- err
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
		})
	}
}

func TestClosed(t *testing.T) {
	w := write(t, sharedImages(), archivetest.Options{})
	r, err := archive.Open(w.Path)
	if err != nil {
		t.Fatal(err)
	}
	d := w.Images[0].Manifests[0].Layers[0].Digest
	rc, err := r.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	if _, err := io.ReadAll(rc); err == nil {
		t.Error("read after Close succeeded")
	}
	if _, err := r.ReadBlob(d, 1<<20); err == nil {
		t.Error("ReadBlob after Close succeeded")
	}
	rc.Close()
	if _, err := rc.Read(make([]byte, 1)); err == nil || err == io.EOF {
		t.Errorf("read of a closed blob reader: %v", err)
	}
}

func TestPlatformConfig(t *testing.T) {
	plat := ocispec.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763.5576", Variant: "v3"}
	w := write(t, []archivetest.Image{{Source: "docker.io/a/b", Tag: "1", Manifests: []archivetest.Manifest{
		{Platform: plat, Docker: true},
		{Attestation: true},
	}}}, archivetest.Options{})
	r := open(t, w.Path)
	for i, want := range []string{
		`"architecture":"amd64","os":"windows","os.version":"10.0.17763.5576","variant":"v3"`,
		`"architecture":"unknown","os":"unknown"`,
	} {
		cfg, err := r.ReadBlob(index(t, r).List[0].Images[i].Config, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(cfg), want) {
			t.Errorf("config %s does not contain %s", cfg, want)
		}
	}
	item := index(t, r).List[0]
	if !reflect.DeepEqual(item.ArchList, []string{"amd64", "unknown"}) || !reflect.DeepEqual(item.OSList, []string{"windows", "unknown"}) {
		t.Errorf("lists = %v %v", item.ArchList, item.OSList)
	}
	att := item.Images[1]
	if att.Annotations["vnd.docker.reference.digest"] != string(item.Images[0].Digest) {
		t.Errorf("attestation annotations = %v", att.Annotations)
	}
}

// TestBlobLookups covers what the reader reads again from the central
// directory when a blob is looked up (it keeps 4 bytes of each digest and
// where the blob's record is): digests that share those 4 bytes, an
// archive after other data in its file, and an archive that changed after
// Open, which gives errors, not wrong answers.
func TestBlobLookups(t *testing.T) {
	// Three names with the same first 8 hex digits; their data need not
	// match them for lookups (reading them fails the digest check).
	same := strings.Repeat("ab", 4)
	name := func(i int) digest.Digest {
		return digest.NewDigestFromEncoded(digest.SHA256, same+strings.Repeat(fmt.Sprintf("%x", i), 56))
	}
	twins := []archivetest.Entry{
		{Name: blobName(name(1)), Data: []byte("one")},
		{Name: blobName(name(2)), Data: []byte("second")},
	}
	check := func(t *testing.T, r *archive.Reader, want map[digest.Digest]int64) {
		t.Helper()
		seen := map[int32]digest.Digest{}
		for d, size := range want {
			id, got, err := r.Stat(d)
			if err != nil || got != size {
				t.Fatalf("Stat(%s) = %d, %d, %v, want %d bytes", d, id, got, err, size)
			}
			if other, ok := seen[id]; ok {
				t.Fatalf("%s and %s have number %d", other, d, id)
			}
			seen[id] = d
			if gotD, got, err := r.Blob(id); err != nil || gotD != d || got != size {
				t.Fatalf("Blob(%d) = %s, %d, %v, want %s, %d", id, gotD, got, err, d, size)
			}
		}
	}
	// checkRead checks the lookups and reads every blob whole.
	checkRead := func(t *testing.T, r *archive.Reader, want map[digest.Digest]int64) {
		t.Helper()
		check(t, r, want)
		for d, size := range want {
			if got, err := readAll(r, d); err != nil || int64(len(got)) != size {
				t.Fatalf("blob %s: %d bytes, %v", d, len(got), err)
			}
		}
	}
	t.Run("shared prefix", func(t *testing.T) {
		w := write(t, archivetest.Sample(), archivetest.Options{Extra: twins})
		r := open(t, w.Path)
		want := maps.Clone(w.Blobs)
		want[name(1)], want[name(2)] = 3, 6
		check(t, r, want)
		if _, _, err := r.Stat(name(3)); !errors.Is(err, archive.ErrBlobNotFound) {
			t.Errorf("Stat of a third digest with that prefix: %v, want ErrBlobNotFound", err)
		}
	})
	t.Run("many with one prefix", func(t *testing.T) {
		// A hostile archive may name thousands of blobs with one prefix:
		// a lookup reads a few records (a binary search among them),
		// not all of them.
		const n = 3000
		many := make([]archivetest.Entry, n)
		want := map[digest.Digest]int64{}
		for i := range many {
			d := digest.NewDigestFromEncoded(digest.SHA256, same+fmt.Sprintf("%056x", i*2+1))
			many[i] = archivetest.Entry{Name: blobName(d), Data: []byte(fmt.Sprint(i))}
			want[d] = int64(len(many[i].Data))
		}
		w := write(t, archivetest.Sample(), archivetest.Options{Extra: many})
		r := open(t, w.Path)
		var reads int
		archive.CountRecordReads(r, &reads)
		maxReads := 0
		for d, size := range want {
			reads = 0
			if _, got, err := r.Stat(d); err != nil || got != size {
				t.Fatalf("Stat(%s) = %d, %v, want %d bytes", d, got, err, size)
			}
			maxReads = max(maxReads, reads)
		}
		reads = 0
		missing := digest.NewDigestFromEncoded(digest.SHA256, same+fmt.Sprintf("%056x", 2000)) // even: not written
		if _, _, err := r.Stat(missing); !errors.Is(err, archive.ErrBlobNotFound) {
			t.Errorf("Stat of a missing digest with that prefix: %v, want ErrBlobNotFound", err)
		}
		maxReads = max(maxReads, reads)
		if limit := 13; maxReads > limit { // log2(3000) rounded up, and one
			t.Errorf("a lookup among %d blobs of one prefix read %d records, want at most %d", n, maxReads, limit)
		}
	})
	t.Run("data before the archive", func(t *testing.T) {
		w := write(t, archivetest.Sample(), archivetest.Options{})
		data, err := os.ReadFile(w.Path)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "sfx.zip")
		if err := os.WriteFile(path, append(bytes.Repeat([]byte{'#'}, 1000), data...), 0o644); err != nil {
			t.Fatal(err)
		}
		r := open(t, path)
		checkRead(t, r, w.Blobs)
	})
	t.Run("long records", func(t *testing.T) {
		// A comment makes every record longer than one read of it.
		w := write(t, archivetest.Sample(), archivetest.Options{})
		zr, err := zip.OpenReader(w.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		path := filepath.Join(t.TempDir(), "comments.zip")
		out, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		zw := zip.NewWriter(out)
		for _, f := range zr.File {
			f.Comment = strings.Repeat("c", 400)
			if err := zw.Copy(f); err != nil {
				t.Fatal(err)
			}
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		if err := out.Close(); err != nil {
			t.Fatal(err)
		}
		r := open(t, path)
		checkRead(t, r, w.Blobs)
	})
	t.Run("changed after Open", func(t *testing.T) {
		w := write(t, archivetest.Sample(), archivetest.Options{})
		r := open(t, w.Path)
		var d digest.Digest
		for d = range w.Blobs {
			break
		}
		id, _, err := r.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		// Rewrite the file with every byte of its directory changed.
		data, err := os.ReadFile(w.Path)
		if err != nil {
			t.Fatal(err)
		}
		dir := bytes.Index(data, []byte{'P', 'K', 1, 2})
		for i := dir; i < len(data); i++ {
			data[i] ^= 0x5a
		}
		if err := os.WriteFile(w.Path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := r.Stat(d); !errors.Is(err, archive.ErrDigestMismatch) || !strings.Contains(err.Error(), "has the archive changed?") {
			t.Errorf("Stat after the change: %v, want a corrupt-archive error", err)
		}
		if _, _, err := r.Blob(id); !errors.Is(err, archive.ErrDigestMismatch) {
			t.Errorf("Blob after the change: %v, want a corrupt-archive error", err)
		}
		if _, err := r.Open(d); !errors.Is(err, archive.ErrDigestMismatch) {
			t.Errorf("Open after the change: %v, want a corrupt-archive error", err)
		}
	})
}
