package app

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/modules/ipam"
	"github.com/edgelink/edgelink/modules/metasync"
	"github.com/edgelink/edgelink/modules/routing"
	"github.com/edgelink/edgelink/modules/tunnel"
	"github.com/edgelink/edgelink/pkg/agenthost"
	"github.com/edgelink/edgelink/pkg/version"
)

// opsModules are the modules the operations endpoints read.
type opsModules struct {
	meta *metasync.Module
	ipam *ipam.Module
	tun  *tunnel.Module
	rt   *routing.Module
}

// newRegistry builds the agent's own Prometheus registry (never the
// global one): Go runtime, process, build info and every module's
// collector, each reading its counters at scrape time.
func newRegistry(m opsModules) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "edgelink_build_info",
		Help: "Always 1; the version label is the agent's.", ConstLabels: prometheus.Labels{"version": version.String()}},
		func() float64 { return 1 }))
	for _, c := range []prometheus.Collector{m.meta.Collector(), m.ipam.Collector(), m.tun.Collector(), m.rt.Collector()} {
		if c != nil {
			reg.MustRegister(c)
		}
	}
	return reg
}

// statusRoutes are every endpoint of the status socket
// (agentapi.Endpoints): the process's own, each module's, GET
// /v1/diagnose (every module's checks) and GET /metrics.
func statusRoutes(c *v1.AgentConfig, reg *prometheus.Registry, m opsModules) []agenthost.Routes {
	return []agenthost.Routes{
		agenthost.HostRoutes(c.NodeName),
		m.tun.StatusRoutes(), m.rt.StatusRoutes(), m.meta.StatusRoutes(), m.ipam.StatusRoutes(),
		agenthost.DiagnoseRoutes(c.NodeName, m.rt, m.ipam, m.meta, m.tun),
		{"GET /metrics": metricsHandler(reg, 0)},
	}
}

// metricsHandler serves reg; maxInFlight > 0 answers 503 to scrapes beyond
// that many at once.
func metricsHandler(reg *prometheus.Registry, maxInFlight int) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: klogErrors{}, ErrorHandling: promhttp.ContinueOnError,
		Timeout: 10 * time.Second, MaxRequestsInFlight: maxInFlight})
}

type klogErrors struct{}

func (klogErrors) Println(v ...any) { klog.InfoS("Metrics scrape problem", "err", fmt.Sprint(v...)) }

// Limits of the metricsAddress listener, which anyone who can reach the
// address may use: a slow or greedy client cannot hold connections or
// goroutines, and at most metricsMaxInFlight scrapes run at once (the
// rest get 503).
const (
	metricsReadHeaderTimeout = 5 * time.Second
	metricsReadTimeout       = 10 * time.Second
	metricsWriteTimeout      = 15 * time.Second
	metricsIdleTimeout       = 60 * time.Second
	metricsMaxHeaderBytes    = 8 << 10
	metricsMaxInFlight       = 2
)

// newMetricsServer is the metricsAddress server: GET /metrics only (the
// status API's other endpoints stay on the unix socket).
func newMetricsServer(reg *prometheus.Registry) *http.Server {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metricsHandler(reg, metricsMaxInFlight))
	return &http.Server{Handler: mux,
		ReadHeaderTimeout: metricsReadHeaderTimeout, ReadTimeout: metricsReadTimeout,
		WriteTimeout: metricsWriteTimeout, IdleTimeout: metricsIdleTimeout,
		MaxHeaderBytes: metricsMaxHeaderBytes}
}

// serveMetrics serves /metrics (only) over plain HTTP on addr
// (metricsAddress) until the returned stop is called.
func serveMetrics(addr string, reg *prometheus.Registry) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metricsAddress %s: %w", addr, err)
	}
	srv := newMetricsServer(reg)
	done := make(chan struct{})
	go func() { // routineMetrics
		defer close(done)
		_ = srv.Serve(ln)
	}()
	klog.InfoS("Serving metrics", "address", ln.Addr().String())
	return func() {
		_ = srv.Close()
		<-done
	}, nil
}
