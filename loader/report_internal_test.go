package loader

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestWriteReportAsMarshalIndent checks that the report, written one image
// at a time, is byte for byte json.MarshalIndent of the whole Report.
func TestWriteReportAsMarshalIndent(t *testing.T) {
	image := func(n int, status Status, err error) (*Image, *ImageResult) {
		img := &Image{Source: "docker.io/library/a:1", tables: &planTables{host: "reg"}, Repository: "library/a", Tag: "1", Lines: []*Line{{Number: n}, {Number: n + 1}},
			planning: &planning{manifests: []*Manifest{{sum: sha256.Sum256([]byte("m")), entry: &indexEntry{platform: &ocispec.Platform{OS: "linux", Architecture: "amd64"}}, tag: "1-amd64"}}}}
		ir := &ImageResult{Status: status, Err: err, Stats: Stats{Uploaded: 10, Mounted: 20, Present: 30}, Duration: 1500 * time.Millisecond}
		ir.setIndex(digest.FromString("i"))
		return img, ir
	}
	tests := []struct {
		name   string
		images int
		failed []Failure
	}{
		{"no images", 0, nil},
		{"one image", 1, nil},
		{"several, some failed", 3, []Failure{{Key: "docker.io/library/a:1", Status: StatusFailed}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := &Result{Plan: &Plan{}, Images: map[*Image]*ImageResult{}, Failed: tt.failed, Stats: Stats{Uploaded: 1, Mounted: 2, Present: 3}, Duration: time.Second}
			want := Report{Failed: res.FailedKeys(), Uploaded: 1, Mounted: 2, Present: 3, Seconds: 1}
			for i := range tt.images {
				status, err := StatusLoaded, error(nil)
				if i == 1 {
					status, err = StatusFailed, errors.New("failed \"quoted\" <html>")
				}
				img, ir := image(i*2+1, status, err)
				res.Plan.Images = append(res.Plan.Images, img)
				res.Images[img] = ir
				want.Images = append(want.Images, reportImage(res, img))
			}
			data, err := json.MarshalIndent(want, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			w := bufio.NewWriter(&buf)
			if err := writeReport(w, res); err != nil {
				t.Fatal(err)
			}
			w.Flush()
			if got := buf.String(); got != string(data)+"\n" {
				t.Errorf("report:\n%s\nwant:\n%s", got, data)
			}
		})
	}
}
