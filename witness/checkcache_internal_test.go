package witness

import (
	"strings"
	"testing"
)

// TestGenerationsBounded: however many entries are put, and however they
// are read back, a generations map holds at most two generations' worth.
func TestGenerationsBounded(t *testing.T) {
	const maxEntries, maxCost = 100, 1000
	var g generations[int, int]
	for i := range 10 * maxEntries {
		g.put(i, i, 7, maxEntries, maxCost)
		// Read back an older entry, which moves it to the current
		// generation.
		if v, ok := g.get(i/2, maxEntries, maxCost); ok && v != i/2 {
			t.Fatalf("get(%d) = %d", i/2, v)
		}
		if n, cost := g.len(); n > 2*maxEntries || cost > 2*maxCost {
			t.Fatalf("after %d puts: %d entries costing %d, want at most %d and %d", i+1, n, cost, 2*maxEntries, 2*maxCost)
		}
	}
	// The newest entries are all there.
	for i := 10*maxEntries - maxCost/7/2; i < 10*maxEntries; i++ {
		if v, ok := g.get(i, maxEntries, maxCost); !ok || v != i {
			t.Fatalf("get(%d) = %d, %v; want it", i, v, ok)
		}
	}
	// An entry costlier than a generation is kept alone.
	g.put(-1, -1, 5*maxCost, maxEntries, maxCost)
	if n, cost := g.len(); n > maxEntries+1 || cost > maxCost+5*maxCost+7 {
		t.Fatalf("after a costly entry: %d entries costing %d", n, cost)
	}
	if _, ok := g.get(-1, maxEntries, maxCost); !ok {
		t.Fatal("the costly entry is gone")
	}
}

// TestScanSignatures: what scanSignatures refuses, as note.Open would or
// because a trusted key has two lines, and what it lets through.
func TestScanSignatures(t *testing.T) {
	const sig = "AAAAAQAAAAAAAAAAAAAAAAAAAAA="
	line := func(name, b64 string) string { return "— " + name + " " + b64 + "\n" }
	trusted := func(k sigKey) bool { return k.name == "trusted" }
	for _, tc := range []struct {
		name  string
		block string
		ok    bool
	}{
		{"one line", line("trusted", sig), true},
		{"two lines of an untrusted key", line("other", sig) + line("other", sig), true},
		{"two lines of a trusted key", line("trusted", sig) + line("trusted", "AAAAAQEAAAAAAAAAAAAAAAAAAAA="), false},
		{"a trusted name with two key IDs", line("trusted", sig) + line("trusted", "AAAAAgAAAAAAAAAAAAAAAAAAAAA="), true},
		{"empty", "", false},
		{"no newline at the end", strings.TrimSuffix(line("trusted", sig), "\n"), false},
		{"an empty line", line("trusted", sig) + "\n", false},
		{"no em dash", "- trusted " + sig + "\n", false},
		{"bad base64", line("trusted", "AAAA!AAA"), false},
		{"too short", line("trusted", "AAAAAQ=="), false},
		{"a plus in the name", line("a+b", sig), false},
		{"a carriage return", line("trusted", "AAAAAQAAAAAAAAAA\rAAAAAAAAAAA="), false},
		{"100 lines", strings.Repeat(line("other", sig), 100), true},
		{"101 lines", strings.Repeat(line("other", sig), 101), false},
	} {
		_, err := scanSignatures([]byte(tc.block), trusted)
		if (err == nil) != tc.ok {
			t.Errorf("%s: scanSignatures(%q) = %v, want ok %v", tc.name, tc.block, err, tc.ok)
		}
	}
}
