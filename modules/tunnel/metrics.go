package tunnel

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgelink/edgelink/pkg/metrics"
	"github.com/edgelink/edgelink/pkg/p2p"
)

// Metrics of the tunnel, read at scrape time from the path manager, the
// reservation keeper and the hole-punch counters. The peer and relay
// labels are node names: bounded by the cluster's membership.
var (
	descPeerPath = prometheus.NewDesc("edgelink_tunnel_peer_path",
		"1 for the path that carries traffic to the peer now (path: direct-tcp, direct-quic, relayed, none; idle: no path kept, paths on demand).",
		[]string{"peer", "path", "relay"}, nil)
	descPeerPathChanges = prometheus.NewDesc("edgelink_tunnel_peer_path_changes_total",
		"Times the path to the peer changed (kind or relay).", []string{"peer"}, nil)
	descPeerRTT = prometheus.NewDesc("edgelink_tunnel_peer_rtt_seconds",
		"Round-trip time of the last probe on the peer's current path.", []string{"peer"}, nil)
	descPeerUpgrades = prometheus.NewDesc("edgelink_tunnel_peer_upgrade_attempts_total",
		"Hole-punch retries this node started to move a relayed path to a direct one.", []string{"peer"}, nil)
	descPeerConns = prometheus.NewDesc("edgelink_tunnel_peer_connections",
		"Live connections to the peer (the current path and standbys).", []string{"peer"}, nil)
	descReservation = prometheus.NewDesc("edgelink_tunnel_relay_reservation",
		"1 while this node holds a reservation on the relay.", []string{"relay"}, nil)
	descRenewals = prometheus.NewDesc("edgelink_tunnel_relay_reservation_renewals_total",
		"Reservations made or renewed on the relay.", []string{"relay"}, nil)
	descPunchAttempts = prometheus.NewDesc("edgelink_tunnel_holepunch_attempts_total",
		"DCUtR hole-punch rounds started (as initiator or receiver).", nil, nil)
	descPunchSuccesses = prometheus.NewDesc("edgelink_tunnel_holepunch_successes_total",
		"Hole punches that ended with a direct connection.", nil, nil)
	descPunchFailures = prometheus.NewDesc("edgelink_tunnel_holepunch_failures_total",
		"Hole punches that ended without a direct connection.", nil, nil)
	descRefused = prometheus.NewDesc("edgelink_tunnel_membership_refusals_total",
		"Membership proofs refused (peers that are not members of the mesh).", nil, nil)
	descKnown = prometheus.NewDesc("edgelink_tunnel_known_peers",
		"Members this node knows of (directories, metadata, cache).", nil, nil)
	descUp = prometheus.NewDesc("edgelink_tunnel_up", "1 while the tunnel's libp2p host runs.", nil, nil)
)

// Collector returns the tunnel's Prometheus collector.
func (m *Module) Collector() prometheus.Collector { return collector{m.svc} }

type collector struct{ s *Service }

func (collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPeerPath, descPeerPathChanges, descPeerRTT, descPeerUpgrades,
		descPeerConns, descReservation, descRenewals, descPunchAttempts, descPunchSuccesses, descPunchFailures,
		descRefused, descKnown, descUp} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	r := c.s.running.Load()
	if r == nil {
		ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(descUp, prometheus.GaugeValue, 1)
	collectPeers(ch, r.paths.Status())
	for _, st := range r.keeper.States() {
		ch <- prometheus.MustNewConstMetric(descReservation, prometheus.GaugeValue, metrics.Bool(st.Reserved), st.Node)
		ch <- prometheus.MustNewConstMetric(descRenewals, prometheus.CounterValue, float64(st.Renewals), st.Node)
	}
	p := &r.h.Punches
	ch <- prometheus.MustNewConstMetric(descPunchAttempts, prometheus.CounterValue, float64(p.Attempts.Load()))
	ch <- prometheus.MustNewConstMetric(descPunchSuccesses, prometheus.CounterValue, float64(p.Successes.Load()))
	ch <- prometheus.MustNewConstMetric(descPunchFailures, prometheus.CounterValue, float64(p.Failures.Load()))
	ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(r.h.Gate.Failures()))
	r.mu.Lock()
	known := len(r.known)
	r.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descKnown, prometheus.GaugeValue, float64(known))
}

// collectPeers turns path-manager status into per-peer metrics.
func collectPeers(ch chan<- prometheus.Metric, peers []p2p.PeerStatus) {
	for _, p := range peers {
		ch <- prometheus.MustNewConstMetric(descPeerPath, prometheus.GaugeValue, 1, p.Node, string(p.Path), p.Relay)
		ch <- prometheus.MustNewConstMetric(descPeerPathChanges, prometheus.CounterValue, float64(p.PathChanges), p.Node)
		ch <- prometheus.MustNewConstMetric(descPeerRTT, prometheus.GaugeValue, p.RTTMillis/1000, p.Node)
		ch <- prometheus.MustNewConstMetric(descPeerUpgrades, prometheus.CounterValue, float64(p.Upgrades), p.Node)
		alive := 0
		for _, c := range p.Conns {
			if c.Alive {
				alive++
			}
		}
		ch <- prometheus.MustNewConstMetric(descPeerConns, prometheus.GaugeValue, float64(alive), p.Node)
	}
}
