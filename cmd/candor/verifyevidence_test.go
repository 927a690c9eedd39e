package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

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

func runVerify(t *testing.T, evidence []byte, args ...string) (int, string, string) {
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
	code, stdout, stderr := runVerify(t, ev, "--log-key", vkey)
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
		if code, stdout, stderr := runVerify(t, b, "--log-key", tc.key); code != 1 || stdout != "" || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: verify-evidence = %d, %q, %q; want 1 and %q", tc.name, code, stdout, stderr, tc.want)
		}
	}
	if code, _, _ := runVerify(t, []byte("{}"), "--log-key", vkey); code != 1 {
		t.Errorf("verify-evidence of {} = %d, want 1", code)
	}
	if code, _, _ := runVerify(t, ev); code != 2 {
		t.Errorf("verify-evidence without --log-key = %d, want 2", code)
	}
}
