package api_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

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

// testTree is an RFC 6962 tree in memory, built with sumdb/tlog.
type testTree []tlog.Hash

func (tr testTree) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		out[i] = tr[x]
	}
	return out, nil
}

func newTestTree(t testing.TB, n int) testTree {
	var tr testTree
	for i := range n {
		hs, err := tlog.StoredHashes(int64(i), fmt.Appendf(nil, "leaf %d", i), tr)
		if err != nil {
			t.Fatal(err)
		}
		tr = append(tr, hs...)
	}
	return tr
}

// tile returns the tile of tr at level l, index n, width w.
func (tr testTree) tile(t testing.TB, l int, n int64, w int) api.EvidenceTile {
	data, err := tlog.ReadTileData(tlog.Tile{H: api.TileHeight, L: l, N: n, W: w}, tr)
	if err != nil {
		t.Fatal(err)
	}
	return api.EvidenceTile{Level: l, Index: uint64(n), Width: w, Hashes: data}
}

// evidenceVariants returns, for canonical evidence, the variants that a
// hostile peer can make of it: the same misbehaviour, other bytes.
func evidenceVariants(t testing.TB, e api.Evidence, cosigner note.Signer) map[string]api.Evidence {
	variant := func(f func(i int, cp []byte) []byte) api.Evidence {
		v := e
		for i := range v.Checkpoints {
			v.Checkpoints[i] = string(f(i, []byte(v.Checkpoints[i])))
		}
		return v
	}
	swapped := e
	swapped.Checkpoints[0], swapped.Checkpoints[1] = e.Checkpoints[1], e.Checkpoints[0]
	out := map[string]api.Evidence{
		"swapped checkpoints": swapped,
		"junk signature lines": variant(func(i int, cp []byte) []byte {
			return apitest.AddJunkSignatures(cp, 2+i, rand.Reader)
		}),
		"cosignatures left on": variant(func(_ int, cp []byte) []byte { return apitest.AddSignatures(cp, cosigner) }),
		"signature re-encoded": variant(func(_ int, cp []byte) []byte { return apitest.ReencodeSignatures(cp) }),
		"all of them": variant(func(i int, cp []byte) []byte {
			return apitest.ReencodeSignatures(apitest.AddJunkSignatures(apitest.AddSignatures(cp, cosigner), 1, rand.Reader))
		}),
	}
	out["all of them"] = api.Evidence{Kind: e.Kind, Origin: e.Origin, Tiles: e.Tiles,
		Checkpoints: [2]string{out["all of them"].Checkpoints[1], out["all of them"].Checkpoints[0]}}
	if len(e.Tiles) > 0 {
		more := e
		more.Tiles = append(slices.Clone(e.Tiles), api.EvidenceTile{Level: 0, Index: 99, Width: 1, Hashes: make([]byte, api.HashSize)})
		out["extra tiles"] = more
		reversed := e
		reversed.Tiles = slices.Clone(e.Tiles)
		slices.Reverse(reversed.Tiles)
		out["tiles out of order"] = reversed
		// A second copy of a tile that tlog needs, with other hashes: the
		// first one is the one read.
		twice := e
		bad := e.Tiles[0]
		bad.Hashes = make([]byte, len(bad.Hashes))
		twice.Tiles = append(slices.Clone(e.Tiles), bad)
		out["a tile twice"] = twice
	}
	return out
}

