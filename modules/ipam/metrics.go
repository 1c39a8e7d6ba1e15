package ipam

import (
	"errors"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgelink/edgelink/pkg/ipam"
	"github.com/edgelink/edgelink/pkg/metrics"
)

// Counts are the IPAM API's outcomes since the agent started. Methods are
// safe on a nil *Counts (tests build handlers without one).
type Counts struct {
	Allocations atomic.Uint64
	// Failures by reason: exhausted (pool full), no_pool (no pool fits the
	// pod), bad_request, error (the store).
	FailExhausted, FailNoPool, FailBadRequest, FailError atomic.Uint64
	Releases                                             atomic.Uint64 // leases freed
}

func (c *Counts) allocated() {
	if c != nil {
		c.Allocations.Add(1)
	}
}

func (c *Counts) allocFailed(err error) {
	if c == nil {
		return
	}
	switch {
	case errors.Is(err, ipam.ErrPoolExhausted):
		c.FailExhausted.Add(1)
	case errors.Is(err, ipam.ErrNoPool):
		c.FailNoPool.Add(1)
	case errors.Is(err, ipam.ErrBadRequest):
		c.FailBadRequest.Add(1)
	default:
		c.FailError.Add(1)
	}
}

func (c *Counts) released(freed bool) {
	if freed {
		c.releasedN(1)
	}
}

func (c *Counts) releasedN(n int) {
	if c != nil && n > 0 {
		c.Releases.Add(uint64(n))
	}
}

var (
	descAllocations = prometheus.NewDesc("edgelink_ipam_allocations_total",
		"Successful IP allocations (one per pod interface) through the SpiderPool API.", nil, nil)
	descAllocFailures = prometheus.NewDesc("edgelink_ipam_allocation_failures_total",
		"Failed allocations (reason: exhausted, no_pool, bad_request, error).", []string{"reason"}, nil)
	descReleases      = prometheus.NewDesc("edgelink_ipam_releases_total", "Leases released.", nil, nil)
	descPoolAllocated = prometheus.NewDesc("edgelink_ipam_pool_allocated_ips",
		"Addresses leased from the pool (pools usable on this node).", []string{"pool"}, nil)
	descPoolSize = prometheus.NewDesc("edgelink_ipam_pool_size_ips",
		"Addresses the pool holds (after excludeIPs).", []string{"pool"}, nil)
	descIPAMUp = prometheus.NewDesc("edgelink_ipam_up", "1 while the IPAM socket is served.", nil, nil)
)

// Collector returns the IPAM module's Prometheus collector (nil when the
// module is disabled).
func (m *Module) Collector() prometheus.Collector {
	if !m.enable {
		return nil
	}
	return collector{m.svc}
}

type collector struct{ s *Service }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAllocations, descAllocFailures, descReleases, descPoolAllocated, descPoolSize, descIPAMUp} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	n := &c.s.counts
	metrics.Counter(ch, descAllocations, n.Allocations.Load())
	metrics.Counter(ch, descAllocFailures, n.FailExhausted.Load(), "exhausted")
	metrics.Counter(ch, descAllocFailures, n.FailNoPool.Load(), "no_pool")
	metrics.Counter(ch, descAllocFailures, n.FailBadRequest.Load(), "bad_request")
	metrics.Counter(ch, descAllocFailures, n.FailError.Load(), "error")
	metrics.Counter(ch, descReleases, n.Releases.Load())
	a := c.s.live.Load()
	if a == nil {
		ch <- prometheus.MustNewConstMetric(descIPAMUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descIPAMUp, prometheus.GaugeValue, 1)
	usage, err := a.Usage()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descPoolAllocated, err)
		return
	}
	for _, u := range usage {
		ch <- prometheus.MustNewConstMetric(descPoolAllocated, prometheus.GaugeValue, float64(u.Allocated), u.Pool)
		if size, err := strconv.ParseFloat(u.Size, 64); err == nil {
			ch <- prometheus.MustNewConstMetric(descPoolSize, prometheus.GaugeValue, size, u.Pool)
		}
	}
}

// SocketPath is the IPAM socket (for `edgelink diagnose`).
func (m *Module) SocketPath() string { return m.svc.SocketPath }
