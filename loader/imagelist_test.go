package loader

import (
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	tests := []struct {
		in   string
		want Name
	}{
		{"nginx", Name{"docker.io", "library", "nginx", "latest"}},
		{"nginx:1", Name{"docker.io", "library", "nginx", "1"}},
		{"docker.io/nginx", Name{"docker.io", "library", "nginx", "latest"}},
		{"localhost:5000/nginx", Name{"localhost:5000", "library", "nginx", "latest"}},
		{"localhost/nginx:2", Name{"localhost", "library", "nginx", "2"}},
		{"library/nginx:1", Name{"docker.io", "library", "nginx", "1"}},
		{"rancher/mirrored/foo", Name{"rancher", "mirrored", "foo", "latest"}},
		{"a.b/c/d/e:t", Name{"a.b", "c", "d/e", "t"}},
		{"ghcr.io/nginx/charts/nginx-ingress:2.0.1", Name{"ghcr.io", "nginx", "charts/nginx-ingress", "2.0.1"}},
		{"a/b/c/d:1", Name{"docker.io", "a", "b/c/d", "1"}},
		{"127.0.0.1:5557/library/app00:v1.0.0", Name{"127.0.0.1:5557", "library", "app00", "v1.0.0"}},
		{"//reg.io//p///n:1", Name{"reg.io", "p", "n", "1"}},
		{"nginx:1:2", Name{"docker.io", "library", "nginx", "latest"}},
		{"nginx:", Name{"docker.io", "library", "nginx", "latest"}},
		{"reg.io/p/n@sha256:abc", Name{"reg.io", "p", "n@sha256", "abc"}},
		{"", Name{"docker.io", "library", "", "latest"}},
	}
	for _, tt := range tests {
		if got := ParseName(tt.in); got != tt.want {
			t.Errorf("ParseName(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestReadImageList(t *testing.T) {
	in := "# comment\n\n  nginx:1  \n// also a comment\nsrc dst tag\na b\nfoo/a b\n\tlibrary/redis\n"
	lines, err := ReadImageList(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []ListLine{
		{1, "nginx:1", LineDefault},
		{2, "src dst tag", LineMirror},
		{3, "a b", LineUnknown},
		{4, "foo/a b", LineDefault},
		{5, "library/redis", LineDefault},
	}
	if len(lines) != len(want) {
		t.Fatalf("got %d lines %+v, want %d", len(lines), lines, len(want))
	}
	for i := range want {
		if lines[i] != want[i] {
			t.Errorf("line %d = %+v, want %+v", i, lines[i], want[i])
		}
	}
}

func TestReadImageListLongLine(t *testing.T) {
	_, err := ReadImageList(strings.NewReader(strings.Repeat("a", maxListLine+1)))
	if err == nil {
		t.Fatal("a line longer than the limit was accepted")
	}
}

func FuzzReadImageList(f *testing.F) {
	for _, s := range []string{"nginx\n", "# c\n\na b c\n", "reg.io/p/n@sha256:abc\n", "\x00\xff/:::/\n", "a//b:c:d\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		lines, err := ReadImageList(strings.NewReader(in))
		if err != nil {
			return
		}
		for i, l := range lines {
			if l.Number != i+1 {
				t.Fatalf("line %d numbered %d", i, l.Number)
			}
			if l.Text == "" || l.Text != strings.TrimSpace(l.Text) {
				t.Fatalf("line %q not trimmed or empty", l.Text)
			}
			n := ParseName(l.Text)
			if n.Registry == "" || n.Project == "" || n.Tag == "" {
				t.Fatalf("ParseName(%q) = %+v has an empty part", l.Text, n)
			}
			_ = lookupKey(l.Text, "other.io")
		}
	})
}
