package client_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/api/client"
)

// checkFollows adds entries to a log through add, and checks that v
// follows it: Update, Latest, inclusion proofs and entries.
func checkFollows(t *testing.T, v *client.Verifier, origin string, lv note.Verifier, add func(...string)) {
	t.Helper()
	ctx := context.Background()
	if _, ok, err := v.Latest(ctx); ok || err != nil {
		t.Fatalf("Latest() before any Update = %v, %v", ok, err)
	}
	all := entries("e", 0, 3)
	add(all...)
	cp, err := v.Update(ctx)
	if err != nil || cp.Size != 3 {
		t.Fatalf("Update() = size %d, %v; want 3", cp.Size, err)
	}
	more := entries("e", 3, 300)
	add(more...)
	all = append(all, more...)
	if cp, err = v.Update(ctx); err != nil || cp.Size != 303 {
		t.Fatalf("Update() = size %d, %v; want 303", cp.Size, err)
	}
	if again, err := v.Update(ctx); err != nil || again.Hash != cp.Hash {
		t.Fatalf("Update() of the same tree = %+v, %v", again, err)
	}
	latest, ok, err := v.Latest(ctx)
	if err != nil || !ok || latest.Size != 303 || latest.Hash != cp.Hash || !bytes.Equal(latest.Signed, cp.Signed) {
		t.Fatalf("Latest() = %+v, %v, %v", latest.Checkpoint, ok, err)
	}

	for _, i := range []uint64{0, 2, 255, 256, 302} {
		leaf := client.LeafHash([]byte(all[i]))
		b, err := v.ProveInclusion(ctx, cp, i, leaf)
		if err != nil {
			t.Fatalf("ProveInclusion(%d): %v", i, err)
		}
		// The bundle round-trips and verifies on its own.
		p, err := api.ParseProofBundle(b.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := api.VerifyProofBundle(p, leaf, origin, lv); err != nil {
			t.Errorf("the proof bundle of index %d: %v", i, err)
		}
		if _, err := v.ProveInclusion(ctx, cp, i, client.LeafHash([]byte("not in the log"))); err == nil {
			t.Errorf("ProveInclusion(%d) of another leaf succeeded", i)
		}
	}
	if _, err := v.ProveInclusion(ctx, cp, 303, client.LeafHash([]byte("e-0"))); err == nil {
		t.Error("ProveInclusion beyond the tree succeeded")
	}

	for _, r := range [][2]uint64{{0, 303}, {250, 260}, {256, 256}, {302, 303}} {
		var got []string
		for e, err := range v.Entries(ctx, cp, r[0], r[1]) {
			if err != nil {
				t.Fatalf("Entries(%d, %d): %v", r[0], r[1], err)
			}
			if e.Index != r[0]+uint64(len(got)) {
				t.Fatalf("Entries(%d, %d) yielded index %d after %d entries", r[0], r[1], e.Index, len(got))
			}
			got = append(got, string(e.Data))
		}
		if want := all[r[0]:r[1]]; strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("Entries(%d, %d) = %d entries, want %d", r[0], r[1], len(got), len(want))
		}
	}
	for _, err := range v.Entries(ctx, cp, 300, 304) {
		if err == nil {
			t.Error("Entries beyond the tree succeeded")
		}
	}
}

func TestFollowsCandorLog(t *testing.T) {
	key := newLogKey("example.com/candor")
	l := newCandorLog(t, key)
	_, c, _ := serveLog(t, l.handler)
	v := newVerifier(t, c, key, client.VerifierConfig{})
	checkFollows(t, v, key.verifier.Name(), key.verifier, func(e ...string) { l.add(t, e...) })
}

// TestFollowsTlogLog follows a log that Candor does not serve: tiles and
// checkpoints made by golang.org/x/mod/sumdb/tlog and note.
func TestFollowsTlogLog(t *testing.T) {
	key := newLogKey("example.com/tlog")
	s := &tlogServer{origin: "example.com/tlog", signer: key.signer}
	_, c, _ := serveLog(t, s)
	v := newVerifier(t, c, key, client.VerifierConfig{})
	checkFollows(t, v, key.verifier.Name(), key.verifier, func(e ...string) { s.add(t, e...) })
}

