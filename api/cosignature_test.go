package api

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
)

// exampleCheckpoint is the checkpoint body the tests cosign.
const exampleCheckpoint = "example.com/candor-log\n4815162342\ncaMb2XQVI6XEjb229a6anHUIKudyeRpT6bOm01xFSc8=\n"

// exampleCosignatureLine is a cosignature line of exampleCheckpoint, by
// the key newTestCosigner(t, "witness.example.com/w1", 1) returns, at
// cosignTime; fixed here so that a change of encoding shows.
const exampleCosignatureLine = "— witness.example.com/w1 BHWLrwAAAABlU/EA3iUk4j67TBObRyfo1GWNjeva/JjkTOzUfc69P5xRCWJyyhOy1s8oTW6kzmeypt58Sv5giz+bqJCQXq9409cSDw==\n"

// cosignTime is the timestamp of the tests' cosignatures, 2023-11-14.
const cosignTime = 1700000000

// fixedClock returns a clock that always reads secs seconds after the epoch.
func fixedClock(secs int64) func() time.Time {
	return func() time.Time { return time.Unix(secs, 0) }
}

// seedReader returns a reader of a 32-byte Ed25519 seed made of b, for
// deterministic keys.
func seedReader(b byte) *bytes.Reader {
	return bytes.NewReader(bytes.Repeat([]byte{b}, ed25519.SeedSize))
}

// newTestCosigner returns a Cosigner named name with a key derived from
// seed, cosigning at cosignTime, and its verifier.
func newTestCosigner(t testing.TB, name string, seed byte) (*Cosigner, *CosignatureVerifier) {
	t.Helper()
	skey, vkey, err := GenerateCosignerKey(seedReader(seed), name)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewCosigner(skey, fixedClock(cosignTime))
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewCosignatureVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, v
}

func TestGenerateCosignerKey(t *testing.T) {
	const name = "witness.example.com/w1"
	skey, vkey, err := GenerateCosignerKey(seedReader(7), name)
	if err != nil {
		t.Fatal(err)
	}
	seed := bytes.Repeat([]byte{7}, ed25519.SeedSize)
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)

	// The key ID is the first four bytes of
	// SHA-256(name ‖ 0x0A ‖ 0x04 ‖ public key), per c2sp.org/tlog-cosignature.
	h := sha256.Sum256([]byte(name + "\n\x04" + string(pub)))
	id := hex.EncodeToString(h[:4])
	wantV := name + "+" + id + "+" + base64.StdEncoding.EncodeToString(append([]byte{4}, pub...))
	wantS := "PRIVATE+KEY+" + name + "+" + id + "+" + base64.StdEncoding.EncodeToString(append([]byte{4}, seed...))
	if vkey != wantV {
		t.Errorf("vkey = %q, want %q", vkey, wantV)
	}
	if skey != wantS {
		t.Errorf("skey = %q, want %q", skey, wantS)
	}

	s, err := NewCosigner(skey, nil)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewCosignatureVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	wantID := binary.BigEndian.Uint32(h[:4])
	if s.Name() != name || v.Name() != name || s.KeyHash() != wantID || v.KeyHash() != wantID {
		t.Errorf("signer %s+%08x, verifier %s+%08x, want %s+%08x", s.Name(), s.KeyHash(), v.Name(), v.KeyHash(), name, wantID)
	}
	if s.VerifierKey() != vkey || v.VerifierKey() != vkey || s.Verifier().VerifierKey() != vkey {
		t.Errorf("VerifierKey = %q, %q, %q, want %q", s.VerifierKey(), v.VerifierKey(), s.Verifier().VerifierKey(), vkey)
	}

	for _, bad := range []string{"", "a b", "a+b", "a\tb", "a\x01b", "\xff"} {
		if _, _, err := GenerateCosignerKey(seedReader(1), bad); !errors.Is(err, ErrInvalidCosignature) {
			t.Errorf("GenerateCosignerKey(%q) error = %v, want ErrInvalidCosignature", bad, err)
		}
	}
	if _, _, err := GenerateCosignerKey(bytes.NewReader(nil), name); err == nil {
		t.Error("GenerateCosignerKey with no randomness succeeded")
	}
}

