package archive

import (
	"fmt"
	"strings"

	"golang.org/x/mod/semver"
)

// Supported index versions: MinIndexVersion up to, not including,
// MaxIndexVersion (decisions D7). Hangar v1.7.0 to v1.9.4 write
// MinIndexVersion.
const (
	MinIndexVersion = "v1.2.0"
	MaxIndexVersion = "v2.0.0"
)

// supportedRange ends every version error message.
const supportedRange = "supported versions are " + MinIndexVersion + " up to " + MaxIndexVersion + " (exclusive)"

// versionError is returned for an index version that is not accepted; it
// matches ErrUnsupportedVersion with errors.Is.
type versionError struct {
	msg string
}

func (e *versionError) Error() string { return e.msg + ": " + supportedRange }

func (e *versionError) Is(target error) bool { return target == ErrUnsupportedVersion }

// minIndexMajor is the major version of MinIndexVersion: versions of another
// major version are refused, v2 pre-releases included (they sort before
// MaxIndexVersion).
const minIndexMajor = "v1"

// checkIndexVersion reports whether v is an accepted index version: a
// semantic version as golang.org/x/mod/semver parses it (which Hangar
// uses), with or without the leading "v" (the shorthands "v1" and "v1.2"
// are accepted as Hangar does), from v1.2.0 up to, not including, v2.0.0.
// Pre-releases of v1.2.0 (v1.2.0-rc1) are older than v1.2.0 and refused;
// any v2 pre-release is refused too. The error wraps ErrUnsupportedVersion
// and names the version found and the range supported.
func checkIndexVersion(v string) error {
	if v == "" {
		return &versionError{msg: "archive index has no version"}
	}
	sv := v
	if !strings.HasPrefix(sv, "v") {
		sv = "v" + sv
	}
	if !semver.IsValid(sv) {
		return &versionError{msg: fmt.Sprintf("archive index version %s is not a valid semantic version", quoteShort(v))}
	}
	if semver.Major(sv) != minIndexMajor || semver.Compare(sv, MinIndexVersion) < 0 {
		return &versionError{msg: fmt.Sprintf("archive index version %s is not supported", quoteShort(v))}
	}
	return nil
}

// quoteShort returns s for error messages: as is when it is short and
// printable, otherwise quoted and cut to a sane length.
func quoteShort(s string) string {
	const max = 80
	cut := false
	if len(s) > max {
		s, cut = s[:max], true
	}
	plain := !cut && s != ""
	for _, c := range s {
		if c <= ' ' || c == '"' || c > '~' {
			plain = false
			break
		}
	}
	if plain {
		return s
	}
	q := fmt.Sprintf("%q", s)
	if cut {
		q += "..."
	}
	return q
}
