package archive

import (
	"bytes"
	"encoding/json"
	"io"
)

// DirEntry is a central directory record as Open reads it, with the result
// of dataOffset.
type DirEntry struct {
	Name         string
	Header       int64
	CSize, USize uint64
	CRC          uint32
	Method       uint16
	DataOffset   int64
	DataErr      error
}

// ListDirectory returns the records of the central directory of the zip
// file r as Open reads them.
func ListDirectory(r io.ReaderAt, size int64) ([]DirEntry, error) {
	d, err := readDirectoryEnd(r, size)
	if err != nil {
		return nil, err
	}
	var list []DirEntry
	err = d.each(func(name []byte, e *zipEntry, _ int64) {
		off, err := dataOffset(r, e)
		list = append(list, DirEntry{string(name), e.header, e.csize, e.usize, e.crc, e.method, off, err})
	})
	return list, err
}

// Unexported functions under test.
var (
	CheckIndexVersion = checkIndexVersion
)

// ScanDirectory reads the central directory of the zip file r as Open does,
// and returns what Open keeps of it.
func ScanDirectory(r io.ReaderAt, size int64) (any, error) { return scanDirectory(r, size) }

// UnmarshalIndex is the reference decoding of an index.json that
// Open streams: json.Unmarshal of the whole, then the same checks.
func UnmarshalIndex(data []byte) (*Index, error) {
	var idx Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return nil, err
	}
	if err := checkIndexVersion(idx.Version); err != nil {
		return nil, err
	}
	for i := range idx.List {
		if err := idx.List[i].validate(); err != nil {
			return nil, err
		}
	}
	return &idx, nil
}

// ParseIndex parses the bytes of an index.json as Open does: its decoded
// size checked first, then decoded as a stream.
func ParseIndex(data []byte) (*Index, error) {
	var est sizeEstimate
	est.Write(data)
	if err := checkDecodedSize(est.size(), est.bytes); err != nil {
		return nil, err
	}
	return decodeIndex(bytes.NewReader(data), nil)
}

// countingReaderAt counts the reads of a ReaderAt.
type countingReaderAt struct {
	io.ReaderAt
	n *int
}

func (c countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	*c.n++
	return c.ReaderAt.ReadAt(p, off)
}

// CountRecordReads makes r count the reads of central directory records
// from now on, into n (not safe for concurrent lookups).
func CountRecordReads(r *Reader, n *int) {
	r.records = countingReaderAt{r.records, n}
}
