package loader

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// ErrImageList means the image list could not be read.
var ErrImageList = errors.New("invalid image list")

// maxListLine bounds one line of an image list.
const maxListLine = 64 << 10

// LineKind classifies an image-list line.
type LineKind int

// Kinds of image-list lines.
//
// References: hangar-load.md section 2.3 (imagelist.Detect).
const (
	// LineDefault is an image reference ("nginx", "a.b/c/d:t").
	LineDefault LineKind = iota
	// LineMirror is the "SRC DST TAG" format of `hangar mirror`.
	LineMirror
	// LineUnknown is anything else.
	LineUnknown
)

// ListLine is one significant line of an image list.
type ListLine struct {
	// Number is the 1-based position among significant lines (Hangar's
	// IMG number).
	Number int
	// Text is the trimmed line.
	Text string
	Kind LineKind
}

// ReadImageList reads an image list: a UTF-8 byte order mark at its start
// is dropped; lines are trimmed; empty lines and lines starting with "#" or
// "//" are dropped; the others are numbered and classified.
func ReadImageList(r io.Reader) ([]ListLine, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxListLine)
	var lines []ListLine
	first := true
	for sc.Scan() {
		raw := sc.Text()
		if first {
			raw, first = strings.TrimPrefix(raw, "\uFEFF"), false
		}
		text := strings.TrimSpace(raw)
		if text == "" || strings.HasPrefix(text, "#") || strings.HasPrefix(text, "//") {
			continue
		}
		lines = append(lines, ListLine{Number: len(lines) + 1, Text: text, Kind: classify(text)})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: line %d: %v", ErrImageList, len(lines)+1, err)
	}
	return lines, nil
}

// ReadImageListFile reads the image list at path, which must be a regular
// file (a FIFO or device is refused before it is opened: opening one could
// block).
func ReadImageListFile(path string) ([]ListLine, error) {
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file (%s)", ErrImageList, path, fi.Mode().Type())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrImageList, err)
	}
	defer f.Close()
	lines, err := ReadImageList(f)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return lines, nil
}

func classify(line string) LineKind {
	var fields []string
	for _, f := range strings.Split(line, " ") {
		if f != "" {
			fields = append(fields, f)
		}
	}
	if len(fields) == 3 {
		return LineMirror
	}
	for _, seg := range strings.Split(line, "/") {
		if seg != "" && !strings.Contains(seg, " ") {
			return LineDefault
		}
	}
	return LineUnknown
}
