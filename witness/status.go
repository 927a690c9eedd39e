package witness

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/mod/sumdb/note"

	"github.com/candorlog/candor/api"
)

var (
	cosignedSizeDesc = prometheus.NewDesc("candor_witness_cosigned_size",
		"Size of the latest checkpoint the witness cosigned and stored, by log; 0 if none.", []string{"origin"}, nil)
	lastCosignedDesc = prometheus.NewDesc("candor_witness_last_cosigned_timestamp_seconds",
		"Unix time of the witness's cosignature on the latest checkpoint it stored, by log; 0 if none.", []string{"origin"}, nil)
)

// stateReadTimeout bounds the state reads of one scrape.
const stateReadTimeout = 5 * time.Second

// cosignCollector reports, per log, the checkpoint the witness cosigned
// last and when, read from its state at each scrape (so what it reports
// is what it stored and gossips, across restarts), so that "this witness
// stopped cosigning" is one alert. A log whose state can't be read is
// left out of the scrape.
type cosignCollector struct {
	w    *Witness
	self note.Verifier // the witness's own cosignature verifier, or nil
}

func (c *cosignCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- cosignedSizeDesc
	ch <- lastCosignedDesc
}

func (c *cosignCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), stateReadTimeout)
	defer cancel()
	for _, origin := range c.w.Origins() {
		size, at, err := c.latest(ctx, origin)
		if err != nil {
			c.w.logger.Warn("couldn't read the cosigned checkpoint for the metrics", "origin", origin, "error", err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(cosignedSizeDesc, prometheus.GaugeValue, float64(size), origin)
		ch <- prometheus.MustNewConstMetric(lastCosignedDesc, prometheus.GaugeValue, at, origin)
	}
}

// latest returns the size of the stored checkpoint of origin and the Unix
// time of the witness's cosignature on it (0 if it has none it can check).
func (c *cosignCollector) latest(ctx context.Context, origin string) (uint64, float64, error) {
	stored, err := c.w.state.Latest(ctx, origin)
	if err != nil || stored == nil {
		return 0, 0, err
	}
	cp, err := parseStored(stored)
	if err != nil {
		return 0, 0, fmt.Errorf("couldn't parse the stored checkpoint: %w", err)
	}
	if c.self == nil {
		return cp.Size, 0, nil
	}
	n, err := note.Open(stored, note.VerifierList(c.self))
	if err != nil || len(n.Sigs) == 0 {
		return cp.Size, 0, nil
	}
	t, err := api.CosignatureTime(n.Sigs[0])
	if err != nil {
		return cp.Size, 0, nil
	}
	return cp.Size, float64(t.Unix()), nil
}

// Ready reports whether the witness can serve: its state can be read for
// every log it follows.
func (w *Witness) Ready(ctx context.Context) error {
	if err := w.spaceError(); err != nil {
		return err
	}
	for _, origin := range w.Origins() {
		if _, err := w.state.Latest(ctx, origin); err != nil {
			return fmt.Errorf("couldn't read the witness state of %q: %w", origin, err)
		}
	}
	return nil
}
