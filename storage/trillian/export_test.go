package trillian

import "github.com/prometheus/client_golang/prometheus"

// Metric is candor_log_trillian_checkpoints_total{result}.
func (p *Publisher) Metric(result string) prometheus.Counter {
	return p.published.WithLabelValues(result)
}

// ConflictMetric is candor_log_trillian_checkpoint_conflict.
func (p *Publisher) ConflictMetric() prometheus.Gauge { return p.conflict }

// AdmissionTag is the tag under key of the entry of leaf hash h.
func AdmissionTag(key, h []byte) []byte { return admissionTag(key, h) }