// TestCosignerKeysRoundTrip parses many generated keys, whose base64 may
// hold plus signs, which also separate the parts of a key.
func TestCosignerKeysRoundTrip(t *testing.T) {
	plus := false
	for seed := range 64 {
		skey, vkey, err := GenerateCosignerKey(seedReader(byte(seed)), "w.example")
		if err != nil {
			t.Fatal(err)
		}
		plus = plus || strings.Count(vkey, "+") > 2
		s, err := NewCosigner(skey, nil)
		if err != nil {
			t.Fatalf("NewCosigner(%q): %v", skey, err)
		}
		v, err := NewCosignatureVerifier(vkey)
		if err != nil {
			t.Fatalf("NewCosignatureVerifier(%q): %v", vkey, err)
		}
		if nv, err := NewNoteVerifier(vkey); err != nil || nv.KeyHash() != v.KeyHash() {
			t.Fatalf("NewNoteVerifier(%q) = %v, %v", vkey, nv, err)
		}
		if s.VerifierKey() != vkey || v.VerifierKey() != vkey {
			t.Fatalf("VerifierKey() = %q, %q, want %q", s.VerifierKey(), v.VerifierKey(), vkey)
		}
	}
	if !plus {
		t.Error("no key with a plus sign in its base64 was tried")
	}
}

