package metadata

import (
	"net/netip"
	"testing"
)

// A pod's own record wins; else the longest pod CIDR holding the address.
func TestNodeOfIP(t *testing.T) {
	b := Empty()
	b.Nodes["edge-2"] = &NodeInfo{Name: "edge-2", PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.245.0.0/16")}}
	b.Nodes["edge-3"] = &NodeInfo{Name: "edge-3", PodCIDRs: []netip.Prefix{netip.MustParsePrefix("10.245.7.0/24")}}
	pod := &PodInfo{Namespace: "a", Name: "p", NodeName: "edge-4", IPs: []netip.Addr{netip.MustParseAddr("10.245.7.9")}}
	b.PodsByIP[netip.MustParseAddr("10.245.7.9")] = pod
	for ip, want := range map[string]string{"10.245.7.9": "edge-4", "10.245.7.1": "edge-3", "10.245.1.1": "edge-2", "10.9.9.9": ""} {
		if got := b.NodeOfIP(netip.MustParseAddr(ip)); got != want {
			t.Errorf("NodeOfIP(%s) = %q, want %q", ip, got, want)
		}
	}
}
