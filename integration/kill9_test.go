package integration

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/transparency-dev/merkle/proof"
	"github.com/transparency-dev/merkle/rfc6962"

	"github.com/candorlog/candor/api"
	"github.com/candorlog/candor/api/apitest"
)

const (
	killOrigin = "example.com/log"
	// maxPerWorker bounds the submissions of one submitter in one cycle.
	maxPerWorker = 2000
	// maxKillDelay bounds how long the load runs before the SIGKILL;
	// maxKillDelayRace when the binary is built with -race.
	maxKillDelay     = 400 * time.Millisecond
	maxKillDelayRace = 1500 * time.Millisecond
	// checkWorkers is the number of concurrent verifying reads.
	checkWorkers = 4
)

// TestKill9Durability kills candor-log with SIGKILL at a random moment
// under concurrent load, restarts it on the same data directory, and checks
// after every restart that
//
//   - every acknowledged entry is served at its index, byte for byte, with
//     its leaf hash, and resubmitting it returns 200 with the same index;
//   - the new checkpoint is at least as large as every checkpoint seen
//     before (from /checkpoint and from the proofs in the replies) and
//     consistent with each of them, by a consistency proof from the server
//     verified here;
//   - a submission cut off by the kill is either wholly in the log or not at
//     all: resubmitting it gives 200 with an index below the restart size,
//     or 201;
//   - the search index agrees with the entries: every entry is found by its
//     terms at its index, a cut-off entry is found only if it landed, and
//     the signer's key finds exactly the entries of the tree.
//
// Every fifth cycle stops the server with SIGTERM instead, which must exit
// 0 under load. The test ends with `candor-log fsck` on the crashed data
// directory and again after a clean shutdown.
//
// CANDOR_KILL_CYCLES sets the number of cycles (default 20);
// CANDOR_KILL_BUDGET bounds the time spent cycling (default 60s, or 3s per
// cycle when CANDOR_KILL_CYCLES is set); CANDOR_KILL_SEED fixes the random
// kill moments.
func TestKill9Durability(t *testing.T) {
	requireBinaries(t)
	cycles, budget := 20, 60*time.Second
	if s := os.Getenv("CANDOR_KILL_CYCLES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			t.Fatalf("CANDOR_KILL_CYCLES=%q: want a positive number", s)
		}
		cycles, budget = n, max(budget, time.Duration(n)*3*time.Second)
	}
	if s := os.Getenv("CANDOR_KILL_BUDGET"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatalf("CANDOR_KILL_BUDGET=%q: %v", s, err)
		}
		budget = d
	}
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("CANDOR_KILL_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("CANDOR_KILL_SEED=%q: %v", s, err)
		}
	}
	t.Logf("CANDOR_KILL_SEED=%d, up to %d cycles within %s", seed, cycles, budget)
	rng := rand.New(rand.NewPCG(seed, 0))

	data := t.TempDir()
	h := &history{
		origin:  killOrigin,
		signer:  apitest.NewBuildSigner(),
		acks:    make(map[uint64]ack),
		cps:     make(map[uint64]seenCheckpoint),
		byLeaf:  make(map[[api.HashSize]byte]uint64),
		checked: make(map[uint64]bool),
	}
	start := time.Now()
	var vkey, lastURL, lastHow string
	ran := 0
	for cycle := 0; cycle < cycles; cycle++ {
		// Start no cycle that would likely end past the budget.
		if elapsed := time.Since(start); cycle >= 3 && elapsed+elapsed/time.Duration(cycle) > budget {
			t.Logf("time budget of %s spent after %d cycles", budget, cycle)
			break
		}
		args := []string{"--origin", killOrigin}
		if cycle%2 == 1 {
			// Every other restart listens on the port of the killed server.
			args = append(args, "--listen", strings.TrimPrefix(lastURL, "http://"))
		}
		srv := mustStartServer(t, fmt.Sprintf("candor-log (cycle %d)", cycle), data, args...)
		lastURL = srv.url
		if vkey == "" {
			vkey = srv.vkey
		} else if srv.vkey != vkey {
			t.Fatalf("cycle %d: verifier key changed from %s to %s", cycle, vkey, srv.vkey)
		}
		h.verify(t, srv, cycle, false, rng)
		if t.Failed() {
			return
		}
		lastHow = h.load(t, srv, cycle, rng)
		if t.Failed() {
			return
		}
		ran++
	}

	// The data directory as the last stop (usually a SIGKILL) left it.
	out, errOut, err := runFsck(t, data)
	if err != nil {
		t.Fatalf("fsck after the last %s failed (%v):\n%s%s", lastHow, err, out, errOut)
	}
	h.checkFsckSize(t, out)

	srv := mustStartServer(t, "candor-log (final)", data)
	if srv.vkey != vkey {
		t.Fatalf("final restart: verifier key changed from %s to %s", vkey, srv.vkey)
	}
	h.verify(t, srv, ran, true, rng)
	srv.stop(t)
	out, errOut, err = runFsck(t, data)
	if err != nil {
		t.Fatalf("fsck after a clean stop failed (%v):\n%s%s", err, out, errOut)
	}
	h.checkFsckSize(t, out)
	// The kills met entry bundles moved out of pebble, which fsck read
	// back from the bundle files: the log's bundle files hold some.
	if st, err := os.Stat(filepath.Join(data, "db", "bundles", "index")); err != nil || st.Size() == 0 {
		t.Errorf("the log moved no entry bundles to its bundle files (%v): the kills did not test them", err)
	}

	h.mu.Lock()
	defer h.mu.Unlock()
	t.Logf("%d stop cycles (one in five SIGTERM, the rest SIGKILL) in %s: %d acknowledged entries, %d distinct checkpoints verified, %d in-flight at a kill (%d of them landed)",
		ran, time.Since(start).Round(time.Millisecond), len(h.acks), len(h.cps), h.inFlight, h.inFlightLanded)
}

