package log

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// The sequencer is one goroutine that owns the tree. It builds batches from
// the queue (deduplicate, append to the tree, sign the checkpoint) while
// up to Config.MaxInflight earlier batches are being committed, then, in order,
// waits for each commit, publishes it and answers its requests. Commits
// are started in order by one committer goroutine, each extends the one
// before, and a checkpoint is published only after its commit returned.
//
// With a PipelinedStorage the committer starts the next commit while the
// earlier ones wait for their sync, so one sync covers several batches;
// with another Storage it runs one Commit at a time.
//
// A batch is built while others are in flight only once Config.PipelineMin
// entries are queued: every batch costs a sync, and a few entries gain
// nothing from a sync of their own that an earlier commit delays anyway.

// recoverInterval is how often a broken log retries reloading its state
// while no entries arrive, so that it becomes ready again by itself.
const recoverInterval = time.Second

// windowBatches is how many committed batches the sequencer remembers the
// leaf hashes of, so that entries looked up in storage before those batches
// were durable need not be looked up again. Batches in flight are always
// remembered on top of these.
const windowBatches = 8

// batch is a group of requests integrated and committed together.
type batch struct {
	reqs   []*request
	start  time.Time
	gen    uint64     // set if the batch adds leaves
	commit *Commit    // nil if the batch adds no leaves
	pub    *published // what the batch publishes once committed
	// tiles are the hash tiles the batch grew, expanded, for the tile
	// cache once the batch is durable.
	tiles []expandedTile
	// index are the batch's new entries with their terms, for the search
	// tail once the batch is durable; nil without deferred indexing.
	index []LeafIndex
	done  chan error // the commit's result
	err   error      // set if the batch could not be built at all
	stale bool       // the tree was left ahead of storage: reload it
}

type windowBatch struct {
	gen    uint64
	leaves []LeafIndex
}

func (l *Log) run() {
	defer close(l.stopped)
	ctx := context.Background()
	commits := make(chan *batch, l.inflight)
	defer close(commits)
	go l.commitLoop(ctx, commits)
	var inflight []*batch // oldest first
	drain := func() {
		for len(inflight) > 0 {
			inflight = l.retire(ctx, inflight, <-inflight[0].done)
		}
	}
	for {
		var retry <-chan time.Time
		if l.broken.Load() && len(inflight) == 0 {
			retry = time.After(recoverInterval)
		}
		var oldest <-chan error
		if len(inflight) > 0 {
			oldest = inflight[0].done
		}
		var queue <-chan *request
		var wake <-chan struct{}
		switch {
		case len(inflight) == 0 || len(inflight) < l.inflight && len(l.queue) >= l.pipeMin:
			queue = l.queue
		case len(inflight) < l.inflight:
			wake = l.wake
		}
		var first *request
		select {
		case first = <-queue:
		case <-wake:
			continue
		case err := <-oldest:
			inflight = l.retire(ctx, inflight, err)
			continue
		case <-retry:
			l.recover(ctx)
			continue
		case <-l.quit:
			drain()
			for {
				select {
				case r := <-l.queue:
					r.resolve(Receipt{}, ErrClosed)
				default:
					return
				}
			}
		}
		if l.tail != nil {
			l.tail.waitRoom(l.quit)
		}
		b := l.build(ctx, first)
		b.done = make(chan error, 1)
		if b.stale {
			// Let the batches in flight land, then start over from storage.
			drain()
			l.recover(ctx)
		}
		if b.commit == nil {
			// Answered in turn, after the batches its duplicates may
			// point into.
			b.done <- nil
		} else {
			commits <- b // never blocks: it has room for every batch in flight
		}
		inflight = append(inflight, b)
	}
}

// commitLoop commits the batches in the order they come, and reports each
// one's result on its done channel.
func (l *Log) commitLoop(ctx context.Context, commits <-chan *batch) {
	ps, pipelined := l.store.(PipelinedStorage)
	for b := range commits {
		if !pipelined {
			b.done <- l.store.Commit(ctx, b.commit)
			continue
		}
		wait, err := ps.StartCommit(ctx, b.commit)
		if err != nil {
			b.done <- err
			continue
		}
		go func() { b.done <- wait() }()
	}
}

