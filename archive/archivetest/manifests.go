package archivetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"maps"
	"strings"

	"github.com/cnrancher/docker-hangar/archive"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

var ocispecVersioned = specs.Versioned{SchemaVersion: 2}

// dockerDescriptor is a descriptor in a Docker schema2 manifest, with the
// registry's field order.
type dockerDescriptor struct {
	MediaType string        `json:"mediaType"`
	Size      int64         `json:"size"`
	Digest    digest.Digest `json:"digest"`
}

// dockerManifest is a Docker v2 schema2 manifest.
type dockerManifest struct {
	SchemaVersion int                `json:"schemaVersion"`
	MediaType     string             `json:"mediaType"`
	Config        dockerDescriptor   `json:"config"`
	Layers        []dockerDescriptor `json:"layers"`
}

func toDocker(d ocispec.Descriptor) dockerDescriptor {
	return dockerDescriptor{MediaType: d.MediaType, Size: d.Size, Digest: d.Digest}
}

// platform builds a platform manifest.
func (w *writer) platform(m Manifest) (WrittenManifest, []blob, error) {
	plat := m.Platform
	if plat.OS == "" && plat.Architecture == "" {
		plat.OS, plat.Architecture = "linux", "amd64"
	}
	layerType, configType, manifestType := ocispec.MediaTypeImageLayerGzip, ocispec.MediaTypeImageConfig, ocispec.MediaTypeImageManifest
	if m.Docker {
		layerType, configType, manifestType = MediaTypeDockerLayer, MediaTypeDockerConfig, MediaTypeDockerManifest
	}
	var (
		wm    WrittenManifest
		blobs []blob
		diffs []digest.Digest
	)
	for _, l := range m.Layers {
		desc, b := w.layer(l, layerType)
		wm.Layers = append(wm.Layers, desc)
		blobs = append(blobs, b)
		diffs = append(diffs, desc.Digest)
	}
	config := m.Config
	if config == nil {
		var err error
		config, err = json.Marshal(ocispec.Image{
			Platform: plat,
			Config:   ocispec.ImageConfig{Cmd: []string{"/bin/app"}},
			RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: nonNil(diffs)},
		})
		if err != nil {
			return wm, nil, err
		}
	}
	if err := w.finish(&wm, manifestType, configType, config, m.Docker, false, nil); err != nil {
		return wm, nil, err
	}
	w.padManifest(&wm, m.PadTo)
	wm.Descriptor.Platform = &plat
	wm.Item = archive.Manifest{
		Arch:        plat.Architecture,
		OS:          plat.OS,
		Variant:     plat.Variant,
		OSVersion:   plat.OSVersion,
		OSFeatures:  plat.OSFeatures,
		MediaType:   manifestType,
		Layers:      layerDigests(wm.Layers),
		Config:      wm.Config.Digest,
		Digest:      wm.Descriptor.Digest,
		Annotations: maps.Clone(m.Annotations),
	}
	wm.Descriptor.Annotations = wm.Item.Annotations
	return wm, append(blobs, w.manifestBlobs(&wm)...), nil
}

// attestation builds a BuildKit attestation manifest for subject.
func (w *writer) attestation(img Image, m Manifest, subject digest.Digest) (WrittenManifest, []blob, error) {
	var (
		wm    WrittenManifest
		blobs []blob
		diffs []digest.Digest
	)
	layers := m.Layers
	if len(layers) == 0 {
		stmt, err := json.Marshal(map[string]any{
			"_type":         "https://in-toto.io/Statement/v0.1",
			"predicateType": "https://slsa.dev/provenance/v0.2",
			"subject": []any{map[string]any{
				"name":   img.Source + ":" + img.Tag,
				"digest": map[string]string{"sha256": subject.Encoded()},
			}},
			"predicate": map[string]any{},
		})
		if err != nil {
			return wm, nil, err
		}
		layers = []Layer{{Data: stmt}}
	}
	for _, l := range layers {
		desc, b := w.layer(l, MediaTypeInToto)
		if desc.MediaType == MediaTypeInToto {
			desc.Annotations = map[string]string{AnnotationPredicateType: "https://slsa.dev/provenance/v0.2"}
		}
		wm.Layers = append(wm.Layers, desc)
		blobs = append(blobs, b)
		diffs = append(diffs, desc.Digest)
	}
	config := m.Config
	if config == nil {
		var err error
		if config, err = attestationConfig(m.AttestationConfig, diffs); err != nil {
			return wm, nil, err
		}
	}
	if err := w.finish(&wm, ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageConfig, config, false, false, nil); err != nil {
		return wm, nil, err
	}
	w.padManifest(&wm, m.PadTo)
	annotations := maps.Clone(m.Annotations)
	if annotations == nil {
		annotations = make(map[string]string)
	}
	annotations[AnnotationReferenceDigest] = subject.String()
	annotations[AnnotationReferenceType] = AttestationManifest
	wm.Attestation = true
	wm.Descriptor.Platform = &ocispec.Platform{Architecture: "unknown", OS: "unknown"}
	wm.Descriptor.Annotations = annotations
	wm.Item = archive.Manifest{
		Arch:        "unknown",
		OS:          "unknown",
		MediaType:   ocispec.MediaTypeImageManifest,
		Layers:      layerDigests(wm.Layers),
		Config:      wm.Config.Digest,
		Digest:      wm.Descriptor.Digest,
		Annotations: annotations,
	}
	return wm, append(blobs, w.manifestBlobs(&wm)...), nil
}

