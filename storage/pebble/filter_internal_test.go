package pebble

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"
)

// TestLeafFilterRate adds leaf hashes at 84 bits each and checks that every
// one is found and that few others are, as the blocked layout promises
// (about one in 100,000 at this load; the bound of ten leaves room for
// chance).
func TestLeafFilterRate(t *testing.T) {
	const n = 100_000
	f := newLeafFilter(1 << 20)
	defer f.free()
	hash := func(i uint64) []byte {
		h := sha256.Sum256(binary.BigEndian.AppendUint64(nil, i))
		return h[:]
	}
	for i := range uint64(n) {
		f.add(hash(i))
	}
	for i := range uint64(n) {
		if !f.mayContain(hash(i)) {
			t.Fatalf("leaf %d was added but is not in the filter", i)
		}
	}
	fp := 0
	for i := uint64(n); i < 2*n; i++ {
		if f.mayContain(hash(i)) {
			fp++
		}
	}
	if fp > 10 {
		t.Fatalf("%d of %d leaves never added are in the filter", fp, n)
	}
	// Not a leaf hash: hashed first, found all the same.
	f.add([]byte("short"))
	if !f.mayContain([]byte("short")) {
		t.Fatal("a value that is not 32 bytes long was added but is not in the filter")
	}
}

// BenchmarkLeafFilterLookup looks up leaf hashes that were never added
// in a filter sized for a log of each size and holding that many: the
// duplicate check of a new entry.
func BenchmarkLeafFilterLookup(b *testing.B) {
	for _, n := range []uint64{1 << 20, 10 << 20, 100 << 20} {
		f := newLeafFilter(filterBytesFor(n, filterMinEntries))
		h := make([]byte, 32)
		for i := range n {
			binary.LittleEndian.PutUint64(h, i*0x9e3779b97f4a7c15)
			binary.LittleEndian.PutUint64(h[8:], i*0xbf58476d1ce4e5b9)
			binary.LittleEndian.PutUint64(h[16:], i*0x94d049bb133111eb)
			f.add(h)
		}
		// As many hashes as blocks of the largest filter are in a
		// processor's caches many times over: each lookup goes where the
		// filter's size says, not to a block cached by the last round.
		const lookups = 1 << 20
		hashes := make([]byte, 32*lookups)
		rand.Read(hashes)
		b.Run(fmt.Sprintf("entries=%dM", n>>20), func(b *testing.B) {
			for i := range b.N {
				j := i % lookups
				f.mayContain(hashes[32*j : 32*j+32])
			}
		})
		f.free()
	}
}
