package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/klog/v2"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/modules/edgecni"
	"github.com/edgelink/edgelink/modules/ipam"
	"github.com/edgelink/edgelink/modules/metasync"
	"github.com/edgelink/edgelink/modules/tunnel"
	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/metadata"
	"github.com/edgelink/edgelink/pkg/p2p"
	"github.com/edgelink/edgelink/pkg/unixsock"
	"github.com/edgelink/edgelink/pkg/version"
)

// opsModules are the modules the operations endpoints read.
type opsModules struct {
	meta *metasync.Module
	ipam *ipam.Module
	tun  *tunnel.Module
	cni  *edgecni.Module
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
	for _, c := range []prometheus.Collector{m.meta.Collector(), m.ipam.Collector(), m.tun.Collector(), m.cni.Collector()} {
		if c != nil {
			reg.MustRegister(c)
		}
	}
	return reg
}

// registerOps adds the operations endpoints (pkg/agentapi) to the status
// API: /metrics, /v1/metasync, /v1/ipam, POST /v1/ping, GET /v1/diagnose.
// The data plane and tunnel add their own (/v1/dataplane/..., /v1/tunnel/...).
func registerOps(c *v1.AgentConfig, mux *http.ServeMux, reg *prometheus.Registry, m opsModules) {
	mux.Handle("GET /metrics", metricsHandler(reg, 0))
	m.meta.RegisterStatus(mux)
	m.ipam.RegisterStatus(mux)
	mux.HandleFunc("POST /v1/ping", func(w http.ResponseWriter, r *http.Request) {
		var req agentapi.PingRequest
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16)).Decode(&req); err != nil {
			http.Error(w, "bad ping request: "+err.Error(), http.StatusBadRequest)
			return
		}
		res, status, err := ping(r.Context(), c, m, req)
		if err != nil {
			http.Error(w, err.Error(), status)
			return
		}
		agentapi.WriteJSON(w, res)
	})
	mux.HandleFunc("GET /v1/diagnose", func(w http.ResponseWriter, r *http.Request) {
		agentapi.WriteJSON(w, diagnose(r.Context(), c, m))
	})
}

// metricsHandler serves reg; maxInFlight > 0 answers 503 to scrapes beyond
// that many at once.
func metricsHandler(reg *prometheus.Registry, maxInFlight int) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorLog: klogErrors{}, ErrorHandling: promhttp.ContinueOnError,
		Timeout: 10 * time.Second, MaxRequestsInFlight: maxInFlight})
}

type klogErrors struct{}

func (klogErrors) Println(v ...any) { klog.InfoS("Metrics scrape problem", "err", fmt.Sprint(v...)) }

// ping resolves the target (a pod IP through the forwarder's table, or
// the metadata picture when the data plane is off; else a node name) and
// probes that node over its current path.
func ping(ctx context.Context, c *v1.AgentConfig, m opsModules, req agentapi.PingRequest) (agentapi.PingResult, int, error) {
	target := strings.TrimSpace(req.Target)
	if target == "" {
		return agentapi.PingResult{}, http.StatusBadRequest, errors.New("no target: give a pod IP or a node name")
	}
	node := target
	if a, err := netip.ParseAddr(target); err == nil {
		n, status, err := resolvePodIP(c, m, a.Unmap())
		if err != nil {
			return agentapi.PingResult{}, status, err
		}
		node = n
	} else if node == c.NodeName {
		return agentapi.PingResult{}, http.StatusConflict, fmt.Errorf("%s is this node", node)
	}
	timeout := 5 * time.Second
	if req.TimeoutMillis > 0 {
		timeout = min(time.Duration(req.TimeoutMillis)*time.Millisecond, agentapi.MaxPingTimeout)
	}
	res, err := m.tun.Ping(ctx, node, timeout)
	out := agentapi.PingResult{Target: target, Node: node, Path: string(res.Path), Relay: res.Relay,
		RemoteAddr: res.RemoteAddr, RTTMillis: float64(res.RTT) / 1e6}
	switch {
	case errors.Is(err, p2p.ErrUnknownPeer):
		return out, http.StatusNotFound, fmt.Errorf("unknown node %q: the tunnel knows no such peer (see `edgelink status`)", node)
	case errors.Is(err, p2p.ErrNoPath):
		return out, http.StatusServiceUnavailable, fmt.Errorf("no path to %s yet: the tunnel is still connecting, or the node is down (see `edgelink status`)", node)
	case errors.Is(err, tunnel.ErrNotUp):
		return out, http.StatusServiceUnavailable, fmt.Errorf("the tunnel is not up on this node: %w", err)
	case err != nil:
		return out, http.StatusGatewayTimeout, err
	}
	return out, http.StatusOK, nil
}