// fixtureConfig is an image config with the fields and the order in which
// go-containerregistry writes them (v1.ConfigFile), as far as the
// attestations of the fixtures use them.
type fixtureConfig struct {
	Architecture string           `json:"architecture"`
	Created      string           `json:"created"`
	History      []fixtureHistory `json:"history"`
	OS           string           `json:"os"`
	RootFS       ocispec.RootFS   `json:"rootfs"`
	Config       struct{}         `json:"config"`
}

type fixtureHistory struct {
	Created string `json:"created"`
}

// zeroTime is time.Time{} as go-containerregistry writes it.
const zeroTime = "0001-01-01T00:00:00Z"

// attestationConfig returns the config of an attestation whose layers have
// the digests diffs.
func attestationConfig(shape AttestationConfig, diffs []digest.Digest) ([]byte, error) {
	switch shape {
	case AttestationConfigBuildx:
		return json.Marshal(ocispec.Image{
			Platform: ocispec.Platform{Architecture: "unknown", OS: "unknown"},
			RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: diffs},
		})
	case AttestationConfigFixture:
		cfg := fixtureConfig{Created: zeroTime, RootFS: ocispec.RootFS{Type: "layers", DiffIDs: nonNil(diffs)}, History: []fixtureHistory{}}
		for range diffs {
			cfg.History = append(cfg.History, fixtureHistory{Created: zeroTime})
		}
		return json.Marshal(cfg)
	}
	return nil, fmt.Errorf("unknown attestation config shape %d", shape)
}

// chartMetadata is the config of a Hangar-stored chart.
type chartMetadata struct {
	Name        string `json:"name"`
	Version     string `json:"version"`
	Description string `json:"description,omitempty"`
	APIVersion  string `json:"apiVersion"`
}

// chart builds the manifest of a chart entry, and fills in the source and
// tag of img when empty.
func (w *writer) chart(img *Image, c Chart) (WrittenManifest, []blob, error) {
	if c.Name == "" {
		c.Name = "demo"
	}
	if c.Version == "" {
		c.Version = "0.1.0"
	}
	if c.Created == "" {
		c.Created = DefaultCreated
	}
	if c.Data == nil {
		var err error
		if c.Data, err = chartArchive(c); err != nil {
			return WrittenManifest{}, nil, err
		}
	}
	if img.Source == "" {
		img.Source = "docker.io/hangar-helm/" + c.Name
	}
	if img.Tag == "" {
		img.Tag = strings.ReplaceAll(c.Version, "+", "-")
	}
	config, err := json.MarshalIndent(chartMetadata{Name: c.Name, Version: c.Version, Description: c.Description, APIVersion: "v2"}, "", "  ")
	if err != nil {
		return WrittenManifest{}, nil, err
	}
	annotations := map[string]string{
		ocispec.AnnotationCreated:     c.Created,
		ocispec.AnnotationDescription: c.Description,
		ocispec.AnnotationTitle:       c.Name,
		ocispec.AnnotationURL:         "",
		ocispec.AnnotationVendor:      "hangar",
		ocispec.AnnotationVersion:     c.Version,
	}
	return w.artifact(Layer{Data: c.Data}, MediaTypeHelmChart, config, annotations)
}

// chartArchive returns a small valid chart .tgz.
func chartArchive(c Chart) ([]byte, error) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	chartYAML := fmt.Sprintf("apiVersion: v2\nname: %s\nversion: %s\n", c.Name, c.Version)
	if c.Description != "" {
		chartYAML += fmt.Sprintf("description: %q\n", c.Description)
	}
	if err := tw.WriteHeader(&tar.Header{Name: c.Name + "/Chart.yaml", Mode: 0o644, Size: int64(len(chartYAML)), ModTime: DefaultModified, Typeflag: tar.TypeReg}); err != nil {
		return nil, err
	}
	if _, err := tw.Write([]byte(chartYAML)); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// file builds the manifest of a stored file, and fills in the source and
