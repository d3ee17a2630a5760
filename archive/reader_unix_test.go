//go:build unix

package archive_test

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cnrancher/docker-hangar/archive"
)

// TestOpenNotRegular checks that Open refuses what is not a regular file at
// once: a named pipe would block open(2) until a writer came.
func TestOpenNotRegular(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo.zip")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("cannot make a named pipe here: %v", err)
	}
	link := filepath.Join(dir, "link.zip")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, path, msg string
	}{
		{"named pipe", fifo, "a named pipe (FIFO), not a regular file"},
		{"symbolic link to a named pipe", link, "a named pipe (FIFO), not a regular file"},
		{"directory", dir, "a directory, not a regular file"},
		{"character device", os.DevNull, "a character device, not a regular file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				r, err := archive.Open(tt.path)
				if err == nil {
					r.Close()
				}
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				// Release the blocked open(2) with a writer, then fail.
				if w, werr := os.OpenFile(fifo, os.O_WRONLY, 0); werr == nil {
					w.Close()
				}
				<-done
				t.Fatalf("Open(%s) blocked for 10 s", tt.path)
			}
			wantErr(t, err, archive.ErrNotArchive)
			want := "open " + tt.path + ": not a hangar archive: " + tt.msg
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
		})
	}
}