// TestEvidenceCanonical: the variants of a piece of evidence have one ID
// and one canonical form, which is the log's own signed checkpoints and the
// tiles that prove the inconsistency; VerifyCanonical refuses them and
// accepts the canonical form.
func TestEvidenceCanonical(t *testing.T) {
	const origin = "example.com/log"
	s, v, _ := apitest.NewNoteKey(origin, rand.Reader)
	wkey, _, err := api.GenerateCosignerKey(rand.Reader, "witness.example/w")
	if err != nil {
		t.Fatal(err)
	}
	cosigner, err := api.NewCosigner(wkey, nil)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(size uint64, root [api.HashSize]byte) []byte {
		b, err := api.SignCheckpoint(api.Checkpoint{Origin: origin, Size: size, Hash: root}, s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	// An inconsistency: the log's tree of 600 leaves, and a checkpoint of
	// size 10 with another root. tlog needs the tiles of the right edge
	// of the tree of 600, and the tile holding the first 10 leaves.
	tr := newTestTree(t, 600)
	root, err := tlog.TreeHash(600, tr)
	if err != nil {
		t.Fatal(err)
	}
	big, small := sign(600, root), sign(10, sha256.Sum256([]byte("rewritten")))
	needed := []api.EvidenceTile{tr.tile(t, 0, 0, 256), tr.tile(t, 0, 2, 88), tr.tile(t, 1, 0, 2)}
	all := []api.EvidenceTile{tr.tile(t, 1, 0, 2), tr.tile(t, 0, 1, 256), tr.tile(t, 0, 2, 88), tr.tile(t, 0, 0, 256)}

	a, b := sign(10, sha256.Sum256([]byte("a"))), sign(10, sha256.Sum256([]byte("b")))
	for _, tc := range []struct {
		name string
		in   api.Evidence
		want api.Evidence
	}{
		{"equivocation", api.NewEquivocation(origin, a, b), api.NewEquivocation(origin, a, b)},
		{"inconsistency", api.NewInconsistency(origin, small, big, all), api.NewInconsistency(origin, small, big, needed)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, cps, err := tc.in.Canonical(v)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c, tc.want) {
				t.Fatalf("Canonical = %+v\nwant %+v", c, tc.want)
			}
			if cps[0].Size > cps[1].Size || noteText(c.Checkpoints[0]) != string(cps[0].Marshal()) {
				t.Fatalf("Canonical returned the checkpoints %+v, not in the order of the evidence", cps)
			}
			if again, _, err := c.Canonical(v); err != nil || !reflect.DeepEqual(again, c) {
				t.Fatalf("Canonical of canonical evidence = %+v, %v", again, err)
			}
			if _, err := c.VerifyCanonical(v); err != nil {
				t.Fatalf("VerifyCanonical of canonical evidence = %v", err)
			}
			want, err := c.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			for name, variant := range evidenceVariants(t, c, cosigner) {
				if variant.ID() != c.ID() {
					t.Errorf("%s: ID %s, the canonical one's is %s", name, variant.ID(), c.ID())
				}
				vc, _, err := variant.Canonical(v)
				if err != nil {
					t.Errorf("%s: Canonical = %v", name, err)
					continue
				}
				if got, err := vc.Marshal(); err != nil || !bytes.Equal(got, want) {
					t.Errorf("%s: canonical form\n%s\nwant\n%s", name, got, want)
				}
				if vc.ID() != c.ID() {
					t.Errorf("%s: canonical ID %s, want %s", name, vc.ID(), c.ID())
				}
				if _, err := variant.Verify(v); err != nil {
					t.Errorf("%s: Verify = %v, want the variant to prove misbehaviour", name, err)
				}
				if _, err := variant.VerifyCanonical(v); !errors.Is(err, api.ErrNotCanonical) || errors.Is(err, api.ErrInvalidEvidence) {
					t.Errorf("%s: VerifyCanonical = %v, want ErrNotCanonical", name, err)
				}
			}
		})
	}
	// Without the tiles that tlog needs, nothing is proven.
	if _, _, err := api.NewInconsistency(origin, small, big, needed[1:]).Canonical(v); !errors.Is(err, api.ErrInvalidEvidence) {
		t.Errorf("Canonical of an inconsistency without a tile it needs = %v, want ErrInvalidEvidence", err)
	}
}

