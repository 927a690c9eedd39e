package log_test

import (
	"context"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/candorlog/candor/log"
	"github.com/candorlog/candor/storage/pebble"
)

// indexFault is pebble storage whose deferred index writes fail (as if
// the process died before them: they never land) or wait.
type indexFault struct {
	*pebble.Storage
	fail   atomic.Bool
	mu     sync.Mutex
	hold   chan struct{} // if not nil, writes wait until it is closed
	writes atomic.Int64  // the writes that landed
}

func (f *indexFault) IndexCommitted(ctx context.Context, leaves []log.LeafIndex, next uint64) error {
	f.mu.Lock()
	hold := f.hold
	f.mu.Unlock()
	if hold != nil {
		<-hold
	}
	if f.fail.Load() {
		return errInjected
	}
	if err := f.Storage.IndexCommitted(ctx, leaves, next); err != nil {
		return err
	}
	f.writes.Add(1)
	return nil
}

// checkSearchAgainstScan checks queries of the log's own terms against a
// scan of its entries.
func checkSearchAgainstScan(t *testing.T, s *searchLog, what string) {
	t.Helper()
	byTerm, leaves := s.scan(t)
	for _, q := range randomQueries(byTerm, 60) {
		got, _ := s.searchAll(t, cloneQuery(q))
		if w := want(t, byTerm, leaves, q); !sameHits(got, w) {
			t.Fatalf("%s: GET /v1/search?%s found %v, the scan %v", what, q.Encode(), hitIndexes(got), hitIndexes(w))
		}
	}
}

// TestSearchDeferredIndexLost checks that entries the log committed but
// whose index writes never landed (the process died first) are found
// from their commit on, and after a restart, which indexes them again
// from the stored entries.
func TestSearchDeferredIndexLost(t *testing.T) {
	dir := t.TempDir()
	var fault *indexFault
	s := startSearchLogOn(t, dir, func(p *pebble.Storage) log.Storage {
		fault = &indexFault{Storage: p}
		return fault
	})
	ctx := context.Background()
	s.submit(t, mixedSubmissions(200))
	fault.fail.Store(true)
	s.submit(t, mixedSubmissions(300))
	checkSearchAgainstScan(t, s, "with the index behind")
	_, size := s.log.Checkpoint()
	if indexed, _, err := s.store.IndexedSize(ctx); err != nil || indexed >= size {
		t.Fatalf("IndexedSize = %d, %v with every index write failing; want below %d", indexed, err, size)
	}
	s.stop()

	// Started again while the index takes no write (as on a full disk):
	// it serves, and finds everything.
	s = startSearchLogOn(t, dir, func(p *pebble.Storage) log.Storage {
		fault = &indexFault{Storage: p}
		fault.fail.Store(true)
		return fault
	})
	checkSearchAgainstScan(t, s, "restarted with the index behind")
	s.stop()

	s = startSearchLog(t, dir)
	if indexed, known, err := s.store.IndexedSize(ctx); err != nil || !known || indexed != size {
		t.Fatalf("after a restart IndexedSize = %d, %t, %v; want %d", indexed, known, err, size)
	}
	checkSearchAgainstScan(t, s, "after a restart")
	s.submit(t, mixedSubmissions(100))
	checkSearchAgainstScan(t, s, "with new entries")
}

// TestSearchDeferredIndexWait checks that the log stops taking entries
// while too many wait to be indexed, and goes on once they are.
func TestSearchDeferredIndexWait(t *testing.T) {
	defer log.SetMaxIndexTail(50)()
	dir := t.TempDir()
	hold := make(chan struct{})
	var fault *indexFault
	s := startSearchLogOn(t, dir, func(p *pebble.Storage) log.Storage {
		fault = &indexFault{Storage: p, hold: hold}
		return fault
	})
	// Every entry carries terms: 50 fill the tail (the last batch is
	// built while fewer wait).
	s.submit(t, mixedSubmissions(50))
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.submit(t, mixedSubmissions(20))
	}()
	select {
	case <-done:
		t.Fatal("the log took entries while more than its bound waited to be indexed")
	case <-time.After(500 * time.Millisecond):
	}
	close(hold)
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the log took no entries once the index caught up")
	}
	if fault.writes.Load() == 0 {
		t.Fatal("no index write landed")
	}
	checkSearchAgainstScan(t, s, "after the wait")
	if _, size := s.log.Checkpoint(); size != 70 {
		t.Fatalf("tree size %d, want 70", size)
	}
}

// bundleHold is pebble storage whose reads of entry bundles, once holding
// is set and after pass more of them, wait until release (or, so that a
// log that waits for them fails the test rather than hang it, a minute).
type bundleHold struct {
	*pebble.Storage
	mu       sync.Mutex
	holding  bool
	pass     int
	released chan struct{}
	waited   atomic.Int64 // reads that waited
	timedOut atomic.Bool
}

func newBundleHold(p *pebble.Storage, pass int) *bundleHold {
	return &bundleHold{Storage: p, holding: true, pass: pass, released: make(chan struct{})}
}

