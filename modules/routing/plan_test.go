package routing

import (
	"flag"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgelink/edgelink/pkg/metadata"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

// A cluster with a cloud segment (two cloud nodes with pod CIDRs) and a
// dual-stack edge segment (edge pods with SpiderPool /32s and /128s on
// three edge nodes, two of them on one IPv4 LAN), seen from edge-a1.
func goldenInput() Input {
	snap := metadata.Empty()
	node := func(name, internal string, cidrs ...string) {
		n := &metadata.NodeInfo{Name: name, Addresses: []metadata.NodeAddress{{Type: "InternalIP", Address: ip(internal)}}}
		for _, c := range cidrs {
			n.PodCIDRs = append(n.PodCIDRs, pfx(c))
		}
		snap.Nodes[name] = n
	}
	pod := func(name, nodeName, addr string, hostNetwork bool, more ...string) {
		p := &metadata.PodInfo{Namespace: "default", Name: name, NodeName: nodeName, IPs: []netip.Addr{ip(addr)}, HostNetwork: hostNetwork}
		for _, m := range more {
			p.IPs = append(p.IPs, ip(m))
		}
		snap.Pods["default/"+name] = p
	}
	node("cloud-1", "198.18.0.13", "10.244.1.0/24")
	node("cloud-2", "198.18.0.14", "10.244.2.0/24")
	node("edge-a1", "192.168.1.11")
	node("edge-a2", "192.168.1.12")
	node("edge-c1", "192.168.3.11")
	pool := func(name, subnet, ips, nodeName string) {
		obj := fmt.Sprintf(`{"apiVersion":"spiderpool.spidernet.io/v2beta1","kind":"SpiderIPPool","metadata":{"name":%q},"spec":{"subnet":%q,"ips":[%q],"nodeName":[%q]}}`, name, subnet, ips, nodeName)
		snap.Pools[name] = metadata.NewPoolInfo(name, []byte(obj))
	}
	// edge-c1's pool: its pods are routed before their IPs are known;
	// edge-a1's own pool is local.
	pool("c1-pool", "10.245.0.0/16", "10.245.7.0-10.245.7.255", "edge-c1")
	pool("a1-pool", "10.245.0.0/16", "10.245.5.2-10.245.5.5", "edge-a1")
	pod("web-1", "cloud-1", "10.244.1.5", false)
	pod("mine", "edge-a1", "10.245.5.2", false, "fd00:245:5::2")
	pod("lan-peer", "edge-a2", "10.245.6.2", false, "fd00:245:6::2")
	pod("other-site", "edge-c1", "10.245.7.2", false)
	pod("host-net", "edge-c1", "192.168.3.11", true)
	pod("outside-mesh", "edge-c1", "172.30.0.9", false)
	return Input{
		Node: "edge-a1", Cloud: []netip.Prefix{pfx("10.244.0.0/16")}, Edge: []netip.Prefix{pfx("10.245.0.0/16"), pfx("fd00:245::/32")},
		Snapshot: snap, LocalNets: []netip.Prefix{pfx("192.168.1.0/24"), pfx("10.245.5.0/24")},
	}
}

func TestPlanGolden(t *testing.T) {
	got := Plan(goldenInput()).String()
	path := filepath.Join("testdata", "plan.golden")
	if got != golden(t, path, got) {
		t.Errorf("route plan differs from %s (go test -update to accept):\n%s", path, got)
	}
}

// Until the node has a pod, its segment is unknown: every segment is
// remote, and no same-segment routes exist.
func TestPlanWithoutOwnPods(t *testing.T) {
	in := goldenInput()
	delete(in.Snapshot.Pods, "default/mine")
	p := Plan(in)
	if len(p.Segments) != 1 {
		t.Errorf("edge-a1's pool alone must tell its segment:\n%s", p)
	}
	delete(in.Snapshot.Pools, "a1-pool")
	p = Plan(in)
	if len(p.Segments) != 0 || len(p.Kernel) != 3 {
		t.Errorf("plan without own pods:\n%s", p)
	}
}

// On a cloud node the cloud's CNI routes between cloud nodes (host-gw,
// VXLAN); the plan only sends the edge segments into the TUN.
func TestPlanCloudNode(t *testing.T) {
	in := goldenInput()
	in.Node, in.LocalNets = "cloud-1", []netip.Prefix{pfx("198.18.0.0/24"), pfx("10.244.1.0/24")}
	p := Plan(in)
	want := "segment 10.244.0.0/16\nkernel 10.245.0.0/16 dev tun (segment)\nkernel fd00:245::/32 dev tun (segment)\n"
	if got := p.String(); !strings.HasPrefix(got, want) || strings.Count(got, "kernel") != 2 {
		t.Errorf("cloud-1's plan: want only the edge segments routed:\n%s", got)
	}
	if got := p.Forward.Remote["cloud-2"]; len(got) != 1 || got[0] != pfx("10.244.2.0/24") {
		t.Errorf("cloud-2's prefixes still belong to cloud-2 in the forwarder: %v", got)
	}
}

// The node's own address for its host network: an edge node's pool
// gateway, put on the TUN, becomes the source of every route into the TUN
// (not of host-gw routes); a cloud node uses the address its CNI's bridge
// already holds inside its pod CIDR. Without either the kernel picks the
// underlay address, which receivers drop as spoofed: no source is set.
func TestPlanHostSource(t *testing.T) {
	in := goldenInput()
	obj := `{"apiVersion":"spiderpool.spidernet.io/v2beta1","kind":"SpiderIPPool","metadata":{"name":"a1-pool"},"spec":{"subnet":"10.245.0.0/16","ips":["10.245.5.2-10.245.5.5"],"gateway":"10.245.5.1","nodeName":["edge-a1"]}}`
	in.Snapshot.Pools["a1-pool"] = metadata.NewPoolInfo("a1-pool", []byte(obj))
	p := Plan(in)
	got := p.String()
	for _, want := range []string{
		"source 10.245.5.1 (on tun)\n",
		"kernel 10.244.0.0/16 dev tun src 10.245.5.1 (segment)\n",
		"kernel 10.245.7.0/24 dev tun src 10.245.5.1 (same segment, other site: edge-c1)\n",
		"kernel 10.245.6.2/32 via 192.168.1.12 (same segment, same LAN: edge-a2)\n",
		"kernel fd00:245:6::2/128 dev tun (same segment, other site: edge-a2)\n", // no IPv6 source
		"local  10.245.5.1/32\n",                                                 // the gateway is the node's own
	} {
		if !strings.Contains(got, want) {
			t.Errorf("plan lacks %q:\n%s", want, got)
		}
	}

	cloud := goldenInput()
	cloud.Node, cloud.LocalNets = "cloud-1", []netip.Prefix{pfx("198.18.0.0/24"), pfx("10.244.1.0/24")}
	cloud.LocalAddrs = []netip.Addr{ip("198.18.0.13"), ip("10.244.1.1")}
	got = Plan(cloud).String()
	if !strings.Contains(got, "source 10.244.1.1 (on the node)\n") || !strings.Contains(got, "kernel 10.245.0.0/16 dev tun src 10.244.1.1 (segment)\n") {
		t.Errorf("cloud-1 should send from cni0's 10.244.1.1:\n%s", got)
	}
	// Flannel's flannel.1 holds the prefix's first address, listed
	// before cni0's: the bridge's still wins; alone, flannel.1's serves.
	cloud.LocalAddrs = []netip.Addr{ip("198.18.0.13"), ip("10.244.1.0"), ip("10.244.1.1")}
	if got := Plan(cloud).String(); !strings.Contains(got, "source 10.244.1.1 (on the node)\n") {
		t.Errorf("cloud-1 should send from cni0's 10.244.1.1, not flannel.1's 10.244.1.0:\n%s", got)
	}
	cloud.LocalAddrs = []netip.Addr{ip("198.18.0.13"), ip("10.244.1.0")}
	if got := Plan(cloud).String(); !strings.Contains(got, "source 10.244.1.0 (on the node)\n") {
		t.Errorf("before its first pod, cloud-1 should send from flannel.1's 10.244.1.0:\n%s", got)
	}
	cloud.LocalAddrs = []netip.Addr{ip("198.18.0.13")}
	if got := Plan(cloud).String(); strings.Contains(got, "source") || strings.Contains(got, " src ") {
		t.Errorf("no own address, yet a source:\n%s", got)
	}
}

// A pod status cannot draw traffic: an IP inside another node's pod CIDR
// or pool stays that node's (the /32 that would beat its prefix is not
// made), an IP claimed by pods on two nodes routes to neither, and a
// Succeeded or Failed pod's IP counts for nothing. Each is listed as
// ignored. An IP outside every node's prefixes (a shared pool's) that one
// node's pod holds is routed to that node, and a node's InternalIP is
// where its ICMP errors come from.
func TestPlanIgnoresPodIPsThatAreNotTheirNodes(t *testing.T) {
	in := goldenInput()
	snap := in.Snapshot
	add := func(name, node, addr, phase string) {
		snap.Pods["default/"+name] = &metadata.PodInfo{Namespace: "default", Name: name, NodeName: node, IPs: []netip.Addr{ip(addr)}, Phase: phase}
	}
	add("steal-pool", "edge-a2", "10.245.7.9", "Running")  // in c1-pool, pinned to edge-c1
	add("steal-cidr", "edge-a2", "10.244.1.77", "Running") // in cloud-1's pod CIDR
	add("twin-a", "edge-a2", "10.245.9.9", "Running")      // a shared-pool IP, claimed twice
	add("twin-b", "edge-c1", "10.245.9.9", "Pending")
	add("done", "edge-a2", "10.245.9.10", "Succeeded") // its IP may be reused
	add("shared", "edge-c1", "10.245.9.11", "Running") // a shared-pool IP, one claim
	p := Plan(in)
	routed := func(addr string) string {
		for n, pfxs := range p.Forward.Remote {
			for _, q := range pfxs {
				if q.Bits() == q.Addr().BitLen() && q.Addr() == ip(addr) {
					return n
				}
			}
		}
		return ""
	}
	for _, addr := range []string{"10.245.7.9", "10.244.1.77", "10.245.9.9", "10.245.9.10"} {
		if n := routed(addr); n != "" {
			t.Errorf("%s routed as a /32 to %s", addr, n)
		}
	}
	if n := routed("10.245.9.11"); n != "edge-c1" {
		t.Errorf("the shared-pool IP of edge-c1's pod routed to %q, want edge-c1", n)
	}
	want := []string{
		"ignored 10.244.1.77 of default/steal-cidr (in cloud-1's prefixes, not edge-a2's)",
		"ignored 10.245.7.9 of default/steal-pool (in edge-c1's prefixes, not edge-a2's)",
		"ignored 10.245.9.9 of default/twin-a (claimed by pods on 2 nodes)",
		"ignored 10.245.9.9 of default/twin-b (claimed by pods on 2 nodes)",
	}
	var got []string
	for _, l := range strings.Split(p.String(), "\n") {
		if strings.HasPrefix(l, "ignored ") {
			got = append(got, l)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("ignored:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if h := p.Forward.Hosts["edge-c1"]; len(h) != 1 || h[0] != ip("192.168.3.11") {
		t.Errorf("edge-c1's ICMP error sources %v, want its InternalIP", h)
	}
}
