package witness_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/storage/pebble"
	"github.com/candorlog/candor/witness"
)

// A hostile member of the gossip network costs a witness little: what it
// cannot use it refuses or drops unchecked, and it checks each message and
// each signature once. The checks are counted by countingVerifiers, real
// verifiers that count their calls.

// countingVerifier is a note.Verifier that counts the signatures it checks.
type countingVerifier struct {
	note.Verifier
	n atomic.Int64
}

func (v *countingVerifier) Verify(msg, sig []byte) bool {
	v.n.Add(1)
	return v.Verifier.Verify(msg, sig)
}

// newCosignerAt returns a new cosigner named name whose clock reads now,
// or the time if now is zero.
func newCosignerAt(t testing.TB, name string, now time.Time) *api.Cosigner {
	t.Helper()
	skey, _, err := api.GenerateCosignerKey(rand.Reader, name)
	if err != nil {
		t.Fatal(err)
	}
	return cosignerAt(t, skey, now)
}

// cosignerAt returns the cosigner of skey whose clock reads now, or the
// time if now is zero.
func cosignerAt(t testing.TB, skey string, now time.Time) *api.Cosigner {
	t.Helper()
	var clock func() time.Time
	if !now.IsZero() {
		clock = func() time.Time { return now }
	}
	c, err := api.NewCosigner(skey, clock)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// observer is a witness on pebble state that follows one log, whose checks
// of the log's and of its peers' signatures are counted.
type observer struct {
	w        *witness.Witness
	cosigner *api.Cosigner
	logV     *countingVerifier
	peers    map[string]*countingVerifier // by name
	reg      *prometheus.Registry
}

func newObserver(t testing.TB, name string, l *testLog, peers ...*api.Cosigner) *observer {
	t.Helper()
	state, err := pebble.OpenWitnessState(t.TempDir(), pebble.Options{Logger: quiet, CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := state.Close(); err != nil {
			t.Errorf("closing the witness state: %v", err)
		}
	})
	o := &observer{
		cosigner: newCosignerAt(t, name, time.Time{}),
		logV:     &countingVerifier{Verifier: l.verifier},
		peers:    make(map[string]*countingVerifier),
		reg:      prometheus.NewRegistry(),
	}
	var pv []note.Verifier
	for _, p := range peers {
		v := &countingVerifier{Verifier: p.Verifier()}
		o.peers[p.Name()] = v
		pv = append(pv, v)
	}
	o.w, err = witness.New(witness.Config{Cosigner: o.cosigner, State: state, Evidence: state, Logger: quiet,
		Logs: []witness.Log{{Origin: l.origin, Verifier: o.logV}}, Peers: pv, Registerer: o.reg})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// checks returns the number of signatures o checked so far: the log's,
// and its peers' in all.
func (o *observer) checks() (log, peers int64) {
	for _, v := range o.peers {
		peers += v.n.Load()
	}
	return o.logV.n.Load(), peers
}

// observed returns candor_witness_observed_checkpoints_total{result}.
func (o *observer) observed(t testing.TB, result string) float64 {
	t.Helper()
	mfs, err := o.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "candor_witness_observed_checkpoints_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == result {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// cosign returns signed with cosignature lines by each cosigner added.
func cosign(t testing.TB, signed []byte, cosigners ...*api.Cosigner) []byte {
	t.Helper()
	text := signed[:bytes.Index(signed, []byte("\n\n"))+1]
	out := bytes.Clone(signed)
	for _, c := range cosigners {
		s, err := api.NoteSignature(c, text)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, api.MarshalCosignatureLines([]note.Signature{s})...)
	}
	return out
}

// forged returns a cosignature line under c's name and key ID that is
// well formed and does not verify; seed makes it unique.
func forged(c *api.Cosigner, seed uint64) []byte {
	raw := make([]byte, 4+8+64)
	binary.BigEndian.PutUint32(raw, c.KeyHash())
	binary.BigEndian.PutUint64(raw[4:], uint64(time.Now().Unix()))
	binary.BigEndian.PutUint64(raw[12:], seed)
	return api.MarshalCosignatureLines([]note.Signature{{Name: c.Name(), Hash: c.KeyHash(), Base64: base64.StdEncoding.EncodeToString(raw)}})
}

// cosigners returns n new cosigners named prefix0, prefix1...
func cosigners(t testing.TB, prefix string, n int) []*api.Cosigner {
	var out []*api.Cosigner
	for i := range n {
		out = append(out, newCosignerAt(t, fmt.Sprintf("%s%d", prefix, i), time.Time{}))
	}
	return out
}

// TestObserveRefusesUnusableLines: a note whose signature lines could not
// all be used is refused as invalid before any signature is checked.
func TestObserveRefusesUnusableLines(t *testing.T) {
	l := newTestLog("example.com/hostile")
	tr := newTree(t, 20, 20, "")
	skey0, _, err := api.GenerateCosignerKey(rand.Reader, "witness.example/p0")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	peers := []*api.Cosigner{cosignerAt(t, skey0, now), newCosignerAt(t, "witness.example/p1", time.Time{})}
	// The same peer an hour later: another valid cosignature.
	p0Later := cosignerAt(t, skey0, now.Add(time.Hour))
	o := newObserver(t, "witness.example/self", l, peers...)
	cp := l.checkpoint(t, tr, 10)

	ninetyNine := cosign(t, cp)
	for i := range 99 {
		ninetyNine = append(ninetyNine, forged(peers[0], uint64(i))...)
	}
	validAnd98 := cosign(t, cp, peers[0])
	for i := range 98 {
		validAnd98 = append(validAnd98, forged(peers[0], uint64(i))...)
	}
	unknown := newCosignerAt(t, "witness.example/stranger", time.Time{})
	tooMany := cosign(t, cp, peers[0])
	for i := range 100 {
		tooMany = append(tooMany, forged(unknown, uint64(i))...)
	}
	logLine := cp[bytes.Index(cp, []byte("\n\n"))+2:]
	for _, tc := range []struct {
		name string
		msg  []byte
	}{
		{"99 forged lines of a peer", ninetyNine},
		{"a valid and 98 forged lines of a peer", validAnd98},
		{"two valid cosignatures by a peer", cosign(t, cosign(t, cp, peers[0], peers[1]), p0Later)},
		{"a line of a peer twice", append(cosign(t, cp, peers[0], peers[1]), cosign(t, cp, peers[0])[len(cp):]...)},
		{"the log's line twice", append(cosign(t, cp, peers[0]), logLine...)},
		{"more than 100 lines", tooMany},
	} {
		t.Run(tc.name, func(t *testing.T) {
			logChecks, peerChecks := o.checks()
			invalid := o.observed(t, "invalid")
			if _, err := o.w.Observe(t.Context(), tc.msg, true); !errors.Is(err, witness.ErrBadRequest) {
				t.Fatalf("Observe = %v, want ErrBadRequest", err)
			}
			if l, p := o.checks(); l != logChecks || p != peerChecks {
				t.Errorf("Observe checked %d signatures of the log and %d of peers, want none", l-logChecks, p-peerChecks)
			}
			if got := o.observed(t, "invalid"); got != invalid+1 {
				t.Errorf("invalid observations: %v, want %v", got, invalid+1)
			}
		})
	}
	if served, err := o.w.Served(t.Context(), l.origin); err != nil || served != nil {
		t.Errorf("Served = %q, %v; want nothing", served, err)
	}
}

// TestObserveChecksOnce: a replayed message costs no check; one that adds
// lines to a known one costs only the new lines.
func TestObserveChecksOnce(t *testing.T) {
	l := newTestLog("example.com/replay")
	tr := newTree(t, 20, 20, "")
	peers := cosigners(t, "witness.example/p", 3)
	o := newObserver(t, "witness.example/self", l, peers...)
	ctx := t.Context()
	cp := l.checkpoint(t, tr, 10)
	msg := cosign(t, cp, peers[0], peers[1])

	observe := func(msg []byte, want string, wantErr error, wantLog, wantPeers int64) {
		t.Helper()
		logChecks, peerChecks := o.checks()
		got, err := o.w.Observe(ctx, msg, true)
		if got.Result != want || !errors.Is(err, wantErr) {
			t.Fatalf("Observe = %+v, %v; want %q, %v", got, err, want, wantErr)
		}
		if l, p := o.checks(); l-logChecks != wantLog || p-peerChecks != wantPeers {
			t.Fatalf("Observe checked %d signatures of the log and %d of peers, want %d and %d", l-logChecks, p-peerChecks, wantLog, wantPeers)
		}
	}
	observe(msg, witness.ObservedConsistent, nil, 1, 2)
	observe(msg, witness.ObservedConsistent, nil, 0, 0)
	// The same lines in another order.
	lines := strings.SplitAfter(string(msg[len(cp):]), "\n")
	reordered := append(bytes.Clone(cp[:bytes.Index(cp, []byte("\n\n"))+2]), lines[1]+lines[0]+string(cp[bytes.Index(cp, []byte("\n\n"))+2:])...)
	observe(reordered, witness.ObservedConsistent, nil, 0, 0)
	// Lines of a key the witness does not trust are dropped unchecked,
	// however many.
	stranger := newCosignerAt(t, "witness.example/stranger", time.Time{})
	observe(append(append(bytes.Clone(msg), forged(stranger, 1)...), forged(stranger, 2)...), witness.ObservedConsistent, nil, 0, 0)
	// One line more: only it is checked, and merged.
	observe(cosign(t, msg, peers[2]), witness.ObservedConsistent, nil, 0, 1)
	// A forged line of a peer is checked once, and dropped.
	withForged := append(bytes.Clone(msg), forged(peers[2], 1)...)
	observe(withForged, witness.ObservedConsistent, nil, 0, 1)
	observe(withForged, witness.ObservedConsistent, nil, 0, 0)
	// Alone, it is untrusted, and checked no more.
	observe(append(bytes.Clone(cp), forged(peers[2], 1)...), "", witness.ErrUntrusted, 0, 0)

	served, err := o.w.Served(ctx, l.origin)
	if err != nil {
		t.Fatal(err)
	}
	want := cosign(t, cp, peers...)
	for _, p := range peers {
		if !bytes.Contains(served, []byte("— "+p.Name()+" ")) {
			t.Errorf("the served view has no cosignature by %s:\n%s\nwant the lines of\n%s", p.Name(), served, want)
		}
	}
	if n := bytes.Count(served, []byte("\n— ")); n != 4 {
		t.Errorf("the served view has %d signature lines, want 4 (the log's and 3 peers'):\n%s", n, served)
	}
}

// TestObserveViewOfWiderWitness: a witness that trusts more peers than
// this one gossips its view, which carries cosignatures of witnesses this
// one does not know. It is accepted and merged, and the unknown lines are
// dropped unchecked.
func TestObserveViewOfWiderWitness(t *testing.T) {
	l := newTestLog("example.com/wider")
	tr := newTree(t, 20, 20, "")
	ctx := t.Context()
	shared := newCosignerAt(t, "witness.example/shared", time.Time{})
	strangers := cosigners(t, "witness.example/stranger", 2)
	wide := newObserver(t, "witness.example/wide", l, append([]*api.Cosigner{shared}, strangers...)...)
	cp := l.checkpoint(t, tr, 10)
	if o, err := wide.w.Observe(ctx, cosign(t, cp, shared, strangers[0], strangers[1]), true); err != nil || o.Result != witness.ObservedConsistent {
		t.Fatalf("the wide witness observed %+v, %v", o, err)
	}
	if _, err := wide.w.AddCheckpoint(ctx, api.AddCheckpointRequest{Checkpoint: cp}); err != nil {
		t.Fatal(err)
	}
	view, err := wide.w.Served(ctx, l.origin)
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(view, []byte("\n— ")); n != 5 {
		t.Fatalf("the wide witness serves %d signature lines, want 5:\n%s", n, view)
	}

	narrow := newObserver(t, "witness.example/narrow", l, shared, wide.cosigner)
	if o, err := narrow.w.Observe(ctx, view, true); err != nil || o.Result != witness.ObservedConsistent {
		t.Fatalf("the narrow witness observed the wide one's view: %+v, %v", o, err)
	}
	if l, p := narrow.checks(); l != 1 || p != 2 {
		t.Errorf("the narrow witness checked %d signatures of the log and %d of peers, want 1 and 2", l, p)
	}
	served, err := narrow.w.Served(ctx, l.origin)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*api.Cosigner{shared, wide.cosigner} {
		if !bytes.Contains(served, []byte("— "+c.Name()+" ")) {
			t.Errorf("the narrow witness serves no cosignature by %s:\n%s", c.Name(), served)
		}
	}
	for _, c := range strangers {
		if bytes.Contains(served, []byte("— "+c.Name()+" ")) {
			t.Errorf("the narrow witness serves the cosignature of %s, which it does not trust:\n%s", c.Name(), served)
		}
	}
}
