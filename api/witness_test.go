package api

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
)

// exampleAddCheckpoint is an add-checkpoint request body: four proof
// lines and a checkpoint signed by two keys of the log.
const exampleAddCheckpoint = "old 4815162000\n" +
	"f4So7t42Cdz+bncFzwxWpPNpvccj+WNuyjOCu4VfuVU=\n" +
	"/X6T7xilsF4lKNW1yDqsfDz7Oxj4gNtebH/InZdSGEs=\n" +
	"KjmnRyLzg4n2BnYf7J1Fokik8/E4SGwsl7/31ED5EME=\n" +
	"/3CBPpAZZCOafZA/02Ar96Whhg36rMAQ8l5gGhKV9aA=\n" +
	"\n" +
	exampleCheckpoint +
	"\n" +
	"— example.com/candor-log M0b1jJ5CRkX769JWDicCbz6z5kg7DPJSzrNK7g7ykRJzHWQrQAzYqeMHAwyBFS8f1fbWilxNhfOuEW0PZ4vqmSfgrQs=\n" +
	"— example.com/candor-log 2xDSNyT9UPbvL6RhFNDjuxyoC5rsfaWnFD0X6KkNQSPPWOre4pB7vdX5fzwFdMqVDhCXlxmRLnx9hELMPQQNyDLBrAk=\n"

// exampleCosignatureResponse is an add-checkpoint response body: two
// cosignatures by keys named witness.example/w1 and one by
// witness.example/w2, of exampleCheckpoint.
const exampleCosignatureResponse = "— witness.example/w1 782ADAAAAABlU/EAq/oEyictOwNsjN//khwaT9tU53VPoEy8x73k9874/XT51KByCQ1cOLofMDhWGeo4fNixgA0zVZ1KDd0DpuKKBA==\n" +
	"— witness.example/w1 FRVVzAAAAABlU/EAiS/dg13fLc7cLbm9QD0sQ26Zospm6JsjZJV/x7hVuDYEmCNIDL7D2MkjmgEDY85cLxUG8iPMQrueyXn1xud5Aw==\n" +
	"— witness.example/w2 OMREDQAAAABlU/EAnPoA+3RUXpf2jZ8pLTAyLnwTVFbXRjaqn8I3TNEtPAo8J28WLpKlpjA0aLGqI4A6AaC0Kk0Wx+aWaf5Gac01Bw==\n"