// ack is an acknowledged submission.
type ack struct {
	index    uint64
	leafHash []byte
	sub      []byte // the submission as sent
	entry    []byte // api.CanonicalEntry(sub)
	cycle    int
}

// seenCheckpoint is a verified checkpoint the log published.
type seenCheckpoint struct {
	root   [api.HashSize]byte
	raw    []byte
	source string
}

// history is everything the log ever acknowledged or published to the test.
type history struct {
	origin string
	signer *apitest.BuildSigner

	mu      sync.Mutex
	acks    map[uint64]ack
	cps     map[uint64]seenCheckpoint // by tree size
	byLeaf  map[[api.HashSize]byte]uint64
	checked map[uint64]bool // acks already read back once
	lost    []pending       // submissions cut off by the last kill
	// lostGraceful says the last stop was a SIGTERM, after which every
	// submission the server read must have had its reply.
	lostGraceful bool
	errs         []error // found by the load goroutines

	inFlight, inFlightLanded int
}

// pending is a submission with no reply.
type pending struct {
	sub, entry []byte
	err        error // what the submitter got instead of a reply
	// acked says another submitter got a reply for the same entry.
	acked bool
}

func (h *history) errorf(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.errs = append(h.errs, fmt.Errorf(format, args...))
}

// maxSize returns the largest tree size seen.
func (h *history) maxSize() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	var m uint64
	for s := range h.cps {
		m = max(m, s)
	}
	return m
}

// recordCheckpoint remembers a verified checkpoint and reports a fork: two
// different roots for one size.
func (h *history) recordCheckpoint(c api.Checkpoint, raw []byte, source string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old, ok := h.cps[c.Size]; ok {
		if old.root != c.Hash {
			return fmt.Errorf("fork: two checkpoints of size %d with different roots\n%s:\n%s\n%s:\n%s", c.Size, old.source, old.raw, source, raw)
		}
		return nil
	}
	h.cps[c.Size] = seenCheckpoint{root: c.Hash, raw: bytes.Clone(raw), source: source}
	return nil
}

