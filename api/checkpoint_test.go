package api

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
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
