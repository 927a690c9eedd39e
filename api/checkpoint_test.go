package api

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"reflect"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api/apitest"
)

const testOrigin = "example.com/candor-test"

// newTestKey returns a signer and verifier for a freshly generated Ed25519
// note key named name.
func newTestKey(name string) (note.Signer, note.Verifier) {
	s, v, _ := apitest.NewNoteKey(name, rand.Reader)
	return s, v
}

func TestCheckpointMarshal(t *testing.T) {
	c := Checkpoint{
		Origin: testOrigin,
		Size:   20852163,
		Hash:   sha256.Sum256([]byte("root")),
	}
	want := testOrigin + "\n20852163\n" + "SBNJTRN+FjG7owHVrKtue7eqdM4RhdRWVl71HXN2d7I=\n"
	if got := string(c.Marshal()); got != want {
		t.Errorf("Marshal() = %q, want %q", got, want)
	}
	c.Extensions = []string{"ext one", "ext two"}
	want += "ext one\next two\n"
	if got := string(c.Marshal()); got != want {
		t.Errorf("Marshal() = %q, want %q", got, want)
	}
}

func TestCheckpointRoundTrip(t *testing.T) {
	for _, c := range []Checkpoint{
		{Origin: testOrigin},
		{Origin: "o", Size: 1, Hash: sha256.Sum256(nil)},
		{Origin: "a b+c", Size: 1<<64 - 1, Hash: sha256.Sum256([]byte("x"))},
		{Origin: testOrigin, Size: 70000, Hash: sha256.Sum256([]byte("y")), Extensions: []string{"a", " ", "c"}},
	} {
		b := c.Marshal()
		got, err := ParseCheckpoint(b)
		if err != nil {
			t.Errorf("ParseCheckpoint(%q): %v", b, err)
			continue
		}
		if !reflect.DeepEqual(got, c) {
			t.Errorf("ParseCheckpoint(%q) = %+v, want %+v", b, got, c)
		}
	}
}

func TestParseCheckpointRejects(t *testing.T) {
	const h = "ZeGYOfhYoVPs6t7MqtIPZy4UfOuqkrNX8blzwUxm3OI="
	bad := map[string]string{
		"empty":                "",
		"no final newline":     "o\n1\n" + h,
		"two lines":            "o\n1\n",
		"empty origin":         "\n1\n" + h + "\n",
		"empty size":           "o\n\n" + h + "\n",
		"leading zero":         "o\n01\n" + h + "\n",
		"zero zero":            "o\n00\n" + h + "\n",
		"plus sign":            "o\n+1\n" + h + "\n",
		"minus sign":           "o\n-1\n" + h + "\n",
		"space in size":        "o\n 1\n" + h + "\n",
		"hex size":             "o\n0x1\n" + h + "\n",
		"size overflows":       "o\n18446744073709551616\n" + h + "\n",
		"empty hash":           "o\n1\n\n",
		"short hash":           "o\n1\nZeGYOfhYoVPs6t7MqtIPZy4UfOuqkrNX8blzwUxm3O==\n",
		"long hash":            "o\n1\n" + h + "AAAA\n",
		"33-byte hash":         "o\n1\n" + strings.Repeat("A", 44) + "\n",
		"unpadded hash":        "o\n1\nZeGYOfhYoVPs6t7MqtIPZy4UfOuqkrNX8blzwUxm3OI\n",
		"url base64":           "o\n1\nZeGYOfhYoVPs6t7MqtIPZy4UfOuqkrNX8blzwUxm3O-=\n",
		"non-canonical bits":   "o\n1\nZeGYOfhYoVPs6t7MqtIPZy4UfOuqkrNX8blzwUxm3OJ=\n",
		"carriage return hash": "o\n1\nZeGYOfhYoVPs6t7MqtIPZy4UfOuqkrNX8blzwUxm3O\rI=\n",
		"CRLF":                 "o\r\n1\r\n" + h + "\r\n",
		"size CR":              "o\n1\r\n" + h + "\n",
		"empty extension":      "o\n1\n" + h + "\n\n",
		"empty extension mid":  "o\n1\n" + h + "\na\n\nb\n",
		"note with signature":  "o\n1\n" + h + "\n\n— o AAAA\n",
	}
	if _, err := ParseCheckpoint([]byte("o\n1\n" + h + "\n")); err != nil {
		t.Fatalf("the valid base case does not parse: %v", err)
	}
	for name, s := range bad {
		c, err := ParseCheckpoint([]byte(s))
		if err == nil {
			t.Errorf("%s: ParseCheckpoint(%q) = %+v, want error", name, s, c)
			continue
		}
		if !errors.Is(err, ErrInvalidCheckpoint) {
			t.Errorf("%s: error %v does not wrap ErrInvalidCheckpoint", name, err)
		}
	}
}

