package routing

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/edgelink/edgelink/pkg/dataplane"
	"github.com/edgelink/edgelink/pkg/metadata"
)

// Route kinds: why a prefix is routed (KernelRoute.Kind, RoutePlan.Origin
// and agentapi.Route.Kind on the wire).
const (
	KindSegment = "segment" // another mesh segment (cloudCIDR/edgeCIDR), into the TUN
	KindNode    = "node"    // a node's pod CIDR (Node.spec.podCIDRs)
	KindPool    = "pool"    // a SpiderIPPool pinned to one node
	KindPod     = "pod"     // one pod's IP not covered by the above
)

// Input is everything a route plan depends on.
type Input struct {
	Node        string
	Cloud, Edge []netip.Prefix     // the mesh segments (meshCIDRConfig)
	Snapshot    *metadata.Snapshot // pods and nodes
	// LocalNets are the subnets this node is directly attached to: a
	// node whose address is in one of them shares our LAN.
	LocalNets []netip.Prefix
	// LocalAddrs are the addresses on this node's interfaces other than
	// the TUN (cni0 of the cloud CNI, the pod bridge, the underlay).
	LocalAddrs []netip.Addr
}

// HostSource is the node's own address in the mesh for one IP family:
// the source of traffic its host network (agents, hostNetwork pods) sends
// into the TUN, so that receivers, which accept only sources inside the
// sending node's prefixes, take it and reply to it.
type HostSource struct {
	Addr netip.Addr
	// OnTUN: the module puts Addr on the TUN (a pool's gateway, which the
	// bridge holds only once a pod exists); otherwise Addr is already on
	// an interface of the node (the cloud CNI's bridge).
	OnTUN bool
}

// KernelRoute is one route the module programs, and why.
type KernelRoute struct {
	Dst netip.Prefix
	Via netip.Addr // a peer node's address (host-gw); invalid: into the TUN
	Src netip.Addr // preferred source (into the TUN); invalid: the kernel's choice
	Why string
	// Node owns Dst (empty for a segment); Kind is why Dst is routed
	// (KindSegment, KindNode, KindPool, KindPod).
	Node, Kind string
}

func (r KernelRoute) String() string {
	if r.Via.IsValid() {
		return fmt.Sprintf("%s via %s (%s)", r.Dst, r.Via, r.Why)
	}
	if r.Src.IsValid() {
		return fmt.Sprintf("%s dev tun src %s (%s)", r.Dst, r.Src, r.Why)
	}
	return fmt.Sprintf("%s dev tun (%s)", r.Dst, r.Why)
}

// RoutePlan is what the module makes of an Input.
type RoutePlan struct {
	// Segments are this node's segments (one per IP family in use);
	// empty until its pods tell.
	Segments []netip.Prefix
	Forward  dataplane.Plan
	Kernel   []KernelRoute
	// Origin tells where each node prefix in Forward comes from
	// (KindNode, KindPool, KindPod), for `edgelink routes`.
	Origin map[netip.Prefix]string
	// Sources are the node's own addresses (at most one per family).
	Sources []HostSource
	// Ignored are pod IPs the plan does not route (each with why): inside
	// another node's prefixes, claimed by pods on two nodes.
	Ignored []IgnoredIP
}

// IgnoredIP is a pod IP from the metadata that the plan does not route.
type IgnoredIP struct {
	IP       netip.Addr
	Pod, Why string
}

// String renders the plan as sorted text (golden tests, the status API).
func (p *RoutePlan) String() string {
	var b strings.Builder
	if len(p.Segments) == 0 {
		b.WriteString("segment unknown\n")
	}
	for _, s := range p.Segments {
		fmt.Fprintf(&b, "segment %s\n", s)
	}
	for _, src := range p.Sources {
		where := "on the node"
		if src.OnTUN {
			where = "on tun"
		}
		fmt.Fprintf(&b, "source %s (%s)\n", src.Addr, where)
	}
	for _, r := range p.Kernel {
		fmt.Fprintf(&b, "kernel %s\n", r)
	}
	b.WriteString(p.Forward.String())
	for _, ig := range p.Ignored {
		fmt.Fprintf(&b, "ignored %s of %s (%s)\n", ig.IP, ig.Pod, ig.Why)
	}
	return b.String()
}

