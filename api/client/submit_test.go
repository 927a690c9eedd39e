package client

import (
	"testing"
	"time"
)

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 5, 18, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"1", time.Second},
		{" 120 ", 2 * time.Minute},
		{"86400", maxRetryAfter},
		{"99999999999999999999", 0}, // not a uint64: malformed
		{"18446744073709551615", maxRetryAfter},
		{"-1", 0},
		{"1.5", 0},
		{"soon", 0},
		{"Sat, 05 Dec 2026 18:00:30 GMT", 30 * time.Second},
		{"Sat, 05 Dec 2026 17:59:00 GMT", 0},
		{"Sun, 06 Dec 2026 18:00:00 GMT", maxRetryAfter},
	} {
		if got := retryAfter(tc.in, now); got != tc.want {
			t.Errorf("retryAfter(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
