package log

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/candorlog/candor/api"
)

// Deferred indexing.
//
// Indexing an entry in its own commit puts a key per search term in the
// storage's write on the commit's path, in as many places of its key
// space as there are terms: on a machine of two cores that costs the
// append path nearly half its throughput. With a DeferredIndexer the log
// commits the entries alone and indexes them afterwards, off that path,
// many commits at once. The entries committed but not yet indexed, the
// tail, stay in memory (at most maxIndexTail of them; the sequencer waits
// for the indexer beyond that) and a search reads the index below
// IndexedSize and the tail above it, so that every committed entry is
// found from its commit on, as before.
//
// The index is derived from the entries, which are durable from their
// commit: after a crash the log reads the tail's entries again from
// storage and indexes them (catchUp); a few (at most maxIndexTail) before
// it serves, more (an index dropped for a new format, or rebuilt) in the
// background, while searches answer ErrSearchUnavailable and submissions
// go on. Search never disagrees with the log.

// DeferredIndexer is a SearchStorage whose index the log writes after the
// commits, rather than in them. Commits then carry no terms.
type DeferredIndexer interface {
	SearchStorage
	// IndexedSize returns how many of the log's first entries the index
	// covers, and false if the storage has no record of it: a database
	// whose index was written in its commits, which covers every entry.
	IndexedSize(ctx context.Context) (uint64, bool, error)
	// IndexCommitted indexes leaves, committed entries from IndexedSize
	// on in log order, and sets IndexedSize to next, the size of the tree
	// they end (the entries in between have no terms), in one atomic
	// write. It need not be durable: the storage's next durable Commit
	// makes it durable, and until then a crash loses it whole.
	IndexCommitted(ctx context.Context, leaves []LeafIndex, next uint64) error
}

// maxIndexTail bounds the entries committed but not yet indexed. The
// indexer writes once indexBatch of them wait, or indexDelay after the
// first, at most maxIndexWrite at once: the fewer writes, the more entries
// share a posting, and a write costs the commits a short pause.
const (
	maxIndexWrite = 1 << 14
	indexBatch    = 1 << 14
	indexDelay    = time.Second
)

// maxIndexTail is a variable for the tests of the wait.
var maxIndexTail = 1 << 17

// indexRetry is how long the indexer waits after a failed write, and
// first after a failed read of entries it lacks; maxIndexRetry bounds the
// wait after reads that fail again.
const (
	indexRetry    = time.Second
	maxIndexRetry = time.Minute
)

// searchTail is the state of deferred indexing.
type searchTail struct {
	store DeferredIndexer

	mu sync.RWMutex
	// indexed is IndexedSize; covered is the size of the tree whose
	// entries are indexed or in leaves, those in [indexed, covered) that
	// have terms, in log order. The slice's elements never change: a
	// search may read them after it let go of mu. committed is the size
	// of the committed tree: the entries in [covered, committed) are read
	// from storage (catchUp) before the tail takes those of new commits.
	indexed, covered, committed uint64
	leaves                      []LeafIndex
	// progress is closed and replaced whenever the indexer wrote.
	progress chan struct{}
	writing  sync.Mutex // held by indexAll

	wake     chan struct{} // leaves were added
	quit     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
}

// startIndexer starts deferred indexing if the log's storage is a
// DeferredIndexer: the entries committed before it that the index does
// not cover are indexed before the log serves if they are few (the tail
// of a crash), in the background if not.
func (l *Log) startIndexer(ctx context.Context) error {
	d, ok := l.store.(DeferredIndexer)
	if !ok {
		return nil
	}
	indexed, known, err := d.IndexedSize(ctx)
	if err != nil {
		return err
	}
	size := l.cur.Load().size
	if !known {
		// Every entry is indexed: record it before the first commit. If
		// the storage takes no write now (a full disk), the next index
		// write records it.
		indexed = size
		if err := d.IndexCommitted(ctx, nil, size); err != nil {
			l.logger.Warn("couldn't record the size the search index covers", "error", err)
		}
	}
	if indexed > size {
		return fmt.Errorf("the search index covers %d entries, the log has %d", indexed, size)
	}
	t := &searchTail{
		store: d, indexed: indexed, covered: indexed, committed: size,
		progress: make(chan struct{}),
		wake:     make(chan struct{}, 1),
		quit:     make(chan struct{}), done: make(chan struct{}),
	}
	l.tail = t
	if size-indexed > uint64(maxIndexTail) {
		l.logger.Warn("the search index lacks many entries: they are indexed in the background, and searches answer 503 until they are",
			"indexed", indexed, "size", size)
		go t.run(l)
		return nil
	}
	// What the log left unindexed when it stopped is indexed before it
	// serves, so that a log restarted over and over never lets its tail
	// grow. If the storage takes no write now (a full disk), the log
	// serves all the same, and the indexer tries again.
	if err := t.catchUp(ctx, nil, l.logger); err != nil {
		return fmt.Errorf("couldn't read the entries the search index lacks: %w", err)
	}
	go t.run(l)
	if err := t.indexAll(ctx); err != nil {
		l.logger.Warn("couldn't index the entries the log left unindexed; they are found all the same", "error", err)
		t.poke()
	}
	return nil
}