func TestSignOpenCheckpoint(t *testing.T) {
	signer, verifier := newTestKey(testOrigin)
	c := Checkpoint{Origin: testOrigin, Size: 42, Hash: sha256.Sum256([]byte("root")), Extensions: []string{"ext"}}
	signed, err := SignCheckpoint(c, signer)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(signed, append(c.Marshal(), "\n— "+testOrigin+" "...)) {
		t.Errorf("signed checkpoint %q does not start with its body and the log's signature", signed)
	}
	got, n, err := OpenCheckpoint(signed, testOrigin, verifier)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("OpenCheckpoint = %+v, want %+v", got, c)
	}
	if len(n.Sigs) != 1 || n.Sigs[0].Name != testOrigin || len(n.UnverifiedSigs) != 0 {
		t.Errorf("note signatures: verified %+v, unverified %+v", n.Sigs, n.UnverifiedSigs)
	}

	// A witness cosignature, unknown to OpenCheckpoint, is kept unverified.
	witness, _ := newTestKey("witness.example")
	cosigned, err := note.Sign(n, witness)
	if err != nil {
		t.Fatal(err)
	}
	got, n, err = OpenCheckpoint(cosigned, testOrigin, verifier)
	if err != nil {
		t.Fatalf("OpenCheckpoint with a witness cosignature: %v", err)
	}
	if !reflect.DeepEqual(got, c) {
		t.Errorf("OpenCheckpoint = %+v, want %+v", got, c)
	}
	if len(n.Sigs) != 1 || len(n.UnverifiedSigs) != 1 || n.UnverifiedSigs[0].Name != "witness.example" {
		t.Errorf("note signatures: verified %+v, unverified %+v", n.Sigs, n.UnverifiedSigs)
	}
}

func TestSignCheckpointRejects(t *testing.T) {
	signer, _ := newTestKey(testOrigin)
	for name, c := range map[string]Checkpoint{
		"other origin":         {Origin: "example.com/other"},
		"empty extension":      {Origin: testOrigin, Extensions: []string{""}},
		"newline in extension": {Origin: testOrigin, Extensions: []string{"a\nb"}},
	} {
		if signed, err := SignCheckpoint(c, signer); err == nil {
			t.Errorf("%s: SignCheckpoint = %q, want error", name, signed)
		}
	}
	spaced, _ := newTestKey("x")
	c := Checkpoint{Origin: "x\ny"}
	if signed, err := SignCheckpoint(c, nameSigner{spaced, c.Origin}); err == nil {
		t.Errorf("SignCheckpoint with a newline in the origin = %q, want error", signed)
	}
}

// nameSigner is a note.Signer with a different name, to sign what a
// well-behaved signer would not.
type nameSigner struct {
	note.Signer
	name string
}

func (s nameSigner) Name() string { return s.name }

