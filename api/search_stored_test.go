package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/candorlog/candor/api/apitest"
)

// TestStoredEntryTerms holds StoredEntryTerms, which skips the signature
// checks, to what ParseEntry and SearchTerms give, for build entries with
// one or several signers and subjects and for commit entries.
func TestStoredEntryTerms(t *testing.T) {
	var entries [][]byte
	for i := range 8 {
		s := apitest.NewBuildSignerFromSeed(fmt.Appendf(nil, "stored %d", i))
		e, err := CanonicalEntry(s.Submission(fmt.Sprintf("a%d.tar.gz", i), strings.Repeat(fmt.Sprintf("%02x", i), 32)))
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	for i := range 4 {
		s := apitest.NewCommitSignerFromSeed(fmt.Appendf(nil, "stored commit %d", i))
		format := "sha1"
		if i%2 == 1 {
			format = "sha256"
		}
		e, err := CanonicalEntry(s.SubmissionOf(format, fmt.Sprintf("https://git.example.com/r%d.git", i), nil, fmt.Sprintf("commit %d\n", i)))
		if err != nil {
			t.Fatal(err)
		}
		entries = append(entries, e)
	}
	for _, f := range []string{"seed-v01-entry", "seed-v01-submission", "seed-apitest"} {
		if e, ok := fuzzSeedEntry(t, filepath.Join("testdata", "fuzz", "FuzzParseEntry", f)); ok {
			entries = append(entries, e)
		}
	}
	for i, e := range entries {
		st, err := ParseEntry(e)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		want := SearchTerms(st)
		got, err := StoredEntryTerms(e)
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("entry %d: StoredEntryTerms = %v, %v; want %v", i, got, err, want)
		}
		terms, err := admitTerms(e)
		if err != nil || !slices.Equal(terms, want) {
			t.Errorf("entry %d: AdmitEntry gives terms %v, %v; want %v", i, terms, err, want)
		}
	}
	if _, err := StoredEntryTerms([]byte(`{"kind":"build","v":2}`)); err == nil {
		t.Error("StoredEntryTerms of an entry of version 2: no error")
	}
	if _, err := StoredEntryTerms([]byte(`{"kind":"nope","v":1}`)); err == nil {
		t.Error("StoredEntryTerms of an unknown kind: no error")
	}
}

// fuzzSeedEntry reads the single []byte value of a fuzz corpus file, and
// returns it if it is a stored (canonical) entry.
func fuzzSeedEntry(t *testing.T, path string) ([]byte, bool) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "[]byte(") {
		t.Fatalf("%s: not a corpus file of one []byte", path)
	}
	var s string
	if _, err := fmt.Sscanf(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"), "%q", &s); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if _, err := ParseEntry([]byte(s)); err != nil {
		return nil, false
	}
	return []byte(s), true
}

// FuzzStoredEntryTerms checks that StoredEntryTerms gives what ParseEntry
// and SearchTerms give for every entry ParseEntry accepts, and never
// panics on the others.
func FuzzStoredEntryTerms(f *testing.F) {
	s := apitest.NewBuildSignerFromSeed([]byte("fuzz stored"))
	e, err := CanonicalEntry(s.Submission("a.tar.gz", testDigest))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(e)
	f.Add(bytes.Replace(e, []byte(`"v":1`), []byte(`"v":2`), 1))
	c, err := CanonicalEntry(apitest.NewCommitSignerFromSeed([]byte("fuzz stored")).Submission("https://git.example.com/a.git", "fuzz\n"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(c)
	f.Fuzz(func(t *testing.T, entry []byte) {
		got, gotErr := StoredEntryTerms(entry)
		st, err := ParseEntry(entry)
		if err != nil {
			return
		}
		if want := SearchTerms(st); gotErr != nil || !slices.Equal(got, want) {
			t.Fatalf("StoredEntryTerms = %v, %v; ParseEntry gives %v", got, gotErr, want)
		}
	})
}

// TestSearchResponseAppendJSON checks AppendJSON against json.Marshal.
func TestSearchResponseAppendJSON(t *testing.T) {
	for _, r := range []SearchResponse{
		{},
		{Hits: []SearchHit{}},
		{Hits: []SearchHit{{Index: 0, LeafHash: bytes.Repeat([]byte{0xfb}, 32)}}, Cursor: "AAAAAAAAAAE"},
		{Hits: []SearchHit{{Index: 1<<64 - 1, LeafHash: []byte{}}, {Index: 7}}, Cursor: "<&>\"\\"},
	} {
		want, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.AppendJSON([]byte("x")); !bytes.Equal(got, append([]byte("x"), want...)) {
			t.Errorf("AppendJSON(%+v) = %s, want x%s", r, got, want)
		}
	}
}

// admitTerms returns the search terms of the entry that AdmitEntry makes of
// body.
func admitTerms(body []byte) ([]SearchTerm, error) {
	_, st, err := AdmitEntry(body)
	if err != nil {
		return nil, err
	}
	return SearchTerms(st), nil
}