// forkError returns err as a *ForkError with reason, or fails.
func forkError(t *testing.T, err error, reason error) *client.ForkError {
	t.Helper()
	var fe *client.ForkError
	if !errors.As(err, &fe) || !errors.Is(err, reason) {
		t.Fatalf("error %v, want a ForkError for %v", err, reason)
	}
	return fe
}

// checkEvidence checks that the fork's evidence is what
// `candor verify-evidence` accepts: it parses, and proves misbehaviour in
// canonical form.
func checkEvidence(t *testing.T, fe *client.ForkError, key logKey, kind string) api.Evidence {
	t.Helper()
	ev, err := fe.Evidence()
	if err != nil {
		t.Fatalf("Evidence(): %v", err)
	}
	b, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := api.ParseEvidence(b)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := parsed.VerifyCanonical(key.verifier); err != nil || parsed.Kind != kind {
		t.Fatalf("the evidence (%s) does not verify: %v", parsed.Kind, err)
	}
	return ev
}

// checkLatest checks the size of the last verified checkpoint.
func checkLatest(t *testing.T, v *client.Verifier, size uint64) {
	t.Helper()
	cp, ok, err := v.Latest(context.Background())
	if err != nil || !ok || cp.Size != size {
		t.Fatalf("Latest() = size %d, %v, %v; want %d", cp.Size, ok, err, size)
	}
}

func TestRollback(t *testing.T) {
	ctx := context.Background()
	key := newLogKey("example.com/rollback")
	l := newCandorLog(t, key)
	f, c, _ := serveLog(t, l.handler)
	v := newVerifier(t, c, key, client.VerifierConfig{})
	l.add(t, entries("e", 0, 3)...)
	old := l.checkpoint()
	l.add(t, entries("e", 3, 2)...)
	if _, err := v.Update(ctx); err != nil {
		t.Fatal(err)
	}
	f.serveCheckpoint(old)
	_, err := v.Update(ctx)
	fe := forkError(t, err, client.ErrRollback)
	if fe.Old.Size != 5 || fe.New.Size != 3 || !bytes.Equal(fe.New.Signed, old) {
		t.Errorf("ForkError has sizes %d and %d", fe.Old.Size, fe.New.Size)
	}
	// An old checkpoint of the same tree proves nothing against the log.
	if _, err := fe.Evidence(); !errors.Is(err, client.ErrNoEvidence) {
		t.Errorf("Evidence() of a rollback: %v", err)
	}
	checkLatest(t, v, 5)
	t.Log(err)
}

func TestForkSameSize(t *testing.T) {
	ctx := context.Background()
	key := newLogKey("example.com/fork")
	a, b := newCandorLog(t, key), newCandorLog(t, key)
	a.add(t, entries("a", 0, 3)...)
	b.add(t, entries("b", 0, 3)...)
	f, c, url := serveLog(t, a.handler)
	w := newTestWitness(t, key, url)
	v := newVerifier(t, c, key, client.VerifierConfig{})
	if _, err := v.Update(ctx); err != nil {
		t.Fatal(err)
	}
	f.setNext(b.handler)
	_, err := v.Update(ctx)
	fe := forkError(t, err, client.ErrEquivocation)
	t.Log(err)
	ev := checkEvidence(t, fe, key, api.EvidenceEquivocation)
	checkLatest(t, v, 3)

	replies, err := fe.Offer(ctx, nil, w.url)
	if err != nil || replies[0].Result != "evidence" {
		t.Fatalf("Offer() = %+v, %v", replies, err)
	}
	held, err := api.ParseEvidence(replies[0].Evidence)
	if err != nil || held.ID() != ev.ID() {
		t.Fatalf("the witness holds evidence %v, %v; want %s", held.ID(), err, ev.ID())
	}

	// A witness that does not follow the log says so.
	stranger := newTestWitness(t, newLogKey("example.com/another"), "")
	var se *client.StatusError
	if _, err := fe.Offer(ctx, nil, stranger.url); !errors.As(err, &se) || se.StatusCode != http.StatusNotFound {
		t.Errorf("Offer() to a witness of another log: %v", err)
	}
}

