package witness_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
	"github.com/candorlog/candor/witness"
)

// bundleCounter serves a log, counting the entry bundles it serves by
// index, and failing those at or beyond failFrom (when not negative).
type bundleCounter struct {
	h        http.Handler
	mu       sync.Mutex
	served   map[uint64]int
	failFrom int64
}

func newBundleCounter(h http.Handler) *bundleCounter {
	return &bundleCounter{h: h, served: make(map[uint64]int), failFrom: -1}
}

func (b *bundleCounter) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if at, err := api.ParseTilePath(r.URL.Path); err == nil && at.Level == api.EntriesLevel {
		b.mu.Lock()
		fail := b.failFrom >= 0 && at.Index >= uint64(b.failFrom)
		if !fail {
			b.served[at.Index]++
		}
		b.mu.Unlock()
		if fail {
			http.Error(rw, "unavailable", http.StatusServiceUnavailable)
			return
		}
	}
	b.h.ServeHTTP(rw, r)
}

// reset forgets the bundles served, and fails those from failFrom on.
func (b *bundleCounter) reset(failFrom int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.served = make(map[uint64]int)
	b.failFrom = failFrom
}

func (b *bundleCounter) count() (bundles, min int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	min = -1
	for i, n := range b.served {
		bundles += n
		if min < 0 || int(i) < min {
			min = int(i)
		}
	}
	return bundles, min
}

