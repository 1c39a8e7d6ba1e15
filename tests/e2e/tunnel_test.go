package e2e

import (
	"net/netip"
	"testing"
	"time"

	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/p2p"
	"github.com/edgelink/edgelink/tests/topology"
)

// The tunnel issue's scenario on one mesh, in order: the paths every pair
// ends on, a relay restart, a relay killed, a direct path cut, and no
// growth over repeated reconnects. Needs root (network namespaces).
func TestTunnel(t *testing.T) {
	m := newMesh(t, meshSpec)
	m.startAll()
	lanA := netip.MustParsePrefix("192.168.1.0/24")
	public := topology.PublicPrefix

	expected := map[[2]string]pathCheck{
		{"a1", "a2"}:      noRelay(directIn(lanA)),
		{"a1", "cloud-1"}: directIn(public), {"a2", "cloud-1"}: directIn(public),
		{"c1", "cloud-1"}: directIn(public), {"b1", "cloud-1"}: directIn(public),
		{"a1", "c1"}: directIn(public), {"a2", "c1"}: directIn(public),
		{"b1", "a1"}: relayedVia(), {"b1", "a2"}: relayedVia(), {"b1", "c1"}: relayedVia(),
		{"relay-1", "b1"}: direct, {"relay-2", "a1"}: direct, {"relay-1", "relay-2"}: direct,
	}
	took := m.waitPaths(90*time.Second, expected)
	t.Logf("every pair on its expected path %s after the agents started", took.Round(time.Millisecond))
	m.logPaths("a1", "b1")

	t.Run("relay restart", func(t *testing.T) {
		before := m.renewals("relay-1")
		m.agents["relay-1"].Stop()
		m.agents["relay-1"].Start("Tunnel up")
		start := time.Now()
		for !m.reservedAgain("relay-1", before) {
			if time.Since(start) > 60*time.Second {
				t.Fatalf("reservations on relay-1 did not come back: %+v", m.reservations("relay-1"))
			}
			time.Sleep(250 * time.Millisecond)
		}
		t.Logf("every node holds its reservation on relay-1 again %s after it restarted", time.Since(start).Round(time.Millisecond))
		m.waitPaths(60*time.Second, expected)
	})

	t.Run("relay killed", func(t *testing.T) {
		used := m.peers("b1")["a1"].Relay
		other := map[string]string{"relay-1": "relay-2", "relay-2": "relay-1"}[used]
		if other == "" {
			t.Fatalf("b1->a1 is not relayed through a known relay: %q", used)
		}
		m.agents[used].Kill()
		took := m.waitPaths(60*time.Second, map[[2]string]pathCheck{
			{"b1", "a1"}: relayedVia(other), {"b1", "a2"}: relayedVia(other), {"b1", "c1"}: relayedVia(other),
		})
		t.Logf("%s killed: b1's relayed pairs moved to %s in %s", used, other, took.Round(time.Millisecond))
		m.agents[used].Start("Tunnel up")
		m.waitPaths(60*time.Second, expected)
	})

	t.Run("direct path cut", func(t *testing.T) {
		restore := m.tp.Block(m.tp.Host("a1"), m.tp.Host("c1"))
		cut := map[[2]string]pathCheck{{"a1", "c1"}: relayedVia(), {"a2", "c1"}: relayedVia()}
		took := m.waitPaths(30*time.Second, cut)
		t.Logf("direct A<->C cut: relayed after %s", took.Round(time.Millisecond))
		// Everything else keeps its path meanwhile.
		m.waitPaths(5*time.Second, map[[2]string]pathCheck{
			{"a1", "a2"}: noRelay(directIn(lanA)), {"c1", "cloud-1"}: directIn(public), {"b1", "a1"}: relayedVia(),
		})
		restore()
		took = m.waitPaths(90*time.Second, map[[2]string]pathCheck{{"a1", "c1"}: directIn(public), {"a2", "c1"}: directIn(public)})
		t.Logf("cut lifted: direct again after %s", took.Round(time.Millisecond))
	})

	t.Run("restart during an uplink cut", func(t *testing.T) {
		// a2 restarts while site A cannot reach any relay: its peer cache
		// still knows a1, and the two meet on the LAN.
		restore := m.tp.CutUplink("A")
		defer restore()
		m.agents["a2"].Stop()
		m.agents["a2"].Start("Tunnel up")
		took := m.waitPaths(30*time.Second, map[[2]string]pathCheck{{"a1", "a2"}: noRelay(directIn(lanA))})
		t.Logf("a2 restarted during the cut: direct to a1 on the LAN %s after start", took.Round(time.Millisecond))
		restore()
		m.waitPaths(60*time.Second, expected)
	})

	t.Run("reachability from our relays", func(t *testing.T) {
		// cloud-1 is dialable; only the relays run AutoNAT's service and
		// nodes talk to members only, so our relays answered this.
		deadline := time.Now().Add(90 * time.Second)
		for m.status("cloud-1").Reachability != "Public" {
			if time.Now().After(deadline) {
				t.Fatalf("cloud-1 reachability %q, want Public", m.status("cloud-1").Reachability)
			}
			time.Sleep(time.Second)
		}
		// The relays' dial-backs come from throwaway identities that
		// never prove membership: not counted as refusals. Nor is any
		// member's proof refused by another.
		for _, n := range m.names() {
			if r := m.status(n).RefusedPeers; r != 0 {
				t.Errorf("%s refused %d proofs among members", n, r)
			}
		}
	})

	t.Run("no growth", func(t *testing.T) {
		m.waitPaths(60*time.Second, expected)
		time.Sleep(3 * time.Second) // let closed connections' goroutines end
		base := m.usage()
		const cycles = 4
		for i := 0; i < cycles; i++ {
			restore := m.tp.CutUplink("C")
			time.Sleep(6 * time.Second)
			restore()
			m.waitPaths(60*time.Second, expected)
		}
		time.Sleep(3 * time.Second)
		after := m.usage()
		for _, n := range m.names() {
			b, a := base[n], after[n]
			t.Logf("%s: goroutines %d -> %d, fds %d -> %d", n, b.Goroutines, a.Goroutines, b.OpenFDs, a.OpenFDs)
			// Bounds: a few in-flight probes or dials may be running at
			// either moment; a leak per reconnect would exceed them after
			// four cycles of all of c1's connections.
			if a.Goroutines > b.Goroutines+40 || a.OpenFDs > b.OpenFDs+8 {
				t.Errorf("%s grew over %d uplink cuts: goroutines %d -> %d, fds %d -> %d",
					n, cycles, b.Goroutines, a.Goroutines, b.OpenFDs, a.OpenFDs)
			}
		}
	})
}

