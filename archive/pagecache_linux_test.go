//go:build linux && (amd64 || arm64)

package archive_test

import (
	"os"
	"syscall"
	"testing"
)

// dropPageCache writes back and drops the cached pages of f
// (posix_fadvise POSIX_FADV_DONTNEED).
func dropPageCache(b *testing.B, f *os.File) {
	b.Helper()
	if err := f.Sync(); err != nil {
		b.Fatal(err)
	}
	const fadvDontNeed = 4
	if _, _, errno := syscall.Syscall6(syscall.SYS_FADVISE64, f.Fd(), 0, 0, fadvDontNeed, 0, 0); errno != 0 {
		b.Fatalf("posix_fadvise: %v", errno)
	}
}