func TestOpenCheckpointRejects(t *testing.T) {
	signer, verifier := newTestKey(testOrigin)
	c := Checkpoint{Origin: testOrigin, Size: 42, Hash: sha256.Sum256([]byte("root"))}
	signed, err := SignCheckpoint(c, signer)
	if err != nil {
		t.Fatal(err)
	}
	_, otherVerifier := newTestKey(testOrigin)
	_, otherNameVerifier := newTestKey("example.com/other")
	witness, _ := newTestKey("witness.example")
	witnessOnly, err := note.Sign(&note.Note{Text: string(c.Marshal())}, witness)
	if err != nil {
		t.Fatal(err)
	}
	tampered := bytes.Replace(signed, []byte("\n42\n"), []byte("\n43\n"), 1)
	// The log signs a body that is not a checkpoint, or a checkpoint for
	// another origin.
	notCheckpoint, err := note.Sign(&note.Note{Text: "hello\n"}, signer)
	if err != nil {
		t.Fatal(err)
	}
	otherOrigin, err := note.Sign(&note.Note{Text: string(Checkpoint{Origin: "example.com/other"}.Marshal())}, signer)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		signed   []byte
		origin   string
		v        note.Verifier
		invalid  bool // wraps ErrInvalidCheckpoint
		unsigned bool // wraps a note signature error
	}{
		{"other key", signed, testOrigin, otherVerifier, false, true},
		{"verifier name is not origin", signed, testOrigin, otherNameVerifier, false, false},
		{"wrong origin", signed, "example.com/other", otherNameVerifier, false, true},
		{"witness signature only", witnessOnly, testOrigin, verifier, false, true},
		{"tampered size", tampered, testOrigin, verifier, false, true},
		{"unsigned body", c.Marshal(), testOrigin, verifier, true, false},
		{"empty", nil, testOrigin, verifier, true, false},
		{"garbage signature", append(c.Marshal(), "\n— "+testOrigin+" !!!\n"...), testOrigin, verifier, true, false},
		{"not a checkpoint", notCheckpoint, testOrigin, verifier, true, false},
		{"origin mismatch", otherOrigin, testOrigin, verifier, true, false},
	}
	for _, tt := range tests {
		got, n, err := OpenCheckpoint(tt.signed, tt.origin, tt.v)
		if err == nil {
			t.Errorf("%s: OpenCheckpoint = %+v, want error", tt.name, got)
			continue
		}
		if n != nil {
			t.Errorf("%s: OpenCheckpoint returned a note with error %v", tt.name, err)
		}
		if got := errors.Is(err, ErrInvalidCheckpoint); got != tt.invalid {
			t.Errorf("%s: errors.Is(%v, ErrInvalidCheckpoint) = %v, want %v", tt.name, err, got, tt.invalid)
		}
		var unverified *note.UnverifiedNoteError
		var invalidSig *note.InvalidSignatureError
		if got := errors.As(err, &unverified) || errors.As(err, &invalidSig); got != tt.unsigned {
			t.Errorf("%s: error %v is a note signature error: %v, want %v", tt.name, err, got, tt.unsigned)
		}
	}
}

// countingVerifier counts the calls to its verifier's Verify.
type countingVerifier struct {
	note.Verifier
	calls *int
}

func (v countingVerifier) Verify(msg, sig []byte) bool {
	*v.calls++
	return v.Verifier.Verify(msg, sig)
}

// lastSigLine returns the last signature line of a signed note, with its
// newline.
func lastSigLine(signed []byte) string {
	i := bytes.LastIndexByte(signed[:len(signed)-1], '\n')
	return string(signed[i+1:])
}