func TestParseAddCheckpointExample(t *testing.T) {
	r, err := ParseAddCheckpointRequest([]byte(exampleAddCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	if r.OldSize != 4815162000 || len(r.Proof) != 4 {
		t.Errorf("OldSize %d, %d proof hashes", r.OldSize, len(r.Proof))
	}
	if got := base64.StdEncoding.EncodeToString(r.Proof[3]); got != "/3CBPpAZZCOafZA/02Ar96Whhg36rMAQ8l5gGhKV9aA=" {
		t.Errorf("last proof hash %s", got)
	}
	if !strings.HasPrefix(string(r.Checkpoint), exampleCheckpoint+"\n— ") || !strings.HasSuffix(exampleAddCheckpoint, string(r.Checkpoint)) {
		t.Errorf("checkpoint %q", r.Checkpoint)
	}
	if got := r.Marshal(); string(got) != exampleAddCheckpoint {
		t.Errorf("Marshal() = %q, want the input", got)
	}
	body, err := CheckpointBody(r.Checkpoint)
	if err != nil || string(body) != exampleCheckpoint {
		t.Errorf("CheckpointBody = %q, %v", body, err)
	}
}

func TestAddCheckpointRequestRoundTrip(t *testing.T) {
	for _, r := range []AddCheckpointRequest{
		{OldSize: 0, Checkpoint: []byte("x")},
		{OldSize: 1<<64 - 1, Proof: testHashes(63), Checkpoint: []byte(testSignedCheckpoint)},
		{OldSize: 5, Proof: testHashes(1), Checkpoint: []byte("\n\n\n")},
	} {
		b := r.Marshal()
		got, err := ParseAddCheckpointRequest(b)
		if err != nil {
			t.Errorf("ParseAddCheckpointRequest(%q): %v", b, err)
			continue
		}
		if !reflect.DeepEqual(got, r) {
			t.Errorf("ParseAddCheckpointRequest(%q) = %+v, want %+v", b, got, r)
		}
	}
}

func TestParseAddCheckpointRequestRejects(t *testing.T) {
	h := base64.StdEncoding.EncodeToString(testHashes(1)[0])
	bad := map[string]string{
		"empty":               "",
		"no old line":         h + "\n\n" + testSignedCheckpoint,
		"no newline":          "old 1",
		"old only":            "old 1\n",
		"old and blank only":  "old 1\n\n",
		"old without size":    "old \n\n" + testSignedCheckpoint,
		"old leading zero":    "old 01\n\n" + testSignedCheckpoint,
		"old zero zero":       "old 00\n\n" + testSignedCheckpoint,
		"old negative":        "old -1\n\n" + testSignedCheckpoint,
		"old plus":            "old +1\n\n" + testSignedCheckpoint,
		"old overflows":       "old 18446744073709551616\n\n" + testSignedCheckpoint,
		"old two spaces":      "old  1\n\n" + testSignedCheckpoint,
		"old tab":             "old\t1\n\n" + testSignedCheckpoint,
		"old CR":              "old 1\r\n\r\n" + testSignedCheckpoint,
		"Old":                 "Old 1\n\n" + testSignedCheckpoint,
		"old trailing":        "old 1 \n\n" + testSignedCheckpoint,
		"short hash":          "old 1\n" + base64.StdEncoding.EncodeToString(make([]byte, 31)) + "\n\n" + testSignedCheckpoint,
		"long hash":           "old 1\n" + base64.StdEncoding.EncodeToString(make([]byte, 33)) + "\n\n" + testSignedCheckpoint,
		"unpadded hash":       "old 1\n" + strings.TrimRight(h, "=") + "\n\n" + testSignedCheckpoint,
		"non-canonical hash":  "old 1\n" + h[:42] + "B=\n\n" + testSignedCheckpoint,
		"URL base64 hash":     "old 1\n" + base64.URLEncoding.EncodeToString(bytes.Repeat([]byte{0xfb}, 32)) + "\n\n" + testSignedCheckpoint,
		"hash with space":     "old 1\n" + h + " \n\n" + testSignedCheckpoint,
		"64 hashes":           string(AddCheckpointRequest{OldSize: 1, Proof: testHashes(64), Checkpoint: []byte("x")}.Marshal()),
		"missing blank line":  "old 1\n" + h + "\n",
		"missing checkpoint":  "old 1\n" + h + "\n\n",
		"checkpoint not kept": "old 1\n" + testSignedCheckpoint,
	}
	if _, err := ParseAddCheckpointRequest([]byte("old 1\n" + h + "\n\n" + testSignedCheckpoint)); err != nil {
		t.Fatalf("the valid base case does not parse: %v", err)
	}
	for name, s := range bad {
		r, err := ParseAddCheckpointRequest([]byte(s))
		if err == nil {
			t.Errorf("%s: ParseAddCheckpointRequest(%q) = %+v, want error", name, s, r)
			continue
		}
		if !errors.Is(err, ErrInvalidAddCheckpoint) {
			t.Errorf("%s: error %v does not wrap ErrInvalidAddCheckpoint", name, err)
		}
	}
}

func TestTlogSize(t *testing.T) {
	for _, size := range []uint64{0, 1, 20852163, 1<<64 - 1} {
		b := MarshalTlogSize(size)
		if want := []byte(strings.TrimSpace(string(b)) + "\n"); !bytes.Equal(b, want) {
			t.Errorf("MarshalTlogSize(%d) = %q", size, b)
		}
		got, err := ParseTlogSize(b)
		if err != nil || got != size {
			t.Errorf("ParseTlogSize(%q) = %d, %v, want %d", b, got, err, size)
		}
	}
	if got := string(MarshalTlogSize(20852163)); got != "20852163\n" {
		t.Errorf("MarshalTlogSize(20852163) = %q", got)
	}
	for _, s := range []string{"", "\n", "1", "01\n", "1\n\n", " 1\n", "1 \n", "1\r\n", "-1\n", "+1\n", "0x1\n", "18446744073709551616\n"} {
		if got, err := ParseTlogSize([]byte(s)); !errors.Is(err, ErrInvalidWitnessResponse) {
			t.Errorf("ParseTlogSize(%q) = %d, %v, want ErrInvalidWitnessResponse", s, got, err)
		}
	}
}

func TestParseCosignatureLinesExample(t *testing.T) {
	sigs, err := ParseCosignatureLines([]byte(exampleCosignatureResponse))
	if err != nil {
		t.Fatal(err)
	}
	want := []note.Signature{
		{Name: "witness.example/w1", Hash: 0xefcd800c, Base64: "782ADAAAAABlU/EAq/oEyictOwNsjN//khwaT9tU53VPoEy8x73k9874/XT51KByCQ1cOLofMDhWGeo4fNixgA0zVZ1KDd0DpuKKBA=="},
		{Name: "witness.example/w1", Hash: 0x151555cc, Base64: "FRVVzAAAAABlU/EAiS/dg13fLc7cLbm9QD0sQ26Zospm6JsjZJV/x7hVuDYEmCNIDL7D2MkjmgEDY85cLxUG8iPMQrueyXn1xud5Aw=="},
		{Name: "witness.example/w2", Hash: 0x38c4440d, Base64: "OMREDQAAAABlU/EAnPoA+3RUXpf2jZ8pLTAyLnwTVFbXRjaqn8I3TNEtPAo8J28WLpKlpjA0aLGqI4A6AaC0Kk0Wx+aWaf5Gac01Bw=="},
	}
	if !reflect.DeepEqual(sigs, want) {
		t.Errorf("ParseCosignatureLines = %+v, want %+v", sigs, want)
	}
	if got := MarshalCosignatureLines(sigs); string(got) != exampleCosignatureResponse {
		t.Errorf("MarshalCosignatureLines = %q, want the input", got)
	}
	// Append the lines to the checkpoint and open the result, as
	// c2sp.org/tlog-witness suggests clients do.
	r, err := ParseAddCheckpointRequest([]byte(exampleAddCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	merged, err := AppendSignatures(r.Checkpoint, []byte(exampleCosignatureResponse))
	if err != nil {
		t.Fatal(err)
	}
	// Both of the log's signatures and the three lines by distinct keys.
	n, err := note.Open(merged, note.VerifierList())
	var unverified *note.UnverifiedNoteError
	if !errors.As(err, &unverified) {
		t.Fatalf("note.Open = %+v, %v", n, err)
	}
	if n := unverified.Note; n.Text != exampleCheckpoint || len(n.UnverifiedSigs) != 5 {
		t.Errorf("merged note %+v", n)
	}
}

func TestParseCosignatureLinesRejects(t *testing.T) {
	const b64 = "BHWLrwAAAABlU/EA3iUk4j67TBObRyfo1GWNjeva/JjkTOzUfc69P5xRCWJyyhOy1s8oTW6kzmeypt58Sv5giz+bqJCQXq9409cSDw=="
	good := "— w " + b64 + "\n"
	bad := map[string]string{
		"empty":               "",
		"no newline":          strings.TrimSuffix(good, "\n"),
		"blank line":          good + "\n",
		"leading blank line":  "\n" + good,
		"hyphen":              "- w " + b64 + "\n",
		"en dash":             "– w " + b64 + "\n",
		"no space after dash": "—w " + b64 + "\n",
		"two spaces":          "—  w " + b64 + "\n",
		"no name":             "— " + b64 + "\n",
		"empty name":          "—  " + b64 + "\n",
		"plus in name":        "— w+x " + b64 + "\n",
		"NBSP in name":        "— w\u00a0x " + b64 + "\n",
		"control in name":     "— w\x01x " + b64 + "\n",
		"invalid UTF-8":       "— w\xff " + b64 + "\n",
		"no signature":        "— w\n",
		"empty signature":     "— w \n",
		"trailing space":      "— w " + b64 + " \n",
		"CRLF":                "— w " + b64 + "\r\n",
		"short signature":     "— w AAAAAA==\n",
		"unpadded":            "— w " + strings.TrimRight(b64, "=") + "\n",
		"non-canonical":       "— w " + b64[:len(b64)-3] + "B==\n",
		"not base64":          "— w !" + b64[1:] + "\n",
		"one bad of two":      good + "— w x\n",
		"101 lines":           strings.Repeat(good, 101),
	}
	if _, err := ParseCosignatureLines([]byte(good + "— w AAAAAAA=\n")); err != nil {
		t.Fatalf("the valid base case does not parse: %v", err)
	}
	if _, err := ParseCosignatureLines([]byte(strings.Repeat(good, 100))); err != nil {
		t.Fatalf("100 lines do not parse: %v", err)
	}
	for name, s := range bad {
		sigs, err := ParseCosignatureLines([]byte(s))
		if err == nil {
			t.Errorf("%s: ParseCosignatureLines(%q) = %+v, want error", name, s, sigs)
			continue
		}
		if !errors.Is(err, ErrInvalidWitnessResponse) {
			t.Errorf("%s: error %v does not wrap ErrInvalidWitnessResponse", name, err)
		}
	}
}

// TestWitnessFlow goes through a tlog-witness exchange: the log sends its
// checkpoint, each witness replies with its cosignature line, and the log
// adds them to its checkpoint.
func TestWitnessFlow(t *testing.T) {
	logSigner, logVerifier := newTestKey(testOrigin)
	w1, v1 := newTestCosigner(t, "w1.example", 1)
	w2, v2 := newTestCosigner(t, "w2.example", 2)
	c := Checkpoint{Origin: testOrigin, Size: 9, Hash: sha256.Sum256([]byte("root"))}
	signed, err := SignCheckpoint(c, logSigner)
	if err != nil {
		t.Fatal(err)
	}
	req := AddCheckpointRequest{OldSize: 0, Checkpoint: signed}.Marshal()

	// The witnesses.
	var replies [][]byte
	for _, w := range []*Cosigner{w1, w2} {
		r, err := ParseAddCheckpointRequest(req)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := OpenCheckpoint(r.Checkpoint, testOrigin, logVerifier); err != nil {
			t.Fatal(err)
		}
		text, err := CheckpointBody(r.Checkpoint)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := NoteSignature(w, text)
		if err != nil {
			t.Fatal(err)
		}
		replies = append(replies, MarshalCosignatureLines([]note.Signature{sig}))
	}

	// The log.
	cosigned := signed
	for i, reply := range replies {
		sigs, err := ParseCosignatureLines(reply)
		if err != nil {
			t.Fatal(err)
		}
		// Verify before adding.
		for _, s := range sigs {
			raw, _ := base64.StdEncoding.DecodeString(s.Base64)
			if !([]*CosignatureVerifier{v1, v2}[i]).Verify(c.Marshal(), raw[4:]) {
				t.Fatalf("reply %d does not verify", i)
			}
		}
		if cosigned, err = AppendSignatures(cosigned, reply); err != nil {
			t.Fatal(err)
		}
	}
	n, err := note.Open(cosigned, note.VerifierList(logVerifier, v1, v2))
	if err != nil {
		t.Fatal(err)
	}
	if n.Text != string(c.Marshal()) || len(n.Sigs) != 3 || n.Sigs[0].Name != testOrigin || n.Sigs[1].Name != "w1.example" || n.Sigs[2].Name != "w2.example" {
		t.Errorf("cosigned note %+v", n)
	}
	// What note.Sign would have made.
	want, err := note.Sign(&note.Note{Text: string(c.Marshal())}, logSigner, w1, w2)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cosigned, want) {
		t.Errorf("cosigned note\n%s\nwant\n%s", cosigned, want)
	}

	// Adding the same replies again changes nothing.
	again := cosigned
	for _, reply := range replies {
		if again, err = AppendSignatures(again, reply); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(again, cosigned) {
		t.Errorf("adding the same cosignatures again gave\n%s", again)
	}
	// A later cosignature by the same witness is left out: the first one
	// stays.
	later, err := NewCosigner(mustCosignerKey(t, "w1.example", 1), fixedClock(cosignTime+60))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := NoteSignature(later, c.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	again, err = AppendSignatures(cosigned, MarshalCosignatureLines([]note.Signature{sig}))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, cosigned) {
		t.Errorf("adding a second cosignature by w1 gave\n%s", again)
	}
}

func mustCosignerKey(t testing.TB, name string, seed byte) string {
	t.Helper()
	skey, _, err := GenerateCosignerKey(seedReader(seed), name)
	if err != nil {
		t.Fatal(err)
	}
	return skey
}

func TestNoteSignatureMatchesNoteSign(t *testing.T) {
	logSigner, _ := newTestKey(testOrigin)
	w, _ := newTestCosigner(t, "w.example", 1)
	text := []byte(exampleCheckpoint)
	for _, s := range []note.Signer{logSigner, w} {
		sig, err := NoteSignature(s, text)
		if err != nil {
			t.Fatal(err)
		}
		signed, err := note.Sign(&note.Note{Text: string(text)}, s)
		if err != nil {
			t.Fatal(err)
		}
		if want := append(append([]byte(exampleCheckpoint), '\n'), MarshalCosignatureLines([]note.Signature{sig})...); !bytes.Equal(signed, want) {
			t.Errorf("note.Sign = %q, NoteSignature gives %q", signed, want)
		}
	}
	if _, err := NoteSignature(w, []byte("no newline")); err == nil {
		t.Error("NoteSignature of a text without a final newline succeeded")
	}
	if _, err := NoteSignature(nameSigner{w, "bad name"}, text); err == nil {
		t.Error("NoteSignature with an invalid key name succeeded")
	}
	if _, err := NoteSignature(w, []byte("not a checkpoint\n")); !errors.Is(err, ErrInvalidCheckpoint) {
		t.Errorf("NoteSignature of a non-checkpoint with a Cosigner: %v", err)
	}
}

func TestAppendSignaturesRejects(t *testing.T) {
	line := "— w AAAAAAA=\n"
	bad := []struct {
		name          string
		signed, lines string
		checkpoint    bool // wraps ErrInvalidCheckpoint, else ErrInvalidWitnessResponse
	}{
		{"unsigned note", exampleCheckpoint, line, true},
		{"no signatures", exampleCheckpoint + "\n", line, true},
		{"bad log line", exampleCheckpoint + "\n— o !\n", line, true},
		{"no final newline", strings.TrimSuffix(testSignedCheckpoint, "\n"), line, true},
		{"control character", "a\x01\n\n" + line, line, true},
		{"empty note", "", line, true},
		{"no lines", testSignedCheckpoint, "", false},
		{"bad line", testSignedCheckpoint, "— w\n", false},
		{"line without newline", testSignedCheckpoint, strings.TrimSuffix(line, "\n"), false},
		{"too many", testSignedCheckpoint, manyLines(100), false},
	}
	for _, tt := range bad {
		got, err := AppendSignatures([]byte(tt.signed), []byte(tt.lines))
		if err == nil {
			t.Errorf("%s: AppendSignatures = %q, want error", tt.name, got)
			continue
		}
		if tt.checkpoint && !errors.Is(err, ErrInvalidCheckpoint) || !tt.checkpoint && !errors.Is(err, ErrInvalidWitnessResponse) {
			t.Errorf("%s: error %v wraps the wrong sentinel", tt.name, err)
		}
	}
	// 99 lines by distinct keys, and the log's, make 100: allowed.
	got, err := AppendSignatures([]byte(testSignedCheckpoint), []byte(manyLines(99)))
	if err != nil {
		t.Fatal(err)
	}
	var unverified *note.UnverifiedNoteError
	if _, err := note.Open(got, note.VerifierList()); !errors.As(err, &unverified) || len(unverified.Note.UnverifiedSigs) != 100 {
		t.Errorf("note.Open of 100 signatures: %v", err)
	}
}

// manyLines returns n signature lines by distinct keys.
func manyLines(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString("— w" + strings.Repeat("x", i) + " AAAAAAA=\n")
	}
	return b.String()
}

func TestCheckpointBody(t *testing.T) {
	for signed, want := range map[string]string{
		testSignedCheckpoint:                testOrigin + "\n5\nSBNJTRN+FjG7owHVrKtue7eqdM4RhdRWVl71HXN2d7I=\n",
		"a\n\nb\n\n— w AAAAAAA=\n":          "a\n\nb\n",
		"\n\n— w AAAAAAA=\n— v AAAAAAA=\n":  "\n",
		"x\n\n— w AAAAAAA=\n— w AAAAAAA=\n": "x\n",
	} {
		got, err := CheckpointBody([]byte(signed))
		if err != nil || string(got) != want {
			t.Errorf("CheckpointBody(%q) = %q, %v, want %q", signed, got, err, want)
		}
	}
	for _, signed := range []string{"", "\n", "\n\n", "a\n", "a\n\n— w AAAAAAA=", "a\n\n— w AAAAAAA=\n\n", "a\n\nb\n"} {
		if got, err := CheckpointBody([]byte(signed)); !errors.Is(err, ErrInvalidCheckpoint) {
			t.Errorf("CheckpointBody(%q) = %q, %v, want ErrInvalidCheckpoint", signed, got, err)
		}
	}
}

func FuzzParseAddCheckpointRequest(f *testing.F) {
	f.Add([]byte(exampleAddCheckpoint))
	f.Add(AddCheckpointRequest{Checkpoint: []byte("x")}.Marshal())
	f.Add(AddCheckpointRequest{OldSize: 3, Proof: testHashes(2), Checkpoint: []byte(testSignedCheckpoint)}.Marshal())
	f.Add([]byte("old 01\nAAAA\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseAddCheckpointRequest(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidAddCheckpoint) {
				t.Fatalf("error %v does not wrap ErrInvalidAddCheckpoint", err)
			}
			return
		}
		if got := r.Marshal(); !bytes.Equal(got, b) {
			t.Fatalf("ParseAddCheckpointRequest(%q) = %+v, which marshals to %q", b, r, got)
		}
		if len(r.Proof) > maxProofHashes || len(r.Checkpoint) == 0 {
			t.Fatalf("ParseAddCheckpointRequest(%q) = %+v, out of range", b, r)
		}
		for _, h := range r.Proof {
			if len(h) != HashSize {
				t.Fatalf("proof hash of %d bytes", len(h))
			}
		}
	})
}

func FuzzParseCosignatureLines(f *testing.F) {
	f.Add([]byte(exampleCosignatureResponse))
	f.Add([]byte(exampleCosignatureLine))
	f.Add([]byte("— w AAAAAAA=\n— w+ AAAAAA==\n"))
	f.Add([]byte("— w\u00a0 AAAAAAA=\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		sigs, err := ParseCosignatureLines(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidWitnessResponse) {
				t.Fatalf("error %v does not wrap ErrInvalidWitnessResponse", err)
			}
			return
		}
		if got := MarshalCosignatureLines(sigs); !bytes.Equal(got, b) {
			t.Fatalf("ParseCosignatureLines(%q) = %+v, which marshals to %q", b, sigs, got)
		}
		if len(sigs) == 0 || len(sigs) > maxNoteSignatures {
			t.Fatalf("ParseCosignatureLines(%q) = %d signatures", b, len(sigs))
		}
		// What parses as cosignature lines makes a note that note.Open
		// parses, with the same signatures.
		signed := append([]byte("text\n\n"), b...)
		_, err = note.Open(signed, note.VerifierList())
		var unverified *note.UnverifiedNoteError
		if !errors.As(err, &unverified) {
			t.Fatalf("note.Open(%q): %v, want an UnverifiedNoteError", signed, err)
		}
		for _, s := range unverified.Note.UnverifiedSigs {
			found := false
			for _, p := range sigs {
				found = found || p == s
			}
			if !found {
				t.Fatalf("note.Open found %+v, which ParseCosignatureLines did not", s)
			}
		}
		// AppendSignatures to a note keeps its text.
		merged, err := AppendSignatures([]byte(testSignedCheckpoint), b)
		if err != nil {
			if !errors.Is(err, ErrInvalidWitnessResponse) {
				t.Fatalf("AppendSignatures: %v", err)
			}
			return
		}
		text, err := CheckpointBody(merged)
		if err != nil || !strings.HasPrefix(testSignedCheckpoint, string(text)+"\n") {
			t.Fatalf("AppendSignatures(%q) = %q, whose text is %q, %v", b, merged, text, err)
		}
	})
}
