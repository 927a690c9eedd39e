package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/witness"
)

type memState struct{ m map[string][]byte }

func (s *memState) Latest(_ context.Context, origin string) ([]byte, error) {
	return bytes.Clone(s.m[origin]), nil
}

func (s *memState) Swap(_ context.Context, origin string, old, new []byte) error {
	if !bytes.Equal(s.m[origin], old) {
		return witness.ErrStateConflict
	}
	s.m[origin] = bytes.Clone(new)
	return nil
}

// realEvidence has a witness cosign one checkpoint and be shown a split
// view of it, and returns the evidence it made and the log's key.
func realEvidence(t *testing.T) ([]byte, string) {
	t.Helper()
	ctx := context.Background()
	signer, verifier, vkey := apitest.NewNoteKey("example.com/log", rand.Reader)
	wkey, _, err := api.GenerateCosignerKey(rand.Reader, "witness.example/w")
	if err != nil {
		t.Fatal(err)
	}
	cosigner, err := api.NewCosigner(wkey, nil)
	if err != nil {
		t.Fatal(err)
	}
	w, err := witness.New(witness.Config{Cosigner: cosigner, State: &memState{m: map[string][]byte{}},
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Logs:   []witness.Log{{Origin: "example.com/log", Verifier: verifier}}})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(view string) []byte {
		b, err := api.SignCheckpoint(api.Checkpoint{Origin: "example.com/log", Size: 42, Hash: sha256.Sum256([]byte(view))}, signer)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if _, err := w.AddCheckpoint(ctx, api.AddCheckpointRequest{Checkpoint: sign("A")}); err != nil {
		t.Fatal(err)
	}
	o, err := w.Observe(ctx, sign("B"), false)
	if err != nil || o.Result != witness.ObservedEvidence {
		t.Fatalf("Observe(split view) = %+v, %v", o, err)
	}
	return o.Evidence, vkey
}

func runVerifyEvidenceFile(t *testing.T, evidence []byte, args ...string) (int, string, string) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "evidence.json")
	if err := os.WriteFile(file, evidence, 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), append([]string{"verify-evidence", file}, args...), &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestVerifyEvidence(t *testing.T) {
	ev, vkey := realEvidence(t)
	code, stdout, stderr := runVerifyEvidenceFile(t, ev, "--log-key", vkey)
	if code != 0 || !strings.Contains(stdout, "VERIFIED") || !strings.Contains(stdout, "equivocated") {
		t.Fatalf("verify-evidence of real evidence = %d, %q, %q", code, stdout, stderr)
	}

	// Tampered: a root changed (the log's signature no longer verifies),
	// both checkpoints the same, another log's key, a witness's key,
	// garbage.
	e, err := api.ParseEvidence(ev)
	if err != nil {
		t.Fatal(err)
	}
	tampered := e
	lines := strings.SplitN(tampered.Checkpoints[1], "\n", 4)
	lines[2] = strings.Replace(lines[2], lines[2][:1], string("ABCDEFGHIJKLMNOPQRSTUVWXYZ"[(strings.IndexByte("ABCDEFGHIJKLMNOPQRSTUVWXYZ", lines[2][0])+1)%26]), 1)
	tampered.Checkpoints[1] = strings.Join(lines, "\n")
	same := e
	same.Checkpoints[1] = same.Checkpoints[0]
	_, otherKey, _ := note.GenerateKey(rand.Reader, "example.com/log")
	_, witnessKey, _ := api.GenerateCosignerKey(rand.Reader, "example.com/log")
	for _, tc := range []struct {
		name string
		ev   api.Evidence
		key  string
		want string
	}{
		{"tampered root", tampered, vkey, "does NOT prove"},
		{"same checkpoint twice", same, vkey, "does NOT prove"},
		{"another key", e, otherKey, "does NOT prove"},
		{"a witness key", e, witnessKey, "cosignature key"},
	} {
		b, err := tc.ev.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if code, stdout, stderr := runVerifyEvidenceFile(t, b, "--log-key", tc.key); code != 1 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: verify-evidence = %d, %q, %q; want 1 and %q", tc.name, code, stdout, stderr, tc.want)
		}
	}
	if code, _, _ := runVerifyEvidenceFile(t, []byte("{}"), "--log-key", vkey); code != 1 {
		t.Errorf("verify-evidence of {} = %d, want 1", code)
	}
	if code, _, _ := runVerifyEvidenceFile(t, ev); code != 2 {
		t.Errorf("verify-evidence without --log-key = %d, want 2", code)
	}
}