// corruptSigLine returns line with a byte of its signature changed, still
// valid base64. Characters 0 to 5 of the base64 hold the key ID, and
// character 8 encodes bits of the signature's byte 2.
func corruptSigLine(line string) string {
	b := []byte(line)
	i := strings.LastIndexByte(line, ' ') + 1 + 8
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

// reencodeSigLine returns line with the same signature bytes in another
// base64 encoding: the 68 bytes of an Ed25519 note signature leave two
// padding bits in the character before the "=", which the decoder ignores.
func reencodeSigLine(line string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	b := []byte(line)
	i := len(b) - len("=\n") - 1
	b[i] = alphabet[strings.IndexByte(alphabet, b[i])^1]
	return string(b)
}

func TestOpenCheckpointVerifiesEveryLogLine(t *testing.T) {
	signer, verifier := newTestKey(testOrigin)
	c := Checkpoint{Origin: testOrigin, Size: 42, Hash: sha256.Sum256([]byte("root"))}
	signed, err := SignCheckpoint(c, signer)
	if err != nil {
		t.Fatal(err)
	}
	good := lastSigLine(signed)
	body := string(signed[:len(signed)-len(good)])
	bad := corruptSigLine(good)
	reencoded := reencodeSigLine(good)
	if reencoded == good {
		t.Fatal("re-encoded line is the line itself")
	}
	sign := func(s note.Signer) string {
		b, err := note.Sign(&note.Note{Text: string(c.Marshal())}, s)
		if err != nil {
			t.Fatal(err)
		}
		return lastSigLine(b)
	}
	witnessSigner, _ := newTestKey("witness.example")
	witness := sign(witnessSigner)
	otherKeySigner, _ := newTestKey(testOrigin) // the log's name, another key ID
	otherKeyBad := corruptSigLine(sign(otherKeySigner))

	tests := []struct {
		name  string
		lines []string
		ok    bool
		// verifies is the number of Ed25519 verifications: each distinct
		// signature of the log's key once, up to the first that fails.
		verifies int
	}{
		{"good", []string{good}, true, 1},
		{"good, bad", []string{good, bad}, false, 2},
		{"bad, good", []string{bad, good}, false, 1},
		{"good, witness, bad", []string{good, witness, bad}, false, 2},
		{"good, bad, bad", []string{good, bad, bad}, false, 2},
		{"good, good", []string{good, good}, true, 1},
		{"good, good, witness, good", []string{good, good, witness, good}, true, 1},
		// The same signature bytes, so the same valid signature.
		{"good, re-encoded good", []string{good, reencoded}, true, 1},
		{"re-encoded good, good", []string{reencoded, good}, true, 1},
		// Another key of the log's name is not the log's key: ignored.
		{"good, another key's bad", []string{good, otherKeyBad}, true, 1},
		{"another key's bad, good", []string{otherKeyBad, good}, true, 1},
	}
	for _, tt := range tests {
		calls := 0
		v := countingVerifier{verifier, &calls}
		got, n, err := OpenCheckpoint([]byte(body+strings.Join(tt.lines, "")), testOrigin, v)
		if calls != tt.verifies {
			t.Errorf("%s: %d verifications, want %d", tt.name, calls, tt.verifies)
		}
		if tt.ok {
			if err != nil {
				t.Errorf("%s: OpenCheckpoint: %v", tt.name, err)
				continue
			}
			if !reflect.DeepEqual(got, c) {
				t.Errorf("%s: OpenCheckpoint = %+v, want %+v", tt.name, got, c)
			}
			if len(n.Sigs) != 1 || n.Sigs[0].Name != testOrigin || n.Sigs[0].Hash != verifier.KeyHash() {
				t.Errorf("%s: verified signatures %+v, want the log's alone", tt.name, n.Sigs)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: OpenCheckpoint = %+v, want error", tt.name, got)
			continue
		}
		var invalidSig *note.InvalidSignatureError
		if !errors.As(err, &invalidSig) || invalidSig.Name != testOrigin || invalidSig.Hash != verifier.KeyHash() {
			t.Errorf("%s: error %v is not an InvalidSignatureError of the log's key", tt.name, err)
		}
		if errors.Is(err, ErrInvalidCheckpoint) {
			t.Errorf("%s: error %v wraps ErrInvalidCheckpoint", tt.name, err)
		}
	}
}

// TestOpenNoteVerifiesEveryKnownLine checks the rule for every known key,
// as Policy.Open opens notes with the keys of its logs and witnesses.
func TestOpenNoteVerifiesEveryKnownLine(t *testing.T) {
	logSigner, logVerifier := newTestKey(testOrigin)
	witnessSigner, witnessVerifier := newTestKey("witness.example")
	text := string(Checkpoint{Origin: testOrigin, Size: 1}.Marshal())
	signed, err := note.Sign(&note.Note{Text: text}, logSigner, witnessSigner)
	if err != nil {
		t.Fatal(err)
	}
	witnessLine := lastSigLine(signed)
	verifiers := note.VerifierList(logVerifier, witnessVerifier)
	if n, err := openNote(append(bytes.Clone(signed), witnessLine...), verifiers); err != nil || len(n.Sigs) != 2 {
		t.Fatalf("openNote with the witness's line twice = %+v, %v, want both keys verified", n, err)
	}
	_, err = openNote(append(bytes.Clone(signed), corruptSigLine(witnessLine)...), verifiers)
	var invalidSig *note.InvalidSignatureError
	if !errors.As(err, &invalidSig) || invalidSig.Name != "witness.example" {
		t.Fatalf("openNote with a bad witness line after a good one: %v, want an InvalidSignatureError of the witness's key", err)
	}
}

func FuzzParseCheckpoint(f *testing.F) {
	f.Add([]byte(testOrigin + "\n20852163\nZeGYOfhYoVPs6t7MqtIPZy4UfOuqkrNX8blzwUxm3OI=\n"))
	f.Add([]byte("o\n0\nZeGYOfhYoVPs6t7MqtIPZy4UfOuqkrNX8blzwUxm3OI=\next\n"))
	f.Add([]byte("o\n01\nZeGYOfhYoVPs6t7MqtIPZy4UfOuqkrNX8blzwUxm3OJ=\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCheckpoint(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidCheckpoint) {
				t.Fatalf("error %v does not wrap ErrInvalidCheckpoint", err)
			}
			return
		}
		if got := c.Marshal(); !bytes.Equal(got, b) {
			t.Fatalf("ParseCheckpoint(%q) = %+v, which marshals to %q", b, c, got)
		}
		if err := c.check(); err != nil {
			t.Fatalf("ParseCheckpoint(%q) = %+v, which fails check: %v", b, c, err)
		}
		if strings.Contains(c.Origin, "\n") {
			t.Fatalf("origin %q contains a newline", c.Origin)
		}
	})
}

