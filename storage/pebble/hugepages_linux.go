package pebble

import "golang.org/x/sys/unix"

// adviseHugePages asks for huge pages for the mapping b where the system
// gives them on request (transparent huge pages set to "madvise").
func adviseHugePages(b []byte) {
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE) // advice: without it, small pages
}
