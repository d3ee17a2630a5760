package digestcheck

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

const hex64 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// The same answer as go-digest, the rule this package speeds up.
var cases = []string{
	"sha256:" + hex64,
	"sha256:" + strings.ToUpper(hex64),
	"sha256:" + hex64[:63],
	"sha256:" + hex64 + "0",
	"sha256:" + hex64[:63] + "g",
	"sha256:" + hex64[:63] + "/",
	"sha256:" + hex64[:63] + ":",
	"sha256:" + hex64[:63] + "`",
	"sha256:",
	"sha256",
	"",
	":" + hex64,
	"SHA256:" + hex64,
	"sha384:" + hex64 + hex64[:32],
	"sha512:" + hex64 + hex64,
	"sha512:" + hex64,
	"md5:0123456789abcdef0123456789abcdef",
	"sha256+b64:" + hex64,
	" sha256:" + hex64,
	"sha256:" + hex64 + "\n",
}

func TestValidateAgreesWithGoDigest(t *testing.T) {
	for _, c := range cases {
		want := digest.Digest(c).Validate()
		got := Validate(digest.Digest(c))
		if (got == nil) != (want == nil) || (got != nil && got.Error() != want.Error()) {
			t.Errorf("Validate(%q) = %v, go-digest says %v", c, got, want)
		}
	}
}

func TestIsSHA256HexAgreesWithGoDigest(t *testing.T) {
	for _, c := range cases {
		enc := strings.TrimPrefix(c, "sha256:")
		if got, want := IsSHA256Hex(enc), digest.SHA256.Validate(enc) == nil; got != want {
			t.Errorf("IsSHA256Hex(%q) = %v, go-digest says valid=%v", enc, got, want)
		}
	}
}

// TestSHA256SumAgreesWithGoDigest checks that SHA256Sum accepts what
// go-digest calls a valid sha256 digest, and gives its bytes.
func TestSHA256SumAgreesWithGoDigest(t *testing.T) {
	for _, c := range cases {
		d := digest.Digest(c)
		sum, ok := SHA256Sum(d)
		valid := strings.HasPrefix(c, "sha256:") && d.Validate() == nil // (Algorithm panics without ':')
		if ok != valid {
			t.Errorf("SHA256Sum(%q) ok = %v, go-digest says valid sha256=%v", c, ok, valid)
			continue
		}
		if want, _ := hex.DecodeString(strings.TrimPrefix(c, "sha256:")); ok && !bytes.Equal(sum[:], want) {
			t.Errorf("SHA256Sum(%q) = %x, want %x", c, sum, want)
		}
	}
}

func FuzzValidate(f *testing.F) {
	for _, c := range cases {
		f.Add(c)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := digest.Digest(s).Validate()
		got := Validate(digest.Digest(s))
		if (got == nil) != (want == nil) {
			t.Fatalf("Validate(%q) = %v, go-digest says %v", s, got, want)
		}
	})
}

func BenchmarkValidate(b *testing.B) {
	d := digest.Digest("sha256:" + hex64)
	b.Run("digestcheck", func(b *testing.B) {
		for b.Loop() {
			_ = Validate(d)
		}
	})
	b.Run("go-digest", func(b *testing.B) {
		for b.Loop() {
			_ = d.Validate()
		}
	})
}
