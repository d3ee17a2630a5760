package archive

import "io"

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
	err = d.each(func(name []byte, e *zipEntry) {
		off, err := dataOffset(r, e)
		list = append(list, DirEntry{string(name), e.header, e.csize, e.usize, e.crc, e.method, off, err})
	})
	return list, err
}

// Unexported functions under test.
var (
	ParseIndex        = parseIndex
	CheckIndexVersion = checkIndexVersion
)

// ScanDirectory reads the central directory of the zip file r as Open does,
// and returns what Open keeps of it.
func ScanDirectory(r io.ReaderAt, size int64) (any, error) { return scanDirectory(r, size) }
