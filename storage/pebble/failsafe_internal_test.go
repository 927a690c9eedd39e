package pebble

import (
	"log/slog"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// TestHandleFlush checks that a flush of a writable handle writes the
// memtable to a table.
func TestHandleFlush(t *testing.T) {
	h, err := openHandle(t.TempDir(), Options{Logger: slog.New(slog.DiscardHandler), CacheBytes: 8 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer h.close()
	wait, err := h.write(func(b *pebble.Batch) error { return b.Set([]byte("key"), []byte("value"), nil) })
	if err != nil {
		t.Fatal(err)
	}
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if err := h.flush(); err != nil {
		t.Fatalf("flush of a writable handle: %v", err)
	}
	for deadline := time.Now().Add(10 * time.Second); h.db.Metrics().Flush.Count == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no flush within 10 s of flush")
		}
	}
	if v, err := h.get([]byte("key")); err != nil || string(v) != "value" {
		t.Fatalf("after the flush: %q, %v", v, err)
	}
}
