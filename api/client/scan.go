package client

import (
	"context"
	"fmt"
	"runtime"

	"github.com/candorlog/candor/api"
)

// A Finding is what a scan reports of one entry: a watch rule it matches,
// or an admission rule it breaks.
type Finding struct {
	Index    uint64
	LeafHash []byte
	// Rule is the watch rule the entry matches, as its file spells it
	// ("key SHA256:…"); empty for a fault.
	Rule string
	// Fault, if not nil, is why the entry should not be in the log: it
	// does not pass admission again from its bytes (api.ParseEntry).
	Fault error
	// Entry is, with a Fault, the entry's bytes: with its inclusion
	// proof, evidence (api.NewBadEntry).
	Entry []byte
	// Summary describes the entry in one line.
	Summary string
}

// scanChunk is how many entry bundles one goroutine of Scan reads and
// checks at a time.
const scanChunk = 16

// Scan reads the entries start to end-1 of the tree of cp, a checkpoint
// the Verifier verified, re-hashed into it as Entries does, with up to
// workers chunks of scanChunk bundles read and checked at once (default:
// GOMAXPROCS). It calls check for every entry, from several goroutines
// at once (nil: none), and report, in log order, with the findings of
// each chunk and the index below which every entry has been checked. It
// stops at the first error: of the log (a bundle that does not hash into
// the tree), of the context, or of report. Its memory is bounded by the
// chunks in flight, whatever the size of the log.
func (v *Verifier) Scan(ctx context.Context, cp Checkpoint, start, end uint64, workers int,
	check func(Entry) []Finding, report func(next uint64, findings []Finding) error) error {
	if start > end || end > cp.Size {
		return fmt.Errorf("couldn't scan entries: range %d to %d is not within the tree of size %d", start, end, cp.Size)
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		next     uint64
		findings []Finding
		err      error
	}
	// Chunks start at bundle boundaries; results come back in order
	// through a queue of one channel per chunk, at most 2×workers deep,
	// so that reading overlaps checking.
	queue := make(chan chan result, 2*workers)
	sem := make(chan struct{}, workers)
	go func() {
		defer close(queue)
		const width = scanChunk * api.TileWidth
		for from := start; from < end; {
			to := min(end, (from/width+1)*width)
			out := make(chan result, 1)
			select {
			case queue <- out:
			case <-ctx.Done():
				return
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				out <- result{err: ctx.Err()}
				return
			}
			go func(from, to uint64) {
				defer func() { <-sem }()
				var findings []Finding
				for e, err := range v.Entries(ctx, cp, from, to) {
					if err != nil {
						out <- result{err: err}
						return
					}
					if check != nil {
						findings = append(findings, check(e)...)
					}
				}
				out <- result{next: to, findings: findings}
			}(from, to)
			from = to
		}
	}()
	for out := range queue {
		r := <-out
		if r.err != nil {
			return r.err
		}
		if err := report(r.next, r.findings); err != nil {
			return err
		}
	}
	return ctx.Err()
}
