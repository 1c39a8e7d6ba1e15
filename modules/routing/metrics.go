package routing

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgelink/edgelink/pkg/dataplane"
	"github.com/edgelink/edgelink/pkg/metrics"
)

// Metrics of the data plane, read at scrape time from the forwarder's
// atomic counters (the packet path only adds to them). The peer label is
// a node name from the route plan: bounded by the cluster's nodes; pod
// IPs never become labels.
var (
	descPeerBytes = prometheus.NewDesc("edgelink_dataplane_peer_bytes_total",
		"Pod traffic bytes (frames) sent to (direction=tx) or accepted from (rx) the peer node.", []string{"peer", "direction"}, nil)
	descPeerPackets = prometheus.NewDesc("edgelink_dataplane_peer_packets_total",
		"Pod packets sent to (tx) or accepted from (rx) the peer node.", []string{"peer", "direction"}, nil)
	descPeerDrops = prometheus.NewDesc("edgelink_dataplane_peer_drops_total",
		"Packets to or from the peer dropped (reason: queue = peer slow or no path, spoofed = inner source not the peer's).", []string{"peer", "reason"}, nil)
	descPeerLast = prometheus.NewDesc("edgelink_dataplane_peer_last_activity_timestamp_seconds",
		"When pod traffic last went to or came from the peer (0: never).", []string{"peer"}, nil)
	descBytes = prometheus.NewDesc("edgelink_dataplane_bytes_total",
		"All pod traffic bytes through the tunnel (direction: tx, rx).", []string{"direction"}, nil)
	descPackets = prometheus.NewDesc("edgelink_dataplane_packets_total",
		"All pod packets through the tunnel (direction: tx, rx).", []string{"direction"}, nil)
	descOffload = prometheus.NewDesc("edgelink_dataplane_offload_packets_total",
		"Of the packets: TCP super-packets carried unsplit (the receiving kernel segments them where it must; direction: tx, rx).", []string{"direction"}, nil)
	descDrops = prometheus.NewDesc("edgelink_dataplane_drops_total",
		"Packets dropped by the forwarder (reason: no_route, loop, queue, spoofed, not_local, malformed).", []string{"reason"}, nil)
	descBadStreams = prometheus.NewDesc("edgelink_dataplane_bad_streams_total",
		"Packet streams closed for breaking the framing.", nil, nil)
	descMTU    = prometheus.NewDesc("edgelink_dataplane_tun_mtu_bytes", "MTU of the TUN device.", nil, nil)
	descRoutes = prometheus.NewDesc("edgelink_dataplane_routes",
		"Routes planned (table: kernel = main table, forward = the forwarder's table inside the TUN).", []string{"table"}, nil)
	descIgnored = prometheus.NewDesc("edgelink_dataplane_ignored_pod_ips",
		"Pod IPs in the metadata the route plan does not route: inside another node's prefixes, or claimed by pods on two nodes (edgelink routes lists them).", nil, nil)
	descReconcileErr = prometheus.NewDesc("edgelink_dataplane_reconcile_failing",
		"1 while the last reconcile of routes and iptables failed.", nil, nil)
	descDPUp = prometheus.NewDesc("edgelink_dataplane_up", "1 while the TUN is up and forwarding.", nil, nil)
)

// Collector returns the data plane's Prometheus collector.
func (m *Module) Collector() prometheus.Collector { return collector{m.svc} }

type collector struct{ s *Service }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPeerBytes, descPeerPackets, descPeerDrops, descPeerLast, descBytes, descPackets, descOffload,
		descDrops, descBadStreams, descMTU, descRoutes, descIgnored, descReconcileErr, descDPUp} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.state.Load()
	if st == nil {
		ch <- prometheus.MustNewConstMetric(descDPUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descDPUp, prometheus.GaugeValue, 1)
	collectPeers(ch, st.fwd.PeerStats())
	collectTotals(ch, st.fwd.Snapshot())
	ch <- prometheus.MustNewConstMetric(descMTU, prometheus.GaugeValue, float64(st.mtu))
	fwd := 0
	for _, p := range st.plan.Forward.Remote {
		fwd += len(p)
	}
	ch <- prometheus.MustNewConstMetric(descRoutes, prometheus.GaugeValue, float64(len(st.plan.Kernel)), "kernel")
	ch <- prometheus.MustNewConstMetric(descRoutes, prometheus.GaugeValue, float64(fwd), "forward")
	ch <- prometheus.MustNewConstMetric(descIgnored, prometheus.GaugeValue, float64(len(st.plan.Ignored)))
	metrics.Gauge(ch, descReconcileErr, metrics.Bool(st.errs != ""))
}

func collectPeers(ch chan<- prometheus.Metric, peers []dataplane.PeerStats) {
	for _, p := range peers {
		metrics.Counter(ch, descPeerBytes, p.TxBytes, p.Node, "tx")
		metrics.Counter(ch, descPeerBytes, p.RxBytes, p.Node, "rx")
		metrics.Counter(ch, descPeerPackets, p.TxPackets, p.Node, "tx")
		metrics.Counter(ch, descPeerPackets, p.RxPackets, p.Node, "rx")
		metrics.Counter(ch, descPeerDrops, p.DropQueue, p.Node, "queue")
		metrics.Counter(ch, descPeerDrops, p.DropSpoofed, p.Node, "spoofed")
		last := p.LastTx
		if p.LastRx.After(last) {
			last = p.LastRx
		}
		metrics.Gauge(ch, descPeerLast, metrics.Timestamp(last), p.Node)
	}
}

func collectTotals(ch chan<- prometheus.Metric, s dataplane.StatsSnapshot) {
	metrics.Counter(ch, descBytes, s.TxBytes, "tx")
	metrics.Counter(ch, descBytes, s.RxBytes, "rx")
	metrics.Counter(ch, descPackets, s.TxPackets, "tx")
	metrics.Counter(ch, descPackets, s.RxPackets, "rx")
	metrics.Counter(ch, descOffload, s.TxOffload, "tx")
	metrics.Counter(ch, descOffload, s.RxOffload, "rx")
	for reason, v := range map[string]uint64{"no_route": s.DropNoRoute, "loop": s.DropLoop, "queue": s.DropQueue,
		"spoofed": s.DropSpoofed, "not_local": s.DropNotLocal, "malformed": s.DropMalformed} {
		metrics.Counter(ch, descDrops, v, reason)
	}
	metrics.Counter(ch, descBadStreams, s.BadStreams)
}