// Plan decides the node's segments (the configured CIDRs holding its pod
// CIDRs or pod IPs: one per IP family), routes every other segment into
// the TUN, and routes pods of other nodes in the same edge segment via
// the node's address when it shares our LAN (host-gw), through the TUN
// otherwise. Within a cloud segment the cloud's own CNI routes between
// nodes, so the plan adds no route there. A node's prefixes
// are its pod CIDRs, the SpiderIPPools pinned to it, and its pods' IPs
// not covered by those. The forwarder's plan maps every remote prefix to
// its node and lists our own.
func Plan(in Input) *RoutePlan {
	segments := append(slices.Clone(in.Cloud), in.Edge...)
	inMesh := func(p netip.Prefix) bool {
		return slices.ContainsFunc(segments, func(s netip.Prefix) bool { return s.Overlaps(p) && s.Bits() <= p.Bits() })
	}
	snap := in.Snapshot
	if snap == nil {
		snap = metadata.Empty()
	}
	// Pod IPs, of pods that hold theirs (not Succeeded or Failed: their
	// IPs may be another pod's by now), by the IP: a pod status is what
	// any node's edgecore writes, so an IP claimed by pods on two nodes
	// routes to neither.
	type claim struct{ node, pod string }
	claims := map[netip.Addr][]claim{}
	for _, pod := range snap.Pods {
		if pod.HostNetwork || pod.NodeName == "" || pod.Phase == "Succeeded" || pod.Phase == "Failed" {
			continue
		}
		for _, ip := range pod.IPs {
			if inMesh(netip.PrefixFrom(ip, ip.BitLen())) && !slices.ContainsFunc(claims[ip], func(c claim) bool { return c.node == pod.NodeName }) {
				claims[ip] = append(claims[ip], claim{pod.NodeName, pod.Key()})
			}
		}
	}
	// SpiderIPPools pinned to one node hold that node's pods to come:
	// routing them means a new pod is reachable before its IP reaches
	// the metadata, and a pod created while the cloud is away too.
	poolsOf := map[string][]netip.Prefix{}
	gateways := map[string]netip.Addr{} // this node's pools with a gateway, by pool name
	// The pools' typed form, parsed once by metasync: nothing to decode.
	for _, pool := range snap.Pools {
		if pool.Err != nil || pool.Disabled || pool.Node == "" {
			continue
		}
		if pool.Node == in.Node && pool.Gateway.IsValid() && inMesh(netip.PrefixFrom(pool.Gateway, pool.Gateway.BitLen())) {
			gateways[pool.Name] = pool.Gateway
		}
		for _, p := range pool.Prefixes {
			if inMesh(p) {
				poolsOf[pool.Node] = append(poolsOf[pool.Node], p)
			}
		}
	}
	plan := &RoutePlan{Forward: dataplane.Plan{Remote: map[string][]netip.Prefix{}, Hosts: map[string][]netip.Addr{}}, Origin: map[netip.Prefix]string{}}
	// A node's own prefixes: its pod CIDRs and pinned pools (blocks among
	// them). A pod IP inside another node's is never routed to the pod's
	// node: that would let a pod status draw another node's traffic.
	ownerOf := func(ip netip.Addr) string {
		for n, info := range snap.Nodes {
			if slices.ContainsFunc(info.PodCIDRs, func(c netip.Prefix) bool { return inMesh(c) && c.Contains(ip) }) {
				return n
			}
		}
		for n, pfxs := range poolsOf {
			if slices.ContainsFunc(pfxs, func(c netip.Prefix) bool { return c.Contains(ip) }) {
				return n
			}
		}
		return ""
	}
	podsOf := map[string][]netip.Prefix{}
	for ip, cs := range claims {
		owner := ownerOf(ip)
		switch {
		case owner != "" && owner == cs[0].node && len(cs) == 1:
			// covered by its node's own prefix
		case owner != "":
			for _, c := range cs {
				if c.node != owner {
					plan.Ignored = append(plan.Ignored, IgnoredIP{IP: ip, Pod: c.pod, Why: fmt.Sprintf("in %s's prefixes, not %s's", owner, c.node)})
				}
			}
		case len(cs) > 1:
			for _, c := range cs {
				plan.Ignored = append(plan.Ignored, IgnoredIP{IP: ip, Pod: c.pod, Why: fmt.Sprintf("claimed by pods on %d nodes", len(cs))})
			}
		default: // outside every node's prefixes (a shared pool's pod): its /32
			podsOf[cs[0].node] = append(podsOf[cs[0].node], netip.PrefixFrom(ip, ip.BitLen()))
		}
	}
	for _, pfxs := range podsOf {
		slices.SortFunc(pfxs, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	}
	slices.SortFunc(plan.Ignored, func(a, b IgnoredIP) int {
		if c := a.IP.Compare(b.IP); c != 0 {
			return c
		}
		return strings.Compare(a.Pod, b.Pod)
	})
	prefixesOf := func(node string) []netip.Prefix {
		var out []netip.Prefix
		if n := snap.Nodes[node]; n != nil {
			for _, c := range n.PodCIDRs {
				if inMesh(c) {
					out = append(out, c)
					plan.Origin[c] = KindNode
				}
			}
		}
		out = append(out, poolsOf[node]...)
		for _, p := range poolsOf[node] {
			if _, ok := plan.Origin[p]; !ok {
				plan.Origin[p] = KindPool
			}
		}
		for _, p := range podsOf[node] {
			if !slices.ContainsFunc(out, func(c netip.Prefix) bool { return c.Contains(p.Addr()) }) {
				out = append(out, p)
				plan.Origin[p] = KindPod
			}
		}
		return out
	}

	plan.Forward.Local = prefixesOf(in.Node)
	for _, s := range segments {
		if slices.ContainsFunc(plan.Forward.Local, func(p netip.Prefix) bool { return s.Contains(p.Addr()) }) {
			plan.Segments = append(plan.Segments, s)
		}
	}
	own := func(a netip.Addr) bool {
		return slices.ContainsFunc(plan.Segments, func(s netip.Prefix) bool { return s.Contains(a) })
	}
	cloudOwn := func(a netip.Addr) bool {
		return slices.ContainsFunc(plan.Segments, func(s netip.Prefix) bool { return s.Contains(a) && slices.Contains(in.Cloud, s) })
	}
	for _, s := range segments {
		if !slices.Contains(plan.Segments, s) {
			plan.Kernel = append(plan.Kernel, KernelRoute{Dst: s, Why: "segment", Kind: KindSegment})
		}
	}
	nodes := make([]string, 0, len(snap.Nodes)+len(podsOf))
	for n := range snap.Nodes {
		nodes = append(nodes, n)
	}
	for _, m := range []map[string][]netip.Prefix{podsOf, poolsOf} {
		for n := range m {
			if snap.Nodes[n] == nil && !slices.Contains(nodes, n) {
				nodes = append(nodes, n)
			}
		}
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		if n == in.Node {
			continue
		}
		pfxs := prefixesOf(n)
		if len(pfxs) == 0 {
			continue
		}
		plan.Forward.Remote[n] = pfxs
		if info := snap.Nodes[n]; info != nil {
			for _, a := range info.Addresses {
				if a.Type == "InternalIP" || a.Type == "ExternalIP" {
					plan.Forward.Hosts[n] = append(plan.Forward.Hosts[n], a.Address)
				}
			}
		}
		for _, p := range pfxs {
			if !own(p.Addr()) {
				continue // covered by its segment's route
			}
			if cloudOwn(p.Addr()) {
				continue // the cloud's own CNI (Flannel, Calico) routes its segment
			}
			via := lanAddress(snap.Nodes[n], in.LocalNets, p.Addr().Is6())
			if via.IsValid() {
				plan.Kernel = append(plan.Kernel, KernelRoute{Dst: p, Via: via, Why: "same segment, same LAN: " + n, Node: n, Kind: plan.Origin[p]})
			} else {
				plan.Kernel = append(plan.Kernel, KernelRoute{Dst: p, Why: "same segment, other site: " + n, Node: n, Kind: plan.Origin[p]})
			}
		}
	}
	plan.Sources = hostSources(gateways, in.LocalAddrs, plan.Forward.Local)
	for i, r := range plan.Kernel {
		if r.Via.IsValid() {
			continue
		}
		for _, src := range plan.Sources {
			if src.Addr.Is4() == r.Dst.Addr().Is4() {
				plan.Kernel[i].Src = src.Addr
			}
		}
	}
	sort.SliceStable(plan.Kernel, func(i, j int) bool { return plan.Kernel[i].Dst.String() < plan.Kernel[j].Dst.String() })
	return plan
}

// lanAddress is n's InternalIP of the given family when it lies in one
// of our subnets.
func lanAddress(n *metadata.NodeInfo, local []netip.Prefix, v6 bool) netip.Addr {
	if n == nil {
		return netip.Addr{}
	}
	for _, a := range n.Addresses {
		if a.Type != "InternalIP" || a.Address.Is6() != v6 {
			continue
		}
		for _, l := range local {
			if l.Contains(a.Address) {
				return a.Address
			}
		}
	}
	return netip.Addr{}
}

// hostSources picks the node's own address per family: the gateway of its
// first pool (by name) that has one, put on the TUN; else an address the
// node already has inside its own prefixes (the cloud CNI's bridge holds
// one of its pod CIDR). The underlay address, the kernel's own choice,
// would be dropped as spoofed by every receiver. A prefix's first address
// is the last choice: Flannel's VXLAN device holds 10.244.n.0/32 from the
// moment flanneld runs, its bridge 10.244.n.1 only once the first pod is
// set up, and the bridge's is the address pods know as their gateway.
func hostSources(gateways map[string]netip.Addr, localAddrs []netip.Addr, local []netip.Prefix) []HostSource {
	var out []HostSource
	for _, v4 := range []bool{true, false} {
		var names []string
		for n, gw := range gateways {
			if gw.Is4() == v4 {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		if len(names) > 0 {
			out = append(out, HostSource{Addr: gateways[names[0]], OnTUN: true})
			continue
		}
		var pick, first netip.Addr // first: a prefix's first address, if nothing else
		for _, a := range localAddrs {
			if a.Is4() != v4 || !slices.ContainsFunc(local, func(p netip.Prefix) bool { return p.Contains(a) }) {
				continue
			}
			if !slices.ContainsFunc(local, func(p netip.Prefix) bool { return p.Masked().Addr() == a }) {
				pick = a
				break
			}
			if !first.IsValid() {
				first = a
			}
		}
		if !pick.IsValid() {
			pick = first
		}
		if pick.IsValid() {
			out = append(out, HostSource{Addr: pick})
		}
	}
	return out
}
