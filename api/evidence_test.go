package api_test

import (
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
)

func TestEvidenceEquivocation(t *testing.T) {
	s, v, _ := apitest.NewNoteKey("example.com/log", rand.Reader)
	sign := func(size uint64, view string) []byte {
		b, err := api.SignCheckpoint(api.Checkpoint{Origin: "example.com/log", Size: size, Hash: sha256.Sum256([]byte(view))}, s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := sign(10, "a"), sign(10, "b")
	e := api.NewEquivocation("example.com/log", a, b)
	if e2 := api.NewEquivocation("example.com/log", b, a); e2.ID() != e.ID() || e2.Checkpoints != e.Checkpoints {
		t.Error("the order of the checkpoints changes the evidence")
	}
	enc, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := api.ParseEvidence(enc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := got.Verify(v); err != nil {
		t.Fatalf("Verify = %v", err)
	}
	for name, bad := range map[string]api.Evidence{
		"same root":      api.NewEquivocation("example.com/log", a, sign(10, "a")),
		"other sizes":    api.NewEquivocation("example.com/log", a, sign(11, "b")),
		"other origin":   {Kind: api.EvidenceEquivocation, Origin: "example.com/other", Checkpoints: e.Checkpoints},
		"unsigned":       api.NewEquivocation("example.com/log", a, []byte(strings.SplitAfter(string(b), "\n\n")[0]+"— example.com/log AAAAAAAA\n")),
		"as consistency": {Kind: api.EvidenceInconsistency, Origin: e.Origin, Checkpoints: e.Checkpoints},
	} {
		if _, err := bad.Verify(v); !errors.Is(err, api.ErrInvalidEvidence) {
			t.Errorf("%s: Verify = %v, want ErrInvalidEvidence", name, err)
		}
	}
	for _, in := range []string{"", "{}", `{"kind":"equivocation","origin":"o","checkpoints":["a","b"],"x":1}`,
		`{"kind":"equivocation","origin":"o","checkpoints":["a",""]}`,
		`{"kind":"inconsistency","origin":"o","checkpoints":["a","b"],"tiles":[{"level":0,"index":0,"width":2,"hashes":"AAAA"}]}`,
		string(enc) + "{}", strings.Repeat(" ", api.MaxEvidenceSize+1)} {
		if _, err := api.ParseEvidence([]byte(in)); !errors.Is(err, api.ErrInvalidEvidence) {
			t.Errorf("ParseEvidence(%.40q) = %v, want ErrInvalidEvidence", in, err)
		}
	}
}

// FuzzParseEvidence checks that any input either is refused with
// ErrInvalidEvidence or parses into evidence that survives a round trip
// and that Verify judges without panicking, only ever accepting evidence
// whose checkpoints the log's key signed.
func FuzzParseEvidence(f *testing.F) {
	s, v, _ := apitest.NewNoteKey("example.com/log", rand.Reader)
	sign := func(size uint64, view string) []byte {
		b, err := api.SignCheckpoint(api.Checkpoint{Origin: "example.com/log", Size: size, Hash: sha256.Sum256([]byte(view))}, s)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	eq, err := api.NewEquivocation("example.com/log", sign(10, "a"), sign(10, "b")).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(eq)
	inc, err := api.NewInconsistency("example.com/log", sign(1, "a"), sign(2, "b"), []api.EvidenceTile{{Level: 0, Index: 0, Width: 2, Hashes: make([]byte, 64)}}).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(inc)
	f.Add([]byte(`{"kind":"equivocation","origin":"o","checkpoints":["a","b"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := api.ParseEvidence(b)
		if err != nil {
			if !errors.Is(err, api.ErrInvalidEvidence) {
				t.Fatalf("ParseEvidence error %v does not wrap ErrInvalidEvidence", err)
			}
			return
		}
		enc, err := e.Marshal()
		if err != nil {
			t.Fatalf("Marshal of parsed evidence: %v", err)
		}
		e2, err := api.ParseEvidence(enc)
		if err != nil || e2.ID() != e.ID() {
			t.Fatalf("round trip: %v, IDs %s and %s", err, e.ID(), e2.ID())
		}
		cps, err := e.Verify(v)
		if err != nil {
			return
		}
		for i, c := range e.Checkpoints {
			if _, _, err := api.OpenCheckpoint([]byte(c), "example.com/log", v); err != nil {
				t.Fatalf("Verify accepted evidence whose checkpoint %d does not open: %v", i, err)
			}
		}
		if cps[0].Size == cps[1].Size && cps[0].Hash == cps[1].Hash {
			t.Fatal("Verify accepted two identical checkpoints as evidence")
		}
	})
}
