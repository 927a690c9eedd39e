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

	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api/apitest"
)

// policyLogKey returns a deterministic Ed25519 log key named origin: its
// signer, verifier and verifier key.
func policyLogKey(origin string, seed byte) (note.Signer, note.Verifier, string) {
	return apitest.NewNoteKey(origin, seedReader(seed))
}

// examplePolicy is the example of c2sp.org/tlog-policy, with keys: two
// groups of three witnesses, of which at least two X and one Y must cosign.
type examplePolicy struct {
	text        string
	log         note.Signer
	logVerifier note.Verifier
	witnesses   []*Cosigner // X1, X2, X3, Y1, Y2, Y3
}

func newExamplePolicy(t testing.TB) examplePolicy {
	t.Helper()
	var e examplePolicy
	var logVkey string
	e.log, e.logVerifier, logVkey = policyLogKey(testOrigin, 100)
	vkeys := make([]any, 6)
	for i := range 6 {
		w, _ := newTestCosigner(t, fmt.Sprintf("witness%d.example", i), byte(i+1))
		e.witnesses = append(e.witnesses, w)
		vkeys[i] = w.VerifierKey()
	}
	e.text = fmt.Sprintf(`# Candor's rendition of the tlog-policy example.
log `+logVkey+`

witness X1 %s
witness X2 %s
witness X3 %s
group X-witnesses 2 X1 X2 X3

witness Y1 %s
witness Y2 %s
witness Y3 %s
group Y-witnesses any Y1 Y2 Y3

group X-and-Y all X-witnesses Y-witnesses
quorum X-and-Y
`, vkeys...)
	return e
}

