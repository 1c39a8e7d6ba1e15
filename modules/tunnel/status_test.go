package tunnel

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/edgelink/edgelink/pkg/p2p"
	"github.com/edgelink/edgelink/tests/unittest"
)

// get answers a GET on the service's status endpoints.
func get(t *testing.T, s *Service, path string) *httptest.ResponseRecorder {
	t.Helper()
	mux := unittest.StatusMux(t, s.statusRoutes())
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

// Both status endpoints answer 503 "tunnel is not up" until the tunnel
// runs; then /v1/tunnel/status shows this node, its peer ID and listen
// addresses, whether it is a relay, every NAT mapping the relays reported
// and how many members it knows, and /v1/tunnel/peers lists the path
// manager's targets (a target without a path yet as "none").
func TestStatusEndpoints(t *testing.T) {
	c := memberConfig(t, "edge-a1")
	s := NewService(asAgent(t, c), nil)
	for _, path := range []string{"/v1/tunnel/status", "/v1/tunnel/peers"} {
		rec := get(t, s, path)
		if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "tunnel is not up") {
			t.Errorf("GET %s before up: %d %q", path, rec.Code, rec.Body)
		}
	}

	r := newRunning(t, c, true)
	relay1, relay2, a2 := unittest.NewPeerID(t), unittest.NewPeerID(t), unittest.NewPeerID(t)
	r.observed[relay1] = []ma.Multiaddr{ma.StringCast("/ip4/203.0.113.5/tcp/40001")}
	r.observed[relay2] = []ma.Multiaddr{ma.StringCast("/ip4/203.0.113.5/tcp/40002"), ma.StringCast("/ip4/203.0.113.5/udp/40003/quic-v1")}
	r.known["edge-a2"] = p2p.PeerRecord{Node: "edge-a2", Peer: a2.String()}
	r.known["relay-1"] = p2p.PeerRecord{Node: "relay-1", Peer: relay1.String()}
	r.known["relay-2"] = p2p.PeerRecord{Node: "relay-2", Peer: relay2.String()}
	r.paths.SetTargets([]p2p.Target{{Node: "edge-a2", ID: a2}})
	s.running.Store(r)
	t.Cleanup(func() { s.running.Store(nil) })

	rec := get(t, s, "/v1/tunnel/status")
	if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("GET status: %d %s %q", rec.Code, rec.Header().Get("Content-Type"), rec.Body)
	}
	var st Status
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	slices.Sort(st.Observed)
	wantObserved := []string{"/ip4/203.0.113.5/tcp/40001", "/ip4/203.0.113.5/tcp/40002", "/ip4/203.0.113.5/udp/40003/quic-v1"}
	if st.Node != "edge-a1" || st.Peer != r.h.ID().String() || !st.Relay || st.KnownPeers != 3 ||
		!slices.Equal(st.Observed, wantObserved) || len(st.Reservations) != 0 || st.RefusedPeers != 0 {
		t.Errorf("status %+v", st)
	}
	if len(st.Addrs) == 0 || !strings.HasPrefix(st.Addrs[0], "/ip4/127.0.0.1/tcp/") {
		t.Errorf("status addrs %v, want the loopback listener", st.Addrs)
	}
	if st.Reachability == "" {
		t.Error("no reachability")
	}

	rec = get(t, s, "/v1/tunnel/peers")
	var peers []p2p.PeerStatus
	if err := json.Unmarshal(rec.Body.Bytes(), &peers); rec.Code != http.StatusOK || err != nil {
		t.Fatalf("GET peers: %d %v %q", rec.Code, err, rec.Body)
	}
	if len(peers) != 1 || peers[0].Node != "edge-a2" || peers[0].Peer != a2.String() || peers[0].Path != p2p.PathNone {
		t.Errorf("peers %+v, want edge-a2 without a path", peers)
	}
}

// Per-peer metrics from the path manager's view: one path series per
// peer with its kind and relay, path changes and upgrade attempts as
// counters, the RTT in seconds, and only live connections counted.
func TestCollectPeers(t *testing.T) {
	peers := []p2p.PeerStatus{{
		Node: "edge-a2", Path: p2p.PathRelayed, Relay: "relay-1", RTTMillis: 42, PathChanges: 3, Upgrades: 2,
		Conns: []p2p.ConnStatus{{Alive: true}, {Alive: false}, {Alive: true}},
	}, {
		Node: "edge-b1", Path: p2p.PathDirectTCP, RTTMillis: 1.5,
		Conns: []p2p.ConnStatus{{Alive: false}},
	}, {
		Node: "edge-c1", Path: p2p.PathNone,
	}}
	c := collectFunc(func(ch chan<- prometheus.Metric) { collectPeers(ch, peers) })
	text := unittest.MetricsText(t, c)
	for _, w := range []string{
		`edgelink_tunnel_peer_path{path="relayed",peer="edge-a2",relay="relay-1"} 1`,
		`edgelink_tunnel_peer_path{path="direct-tcp",peer="edge-b1",relay=""} 1`,
		`edgelink_tunnel_peer_path{path="none",peer="edge-c1",relay=""} 1`,
		`edgelink_tunnel_peer_path_changes_total{peer="edge-a2"} 3`,
		`edgelink_tunnel_peer_upgrade_attempts_total{peer="edge-a2"} 2`,
		`edgelink_tunnel_peer_rtt_seconds{peer="edge-a2"} 0.042`,
		`edgelink_tunnel_peer_rtt_seconds{peer="edge-b1"} 0.0015`,
		`edgelink_tunnel_peer_connections{peer="edge-a2"} 2`,
		`edgelink_tunnel_peer_connections{peer="edge-b1"} 0`,
		`edgelink_tunnel_peer_connections{peer="edge-c1"} 0`,
		"# TYPE edgelink_tunnel_peer_path_changes_total counter",
		"# TYPE edgelink_tunnel_peer_rtt_seconds gauge",
	} {
		if !strings.Contains(text, w+"\n") {
			t.Errorf("no %q in\n%s", w, text)
		}
	}
	if n := strings.Count(text, "edgelink_tunnel_peer_path{"); n != 3 {
		t.Errorf("%d path series, want one per peer:\n%s", n, text)
	}
}

