package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/transparency-dev/merkle/rfc6962"
	"github.com/transparency-dev/merkle/testonly"
	"golang.org/x/mod/sumdb/note"
)

func testHashes(n int) [][]byte {
	hashes := make([][]byte, n)
	for i := range hashes {
		h := sha256.Sum256([]byte(fmt.Sprint(i)))
		hashes[i] = h[:]
	}
	return hashes
}

const testSignedCheckpoint = testOrigin + "\n5\nSBNJTRN+FjG7owHVrKtue7eqdM4RhdRWVl71HXN2d7I=\n\n— " + testOrigin + " AAAAAAAA\n"

func TestProofBundleMarshal(t *testing.T) {
	p := ProofBundle{
		Extra:      []byte("extra data"),
		Index:      73894,
		Hashes:     testHashes(2),
		Checkpoint: []byte(testSignedCheckpoint),
	}
	want := "c2sp.org/tlog-proof@v1\n" +
		"extra ZXh0cmEgZGF0YQ==\n" +
		"index 73894\n" +
		base64.StdEncoding.EncodeToString(p.Hashes[0]) + "\n" +
		base64.StdEncoding.EncodeToString(p.Hashes[1]) + "\n" +
		"\n" + testSignedCheckpoint
	if got := string(p.Marshal()); got != want {
		t.Errorf("Marshal() = %q, want %q", got, want)
	}
	p.Extra = nil
	p.Hashes = nil
	want = "c2sp.org/tlog-proof@v1\nindex 73894\n\n" + testSignedCheckpoint
	if got := string(p.Marshal()); got != want {
		t.Errorf("Marshal() = %q, want %q", got, want)
	}
}

func TestProofBundleRoundTrip(t *testing.T) {
	for _, p := range []ProofBundle{
		{Index: 0, Checkpoint: []byte("x")},
		{Extra: []byte{0}, Index: 1<<64 - 1, Hashes: testHashes(63), Checkpoint: []byte(testSignedCheckpoint)},
		{Extra: []byte("some context"), Index: 5, Hashes: testHashes(3), Checkpoint: []byte(testSignedCheckpoint)},
		// The checkpoint is verbatim, blank lines and all.
		{Index: 5, Checkpoint: []byte("\n\nanything\n\n")},
	} {
		b := p.Marshal()
		got, err := ParseProofBundle(b)
		if err != nil {
			t.Errorf("ParseProofBundle(%q): %v", b, err)
			continue
		}
		if !reflect.DeepEqual(got, p) {
			t.Errorf("ParseProofBundle(%q) = %+v, want %+v", b, got, p)
		}
	}
}

