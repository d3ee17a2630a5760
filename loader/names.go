package loader

import (
	"strings"
)

// Name is an image reference split the way Hangar splits it.
//
// References: hangar-load.md section 2.4 (the Get*Name functions of
// pkg/utils/utils.go).
type Name struct {
	Registry string
	Project  string
	// Name may contain "/" (e.g. "charts/nginx-ingress").
	Name string
	Tag  string
}

// String returns registry/project/name:tag.
func (n Name) String() string { return n.Repository() + ":" + n.Tag }

// Repository returns registry/project/name.
func (n Name) Repository() string { return n.Registry + "/" + n.Project + "/" + n.Name }

// hostLike reports whether a path segment names a registry host.
func hostLike(s string) bool {
	return strings.ContainsAny(s, ".:") || s == "localhost"
}

// ParseName splits an image reference exactly as Hangar does: one segment
// gets docker.io/library, two segments a project (or docker.io), three
// segments always take the first as the registry, and four or more join the
// rest into the name. The tag is the second ":" piece of the last segment,
// else "latest".
func ParseName(s string) Name {
	var segs []string
	for _, p := range strings.Split(s, "/") {
		if p != "" {
			segs = append(segs, p)
		}
	}
	n := Name{Registry: "docker.io", Project: "library", Tag: "latest"}
	if len(segs) == 0 {
		return n
	}
	last := segs[len(segs)-1]
	var pieces []string
	for _, p := range strings.Split(last, ":") {
		if p != "" {
			pieces = append(pieces, p)
		}
	}
	if len(pieces) == 2 {
		n.Tag = pieces[1]
	}
	cut := func(seg string) string {
		if i := strings.IndexByte(seg, ':'); i >= 0 {
			return seg[:i]
		}
		return seg
	}
	switch len(segs) {
	case 1:
		n.Name = cut(segs[0])
	case 2:
		if hostLike(segs[0]) {
			n.Registry = segs[0]
		} else {
			n.Project = segs[0]
		}
		n.Name = cut(segs[1])
	case 3:
		n.Registry, n.Project, n.Name = segs[0], segs[1], cut(segs[2])
	default:
		rest := segs[1:]
		if hostLike(segs[0]) {
			n.Registry, n.Project = segs[0], segs[1]
			rest = segs[2:]
		} else {
			n.Project = segs[0]
		}
		n.Name = cut(strings.Join(rest, "/"))
	}
	return n
}
