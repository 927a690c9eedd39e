package witness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candorlog/candor/api"
	logclient "github.com/candorlog/candor/api/client"
)

// Audit: a log configured with Log.Audit is audited before it is cosigned.
// The witness reads, from the log's URL, every entry of a checkpoint's
// tree that it has not checked yet, re-hashes them into the tree and
// checks each against the admission rules from its bytes (api.ParseEntry),
// as `candor monitor` does, and cosigns the checkpoint only when all of
// them pass. So a witness cosigns only trees whose entries it checked.
//
// The audit runs in AddCheckpoint, for pushed and pulled checkpoints
// alike, within the request's time: a checkpoint far ahead of the audit
// gets ErrNotAudited (503) and the audit goes on from where it stopped at
// the next request. Its position, the tree it audits against and the
// index below which entries passed, is kept in an AuditState and survives
// restarts.
//
// What the audit finds is evidence: an entry that fails admission is
// bad-entry evidence (the entry, its inclusion proof and the checkpoint),
// a checkpoint that forks from the audited tree an equivocation or an
// inconsistency, stored, served and gossiped like any other. An entry of
// a kind or version the witness does not know stops the audit, without
// evidence (a newer log may hold it rightly), until the witness is
// upgraded.

// ErrNotAudited means the witness has not yet checked every entry of the
// checkpoint's tree (HTTP 503): it is catching up, the log could not be
// read, or an entry is of a kind it does not know. The audit goes on at
// the next request.
var ErrNotAudited = errors.New("the witness has not audited the entries of the checkpoint's tree yet")

// AuditState keeps the position of the audit of each audited log.
type AuditState interface {
	// LoadAudit returns the signed checkpoint whose tree the witness
	// audits origin against, and the index below which the entries of
	// that tree passed; nil if it holds none.
	LoadAudit(ctx context.Context, origin string) (checkpoint []byte, next uint64, err error)
	// StoreAudit stores them, durably when it returns nil.
	StoreAudit(ctx context.Context, origin string, checkpoint []byte, next uint64) error
}

// auditSaveEvery is how often the audit stores its position while it
// scans: after a crash it checks again at most what it checked since.
const auditSaveEvery = time.Second

// auditor audits one log. Its semaphore serializes audits; mu guards the
// position, which the metrics read.
type auditor struct {
	w     *Witness
	l     Log
	v     *logclient.Verifier
	store AuditState
	sem   chan struct{}

	mu      sync.Mutex
	cp      logclient.Checkpoint // the tree audited against; Signed nil before the first
	next    uint64               // entries of cp's tree below next passed
	seen    uint64               // the largest size the audit was asked for
	blocked error                // why the audit cannot go on, until a restart
	saved   time.Time
}

// newAuditor returns the auditor of l, at the position store holds.
func newAuditor(ctx context.Context, w *Witness, l Log, store AuditState) (*auditor, error) {
	v, err := logclient.NewVerifier(logclient.New(l.URL, w.hc), logclient.VerifierConfig{Origin: l.Origin, LogVerifier: l.Verifier})
	if err != nil {
		return nil, err
	}
	a := &auditor{w: w, l: l, v: v, store: store, sem: make(chan struct{}, 1)}
	signed, next, err := store.LoadAudit(ctx, l.Origin)
	if err != nil {
		return nil, fmt.Errorf("couldn't read the audit position of %q: %w", l.Origin, err)
	}
	if signed == nil {
		return a, nil
	}
	cp, err := v.Accept(ctx, signed) // the state is empty: no read of the log
	if err != nil || next > cp.Size {
		// The log's key changed, say: audit again from the start.
		w.logger.Warn("the stored audit position does not verify; the audit starts again", "origin", l.Origin, "error", err)
		v, _ = logclient.NewVerifier(logclient.New(l.URL, w.hc), logclient.VerifierConfig{Origin: l.Origin, LogVerifier: l.Verifier})
		a.v = v
		return a, nil
	}
	a.cp, a.next, a.seen = cp, next, cp.Size
	return a, nil
}