// checkReply verifies a 200 or 201 reply to sub: the leaf hash is the
// entry's, and the proof bundle's checkpoint is signed by the log and
// includes the entry at the index. It records the checkpoint.
func (h *history) checkReply(srv *server, entry []byte, resp api.AddEntryResponse, source string) error {
	leaf := rfc6962.DefaultHasher.HashLeaf(entry)
	if !bytes.Equal(resp.LeafHash, leaf) {
		return fmt.Errorf("%s: reply leafHash %x, the canonical entry hashes to %x", source, resp.LeafHash, leaf)
	}
	p, err := api.ParseProofBundle([]byte(resp.Proof))
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", source, err, resp.Proof)
	}
	if p.Index != resp.Index {
		return fmt.Errorf("%s: reply index %d, proof bundle index %d", source, resp.Index, p.Index)
	}
	c, err := api.VerifyProofBundle(p, leaf, h.origin, srv.verifier)
	if err != nil {
		return fmt.Errorf("%s: index %d: %w\n%s", source, resp.Index, err, resp.Proof)
	}
	if c.Size != resp.TreeSize {
		return fmt.Errorf("%s: reply treeSize %d, proof checkpoint size %d", source, resp.TreeSize, c.Size)
	}
	return h.recordCheckpoint(c, p.Checkpoint, source)
}

// recordAck remembers an acknowledged entry and reports an index given to
// two different entries, or an entry given two indexes.
func (h *history) recordAck(a ack) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if old, ok := h.acks[a.index]; ok {
		if !bytes.Equal(old.entry, a.entry) {
			return fmt.Errorf("index %d acknowledged for two different entries (cycles %d and %d):\n%s\n%s", a.index, old.cycle, a.cycle, old.entry, a.entry)
		}
		return nil
	}
	leaf := [api.HashSize]byte(a.leafHash)
	if idx, ok := h.byLeaf[leaf]; ok && idx != a.index {
		return fmt.Errorf("entry with leaf hash %x acknowledged at index %d and at index %d (cycle %d)", a.leafHash, idx, a.index, a.cycle)
	}
	h.byLeaf[leaf] = a.index
	h.acks[a.index] = a
	return nil
}

// Kinds of submission the load mixes.
const (
	subUnique   = iota // new and submitted once: 201
	subShared          // new, submitted by every worker at about the same time: 201 or 200, one index
	subResubmit        // acknowledged in an earlier cycle: 200 with its index
)

