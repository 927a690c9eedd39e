package log_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/candorlog/candor/log"
)

// errInjected is the error faultStore's failures return.
var errInjected = errors.New("injected storage fault")

// faultStore wraps a real log.Storage to inject faults; everything it
// does not fail goes through to the real storage.
type faultStore struct {
	log.Storage

	mu sync.Mutex
	// hold, if not nil, makes Commit send on entered and wait until hold
	// is closed before doing anything else.
	hold    chan struct{}
	entered chan struct{}
	// failBefore fails that many next commits without writing anything.
	failBefore int
	// failAfter makes that many next commits write, then report an error,
	// as when the write landed but its fsync reported a failure.
	failAfter int
	// failWhen, if not nil, is asked about every commit that is not
	// failed by the counts above: fail it before writing, or write it
	// and then fail.
	failWhen func(c *log.Commit) (before, after bool)
	// failReads makes ReadCheckpoint fail.
	failReads bool

	// tileReads counts the calls of ReadTile.
	tileReads atomic.Int64
}

func newFaultStore(s log.Storage) *faultStore {
	return &faultStore{Storage: s, entered: make(chan struct{}, 16)}
}

// holdCommits makes the next commits block until release is called.
func (f *faultStore) holdCommits() (release func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	hold := make(chan struct{})
	f.hold = hold
	return func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.hold == hold {
			f.hold = nil
		}
		close(hold)
	}
}

// failOnce returns a failWhen that fails the first commit from tree size
// old, before writing or after.
func failOnce(old uint64, afterWrite bool) func(c *log.Commit) (before, after bool) {
	fired := false
	return func(c *log.Commit) (bool, bool) {
		if fired || c.OldSize != old {
			return false, false
		}
		fired = true
		return !afterWrite, afterWrite
	}
}

func (f *faultStore) set(fn func(f *faultStore)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *faultStore) ReadCheckpoint(ctx context.Context) ([]byte, uint64, error) {
	f.mu.Lock()
	fail := f.failReads
	f.mu.Unlock()
	if fail {
		return nil, 0, errInjected
	}
	return f.Storage.ReadCheckpoint(ctx)
}

func (f *faultStore) ReadTile(ctx context.Context, level uint8, index uint64) ([]byte, error) {
	f.tileReads.Add(1)
	return f.Storage.ReadTile(ctx, level, index)
}

// decide holds the commit while commits are held, then tells whether to
// fail it before writing or after.
func (f *faultStore) decide(c *log.Commit) (before, after bool) {
	f.mu.Lock()
	hold := f.hold
	f.mu.Unlock()
	if hold != nil {
		f.entered <- struct{}{}
		<-hold
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	before, after = f.failBefore > 0, f.failAfter > 0
	switch {
	case before:
		f.failBefore--
	case after:
		f.failAfter--
	case f.failWhen != nil:
		before, after = f.failWhen(c)
	}
	return before, after
}

func (f *faultStore) Commit(ctx context.Context, c *log.Commit) error {
	before, after := f.decide(c)
	if before {
		return errInjected
	}
	if err := f.Storage.Commit(ctx, c); err != nil {
		return err
	}
	if after {
		return errInjected
	}
	return nil
}

// StartCommit passes the pipelined commits of the real storage through,
// with the same faults as Commit: one that fails after writing fails in
// its wait, as when its sync reports an error.
func (f *faultStore) StartCommit(ctx context.Context, c *log.Commit) (func() error, error) {
	before, after := f.decide(c)
	if before {
		return nil, errInjected
	}
	wait, err := f.Storage.(log.PipelinedStorage).StartCommit(ctx, c)
	if err != nil {
		return nil, err
	}
	if after {
		return func() error {
			if err := wait(); err != nil {
				return err
			}
			return errInjected
		}, nil
	}
	return wait, nil
}

// serialStore hides a storage's StartCommit, so that the log commits one
// batch at a time.
type serialStore struct{ log.Storage }
