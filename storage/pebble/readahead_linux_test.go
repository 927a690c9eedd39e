package pebble_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/candorlog/candor/api"
)

// residentPages returns how many of the pages of the file at path are in
// the page cache, and how many it has.
func residentPages(t *testing.T, path string) (resident, pages int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	b, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(b)
	vec := make([]byte, (len(b)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	for _, v := range vec {
		resident += int(v & 1)
	}
	return resident, len(vec)
}

// TestTileFilesReadAhead checks that a store's start has the system read
// its tile files into the page cache: the level-0 file, evicted from it
// while the store is closed, is all there again soon after the store
// opens, where the start itself reads only the records at its end.
func TestTileFilesReadAhead(t *testing.T) {
	dir := t.TempDir()
	const size = 1<<16 + 3*api.TileWidth + 5
	s := openTileFiles(t, dir)
	growTiles(t, s, 0, size, 3)
	waitTileFiles(t, s, size)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	level0 := filepath.Join(dir, "tiles", "0")
	f, err := os.Open(level0)
	if err != nil {
		t.Fatal(err)
	}
	// Synced, the file's pages are clean, and the advice drops them.
	err = f.Sync()
	if err == nil {
		err = unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
	}
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resident, pages := residentPages(t, level0); resident > pages/2 {
		t.Skipf("the file system keeps %d of the level-0 file's %d pages in memory after FADV_DONTNEED", resident, pages)
	}
	s = openTileFiles(t, dir)
	defer s.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resident, pages := residentPages(t, level0)
		if resident == pages {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of the level-0 file's %d pages in the page cache 10 s after the start", resident, pages)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