// load runs submitters and a checkpoint poller against srv and kills srv
// with SIGKILL after a random delay. Most submissions are new and unique;
// some are submitted by all the workers at once, and some resubmit entries
// acknowledged in earlier cycles.
func (h *history) load(t *testing.T, srv *server, cycle int, rng *rand.Rand) (how string) {
	t.Helper()
	// The requests are not cancelled when the server is stopped: a reply
	// already sent must still be read, or a clean stop would look like a
	// lost reply. requestTimeout bounds them.
	ctx := context.Background()
	var stopped atomic.Bool
	h.mu.Lock()
	earlier := slices.Collect(maps.Values(h.acks))
	h.mu.Unlock()
	workers := 4 << rng.IntN(4) // 4 to 32
	var wg sync.WaitGroup
	var created, dups, busy atomic.Int64
	for w := range workers {
		wrng := rand.New(rand.NewPCG(rng.Uint64(), uint64(w)))
		wg.Go(func() {
			for n := 0; n < maxPerWorker && !stopped.Load(); n++ {
				kind := subUnique
				switch {
				case n%8 == 7:
					kind = subShared
				case n%8 == 3 && len(earlier) > 0:
					kind = subResubmit
				}
				var name string
				var sub []byte
				var prev ack
				switch kind {
				case subUnique:
					name = fmt.Sprintf("kill9/cycle-%d/worker-%d/%d", cycle, w, n)
				case subShared:
					name = fmt.Sprintf("kill9/cycle-%d/shared/%d", cycle, n)
				case subResubmit:
					prev = earlier[wrng.IntN(len(earlier))]
					name = fmt.Sprintf("resubmission of entry %d", prev.index)
					sub = prev.sub
				}
				if sub == nil {
					digest := sha256.Sum256([]byte(name))
					sub = h.signer.Submission(name, hex.EncodeToString(digest[:]))
				}
				entry, err := api.CanonicalEntry(sub)
				if err != nil {
					h.errorf("apitest submission %s is not canonicalisable: %v", name, err)
					return
				}
				code, resp, body, err := srv.submit(ctx, sub)
				if err != nil {
					if srv.stopping.Load() {
						if kind != subResubmit {
							h.mu.Lock()
							h.lost = append(h.lost, pending{sub: sub, entry: entry, err: err})
							h.mu.Unlock()
						}
						return
					}
					h.errorf("cycle %d: POST %s before the kill: %v", cycle, name, err)
					return
				}
				switch {
				case code == http.StatusTooManyRequests || code == http.StatusServiceUnavailable:
					busy.Add(1)
					time.Sleep(5 * time.Millisecond)
					continue
				case code == http.StatusCreated && kind == subResubmit,
					code == http.StatusOK && kind == subUnique,
					code != http.StatusOK && code != http.StatusCreated:
					h.errorf("cycle %d: POST %s: %d %s", cycle, name, code, bytes.TrimSpace(body))
					return
				case kind == subResubmit && resp.Index != prev.index:
					h.errorf("cycle %d: POST %s (acknowledged in cycle %d): 200 with index %d", cycle, name, prev.cycle, resp.Index)
					return
				}
				source := fmt.Sprintf("cycle %d reply %d to %s", cycle, code, name)
				if err := h.checkReply(srv, entry, resp, source); err != nil {
					h.errorf("%v", err)
					return
				}
				if err := h.recordAck(ack{index: resp.Index, leafHash: resp.LeafHash, sub: sub, entry: entry, cycle: cycle}); err != nil {
					h.errorf("%v", err)
					return
				}
				if code == http.StatusCreated {
					created.Add(1)
				} else {
					dups.Add(1)
				}
			}
		})
	}
	polls := 0
	wg.Go(func() {
		var last uint64
		for !stopped.Load() {
			raw, c, err := srv.checkpoint(ctx, h.origin)
			if err != nil {
				if !srv.stopping.Load() {
					h.errorf("cycle %d: %v", cycle, err)
				}
				return
			}
			polls++
			if c.Size < last {
				h.errorf("cycle %d: /checkpoint went back from size %d to %d", cycle, last, c.Size)
			}
			last = c.Size
			if err := h.recordCheckpoint(c, raw, fmt.Sprintf("cycle %d GET /checkpoint", cycle)); err != nil {
				h.errorf("%v", err)
			}
			time.Sleep(2 * time.Millisecond)
		}
	})
	maxDelay := maxKillDelay
	if binaryRace {
		maxDelay = maxKillDelayRace
	}
	delay := time.Duration(rng.Int64N(int64(maxDelay)))
	time.Sleep(delay)
	how = "SIGKILL"
	if cycle%5 == 4 {
		// Now and then a clean stop under load: in-flight submissions
		// finish or fail, and the server exits 0.
		how = "SIGTERM"
		h.mu.Lock()
		h.lostGraceful = true
		h.mu.Unlock()
		srv.stop(t)
	} else {
		srv.kill9(t)
	}
	stopped.Store(true)
	wg.Wait()

	h.mu.Lock()
	defer h.mu.Unlock()
	t.Logf("cycle %d: %s after %s with %d submitters: %d new, %d duplicates acknowledged, %d busy replies, %d cut off, %d checkpoint polls",
		cycle, how, delay.Round(time.Millisecond), workers, created.Load(), dups.Load(), busy.Load(), len(h.lost), polls)
	for _, err := range h.errs {
		t.Error(err)
	}
	h.errs = nil
	return how
}

// settledCheckpoint returns srv's checkpoint. On Trillian, entries that
// the killed server had queued in Trillian, unacknowledged, are
// sequenced when Trillian's signer runs, perhaps after the restart: it
// waits until the tree stops growing (no one submits meanwhile), so that
// the checks see the tree they check.
func settledCheckpoint(t *testing.T, srv *server, origin string) ([]byte, api.Checkpoint) {
	t.Helper()
	raw, cur := srv.mustCheckpoint(t, origin)
	if testStorage != "trillian" {
		return raw, cur
	}
	for range 100 {
		time.Sleep(300 * time.Millisecond) // several of the tests' signer intervals and mirror polls
		raw2, next := srv.mustCheckpoint(t, origin)
		if next.Size == cur.Size {
			return raw, cur
		}
		raw, cur = raw2, next
	}
	t.Fatalf("the tree on Trillian kept growing after the restart, at size %d", cur.Size)
	return nil, api.Checkpoint{}
}

