// Package diskspace watches the free space of the filesystem that holds a
// server's data. Below a reserve the server refuses new writes and says so
// on /readyz, so that its storage engine does not meet a full disk: the
// reserve is the room pebble needs to flush a memtable and compact, and
// what the server still writes while it refuses (the batches it accepted
// before, evidence). Once space is freed the server resumes by itself.
//
// diskspace_test.go checks the reserve against a real filesystem.
package diskspace

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Auto, as the reserve given to New, chooses DefaultReserve.
const Auto = -1

// DefaultReserve returns the reserve for a filesystem of total bytes: 2%
// of it, at least 256 MiB (a flushed 64 MiB memtable, the WAL it leaves
// and compactions of the first levels, with room to spare) and at most
// 4 GiB, but never more than a quarter of the filesystem, so that a small
// one stays usable.
func DefaultReserve(total int64) int64 {
	r := min(max(total/50, 256<<20), 4<<30)
	return min(r, total/4)
}

// LowError is Check's error: free space is below the reserve.
type LowError struct {
	Dir           string
	Free, Reserve int64
}

func (e *LowError) Error() string {
	return fmt.Sprintf("%s free in %s, below the reserve of %s (minFreeBytes)", FormatBytes(e.Free), e.Dir, FormatBytes(e.Reserve))
}

// FormatBytes formats n bytes for people, in MiB or GiB.
func FormatBytes(n int64) string {
	if n >= 10<<30 || n <= -10<<30 {
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// Options configures a Monitor. The zero value is valid.
type Options struct {
	// Interval is the time between two looks at the filesystem.
	// Default: 1s.
	Interval time.Duration
	// Logger receives a warning when free space goes below the reserve
	// and a note when it is back. Default: slog.Default().
	Logger *slog.Logger
	// Registerer, if set, receives <Namespace>_disk_free_bytes and
	// <Namespace>_disk_reserve_bytes.
	Registerer prometheus.Registerer
	// Namespace prefixes the metrics' names, e.g. "candor_log".
	Namespace string
}

// Monitor watches the free space of one filesystem. It is safe for
// concurrent use.
type Monitor struct {
	dir      string
	reserve  int64
	interval time.Duration
	logger   *slog.Logger
	free     atomic.Int64
	low      atomic.Bool
}

// New returns a Monitor of the filesystem that holds dir, which keeps
// reserve bytes free: Auto chooses DefaultReserve, 0 never refuses (the
// free space is still measured). It looks at the filesystem once; Run
// keeps looking.
func New(dir string, reserve int64, o Options) (*Monitor, error) {
	if reserve < Auto {
		return nil, fmt.Errorf("diskspace: reserve %d is negative", reserve)
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	free, total, err := statfs(dir)
	if err != nil {
		return nil, err
	}
	if reserve == Auto {
		reserve = DefaultReserve(total)
	}
	m := &Monitor{dir: dir, reserve: reserve, interval: o.Interval, logger: o.Logger}
	o.Logger.Info("watching the free disk space", "dir", dir, "free_bytes", free, "total_bytes", total, "reserve_bytes", reserve)
	m.set(free)
	if o.Registerer != nil {
		freeGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: o.Namespace + "_disk_free_bytes",
			Help: "Bytes free for the server on the filesystem that holds its data.",
		}, func() float64 { return float64(m.free.Load()) })
		reserveGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: o.Namespace + "_disk_reserve_bytes",
			Help: "Free bytes below which the server refuses new writes (minFreeBytes).",
		}, func() float64 { return float64(m.reserve) })
		if err := o.Registerer.Register(freeGauge); err != nil {
			return nil, fmt.Errorf("couldn't register the disk metrics: %w", err)
		}
		if err := o.Registerer.Register(reserveGauge); err != nil {
			return nil, fmt.Errorf("couldn't register the disk metrics: %w", err)
		}
	}
	return m, nil
}

// Reserve returns the reserve in bytes.
func (m *Monitor) Reserve() int64 { return m.reserve }

// Free returns the free bytes the last look found.
func (m *Monitor) Free() int64 { return m.free.Load() }

// Check returns nil if the last look found at least the reserve free, else
// a *LowError.
func (m *Monitor) Check() error {
	if !m.low.Load() {
		return nil
	}
	return &LowError{Dir: m.dir, Free: m.free.Load(), Reserve: m.reserve}
}

// Update looks at the filesystem now.
func (m *Monitor) Update() error {
	free, _, err := statfs(m.dir)
	if err != nil {
		return err
	}
	m.set(free)
	return nil
}

func (m *Monitor) set(free int64) {
	m.free.Store(free)
	low := free < m.reserve
	if m.low.Swap(low) == low {
		return
	}
	if low {
		m.logger.Warn("free disk space is below the reserve: refusing new writes until space is freed",
			"dir", m.dir, "free_bytes", free, "reserve_bytes", m.reserve)
	} else {
		m.logger.Info("free disk space is above the reserve again: accepting writes", "dir", m.dir, "free_bytes", free, "reserve_bytes", m.reserve)
	}
}

// Run looks at the filesystem every Options.Interval until ctx ends. A
// failed look is logged, and Check keeps the last result.
func (m *Monitor) Run(ctx context.Context) {
	t := time.NewTicker(m.interval)
	defer t.Stop()
	var failing bool
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := m.Update()
		if err != nil && !failing {
			m.logger.Error("couldn't measure the free disk space", "dir", m.dir, "error", err)
		}
		failing = err != nil
	}
}
