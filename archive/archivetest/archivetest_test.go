package archivetest_test

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cnrancher/docker-hangar/archive"
	"github.com/cnrancher/docker-hangar/archive/archivetest"
	"github.com/cnrancher/docker-hangar/internal/fixtures"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestLayerReader(t *testing.T) {
	for _, size := range []int64{0, 1, 7, 8, 9, 1000, 1<<20 + 3} {
		l := archivetest.Layer{Size: size, Seed: size}
		whole, err := io.ReadAll(archivetest.LayerReader(l))
		if err != nil || int64(len(whole)) != size {
			t.Fatalf("size %d: read %d bytes, %v", size, len(whole), err)
		}
		if got := archivetest.LayerDigest(l); got != digest.FromBytes(whole) {
			t.Fatalf("size %d: LayerDigest = %s, want %s", size, got, digest.FromBytes(whole))
		}
		for _, bs := range []int{1, 3, 7, 8, 13, 4096} {
			var got []byte
			r := archivetest.LayerReader(l)
			buf := make([]byte, bs)
			for {
				n, err := r.Read(buf)
				got = append(got, buf[:n]...)
				if err == io.EOF {
					break
				}
			}
			if !bytes.Equal(got, whole) {
				t.Fatalf("size %d: reads of %d bytes give other content", size, bs)
			}
		}
	}
	a := archivetest.LayerDigest(archivetest.Layer{Size: 100, Seed: 1})
	b := archivetest.LayerDigest(archivetest.Layer{Size: 100, Seed: 2})
	if a == b {
		t.Error("seeds 1 and 2 give the same layer")
	}
	data := []byte("raw")
	if archivetest.LayerDigest(archivetest.Layer{Data: data, Size: 99, Seed: 1}) != digest.FromBytes(data) {
		t.Error("Data is not used as is")
	}
}

func TestDeterministic(t *testing.T) {
	dir := t.TempDir()
	var files [][]byte
	for _, name := range []string{"a.zip", "b.zip"} {
		w, err := archivetest.Write(filepath.Join(dir, name), archivetest.Sample(), archivetest.Options{})
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(w.Path)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, data)
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Error("two writes of the same images differ")
	}
}

