package archive_test

import (
	"encoding/json"
	"os"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/cnrancher/docker-hangar/archive"
	"github.com/cnrancher/docker-hangar/archive/archivetest"
	"github.com/opencontainers/go-digest"
)

func TestCheckIndexVersion(t *testing.T) {
	tests := []struct {
		v  string
		ok bool
	}{
		{"v1.2.0", true},
		{"1.2.0", true},
		{"v1.2.1", true},
		{"v1.3.0", true},
		{"v1.99.0", true},
		{"v1.99999999999999999999999.0", true},
		{"v1.2.1-rc1", true},
		{"v1.3.0-alpha.1", true},
		{"v1.2.0+meta", true},
		{"v1.2.0+meta.1-x", true},
		{"v1.2", true}, // x/mod/semver shorthand, as Hangar
		{"1.2", true},
		{"", false},
		{"v", false},
		{"banana", false},
		{"v1.1.0", false},
		{"1.1.9", false},
		{"v1.2.0-rc1", false}, // older than v1.2.0
		{"v1.2.0-0", false},
		{"v1", false}, // v1.0.0
		{"v0.9.0", false},
		{"v2.0.0", false},
		{"v2.0.0-rc1", false}, // v2 pre-release: still v2
		{"v2.1.0", false},
		{"v99.99.99", false}, // Hangar accepts it; decisions D7 does not
		{"v01.2.0", false},
		{"v1.02.0", false},
		{"v1.2.00", false},
		{"v1.2.0-01", false},
		{"v1.2.0-", false},
		{"v1.2.0+", false},
		{"v1.2.0-a..b", false},
		{"v1.2-rc1", false},
		{"vv1.2.0", false},
		{"V1.2.0", false},
		{" v1.2.0", false},
		{"v1.2.0 ", false},
		{"v1.2.0.0", false},
		{"v1.2.0-rc_1", false},
	}
	for _, tt := range tests {
		t.Run(tt.v, func(t *testing.T) {
			err := archive.CheckIndexVersion(tt.v)
			if tt.ok {
				wantErr(t, err, nil)
				return
			}
			wantErr(t, err, archive.ErrUnsupportedVersion)
			msg := err.Error()
			if !strings.HasSuffix(msg, "supported versions are v1.2.0 up to v2.0.0 (exclusive)") {
				t.Errorf("message %q does not give the range", msg)
			}
			if tt.v != "" && !strings.Contains(msg, strings.TrimSpace(tt.v)) {
				t.Errorf("message %q does not name the version", msg)
			}
		})
	}
}