// cosign returns the checkpoint signed by the log and cosigned by the
// witnesses whose bits are set in mask.
func (e examplePolicy) cosign(t testing.TB, c Checkpoint, mask int) []byte {
	t.Helper()
	signers := []note.Signer{e.log}
	for i, w := range e.witnesses {
		if mask&(1<<i) != 0 {
			signers = append(signers, w)
		}
	}
	signed, err := note.Sign(&note.Note{Text: string(c.Marshal())}, signers...)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func mustParsePolicy(t testing.TB, text string) *Policy {
	t.Helper()
	p, err := ParsePolicy([]byte(text))
	if err != nil {
		t.Fatalf("ParsePolicy(%q): %v", text, err)
	}
	return p
}

var testPolicyCheckpoint = Checkpoint{Origin: testOrigin, Size: 12, Hash: sha256.Sum256([]byte("root"))}

func TestPolicySpecExample(t *testing.T) {
	e := newExamplePolicy(t)
	p := mustParsePolicy(t, e.text)
	if len(p.Logs()) != 1 || p.Logs()[0].Origin != testOrigin || p.Logs()[0].URL != "" || p.Logs()[0].Verifier.KeyHash() != e.log.KeyHash() {
		t.Errorf("Logs() = %+v", p.Logs())
	}
	ws := p.Witnesses()
	if len(ws) != 6 || ws[0].Name != "X1" || ws[5].Name != "Y3" || ws[3].Verifier.Name() != "witness3.example" || ws[3].VerifierKey != e.witnesses[3].VerifierKey() {
		t.Errorf("Witnesses() = %+v", ws)
	}
	wantGroups := []PolicyGroup{
		{Name: "X-witnesses", K: 2, Members: []string{"X1", "X2", "X3"}},
		{Name: "Y-witnesses", K: 1, Members: []string{"Y1", "Y2", "Y3"}},
		{Name: "X-and-Y", K: 2, Members: []string{"X-witnesses", "Y-witnesses"}},
	}
	if !reflect.DeepEqual(p.Groups(), wantGroups) {
		t.Errorf("Groups() = %+v, want %+v", p.Groups(), wantGroups)
	}
	if p.Quorum() != "X-and-Y" {
		t.Errorf("Quorum() = %q", p.Quorum())
	}

	c := testPolicyCheckpoint
	for mask := range 1 << 6 {
		xs, ys := 0, 0
		for i := range 3 {
			xs += mask >> i & 1
			ys += mask >> (i + 3) & 1
		}
		want := xs >= 2 && ys >= 1
		signed := e.cosign(t, c, mask)

		got, n, err := p.Open(signed)
		if want {
			if err != nil {
				t.Errorf("cosigners %06b: Open: %v", mask, err)
			} else if !reflect.DeepEqual(got, c) || len(n.Sigs) != 1+xs+ys {
				t.Errorf("cosigners %06b: Open = %+v, %+v", mask, got, n)
			}
		} else if !errors.Is(err, ErrQuorumNotMet) {
			t.Errorf("cosigners %06b: Open error %v, want ErrQuorumNotMet", mask, err)
		}

		// The same with the log's signature checked by OpenCheckpoint.
		_, n, err = OpenCheckpoint(signed, testOrigin, e.logVerifier)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.CheckCosignatures(n); want != (err == nil) || err != nil && !errors.Is(err, ErrQuorumNotMet) {
			t.Errorf("cosigners %06b: CheckCosignatures: %v, want success %v", mask, err, want)
		}
		// And when the note was opened with all the policy's keys.
		if n, err = note.Open(signed, p.Verifiers()); err != nil || len(n.Sigs) != 1+xs+ys {
			t.Fatalf("note.Open with Verifiers() = %+v, %v", n, err)
		}
		if err := p.CheckCosignatures(n); want != (err == nil) {
			t.Errorf("cosigners %06b: CheckCosignatures after note.Open: %v, want success %v", mask, err, want)
		}
	}
}

func TestPolicyQuorums(t *testing.T) {
	_, _, logVkey := policyLogKey(testOrigin, 100)
	vkeys := make([]string, 5)
	for i := range vkeys {
		w, _ := newTestCosigner(t, fmt.Sprintf("w%d.example", i), byte(i+1))
		vkeys[i] = w.VerifierKey()
	}
	witnesses := ""
	for i, vk := range vkeys {
		witnesses += fmt.Sprintf("witness W%d %s\n", i, vk)
	}
	// Each test lists which sets of witnesses (bit masks) satisfy it by a
	// predicate over the mask.
	bit := func(m, i int) bool { return m&(1<<i) != 0 }
	count := func(m int, is ...int) int {
		n := 0
		for _, i := range is {
			if bit(m, i) {
				n++
			}
		}
		return n
	}
	tests := []struct {
		name  string
		rules string
		ok    func(m int) bool
	}{
		{"none", "quorum none\n", func(int) bool { return true }},
		{"single witness", "quorum W2\n", func(m int) bool { return bit(m, 2) }},
		{"2 of 3", "group g 2 W0 W1 W2\nquorum g\n", func(m int) bool { return count(m, 0, 1, 2) >= 2 }},
		{"3 of 5", "group g 3 W0 W1 W2 W3 W4\nquorum g\n", func(m int) bool { return count(m, 0, 1, 2, 3, 4) >= 3 }},
		{"all", "group g all W0 W1 W2 W3 W4\nquorum g\n", func(m int) bool { return m == 31 }},
		{"any", "group g any W3 W4\nquorum g\n", func(m int) bool { return bit(m, 3) || bit(m, 4) }},
		{"1 of 1", "group g 1 W4\nquorum g\n", func(m int) bool { return bit(m, 4) }},
		{"nested", "group a 2 W0 W1 W2\ngroup b any W3 W4\ngroup c all a b\nquorum c\n",
			func(m int) bool { return count(m, 0, 1, 2) >= 2 && count(m, 3, 4) >= 1 }},
		{"three levels", "group a all W0 W1\ngroup b any a W2\ngroup c 2 b W3 W4\nquorum c\n",
			func(m int) bool {
				b := count(m, 0, 1) == 2 || bit(m, 2)
				n := count(m, 3, 4)
				if b {
					n++
				}
				return n >= 2
			}},
		{"quorum is an inner group", "group a 2 W0 W1 W2\ngroup b all a W3\nquorum a\n",
			func(m int) bool { return count(m, 0, 1, 2) >= 2 }},
		{"unused group after quorum", "group a any W0\nquorum a\ngroup b all W1 W2\n",
			func(m int) bool { return bit(m, 0) }},
	}
	logSigner, _, _ := policyLogKey(testOrigin, 100)
	cosigners := make([]*Cosigner, 5)
	for i := range cosigners {
		cosigners[i], _ = newTestCosigner(t, fmt.Sprintf("w%d.example", i), byte(i+1))
	}
	for _, tt := range tests {
		p := mustParsePolicy(t, "log "+logVkey+"\n"+witnesses+tt.rules)
		for m := range 1 << 5 {
			signers := []note.Signer{logSigner}
			for i, w := range cosigners {
				if bit(m, i) {
					signers = append(signers, w)
				}
			}
			signed, err := note.Sign(&note.Note{Text: string(testPolicyCheckpoint.Marshal())}, signers...)
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = p.Open(signed)
			if want := tt.ok(m); want != (err == nil) {
				t.Errorf("%s: cosigners %05b: Open: %v, want success %v", tt.name, m, err, want)
			}
		}
	}
}

// TestPolicyForgedCosignatures checks that cosignatures count only if they
// verify, and that a failing one by a known key rejects the note.
func TestPolicyForgedCosignatures(t *testing.T) {
	e := newExamplePolicy(t)
	p := mustParsePolicy(t, e.text)
	c := testPolicyCheckpoint
	// X1, X2 and Y1: enough.
	signed := e.cosign(t, c, 0b001011)
	if _, _, err := p.Open(signed); err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(signed), "\n")
	// lines: origin, size, hash, "", log, X1, X2, Y1, "".
	x2Line := lines[6]
	withoutX2 := strings.Replace(string(signed), x2Line, "", 1)

	// A cosignature by an impostor with X2's key name, and a key ID that
	// is not X2's, is ignored.
	impostor, _ := newTestCosigner(t, "witness1.example", 99)
	impostorSig, err := NoteSignature(impostor, c.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	withImpostor, err := AppendSignatures([]byte(withoutX2), MarshalCosignatureLines([]note.Signature{impostorSig}))
	if err != nil {
		t.Fatal(err)
	}
	if _, n, err := p.Open(withImpostor); !errors.Is(err, ErrQuorumNotMet) {
		t.Errorf("Open with an impostor's cosignature = %+v, %v, want ErrQuorumNotMet", n, err)
	}

	// X2's key name and ID, with a garbage signature.
	sigs, err := ParseCosignatureLines([]byte(x2Line))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(sigs[0].Base64)
	raw[20] ^= 1
	garbage := note.Signature{Name: sigs[0].Name, Hash: sigs[0].Hash, Base64: base64.StdEncoding.EncodeToString(raw)}
	// X2's cosignature of another checkpoint.
	other := c
	other.Size++
	otherSig, err := NoteSignature(e.witnesses[1], other.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	// A signature in the log's name by X2's key.
	misnamed, err := NoteSignature(nameSigner{e.witnesses[1], testOrigin}, c.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	misnamed.Hash = e.log.KeyHash()
	rawM, _ := base64.StdEncoding.DecodeString(misnamed.Base64)
	copy(rawM, []byte{byte(misnamed.Hash >> 24), byte(misnamed.Hash >> 16), byte(misnamed.Hash >> 8), byte(misnamed.Hash)})
	misnamed.Base64 = base64.StdEncoding.EncodeToString(rawM)

	for name, forged := range map[string]note.Signature{
		"garbage signature":     garbage,
		"other checkpoint":      otherSig,
		"log key, witness sig":  misnamed,
		"cosignature truncated": {Name: garbage.Name, Hash: garbage.Hash, Base64: base64.StdEncoding.EncodeToString(raw[:40])},
	} {
		// First, so that it comes before the log's signature, which
		// note.Open would verify instead of a second one by its key.
		forgedNote := []byte(strings.Replace(withoutX2, "\n\n", "\n\n"+string(MarshalCosignatureLines([]note.Signature{forged})), 1))
		if _, n, err := p.Open(forgedNote); !isInvalidSignature(err) {
			t.Errorf("%s: Open = %+v, %v, want an InvalidSignatureError", name, n, err)
		}
		// CheckCosignatures does not trust a note that claims the
		// signature verified.
		n := &note.Note{Text: string(c.Marshal())}
		for _, l := range []string{lines[4], lines[5], lines[7]} {
			s, err := ParseCosignatureLines([]byte(l))
			if err != nil {
				t.Fatal(err)
			}
			n.Sigs = append(n.Sigs, s...)
		}
		n.Sigs = append(n.Sigs, forged)
		if name == "log key, witness sig" {
			// Not a witness key: ignored by CheckCosignatures, which does
			// not check the log's signature.
			if err := p.CheckCosignatures(n); !errors.Is(err, ErrQuorumNotMet) {
				t.Errorf("%s: CheckCosignatures: %v, want ErrQuorumNotMet", name, err)
			}
			continue
		}
		if err := p.CheckCosignatures(n); !isInvalidSignature(err) {
			t.Errorf("%s: CheckCosignatures: %v, want an InvalidSignatureError", name, err)
		}
	}

	// A duplicated cosignature counts once.
	dup := strings.Replace(withoutX2, lines[5], lines[5]+lines[5], 1)
	if _, _, err := p.Open([]byte(dup)); !errors.Is(err, ErrQuorumNotMet) {
		t.Errorf("Open with X1's cosignature twice: %v, want ErrQuorumNotMet", err)
	}
}

func TestPolicyOpenRejects(t *testing.T) {
	e := newExamplePolicy(t)
	p := mustParsePolicy(t, e.text)
	c := testPolicyCheckpoint
	all := 0b111111

	otherLog, _, _ := policyLogKey(testOrigin, 101)
	otherLogSigned, err := note.Sign(&note.Note{Text: string(c.Marshal())}, append([]note.Signer{otherLog}, e.witnessSigners()...)...)
	if err != nil {
		t.Fatal(err)
	}
	otherOrigin := Checkpoint{Origin: "example.com/other", Size: 1}
	otherOriginSigned, err := note.Sign(&note.Note{Text: string(otherOrigin.Marshal())}, append([]note.Signer{e.log}, e.witnessSigners()...)...)
	if err != nil {
		t.Fatal(err)
	}
	notCheckpoint, err := note.Sign(&note.Note{Text: "hello\n"}, e.log)
	if err != nil {
		t.Fatal(err)
	}
	witnessesOnly, err := note.Sign(&note.Note{Text: string(c.Marshal())}, e.witnessSigners()...)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		signed   []byte
		invalid  bool // wraps ErrInvalidCheckpoint
		unsigned bool // wraps a note signature error
	}{
		{"other log key", otherLogSigned, false, true},
		{"witnesses only", witnessesOnly, false, true},
		{"tampered", bytes.Replace(e.cosign(t, c, all), []byte("\n12\n"), []byte("\n13\n"), 1), false, true},
		{"origin is not the log's", otherOriginSigned, true, false},
		{"not a checkpoint", notCheckpoint, true, false},
		{"unsigned", c.Marshal(), true, false},
		{"empty", nil, true, false},
	}
	for _, tt := range tests {
		got, n, err := p.Open(tt.signed)
		if err == nil {
			t.Errorf("%s: Open = %+v, want error", tt.name, got)
			continue
		}
		if n != nil {
			t.Errorf("%s: Open returned a note with error %v", tt.name, err)
		}
		if got := errors.Is(err, ErrInvalidCheckpoint); got != tt.invalid {
			t.Errorf("%s: errors.Is(%v, ErrInvalidCheckpoint) = %v, want %v", tt.name, err, got, tt.invalid)
		}
		var unverified *note.UnverifiedNoteError
		if got := errors.As(err, &unverified) || isInvalidSignature(err); got != tt.unsigned {
			t.Errorf("%s: error %v is a note signature error: %v, want %v", tt.name, err, got, tt.unsigned)
		}
		if errors.Is(err, ErrQuorumNotMet) {
			t.Errorf("%s: error %v wraps ErrQuorumNotMet", tt.name, err)
		}
	}

	// A policy without logs opens nothing, but checks cosignatures.
	noLogs := mustParsePolicy(t, e.text[strings.Index(e.text, "witness X1"):])
	signed := e.cosign(t, c, all)
	if _, _, err := noLogs.Open(signed); err == nil {
		t.Error("Open with a policy without logs succeeded")
	}
	_, n, err := OpenCheckpoint(signed, testOrigin, e.logVerifier)
	if err != nil {
		t.Fatal(err)
	}
	if err := noLogs.CheckCosignatures(n); err != nil {
		t.Errorf("CheckCosignatures with a policy without logs: %v", err)
	}
	if err := noLogs.CheckCosignatures(&note.Note{Text: n.Text}); !errors.Is(err, ErrQuorumNotMet) {
		t.Errorf("CheckCosignatures of a note without signatures: %v, want ErrQuorumNotMet", err)
	}
	for name, bad := range map[string]*note.Note{
		"no final newline": {Text: "x", Sigs: n.Sigs},
		"bad base64":       {Text: n.Text, Sigs: []note.Signature{{Name: "w", Hash: 0, Base64: "!"}}},
		"hash mismatch":    {Text: n.Text, Sigs: []note.Signature{{Name: "w", Hash: 1, Base64: "AAAAAAA="}}},
		"control char":     {Text: "\x01\n", Sigs: n.Sigs},
	} {
		if err := noLogs.CheckCosignatures(bad); !errors.Is(err, ErrInvalidCheckpoint) {
			t.Errorf("%s: CheckCosignatures: %v, want ErrInvalidCheckpoint", name, err)
		}
	}
}

func (e examplePolicy) witnessSigners() []note.Signer {
	var ss []note.Signer
	for _, w := range e.witnesses {
		ss = append(ss, w)
	}
	return ss
}

func TestParsePolicyAccepts(t *testing.T) {
	_, _, log1 := policyLogKey("log1.example", 100)
	_, _, log2 := policyLogKey("log2.example", 101)
	_, _, log1b := policyLogKey("log1.example", 102)
	w1, _ := newTestCosigner(t, "w1.example", 1)
	w2, _ := newTestCosigner(t, "w2.example", 2)
	v1, v2 := w1.VerifierKey(), w2.VerifierKey()

	text := "  # leading comment\n" +
		"\t\n" +
		"log " + log1 + " https://log1.example/\n" +
		"log\t" + log1b + "\n" + // the same origin, another key
		"  witness \t Ω " + v1 + " https://w1.example/submit  \n" +
		"#witness X " + v2 + "\n" +
		"log " + log2 + "\n" +
		"witness K " + v2 + "\n" +
		"group\tbóth all Ω K\n" +
		"quorum bóth" // no final newline
	p := mustParsePolicy(t, text)
	logs := p.Logs()
	if len(logs) != 3 || logs[0].URL != "https://log1.example/" || logs[1].Origin != "log1.example" || logs[2].Origin != "log2.example" || logs[2].URL != "" {
		t.Errorf("Logs() = %+v", logs)
	}
	ws := p.Witnesses()
	if len(ws) != 2 || ws[0].Name != "Ω" || ws[0].URL != "https://w1.example/submit" || ws[1].Name != "K" || ws[1].VerifierKey != v2 {
		t.Errorf("Witnesses() = %+v", ws)
	}
	if !reflect.DeepEqual(p.Groups(), []PolicyGroup{{Name: "bóth", K: 2, Members: []string{"Ω", "K"}}}) || p.Quorum() != "bóth" {
		t.Errorf("Groups() = %+v, Quorum() = %q", p.Groups(), p.Quorum())
	}
	want := "log " + log1 + " https://log1.example/\n" +
		"log " + log1b + "\n" +
		"log " + log2 + "\n" +
		"witness Ω " + v1 + " https://w1.example/submit\n" +
		"witness K " + v2 + "\n" +
		"group bóth 2 Ω K\n" +
		"quorum bóth\n"
	if got := string(p.Marshal()); got != want {
		t.Errorf("Marshal() = %q, want %q", got, want)
	}
	if got := string(mustParsePolicy(t, want).Marshal()); got != want {
		t.Errorf("Marshal() of the parsed Marshal() = %q", got)
	}

	// Only "quorum none" is needed.
	p = mustParsePolicy(t, "quorum none\n")
	if len(p.Logs())+len(p.Witnesses())+len(p.Groups()) != 0 || p.Quorum() != "none" || string(p.Marshal()) != "quorum none\n" {
		t.Errorf("quorum none: %+v", p)
	}
	// Returned slices are copies.
	p = mustParsePolicy(t, "witness a "+v1+"\ngroup g any a\nquorum g\n")
	p.Groups()[0].Members[0] = "x"
	p.Witnesses()[0].Name = "x"
	if p.Groups()[0].Members[0] != "a" || p.Witnesses()[0].Name != "a" {
		t.Error("Groups() or Witnesses() shares memory with the policy")
	}
	// Names are opaque bytes: "K" and the Kelvin sign are different.
	mustParsePolicy(t, "witness K "+v1+"\nwitness \u212a "+v2+"\ngroup g all K \u212a\nquorum g\n")
	// Names that look like keywords are names.
	mustParsePolicy(t, "witness all "+v1+"\nwitness quorum "+v2+"\ngroup any all all quorum\nquorum any\n")
}

func TestParsePolicyRejects(t *testing.T) {
	_, _, logKey := policyLogKey("log.example", 100)
	_, _, logKeyOtherName := policyLogKey("other.example", 100) // same key
	w1, _ := newTestCosigner(t, "w1.example", 1)
	w2, _ := newTestCosigner(t, "w2.example", 2)
	w1b, _ := newTestCosigner(t, "w1b.example", 1) // w1's key under another name
	v1, v2 := w1.VerifierKey(), w2.VerifierKey()
	ws := "witness a " + v1 + "\nwitness b " + v2 + "\n"
	bad := map[string]string{
		"empty":                     "",
		"comments only":             "# quorum none\n",
		"no quorum":                 ws,
		"two quorums":               "quorum none\nquorum none\n",
		"quorum undefined":          "quorum x\n",
		"quorum defined later":      "quorum a\n" + ws,
		"quorum two names":          ws + "quorum a b\n",
		"quorum no name":            "quorum\n",
		"unknown keyword":           "quorum none\nlogs " + logKey + "\n",
		"uppercase keyword":         "QUORUM none\n",
		"trailing comment":          "quorum none # no witnesses\n",
		"log without key":           "log\nquorum none\n",
		"log extra field":           "log " + logKey + " https://x/ y\nquorum none\n",
		"log with witness key":      "log " + v1 + "\nquorum none\n",
		"log bad key":               "log " + logKey[:len(logKey)-2] + "xx\nquorum none\n",
		"log uppercase key ID":      "log " + strings.ToUpper(logKey[:20]) + logKey[20:] + "\nquorum none\n",
		"duplicate log":             "log " + logKey + "\nlog " + logKey + "\nquorum none\n",
		"duplicate log key":         "log " + logKey + "\nlog " + logKeyOtherName + "\nquorum none\n",
		"witness with log key":      "witness a " + logKey + "\nquorum a\n",
		"witness without key":       "witness a\nquorum none\n",
		"witness extra field":       "witness a " + v1 + " https://x/ y\nquorum none\n",
		"witness key first":         "witness " + v1 + " a\nquorum none\n",
		"duplicate witness name":    "witness a " + v1 + "\nwitness a " + v2 + "\nquorum none\n",
		"duplicate witness key":     "witness a " + v1 + "\nwitness b " + v1 + "\nquorum none\n",
		"same key, other name":      "witness a " + v1 + "\nwitness b " + w1b.VerifierKey() + "\nquorum none\n",
		"witness named none":        "witness none " + v1 + "\nquorum none\n",
		"group named none":          ws + "group none any a\nquorum none\n",
		"group named like witness":  ws + "group a any b\nquorum a\n",
		"group no members":          ws + "group g any\nquorum g\n",
		"group no threshold":        ws + "group g\nquorum none\n",
		"group threshold 0":         ws + "group g 0 a b\nquorum g\n",
		"group threshold over n":    ws + "group g 3 a b\nquorum g\n",
		"group threshold leading 0": ws + "group g 02 a b\nquorum g\n",
		"group threshold negative":  ws + "group g -1 a b\nquorum g\n",
		"group threshold huge":      ws + "group g 18446744073709551617 a b\nquorum g\n",
		"group threshold ALL":       ws + "group g ALL a b\nquorum g\n",
		"group undefined member":    ws + "group g any a c\nquorum g\n",
		"group member defined late": "witness a " + v1 + "\ngroup g any a b\nwitness b " + v2 + "\nquorum g\n",
		"group lists itself":        ws + "group g any a g\nquorum g\n",
		"group cycle":               ws + "group g any a h\ngroup h any b g\nquorum g\n",
		"group lists none":          ws + "group g any a none\nquorum g\n",
		"group repeats member":      ws + "group g 2 a a\nquorum g\n",
		"member of two groups":      ws + "group g any a\ngroup h any a b\ngroup q all g h\nquorum q\n",
		"group in two groups":       ws + "group g any a\ngroup h any g\ngroup i any g b\nquorum i\n",
		"duplicate group":           ws + "group g any a\ngroup g any b\nquorum g\n",
		"carriage return":           "quorum none\r\n",
		"NUL":                       "quorum none\n\x00",
		"DEL":                       "quorum none\x7f\n",
		"vertical tab":              "quorum\vnone\n",
		"form feed":                 "quorum none\n\f\n",
		"control in comment":        "# \x1b[31m\nquorum none\n",
		"NBSP is not a separator":   "quorum\u00a0none\n",
	}
	for name, text := range bad {
		p, err := ParsePolicy([]byte(text))
		if err == nil {
			t.Errorf("%s: ParsePolicy(%q) = %s, want error", name, text, p.Marshal())
			continue
		}
		if !errors.Is(err, ErrInvalidPolicy) {
			t.Errorf("%s: error %v does not wrap ErrInvalidPolicy", name, err)
		}
	}
}

func FuzzParsePolicy(f *testing.F) {
	_, _, logKey := policyLogKey("log.example", 100)
	w1, _ := newTestCosigner(f, "w1.example", 1)
	w2, _ := newTestCosigner(f, "w2.example", 2)
	v1, v2 := w1.VerifierKey(), w2.VerifierKey()
	f.Add([]byte(newExamplePolicy(f).text))
	f.Add([]byte("quorum none\n"))
	f.Add([]byte("log " + logKey + " https://log.example/\nwitness a " + v1 + "\nwitness b " + v2 + " https://b/\ngroup g all a b\ngroup h any g\nquorum h"))
	f.Add([]byte("# c\n\t witness a " + v1 + "\nquorum a\n"))
	f.Add([]byte("witness a " + v1 + "\ngroup g 1 a a\nquorum g\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParsePolicy(b)
		if err != nil {
			if !errors.Is(err, ErrInvalidPolicy) {
				t.Fatalf("error %v does not wrap ErrInvalidPolicy", err)
			}
			return
		}
		m := p.Marshal()
		p2, err := ParsePolicy(m)
		if err != nil {
			t.Fatalf("ParsePolicy(%q) marshals to %q, which does not parse: %v", b, m, err)
		}
		if m2 := p2.Marshal(); !bytes.Equal(m, m2) {
			t.Fatalf("ParsePolicy(%q) marshals to %q, then to %q", b, m, m2)
		}
		if !reflect.DeepEqual(p.Groups(), p2.Groups()) || p.Quorum() != p2.Quorum() || len(p.Logs()) != len(p2.Logs()) || len(p.Witnesses()) != len(p2.Witnesses()) {
			t.Fatalf("ParsePolicy(%q) and its Marshal differ", b)
		}
		if p.Quorum() == "" {
			t.Fatal("empty quorum")
		}
		members := make(map[string]bool)
		for _, g := range p.Groups() {
			if g.K < 1 || g.K > len(g.Members) {
				t.Fatalf("group %+v has threshold out of range", g)
			}
			for _, m := range g.Members {
				if members[m] {
					t.Fatalf("%q is a member twice", m)
				}
				members[m] = true
			}
		}
		// The quorum of an empty note is met only without witnesses.
		err = p.CheckCosignatures(&note.Note{Text: "x\n"})
		if (err == nil) != (p.quorumNode < 0) {
			t.Fatalf("CheckCosignatures of a note without cosignatures: %v, quorum %q", err, p.Quorum())
		}
	})
}
