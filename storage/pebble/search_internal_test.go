package pebble

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/log"
)

// FuzzTermPrefix checks that two terms share the prefix of their index
// keys only if they are the same term, and that no term's prefix is a
// prefix of another's: the values of hashes are shortened to their bytes,
// every other value is kept, and neither may pass for the other.
func FuzzTermPrefix(f *testing.F) {
	hex40 := strings.Repeat("ab", 20)
	sha := "sha256:" + strings.Repeat("0f", 32)
	ssh := "SHA256:" + strings.Repeat("A", 43)
	for _, seed := range [][4]string{
		{"commit", hex40, "commit", strings.ToUpper(hex40)},
		{"key", sha, "key", strings.ToUpper(sha[:1]) + sha[1:]},
		{"key", ssh, "key", "SHA256:" + strings.Repeat("A", 42) + "B"},
		{"digest", sha, "digest", "\x02" + strings.Repeat("\x0f", 32)},
		{"key", hex40, "key", "\x01" + strings.Repeat("\xab", 20)},
		{"repository", "x", "digest", "x"},
	} {
		f.Add(seed[0], seed[1], seed[2], seed[3])
	}
	f.Fuzz(func(t *testing.T, p1, v1, p2, v2 string) {
		a, errA := appendTermPrefix(nil, api.SearchTerm{Param: p1, Value: v1})
		b, errB := appendTermPrefix(nil, api.SearchTerm{Param: p2, Value: v2})
		if errA != nil || errB != nil {
			return
		}
		same := p1 == p2 && v1 == v2
		if bytes.Equal(a, b) != same {
			t.Fatalf("%s=%q and %s=%q: prefixes %x and %x", p1, v1, p2, v2, a, b)
		}
		if !same && (bytes.HasPrefix(a, b) || bytes.HasPrefix(b, a)) {
			t.Fatalf("%s=%q and %s=%q: prefix %x and %x overlap", p1, v1, p2, v2, a, b)
		}
	})
}

