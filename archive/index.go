package archive

import (
	"github.com/opencontainers/go-digest"
)

// MaxIndexSize bounds the size of the top-level index.json that is read.
const MaxIndexSize = 256 << 20

// Index is the top-level index.json of a Hangar archive.
//
// References: hangar-load.md section 1.4 (pkg/hangar/archive/index.go).
type Index struct {
	// List holds the images in archive order; the same source:tag may
	// appear more than once.
	List []Image `json:"list,omitempty"`
	// Version is the index version, e.g. "v1.2.0".
	Version string `json:"version"`
	// Time is when the index was created (RFC 3339).
	Time string `json:"time,omitempty"`
}

// Image is one entry of Index.List: a source image and its stored manifests.
type Image struct {
	// Source is registry/project/name as saved, e.g. docker.io/library/nginx.
	Source string `json:"source"`
	// Tag is the source tag.
	Tag      string   `json:"tag"`
	ArchList []string `json:"archList,omitempty"`
	OSList   []string `json:"osList,omitempty"`
	// Images holds one item per stored manifest.
	Images []Manifest `json:"images"`
}

// Ref returns Source + ":" + Tag, the key Hangar uses for an entry.
func (i Image) Ref() string { return i.Source + ":" + i.Tag }

// Manifest is one stored manifest of an Image: a platform manifest, an
// attestation, a chart or a file.
type Manifest struct {
	Arch        string            `json:"arch"`
	OS          string            `json:"os"`
	Variant     string            `json:"variant,omitempty"`
	OSVersion   string            `json:"osVersion,omitempty"`
	OSFeatures  []string          `json:"osFeatures,omitempty"`
	MediaType   string            `json:"mediaType"`
	Layers      []digest.Digest   `json:"layers"`
	Config      digest.Digest     `json:"config"`
	Digest      digest.Digest     `json:"digest"`
	Annotations map[string]string `json:"annotations,omitempty"`
}
