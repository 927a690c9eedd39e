//go:build !unix

package pebble

import "sync/atomic"

// allocWords returns n zero words in the Go heap.
func allocWords(n uint64) ([]atomic.Uint64, func()) {
	return make([]atomic.Uint64, n), func() {}
}
