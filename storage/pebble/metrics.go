package pebble

import "github.com/prometheus/client_golang/prometheus"

var (
	filterBytesDesc = prometheus.NewDesc("candor_log_leaf_filter_bytes",
		"Memory held by the leaf filter (two filters while a larger one is filled).", nil, nil)
	filterFPDesc = prometheus.NewDesc("candor_log_leaf_filter_false_positive_ratio",
		"Estimated share of lookups of new entries that the leaf filter in use sends to pebble, from its size and entries.", nil, nil)
	filterEntriesDesc = prometheus.NewDesc("candor_log_leaf_filter_entries",
		"Leaf hashes in the leaf filter in use (0 while the first is filled).", nil, nil)
	lookupsDesc = prometheus.NewDesc("candor_log_leaf_lookups_total",
		"Duplicate checks by their answer: absent (by the filter), false_positive (the filter said maybe, pebble did not have it), found, unfiltered (no filter ready: pebble answered).",
		[]string{"result"}, nil)
	cacheDesc = prometheus.NewDesc("candor_log_pebble_block_cache_bytes",
		"Bytes in pebble's block cache.", nil, nil)
	tileFileTilesDesc = prometheus.NewDesc("candor_log_tile_file_tiles",
		"Full hash tiles that reads take from the tile files (the rest from pebble).", nil, nil)
	tileFileBadDesc = prometheus.NewDesc("candor_log_tile_file_bad_reads_total",
		"Reads of the tile files that found a record unreadable or corrupt, and read pebble instead.", nil, nil)
	bundleFileBundlesDesc = prometheus.NewDesc("candor_log_bundle_file_bundles",
		"Full entry bundles in the bundle files (the rest are in pebble).", nil, nil)
	bundleFileFailedDesc = prometheus.NewDesc("candor_log_bundle_file_failed_moves_total",
		"Moves of full entry bundles from pebble to the bundle files that failed (the bundles stay in pebble until a retry works).", nil, nil)
	memtableDesc = prometheus.NewDesc("candor_log_pebble_memtable_bytes",
		"Bytes of pebble's memtables, those being flushed or still read included.", nil, nil)
)

// metrics is the storage's prometheus.Collector.
type metrics struct{ s *Storage }

func (m metrics) Describe(ch chan<- *prometheus.Desc) {
	prometheus.DescribeByCollect(m, ch)
}

func (m metrics) Collect(ch chan<- prometheus.Metric) {
	s := m.s
	if fs := s.filter; fs != nil {
		ch <- prometheus.MustNewConstMetric(filterBytesDesc, prometheus.GaugeValue, float64(fs.bytes()))
		var fp, entries float64
		if f := fs.inUse.Load(); f != nil {
			fp, entries = f.falsePositiveRate(), float64(f.added.Load())
		}
		ch <- prometheus.MustNewConstMetric(filterFPDesc, prometheus.GaugeValue, fp)
		ch <- prometheus.MustNewConstMetric(filterEntriesDesc, prometheus.GaugeValue, entries)
	}
	for _, c := range []struct {
		result string
		n      uint64
	}{
		{"absent", s.lookups.absent.Load()},
		{"false_positive", s.lookups.falsePositive.Load()},
		{"found", s.lookups.found.Load()},
		{"unfiltered", s.lookups.unfiltered.Load()},
	} {
		ch <- prometheus.MustNewConstMetric(lookupsDesc, prometheus.CounterValue, float64(c.n), c.result)
	}
	if tf := s.tiles; tf != nil {
		ch <- prometheus.MustNewConstMetric(tileFileTilesDesc, prometheus.GaugeValue, float64(tf.readable()))
		ch <- prometheus.MustNewConstMetric(tileFileBadDesc, prometheus.CounterValue, float64(tf.badReads.Load()))
	}
	if bf := s.bundles; bf != nil {
		ch <- prometheus.MustNewConstMetric(bundleFileBundlesDesc, prometheus.GaugeValue, float64(bf.n.Load()))
		ch <- prometheus.MustNewConstMetric(bundleFileFailedDesc, prometheus.CounterValue, float64(bf.failedMoves.Load()))
	}
	db, release, err := s.h.read()
	if err != nil {
		return
	}
	pm := db.Metrics()
	release()
	ch <- prometheus.MustNewConstMetric(cacheDesc, prometheus.GaugeValue, float64(pm.BlockCache.Size))
	ch <- prometheus.MustNewConstMetric(memtableDesc, prometheus.GaugeValue, float64(pm.MemTable.Size+pm.MemTable.ZombieSize))
}
