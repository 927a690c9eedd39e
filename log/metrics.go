package log

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	entries       *prometheus.CounterVec
	newEntries    prometheus.Counter // entries{result="new"}
	duplicate     prometheus.Counter // entries{result="duplicate"}
	overloaded    prometheus.Counter
	treeSize      prometheus.Gauge
	integrating   prometheus.Gauge
	batchEntries  prometheus.Histogram
	commitSeconds prometheus.Histogram
	witnessedSize prometheus.Gauge // registered only with a Witnessing
}

func newMetrics(reg prometheus.Registerer, l *Log) *metrics {
	m := &metrics{
		entries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "candor_log_entries_total",
			Help: "Entries answered by the sequencer, by result (new, duplicate).",
		}, []string{"result"}),
		overloaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "candor_log_overloaded_total",
			Help: "Entries refused because too many were pending.",
		}),
		treeSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "candor_log_tree_size",
			Help: "Size of the latest committed checkpoint (without a witness policy, the published one).",
		}),
		integrating: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "candor_log_integrating_entries",
			Help: "Entries taken from the queue into a batch being built or committed.",
		}),
		batchEntries: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "candor_log_batch_entries",
			Help:    "New entries per committed batch.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 8),
		}),
		commitSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "candor_log_integrate_seconds",
			Help:    "Time to sequence, commit and sign one batch.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		witnessedSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "candor_log_witnessed_size",
			Help: "Size of the latest published checkpoint cosigned by the witness policy's quorum.",
		}),
	}
	m.newEntries = m.entries.WithLabelValues("new")
	m.duplicate = m.entries.WithLabelValues("duplicate")
	pending := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "candor_log_pending_entries",
		Help: "Entries waiting to be integrated.",
	}, func() float64 { return float64(len(l.queue)) })
	if reg != nil {
		reg.MustRegister(m.entries, m.overloaded, m.treeSize, m.integrating, m.batchEntries, m.commitSeconds, pending)
		if l.witnessing != nil {
			reg.MustRegister(m.witnessedSize)
		}
		if t := l.tail; t != nil {
			reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
				Name: "candor_log_search_unindexed_entries",
				Help: "Committed entries the search index does not cover yet (search finds them in memory, or answers 503 while the index catches up with the log).",
			}, func() float64 {
				t.mu.RLock()
				defer t.mu.RUnlock()
				return float64(t.committed - t.indexed)
			}))
		}
	}
	return m
}