func TestInconsistentTrees(t *testing.T) {
	ctx := context.Background()
	key := newLogKey("example.com/inconsistent")
	a, b := newCandorLog(t, key), newCandorLog(t, key)
	a.add(t, entries("a", 0, 3)...)
	b.add(t, entries("b", 0, 300)...)

	t.Run("forward", func(t *testing.T) {
		f, c, url := serveLog(t, a.handler)
		w := newTestWitness(t, key, url)
		v := newVerifier(t, c, key, client.VerifierConfig{})
		if _, err := v.Update(ctx); err != nil {
			t.Fatal(err)
		}
		f.setNext(b.handler)
		_, err := v.Update(ctx)
		fe := forkError(t, err, client.ErrInconsistent)
		t.Log(err)
		if len(fe.Tiles) == 0 {
			t.Error("the ForkError carries no tiles")
		}
		ev := checkEvidence(t, fe, key, api.EvidenceInconsistency)
		checkLatest(t, v, 3)
		// The witness reads the log's tiles for itself.
		replies, err := fe.Offer(ctx, nil, w.url)
		if err != nil || replies[0].Result != "evidence" {
			t.Fatalf("Offer() = %+v, %v", replies, err)
		}
		if held, err := api.ParseEvidence(replies[0].Evidence); err != nil || held.ID() != ev.ID() {
			t.Fatalf("the witness holds evidence %v, %v; want %s", held.ID(), err, ev.ID())
		}
	})
	t.Run("backward", func(t *testing.T) {
		f, c, _ := serveLog(t, b.handler)
		v := newVerifier(t, c, key, client.VerifierConfig{})
		if _, err := v.Update(ctx); err != nil {
			t.Fatal(err)
		}
		// A smaller tree that the larger one's tiles prove to be another.
		f.serveCheckpoint(a.checkpoint())
		_, err := v.Update(ctx)
		fe := forkError(t, err, client.ErrInconsistent)
		checkEvidence(t, fe, key, api.EvidenceInconsistency)
		checkLatest(t, v, 300)
	})
}

// flipByte returns b with its byte at i (from the end if negative)
// changed.
func flipByte(i int) func([]byte) []byte {
	return func(b []byte) []byte {
		if i < 0 {
			i += len(b)
		}
		b[i] ^= 1
		return b
	}
}

