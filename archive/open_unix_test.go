//go:build unix

package archive

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestOpenSwappedForPipe covers a named pipe put in place of the archive
// between the check of the path and the open: the open must not block, and
// the check of the open file must refuse it.
func TestOpenSwappedForPipe(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "a.zip")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("cannot make a named pipe here: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		f, err := openNonBlocking(fifo)
		if err != nil {
			done <- err
			return
		}
		defer f.Close()
		fi, err := f.Stat()
		if err == nil {
			err = checkRegular(fifo, fi.Mode())
		}
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotArchive) {
			t.Fatalf("error = %v, want ErrNotArchive", err)
		}
	case <-time.After(10 * time.Second):
		if w, err := os.OpenFile(fifo, os.O_WRONLY, 0); err == nil {
			w.Close()
		}
		<-done
		t.Fatal("open of a named pipe blocked for 10 s")
	}
}