// collectFunc is a collector made of a function.
type collectFunc func(ch chan<- prometheus.Metric)

func (f collectFunc) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(f, ch) }
func (f collectFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

// The module's collector reports edgelink_tunnel_up 0 and nothing else
// while the tunnel is down; once up, 1, the known members, the per-peer
// series and the host's hole-punch and refusal counters.
func TestCollector(t *testing.T) {
	c := memberConfig(t, "edge-a1")
	m := New(asAgent(t, c), nil)
	if text := unittest.MetricsText(t, m.Collector()); text != "# HELP edgelink_tunnel_up 1 while the tunnel's libp2p host runs.\n# TYPE edgelink_tunnel_up gauge\nedgelink_tunnel_up 0\n" {
		t.Errorf("down:\n%s", text)
	}

	r := newRunning(t, c, false)
	a2 := unittest.NewPeerID(t)
	r.known["edge-a2"] = p2p.PeerRecord{Node: "edge-a2", Peer: a2.String()}
	r.known["edge-a3"] = p2p.PeerRecord{Node: "edge-a3", Peer: unittest.NewPeerID(t).String()}
	r.paths.SetTargets([]p2p.Target{{Node: "edge-a2", ID: a2}})
	r.h.Punches.Attempts.Add(4)
	r.h.Punches.Successes.Add(3)
	r.h.Punches.Failures.Add(1)
	m.svc.running.Store(r)
	t.Cleanup(func() { m.svc.running.Store(nil) })
	text := unittest.MetricsText(t, m.Collector())
	for _, w := range []string{
		"edgelink_tunnel_up 1",
		"edgelink_tunnel_known_peers 2",
		`edgelink_tunnel_peer_path{path="none",peer="edge-a2",relay=""} 1`,
		"edgelink_tunnel_holepunch_attempts_total 4",
		"edgelink_tunnel_holepunch_successes_total 3",
		"edgelink_tunnel_holepunch_failures_total 1",
		"edgelink_tunnel_membership_refusals_total 0",
	} {
		if !strings.Contains(text, w+"\n") {
			t.Errorf("up: no %q in\n%s", w, text)
		}
	}
	if strings.Contains(text, "edgelink_tunnel_relay_reservation") {
		t.Errorf("reservation series without relays:\n%s", text)
	}
}

// The wire types serve byte for byte what pkg/p2p's types marshal to, so
// clients built before agentapi had its own types read the same JSON.
func TestWireFormatUnchanged(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	peers := []p2p.PeerStatus{{
		Node: "edge-a2", Peer: "12D3KooWx", Path: p2p.PathRelayed, Relay: "relay-1", RemoteAddr: "/ip4/1.2.3.4/tcp/1",
		RTTMillis: 4.2, BytesIn: 1, BytesOut: 2, LastActivity: now, PathSince: now, PathChanges: 3, Upgrades: 4,
		LastError: "boom", Conns: []p2p.ConnStatus{{Path: p2p.PathDirectTCP, Relay: "r", RemoteAddr: "a", Direction: "outbound", Alive: true, RTTMillis: 1}},
	}, {Node: "edge-c1", Path: p2p.PathNone}}
	states := []p2p.ReservationState{{Node: "relay-1", Relay: unittest.NewPeerID(t), Reserved: true, Expires: now,
		LastError: "x", Renewals: 2}, {Node: "relay-2"}}
	for _, c := range []struct{ old, wire any }{
		{peers, wirePeers(peers)}, {[]p2p.PeerStatus(nil), wirePeers(nil)}, {[]p2p.PeerStatus{}, wirePeers([]p2p.PeerStatus{})},
		{states, wireReservations(states)}, {[]p2p.ReservationState(nil), wireReservations(nil)},
	} {
		old, _ := json.Marshal(c.old)
		wire, _ := json.Marshal(c.wire)
		if string(old) != string(wire) {
			t.Errorf("wire format changed:\n old %s\n new %s", old, wire)
		}
	}
}