// addValid adds valid build entries to the log, with subjects named after
// tag, until it has n, and returns its checkpoint.
func (c *candorLog) addValid(t testing.TB, l *testLog, tag string, n int) api.Checkpoint {
	t.Helper()
	s := apitest.NewBuildSigner()
	entries := make(chan []byte, 64)
	go func() {
		defer close(entries)
		for i := c.entries; i < n; i++ {
			entries <- s.Submission(fmt.Sprintf("%s-%d", tag, i), strings.Repeat("ab", 32))
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Go(func() {
			for sub := range entries {
				entry, err := api.CanonicalEntry(sub)
				if err == nil {
					_, err = c.log.Add(context.Background(), entry)
				}
				if err != nil {
					errs <- err
					for range entries {
					}
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	c.entries = n
	return c.checkpoint(t, l)
}

// add adds an entry as it is: the engine checks nothing, as a log that
// breaks its admission rules would.
func (c *candorLog) add(t testing.TB, entry []byte) {
	t.Helper()
	if _, err := c.log.Add(context.Background(), entry); err != nil {
		t.Fatal(err)
	}
	c.entries++
}

func (c *candorLog) checkpoint(t testing.TB, l *testLog) api.Checkpoint {
	t.Helper()
	signed, size := c.log.Checkpoint()
	if size != uint64(c.entries) {
		t.Fatalf("log size %d, want %d", size, c.entries)
	}
	cp, _, err := api.OpenCheckpoint(signed, l.origin, l.verifier)
	if err != nil {
		t.Fatal(err)
	}
	return cp
}

// gauge returns the value of the gauge name{origin}.
func (w *pullWitness) gauge(t testing.TB, name, origin string) float64 {
	t.Helper()
	mfs, err := w.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "origin" && lp.GetValue() == origin {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	t.Fatalf("no metric %s{origin=%q}", name, origin)
	return 0
}

// evidenceOf returns the evidence the witness serves about l.
func (w *pullWitness) evidenceOf(t testing.TB, l *testLog) []api.Evidence {
	t.Helper()
	r := get(t, w.url+"/v1/evidence")
	var list witness.EvidenceList
	if err := json.Unmarshal(r.body, &list); err != nil {
		t.Fatalf("GET /v1/evidence = %v: %v", r, err)
	}
	var out []api.Evidence
	for _, raw := range list.Evidence {
		e, err := api.ParseEvidence(raw)
		if err != nil {
			t.Fatal(err)
		}
		if e.Origin == l.origin {
			out = append(out, e)
		}
	}
	return out
}

// TestAuditCandorLog follows a real Candor log in audit mode: the witness
// cosigns its trees after reading and checking their entries, resumes an
// audit cut short (by the log, by a restart) where it stopped, and on an
// entry that fails admission refuses the log with evidence that verifies
// with the log's key alone, kept across a restart.
func TestAuditCandorLog(t *testing.T) {
	l := newTestLog("example.com/audit/candor")
	lg := newCandorLog(t, l)
	bc := newBundleCounter(lg.handler)
	srv := httptest.NewServer(bc)
	defer srv.Close()
	dir, skey := t.TempDir(), newCosignerKey(t)
	sources := []witness.Source{{Origin: l.origin, URL: srv.URL}}
	w := startPullWitness(t, dir, skey, true, []*testLog{l}, sources, nil)

	w.pollCosigned(t, l, lg.addValid(t, l, "a", 600))
	if got := w.gauge(t, "candor_witness_audited_entries", l.origin); got != 600 {
		t.Errorf("audited entries = %v, want 600", got)
	}
	if n, _ := bc.count(); n != 3 {
		t.Errorf("the audit read %d entry bundles for 600 entries, want 3", n)
	}

	// The log fails to serve the bundles from index 17 on: the audit
	// stops at the last whole chunk of 16 bundles it checked, 16, and the
	// witness does not cosign.
	bc.reset(17)
	cp := lg.addValid(t, l, "b", 5000)
	w.poll(t, l, witness.PullAuditing, witness.ErrNotAudited)
	if got := w.gauge(t, "candor_witness_audited_entries", l.origin); got != 16*256 {
		t.Errorf("audited entries = %v, want %d", got, 16*256)
	}
	if got := w.gauge(t, "candor_witness_audit_lag_entries", l.origin); got != float64(5000-16*256) {
		t.Errorf("audit lag = %v, want %d", got, 5000-16*256)
	}
	if c, _ := w.latest(t, l); c.Size != 600 {
		t.Fatalf("the witness cosigned size %d before its audit got there", c.Size)
	}
	// Restarted, the witness goes on from where it stopped: it reads
	// none of the bundles it checked again.
	w.close(t)
	w = startPullWitness(t, dir, skey, true, []*testLog{l}, sources, nil)
	bc.reset(-1)
	w.pollCosigned(t, l, cp)
	if _, first := bc.count(); first != 16 {
		t.Errorf("after the restart the audit read bundles from %d, want from 16", first)
	}

	// A pushed checkpoint goes through the same audit: the witness
	// cosigns what it has audited at once, and refuses with 503 what it
	// cannot audit.
	bc.reset(19)
	cp = lg.addValid(t, l, "c", 5200)
	signed, _ := lg.log.Checkpoint()
	proof, err := lg.log.ConsistencyProof(context.Background(), 5000, 5200)
	if err != nil {
		t.Fatal(err)
	}
	r := post(t, w.url, addBody(5000, proof, signed))
	if r.code != http.StatusServiceUnavailable {
		t.Fatalf("add-checkpoint of an unaudited tree = %v, want 503", r)
	}
	bc.reset(-1)
	checkCosigned(t, w.testWitness, l, signed, post(t, w.url, addBody(5000, proof, signed)))

	// An entry that fails admission: refused, with evidence.
	lg.add(t, []byte(`{"kind":"build","v":1,"envelope":{}}`))
	lg.addValid(t, l, "d", 5300)
	w.poll(t, l, witness.PullRefused, witness.ErrMisbehaved)
	if c, _ := w.latest(t, l); c.Size != cp.Size {
		t.Fatalf("the witness serves size %d, want %d: it cosigned a tree holding a bad entry", c.Size, cp.Size)
	}
	check := func(w *pullWitness) {
		t.Helper()
		evs := w.evidenceOf(t, l)
		if len(evs) != 1 || evs[0].Kind != api.EvidenceBadEntry {
			t.Fatalf("the witness holds %d pieces of evidence (%+v), want one bad entry", len(evs), evs)
		}
		cps, err := evs[0].VerifyCanonical(l.verifier)
		if err != nil {
			t.Fatalf("the evidence does not verify: %v", err)
		}
		if evs[0].Entry.Index != 5200 || cps[0].Size != 5300 {
			t.Errorf("evidence of entry %d in a tree of size %d, want entry 5200 of 5300", evs[0].Entry.Index, cps[0].Size)
		}
	}
	check(w)
	w.poll(t, l, witness.PullRefused, witness.ErrMisbehaved)
	w.close(t)
	w = startPullWitness(t, dir, skey, true, []*testLog{l}, sources, nil)
	check(w)
	w.poll(t, l, witness.PullRefused, witness.ErrMisbehaved)

	// Given to a witness that does not audit (POST /v1/evidence), the
	// evidence is verified and stored, and that witness refuses the log
	// too.
	enc, err := w.evidenceOf(t, l)[0].Marshal()
	if err != nil {
		t.Fatal(err)
	}
	other := newPullWitness(t, []*testLog{l}, sources, nil)
	other.poll(t, l, witness.PullCosigned, nil) // it does not audit: it cosigns the bad entry
	for i, want := range []bool{true, false} {
		r, err := postPath(other.url+"/v1/evidence", enc)
		if err != nil {
			t.Fatal(err)
		}
		var reply witness.AddEvidenceReply
		if err := json.Unmarshal(r.body, &reply); r.code != http.StatusOK || err != nil || reply.Stored != want {
			t.Fatalf("POST /v1/evidence (%d) = %v, want 200 and stored %v", i, r, want)
		}
	}
	if evs := other.evidenceOf(t, l); len(evs) != 1 || evs[0].Kind != api.EvidenceBadEntry {
		t.Fatalf("the other witness holds %+v", evs)
	}
	lg.addValid(t, l, "e", 5400)
	other.poll(t, l, witness.PullRefused, witness.ErrMisbehaved)
	for _, tc := range []struct {
		body string
		code int
	}{
		{"{}", http.StatusBadRequest},
		{strings.Replace(string(enc), `"index": 5200`, `"index": 5201`, 1), http.StatusBadRequest},
		{strings.ReplaceAll(string(enc), l.origin, "example.com/unknown"), http.StatusNotFound},
		{strings.Repeat(" ", api.MaxEvidenceSize+1), http.StatusRequestEntityTooLarge},
	} {
		if r, err := postPath(other.url+"/v1/evidence", []byte(tc.body)); err != nil || r.code != tc.code {
			t.Errorf("POST /v1/evidence %.40q = %v, want %d", tc.body, r, tc.code)
		}
	}
}

// TestAuditUnknownKind: an entry of a kind the witness does not know may
// be valid for a newer log. The audit stops there, without evidence, and
// the witness cosigns nothing past it.
func TestAuditUnknownKind(t *testing.T) {
	l := newTestLog("example.com/audit/newer")
	lg := newCandorLog(t, l)
	srv := httptest.NewServer(lg.handler)
	defer srv.Close()
	w := startPullWitness(t, t.TempDir(), newCosignerKey(t), true, []*testLog{l}, []witness.Source{{Origin: l.origin, URL: srv.URL}}, nil)
	w.pollCosigned(t, l, lg.addValid(t, l, "a", 10))
	lg.add(t, []byte(`{"kind":"newer","v":1}`))
	lg.addValid(t, l, "b", 20)
	for range 2 {
		_, err := w.p.Poll(context.Background(), l.origin)
		if !errors.Is(err, witness.ErrNotAudited) || !strings.Contains(err.Error(), "unknown entry kind") {
			t.Fatalf("Poll = %v, want ErrNotAudited for an unknown kind", err)
		}
	}
	if evs := w.evidenceOf(t, l); len(evs) != 0 {
		t.Fatalf("the witness holds evidence of an entry it cannot judge: %+v", evs)
	}
	if c, _ := w.latest(t, l); c.Size != 10 {
		t.Fatalf("the witness cosigned size %d, past an entry it did not audit", c.Size)
	}
	if got := w.gauge(t, "candor_witness_audited_entries", l.origin); got != 10 {
		t.Errorf("audited entries = %v, want 10", got)
	}
}

// TestAuditNeedsURL: an audited log without a URL is a configuration
// error.
func TestAuditNeedsURL(t *testing.T) {
	l := newTestLog("example.com/audit/nourl")
	cosigner, err := api.NewCosigner(newCosignerKey(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = witness.New(witness.Config{Cosigner: cosigner, State: nopState{}, Logger: quiet,
		Logs: []witness.Log{{Origin: l.origin, Verifier: l.verifier, Audit: true}}})
	if err == nil || !strings.Contains(err.Error(), "URL") {
		t.Fatalf("New = %v, want an error about the URL", err)
	}
}