// verify checks the restarted srv against the history: see
// TestKill9Durability. With full, it reads back every acknowledged entry
// and resubmits a larger sample; otherwise it reads back the entries not
// read back before and a sample of older ones.
func (h *history) verify(t *testing.T, srv *server, cycle int, full bool, rng *rand.Rand) {
	t.Helper()
	start := time.Now()
	ctx := context.Background()
	raw, cur := settledCheckpoint(t, srv, h.origin)

	h.mu.Lock()
	cps := make(map[uint64]seenCheckpoint, len(h.cps))
	for s, c := range h.cps {
		cps[s] = c
	}
	var fresh, old []ack
	for _, a := range h.acks {
		if full || !h.checked[a.index] {
			fresh = append(fresh, a)
		} else {
			old = append(old, a)
		}
	}
	// Shared submissions may be cut off in several workers at once.
	var lost []pending
	seen := make(map[string]bool)
	for _, p := range h.lost {
		if !seen[string(p.entry)] {
			seen[string(p.entry)] = true
			_, p.acked = h.byLeaf[[api.HashSize]byte(rfc6962.DefaultHasher.HashLeaf(p.entry))]
			lost = append(lost, p)
		}
	}
	h.lost = nil
	graceful := h.lostGraceful
	h.lostGraceful = false
	h.mu.Unlock()

	// The new checkpoint extends every one seen before.
	sizes := slices.Sorted(func(yield func(uint64) bool) {
		for s := range cps {
			if !yield(s) {
				return
			}
		}
	})
	if n := len(sizes); n > 0 && sizes[n-1] > cur.Size {
		t.Fatalf("cycle %d: after the restart the log is at size %d, but it published size %d before:\n%s\nnow:\n%s",
			cycle, cur.Size, sizes[n-1], cps[sizes[n-1]].raw, raw)
	}
	parallel(t, len(sizes), func(i int) error {
		s := sizes[i]
		c := cps[s]
		if s == cur.Size {
			if c.root != cur.Hash {
				return fmt.Errorf("fork at size %d: %s:\n%s\nafter the restart:\n%s", s, c.source, c.raw, raw)
			}
			return nil
		}
		var resp api.ConsistencyProofResponse
		path := fmt.Sprintf("/v1/proof/consistency?old=%d&new=%d", s, cur.Size)
		if err := srv.getJSON(ctx, path, &resp); err != nil {
			return fmt.Errorf("cycle %d: %w", cycle, err)
		}
		if resp.Old != s || resp.New != cur.Size {
			return fmt.Errorf("cycle %d: GET %s answered old=%d new=%d", cycle, path, resp.Old, resp.New)
		}
		if err := proof.VerifyConsistency(rfc6962.DefaultHasher, s, cur.Size, resp.Hashes, c.root[:], cur.Hash[:]); err != nil {
			return fmt.Errorf("cycle %d: checkpoint of size %d (%s) is not consistent with size %d after the restart: %w\nold:\n%s\nnew:\n%s",
				cycle, s, c.source, cur.Size, err, c.raw, raw)
		}
		return nil
	})
	if err := h.recordCheckpoint(cur, raw, fmt.Sprintf("cycle %d GET /checkpoint after restart", cycle)); err != nil {
		t.Fatal(err)
	}

	// Every acknowledged entry is there, byte for byte.
	rng.Shuffle(len(old), func(i, j int) { old[i], old[j] = old[j], old[i] })
	toRead := slices.Concat(fresh, old[:min(len(old), 64)])
	parallel(t, len(toRead), func(i int) error {
		a := toRead[i]
		if a.index >= cur.Size {
			return fmt.Errorf("cycle %d: entry %d was acknowledged in cycle %d but the log has only %d entries after the restart", cycle, a.index, a.cycle, cur.Size)
		}
		var resp api.EntryResponse
		if err := srv.getJSON(ctx, fmt.Sprintf("/v1/entries/%d", a.index), &resp); err != nil {
			return fmt.Errorf("cycle %d: entry %d acknowledged in cycle %d: %w", cycle, a.index, a.cycle, err)
		}
		if resp.Index != a.index || !bytes.Equal(resp.Entry, a.entry) || !bytes.Equal(resp.LeafHash, a.leafHash) {
			return fmt.Errorf("cycle %d: entry %d acknowledged in cycle %d reads back as index %d, leaf hash %x (acknowledged %x), entry:\n%s\nacknowledged:\n%s",
				cycle, a.index, a.cycle, resp.Index, resp.LeafHash, a.leafHash, resp.Entry, a.entry)
		}
		return nil
	})
	if t.Failed() {
		return
	}
	// The search index agrees with the entries: each one read back is
	// found by its terms at its index only, and the signer's key finds
	// exactly the tree, every entry at its index with its leaf hash.
	parallel(t, len(toRead), func(i int) error {
		a := toRead[i]
		hits, err := searchEntry(ctx, srv, a.entry)
		if err != nil {
			return fmt.Errorf("cycle %d: entry %d: %w", cycle, a.index, err)
		}
		if len(hits) != 1 || hits[0].Index != a.index || !bytes.Equal(hits[0].LeafHash, a.leafHash) {
			return fmt.Errorf("cycle %d: a search by the terms of entry %d (acknowledged in cycle %d) finds %v", cycle, a.index, a.cycle, hitList(hits))
		}
		return nil
	})
	h.checkKeySearch(t, srv, cur.Size, cycle)
	if t.Failed() {
		return
	}
	h.mu.Lock()
	for _, a := range fresh {
		h.checked[a.index] = true
	}
	h.mu.Unlock()

	// Resubmitting an acknowledged entry gives its index back.
	var resub []ack
	if full {
		rng.Shuffle(len(fresh), func(i, j int) { fresh[i], fresh[j] = fresh[j], fresh[i] })
		resub = fresh[:min(len(fresh), 200)]
	} else {
		// The newest acknowledgements, most at risk from the kill, and a sample.
		slices.SortFunc(fresh, func(a, b ack) int { return cmp.Compare(b.index, a.index) })
		resub = slices.Concat(fresh[:min(len(fresh), 8)], old[:min(len(old), 8)])
	}
	parallel(t, len(resub), func(i int) error {
		a := resub[i]
		code, resp, body, err := srv.submit(ctx, a.sub)
		if err != nil {
			return fmt.Errorf("cycle %d: resubmitting entry %d: %w", cycle, a.index, err)
		}
		if code != http.StatusOK {
			return fmt.Errorf("cycle %d: resubmitting entry %d (acknowledged in cycle %d): %d, want 200: %s", cycle, a.index, a.cycle, code, bytes.TrimSpace(body))
		}
		if resp.Index != a.index {
			return fmt.Errorf("cycle %d: resubmitting entry %d (acknowledged in cycle %d) gave index %d", cycle, a.index, a.cycle, resp.Index)
		}
		return h.checkReply(srv, a.entry, resp, fmt.Sprintf("cycle %d resubmission of entry %d", cycle, a.index))
	})

	// A submission cut off by the kill is all in or all out.
	landed := 0
	var mu sync.Mutex
	parallel(t, len(lost), func(i int) error {
		p := lost[i]
		// Found by search if and only if it landed.
		hits, err := searchEntry(ctx, srv, p.entry)
		if err != nil {
			return fmt.Errorf("cycle %d: an entry cut off by the kill: %w", cycle, err)
		}
		code, resp, body, err := srv.submit(ctx, p.sub)
		if err != nil {
			return fmt.Errorf("cycle %d: resubmitting an entry cut off by the kill: %w", cycle, err)
		}
		source := fmt.Sprintf("cycle %d resubmission of an entry cut off by the kill", cycle)
		if landed := code == http.StatusOK; landed && (len(hits) != 1 || hits[0].Index != resp.Index) || !landed && len(hits) != 0 {
			return fmt.Errorf("%s: %d with index %d, but before it a search by its terms found %v", source, code, resp.Index, hitList(hits))
		}
		switch code {
		case http.StatusOK:
			if resp.Index >= cur.Size {
				return fmt.Errorf("%s: 200 with index %d, but it was not in the tree of size %d at the restart", source, resp.Index, cur.Size)
			}
			var e api.EntryResponse
			if err := srv.getJSON(ctx, fmt.Sprintf("/v1/entries/%d", resp.Index), &e); err != nil {
				return fmt.Errorf("%s: %w", source, err)
			}
			if !bytes.Equal(e.Entry, p.entry) {
				return fmt.Errorf("%s: 200 with index %d, which holds a different entry:\n%s\nwant:\n%s", source, resp.Index, e.Entry, p.entry)
			}
			if !p.acked {
				mu.Lock()
				landed++
				if graceful {
					t.Errorf("%s: after a SIGTERM, entry %d is in the log but its submitter got no reply: %v", source, resp.Index, p.err)
				}
				mu.Unlock()
			}
		case http.StatusCreated:
			if resp.Index < cur.Size {
				return fmt.Errorf("%s: 201 with index %d, below the restart size %d", source, resp.Index, cur.Size)
			}
		default:
			return fmt.Errorf("%s: %d %s", source, code, bytes.TrimSpace(body))
		}
		if err := h.checkReply(srv, p.entry, resp, source); err != nil {
			return err
		}
		return h.recordAck(ack{index: resp.Index, leafHash: resp.LeafHash, sub: p.sub, entry: p.entry, cycle: cycle})
	})
	h.mu.Lock()
	h.inFlight += len(lost)
	h.inFlightLanded += landed
	h.mu.Unlock()
	t.Logf("cycle %d: restart at size %d (up after %s): %d checkpoints consistent, %d entries read back, %d resubmitted, %d of %d cut-off entries had landed; checked in %s",
		cycle, cur.Size, srv.upAfter.Round(time.Millisecond), len(sizes), len(toRead), len(resub), landed, len(lost), time.Since(start).Round(time.Millisecond))
}

