package loader

import (
	"bufio"
	"encoding/json"
)

// Report is the JSON report of a load (--report).
type Report struct {
	Images   []ReportImage `json:"images"`
	Failed   []string      `json:"failed"`
	Uploaded int64         `json:"bytesUploaded"`
	Mounted  int64         `json:"bytesMounted"`
	Present  int64         `json:"bytesPresent"`
	Seconds  float64       `json:"seconds"`
}

// ReportImage is one destination image of a Report.
type ReportImage struct {
	Lines       []int            `json:"lines"`
	Source      string           `json:"source"`
	Destination string           `json:"destination"`
	Status      string           `json:"status"`
	Error       string           `json:"error,omitempty"`
	Index       string           `json:"indexDigest,omitempty"`
	Manifests   []ReportManifest `json:"manifests"`
	Uploaded    int64            `json:"bytesUploaded"`
	Mounted     int64            `json:"bytesMounted"`
	Present     int64            `json:"bytesPresent"`
	Seconds     float64          `json:"seconds"`
	// Requests counts the registry requests made for the image, by HTTP
	// method.
	Requests map[string]int `json:"requests,omitempty"`
}

// ReportManifest is one manifest of a ReportImage.
type ReportManifest struct {
	Digest   string `json:"digest"`
	Platform string `json:"platform"`
	Tag      string `json:"tag,omitempty"`
}

// reportImage returns the report of one image of a result.
func reportImage(res *Result, img *Image) ReportImage {
	ir := res.Images[img]
	ri := ReportImage{
		Source: img.Source, Destination: img.Reference(), Status: ir.Status.String(),
		Uploaded: ir.Uploaded, Mounted: ir.Mounted, Present: ir.Present, Seconds: ir.Duration.Seconds(),
		Manifests: []ReportManifest{}, Requests: ir.Requests.ByMethod(),
	}
	for _, l := range img.Lines {
		ri.Lines = append(ri.Lines, l.Number)
	}
	if ir.Err != nil {
		ri.Error = ir.Err.Error()
	}
	if d := ir.Index(); d != "" {
		ri.Index = d.String()
	}
	for _, m := range img.Manifests() {
		ri.Manifests = append(ri.Manifests, ReportManifest{Digest: m.Digest().String(), Platform: m.Platform(), Tag: m.Tag()})
	}
	return ri
}

// WriteReport writes the JSON report of a result to path: a Report,
// indented by two spaces, as json.MarshalIndent writes it, but written one
// image at a time (a report of thousands of images is megabytes).
func WriteReport(path string, res *Result) error {
	return writeFile(path, func(w *bufio.Writer) error { return writeReport(w, res) })
}

// writeReport writes the report of res to w (see WriteReport).
func writeReport(w *bufio.Writer, res *Result) error {
	w.WriteString("{\n  \"images\": ")
	if len(res.Plan.Images) == 0 {
		w.WriteString("null")
	} else {
		w.WriteString("[\n")
		for i, img := range res.Plan.Images {
			data, err := json.MarshalIndent(reportImage(res, img), "    ", "  ")
			if err != nil {
				return err
			}
			w.WriteString("    ")
			w.Write(data)
			if i < len(res.Plan.Images)-1 {
				w.WriteByte(',')
			}
			w.WriteByte('\n')
		}
		w.WriteString("  ]")
	}
	// The other members, as MarshalIndent writes them after the first.
	rest, err := json.MarshalIndent(reportTotals{Failed: res.FailedKeys(), Uploaded: res.Uploaded, Mounted: res.Mounted, Present: res.Present, Seconds: res.Duration.Seconds()}, "", "  ")
	if err != nil {
		return err
	}
	w.WriteString(",\n")
	w.Write(rest[len("{\n"):])
	_, err = w.WriteString("\n")
	return err
}

// reportTotals are the members of a Report after Images.
type reportTotals struct {
	Failed   []string `json:"failed"`
	Uploaded int64    `json:"bytesUploaded"`
	Mounted  int64    `json:"bytesMounted"`
	Present  int64    `json:"bytesPresent"`
	Seconds  float64  `json:"seconds"`
}