// catchUp adds to the tail the committed entries it does not cover, read
// from storage: those the log committed before it started, and those of
// a batch whose commit failed but landed. It indexes them as it goes, so
// that the tail stays small however many there are, and returns when the
// tail covers the committed tree, or quit is closed.
func (t *searchTail) catchUp(ctx context.Context, quit <-chan struct{}, logger *slog.Logger) error {
	t.mu.RLock()
	covered, committed := t.covered, t.committed
	t.mu.RUnlock()
	if covered >= committed {
		return nil
	}
	logger.Info("indexing entries for search", "from", covered, "to", committed)
	started := time.Now()
	for {
		t.mu.RLock()
		covered, committed = t.covered, t.committed
		waiting := len(t.leaves)
		t.mu.RUnlock()
		if waiting >= min(maxIndexWrite, maxIndexTail) || covered >= committed {
			if err := t.indexAll(ctx); err != nil {
				if covered < committed && waiting >= maxIndexTail {
					// Reading on would hold every entry the index lacks
					// in memory.
					return fmt.Errorf("couldn't index the entries read: %w", err)
				}
				// Found from memory meanwhile; the indexer tries again.
				logger.Warn("couldn't index entries the search index lacks", "error", err)
			}
		}
		if covered >= committed {
			logger.Info("the search index covers the log", "size", covered, "duration", time.Since(started))
			return nil
		}
		select {
		case <-quit:
			return nil
		default:
		}
		bi := covered / api.TileWidth
		next := min(committed, (bi+1)*api.TileWidth)
		leaves, err := bundleTerms(ctx, t.store, bi, covered, next, true)
		if err != nil {
			return err
		}
		t.add(leaves, covered, next)
	}
}

// catchUpIndex has the tail cover the stored tree, after a commit that
// failed: the indexer reads what it lacks (catchUp).
func (l *Log) catchUpIndex() {
	if t := l.tail; t != nil {
		t.mu.Lock()
		t.committed = max(t.committed, l.cur.Load().size)
		t.mu.Unlock()
		t.poke()
	}
}

// add records that the entries in [from, next) are committed, leaves (in
// log order) among them. If the tail does not reach from, it records
// next alone: catchUp reads the entries in between from storage, and
// these with them.
func (t *searchTail) add(leaves []LeafIndex, from, next uint64) {
	t.mu.Lock()
	t.committed = max(t.committed, next)
	if next <= t.covered || from > t.covered {
		t.mu.Unlock()
		return
	}
	for _, li := range leaves {
		if li.Index >= t.covered && len(li.Terms) > 0 {
			t.leaves = append(t.leaves, li)
		}
	}
	t.covered = next
	t.mu.Unlock()
	t.poke()
}

// poke wakes the indexer.
func (t *searchTail) poke() {
	select {
	case t.wake <- struct{}{}:
	default:
	}
}

// waitRoom waits while the tail is full, or until quit is closed.
func (t *searchTail) waitRoom(quit <-chan struct{}) {
	for {
		t.mu.RLock()
		full, progress := len(t.leaves) >= maxIndexTail, t.progress
		t.mu.RUnlock()
		if !full {
			return
		}
		select {
		case <-progress:
		case <-quit:
			return
		}
	}
}

