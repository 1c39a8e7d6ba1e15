package app

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// blockingCollector holds every scrape until release is closed.
type blockingCollector struct {
	entered chan struct{}
	release chan struct{}
}

func (c *blockingCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- prometheus.NewDesc("test_blocking", "test", nil, nil)
}

func (c *blockingCollector) Collect(ch chan<- prometheus.Metric) {
	c.entered <- struct{}{}
	<-c.release
	ch <- prometheus.MustNewConstMetric(prometheus.NewDesc("test_blocking", "test", nil, nil), prometheus.GaugeValue, 1)
}

// The metricsAddress server bounds what a client reachable from the network
// can hold, serves /metrics only, and runs at most metricsMaxInFlight
// scrapes at once.
func TestMetricsServer(t *testing.T) {
	bc := &blockingCollector{entered: make(chan struct{}, 8), release: make(chan struct{})}
	reg := prometheus.NewRegistry()
	reg.MustRegister(bc)
	srv := newMetricsServer(reg)
	if srv.ReadTimeout != 10*time.Second || srv.WriteTimeout != 15*time.Second || srv.IdleTimeout != 60*time.Second ||
		srv.ReadHeaderTimeout == 0 || srv.MaxHeaderBytes != 8<<10 {
		t.Errorf("metrics server limits: read %v, write %v, idle %v, header %v, max header bytes %d",
			srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout, srv.ReadHeaderTimeout, srv.MaxHeaderBytes)
	}
	ts := httptest.NewServer(srv.Handler)
	defer ts.Close()

	for _, r := range []struct{ method, path string }{{"GET", "/debug/pprof/"}, {"GET", "/v1/diagnose"},
		{"GET", "/v1/agent"}, {"POST", "/v1/ping"}, {"GET", "/v1/tunnel/status"}} {
		req, _ := http.NewRequestWithContext(t.Context(), r.method, ts.URL+r.path, strings.NewReader("{}"))
		resp, err := ts.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s %s: %s, want 404", r.method, r.path, resp.Status)
		}
	}

	// metricsMaxInFlight scrapes held in the collector; one more is refused.
	var wg sync.WaitGroup
	codes := make(chan int, metricsMaxInFlight)
	for range metricsMaxInFlight {
		wg.Go(func() {
			resp, err := ts.Client().Get(ts.URL + "/metrics")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		})
	}
	for range metricsMaxInFlight {
		<-bc.entered
	}
	resp, err := ts.Client().Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("scrape beyond %d in flight: %s, want 503", metricsMaxInFlight, resp.Status)
	}
	close(bc.release)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusOK {
			t.Errorf("held scrape: %d", c)
		}
	}
}