// BenchmarkOpenCheckpoint opens a checkpoint with the log's signature and
// three witness cosignatures, the common case, and one with the log's
// signature line repeated, which has every line walked again.
func BenchmarkOpenCheckpoint(b *testing.B) {
	signer, verifier := newTestKey(testOrigin)
	c := Checkpoint{Origin: testOrigin, Size: 42, Hash: sha256.Sum256([]byte("root"))}
	signers := []note.Signer{signer}
	for _, name := range []string{"w1.example", "w2.example", "w3.example"} {
		s, _ := newTestKey(name)
		signers = append(signers, s)
	}
	cosigned, err := note.Sign(&note.Note{Text: string(c.Marshal())}, signers...)
	if err != nil {
		b.Fatal(err)
	}
	signed, err := SignCheckpoint(c, signer)
	if err != nil {
		b.Fatal(err)
	}
	repeated := append(bytes.Clone(cosigned), lastSigLine(signed)...)
	for _, bb := range []struct {
		name   string
		signed []byte
	}{{"cosigned", cosigned}, {"repeated", repeated}} {
		b.Run(bb.name, func(b *testing.B) {
			for b.Loop() {
				if _, _, err := OpenCheckpoint(bb.signed, testOrigin, verifier); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestParseHash(t *testing.T) {
	h := bytes.Repeat([]byte{0xfb, 0xef}, HashSize/2)
	for _, s := range []string{hex.EncodeToString(h), strings.ToUpper(hex.EncodeToString(h)), base64.StdEncoding.EncodeToString(h), base64.URLEncoding.EncodeToString(h)} {
		if got, err := ParseHash(s); err != nil || !bytes.Equal(got, h) {
			t.Errorf("ParseHash(%q) = %x, %v", s, got, err)
		}
	}
	for _, s := range []string{"", "xyz", hex.EncodeToString(h[:31]), hex.EncodeToString(h)[:63] + "g", base64.RawStdEncoding.EncodeToString(h), base64.StdEncoding.EncodeToString(h)[:43] + "!"} {
		if got, err := ParseHash(s); err == nil {
			t.Errorf("ParseHash(%q) = %x, want an error", s, got)
		}
	}
}
