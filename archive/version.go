package archive

import (
	"fmt"
	"strings"
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

// checkIndexVersion reports whether v is an accepted index version: a
// semantic version, with or without the leading "v" (the shorthands "v1"
// and "v1.2" are accepted as Hangar does), from v1.2.0 up to, not
// including, v2.0.0. Pre-releases of v1.2.0 (v1.2.0-rc1) are older than
// v1.2.0 and refused; any v2 pre-release is refused too. The error wraps
// ErrUnsupportedVersion and names the version found and the range
// supported.
func checkIndexVersion(v string) error {
	if v == "" {
		return &versionError{msg: "archive index has no version"}
	}
	sv, ok := parseSemver(v)
	if !ok {
		return &versionError{msg: fmt.Sprintf("archive index version %s is not a valid semantic version", quoteShort(v))}
	}
	// major must be 1: [v1.2.0, v2.0.0) restricted to v1.x, so that a
	// v2 pre-release (older than v2.0.0 in semver order) is refused too.
	if sv.major == "1" {
		switch c := compareNum(sv.minor, "2"); {
		case c > 0:
			return nil
		case c == 0:
			if sv.patch != "0" || sv.prerelease == "" {
				return nil
			}
		}
	}
	return &versionError{msg: fmt.Sprintf("archive index version %s is not supported", quoteShort(v))}
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

// semver is a parsed semantic version, as golang.org/x/mod/semver parses
// it (which Hangar uses): "v" MAJOR [ "." MINOR [ "." PATCH [ "-" PRE ]
// [ "+" BUILD ] ] ], where the shorthands "vMAJOR" and "vMAJOR.MINOR" take
// no pre-release or build suffix.
type semver struct {
	major, minor, patch string
	prerelease          string
}

// parseSemver parses v; a missing leading "v" is added, as Hangar does.
func parseSemver(v string) (semver, bool) {
	var p semver
	if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	v = v[1:]
	var ok bool
	if p.major, v, ok = parseNum(v); !ok {
		return p, false
	}
	if v == "" {
		p.minor, p.patch = "0", "0"
		return p, true
	}
	if v[0] != '.' {
		return p, false
	}
	if p.minor, v, ok = parseNum(v[1:]); !ok {
		return p, false
	}
	if v == "" {
		p.patch = "0"
		return p, true
	}
	if v[0] != '.' {
		return p, false
	}
	if p.patch, v, ok = parseNum(v[1:]); !ok {
		return p, false
	}
	if v != "" && v[0] == '-' {
		if p.prerelease, v, ok = parseIdents(v[1:], true); !ok {
			return p, false
		}
	}
	if v != "" && v[0] == '+' {
		if _, v, ok = parseIdents(v[1:], false); !ok {
			return p, false
		}
	}
	return p, v == ""
}

// parseNum parses a decimal number without leading zeros.
func parseNum(v string) (num, rest string, ok bool) {
	i := 0
	for i < len(v) && '0' <= v[i] && v[i] <= '9' {
		i++
	}
	if i == 0 || (v[0] == '0' && i != 1) {
		return "", v, false
	}
	return v[:i], v[i:], true
}

// parseIdents parses dot-separated identifiers of [0-9A-Za-z-], up to a
// '+' when prerelease is set (numeric pre-release identifiers take no
// leading zeros) or to the end of v otherwise.
func parseIdents(v string, prerelease bool) (idents, rest string, ok bool) {
	i, start := 0, 0
	for i < len(v) && !(prerelease && v[i] == '+') {
		c := v[i]
		switch {
		case c == '.':
			if start == i || (prerelease && badNum(v[start:i])) {
				return "", v, false
			}
			start = i + 1
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-':
		default:
			return "", v, false
		}
		i++
	}
	if start == i || (prerelease && badNum(v[start:i])) {
		return "", v, false
	}
	return v[:i], v[i:], true
}

// badNum reports a numeric identifier with a leading zero.
func badNum(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return len(s) > 1 && s[0] == '0'
}

// compareNum compares two decimal numbers without leading zeros, of any
// length.
func compareNum(a, b string) int {
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}