func (b *bundleHold) ReadEntryBundle(ctx context.Context, index uint64) ([]byte, error) {
	b.mu.Lock()
	wait := b.holding && b.pass == 0
	if b.holding && b.pass > 0 {
		b.pass--
	}
	b.mu.Unlock()
	if wait {
		b.waited.Add(1)
		select {
		case <-b.released:
		case <-time.After(time.Minute):
			b.timedOut.Store(true)
		}
	}
	return b.Storage.ReadEntryBundle(ctx, index)
}

func (b *bundleHold) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.holding {
		b.holding = false
		close(b.released)
	}
}

// TestSearchIndexCatchesUpInBackground checks that a log whose index
// lacks more entries than its tail holds (an index dropped for a new
// format, or written by none of the last run's index writes) serves at
// once: it takes entries, more than the tail holds, while it reads the
// entries the index lacks, searches answer 503 meanwhile, and then find
// exactly what a scan finds; stopped during the catch-up, the log keeps
// what it indexed, and the next start goes on from there.
func TestSearchIndexCatchesUpInBackground(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	var fault *indexFault
	s := startSearchLogOn(t, dir, func(p *pebble.Storage) log.Storage {
		fault = &indexFault{Storage: p}
		fault.fail.Store(true)
		return fault
	})
	s.submit(t, mixedSubmissions(1200))
	s.stop()
	defer log.SetMaxIndexTail(100)()

	// Started with bundle reads held after the first (the log's read of
	// its edge bundle): the log serves.
	var hold *bundleHold
	s = startSearchLogOn(t, dir, func(p *pebble.Storage) log.Storage {
		hold = newBundleHold(p, 1)
		return hold
	})
	if hold.timedOut.Load() {
		t.Fatal("the log waited for the catch-up before it served")
	}
	waitFor(t, "the catch-up to read past its first bundle", func() bool { return hold.waited.Load() > 0 })
	if code, body := s.get(t, "/v1/search?repository="+url.QueryEscape("https://git.example.com/project-0.git")); code != http.StatusServiceUnavailable {
		t.Fatalf("search during the catch-up: %d %s, want 503", code, body)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.submit(t, mixedSubmissions(300))
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the log took no entries while its index caught up")
	}
	// Stopped during the catch-up: what it indexed is kept.
	before, _, err := s.store.IndexedSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(100 * time.Millisecond)
		hold.release()
	}()
	s.stop()
	s = startSearchLogOn(t, dir, func(p *pebble.Storage) log.Storage {
		hold = newBundleHold(p, 1)
		return hold
	})
	if hold.timedOut.Load() {
		t.Fatal("the log waited for the catch-up before it served")
	}
	after, _, err := s.store.IndexedSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if after <= before {
		t.Fatalf("the index covered %d entries before the stop and %d after: the catch-up's work was lost", before, after)
	}
	hold.release()
	waitFor(t, "the index to catch up", func() bool {
		code, _ := s.get(t, "/v1/search?repository="+url.QueryEscape("https://git.example.com/project-0.git"))
		return code == http.StatusOK
	})
	checkSearchAgainstScan(t, s, "after the catch-up")
	s.submit(t, mixedSubmissions(100))
	checkSearchAgainstScan(t, s, "with new entries")
	s.stop()
	s = startSearchLog(t, dir)
	_, size := s.log.Checkpoint()
	if indexed, _, err := s.store.IndexedSize(ctx); err != nil || indexed != size {
		t.Fatalf("after the catch-up and a stop IndexedSize = %d, %v; want %d", indexed, err, size)
	}
}

// waitFor polls cond until it holds, or fails t after 30 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// readCount is indexFault that counts reads of entry bundles.
type readCount struct {
	*indexFault
	reads atomic.Int64
}

func (r *readCount) ReadEntryBundle(ctx context.Context, index uint64) ([]byte, error) {
	r.reads.Add(1)
	return r.indexFault.ReadEntryBundle(ctx, index)
}

// TestSearchIndexCatchUpBounded checks that a catch-up in the background
// whose index writes fail (a full disk) stops reading entries once the
// tail holds its bound, rather than hold every entry the index lacks in
// memory, and goes on when the writes do.
func TestSearchIndexCatchUpBounded(t *testing.T) {
	dir := t.TempDir()
	s := startSearchLogOn(t, dir, func(p *pebble.Storage) log.Storage {
		f := &indexFault{Storage: p}
		f.fail.Store(true)
		return f
	})
	s.submit(t, mixedSubmissions(1200)) // 5 bundles
	s.stop()
	defer log.SetMaxIndexTail(100)()
	var rc *readCount
	s = startSearchLogOn(t, dir, func(p *pebble.Storage) log.Storage {
		rc = &readCount{indexFault: &indexFault{Storage: p}}
		rc.fail.Store(true)
		return rc
	})
	// The log's read of its edge bundle, and the catch-up's first: its
	// 256 entries are more than the tail holds.
	waitFor(t, "the catch-up to start", func() bool { return rc.reads.Load() >= 2 })
	time.Sleep(300 * time.Millisecond)
	if n := rc.reads.Load(); n != 2 {
		t.Fatalf("%d bundle reads with every index write failing, want 2: the catch-up read on", n)
	}
	rc.fail.Store(false)
	waitFor(t, "the index to catch up", func() bool {
		code, _ := s.get(t, "/v1/search?repository="+url.QueryEscape("https://git.example.com/project-0.git"))
		return code == http.StatusOK
	})
	checkSearchAgainstScan(t, s, "after the catch-up")
}