// TestCosignKnownAnswer checks Sign against a signature computed here from
// the specification's description of the signed message.
func TestCosignKnownAnswer(t *testing.T) {
	s, v := newTestCosigner(t, "witness.example.com/w1", 1)
	sig, err := s.Sign([]byte(exampleCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	// The message c2sp.org/tlog-cosignature defines: header line, time
	// line, checkpoint body.
	msg := "cosignature/v1\ntime 1700000000\nexample.com/candor-log\n4815162342\ncaMb2XQVI6XEjb229a6anHUIKudyeRpT6bOm01xFSc8=\n"
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	want := append([]byte{0, 0, 0, 0, 0x65, 0x53, 0xf1, 0x00}, ed25519.Sign(priv, []byte(msg))...)
	if !bytes.Equal(sig, want) {
		t.Errorf("Sign = %x, want %x", sig, want)
	}
	if len(sig) != CosignatureSize || CosignatureSize != 72 {
		t.Errorf("signature is %d bytes, CosignatureSize %d, want 72", len(sig), CosignatureSize)
	}
	if !v.Verify([]byte(exampleCheckpoint), sig) {
		t.Error("Verify rejects the signature")
	}
}

func TestCosignatureTimeExample(t *testing.T) {
	sigs, err := ParseCosignatureLines([]byte(exampleCosignatureLine))
	if err != nil {
		t.Fatal(err)
	}
	if len(sigs) != 1 || sigs[0].Name != "witness.example.com/w1" || sigs[0].Hash != 0x04758baf {
		t.Fatalf("ParseCosignatureLines = %+v", sigs)
	}
	ts, err := CosignatureTime(sigs[0])
	if err != nil {
		t.Fatal(err)
	}
	if ts.Unix() != cosignTime {
		t.Errorf("CosignatureTime = %v (%d), want %d", ts, ts.Unix(), cosignTime)
	}
	_, v := newTestCosigner(t, "witness.example.com/w1", 1)
	if _, err := note.Open([]byte(exampleCheckpoint+"\n"+exampleCosignatureLine), note.VerifierList(v)); err != nil {
		t.Errorf("the example line does not verify: %v", err)
	}
}

func TestCosignatureTimeRejects(t *testing.T) {
	s, _ := newTestCosigner(t, "w", 1)
	good, err := NoteSignature(s, []byte(exampleCheckpoint))
	if err != nil {
		t.Fatal(err)
	}
	if ts, err := CosignatureTime(good); err != nil || ts.Unix() != cosignTime {
		t.Fatalf("CosignatureTime = %v, %v", ts, err)
	}
	raw, _ := base64.StdEncoding.DecodeString(good.Base64)
	withTime := func(ts uint64) note.Signature {
		r := bytes.Clone(raw)
		binary.BigEndian.PutUint64(r[4:], ts)
		return note.Signature{Name: good.Name, Hash: good.Hash, Base64: base64.StdEncoding.EncodeToString(r)}
	}
	for name, sig := range map[string]note.Signature{
		"zero time":     withTime(0),
		"time over max": withTime(math.MaxInt64 + 1),
		"other hash":    {Name: good.Name, Hash: good.Hash + 1, Base64: good.Base64},
		"short":         {Name: good.Name, Hash: good.Hash, Base64: base64.StdEncoding.EncodeToString(raw[:75])},
		"long":          {Name: good.Name, Hash: good.Hash, Base64: base64.StdEncoding.EncodeToString(append(bytes.Clone(raw), 0))},
		"not base64":    {Name: good.Name, Hash: good.Hash, Base64: "!" + good.Base64[1:]},
		"unpadded":      {Name: good.Name, Hash: good.Hash, Base64: strings.TrimRight(good.Base64, "=")},
		"empty":         {Name: good.Name, Hash: good.Hash},
	} {
		if ts, err := CosignatureTime(sig); !errors.Is(err, ErrInvalidCosignature) {
			t.Errorf("%s: CosignatureTime = %v, %v, want ErrInvalidCosignature", name, ts, err)
		}
	}
	if ts, err := CosignatureTime(withTime(math.MaxInt64)); err != nil || ts.Unix() != math.MaxInt64 {
		t.Errorf("CosignatureTime(2^63-1) = %v, %v", ts, err)
	}
}

// TestCosignNote cosigns a log's checkpoint by two witnesses with note.Sign
// and opens it with note.Open.
func TestCosignNote(t *testing.T) {
	logSigner, logVerifier := newTestKey(testOrigin)
	w1, v1 := newTestCosigner(t, "w1.example", 1)
	w2, v2 := newTestCosigner(t, "w2.example", 2)
	c := Checkpoint{Origin: testOrigin, Size: 7, Hash: sha256.Sum256([]byte("root"))}
	signed, err := SignCheckpoint(c, logSigner)
	if err != nil {
		t.Fatal(err)
	}
	_, n, err := OpenCheckpoint(signed, testOrigin, logVerifier)
	if err != nil {
		t.Fatal(err)
	}
	cosigned, err := note.Sign(n, w1, w2)
	if err != nil {
		t.Fatal(err)
	}
	n, err = note.Open(cosigned, note.VerifierList(logVerifier, v1, v2))
	if err != nil {
		t.Fatal(err)
	}
	if n.Text != string(c.Marshal()) || len(n.Sigs) != 3 || len(n.UnverifiedSigs) != 0 {
		t.Fatalf("note.Open = %+v", n)
	}
	for _, s := range n.Sigs[1:] {
		ts, err := CosignatureTime(s)
		if err != nil || ts.Unix() != cosignTime {
			t.Errorf("CosignatureTime(%+v) = %v, %v", s, ts, err)
		}
	}
	// The log's signature is not a cosignature.
	if _, err := CosignatureTime(n.Sigs[0]); err == nil {
		t.Error("CosignatureTime of the log's signature succeeded")
	}
	// Witnesses unknown to the verifier are left unverified.
	n, err = note.Open(cosigned, note.VerifierList(logVerifier))
	if err != nil || len(n.Sigs) != 1 || len(n.UnverifiedSigs) != 2 {
		t.Errorf("note.Open with the log key only = %+v, %v", n, err)
	}
	// The verifier of one witness does not verify the other's cosignature.
	impostor := &CosignatureVerifier{name: v2.name, id: v2.id, key: v1.key}
	if _, err := note.Open(cosigned, note.VerifierList(logVerifier, v1, impostor)); !isInvalidSignature(err) {
		t.Errorf("note.Open with the wrong key for w2: %v, want an InvalidSignatureError", err)
	}

	// A cosignature on a tampered body does not verify.
	tampered := bytes.Replace(cosigned, []byte("\n7\n"), []byte("\n8\n"), 1)
	if _, err := note.Open(tampered, note.VerifierList(v1)); !isInvalidSignature(err) {
		t.Errorf("note.Open of a tampered note: %v, want an InvalidSignatureError", err)
	}
}

func isInvalidSignature(err error) bool {
	var invalid *note.InvalidSignatureError
	return errors.As(err, &invalid)
}

func TestCosignatureVerifyRejects(t *testing.T) {
	s, v := newTestCosigner(t, "w", 1)
	body := []byte(exampleCheckpoint)
	sig, err := s.Sign(body)
	if err != nil {
		t.Fatal(err)
	}
	if !v.Verify(body, sig) {
		t.Fatal("Verify rejects a good signature")
	}
	priv := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	// signedAt signs body properly at timestamp ts, however invalid.
	signedAt := func(ts uint64) []byte {
		sig := binary.BigEndian.AppendUint64(nil, ts)
		msg := "cosignature/v1\ntime " + strconv.FormatUint(ts, 10) + "\n" + exampleCheckpoint
		return append(sig, ed25519.Sign(priv, []byte(msg))...)
	}
	if !v.Verify(body, signedAt(1)) {
		t.Fatal("Verify rejects a signature made here")
	}
	flip := func(i int) []byte {
		b := bytes.Clone(sig)
		b[i] ^= 1
		return b
	}
	otherBody := []byte(strings.Replace(exampleCheckpoint, "4815162342", "4815162343", 1))
	for name, tt := range map[string]struct{ msg, sig []byte }{
		"other body":         {otherBody, sig},
		"body with ext":      {append(bytes.Clone(body), "ext\n"...), sig},
		"timestamp changed":  {body, flip(7)},
		"signature changed":  {body, flip(40)},
		"last byte changed":  {body, flip(71)},
		"short":              {body, sig[:71]},
		"long":               {body, append(bytes.Clone(sig), 0)},
		"no timestamp":       {body, sig[8:]},
		"empty":              {body, nil},
		"zero timestamp":     {body, signedAt(0)},
		"timestamp over max": {body, signedAt(math.MaxInt64 + 1)},
		"plain Ed25519":      {body, append(make([]byte, 8), ed25519.Sign(priv, body)...)},
	} {
		if v.Verify(tt.msg, tt.sig) {
			t.Errorf("%s: Verify accepted", name)
		}
	}
}

func TestCosignerSignRejects(t *testing.T) {
	skey, _, err := GenerateCosignerKey(seedReader(1), "w")
	if err != nil {
		t.Fatal(err)
	}
	for _, secs := range []int64{0, -1} {
		s, err := NewCosigner(skey, fixedClock(secs))
		if err != nil {
			t.Fatal(err)
		}
		if sig, err := s.Sign([]byte(exampleCheckpoint)); err == nil {
			t.Errorf("Sign at %d = %x, want error", secs, sig)
		}
	}
	s, err := NewCosigner(skey, fixedClock(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Sign([]byte(exampleCheckpoint)); err != nil {
		t.Errorf("Sign at 1: %v", err)
	}
	for _, msg := range []string{"", "hello\n", "o\n1\n", exampleCheckpoint[:len(exampleCheckpoint)-1]} {
		if sig, err := s.Sign([]byte(msg)); !errors.Is(err, ErrInvalidCheckpoint) {
			t.Errorf("Sign(%q) = %x, %v, want ErrInvalidCheckpoint", msg, sig, err)
		}
	}
	// note.Sign passes the error on.
	if _, err := note.Sign(&note.Note{Text: "not a checkpoint\n"}, s); err == nil {
		t.Error("note.Sign of a non-checkpoint with a Cosigner succeeded")
	}
}

func TestCosignerKeyRejects(t *testing.T) {
	skey, vkey, err := GenerateCosignerKey(seedReader(3), "w.example")
	if err != nil {
		t.Fatal(err)
	}
	edS, edV, err := note.GenerateKey(seedReader(3), "w.example")
	if err != nil {
		t.Fatal(err)
	}
	pub := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{3}, 32)).Public().(ed25519.PublicKey)
	// wrongRule is the key with a key ID computed with type 0x01, as for a
	// plain Ed25519 key: the cosignature/v1 rule uses 0x04.
	h := sha256.Sum256([]byte("w.example\n\x01" + string(pub)))
	wrongRule := "w.example+" + hex.EncodeToString(h[:4]) + "+" + base64.StdEncoding.EncodeToString(append([]byte{4}, pub...))
	name, id, key := "w.example", vkey[10:18], vkey[19:]
	badV := map[string]string{
		"empty":              "",
		"Ed25519 key":        edV,
		"private key":        skey,
		"wrong ID rule":      wrongRule,
		"wrong ID":           name + "+00000000+" + key,
		"uppercase ID":       name + "+" + strings.ToUpper(id) + "+" + key,
		"short ID":           name + "+" + id[1:] + "+" + key,
		"other name":         "x.example+" + id + "+" + key,
		"empty name":         "+" + id + "+" + key,
		"name with space":    "w example+" + id + "+" + key,
		"newline in key":     name + "+" + id + "+" + key[:10] + "\n" + key[10:],
		"non-canonical key":  name + "+" + id + "+" + key[:len(key)-2] + "B=",
		"short key":          name + "+" + id + "+" + base64.StdEncoding.EncodeToString(append([]byte{4}, pub[:31]...)),
		"extra part":         vkey + "+x",
		"missing key":        name + "+" + id,
		"type only":          name + "+" + id + "+BA==",
		"trailing newline":   vkey + "\n",
		"leading space":      " " + vkey,
		"ECDSA type":         name + "+" + id + "+" + base64.StdEncoding.EncodeToString(append([]byte{2}, pub...)),
		"ML-DSA type (0x06)": name + "+" + id + "+" + base64.StdEncoding.EncodeToString(append([]byte{6}, pub...)),
	}
	if _, err := NewCosignatureVerifier(vkey); err != nil {
		t.Fatalf("the valid base case does not parse: %v", err)
	}
	for what, k := range badV {
		if v, err := NewCosignatureVerifier(k); !errors.Is(err, ErrInvalidCosignature) {
			t.Errorf("%s: NewCosignatureVerifier(%q) = %v, %v, want ErrInvalidCosignature", what, k, v, err)
		}
	}
	badS := map[string]string{
		"empty":        "",
		"Ed25519 key":  edS,
		"verifier key": vkey,
		"wrong ID":     strings.Replace(skey, id, "00000000", 1),
		"other name":   strings.Replace(skey, "w.example", "x.example", 1),
		"lowercase":    strings.Replace(skey, "PRIVATE+KEY", "private+key", 1),
		"short seed":   "PRIVATE+KEY+" + name + "+" + id + "+" + base64.StdEncoding.EncodeToString(append([]byte{4}, make([]byte, 31)...)),
	}
	if _, err := NewCosigner(skey, nil); err != nil {
		t.Fatalf("the valid base case does not parse: %v", err)
	}
	for what, k := range badS {
		if s, err := NewCosigner(k, nil); !errors.Is(err, ErrInvalidCosignature) {
			t.Errorf("%s: NewCosigner(%q) = %v, %v, want ErrInvalidCosignature", what, k, s, err)
		}
	}
	// golang.org/x/mod/sumdb/note does not know type 0x04 keys.
	if _, err := note.NewVerifier(vkey); err == nil {
		t.Error("note.NewVerifier accepted a cosignature/v1 key")
	}
}

func TestNewNoteVerifier(t *testing.T) {
	// The example of c2sp.org/signed-note.
	const vkey = "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k"
	const msg = "This is an example message.\n\n— example.com/foo Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM=\n"
	v, err := NewNoteVerifier(vkey)
	if err != nil {
		t.Fatal(err)
	}
	if v.Name() != "example.com/foo" || v.KeyHash() != 0x530d903a {
		t.Errorf("verifier %s+%08x", v.Name(), v.KeyHash())
	}
	if n, err := note.Open([]byte(msg), note.VerifierList(v)); err != nil || n.Text != "This is an example message.\n" {
		t.Errorf("note.Open of the signed-note example = %+v, %v", n, err)
	}

	_, cvkey, err := GenerateCosignerKey(seedReader(1), "w")
	if err != nil {
		t.Fatal(err)
	}
	cv, err := NewNoteVerifier(cvkey)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := cv.(*CosignatureVerifier); !ok {
		t.Errorf("NewNoteVerifier(cosignature key) = %T, want *CosignatureVerifier", cv)
	}
	s, _ := newTestCosigner(t, "w", 1)
	cosigned, err := note.Sign(&note.Note{Text: exampleCheckpoint}, s)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := note.Open(cosigned, note.VerifierList(cv)); err != nil {
		t.Errorf("note.Open with NewNoteVerifier(cosignature key): %v", err)
	}

	for _, bad := range []string{
		"",
		"example.com/foo+530D903A+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", // uppercase ID
		"example.com/foo+530d903b+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k", // wrong ID
		"example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2",  // short key
		"example.com/foo+530d903a+AkyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  // type 0x02
		"example.com/fo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k",  // other name
	} {
		if v, err := NewNoteVerifier(bad); !errors.Is(err, ErrInvalidCosignature) {
			t.Errorf("NewNoteVerifier(%q) = %v, %v, want ErrInvalidCosignature", bad, v, err)
		}
	}
}