func TestBadTile(t *testing.T) {
	ctx := context.Background()
	key := newLogKey("example.com/badtile")
	l := newCandorLog(t, key)
	f, c, _ := serveLog(t, l.handler)
	v := newVerifier(t, c, key, client.VerifierConfig{})
	l.add(t, entries("e", 0, 3)...)
	if _, err := v.Update(ctx); err != nil {
		t.Fatal(err)
	}
	l.add(t, entries("e", 3, 2)...)
	f.set("/tile/0/000.p/5", flipByte(40))
	_, err := v.Update(ctx)
	forkError(t, err, client.ErrUnproven)
	t.Log(err)
	checkLatest(t, v, 3)

	f.set("/tile/0/000.p/5", nil)
	cp, err := v.Update(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f.set("/tile/0/000.p/5", flipByte(-1))
	if _, err := v.ProveInclusion(ctx, cp, 1, client.LeafHash([]byte("e-1"))); err == nil {
		t.Error("ProveInclusion over a bad tile succeeded")
	} else {
		t.Log(err)
	}
	for _, err := range v.Entries(ctx, cp, 0, 5) {
		if err == nil {
			t.Fatal("Entries over a bad tile succeeded")
		}
		t.Log(err)
	}
}

// rebundle rewrites the entries of a bundle with fn.
func rebundle(t *testing.T, fn func([][]byte) [][]byte) func([]byte) []byte {
	return func(b []byte) []byte {
		es, err := api.ParseEntryBundle(b)
		if err != nil {
			t.Error(err)
			return b
		}
		var out []byte
		for _, e := range fn(es) {
			out, _ = api.AppendBundleEntry(out, e)
		}
		return out
	}
}

func TestBadEntryBundle(t *testing.T) {
	ctx := context.Background()
	key := newLogKey("example.com/badbundle")
	l := newCandorLog(t, key)
	f, c, _ := serveLog(t, l.handler)
	v := newVerifier(t, c, key, client.VerifierConfig{})
	l.add(t, entries("e", 0, 5)...)
	cp, err := v.Update(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		rewrite  func([]byte) []byte
		mismatch bool
	}{
		{"truncated", rebundle(t, func(es [][]byte) [][]byte { return es[:4] }), false},
		{"cut inside an entry", func(b []byte) []byte { return b[:len(b)-1] }, false},
		{"longer", rebundle(t, func(es [][]byte) [][]byte { return append(es, []byte("e-5")) }), false},
		{"reordered", rebundle(t, func(es [][]byte) [][]byte { es[1], es[2] = es[2], es[1]; return es }), true},
		{"altered", flipByte(-1), true},
		{"replaced", rebundle(t, func(es [][]byte) [][]byte { es[0] = []byte("e-9"); return es }), true},
	} {
		f.set("/tile/entries/000.p/5", tc.rewrite)
		n := 0
		for _, err := range v.Entries(ctx, cp, 0, 5) {
			n++
			if err == nil {
				t.Errorf("%s: Entries yielded an entry", tc.name)
				continue
			}
			if errors.Is(err, client.ErrEntryMismatch) != tc.mismatch {
				t.Errorf("%s: error %v, mismatch %v", tc.name, err, tc.mismatch)
			}
			t.Logf("%s: %v", tc.name, err)
		}
		if n != 1 {
			t.Errorf("%s: Entries yielded %d times, want one error", tc.name, n)
		}
	}
	f.set("/tile/entries/000.p/5", nil)
	for _, err := range v.Entries(ctx, cp, 0, 5) {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestBadFullEntryBundle alters a full entry bundle, whose entries are
// checked against the tree hash of all 256 at once: the error still names
// the entry that is wrong.
func TestBadFullEntryBundle(t *testing.T) {
	ctx := context.Background()
	key := newLogKey("example.com/badfullbundle")
	l := newCandorLog(t, key)
	f, c, _ := serveLog(t, l.handler)
	v := newVerifier(t, c, key, client.VerifierConfig{})
	l.add(t, entries("e", 0, 2*api.TileWidth+3)...)
	cp, err := v.Update(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		rewrite  func([]byte) []byte
		mismatch bool
	}{
		{"truncated", rebundle(t, func(es [][]byte) [][]byte { return es[:255] }), false},
		{"reordered", rebundle(t, func(es [][]byte) [][]byte { es[7], es[200] = es[200], es[7]; return es }), true},
		{"replaced", rebundle(t, func(es [][]byte) [][]byte { es[300-api.TileWidth] = []byte("x"); return es }), true},
	} {
		f.set("/tile/entries/001", tc.rewrite)
		var got uint64
		var failed error
		for e, err := range v.Entries(ctx, cp, 10, cp.Size) {
			if err != nil {
				failed = err
				break
			}
			got = e.Index + 1
		}
		if failed == nil {
			t.Errorf("%s: Entries over the altered bundle succeeded", tc.name)
			continue
		}
		if errors.Is(failed, client.ErrEntryMismatch) != tc.mismatch {
			t.Errorf("%s: error %v, mismatch %v", tc.name, failed, tc.mismatch)
		}
		if got != api.TileWidth {
			t.Errorf("%s: Entries yielded up to index %d before the error, want the first bundle whole", tc.name, got)
		}
		t.Logf("%s: %v", tc.name, failed)
	}
	f.set("/tile/entries/001", nil)
	n := 0
	for _, err := range v.Entries(ctx, cp, 10, cp.Size) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if want := int(cp.Size) - 10; n != want {
		t.Errorf("Entries yielded %d entries, want %d", n, want)
	}
}

// resign returns a rewrite of a signed checkpoint: its text signed by
// signers.
func resign(t *testing.T, signers ...note.Signer) func([]byte) []byte {
	return func(b []byte) []byte {
		text := b[:bytes.Index(b, []byte("\n\n"))+1]
		signed, err := note.Sign(&note.Note{Text: string(text)}, signers...)
		if err != nil {
			t.Error(err)
		}
		return signed
	}
}

// badSignature changes the signature bytes (not the key ID) of the first
// signature line of a signed note.
func badSignature(b []byte) []byte {
	i := bytes.Index(b, []byte("\n\n")) + 2
	end := i + bytes.IndexByte(b[i:], '\n')
	line := b[i:end]
	sp := bytes.LastIndexByte(line, ' ') + 1
	raw, _ := base64.StdEncoding.DecodeString(string(line[sp:]))
	raw[10] ^= 1
	out := append(bytes.Clone(b[:i+sp]), base64.StdEncoding.EncodeToString(raw)...)
	return append(out, b[end:]...)
}

func TestCheckpointSignatures(t *testing.T) {
	ctx := context.Background()
	key := newLogKey("example.com/cosigned")
	l := newCandorLog(t, key)
	l.add(t, entries("e", 0, 3)...)
	f, c, _ := serveLog(t, l.handler)

	now := time.Unix(1_800_000_000, 0)
	newKey := func(name string) string {
		skey, _, err := api.GenerateCosignerKey(rand.Reader, name)
		if err != nil {
			t.Fatal(err)
		}
		return skey
	}
	w1, w2 := newKey("w1.example"), newKey("w2.example")
	// cosigner returns the cosigner of skey with its clock at now+d.
	cosigner := func(skey string, d time.Duration) *api.Cosigner {
		s, err := api.NewCosigner(skey, func() time.Time { return now.Add(d) })
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cosign := func(signers ...note.Signer) func([]byte) []byte {
		return func(b []byte) []byte { return apitest.AddSignatures(b, signers...) }
	}
	policy, err := api.ParsePolicy(fmt.Appendf(nil, "log %s\nwitness w1 %s\nwitness w2 %s\ngroup both all w1 w2\nquorum both\n",
		key.vkey, cosigner(w1, 0).VerifierKey(), cosigner(w2, 0).VerifierKey()))
	if err != nil {
		t.Fatal(err)
	}
	other := newLogKey("example.com/cosigned")
	fresh1, fresh2 := cosigner(w1, -10*time.Minute), cosigner(w2, -59*time.Minute)

	var unverified *note.UnverifiedNoteError
	var invalid *note.InvalidSignatureError
	for _, tc := range []struct {
		name    string
		rewrite func([]byte) []byte
		want    []error // what the error wraps; none for success
		wantAs  any
	}{
		{name: "both cosigned", rewrite: cosign(fresh1, fresh2)},
		{name: "both cosigned, a second ahead", rewrite: cosign(fresh1, cosigner(w2, time.Second))},
		{name: "one cosigned", rewrite: cosign(fresh1), want: []error{api.ErrQuorumNotMet}},
		{name: "none cosigned", want: []error{api.ErrQuorumNotMet}},
		{name: "one twice", rewrite: cosign(fresh1, cosigner(w1, -time.Minute)), want: []error{api.ErrQuorumNotMet}},
		{name: "one stale", rewrite: cosign(fresh1, cosigner(w2, -61*time.Minute)),
			want: []error{api.ErrQuorumNotMet, client.ErrStaleCosignatures}},
		{name: "one from the future", rewrite: cosign(cosigner(w1, time.Hour), fresh2),
			want: []error{api.ErrQuorumNotMet, client.ErrStaleCosignatures}},
		{name: "bad cosignature", rewrite: func(b []byte) []byte {
			b = cosign(fresh1, fresh2)(b)
			// The last line is w2's: change its signature.
			i := bytes.LastIndex(b[:len(b)-1], []byte("\n")) + 1
			return append(b[:i], badSignature(append([]byte("x\n\n"), b[i:]...))[3:]...)
		}, wantAs: &invalid},
		{name: "bad log signature", rewrite: func(b []byte) []byte { return cosign(fresh1, fresh2)(badSignature(b)) }, wantAs: &invalid},
		{name: "signed by another key", rewrite: func(b []byte) []byte { return cosign(fresh1, fresh2)(resign(t, other.signer)(b)) }, wantAs: &unverified},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.set("/checkpoint", tc.rewrite)
			v := newVerifier(t, c, key, client.VerifierConfig{Policy: policy, MaxCosignatureAge: time.Hour, Now: func() time.Time { return now }})
			cp, err := v.Update(ctx)
			if len(tc.want) == 0 && tc.wantAs == nil {
				if err != nil || cp.Size != 3 {
					t.Fatalf("Update() = size %d, %v", cp.Size, err)
				}
				return
			}
			if err == nil {
				t.Fatal("Update() succeeded")
			}
			t.Log(err)
			for _, w := range tc.want {
				if !errors.Is(err, w) {
					t.Errorf("the error does not wrap %v", w)
				}
			}
			if len(tc.want) == 1 && errors.Is(err, client.ErrStaleCosignatures) {
				t.Error("the error says the cosignatures are stale")
			}
			if tc.wantAs != nil && !errors.As(err, tc.wantAs) {
				t.Errorf("the error is not a %T", tc.wantAs)
			}
			if _, ok, _ := v.Latest(ctx); ok {
				t.Error("the refused checkpoint was stored")
			}
		})
	}
}

func TestNewVerifierConfig(t *testing.T) {
	key := newLogKey("example.com/config")
	c := client.New("http://127.0.0.1:1", nil)
	skey, wvkey, err := api.GenerateCosignerKey(rand.Reader, "w.example")
	if err != nil {
		t.Fatal(err)
	}
	cosigner, err := api.NewCosigner(skey, nil)
	if err != nil {
		t.Fatal(err)
	}
	otherLog := newLogKey("example.com/other")
	policy := func(text string) *api.Policy {
		p, err := api.ParsePolicy([]byte(text))
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name string
		cfg  client.VerifierConfig
		ok   bool
	}{
		{"minimal", client.VerifierConfig{Origin: "example.com/config", LogVerifier: key.verifier}, true},
		{"policy of witnesses only", client.VerifierConfig{Origin: "example.com/config", LogVerifier: key.verifier,
			Policy: policy("witness w " + wvkey + "\nquorum w\n"), MaxCosignatureAge: time.Hour}, true},
		{"policy listing the log", client.VerifierConfig{Origin: "example.com/config", LogVerifier: key.verifier,
			Policy: policy("log " + key.vkey + "\nquorum none\n")}, true},
		{"no origin", client.VerifierConfig{LogVerifier: key.verifier}, false},
		{"no key", client.VerifierConfig{Origin: "example.com/config"}, false},
		{"key of another origin", client.VerifierConfig{Origin: "example.com/other", LogVerifier: key.verifier}, false},
		{"a witness's key", client.VerifierConfig{Origin: "w.example", LogVerifier: cosigner.Verifier()}, false},
		{"policy of another log", client.VerifierConfig{Origin: "example.com/config", LogVerifier: key.verifier,
			Policy: policy("log " + otherLog.vkey + "\nquorum none\n")}, false},
		{"age without policy", client.VerifierConfig{Origin: "example.com/config", LogVerifier: key.verifier, MaxCosignatureAge: time.Hour}, false},
		{"negative age", client.VerifierConfig{Origin: "example.com/config", LogVerifier: key.verifier,
			Policy: policy("witness w " + wvkey + "\nquorum w\n"), MaxCosignatureAge: -time.Hour}, false},
	} {
		_, err := client.NewVerifier(c, tc.cfg)
		if (err == nil) != tc.ok {
			t.Errorf("%s: NewVerifier() = %v", tc.name, err)
		}
	}
}

// TestOfflineVerifier checks a Verifier made without a Client: it verifies
// the bundles it is given, and what would read the log fails with
// ErrOffline.
func TestOfflineVerifier(t *testing.T) {
	ctx := context.Background()
	key := newLogKey("example.com/offline")
	l := newCandorLog(t, key)
	_, c, _ := serveLog(t, l.handler)
	online := newVerifier(t, c, key, client.VerifierConfig{})
	l.add(t, entries("e", 0, 5)...)
	cp, err := online.Update(ctx)
	if err != nil {
		t.Fatal(err)
	}
	leaf := client.LeafHash([]byte("e-3"))
	b, err := online.ProveInclusion(ctx, cp, 3, leaf)
	if err != nil {
		t.Fatal(err)
	}

	offline := newVerifier(t, nil, key, client.VerifierConfig{})
	if got, err := offline.VerifyBundle(b, leaf); err != nil || got.Hash != cp.Hash {
		t.Errorf("VerifyBundle = %+v, %v", got.Checkpoint, err)
	}
	if _, err := offline.VerifyBundle(b, client.LeafHash([]byte("e-4"))); !errors.Is(err, api.ErrInvalidProofBundle) {
		t.Errorf("VerifyBundle of another leaf: %v, want ErrInvalidProofBundle", err)
	}
	other := newVerifier(t, nil, newLogKey("example.com/offline"), client.VerifierConfig{})
	if _, err := other.VerifyBundle(b, leaf); err == nil {
		t.Error("VerifyBundle under another log key succeeded")
	}
	if _, err := offline.Update(ctx); !errors.Is(err, client.ErrOffline) {
		t.Errorf("offline Update: %v, want ErrOffline", err)
	}
	if _, err := offline.ProveInclusion(ctx, cp, 3, leaf); !errors.Is(err, client.ErrOffline) {
		t.Errorf("offline ProveInclusion: %v, want ErrOffline", err)
	}
	for _, err := range offline.Entries(ctx, cp, 0, 1) {
		if !errors.Is(err, client.ErrOffline) {
			t.Errorf("offline Entries: %v, want ErrOffline", err)
		}
	}
}

// TestCompare compares checkpoints signed by the log with the last
// verified one, without storing them: consistent ones pass, forks the
// log's tiles prove come with evidence, and what the tiles cannot reach
// is ErrUnproven without evidence.
func TestCompare(t *testing.T) {
	ctx := context.Background()
	key := newLogKey("example.com/compare")
	a, b := newCandorLog(t, key), newCandorLog(t, key)
	a.add(t, entries("a", 0, 300)...)
	small := a.checkpoint()
	a.add(t, entries("a", 300, 300)...)
	b.add(t, entries("b", 0, 300)...)
	_, c, _ := serveLog(t, a.handler)
	v := newVerifier(t, c, key, client.VerifierConfig{})
	if err := v.Compare(ctx, small); err != nil {
		t.Fatalf("Compare() with nothing verified = %v", err)
	}
	if _, err := v.Accept(ctx, small); err != nil {
		t.Fatal(err)
	}
	big := a.checkpoint()
	if err := v.Compare(ctx, big); err != nil {
		t.Errorf("Compare(a larger, consistent tree) = %v", err)
	}
	checkLatest(t, v, 300)
	if _, err := v.Update(ctx); err != nil {
		t.Fatal(err)
	}
	// In order: b grows from 300 to 600, then to 700.
	for _, want := range []struct {
		name   string
		grow   int // entries b gets first
		signed []byte
		reason error
		proven bool
	}{
		{"the same tree", 0, big, nil, false},
		{"a prefix", 0, small, nil, false},
		{"another tree, smaller", 0, b.checkpoint(), client.ErrInconsistent, true},
		{"another tree, same size", 300, nil, client.ErrEquivocation, true},
		{"another tree, unreachable", 100, nil, client.ErrUnproven, false},
	} {
		signed := want.signed
		if want.grow > 0 {
			b.add(t, entries("b", b.size(), want.grow)...)
			signed = b.checkpoint()
		}
		err := v.Compare(ctx, signed)
		if want.reason == nil {
			if err != nil {
				t.Errorf("%s: Compare() = %v", want.name, err)
			}
			continue
		}
		fe := forkError(t, err, want.reason)
		if _, eerr := fe.Evidence(); (eerr == nil) != want.proven {
			t.Errorf("%s: Evidence() = %v, want evidence %v", want.name, eerr, want.proven)
		}
	}
	checkLatest(t, v, 600)
	if err := v.Compare(ctx, badSignature(big)); err == nil {
		t.Error("Compare() of a checkpoint the log did not sign passed")
	}
}
