package pebble

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
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
			prefix := string(key[:len(key)-8])
			idx, err := decodePosting(binary.BigEndian.Uint64(key[len(key)-8:]), value, nil)
			if err != nil {
				t.Fatal(err)
			}
			got[prefix] = append(got[prefix], idx...)
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
