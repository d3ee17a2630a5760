package manifest

import (
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestPlatformTag(t *testing.T) {
	desc := ocispec.Descriptor{Digest: "sha256:04007db838932f864cdec148e8b930e8dff0f2df16d993af6782f302613a3c8a"}
	tests := []struct {
		name     string
		tag      string
		platform ocispec.Platform
		desc     ocispec.Descriptor
		want     string
	}{
		{"linux amd64", "v1.0.0", ocispec.Platform{OS: "linux", Architecture: "amd64"}, desc, "v1.0.0-linux-amd64"},
		{"arm64 v8", "latest", ocispec.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}, desc, "latest-linux-arm64v8"},
		{"arm v7", "T", ocispec.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}, desc, "T-linux-armv7"},
		{"windows os version", "T", ocispec.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763.5576"}, desc, "T-windows-10.0.17763.5576-amd64"},
		{"os features ignored", "T", ocispec.Platform{OS: "windows", Architecture: "amd64", OSFeatures: []string{"win32k"}}, desc, "T-windows-amd64"},
		{"empty platform", "v1.0.0", ocispec.Platform{}, desc, "v1.0.0-04007db838932f86"},
		{"empty os", "v1.0.0", ocispec.Platform{Architecture: "amd64"}, desc, "v1.0.0-04007db838932f86"},
		{"unknown arch", "v1.0.0", ocispec.Platform{OS: "linux", Architecture: "unknown"}, desc, "v1.0.0-04007db838932f86"},
		{"unknown os", "v1.0.0", ocispec.Platform{OS: "unknown", Architecture: "amd64"}, desc, "v1.0.0-04007db838932f86"},
		{"short digest", "t", ocispec.Platform{}, ocispec.Descriptor{Digest: "sha256:abc"}, "t-abc"},
		{"digest without algorithm", "t", ocispec.Platform{}, ocispec.Descriptor{Digest: digest.Digest(strings.Repeat("f", 20))}, "t-ffffffffffffffff"},
		{"no digest", "t", ocispec.Platform{}, ocispec.Descriptor{}, "t-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := PlatformTag(tt.tag, tt.platform, tt.desc); got != tt.want {
				t.Errorf("PlatformTag() = %q, want %q", got, tt.want)
			}
		})
	}
}
