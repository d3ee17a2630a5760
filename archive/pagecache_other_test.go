//go:build !(linux && (amd64 || arm64))

package archive_test

import (
	"os"
	"testing"
)

// dropPageCache skips: dropping a file's cached pages is implemented for
// Linux only.
func dropPageCache(b *testing.B, f *os.File) {
	b.Skip("dropping the page cache of a file is implemented for linux/amd64 and linux/arm64 only")
}