func (m *mesh) logPaths(nodes ...string) {
	m.t.Helper()
	for _, n := range nodes {
		for _, p := range m.peers(n) {
			m.t.Logf("%s -> %-8s %-12s relay=%-8s rtt=%.2fms remote=%s conns=%d changes=%d upgrades=%d",
				n, p.Node, p.Path, p.Relay, p.RTTMillis, p.RemoteAddr, len(p.Conns), p.PathChanges, p.Upgrades)
		}
	}
}

func (m *mesh) reservations(relay string) map[string]agentapi.Reservation {
	out := map[string]agentapi.Reservation{}
	for _, n := range m.names() {
		if n == relay {
			continue
		}
		for _, r := range m.status(n).Reservations {
			if r.Node == relay {
				out[n] = r
			}
		}
	}
	return out
}

func (m *mesh) renewals(relay string) map[string]int {
	out := map[string]int{}
	for n, r := range m.reservations(relay) {
		out[n] = r.Renewals
	}
	return out
}

// reservedAgain: every node holds a reservation on relay made after before.
func (m *mesh) reservedAgain(relay string, before map[string]int) bool {
	for n, r := range m.reservations(relay) {
		if !r.Reserved || r.Renewals <= before[n] {
			return false
		}
	}
	return true
}

type agentUsage struct {
	Goroutines int `json:"goroutines"`
	OpenFDs    int `json:"openFDs"`
}

func (m *mesh) usage() map[string]agentUsage {
	out := map[string]agentUsage{}
	for _, n := range m.names() {
		var u agentUsage
		if err := m.agents[n].GetJSON("/v1/agent", &u); err != nil {
			m.t.Fatalf("%s: %v", n, err)
		}
		out[n] = u
	}
	return out
}

// Where the sites' firewalls drop UDP (no QUIC), nodes reach the relay
// over TCP, learn their TCP mappings, and DCUtR punches TCP. Needs root.
func TestTunnelTCPHolePunch(t *testing.T) {
	m := newMesh(t, topology.Spec{
		Public: []string{"relay-1"},
		Sites: []topology.SiteSpec{
			{Name: "A", NAT: topology.HolePunchable, Hosts: []string{"a1"}},
			{Name: "C", NAT: topology.HolePunchable, Hosts: []string{"c1"}},
		},
	})
	for _, site := range []string{"A", "C"} {
		if out, err := m.tp.Router(site).Exec("iptables", "-I", "FORWARD", "-p", "udp", "-j", "DROP"); err != nil {
			t.Fatalf("blocking UDP at %s: %v %s", site, err, out)
		}
	}
	m.startAll()
	tcpDirect := func(p p2p.PeerStatus, ok bool) string {
		if msg := directIn(topology.PublicPrefix)(p, ok); msg != "" {
			return msg
		}
		if p.Path != p2p.PathDirectTCP {
			return "direct, but not over TCP"
		}
		return ""
	}
	took := m.waitPaths(60*time.Second, map[[2]string]pathCheck{{"a1", "c1"}: tcpDirect})
	t.Logf("A<->C hole-punched over TCP %s after start", took.Round(time.Millisecond))
	m.logPaths("a1")
}
