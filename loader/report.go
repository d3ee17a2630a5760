package loader

import (
	"encoding/json"
	"os"
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

// NewReport builds the report of a result.
func NewReport(res *Result) Report {
	rep := Report{Failed: res.FailedKeys(), Uploaded: res.Uploaded, Mounted: res.Mounted, Present: res.Present, Seconds: res.Duration.Seconds()}
	for _, img := range res.Plan.Images {
		ir := res.Images[img]
		ri := ReportImage{
			Source: img.Source, Destination: img.Reference, Status: ir.Status.String(),
			Uploaded: ir.Uploaded, Mounted: ir.Mounted, Present: ir.Present, Seconds: ir.Duration.Seconds(),
			Manifests: []ReportManifest{}, Requests: ir.Requests.ByMethod(),
		}
		for _, l := range img.Lines {
			ri.Lines = append(ri.Lines, l.Number)
		}
		if ir.Err != nil {
			ri.Error = ir.Err.Error()
		}
		if ir.Index != "" {
			ri.Index = ir.Index.String()
		}
		for _, m := range img.Manifests {
			ri.Manifests = append(ri.Manifests, ReportManifest{Digest: m.Descriptor.Digest.String(), Platform: m.Platform(), Tag: m.Tag})
		}
		rep.Images = append(rep.Images, ri)
	}
	return rep
}

// WriteReport writes the JSON report of a result to path.
func WriteReport(path string, res *Result) error {
	data, err := json.MarshalIndent(NewReport(res), "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(data, '\n'), 0o644)
}