// retire publishes the oldest batch in flight, whose commit returned err,
// and answers its requests. If the commit failed, every later batch in
// flight, built on its tree, fails too once its own commit returned, and
// the tree is reloaded from storage first.
func (l *Log) retire(ctx context.Context, inflight []*batch, err error) []*batch {
	b := inflight[0]
	inflight[0] = nil
	inflight = inflight[1:]
	if err == nil {
		l.finish(b, nil)
		return inflight
	}
	if b.commit != nil {
		err = fmt.Errorf("couldn't commit entries %d to %d: %w", b.commit.OldSize, b.commit.NewSize, err)
		l.logger.Error("couldn't commit a batch", "error", err, "entries", len(b.commit.Leaves))
	}
	for _, later := range inflight {
		<-later.done
	}
	// Answer once the tree is reloaded: a duplicate of an entry in the
	// failed batches gets its index if the batch landed after all.
	l.recover(ctx)
	l.finish(b, err)
	for i, later := range inflight {
		l.finish(later, fmt.Errorf("an earlier batch failed: %w", err))
		inflight[i] = nil
	}
	return inflight[:0]
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
				r.fail = fmt.Errorf("couldn't look up the leaf hash: %w", err)
				continue
			}
		}
		idx := l.tree.size()
		if err := l.tree.append(r.entry, r.hash[:]); err != nil {
			r.fail = err
			continue
		}
		r.index = idx
		l.recent[r.hash] = idx
		leaves = append(leaves, LeafIndex{LeafHash: r.hash[:], Index: idx, Terms: r.terms})
	}
	if len(leaves) == 0 {
		return b
	}
	l.lastGen++
	b.gen = l.lastGen
	l.remember(windowBatch{gen: b.gen, leaves: leaves})

	size := l.tree.size()
	tiles, bundles, expanded := l.tree.flush()
	root, err := l.tree.root()
	var cp []byte
	if err == nil {
		cp, err = l.sign(size, root)
	}
	if err != nil {
		// The tree is ahead of storage and can't be committed: start over.
		l.logger.Error("couldn't prepare a batch", "error", err)
		b.err, b.stale = err, true
		return b
	}
	if l.tail != nil {
		// Indexed once committed (searchtail.go).
		b.index = detach(leaves)
		leaves = withoutTerms(b.index)
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
	b.tiles = expanded
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

// finish publishes a batch whose commit returned err (nil for a batch
// without a commit) and answers its requests.
func (l *Log) finish(b *batch, err error) {
	if b.commit != nil {
		l.metrics.commitSeconds.Observe(time.Since(b.start).Seconds())
		l.metrics.batchEntries.Observe(float64(len(b.commit.Leaves)))
		if err == nil {
			// Before the batch's entries are answered: their proofs
			// need these tiles.
			l.cache.add(b.tiles)
			if l.tail != nil {
				l.tail.add(b.index, b.commit.OldSize, b.pub.size)
			}
			l.setCommitted(b.pub)
			l.gen.Store(b.gen)
			l.metrics.treeSize.Set(float64(b.pub.size))
		}
	}
	if err != nil {
		b.err = err
	}
	l.metrics.integrating.Sub(float64(len(b.reqs)))
	pub := l.cur.Load()
	var added, dups int
	for _, r := range b.reqs {
		switch {
		case r.fail != nil:
			r.resolve(Receipt{}, r.fail)
			continue
		case b.err != nil && !(r.dup && r.index < pub.size):
			r.resolve(Receipt{}, b.err)
			continue
		case r.dup:
			dups++
		default:
			added++
		}
		r.resolve(Receipt{
			Index:      r.index,
			LeafHash:   r.hash[:],
			Duplicate:  r.dup,
			Size:       pub.size,
			Checkpoint: pub.checkpoint,
		}, nil)
	}
	l.metrics.newEntries.Add(float64(added))
	l.metrics.duplicate.Add(float64(dups))
}
