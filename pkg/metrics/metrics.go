// Package metrics holds what EdgeLink's Prometheus collectors share: they
// read their counters at scrape time and emit constant metrics.
package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Counter emits a counter of value v.
func Counter(ch chan<- prometheus.Metric, d *prometheus.Desc, v uint64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
}

// Gauge emits a gauge of value v.
func Gauge(ch chan<- prometheus.Metric, d *prometheus.Desc, v float64, labels ...string) {
	ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
}

// Bool is 1 for true, 0 for false.
func Bool(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// Timestamp is t in seconds since the epoch, 0 for the zero time (never).
func Timestamp(t time.Time) float64 {
	if t.IsZero() {
		return 0
	}
	return float64(t.UnixNano()) / 1e9
}
