package log_test

import (
	"context"
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