func TestParseIndex(t *testing.T) {
	d := string(digest.FromString("a"))
	item := func(fields string) string {
		return `{"version":"v1.2.0","list":[{"source":"docker.io/library/nginx","tag":"1.25","images":[{` + fields + `}]}]}`
	}
	tests := []struct {
		name string
		data string
		want error
		msg  string
	}{
		{"empty object", `{"version":"v1.2.0"}`, nil, ""},
		{"null list", `{"version":"v1.2.0","list":null}`, nil, ""},
		{"entry without images", `{"version":"v1.2.0","list":[{"source":"a/b","tag":"1"}]}`, nil, ""},
		{"null item", `{"version":"v1.2.0","list":[{"source":"a/b","tag":"1","images":[null]}]}`, nil, ""},
		{"full item", item(`"arch":"amd64","os":"linux","layers":["` + d + `"],"config":"` + d + `","digest":"` + d + `"`), nil, ""},
		{"empty digest and config", item(`"layers":[]`), nil, ""},
		{"sha512 digest", item(`"digest":"` + string(digest.SHA512.FromString("a")) + `"`), nil, ""},
		{"not json", `nope`, archive.ErrInvalidIndex, "invalid archive index: invalid character"},
		{"trailing data", `{"version":"v1.2.0"} {}`, archive.ErrInvalidIndex, ""},
		{"wrong type", `{"version":1}`, archive.ErrInvalidIndex, ""},
		{"time not a string", `{"version":"v1.2.0","time":5}`, archive.ErrInvalidIndex, ""},
		{"missing version", `{}`, archive.ErrUnsupportedVersion, "archive index has no version"},
		{"old version", `{"version":"v1.1.0"}`, archive.ErrUnsupportedVersion, "archive index version v1.1.0 is not supported: supported versions are v1.2.0 up to v2.0.0 (exclusive)"},
		{"v2", `{"version":"v2.0.0"}`, archive.ErrUnsupportedVersion, "v2.0.0"},
		{"empty source", `{"version":"v1.2.0","list":[{"source":"","tag":"1"}]}`, archive.ErrInvalidIndex, "list item 1: empty source"},
		{"digest without colon", item(`"digest":"abc"`), archive.ErrInvalidIndex,
			"invalid archive index: list item 1: image docker.io/library/nginx:1.25: images[0]: invalid digest abc: invalid checksum digest format"},
		{"digest bad hex", item(`"digest":"sha256:xyz"`), archive.ErrInvalidIndex, "invalid digest sha256:xyz"},
		{"digest unknown algorithm", item(`"digest":"foo:abc"`), archive.ErrInvalidIndex, "unsupported digest algorithm"},
		{"digest only colon", item(`"digest":":"`), archive.ErrInvalidIndex, ""},
		{"config bad", item(`"config":"sha256:` + strings.Repeat("0", 63) + `"`), archive.ErrInvalidIndex, "invalid config digest"},
		{"empty layer", item(`"layers":[""]`), archive.ErrInvalidIndex, "empty layers[0] digest"},
		{"bad layer", item(`"layers":["` + d + `","sha256"]`), archive.ErrInvalidIndex, "invalid layers[1] digest sha256"},
		{"control characters", item(`"digest":"a\u0000b"`), archive.ErrInvalidIndex, `"a\x00b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idx, err := archive.ParseIndex([]byte(tt.data))
			wantErr(t, err, tt.want)
			if tt.want == nil {
				if idx == nil {
					t.Fatal("nil index")
				}
				return
			}
			if !strings.Contains(err.Error(), tt.msg) {
				t.Errorf("message %q does not contain %q", err, tt.msg)
			}
		})
	}
}

func TestParseIndexRoundTrip(t *testing.T) {
	data := `{"list":[{"source":"docker.io/library/nginx","tag":"1.25","archList":["amd64","unknown"],"osList":["linux","unknown"],` +
		`"images":[{"arch":"amd64","os":"linux","variant":"v8","osVersion":"1","osFeatures":["f"],"mediaType":"m","layers":["` +
		string(digest.FromString("l")) + `"],"config":"` + string(digest.FromString("c")) + `","digest":"` + string(digest.FromString("d")) +
		`","annotations":{"k":"v"}}]}],"version":"v1.2.0","time":"2025-02-13T18:56:27.123456789+08:00"}`
	idx, err := archive.ParseIndex([]byte(data))
	if err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(idx)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != data {
		t.Errorf("round trip:\n got %s\nwant %s", out, data)
	}
}

// TestIndexSharesStrings checks that equal strings of a parsed index share
// their bytes: a long archive keeps one copy of a shared layer digest.
func TestIndexSharesStrings(t *testing.T) {
	layer, subject := digest.FromString("shared layer"), digest.FromString("subject")
	data := []byte(`{"version":"v1.2.0","list":[` +
		`{"source":"docker.io/a/b","tag":"v1.0","images":[{"arch":"amd64","os":"linux","layers":["` + string(layer) + `"],"digest":"` + string(subject) + `"}]},` +
		`{"source":"docker.io/a/c","tag":"v1.0","images":[{"arch":"amd64","os":"linux","layers":["` + string(layer) + `"],"annotations":{"vnd.docker.reference.digest":"` + string(subject) + `"}}]}]}`)
	idx, err := archive.ParseIndex(data)
	if err != nil {
		t.Fatal(err)
	}
	a, b := idx.List[0].Images[0], idx.List[1].Images[0]
	for _, pair := range [][2]string{
		{string(a.Layers[0]), string(b.Layers[0])},
		{string(a.Digest), b.Annotations["vnd.docker.reference.digest"]},
		{a.Arch, b.Arch},
		{a.OS, b.OS},
		{idx.List[0].Tag, idx.List[1].Tag},
	} {
		if pair[0] != pair[1] || unsafe.StringData(pair[0]) != unsafe.StringData(pair[1]) {
			t.Errorf("%q and %q do not share their bytes", pair[0], pair[1])
		}
	}
}

// TestIndexDecodedSize checks that an index whose decoded form would take
// far more memory than its bytes (JSON objects and elements of a few bytes
// each, which compress to almost nothing) is refused before it is decoded.
func TestIndexDecodedSize(t *testing.T) {
	repeat := func(head, item, tail string, n int) []byte {
		return []byte(head + strings.Repeat(item, n) + tail)
	}
	tests := []struct {
		name string
		data []byte
	}{
		// 1.3 million empty images[] items: 4 MB of JSON, 1.1 GB
		// allocated by encoding/json.
		{"empty manifests", repeat(`{"version":"v1.2.0","list":[{"source":"a","images":[`, `{},`, `{}]}]}`, 1300000)},
		{"empty list items", repeat(`{"version":"v1.2.0","list":[`, `{"source":"a","images":[]},`, `{"source":"a"}]}`, 900000)},
		{"null platform strings", repeat(`{"version":"v1.2.0","list":[{"source":"a","archList":[`, `null,`, `""]}]}`, 6000000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			idx, err := archive.ParseIndex(tt.data)
			runtime.ReadMemStats(&after)
			if err == nil {
				t.Fatalf("%d bytes of JSON accepted, %d list items", len(tt.data), len(idx.List))
			}
			wantErr(t, err, archive.ErrIndexTooLarge)
			t.Logf("%d bytes: %v", len(tt.data), err)
			if n := after.TotalAlloc - before.TotalAlloc; n > 16<<20 {
				t.Errorf("ParseIndex allocated %d bytes", n)
			}
		})
	}

	// Through Open: a deflated index.json of a few KiB.
	data := tests[0].data
	w := write(t, nil, archivetest.Options{IndexJSON: data, Deflate: true})
	if fi, err := os.Stat(w.Path); err != nil || fi.Size() > 64<<10 {
		t.Fatalf("archive: %v, %v", fi, err)
	}
	_, err := archive.Open(w.Path)
	wantErr(t, err, archive.ErrIndexTooLarge)
}

// TestIndexListTwice covers an index whose list member appears twice. Its
// whole decoding keeps the last, as json.Unmarshal does; Open, which never
// holds the list (a load gets the entries one by one), refuses it.
func TestIndexListTwice(t *testing.T) {
	data := []byte(`{"version":"v1.2.0","list":[{"source":""}],"list":[{"source":"a/b","tag":"1"}]}`)
	idx, err := archive.ParseIndex(data)
	if err != nil || len(idx.List) != 1 || idx.List[0].Source != "a/b" {
		t.Fatalf("ParseIndex: %+v, %v; want the second list", idx, err)
	}
	w := write(t, nil, archivetest.Options{IndexJSON: data})
	_, err = archive.Open(w.Path)
	wantErr(t, err, archive.ErrInvalidIndex)
	if !strings.Contains(err.Error(), "the list member appears twice") {
		t.Errorf("error %q does not say the list appears twice", err)
	}
}
