package pebble

import (
	"bytes"
	"strings"
	"testing"

	"github.com/candorlog/candor/api"
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