// TestVerifyEvidenceCanonical: verify-evidence accepts evidence only in
// the canonical form witnesses serve, and says what is not canonical in
// the variants of one piece of evidence that a hostile peer can make.
func TestVerifyEvidenceCanonical(t *testing.T) {
	ev, vkey := realEvidence(t)
	e, err := api.ParseEvidence(ev)
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := apitest.NewNoteKey("witness.example/w", rand.Reader)
	variant := func(f func(e *api.Evidence)) api.Evidence {
		v := e
		f(&v)
		return v
	}

	// An inconsistency of a log that rewrote its tree of 600 leaves at size
	// 10: tlog needs 3 of the tree's 4 tiles to prove it.
	signer, _, incKey := apitest.NewNoteKey("example.com/log", rand.Reader)
	tr := newHashes(t, 600)
	root, err := tlog.TreeHash(600, tr)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(size uint64, root [api.HashSize]byte) []byte {
		b, err := api.SignCheckpoint(api.Checkpoint{Origin: "example.com/log", Size: size, Hash: root}, signer)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	small, big := sign(10, sha256.Sum256([]byte("rewritten"))), sign(600, root)
	inc := api.NewInconsistency("example.com/log", small, big, []api.EvidenceTile{tr.tile(t, 0, 0, 256), tr.tile(t, 0, 2, 88), tr.tile(t, 1, 0, 2)})
	b, err := inc.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := runVerifyEvidenceFile(t, b, "--log-key", incKey); code != 0 || !strings.Contains(stdout, "VERIFIED") || !strings.Contains(stdout, "size 10 is not a prefix of its tree of size 600") {
		t.Fatalf("verify-evidence of a canonical inconsistency = %d, %q, %q", code, stdout, stderr)
	}
	incVariant := func(f func(e *api.Evidence)) api.Evidence {
		v := inc
		v.Tiles = slices.Clone(inc.Tiles)
		f(&v)
		return v
	}

	for _, tc := range []struct {
		name string
		ev   api.Evidence
		key  string
		want string
	}{
		{"junk signature lines", variant(func(e *api.Evidence) {
			e.Checkpoints[1] = string(apitest.AddJunkSignatures([]byte(e.Checkpoints[1]), 2, rand.Reader))
		}), vkey, "checkpoint 1 carries 3 signature lines, want only the log's"},
		{"a cosignature left on", variant(func(e *api.Evidence) {
			e.Checkpoints[0] = string(apitest.AddSignatures([]byte(e.Checkpoints[0]), other))
		}), vkey, "checkpoint 0 carries 2 signature lines, want only the log's"},
		{"swapped checkpoints", variant(func(e *api.Evidence) {
			e.Checkpoints[0], e.Checkpoints[1] = e.Checkpoints[1], e.Checkpoints[0]
		}), vkey, "the checkpoints are out of order"},
		{"signature re-encoded", variant(func(e *api.Evidence) {
			e.Checkpoints[1] = string(apitest.ReencodeSignatures([]byte(e.Checkpoints[1])))
		}), vkey, "checkpoint 1: the log's signature is not in canonical base64"},
		{"a tile too many", incVariant(func(e *api.Evidence) {
			e.Tiles = append(e.Tiles, tr.tile(t, 0, 1, 256))
		}), incKey, "4 tiles, of which 3 prove the inconsistency"},
		{"tiles out of order", incVariant(func(e *api.Evidence) { slices.Reverse(e.Tiles) }), incKey, "the tiles are out of order"},
	} {
		b, err := tc.ev.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runVerifyEvidenceFile(t, b, "--log-key", tc.key)
		if code != 1 || stdout != "" || !strings.Contains(stderr, "not in canonical form") || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: verify-evidence = %d, %q, %q; want 1 and %q", tc.name, code, stdout, stderr, tc.want)
		}
	}
}

// hashes is an RFC 6962 tree in memory, built with sumdb/tlog.
type hashes []tlog.Hash

func newHashes(t *testing.T, n int) hashes {
	var tr hashes
	for i := range n {
		hs, err := tlog.StoredHashes(int64(i), fmt.Appendf(nil, "leaf %d", i), tr)
		if err != nil {
			t.Fatal(err)
		}
		tr = append(tr, hs...)
	}
	return tr
}

func (tr hashes) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	for i, x := range indexes {
		out[i] = tr[x]
	}
	return out, nil
}

// tile returns the tile of tr at level l, index n, width w.
func (tr hashes) tile(t *testing.T, l int, n int64, w int) api.EvidenceTile {
	data, err := tlog.ReadTileData(tlog.Tile{H: api.TileHeight, L: l, N: n, W: w}, tr)
	if err != nil {
		t.Fatal(err)
	}
	return api.EvidenceTile{Level: l, Index: uint64(n), Width: w, Hashes: data}
}