// TestVerifyCanonicalSays: the error of VerifyCanonical says what is not
// canonical.
func TestVerifyCanonicalSays(t *testing.T) {
	const origin = "example.com/log"
	s, v, _ := apitest.NewNoteKey(origin, rand.Reader)
	other, _, _ := apitest.NewNoteKey("witness.example/w", rand.Reader)
	sign := func(view string) []byte {
		b, err := api.SignCheckpoint(api.Checkpoint{Origin: origin, Size: 10, Hash: sha256.Sum256([]byte(view))}, s)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	e := api.NewEquivocation(origin, sign("a"), sign("b"))
	junk, swapped, reencoded := e, e, e
	junk.Checkpoints[1] = string(apitest.AddJunkSignatures(apitest.AddSignatures([]byte(e.Checkpoints[1]), other), 1, rand.Reader))
	swapped.Checkpoints = [2]string{e.Checkpoints[1], e.Checkpoints[0]}
	reencoded.Checkpoints[0] = string(apitest.ReencodeSignatures([]byte(e.Checkpoints[0])))
	for ev, want := range map[*api.Evidence]string{
		&junk:      "checkpoint 1 carries 3 signature lines, want only the log's",
		&swapped:   "the checkpoints are out of order",
		&reencoded: "checkpoint 0: the log's signature is not in canonical base64",
	} {
		if _, err := ev.VerifyCanonical(v); !errors.Is(err, api.ErrNotCanonical) || !strings.Contains(err.Error(), want) {
			t.Errorf("VerifyCanonical = %v, want %q", err, want)
		}
	}
}

func noteText(signed string) string {
	return signed[:strings.LastIndex(signed, "\n\n")+1]
}

// FuzzParseEvidence checks that any input either is refused with
// ErrInvalidEvidence or parses into evidence that survives a round trip
// and that Verify judges without panicking, only ever accepting evidence
// whose checkpoints the log's key signed. Canonical is idempotent, keeps
// the ID, and gives what VerifyCanonical accepts; VerifyCanonical accepts
// nothing else.
func FuzzParseEvidence(f *testing.F) {
	const origin = "example.com/log"
	s, v, _ := apitest.NewNoteKey(origin, rand.Reader)
	cosigner, _, _ := apitest.NewNoteKey("witness.example/w", rand.Reader)
	sign := func(size uint64, root [api.HashSize]byte) []byte {
		b, err := api.SignCheckpoint(api.Checkpoint{Origin: origin, Size: size, Hash: root}, s)
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	add := func(e api.Evidence) {
		b, err := e.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	eq := api.NewEquivocation(origin, sign(10, sha256.Sum256([]byte("a"))), sign(10, sha256.Sum256([]byte("b"))))
	add(eq)
	tr := newTestTree(f, 300)
	root, err := tlog.TreeHash(300, tr)
	if err != nil {
		f.Fatal(err)
	}
	inc := api.NewInconsistency(origin, sign(3, sha256.Sum256([]byte("rewritten"))), sign(300, root),
		[]api.EvidenceTile{tr.tile(f, 1, 0, 1), tr.tile(f, 0, 0, 256), tr.tile(f, 0, 1, 44)})
	add(inc)
	for _, e := range []api.Evidence{eq, inc} {
		for _, variant := range evidenceVariants(f, e, cosigner) {
			add(variant)
		}
	}
	add(api.NewInconsistency(origin, sign(1, sha256.Sum256([]byte("a"))), sign(2, sha256.Sum256([]byte("b"))), []api.EvidenceTile{{Level: 0, Index: 0, Width: 2, Hashes: make([]byte, 64)}}))
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
			if _, err := e.VerifyCanonical(v); !errors.Is(err, api.ErrInvalidEvidence) {
				t.Fatalf("VerifyCanonical = %v of evidence that Verify refuses", err)
			}
			return
		}
		for i, c := range e.Checkpoints {
			if _, _, err := api.OpenCheckpoint([]byte(c), origin, v); err != nil {
				t.Fatalf("Verify accepted evidence whose checkpoint %d does not open: %v", i, err)
			}
		}
		if cps[0].Size == cps[1].Size && cps[0].Hash == cps[1].Hash {
			t.Fatal("Verify accepted two identical checkpoints as evidence")
		}
		c, ccps, err := e.Canonical(v)
		if err != nil || !reflect.DeepEqual(ccps, cps) {
			t.Fatalf("Canonical = %v, checkpoints %+v, Verify's %+v", err, ccps, cps)
		}
		if c.ID() != e.ID() {
			t.Fatalf("Canonical changed the ID from %s to %s", e.ID(), c.ID())
		}
		c2, _, err := c.Canonical(v)
		if err != nil || !reflect.DeepEqual(c2, c) {
			t.Fatalf("Canonical is not idempotent: %v\n%+v\n%+v", err, c, c2)
		}
		cenc, err := c.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if parsed, err := api.ParseEvidence(cenc); err != nil {
			t.Fatalf("canonical evidence does not parse: %v", err)
		} else if _, err := parsed.VerifyCanonical(v); err != nil {
			t.Fatalf("VerifyCanonical of canonical evidence = %v", err)
		}
		_, err = e.VerifyCanonical(v)
		if canonical := bytes.Equal(enc, cenc); canonical != (err == nil) || !canonical && !errors.Is(err, api.ErrNotCanonical) {
			t.Fatalf("VerifyCanonical = %v of evidence that is canonical: %v", err, canonical)
		}
	})
}

