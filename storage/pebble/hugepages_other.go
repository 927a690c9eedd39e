//go:build unix && !linux

package pebble

// adviseHugePages does nothing: MADV_HUGEPAGE is Linux's.
func adviseHugePages([]byte) {}
