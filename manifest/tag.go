package manifest

import (
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// PlatformTag returns the tag Hangar gives a platform manifest of the image
// tagged tag: "<tag>-<os>-<arch><variant>", with the OS version when set
// ("<tag>-<os>-<osVersion>-<arch><variant>"), or "<tag>-<first 16 hex of
// the digest>" when arch or os is empty or "unknown" (attestations, whose
// config has no platform, included). platform is the one read from the
// manifest's config; desc.Digest is the manifest digest. The result may be
// longer than 128 characters or otherwise invalid: the loader checks every
// destination reference before it pushes anything.
//
// Examples: "latest-linux-arm64v8", "T-linux-armv7",
// "T-windows-10.0.17763.5576-amd64", "v1.0.0-04007db838932f86".
//
// References: hangar-load.md section 2.9; decisions.md D3.
func PlatformTag(tag string, platform ocispec.Platform, desc ocispec.Descriptor) string {
	arch, os := platform.Architecture, platform.OS
	if arch == "" || os == "" || arch == PlatformUnknown || os == PlatformUnknown {
		return tag + "-" + shortHex(desc.Digest)
	}
	if platform.OSVersion != "" {
		return tag + "-" + os + "-" + platform.OSVersion + "-" + arch + platform.Variant
	}
	return tag + "-" + os + "-" + arch + platform.Variant
}

// shortHex returns the first 16 characters of the encoded part of d (all of
// it when shorter); it never panics on a malformed digest.
func shortHex(d digest.Digest) string {
	s := string(d)
	if i := strings.IndexByte(s, ':'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 16 {
		s = s[:16]
	}
	return s
}
