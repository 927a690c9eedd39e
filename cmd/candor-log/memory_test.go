package main

import "testing"

// TestMemoryLimit checks the limit is the sum of its parts, and follows
// the configuration.
func TestMemoryLimit(t *testing.T) {
	c := defaults()
	const mib = 1 << 20
	// 256 MiB of cache, three 64 MiB memtables, 3,200 tiles of 511
	// hashes, 69,632 entries of 1 KiB, 8 bundle reads of three 256 KiB
	// buffers, 64 MiB.
	want := int64(256*mib + 3*64*mib + 3200*511*32 + (65536+4096)*1024 + 8*3*256*1024 + 64*mib)
	if got := memoryLimit(c); got != want {
		t.Fatalf("memoryLimit(defaults) = %d, want %d", got, want)
	}
	c.CacheMiB, c.MaxPending = 1024, 1000
	if got := memoryLimit(c); got != want+768*mib-64536*1024 {
		t.Fatalf("memoryLimit with cacheMiB 1024 and maxPending 1000 = %d", got)
	}
}
