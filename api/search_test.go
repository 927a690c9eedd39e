package api

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/candorlog/candor/api/apitest"
)

func TestSearchTermsOfBuild(t *testing.T) {
	s := apitest.NewBuildSignerFromSeed([]byte("search"))
	entry, err := CanonicalEntry(s.Submission("a.tar.gz", testDigest))
	if err != nil {
		t.Fatal(err)
	}
	st, err := ParseEntry(entry)
	if err != nil {
		t.Fatal(err)
	}
	want := []SearchTerm{{SearchDigest, "sha256:" + testDigest}, {SearchKey, s.KeyFingerprint()}}
	got := SearchTerms(st)
	if !slices.Equal(got, want) {
		t.Fatalf("SearchTerms = %v, want %v", got, want)
	}
	// A client's spelling of each term finds it.
	for _, term := range got {
		parsed, err := ParseSearchTerm(term.Param, strings.ToUpper(term.Value[:1])+term.Value[1:])
		if term.Param == SearchDigest {
			parsed, err = ParseSearchTerm(term.Param, "sha256:"+strings.ToUpper(testDigest))
		}
		if err != nil || parsed != term {
			t.Errorf("ParseSearchTerm of %v = %v, %v", term, parsed, err)
		}
	}
}

func TestParseSearchTerm(t *testing.T) {
	hex40 := strings.Repeat("ab", 20)
	for _, tt := range []struct {
		param, value string
		want         string // "" for an error
	}{
		{"commit", strings.ToUpper(hex40), hex40},
		{"commit", strings.Repeat("0", 64), strings.Repeat("0", 64)},
		{"commit", hex40[:39], ""},
		{"commit", strings.Repeat("g", 40), ""},
		{"repository", "https://github.com/candorlog/candor", "https://github.com/candorlog/candor"},
		{"repository", "a\nb", ""},
		{"repository", "\xff", ""},
		{"repository", strings.Repeat("r", maxSearchValue+1), ""},
		{"digest", "sha256:" + strings.ToUpper(testDigest), "sha256:" + testDigest},
		{"digest", "sha256:abc", ""},
		{"digest", "customHash:Some/Value", "customHash:Some/Value"},
		{"digest", "gitCommit:" + strings.ToUpper(hex40), "gitCommit:" + hex40},
		{"digest", "sha256", ""},
		{"digest", ":x", ""},
		{"key", "sha256:" + testDigest, "sha256:" + testDigest},
		{"key", "SHA256:" + strings.Repeat("A", 43), "SHA256:" + strings.Repeat("A", 43)},
		{"key", "SHA256:" + strings.Repeat("A", 42), ""},
		{"key", strings.ToUpper(hex40), hex40},
		{"key", "sha256:xyz", ""},
		{"key", "ssh-ed25519 AAAA", ""},
		{"color", "red", ""},
		{"commit", "", ""},
	} {
		got, err := ParseSearchTerm(tt.param, tt.value)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("ParseSearchTerm(%q, %q) = %v, want an error", tt.param, tt.value, got)
		case tt.want == "":
			if !errors.Is(err, ErrInvalidSearch) || !strings.Contains(err.Error(), tt.param) {
				t.Errorf("ParseSearchTerm(%q, %q) error %q: want ErrInvalidSearch naming the parameter", tt.param, tt.value, err)
			}
		case err != nil || got != (SearchTerm{tt.param, tt.want}):
			t.Errorf("ParseSearchTerm(%q, %q) = %v, %v; want %s", tt.param, tt.value, got, err, tt.want)
		}
	}
}

func FuzzParseSearchTerm(f *testing.F) {
	f.Add("commit", strings.Repeat("AB", 20))
	f.Add("digest", "sha256:"+testDigest)
	f.Add("key", "SHA256:"+strings.Repeat("A", 43))
	f.Add("repository", "github.com/x/y")
	f.Fuzz(func(t *testing.T, param, value string) {
		term, err := ParseSearchTerm(param, value)
		if err != nil {
			if !errors.Is(err, ErrInvalidSearch) {
				t.Fatalf("undocumented error: %v", err)
			}
			return
		}
		// What is accepted is its own normal form.
		again, err := ParseSearchTerm(term.Param, term.Value)
		if err != nil || again != term {
			t.Fatalf("ParseSearchTerm(%v) = %v, %v; want it back", term, again, err)
		}
	})
}