// checkFsckSize checks fsck's success line covers every size published.
func (h *history) checkFsckSize(t *testing.T, out string) {
	t.Helper()
	rest, ok := lineValue(out, "fsck: ok: ")
	if !ok {
		t.Fatalf("fsck printed no ok line:\n%s", out)
	}
	var n uint64
	if _, err := fmt.Sscanf(rest, "%d entries", &n); err != nil {
		t.Fatalf("fsck ok line %q: %v", rest, err)
	}
	if m := h.maxSize(); n < m {
		t.Errorf("fsck verified %d entries, but the log published size %d", n, m)
	}
	// The tile files, written after each synced commit and never synced
	// themselves, agree with pebble after every kill (fsck compares
	// them): a log this size has had its full tiles copied.
	var copies uint64
	if i := strings.Index(rest, "(and "); i < 0 {
		t.Errorf("fsck ok line %q says nothing of the tile files", rest)
	} else if _, err := fmt.Sscanf(rest[i:], "(and %d copies", &copies); err != nil || copies == 0 {
		t.Errorf("fsck ok line %q: %d tile files' copies checked (%v), want some", rest, copies, err)
	}
	t.Logf("fsck: %s", rest)
}

// parallel runs f(0..n-1) on checkWorkers goroutines and reports the first
// ten errors.
func parallel(t *testing.T, n int, f func(i int) error) {
	t.Helper()
	parallelN(t, checkWorkers, n, f)
}

// parallelN runs f(0..n-1) on workers goroutines and reports the first ten
// errors.
func parallelN(t *testing.T, workers, n int, f func(i int) error) {
	t.Helper()
	var next atomic.Int64
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if i == 10 {
			t.Errorf("... and %d more errors", len(errs)-10)
			break
		}
		t.Error(err)
	}
}
