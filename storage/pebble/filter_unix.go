//go:build unix

package pebble

import (
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// allocWords returns n zero words in anonymous memory of their own, and
// the function that unmaps them; in the Go heap if the mapping fails.
func allocWords(n uint64) ([]atomic.Uint64, func()) {
	b, err := unix.Mmap(-1, 0, int(n*8), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		return make([]atomic.Uint64, n), func() {}
	}
	return unsafe.Slice((*atomic.Uint64)(unsafe.Pointer(&b[0])), n), func() { unix.Munmap(b) }
}
