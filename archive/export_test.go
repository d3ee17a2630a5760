package archive

import "io"

// DirEntry is a central directory record as readDirectory reads it, with
// the result of dataOffset.
type DirEntry struct {
	Name         string
	Header       int64
	CSize, USize uint64
	CRC          uint32
	Method       uint16
	DataOffset   int64
	DataErr      error
}

// ListDirectory returns the records readDirectory reads, for the tests of
// package archive_test.
func ListDirectory(r io.ReaderAt, size int64) ([]DirEntry, error) {
	var list []DirEntry
	err := readDirectory(r, size, func(name []byte, e *zipEntry) {
		off, err := dataOffset(r, e)
		list = append(list, DirEntry{string(name), e.header, e.csize, e.usize, e.crc, e.method, off, err})
	})
	return list, err
}