// BenchmarkEachPosting is the encoding of one deferred index write of the
// log (16,384 entries) of signed commits: a unique commit id each, one of
// 100 keys and one of 1,000 repositories. One op is one write.
func BenchmarkEachPosting(b *testing.B) {
	const n = 1 << 14
	leaves := make([]log.LeafIndex, n)
	for i := range leaves {
		c := sha256.Sum256(fmt.Appendf(nil, "commit %d", i))
		k := sha256.Sum256(fmt.Appendf(nil, "key %d", i*7919%100))
		r := i * 104729 % 1000
		leaves[i] = log.LeafIndex{Index: uint64(i), Terms: []api.SearchTerm{
			{Param: api.SearchCommit, Value: hex.EncodeToString(c[:20])},
			{Param: api.SearchKey, Value: "SHA256:" + base64.RawStdEncoding.EncodeToString(k[:])},
			{Param: api.SearchRepository, Value: fmt.Sprintf("https://git.example.com/team-%d/project-%d.git", r%37, r)},
		}}
	}
	b.ReportAllocs()
	keys := 0
	for b.Loop() {
		keys = 0
		if err := eachPosting(leaves, func(key, value []byte) error { keys++; return nil }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(keys), "keys/write")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/entry")
}

// TestEachPostingOrder checks that one write's postings come in key
// order, a key each, and hold every (entry, term) pair once: with terms of
// every parameter, values that share their first bytes (keys whose first
// 8 bytes tie), single-entry values given to several entries, and a term
// given twice to one entry.
func TestEachPostingOrder(t *testing.T) {
	const n = 5000
	params := []string{api.SearchCommit, api.SearchRepository, api.SearchDigest, api.SearchKey, api.SearchImage, api.SearchIdentity, api.SearchIssuer}
	leaves := make([]log.LeafIndex, n)
	want := map[api.SearchTerm][]uint64{}
	for i := range leaves {
		idx := uint64(3*i + 1) // not every index has terms
		var terms []api.SearchTerm
		for k, p := range params {
			if (i+k)%3 == 0 {
				continue
			}
			var v string
			switch p {
			case api.SearchCommit:
				c := sha256.Sum256(fmt.Appendf(nil, "commit %d", i%(n-7))) // a few given twice
				v = hex.EncodeToString(c[:20])
			case api.SearchDigest, api.SearchImage:
				c := sha256.Sum256(fmt.Appendf(nil, "%s %d", p, i))
				v = "sha256:" + hex.EncodeToString(c[:])
			default:
				v = fmt.Sprintf("https://example.com/shared-prefix/%d", i%13) // heads tie
			}
			terms = append(terms, api.SearchTerm{Param: p, Value: v})
		}
		if len(terms) > 0 {
			terms = append(terms, terms[0]) // a term given twice
			want[terms[0]] = append(want[terms[0]], idx)
			for _, tm := range terms[1 : len(terms)-1] {
				want[tm] = append(want[tm], idx)
			}
		}
		leaves[i] = log.LeafIndex{Index: idx, Terms: terms}
	}
	// A key's prefix is that of one of the terms, and the rest its last
	// index.
	prefixes := map[string]bool{}
	for term := range want {
		prefix, err := appendTermPrefix(nil, term)
		if err != nil {
			t.Fatal(err)
		}
		prefixes[string(prefix)] = true
	}
	splitPostingKey := func(key []byte) ([]byte, uint64) {
		for n := 1; n <= 8 && n < len(key); n++ {
			at := len(key) - 1 - n
			if last, ok := parseIndexKey(key, at); ok && prefixes[string(key[:at])] {
				return key[:at], last
			}
		}
		t.Fatalf("key %x: no term's prefix and index", key)
		return nil, 0
	}
	got := map[string][]uint64{}
	var last []byte
	for range 2 { // the second time with the pool's scratch
		clear(got)
		last = nil
		err := eachPosting(leaves, func(key, value []byte) error {
			if last != nil && bytes.Compare(last, key) >= 0 {
				t.Fatalf("key %x after %x", key, last)
			}
			last = bytes.Clone(key)
			prefix, last := splitPostingKey(key)
			idx, err := decodePosting(last, value, nil)
			if err != nil {
				t.Fatal(err)
			}
			got[string(prefix)] = append(got[string(prefix)], idx...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d terms, want %d", len(got), len(want))
		}
		for term, idx := range want {
			prefix, err := appendTermPrefix(nil, term)
			if err != nil {
				t.Fatal(err)
			}
			if g := got[string(prefix)]; !slices.Equal(g, idx) {
				t.Fatalf("%s=%s: entries %v, want %v", term.Param, term.Value, g, idx)
			}
		}
	}
}

// TestIndexKey checks that the indexes of posting keys sort as the
// indexes do, and read back as written.
func TestIndexKey(t *testing.T) {
	var idx []uint64
	for shift := range 64 {
		for _, d := range []int64{-1, 0, 1} {
			idx = append(idx, uint64(int64(1)<<shift+d))
		}
	}
	idx = append(idx, 0, 255, 256, math.MaxUint64, math.MaxUint64-1)
	slices.Sort(idx)
	idx = slices.Compact(idx)
	prefix := []byte{'s', 'c', valueHex20}
	var prev []byte
	for _, i := range idx {
		k := appendIndexKey(bytes.Clone(prefix), i)
		if got, ok := parseIndexKey(k, len(prefix)); !ok || got != i {
			t.Fatalf("index %d: key %x reads as %d, %t", i, k, got, ok)
		}
		if prev != nil && bytes.Compare(prev, k) >= 0 {
			t.Fatalf("index %d: key %x not after %x", i, k, prev)
		}
		if bytes.Compare(k, append(bytes.Clone(prefix), maxIndexKey)) >= 0 {
			t.Fatalf("index %d: key %x not below the term's upper bound", i, k)
		}
		prev = k
	}
	for _, bad := range [][]byte{{}, {0}, {9, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {2, 0, 1}, {2, 1}, {1, 1, 1}} {
		if i, ok := parseIndexKey(append(bytes.Clone(prefix), bad...), len(prefix)); ok {
			t.Fatalf("%x reads as index %d", bad, i)
		}
	}
}

// FuzzIndexKey checks that whatever follows a term's prefix in a key
// reads as an index only if it is that index as appendIndexKey writes it,
// and that every index reads back.
func FuzzIndexKey(f *testing.F) {
	f.Add([]byte{1, 0}, uint64(0))
	f.Add([]byte{2, 1, 0}, uint64(256))
	f.Add([]byte{2, 0, 1}, uint64(1)<<40)
	f.Add([]byte{8, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint64(math.MaxUint64))
	f.Fuzz(func(t *testing.T, rest []byte, i uint64) {
		prefix := []byte{'s', 'r', valueRaw, 1, 'x'}
		k := append(bytes.Clone(prefix), rest...)
		if got, ok := parseIndexKey(k, len(prefix)); ok && !bytes.Equal(appendIndexKey(nil, got), rest) {
			t.Fatalf("%x reads as index %d, which is written %x", rest, got, appendIndexKey(nil, got))
		}
		k = appendIndexKey(bytes.Clone(prefix), i)
		if got, ok := parseIndexKey(k, len(prefix)); !ok || got != i {
			t.Fatalf("index %d: key %x reads as %d, %t", i, k, got, ok)
		}
	})
}
