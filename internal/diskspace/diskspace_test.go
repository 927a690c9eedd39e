package diskspace_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/candorlog/candor/internal/diskspace"
	"github.com/candorlog/candor/internal/tmpfs"
)

func TestDefaultReserve(t *testing.T) {
	for _, tc := range []struct{ total, want int64 }{
		{0, 0},
		{64 << 20, 16 << 20},     // a quarter of a small filesystem
		{1023 << 20, 1023 << 18}, // a quarter, just below the floor
		{1 << 30, 256 << 20},     // the floor is a quarter
		{12 << 30, 256 << 20},    // the floor, above 2%
		{50 << 30, 1 << 30},      // 2%
		{100 << 30, 2 << 30},     // 2%
		{200 << 30, 4 << 30},     // 2% is the cap
		{10 << 40, 4 << 30},      // the cap
	} {
		if got := diskspace.DefaultReserve(tc.total); got != tc.want {
			t.Errorf("DefaultReserve(%d) = %d, want %d", tc.total, got, tc.want)
		}
	}
}

// TestMonitorTmpfs fills a real 16 MiB tmpfs below a 4 MiB reserve and
// frees it again.
func TestMonitorTmpfs(t *testing.T) {
	dir := tmpfs.Mount(t, 16<<20)
	reg := prometheus.NewRegistry()
	m, err := diskspace.New(dir, 4<<20, diskspace.Options{Registerer: reg, Namespace: "candor_test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); err != nil {
		t.Fatalf("empty filesystem: %v", err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	gauges := make(map[string]float64)
	for _, mf := range mfs {
		gauges[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
	}
	if gauges["candor_test_disk_reserve_bytes"] != 4<<20 || gauges["candor_test_disk_free_bytes"] != float64(m.Free()) {
		t.Errorf("metrics %v, want the reserve 4 MiB and %d bytes free", gauges, m.Free())
	}
	free := func() int64 {
		if err := m.Update(); err != nil {
			t.Fatal(err)
		}
		return m.Free()
	}
	fill := filepath.Join(dir, "fill")
	tmpfs.Fill(t, fill, free, 1<<20)
	if err := m.Update(); err != nil {
		t.Fatal(err)
	}
	var low *diskspace.LowError
	if err := m.Check(); !errors.As(err, &low) {
		t.Fatalf("Check with %d bytes free = %v, want a LowError", m.Free(), err)
	}
	if low.Free >= 4<<20 || low.Reserve != 4<<20 || low.Dir != dir {
		t.Errorf("LowError = %+v", low)
	}
	if msg := low.Error(); !strings.Contains(msg, "below the reserve of 4.0 MiB") || !strings.Contains(msg, dir) {
		t.Errorf("message %q does not say the reserve and the directory", msg)
	}
	if err := os.Remove(fill); err != nil {
		t.Fatal(err)
	}
	if err := m.Update(); err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); err != nil {
		t.Fatalf("after freeing: %v", err)
	}
}

// TestMonitorDisabled checks that a zero reserve never refuses, and that a
// reserve larger than the filesystem always does, on the test's own disk.
func TestMonitorDisabled(t *testing.T) {
	dir := t.TempDir()
	m, err := diskspace.New(dir, 0, diskspace.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); err != nil || m.Free() <= 0 {
		t.Fatalf("reserve 0: Check = %v, Free = %d", err, m.Free())
	}
	m, err = diskspace.New(dir, 1<<62, diskspace.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Check(); err == nil {
		t.Fatal("a reserve larger than any disk: Check = nil")
	}
	if _, err := diskspace.New(filepath.Join(dir, "missing"), diskspace.Auto, diskspace.Options{}); err == nil {
		t.Fatal("New on a missing directory: no error")
	}
	if _, err := diskspace.New(dir, -2, diskspace.Options{}); err == nil {
		t.Fatal("New with a reserve of -2: no error")
	}
}