func TestParseProofBundleRejects(t *testing.T) {
	h := base64.StdEncoding.EncodeToString(testHashes(1)[0]) + "\n"
	const hdr = "c2sp.org/tlog-proof@v1\n"
	const cp = testSignedCheckpoint
	if _, err := ParseProofBundle([]byte(hdr + "extra AA==\nindex 1\n" + h + "\n" + cp)); err != nil {
		t.Fatalf("the valid base case does not parse: %v", err)
	}
	bad := map[string]string{
		"empty":                 "",
		"no header":             "index 1\n\n" + cp,
		"wrong header":          "c2sp.org/tlog-proof@v2\nindex 1\n\n" + cp,
		"header CRLF":           "c2sp.org/tlog-proof@v1\r\nindex 1\n\n" + cp,
		"header only":           hdr,
		"no index":              hdr + "\n" + cp,
		"hash before index":     hdr + h + "index 1\n\n" + cp,
		"index after extra":     hdr + "index 1\nextra AA==\n\n" + cp,
		"two extras":            hdr + "extra AA==\nextra AA==\nindex 1\n\n" + cp,
		"empty extra":           hdr + "extra \nindex 1\n\n" + cp,
		"extra no space":        hdr + "extraAA==\nindex 1\n\n" + cp,
		"extra bad base64":      hdr + "extra !!\nindex 1\n\n" + cp,
		"extra unpadded":        hdr + "extra AA\nindex 1\n\n" + cp,
		"extra non-canonical":   hdr + "extra AB==\nindex 1\n\n" + cp,
		"extra url base64":      hdr + "extra -_-_\nindex 1\n\n" + cp,
		"index no space":        hdr + "index1\n\n" + cp,
		"index two spaces":      hdr + "index  1\n\n" + cp,
		"index empty":           hdr + "index \n\n" + cp,
		"index leading zero":    hdr + "index 01\n\n" + cp,
		"index sign":            hdr + "index +1\n\n" + cp,
		"index overflow":        hdr + "index 18446744073709551616\n\n" + cp,
		"index CR":              hdr + "index 1\r\n\n" + cp,
		"short hash":            hdr + "index 1\nAAAA\n\n" + cp,
		"long hash":             hdr + "index 1\n" + strings.Repeat("A", 48) + "\n\n" + cp,
		"33-byte hash":          hdr + "index 1\n" + strings.Repeat("A", 44) + "\n\n" + cp,
		"hash non-canonical":    hdr + "index 1\nZeGYOfhYoVPs6t7MqtIPZy4UfOuqkrNX8blzwUxm3OJ=\n\n" + cp,
		"hash space":            hdr + "index 1\n " + h + "\n" + cp,
		"64 hashes":             hdr + "index 1\n" + strings.Repeat(h, 64) + "\n" + cp,
		"no blank line":         hdr + "index 1\n" + h,
		"no checkpoint":         hdr + "index 1\n" + h + "\n",
		"no newline after hash": hdr + "index 1\n" + strings.TrimSuffix(h, "\n"),
	}
	for name, s := range bad {
		p, err := ParseProofBundle([]byte(s))
		if err == nil {
			t.Errorf("%s: ParseProofBundle(%q) = %+v, want error", name, s, p)
			continue
		}
		if !errors.Is(err, ErrInvalidProofBundle) {
			t.Errorf("%s: error %v does not wrap ErrInvalidProofBundle", name, err)
		}
	}
}