// position returns the audited index and the largest size asked for.
func (a *auditor) position() (next, seen uint64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.next, a.seen
}

// ensure returns nil once every entry of the tree of c, the checkpoint
// signed (verified by the caller), has passed the audit, auditing what it
// must within ctx. Errors wrap ErrNotAudited, or ErrMisbehaved when the
// audit found evidence, which it recorded.
func (a *auditor) ensure(ctx context.Context, signed []byte, c api.Checkpoint) error {
	select {
	case a.sem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("%w: %w", ErrNotAudited, ctx.Err())
	}
	defer func() { <-a.sem }()
	a.mu.Lock()
	a.seen = max(a.seen, c.Size)
	next, blocked := a.next, a.blocked
	a.mu.Unlock()
	if blocked != nil {
		return fmt.Errorf("%w: %w", ErrNotAudited, blocked)
	}
	if err := a.advance(ctx, signed); err != nil {
		return err
	}
	if next >= c.Size {
		return nil
	}
	err := a.scan(ctx, next, c.Size)
	a.save(context.WithoutCancel(ctx), true)
	return err
}

// advance makes the tree of signed the audited tree if it is larger, after
// checking it is consistent with the audited one; a smaller tree must be
// proven a prefix of the audited one.
func (a *auditor) advance(ctx context.Context, signed []byte) error {
	cp, err := a.v.Accept(ctx, signed)
	var fork *logclient.ForkError
	switch {
	case err == nil:
		a.mu.Lock()
		grew := !bytes.Equal(a.cp.Signed, cp.Signed) && cp.Size > a.cp.Size
		if grew {
			a.cp = cp
		}
		a.mu.Unlock()
		if grew {
			a.save(ctx, true)
		}
		return nil
	case errors.As(err, &fork) && errors.Is(fork.Reason, logclient.ErrRollback) && fork.Err == nil:
		// The log's tiles of the audited tree prove this smaller tree a
		// prefix of it: its entries are the audited tree's.
		return nil
	case errors.As(err, &fork):
		if ev, eerr := fork.Evidence(); eerr == nil {
			if rerr := a.record(ctx, ev); rerr != nil {
				return rerr
			}
			return fmt.Errorf("%w: %q: %w", ErrMisbehaved, a.l.Origin, err)
		}
	}
	return fmt.Errorf("%w: %w", ErrNotAudited, err)
}

// scan checks the entries from to end of the audited tree.
func (a *auditor) scan(ctx context.Context, from, end uint64) error {
	a.mu.Lock()
	cp := a.cp
	a.mu.Unlock()
	check := func(e logclient.Entry) []logclient.Finding {
		_, err := api.ParseEntry(e.Data)
		if err == nil {
			return nil
		}
		return []logclient.Finding{{Index: e.Index, LeafHash: logclient.LeafHash(e.Data), Fault: err, Entry: e.Data}}
	}
	var found error
	report := func(next uint64, findings []logclient.Finding) error {
		if len(findings) > 0 {
			// The first finding stops the audit: the entries before it
			// passed.
			f := findings[0]
			a.mu.Lock()
			a.next = f.Index
			a.mu.Unlock()
			if api.UnknownEntry(f.Fault) {
				a.w.logger.Error("the audit stops at an entry of a kind or version this witness does not know: upgrade it", "origin", a.l.Origin, "index", f.Index, "error", f.Fault)
				a.mu.Lock()
				a.blocked = fmt.Errorf("entry %d: %w; a newer witness can audit it", f.Index, f.Fault)
				a.mu.Unlock()
				found = a.blocked
				return found
			}
			found = a.badEntry(ctx, cp, f)
			return found
		}
		a.mu.Lock()
		a.next = next
		a.mu.Unlock()
		a.save(ctx, false)
		return nil
	}
	err := a.v.Scan(ctx, cp, from, end, 0, check, report)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrMisbehaved):
		return err
	case found != nil:
		return fmt.Errorf("%w: %w", ErrNotAudited, found)
	}
	next, _ := a.position()
	return fmt.Errorf("%w: entries audited up to %d of %d: %w", ErrNotAudited, next, end, err)
}