func TestLayout(t *testing.T) {
	w, err := archivetest.Write(filepath.Join(t.TempDir(), "a.zip"), archivetest.Sample(), archivetest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.OpenReader(w.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	files := make(map[string]*zip.File)
	for i, zf := range zr.File {
		files[zf.Name] = zf
		if zf.Name != w.Entries[i] {
			t.Fatalf("entry %d is %s, Written says %s", i, zf.Name, w.Entries[i])
		}
		if zf.Method != zip.Store || zf.Flags&0x8 == 0 {
			t.Errorf("%s: method %d, flags %#x", zf.Name, zf.Method, zf.Flags)
		}
		if hasExtra := len(zf.Extra) > 0; hasExtra != (zf.Name != "index.json") {
			t.Errorf("%s: extended timestamp = %v", zf.Name, hasExtra)
		}
	}
	if last := zr.File[len(zr.File)-1].Name; last != "index.json" {
		t.Errorf("last entry is %s", last)
	}
	read := func(name string) []byte {
		t.Helper()
		zf := files[name]
		if zf == nil {
			t.Fatalf("no entry %s", name)
		}
		rc, err := zf.Open()
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		data, err := io.ReadAll(rc)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	if !bytes.Equal(read("index.json"), w.IndexJSON) || bytes.Contains(w.IndexJSON, []byte("\n")) {
		t.Error("index.json is not the compact index")
	}
	for i, wi := range w.Images {
		artifact := i >= 4 // Sample: file and chart last
		for _, wm := range wi.Manifests {
			hex := wm.Descriptor.Digest.Encoded()
			want := `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"` +
				wm.Descriptor.MediaType + `","digest":"` + string(wm.Descriptor.Digest) + `","size":` + itoa(wm.Descriptor.Size) + `}]}`
			if artifact {
				want = strings.Replace(want, `"mediaType":"application/vnd.oci.image.index.v1+json",`, "", 1)
			}
			if got := string(read(hex + "/index.json")); got != want {
				t.Errorf("%s/index.json:\n got %s\nwant %s", hex, got, want)
			}
			if got := string(read(hex + "/oci-layout")); got != `{"imageLayoutVersion":"1.0.0"}` {
				t.Errorf("oci-layout = %s", got)
			}
			if !bytes.Equal(read(archive.BlobPrefix+hex), wm.Bytes) {
				t.Errorf("manifest %s differs", hex)
			}
			if artifact != bytes.Contains(wm.Bytes, []byte("\n  ")) {
				t.Errorf("manifest %s: indented = %v, want %v", hex, !artifact, artifact)
			}
			var m ocispec.Manifest
			if err := json.Unmarshal(wm.Bytes, &m); err != nil {
				t.Fatal(err)
			}
			if m.Config.Digest != wm.Config.Digest || len(m.Layers) != len(wm.Layers) {
				t.Errorf("manifest %s does not match its description", hex)
			}
		}
	}
	// Chart and file details.
	file, chart := w.Images[4].Manifests[0], w.Images[5].Manifests[0]
	if w.Images[4].Source != "docker.io/hangar-file/notes.txt" || w.Images[4].Tag != "latest" ||
		w.Images[5].Source != "docker.io/hangar-helm/demo" || w.Images[5].Tag != "0.1.7" {
		t.Errorf("chart/file refs = %+v %+v", w.Images[4], w.Images[5])
	}
	if file.Config.MediaType != archivetest.MediaTypeHelmConfig || file.Layers[0].MediaType != archivetest.MediaTypeHangarFile ||
		chart.Config.MediaType != archivetest.MediaTypeHelmConfig || chart.Layers[0].MediaType != archivetest.MediaTypeHelmChart {
		t.Error("chart/file media types")
	}
	// Same config bytes as Hangar v1.9.4 wrote in basic.zip.
	if file.Config.Digest != "sha256:1fcd1fdbeb2365e0f30a44e9b6d5d7cde92ba1ede23c801c96bdd2c1171a4f48" ||
		chart.Config.Digest != "sha256:16a251ce1ae9497ca51f0da5c4d6f1a72422d2dad16ea7526b502596803b8402" {
		t.Errorf("chart/file configs differ from Hangar's: %s %s", file.ConfigBytes, chart.ConfigBytes)
	}
	idx := w.Index
	if idx.List[4].ArchList != nil || idx.List[4].Images[0].Arch != "" || idx.List[5].Images[0].Annotations["org.opencontainers.image.vendor"] != "hangar" {
		t.Errorf("chart/file index entries: %+v %+v", idx.List[4], idx.List[5])
	}
	// The shared base layer is stored once.
	base := archivetest.LayerDigest(archivetest.Layer{Size: 4096, Seed: 1})
	n := 0
	for _, name := range w.Entries {
		if name == archive.BlobPrefix+base.Encoded() {
			n++
		}
	}
	if n != 1 {
		t.Errorf("shared layer stored %d times", n)
	}
}

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name  string
		image archivetest.Image
	}{
		{"attestation first", archivetest.Image{Source: "a/b", Manifests: []archivetest.Manifest{{Attestation: true}}}},
		{"chart and manifests", archivetest.Image{Source: "a/b", Chart: &archivetest.Chart{}, Manifests: []archivetest.Manifest{{}}}},
		{"chart and file", archivetest.Image{Chart: &archivetest.Chart{}, File: &archivetest.File{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := archivetest.Write(filepath.Join(t.TempDir(), "a.zip"), []archivetest.Image{tt.image}, archivetest.Options{}); err == nil {
				t.Error("Write succeeded")
			}
		})
	}
}

func TestFlipEntryByte(t *testing.T) {
	w, err := archivetest.Write(filepath.Join(t.TempDir(), "a.zip"), archivetest.Sample()[:1], archivetest.Options{
		Extra: []archivetest.Entry{{Name: "deflated", Data: []byte("abc"), Deflate: true}, {Name: "empty", Data: []byte{}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"deflated", "empty", "absent"} {
		if err := archivetest.FlipEntryByte(w.Path, name, -1); err == nil {
			t.Errorf("FlipEntryByte(%s) succeeded", name)
		}
	}
	before, _ := os.ReadFile(w.Path)
	d := w.Images[0].Manifests[0].Layers[0].Digest
	if err := archivetest.FlipByte(w.Path, d); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(w.Path)
	diff := 0
	for i := range before {
		if before[i] != after[i] {
			diff++
		}
	}
	if diff != 1 {
		t.Errorf("%d bytes changed", diff)
	}
}

// TestLargeArchiveMemory checks that generated layers are streamed.
func TestLargeArchiveMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 64 MiB")
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, err := archivetest.Write(filepath.Join(t.TempDir(), "a.zip"), []archivetest.Image{{
		Source: "docker.io/a/b", Tag: "1",
		Manifests: []archivetest.Manifest{{Layers: []archivetest.Layer{{Size: 32 << 20, Seed: 1}, {Size: 32 << 20, Seed: 2}}}},
	}}, archivetest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
		t.Errorf("writing 64 MiB of layers allocated %d bytes", alloc)
	}
}

func itoa(n int64) string {
	b, _ := json.Marshal(n)
	return string(b)
}

// TestSharedManifest checks the hostile archive of issue 12.3: a few KiB
// whose index names one 4 MiB manifest 250 times.
func TestSharedManifest(t *testing.T) {
	const n, size = 250, 4 << 20
	w, err := archivetest.Write(filepath.Join(t.TempDir(), "a.zip"), archivetest.SharedManifest(n, size), archivetest.Options{Deflate: true})
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(w.Path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 16<<10 {
		t.Errorf("archive is %d bytes, want at most 16 KiB", fi.Size())
	}
	t.Logf("archive: %d bytes, %d index entries", fi.Size(), len(w.Index.List))
	m := w.Images[0].Manifests[0]
	if len(w.Index.List) != n {
		t.Fatalf("%d index entries, want %d", len(w.Index.List), n)
	}
	for i, img := range w.Index.List {
		if img.Images[0].Digest != m.Descriptor.Digest {
			t.Fatalf("entry %d names %s, want %s", i, img.Images[0].Digest, m.Descriptor.Digest)
		}
	}
	if m.Descriptor.Size != size || int64(len(m.Bytes)) != size || digest.FromBytes(m.Bytes) != m.Descriptor.Digest || w.Blobs[m.Descriptor.Digest] != size {
		t.Fatalf("manifest: descriptor %+v, %d bytes, %d written", m.Descriptor, len(m.Bytes), w.Blobs[m.Descriptor.Digest])
	}
	var parsed ocispec.Manifest
	if err := json.Unmarshal(m.Bytes, &parsed); err != nil || parsed.Config.Digest != m.Config.Digest || len(parsed.Layers) != 1 {
		t.Fatalf("padded manifest does not parse as the manifest: %v", err)
	}
	// The blob and its layout are stored once.
	count := map[string]int{}
	for _, name := range w.Entries {
		count[name]++
	}
	if c := count[archive.BlobPrefix+m.Descriptor.Digest.Encoded()]; c != 1 {
		t.Errorf("manifest blob stored %d times", c)
	}
	if c := count[m.Descriptor.Digest.Encoded()+"/index.json"]; c != 1 {
		t.Errorf("manifest layout stored %d times", c)
	}
	// The reader serves it whole.
	r, err := archive.Open(w.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got, err := r.ReadBlob(m.Descriptor.Digest, size); err != nil || !bytes.Equal(got, m.Bytes) {
		t.Fatalf("ReadBlob: %d bytes, %v", len(got), err)
	}
}

func TestPadTo(t *testing.T) {
	for _, tt := range []struct {
		name string
		m    archivetest.Manifest
	}{
		{"platform", archivetest.Manifest{PadTo: 5000}},
		{"docker", archivetest.Manifest{Docker: true, PadTo: 5000}},
		{"shorter than the manifest", archivetest.Manifest{PadTo: 10}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			w, err := archivetest.Write(filepath.Join(t.TempDir(), "a.zip"), []archivetest.Image{{Source: "a/b", Tag: "1", Manifests: []archivetest.Manifest{tt.m, {Attestation: true, PadTo: 6000}}}}, archivetest.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for i, want := range []int64{max(tt.m.PadTo, 0), 6000} {
				wm := w.Images[0].Manifests[i]
				if want > 1000 && (wm.Descriptor.Size != want || int64(len(wm.Bytes)) != want) {
					t.Errorf("manifest %d: %d bytes, descriptor %d, want %d", i, len(wm.Bytes), wm.Descriptor.Size, want)
				}
				if want <= 1000 && bytes.HasSuffix(wm.Bytes, []byte(" ")) {
					t.Errorf("manifest %d padded", i)
				}
				if digest.FromBytes(wm.Bytes) != wm.Descriptor.Digest || wm.Item.Digest != wm.Descriptor.Digest {
					t.Errorf("manifest %d: digest does not describe the bytes", i)
				}
			}
		})
	}
}

func TestAttestationConfig(t *testing.T) {
	tests := []struct {
		name  string
		shape archivetest.AttestationConfig
		want  string // LAYER stands for the digest of the statement
	}{
		// BuildKit's attestationsConfig (exporter/containerimage/writer.go).
		{"buildx", archivetest.AttestationConfigBuildx,
			`{"architecture":"unknown","os":"unknown","config":{},"rootfs":{"type":"layers","diff_ids":["LAYER"]}}`},
		// The attestation configs of basic.zip (TestAttestationConfigFixture).
		{"fixture", archivetest.AttestationConfigFixture,
			`{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":["LAYER"]},"config":{}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := archivetest.Write(filepath.Join(t.TempDir(), "a.zip"), []archivetest.Image{{Source: "docker.io/a/b", Tag: "1", Manifests: []archivetest.Manifest{
				{}, {Attestation: true, AttestationConfig: tt.shape},
			}}}, archivetest.Options{})
			if err != nil {
				t.Fatal(err)
			}
			subject, att := w.Images[0].Manifests[0], w.Images[0].Manifests[1]
			want := strings.ReplaceAll(tt.want, "LAYER", string(att.Layers[0].Digest))
			if string(att.ConfigBytes) != want {
				t.Errorf("config:\n got %s\nwant %s", att.ConfigBytes, want)
			}
			if att.Config.Digest != digest.FromBytes(att.ConfigBytes) || att.Item.Config != att.Config.Digest {
				t.Error("config descriptor does not describe the config")
			}
			item := att.Item
			if !att.Attestation || item.Arch != "unknown" || item.OS != "unknown" || item.MediaType != ocispec.MediaTypeImageManifest ||
				item.Annotations[archivetest.AnnotationReferenceType] != archivetest.AttestationManifest ||
				item.Annotations[archivetest.AnnotationReferenceDigest] != string(subject.Descriptor.Digest) {
				t.Errorf("attestation item = %+v", item)
			}
			if p := att.Descriptor.Platform; p == nil || p.Architecture != "unknown" || p.OS != "unknown" {
				t.Errorf("attestation descriptor platform = %+v", p)
			}
		})
	}
	_, err := archivetest.Write(filepath.Join(t.TempDir(), "a.zip"), []archivetest.Image{{Source: "docker.io/a/b", Tag: "1", Manifests: []archivetest.Manifest{
		{}, {Attestation: true, AttestationConfig: 99},
	}}}, archivetest.Options{})
	if err == nil {
		t.Error("Write with an unknown attestation config shape succeeded")
	}
}

// TestAttestationConfigFixture checks that AttestationConfigFixture writes,
// for the statements of the attestations of the Hangar v1.9.4 fixture
// basic.zip, their configs byte for byte.
func TestAttestationConfigFixture(t *testing.T) {
	path := filepath.Join(fixtures.Require(t), "basic.zip")
	r, err := archive.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	idx, err := r.Index()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, img := range idx.List {
		for _, item := range img.Images {
			if item.Annotations[archivetest.AnnotationReferenceType] != archivetest.AttestationManifest {
				continue
			}
			n++
			var layers []archivetest.Layer
			for _, d := range item.Layers {
				data, err := r.ReadBlob(d, 1<<20)
				if err != nil {
					t.Fatal(err)
				}
				layers = append(layers, archivetest.Layer{Data: data})
			}
			want, err := r.ReadBlob(item.Config, 1<<20)
			if err != nil {
				t.Fatal(err)
			}
			w, err := archivetest.Write(filepath.Join(t.TempDir(), "a.zip"), []archivetest.Image{{Source: "docker.io/a/b", Tag: "1", Manifests: []archivetest.Manifest{
				{}, {Attestation: true, AttestationConfig: archivetest.AttestationConfigFixture, Layers: layers},
			}}}, archivetest.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := w.Images[0].Manifests[1]; got.Config.Digest != item.Config {
				t.Errorf("%s: attestation %s: config\n got %s\nwant %s", img.Ref(), item.Digest, got.ConfigBytes, want)
			}
		}
	}
	if n == 0 {
		t.Fatal("no attestation in basic.zip")
	}
}