func TestVerifyProofBundle(t *testing.T) {
	signer, verifier := newTestKey(testOrigin)
	tree := testonly.New(rfc6962.DefaultHasher)
	for i := range 1000 {
		tree.AppendData([]byte(fmt.Sprintf("entry %d", i)))
	}
	bundle := func(t *testing.T, index, size uint64) ProofBundle {
		t.Helper()
		hashes, err := tree.InclusionProof(index, size)
		if err != nil {
			t.Fatal(err)
		}
		c := Checkpoint{Origin: testOrigin, Size: size}
		copy(c.Hash[:], tree.HashAt(size))
		signed, err := SignCheckpoint(c, signer)
		if err != nil {
			t.Fatal(err)
		}
		p := ProofBundle{Extra: []byte("ctx"), Index: index, Hashes: hashes, Checkpoint: signed}
		// Go through the wire format, as a client would.
		p, err = ParseProofBundle(p.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}

	for _, tc := range []struct{ index, size uint64 }{
		{0, 1}, {0, 2}, {1, 2}, {0, 1000}, {999, 1000}, {500, 777}, {255, 256}, {256, 257},
	} {
		p := bundle(t, tc.index, tc.size)
		c, err := VerifyProofBundle(p, tree.LeafHash(tc.index), testOrigin, verifier)
		if err != nil {
			t.Errorf("index %d size %d: %v", tc.index, tc.size, err)
			continue
		}
		if c.Size != tc.size || !bytes.Equal(c.Hash[:], tree.HashAt(tc.size)) {
			t.Errorf("index %d size %d: got checkpoint %+v", tc.index, tc.size, c)
		}
	}

	// A bundle with witness cosignatures still verifies.
	p := bundle(t, 500, 777)
	n, err := note.Open(p.Checkpoint, note.VerifierList(verifier))
	if err != nil {
		t.Fatal(err)
	}
	witness, _ := newTestKey("witness.example")
	if p.Checkpoint, err = note.Sign(n, witness); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyProofBundle(p, tree.LeafHash(500), testOrigin, verifier); err != nil {
		t.Errorf("with a cosignature: %v", err)
	}

	_, otherVerifier := newTestKey(testOrigin)
	flip := func(b []byte, i int) []byte {
		b = bytes.Clone(b)
		b[i] ^= 1
		return b
	}
	tests := []struct {
		name     string
		mutate   func(p *ProofBundle) (leaf []byte, v note.Verifier, origin string)
		badProof bool // wraps ErrInvalidProofBundle
	}{
		{"wrong leaf", func(p *ProofBundle) ([]byte, note.Verifier, string) {
			return tree.LeafHash(501), verifier, testOrigin
		}, true},
		{"flipped leaf", func(p *ProofBundle) ([]byte, note.Verifier, string) {
			return flip(tree.LeafHash(500), 0), verifier, testOrigin
		}, true},
		{"short leaf", func(p *ProofBundle) ([]byte, note.Verifier, string) {
			return tree.LeafHash(500)[1:], verifier, testOrigin
		}, false},
		{"wrong index", func(p *ProofBundle) ([]byte, note.Verifier, string) {
			p.Index = 501
			return tree.LeafHash(500), verifier, testOrigin
		}, true},
		{"index beyond size", func(p *ProofBundle) ([]byte, note.Verifier, string) {
			p.Index = 777
			return tree.LeafHash(500), verifier, testOrigin
		}, true},
		{"flipped proof hash", func(p *ProofBundle) ([]byte, note.Verifier, string) {
			p.Hashes[3] = flip(p.Hashes[3], 31)
			return tree.LeafHash(500), verifier, testOrigin
		}, true},
		{"missing proof hash", func(p *ProofBundle) ([]byte, note.Verifier, string) {
			p.Hashes = p.Hashes[:len(p.Hashes)-1]
			return tree.LeafHash(500), verifier, testOrigin
		}, true},
		{"extra proof hash", func(p *ProofBundle) ([]byte, note.Verifier, string) {
			p.Hashes = append(p.Hashes, p.Hashes[0])
			return tree.LeafHash(500), verifier, testOrigin
		}, true},
		{"tampered checkpoint size", func(p *ProofBundle) ([]byte, note.Verifier, string) {
			p.Checkpoint = bytes.Replace(p.Checkpoint, []byte("\n777\n"), []byte("\n778\n"), 1)
			return tree.LeafHash(500), verifier, testOrigin
		}, false},
		{"other log key", func(p *ProofBundle) ([]byte, note.Verifier, string) {
			return tree.LeafHash(500), otherVerifier, testOrigin
		}, false},
		{"other origin", func(p *ProofBundle) ([]byte, note.Verifier, string) {
			return tree.LeafHash(500), verifier, "example.com/other"
		}, false},
		{"checkpoint of another tree", func(p *ProofBundle) ([]byte, note.Verifier, string) {
			p.Checkpoint = bundle(t, 500, 778).Checkpoint
			return tree.LeafHash(500), verifier, testOrigin
		}, true},
	}
	for _, tt := range tests {
		p := bundle(t, 500, 777)
		leaf, v, origin := tt.mutate(&p)
		c, err := VerifyProofBundle(p, leaf, origin, v)
		if err == nil {
			t.Errorf("%s: VerifyProofBundle = %+v, want error", tt.name, c)
			continue
		}
		if got := errors.Is(err, ErrInvalidProofBundle); got != tt.badProof {
			t.Errorf("%s: errors.Is(%v, ErrInvalidProofBundle) = %v, want %v", tt.name, err, got, tt.badProof)
		}
	}
}

func FuzzParseProofBundle(f *testing.F) {
	f.Add(ProofBundle{Index: 0, Checkpoint: []byte("x")}.Marshal())
	f.Add(ProofBundle{Extra: []byte("ctx"), Index: 73894, Hashes: testHashes(3), Checkpoint: []byte(testSignedCheckpoint)}.Marshal())
	f.Add([]byte("c2sp.org/tlog-proof@v1\nextra \nindex 01\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseProofBundle(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidProofBundle) {
				t.Fatalf("error %v does not wrap ErrInvalidProofBundle", err)
			}
			return
		}
		if got := p.Marshal(); !bytes.Equal(got, b) {
			t.Fatalf("ParseProofBundle(%q) = %+v, which marshals to %q", b, p, got)
		}
		if len(p.Hashes) > maxProofHashes || len(p.Checkpoint) == 0 {
			t.Fatalf("ParseProofBundle(%q) = %+v, out of range", b, p)
		}
		for _, h := range p.Hashes {
			if len(h) != HashSize {
				t.Fatalf("hash of %d bytes", len(h))
			}
		}
	})
}
