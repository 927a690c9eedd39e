//go:build unix

package pebble

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// allocWords returns n zero words in anonymous memory of their own, and
// the function that unmaps them; in the Go heap if the mapping fails.
// The memory asks for huge pages where the system has them: a lookup
// touches one random block of the filter, and with 4 KiB pages a filter
// larger than the processor's page tables cover costs each lookup a miss
// in them besides the one in the cache.
func allocWords(n uint64) ([]atomic.Uint64, func()) {
	b, err := unix.Mmap(-1, 0, int(n*8), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return make([]atomic.Uint64, n), func() {}
	}
	adviseHugePages(b)
	return unsafe.Slice((*atomic.Uint64)(unsafe.Pointer(&b[0])), n), func() { unix.Munmap(b) }
}
