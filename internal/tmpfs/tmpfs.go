// Package tmpfs mounts small real filesystems for tests that fill them.
package tmpfs

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/candorlog/candor/internal/diskspace"
)

// Mount mounts a tmpfs of size bytes in a new directory under t.TempDir()
// and unmounts it when the test ends. It skips the test, saying why, when
// it cannot mount (not root, no mount command, no tmpfs).
func Mount(t testing.TB, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root (CI runs as root)")
	}
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0700", size), "tmpfs", dir).CombinedOutput()
	if err != nil {
		t.Skipf("couldn't mount a tmpfs: %v: %s", err, out)
	}
	// Registered after TempDir's cleanup, so it runs before it.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("couldn't unmount the tmpfs at %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// Fill creates the file path, as large as the filesystem allows while
// leaving about leave bytes free, and returns its size.
func Fill(t testing.TB, path string, free func() int64, leave int64) int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	var n int64
	for {
		room := free() - leave
		if room <= 0 {
			return n
		}
		chunk := buf[:min(int64(len(buf)), room)]
		w, err := f.Write(chunk)
		n += int64(w)
		if err != nil {
			return n // full
		}
	}
}

// FillTo is Fill, with the free space of path's filesystem as a
// diskspace.Monitor measures it.
func FillTo(t testing.TB, path string, leave int64) int64 {
	t.Helper()
	m, err := diskspace.New(filepath.Dir(path), 0, diskspace.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	return Fill(t, path, func() int64 {
		if err := m.Update(); err != nil {
			t.Fatal(err)
		}
		return m.Free()
	}, leave)
}
