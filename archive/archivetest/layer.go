package archivetest

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"io"

	"github.com/opencontainers/go-digest"
)

// Layer is the content of one layer (or of any generated blob).
type Layer struct {
	// Size is the number of bytes generated from Seed when Data is nil.
	Size int64
	// Seed selects the pseudo-random bytes: the same Size and Seed always
	// give the same bytes, hence the same digest, and a layer shared by
	// several images is stored once.
	Seed int64
	// Data, when not nil, is the layer content, used as is.
	Data []byte
	// MediaType overrides the layer media type of the manifest.
	MediaType string
}

// size returns the layer size in bytes.
func (l Layer) size() int64 {
	if l.Data != nil {
		return int64(len(l.Data))
	}
	return max(l.Size, 0)
}

// LayerReader returns a reader of the bytes of l. Generated layers are
// produced as they are read, in constant memory.
func LayerReader(l Layer) io.Reader {
	if l.Data != nil {
		return bytes.NewReader(l.Data)
	}
	return &genReader{state: uint64(l.Seed), remaining: max(l.Size, 0)}
}

// LayerDigest returns the digest of the bytes of l. It reads generated
// layers once, in constant memory.
func LayerDigest(l Layer) digest.Digest {
	if l.Data != nil {
		return digest.FromBytes(l.Data)
	}
	h := sha256.New()
	buf := make([]byte, 256<<10)
	io.CopyBuffer(h, LayerReader(l), buf)
	return digest.NewDigest(digest.SHA256, h)
}

// genReader produces a splitmix64 stream, little-endian, 8 bytes a step.
type genReader struct {
	state     uint64
	remaining int64
	word      [8]byte
	left      int // unread bytes at the end of word
}

func (g *genReader) next() uint64 {
	g.state += 0x9e3779b97f4a7c15
	z := g.state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

func (g *genReader) Read(p []byte) (int, error) {
	if g.remaining <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.remaining {
		p = p[:g.remaining]
	}
	n := 0
	for n < len(p) && g.left > 0 {
		p[n] = g.word[8-g.left]
		g.left--
		n++
	}
	for len(p)-n >= 8 {
		binary.LittleEndian.PutUint64(p[n:], g.next())
		n += 8
	}
	if n < len(p) {
		binary.LittleEndian.PutUint64(g.word[:], g.next())
		g.left = 8
		for n < len(p) {
			p[n] = g.word[8-g.left]
			g.left--
			n++
		}
	}
	g.remaining -= int64(n)
	return n, nil
}