// run indexes the tail as it grows, and the committed entries it lacks
// (catchUp), until stop.
func (t *searchTail) run(l *Log) {
	defer close(t.done)
	ctx := context.Background()
	var due <-chan time.Time // indexDelay after the first entry waiting
	var retry <-chan time.Time
	backoff := indexRetry
	for {
		if retry == nil {
			if err := t.catchUp(ctx, t.quit, l.logger); err != nil {
				l.logger.Error("couldn't catch the search index up with the log; searches answer 503 until it is", "error", err, "retry", backoff)
				retry = time.After(backoff)
				backoff = min(2*backoff, maxIndexRetry)
			} else {
				backoff = indexRetry
			}
		}
		select {
		case <-t.quit:
			// What is left is indexed at the next start.
			if err := t.indexAll(ctx); err != nil {
				l.logger.Warn("the search index lags the log: the rest is indexed at the next start", "error", err)
			}
			return
		case <-retry:
			retry = nil
			continue
		case <-t.wake:
			t.mu.RLock()
			waiting, behind := len(t.leaves), t.covered > t.indexed
			t.mu.RUnlock()
			if waiting < indexBatch {
				if due == nil && behind {
					due = time.After(indexDelay)
				}
				continue
			}
		case <-due:
		}
		due = nil
		if err := t.indexAll(ctx); err != nil {
			l.logger.Error("couldn't index new entries for search; they are found all the same, and indexed again", "error", err)
			due = time.After(indexRetry)
		}
	}
}

// indexAll indexes the tail, maxIndexWrite entries at a time.
func (t *searchTail) indexAll(ctx context.Context) error {
	t.writing.Lock()
	defer t.writing.Unlock()
	for {
		t.mu.RLock()
		n := min(len(t.leaves), maxIndexWrite)
		leaves, next := t.leaves[:n], t.covered
		if n < len(t.leaves) {
			next = t.leaves[n].Index
		}
		indexed := t.indexed
		t.mu.RUnlock()
		if next == indexed {
			return nil
		}
		if err := t.store.IndexCommitted(ctx, leaves, next); err != nil {
			return err
		}
		t.mu.Lock()
		t.leaves = t.leaves[n:]
		if len(t.leaves) == 0 {
			t.leaves = nil // let the array go
		}
		t.indexed = next
		close(t.progress)
		t.progress = make(chan struct{})
		t.mu.Unlock()
	}
}

// stop stops the indexer, after it indexed what it can.
func (t *searchTail) stop() {
	t.stopOnce.Do(func() { close(t.quit) })
	<-t.done
}

// view returns the size the index covers, the tail's entries and the
// size of the tree they and the index cover.
func (t *searchTail) view() (indexed uint64, leaves []LeafIndex, covered uint64) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.indexed, t.leaves, t.covered
}

// searchTailHits appends to hits the entries of leaves (in log order)
// with an index in [start, end) that have every one of terms, until it
// holds limit.
func searchTailHits(leaves []LeafIndex, terms []api.SearchTerm, start, end uint64, limit int, hits []api.SearchHit) []api.SearchHit {
	i, _ := slices.BinarySearchFunc(leaves, start, func(li LeafIndex, start uint64) int {
		switch {
		case li.Index < start:
			return -1
		case li.Index > start:
			return 1
		}
		return 0
	})
	for _, li := range leaves[i:] {
		if len(hits) >= limit || li.Index >= end {
			break
		}
		if !slices.ContainsFunc(terms, func(t api.SearchTerm) bool { return !slices.Contains(li.Terms, t) }) {
			hits = append(hits, api.SearchHit{Index: li.Index, LeafHash: li.LeafHash})
		}
	}
	return hits
}

// detach returns leaves with their leaf hashes copied into one array of
// their own, so that they do not keep their requests, entries included,
// alive.
func detach(leaves []LeafIndex) []LeafIndex {
	out := make([]LeafIndex, len(leaves))
	hashes := make([]byte, 0, len(leaves)*api.HashSize)
	for i, li := range leaves {
		hashes = append(hashes, li.LeafHash...)
		out[i] = LeafIndex{LeafHash: hashes[len(hashes)-api.HashSize:], Index: li.Index, Terms: li.Terms}
	}
	return out
}

// withoutTerms returns leaves without their terms.
func withoutTerms(leaves []LeafIndex) []LeafIndex {
	out := make([]LeafIndex, len(leaves))
	for i, li := range leaves {
		out[i] = LeafIndex{LeafHash: li.LeafHash, Index: li.Index}
	}
	return out
}