// tag of img when empty.
func (w *writer) file(img *Image, f File) (WrittenManifest, []blob, error) {
	if f.Name == "" {
		f.Name = "file.txt"
	}
	if f.Description == "" {
		f.Description = "./" + f.Name
	}
	if f.Created == "" {
		f.Created = DefaultCreated
	}
	if f.Data == nil {
		f.Data = []byte{}
	}
	if img.Source == "" {
		img.Source = "docker.io/hangar-file/" + f.Name
	}
	if img.Tag == "" {
		img.Tag = "latest"
	}
	config, err := json.MarshalIndent(struct{ Name string }{f.Name}, "", "  ")
	if err != nil {
		return WrittenManifest{}, nil, err
	}
	annotations := map[string]string{
		ocispec.AnnotationCreated:     f.Created,
		ocispec.AnnotationDescription: f.Description,
		ocispec.AnnotationTitle:       f.Name,
		ocispec.AnnotationVendor:      "Hangar",
	}
	return w.artifact(Layer{Data: f.Data}, MediaTypeHangarFile, config, annotations)
}

// artifact builds the indented one-layer manifest of a chart or a file.
func (w *writer) artifact(l Layer, layerType string, config []byte, annotations map[string]string) (WrittenManifest, []blob, error) {
	var wm WrittenManifest
	desc, b := w.layer(l, layerType)
	wm.Layers = []ocispec.Descriptor{desc}
	if err := w.finish(&wm, ocispec.MediaTypeImageManifest, MediaTypeHelmConfig, config, false, true, annotations); err != nil {
		return wm, nil, err
	}
	wm.Descriptor.Annotations = annotations
	wm.Item = archive.Manifest{
		MediaType:   ocispec.MediaTypeImageManifest,
		Layers:      layerDigests(wm.Layers),
		Config:      wm.Config.Digest,
		Digest:      wm.Descriptor.Digest,
		Annotations: maps.Clone(annotations),
	}
	return wm, append([]blob{b}, w.manifestBlobs(&wm)...), nil
}

// finish sets the config and serialises the manifest of wm.
func (w *writer) finish(wm *WrittenManifest, manifestType, configType string, config []byte, docker, indent bool, annotations map[string]string) error {
	wm.ConfigBytes = config
	wm.Config = ocispec.Descriptor{MediaType: configType, Digest: digest.FromBytes(config), Size: int64(len(config))}
	var v any
	if docker {
		dm := dockerManifest{SchemaVersion: 2, MediaType: manifestType, Config: toDocker(wm.Config), Layers: []dockerDescriptor{}}
		for _, l := range wm.Layers {
			dm.Layers = append(dm.Layers, toDocker(l))
		}
		v = dm
	} else {
		v = ocispec.Manifest{
			Versioned:   ocispecVersioned,
			MediaType:   manifestType,
			Config:      wm.Config,
			Layers:      nonNil(wm.Layers),
			Annotations: annotations,
		}
	}
	var err error
	if indent {
		wm.Bytes, err = json.MarshalIndent(v, "", "  ")
	} else {
		wm.Bytes, err = json.Marshal(v)
	}
	if err != nil {
		return err
	}
	wm.Descriptor = ocispec.Descriptor{MediaType: manifestType, Digest: digest.FromBytes(wm.Bytes), Size: int64(len(wm.Bytes))}
	return nil
}

// padManifest pads the manifest of wm with spaces to size bytes, if it is
// shorter, and describes the padded bytes. The same manifest padded to the
// same size is padded and hashed once.
func (w *writer) padManifest(wm *WrittenManifest, size int64) {
	n := size - int64(len(wm.Bytes))
	if n <= 0 {
		return
	}
	key := padKey{wm.Descriptor.Digest, size}
	p, ok := w.pads[key]
	if !ok {
		p.data = append(wm.Bytes, bytes.Repeat([]byte{' '}, int(n))...)
		p.d = digest.FromBytes(p.data)
		w.pads[key] = p
	}
	wm.Bytes = p.data
	wm.Descriptor.Digest, wm.Descriptor.Size = p.d, size
}

// padKey names a manifest padded to a size.
type padKey struct {
	d    digest.Digest
	size int64
}

// manifestBlobs returns the config and manifest blobs of wm.
func (w *writer) manifestBlobs(wm *WrittenManifest) []blob {
	return []blob{
		{d: wm.Config.Digest, data: wm.ConfigBytes},
		{d: wm.Descriptor.Digest, data: wm.Bytes},
	}
}

func layerDigests(layers []ocispec.Descriptor) []digest.Digest {
	ds := make([]digest.Digest, 0, len(layers))
	for _, l := range layers {
		ds = append(ds, l.Digest)
	}
	return ds
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
