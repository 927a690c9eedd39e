package witness

import (
	"testing"
	"time"
)

func TestBackoff(t *testing.T) {
	const interval, limit = 10 * time.Second, 10 * time.Minute
	for _, tc := range []struct {
		failures int
		want     time.Duration // before jitter
	}{
		{1, 20 * time.Second},
		{2, 40 * time.Second},
		{5, 320 * time.Second},
		{6, limit},
		{1000, limit},
	} {
		for range 20 {
			got := backoff(interval, limit, tc.failures)
			if got < tc.want || got > tc.want+tc.want/10 {
				t.Fatalf("backoff(%v, %v, %d) = %v, want %v plus at most 10%%", interval, limit, tc.failures, got, tc.want)
			}
		}
	}
	// A limit below the interval is the interval.
	if got := backoff(time.Minute, time.Second, 3); got < time.Minute || got > time.Minute+time.Minute/10 {
		t.Errorf("backoff(1m, 1s, 3) = %v, want 1m plus at most 10%%", got)
	}
}