// resolvePodIP finds the node a pod IP lives on: the forwarder's
// longest-prefix-match table when the data plane is up (what a packet
// would do), else the metadata picture's pods and nodes.
func resolvePodIP(c *v1.AgentConfig, m opsModules, a netip.Addr) (string, int, error) {
	if node, local, ok, up := m.cni.Lookup(a); up {
		switch {
		case !ok:
			return "", http.StatusNotFound, fmt.Errorf("no node has %s: it is in no route of this node's plan (see `edgelink routes`)", a)
		case local:
			return "", http.StatusConflict, fmt.Errorf("%s is a pod on this node (%s): nothing to tunnel", a, c.NodeName)
		}
		return node, http.StatusOK, nil
	}
	if r := m.meta.Reader(); r != nil {
		snap := r.Snapshot()
		if node := nodeOfIP(snap, a); node != "" {
			if node == c.NodeName {
				return "", http.StatusConflict, fmt.Errorf("%s is a pod on this node (%s): nothing to tunnel", a, c.NodeName)
			}
			return node, http.StatusOK, nil
		}
	}
	return "", http.StatusNotFound, fmt.Errorf("no node has %s: no pod with that IP and no node's pod CIDR holds it", a)
}

func nodeOfIP(snap *metadata.Snapshot, a netip.Addr) string {
	if p := snap.PodsByIP[a]; p != nil && p.NodeName != "" {
		return p.NodeName
	}
	best, bits := "", -1
	for name, n := range snap.Nodes {
		for _, c := range n.PodCIDRs {
			if c.Contains(a) && c.Bits() > bits {
				best, bits = name, c.Bits()
			}
		}
	}
	return best
}

// diagnose runs every module's checks, and the IPAM socket's.
func diagnose(ctx context.Context, c *v1.AgentConfig, m opsModules) agentapi.Diagnosis {
	d := agentapi.Diagnosis{Node: c.NodeName, Time: time.Now()}
	d.Checks = append(d.Checks, m.cni.Diagnose(ctx)...)
	d.Checks = append(d.Checks, ipamCheck(ctx, c))
	d.Checks = append(d.Checks, m.ipam.Diagnose()...)
	d.Checks = append(d.Checks, m.meta.Diagnose()...)
	d.Checks = append(d.Checks, m.tun.Diagnose()...)
	return d
}

// ipamCheck asks the IPAM socket what the spiderpool binary asks before
// every call (GET /v1/ipam/healthy).
func ipamCheck(ctx context.Context, c *v1.AgentConfig) agentapi.Check {
	const name = "IPAM socket answering"
	if !c.Modules.IPAM.Enable {
		return agentapi.Skip(name, "the ipam module is disabled")
	}
	path := c.Modules.IPAM.SocketPath
	hc := http.Client{Timeout: 3 * time.Second, Transport: unixsock.HTTPTransport(path)}
	defer hc.CloseIdleConnections()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://ipam/v1/ipam/healthy", nil)
	resp, err := hc.Do(req)
	if err != nil {
		return agentapi.Fail(name, fmt.Sprintf("%s: %v", path, err),
			"read the agent's log for the ipam module's error (a lease store another process holds, a bad pool file); pods cannot get addresses until it answers")
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return agentapi.Fail(name, fmt.Sprintf("%s answered %s", path, resp.Status), "read the agent's log for the ipam module")
	}
	return agentapi.OK(name, path+" answers")
}

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