func TestEvidenceBadEntry(t *testing.T) {
	const origin = "example.com/log"
	s, v, _ := apitest.NewNoteKey(origin, rand.Reader)
	good, err := api.CanonicalEntry(apitest.NewBuildSigner().Submission("a", strings.Repeat("ab", 32)))
	if err != nil {
		t.Fatal(err)
	}
	forged := bytes.Replace(good, []byte(`"sig":"`), []byte(`"sig":"A`), 1)
	entries := [][]byte{good, []byte("not json"), forged, []byte(`{"kind":"sbom","v":1}`), []byte(`{"kind":"build","v":2}`), good}
	var tr testTree
	for i, e := range entries {
		hs, err := tlog.StoredHashes(int64(i), e, tr)
		if err != nil {
			t.Fatal(err)
		}
		tr = append(tr, hs...)
	}
	root, err := tlog.TreeHash(int64(len(entries)), tr)
	if err != nil {
		t.Fatal(err)
	}
	cp, err := api.SignCheckpoint(api.Checkpoint{Origin: origin, Size: uint64(len(entries)), Hash: root}, s)
	if err != nil {
		t.Fatal(err)
	}
	evidence := func(i int) api.Evidence {
		p, err := tlog.ProveRecord(int64(len(entries)), int64(i), tr)
		if err != nil {
			t.Fatal(err)
		}
		proof := make([][]byte, len(p))
		for j := range p {
			proof[j] = p[j][:]
		}
		return api.NewBadEntry(origin, cp, uint64(i), entries[i], proof)
	}
	for _, i := range []int{1, 2} {
		e := evidence(i)
		enc, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := api.ParseEvidence(enc)
		if err != nil {
			t.Fatal(err)
		}
		cps, err := got.VerifyCanonical(v)
		if err != nil {
			t.Fatalf("entry %d: VerifyCanonical = %v", i, err)
		}
		if cps[0].Size != uint64(len(entries)) || got.BadEntryReason() == nil {
			t.Errorf("entry %d: checkpoints %v, reason %v", i, cps, got.BadEntryReason())
		}
		// A cosigned checkpoint is the same piece of evidence, not in
		// canonical form.
		cosigned := e
		cosigned.Checkpoint += "— other.example/w AAAAAAAA\n"
		if cosigned.ID() != e.ID() {
			t.Error("a cosignature changes the ID")
		}
		if _, err := cosigned.VerifyCanonical(v); !errors.Is(err, api.ErrNotCanonical) {
			t.Errorf("entry %d with a cosignature line: VerifyCanonical = %v, want ErrNotCanonical", i, err)
		}
	}
	if evidence(1).ID() == evidence(2).ID() {
		t.Error("two entries have one ID")
	}
	wrongIndex := evidence(1)
	wrongIndex.Entry.Index = 2
	moved := evidence(2)
	moved.Entry.Data = entries[1]
	otherLog := evidence(1)
	otherLog.Origin = "example.com/other"
	withTiles := evidence(1)
	withTiles.Tiles = []api.EvidenceTile{tr.tile(t, 0, 0, 1)}
	for name, bad := range map[string]api.Evidence{
		"valid entry":        evidence(0),
		"valid entry too":    evidence(5),
		"unknown kind":       evidence(3),
		"unknown version":    evidence(4),
		"wrong index":        wrongIndex,
		"not the entry":      moved,
		"other origin":       otherLog,
		"with tiles":         withTiles,
		"unsigned":           api.NewBadEntry(origin, []byte(strings.SplitAfter(string(cp), "\n\n")[0]+"— example.com/log AAAAAAAA\n"), 1, entries[1], evidence(1).Entry.Proof),
		"beyond the tree":    api.NewBadEntry(origin, cp, 6, entries[1], evidence(1).Entry.Proof),
		"two checkpoints":    {Kind: api.EvidenceBadEntry, Origin: origin, Checkpoints: [2]string{string(cp), string(cp)}, Entry: evidence(1).Entry},
		"as an equivocation": {Kind: api.EvidenceEquivocation, Origin: origin, Checkpoints: [2]string{string(cp), string(cp)}, Entry: evidence(1).Entry},
		"without entry":      {Kind: api.EvidenceBadEntry, Origin: origin, Checkpoint: string(cp)},
		"short proof hash":   api.NewBadEntry(origin, cp, 1, entries[1], [][]byte{{1, 2}}),
		"no proof":           api.NewBadEntry(origin, cp, 1, entries[1], nil),
	} {
		if _, err := bad.Verify(v); !errors.Is(err, api.ErrInvalidEvidence) {
			t.Errorf("%s: Verify = %v, want ErrInvalidEvidence", name, err)
		}
		if enc, err := bad.Marshal(); err == nil {
			if e, err := api.ParseEvidence(enc); err == nil {
				if _, err := e.Verify(v); !errors.Is(err, api.ErrInvalidEvidence) {
					t.Errorf("%s, encoded: Verify = %v, want ErrInvalidEvidence", name, err)
				}
			}
		}
	}
}
