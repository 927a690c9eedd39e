package log

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The sequencer is one goroutine that owns the tree. It builds a batch from
// the queue (deduplicate, append to the tree, sign the checkpoint) while the
// previous batch's commit is in flight, then waits for that commit,
// publishes it and answers its requests, and only then starts the next
// commit. Commits are therefore strictly ordered, each extends the one
// before, and a checkpoint is published only after its commit returned.

// recoverInterval is how often a broken log retries reloading its state
// while no entries arrive, so that it becomes ready again by itself.
const recoverInterval = time.Second

// windowBatches is how many committed batches the sequencer remembers the
// leaf hashes of, so that entries looked up in storage before those batches
// were durable need not be looked up again.
const windowBatches = 8

// batch is a group of requests integrated and committed together.
type batch struct {
	reqs   []*request
	start  time.Time
	gen    uint64     // set if the batch adds leaves
	commit *Commit    // nil if the batch adds no leaves
	pub    *published // what the batch publishes once committed
	done   chan error // the commit's result
	err    error      // set if the batch could not be built at all
}

type windowBatch struct {
	gen    uint64
	leaves []LeafIndex
}

func (l *Log) run() {
	defer close(l.stopped)
	ctx := context.Background()
	var inflight *batch
	for {
		var retry <-chan time.Time
		if l.broken.Load() && inflight == nil {
			retry = time.After(recoverInterval)
		}
		var inflightDone <-chan error
		if inflight != nil {
			inflightDone = inflight.done
		}
		var first *request
		select {
		case first = <-l.queue:
		case err := <-inflightDone:
			l.finish(ctx, inflight, err)
			inflight = nil
			continue
		case <-retry:
			l.recover(ctx)
			continue
		case <-l.quit:
			if inflight != nil {
				l.finish(ctx, inflight, <-inflight.done)
			}
			for {
				select {
				case r := <-l.queue:
					r.done <- result{err: ErrClosed}
				default:
					return
				}
			}
		}
		b := l.build(ctx, first)
		if inflight != nil {
			err := <-inflight.done
			l.finish(ctx, inflight, err)
			inflight = nil
			if err != nil {
				// b was built on the tree of the failed batch.
				b.commit, b.err = nil, err
			}
		}
		if b.commit == nil {
			l.finish(ctx, b, nil)
			continue
		}
		b.done = make(chan error, 1)
		go func(b *batch) { b.done <- l.store.Commit(ctx, b.commit) }(b)
		inflight = b
	}
}

// build takes first and whatever else is queued, up to the batch size,
// appends the new entries to the tree and prepares their commit.
func (l *Log) build(ctx context.Context, first *request) *batch {
	b := &batch{reqs: make([]*request, 1, min(l.maxBatch, 1+len(l.queue))), start: time.Now()}
	b.reqs[0] = first
fill:
	for len(b.reqs) < l.maxBatch {
		select {
		case r := <-l.queue:
			b.reqs = append(b.reqs, r)
		default:
			break fill
		}
	}
	l.metrics.integrating.Add(float64(len(b.reqs)))
	if l.broken.Load() {
		l.recover(ctx)
		if l.broken.Load() {
			b.err = ErrUnavailable
			return b
		}
	}
	oldSize := l.tree.size()
	var leaves []LeafIndex
	for _, r := range b.reqs {
		if idx, ok := l.recent[r.hash]; ok {
			r.index, r.dup = idx, true
			continue
		}
		if r.gen < l.evicted {
			// Batches committed after the caller's lookup have left the
			// window: look again.
			idx, err := l.store.LookupLeaf(ctx, r.hash[:])
			if err == nil {
				r.index, r.dup = idx, true
				continue
			}
			if !errors.Is(err, ErrNotFound) {
				r.err = fmt.Errorf("couldn't look up the leaf hash: %w", err)
				continue
			}
		}
		idx := l.tree.size()
		if err := l.tree.append(r.entry, r.hash[:]); err != nil {
			r.err = err
			continue
		}
		r.index = idx
		l.recent[r.hash] = idx
		leaves = append(leaves, LeafIndex{LeafHash: r.hash[:], Index: idx})
	}
	if len(leaves) == 0 {
		return b
	}
	l.lastGen++
	b.gen = l.lastGen
	l.remember(windowBatch{gen: b.gen, leaves: leaves})

	size := l.tree.size()
	tiles, bundles := l.tree.flush()
	root, err := l.tree.root()
	var cp []byte
	if err == nil {
		cp, err = l.sign(size, root)
	}
	if err != nil {
		// The tree is ahead of storage and can't be committed: start over.
		l.logger.Error("couldn't prepare a batch", "error", err)
		l.recover(ctx)
		b.err = err
		return b
	}
	b.commit = &Commit{
		OldSize:    oldSize,
		NewSize:    size,
		Checkpoint: cp,
		Tiles:      tiles,
		Bundles:    bundles,
		Leaves:     leaves,
	}
	b.pub = &published{size: size, checkpoint: cp}
	return b
}

// remember adds a batch to the window, forgetting the oldest committed
// batches beyond its size.
func (l *Log) remember(wb windowBatch) {
	l.window = append(l.window, wb)
	durable := l.gen.Load()
	for len(l.window) > windowBatches && l.window[0].gen <= durable {
		for _, li := range l.window[0].leaves {
			delete(l.recent, [32]byte(li.LeafHash))
		}
		l.evicted = l.window[0].gen
		l.window[0] = windowBatch{}
		l.window = l.window[1:]
	}
}

// resetWindow forgets every batch, so that every pending request is looked
// up in storage again.
func (l *Log) resetWindow() {
	clear(l.recent)
	l.window = nil
	l.evicted = l.lastGen
	l.gen.Store(l.lastGen)
}

// finish publishes a committed batch (or recovers from its failed commit)
// and answers its requests.
func (l *Log) finish(ctx context.Context, b *batch, err error) {
	if b.commit != nil {
		l.metrics.commitSeconds.Observe(time.Since(b.start).Seconds())
		l.metrics.batchEntries.Observe(float64(len(b.commit.Leaves)))
		if err == nil {
			l.setCommitted(b.pub)
			l.gen.Store(b.gen)
			l.metrics.treeSize.Set(float64(b.pub.size))
		} else {
			err = fmt.Errorf("couldn't commit entries %d to %d: %w", b.commit.OldSize, b.commit.NewSize, err)
			l.logger.Error("couldn't commit a batch", "error", err, "entries", len(b.commit.Leaves))
			b.err = err
			l.recover(ctx)
		}
	}
	l.metrics.integrating.Sub(float64(len(b.reqs)))
	pub := l.cur.Load()
	for _, r := range b.reqs {
		switch {
		case r.err != nil:
			r.done <- result{err: r.err}
			continue
		case b.err != nil && !(r.dup && r.index < pub.size):
			r.done <- result{err: b.err}
			continue
		case r.dup:
			l.metrics.entries.WithLabelValues("duplicate").Inc()
		default:
			l.metrics.entries.WithLabelValues("new").Inc()
		}
		r.done <- result{r: Receipt{
			Index:      r.index,
			LeafHash:   r.hash[:],
			Duplicate:  r.dup,
			Size:       pub.size,
			Checkpoint: pub.checkpoint,
		}}
	}
}