// badEntry records the evidence of f, an entry of the tree of cp that
// fails admission, and returns an error wrapping ErrMisbehaved.
func (a *auditor) badEntry(ctx context.Context, cp logclient.Checkpoint, f logclient.Finding) error {
	a.w.logger.Error("AN ENTRY OF THE LOG FAILS ADMISSION", "origin", a.l.Origin, "index", f.Index, "error", f.Fault)
	b, err := a.v.ProveInclusion(ctx, cp, f.Index, f.LeafHash)
	if err != nil {
		return fmt.Errorf("%w: couldn't prove the inclusion of the failing entry %d: %w", ErrNotAudited, f.Index, err)
	}
	if err := a.record(ctx, api.NewBadEntry(a.l.Origin, cp.Signed, f.Index, f.Entry, b.Hashes)); err != nil {
		return err
	}
	return fmt.Errorf("%w: %q: entry %d fails admission: %w", ErrMisbehaved, a.l.Origin, f.Index, f.Fault)
}

// record stores and announces evidence the audit found.
func (a *auditor) record(ctx context.Context, ev api.Evidence) error {
	unlock := a.w.lock(a.l.Origin)
	defer unlock()
	if _, err := a.w.recordLocked(ctx, a.l, ev); err != nil {
		return fmt.Errorf("couldn't record the evidence the audit found: %w", err)
	}
	return nil
}

// save stores the audit's position, at most once per auditSaveEvery
// unless now is set. A failure is logged: the audit goes on, and after a
// restart checks again what it checked since the last save.
func (a *auditor) save(ctx context.Context, now bool) {
	a.mu.Lock()
	if !now && time.Since(a.saved) < auditSaveEvery || a.cp.Signed == nil {
		a.mu.Unlock()
		return
	}
	signed, next := a.cp.Signed, a.next
	a.saved = time.Now()
	a.mu.Unlock()
	if err := a.store.StoreAudit(ctx, a.l.Origin, signed, next); err != nil {
		a.w.logger.Warn("couldn't store the audit position", "origin", a.l.Origin, "next", next, "error", err)
	}
}

// The audit metrics, read at each scrape.
var (
	auditedDesc = prometheus.NewDesc("candor_witness_audited_entries",
		"Entries of the log the witness audited (the index below which every entry passed), by audited log.", []string{"origin"}, nil)
	auditLagDesc = prometheus.NewDesc("candor_witness_audit_lag_entries",
		"Entries of the largest checkpoint the witness was asked to cosign that it has not audited yet, by audited log.", []string{"origin"}, nil)
)

type auditCollector struct{ w *Witness }

func (c auditCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- auditedDesc
	ch <- auditLagDesc
}

func (c auditCollector) Collect(ch chan<- prometheus.Metric) {
	for origin, a := range c.w.auditors {
		next, seen := a.position()
		ch <- prometheus.MustNewConstMetric(auditedDesc, prometheus.GaugeValue, float64(next), origin)
		ch <- prometheus.MustNewConstMetric(auditLagDesc, prometheus.GaugeValue, float64(seen-min(seen, next)), origin)
	}
}

// memAudit is an AuditState in memory, for a Witness configured without
// one.
type memAudit struct {
	mu  sync.Mutex
	cps map[string][]byte
	pos map[string]uint64
}

func (m *memAudit) LoadAudit(ctx context.Context, origin string) ([]byte, uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return bytes.Clone(m.cps[origin]), m.pos[origin], nil
}

func (m *memAudit) StoreAudit(ctx context.Context, origin string, checkpoint []byte, next uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cps == nil {
		m.cps, m.pos = make(map[string][]byte), make(map[string]uint64)
	}
	m.cps[origin], m.pos[origin] = bytes.Clone(checkpoint), next
	return nil
}
