package trillian

import (
	"testing"
	"time"

	"github.com/google/trillian/types"
)

// TestSignerPace: while submissions wait, the mirror asks for a new root
// every waitingPoll until it has seen a few of the signer's roots, then
// not before one signer interval (the shortest seen between two roots)
// after the newest, less waitingPoll, and never later than an interval.
func TestSignerPace(t *testing.T) {
	var p signerPace
	start := time.Unix(1000, 0)
	signer := uint64(5e9) // the signer's clock is not the mirror's
	const interval = 100 * time.Millisecond
	root := func(i int) *types.LogRootV1 {
		return &types.LogRootV1{TreeSize: uint64(10 * (i + 1)), TimestampNanos: signer + uint64(i)*uint64(interval)}
	}
	for i := range 4 {
		// Each root seen 3ms after the signer made it.
		at := start.Add(time.Duration(i)*interval + 3*time.Millisecond)
		p.saw(root(i), at)
		if got := p.wait(at.Add(time.Millisecond)); got != waitingPoll {
			t.Fatalf("after %d roots: wait %v, want %v", i+1, got, waitingPoll)
		}
	}
	// A round that finds the same root again changes nothing.
	p.saw(root(3), start.Add(3*interval+40*time.Millisecond))
	// A root missed (the signer's 5th) makes a gap of two intervals: the
	// interval is the shortest gap.
	seen := start.Add(5*interval + 3*time.Millisecond)
	p.saw(root(5), seen)
	for _, c := range []struct {
		after, want time.Duration
	}{
		{time.Millisecond, interval - waitingPoll - time.Millisecond},
		{50 * time.Millisecond, interval - waitingPoll - 50*time.Millisecond},
		{interval - 2*waitingPoll + time.Millisecond, waitingPoll},
		{interval + 30*time.Millisecond, waitingPoll}, // late: the next root is due
	} {
		if got := p.wait(seen.Add(c.after)); got != c.want {
			t.Errorf("%v after the newest root was seen: wait %v, want %v", c.after, got, c.want)
		}
	}
	// A signer whose clock went back: no gap from it.
	p.saw(&types.LogRootV1{TreeSize: 70, TimestampNanos: signer - 1}, seen.Add(interval))
	if got := p.wait(seen.Add(interval + time.Millisecond)); got != interval-waitingPoll-time.Millisecond {
		t.Errorf("after a root made before the last: wait %v, want %v", got, interval-waitingPoll-time.Millisecond)
	}
}
