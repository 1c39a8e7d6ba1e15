package controller

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/edgelink/edgelink/pkg/ipam"
)

// Config is what the decisions depend on, parsed.
type Config struct {
	Cloud, Edge []netip.Prefix // the mesh segments
	EdgeLabel   string         // nodes with this label get blocks
	Bits4       int            // IPv4 block prefix length
	Bits6       int            // IPv6 block prefix length
	MinFree     int            // free addresses each node keeps per pool
}

// Node is what the decisions read of a Node.
type Node struct {
	Name        string
	UID         string // names its block pools (ipam.BlockName)
	Labels      map[string]string
	Annotations map[string]string
	PodCIDRs    []string
}

// Pod is what the decisions read of a Pod.
type Pod struct {
	Namespace, Name string
	Node            string
	IPs             []netip.Addr
	HostNetwork     bool
	Terminal        bool // Succeeded or Failed: its address is free
}

// State is the cluster as the controller sees it.
type State struct {
	Pools map[string]*ipam.SpiderIPPool
	Nodes map[string]*Node
	Pods  []Pod
}

// ActionKind says what an Action does.
type ActionKind string

const (
	// Claim records Block for Node in Pool (excludeIPs + annotation), then
	// creates the block's pool.
	Claim ActionKind = "claim"
	// CreateBlock creates the pool of a block that Pool records but that
	// does not exist (a controller stopped between the two writes).
	CreateBlock ActionKind = "create-block"
	// DeleteBlock deletes block pool Name (no pod of its node uses it).
	DeleteBlock ActionKind = "delete-block"
	// Release removes Block from Pool's claims and excludeIPs.
	Release ActionKind = "release"
)

// Action is one change to make in the kube-apiserver.
type Action struct {
	Kind  ActionKind
	Pool  string // the shared pool
	Name  string // the block pool (Claim, CreateBlock: to create)
	Block netip.Prefix
	Node  string
	// Have is how many blocks of Pool Node had when Claim was decided:
	// a claim made on a stale cache is not repeated.
	Have int
	Why  string
}

func (a Action) String() string {
	s := fmt.Sprintf("%s pool=%s", a.Kind, a.Pool)
	if a.Block.IsValid() {
		s += " block=" + a.Block.String()
	}
	if a.Name != "" {
		s += " name=" + a.Name
	}
	if a.Node != "" {
		s += " node=" + a.Node
	}
	return s + " (" + a.Why + ")"
}

// Problem is something the controller cannot decide for, said to the
// operator (logs, events).
type Problem struct {
	Node, Pool, Detail string
}

func (p Problem) String() string {
	return fmt.Sprintf("node %s, pool %s: %s", p.Node, p.Pool, p.Detail)
}

// Decide compares the cluster with what it should be and returns the
// changes to make, in order, and the problems found. It is pure: the
// controller applies the actions, re-checking each against a fresh read.
//
// Every edge node that a shared pool may serve keeps at least MinFree
// free addresses in its blocks of that pool, counting as used each
// non-terminal pod on the node whose address is in the blocks and each
// pod there still without an address. Blocks come from the node's segment.
// A block whose node is gone (or no longer served by the pool) is
// released once no pod holds an address in it and no pod is bound to the
// node: leases at the edge outlive the Node object only through pods.
//
// Block pools are matched to claims by what they are (shared pool, block,
// node), not by name; a new one is named for the Node object it is made
// for (ipam.BlockName). A block pool that no claim accounts for (its
// claim released, or made again for another node) is deleted once no pod
// of the node it is pinned to holds an address in it; until then its
// block is not claimed again.
func Decide(cfg Config, st State) ([]Action, []Problem) {
	var acts []Action
	var probs []Problem
	type blockPool struct {
		name     string
		block    netip.Prefix // invalid: not one block (edited by hand)
		node     string
		deleting bool // deleted, waiting on a finalizer (SpiderPool's)
	}
	blockPools := map[string][]blockPool{} // parent -> its block pools, by name
	for _, name := range sortedKeys(st.Pools) {
		sp := st.Pools[name]
		parent := sp.Annotations[ipam.AnnoBlockOf]
		if parent == "" {
			continue
		}
		bp := blockPool{name: name, deleting: sp.DeletionTimestamp != nil}
		if p, err := ipam.ParsePool(sp); err == nil {
			if pfx := p.Prefixes(); len(pfx) == 1 {
				bp.block = pfx[0]
			}
			bp.node = p.PinnedNode()
		}
		blockPools[parent] = append(blockPools[parent], bp)
	}
	// usedOn: a pod of node ("": of any node) holds an address in block.
	usedOn := func(node string, block netip.Prefix) bool {
		return slices.ContainsFunc(st.Pods, func(p Pod) bool {
			return !p.Terminal && (node == "" || p.Node == node) && slices.ContainsFunc(p.IPs, block.Contains)
		})
	}
	// accounted: block pool bp is the pool of a claim (whatever its name:
	// a Node deleted and made again before its block was released keeps
	// the block and its pool).
	accounted := func(claims ipam.Claims, bp blockPool) bool {
		node, ok := claims[bp.block]
		return ok && bp.block.IsValid() && node == bp.node
	}
	bound := func(node string) bool {
		return slices.ContainsFunc(st.Pods, func(p Pod) bool { return p.Node == node && !p.Terminal })
	}

	for _, name := range sortedKeys(st.Pools) {
		sp := st.Pools[name]
		if sp.Annotations[ipam.AnnoBlockOf] != "" {
			continue
		}
		pool, err := ipam.ParsePool(sp)
		if err != nil {
			probs = append(probs, Problem{Pool: name, Detail: err.Error()})
			continue
		}
		if !pool.Shared() {
			continue
		}
		claims := pool.Claims()
		if claims == nil {
			claims = ipam.Claims{}
		}
		claimed := claims.Sorted()

		// Existing claims: keep (and complete) or release.
		for _, b := range claimed {
			node := claims[b]
			n := st.Nodes[node]
			keep := n != nil && isEdge(cfg, n) && pool.MayServe(node, n.Labels)
			var mine []blockPool // the claim's block pools
			for _, bp := range blockPools[name] {
				if bp.block == b && accounted(claims, bp) {
					mine = append(mine, bp)
				}
			}
			if keep {
				if len(mine) == 0 {
					acts = append(acts, Action{Kind: CreateBlock, Pool: name, Name: ipam.BlockName(name, b, n.UID), Block: b, Node: node, Why: "claimed, pool missing"})
				}
				continue
			}
			if usedOn("", b) || (n == nil && bound(node)) {
				continue // released once nothing uses it
			}
			// The block pool goes first; the claim only once it is gone
			// (SpiderPool's finalizer holds a deleted pool until its
			// controller lets go, and its webhook refuses a shared pool
			// that overlaps a pool still there).
			if len(mine) > 0 {
				for _, bp := range mine {
					if !bp.deleting {
						acts = append(acts, Action{Kind: DeleteBlock, Pool: name, Name: bp.name, Block: b, Node: node, Why: "node gone or no longer served"})
					}
				}
				continue
			}
			acts = append(acts, Action{Kind: Release, Pool: name, Block: b, Node: node, Why: "node gone or no longer served, block unused, its pool gone"})
		}
		if pool.Disable {
			continue
		}

		// Each served edge node keeps MinFree free addresses. Blocks of
		// block pools still waiting to be deleted are not free, except to
		// the node they are pinned to: a shared pool deleted and made
		// again leaves its predecessor's block pools, and claiming such a
		// block again for its node takes its pool over (updated in place,
		// so the edge never sees it go away).
		planned := slices.Clone(claimed)
		var leftovers []blockPool
		for _, bp := range blockPools[name] {
			if bp.block.IsValid() && !accounted(claims, bp) {
				planned = append(planned, bp.block)
				leftovers = append(leftovers, bp)
			}
		}
		takeOver := func(node string, seg netip.Prefix) (blockPool, bool) {
			for i, lo := range leftovers {
				if lo.node != node || seg.Bits() > lo.block.Bits() || !seg.Contains(lo.block.Addr()) {
					continue
				}
				others := slices.DeleteFunc(slices.Clone(planned), func(b netip.Prefix) bool { return b == lo.block })
				if got, ok := ipam.CarveBlock(pool, lo.block, lo.block.Bits(), others, allocatedOf(sp)); ok && got == lo.block {
					leftovers = slices.Delete(leftovers, i, i+1)
					return lo, true
				}
			}
			return blockPool{}, false
		}
		for _, nodeName := range sortedKeys(st.Nodes) {
			n := st.Nodes[nodeName]
			if !isEdge(cfg, n) || !pool.MayServe(nodeName, n.Labels) {
				continue
			}
			seg, why := segmentOf(cfg, n, pool.Version)
			if !seg.IsValid() {
				probs = append(probs, Problem{Node: nodeName, Pool: name, Detail: why})
				continue
			}
			mine := claims.Of(nodeName)
			capacity := 0
			for _, b := range mine {
				capacity += blockAddrs(b) - 1 // less the gateway
			}
			used := 0
			for _, p := range st.Pods {
				if p.Node != nodeName || p.HostNetwork || p.Terminal {
					continue
				}
				if len(p.IPs) == 0 || slices.ContainsFunc(p.IPs, func(a netip.Addr) bool {
					return slices.ContainsFunc(mine, func(b netip.Prefix) bool { return b.Contains(a) })
				}) {
					used++
				}
			}
			if capacity-used >= cfg.MinFree {
				continue
			}
			free := fmt.Sprintf("%d of %d addresses free, minFree %d", capacity-used, capacity, cfg.MinFree)
			if lo, ok := takeOver(nodeName, seg); ok {
				acts = append(acts, Action{Kind: Claim, Pool: name, Name: lo.name, Block: lo.block, Node: nodeName, Have: len(mine),
					Why: free + "; taking a leftover block pool over"})
				continue
			}
			bits := cfg.Bits4
			if pool.Version == 6 {
				bits = cfg.Bits6
			}
			b, ok := ipam.CarveBlock(pool, seg, bits, planned, allocatedOf(sp))
			if !ok {
				probs = append(probs, Problem{Node: nodeName, Pool: name, Detail: fmt.Sprintf(
					"needs another block (%d of %d addresses free, minFree %d) but the pool has no free /%d left in segment %s",
					capacity-used, capacity, cfg.MinFree, bits, seg)})
				continue
			}
			planned = append(planned, b)
			acts = append(acts, Action{Kind: Claim, Pool: name, Name: ipam.BlockName(name, b, n.UID), Block: b, Node: nodeName, Have: len(mine), Why: free})
		}
	}

	// Block pools no claim of their shared pool accounts for (it was
	// deleted, the claim released, or made again for another node):
	// delete once no pod of their node uses them.
	for _, parent := range sortedKeys(blockPools) {
		var claims ipam.Claims
		if sp, ok := st.Pools[parent]; ok {
			claims, _ = ipam.ParseClaims(sp.Annotations[ipam.AnnoBlocks])
		}
		for _, bp := range blockPools[parent] {
			if accounted(claims, bp) || bp.deleting || slices.ContainsFunc(acts, func(a Action) bool {
				return (a.Kind == DeleteBlock || a.Kind == Claim) && a.Name == bp.name
			}) {
				continue
			}
			if bp.block.IsValid() && usedOn(bp.node, bp.block) {
				continue
			}
			acts = append(acts, Action{Kind: DeleteBlock, Pool: parent, Name: bp.name, Block: bp.block, Node: bp.node, Why: "not a claim of its shared pool"})
		}
	}
	return acts, probs
}

func isEdge(cfg Config, n *Node) bool {
	_, ok := n.Labels[cfg.EdgeLabel]
	return ok
}

// segmentOf is the mesh segment (of IP version v) a node's blocks come
// from: the one its edgelink.io/segment annotation names (or lies in),
// else the one holding its spec.podCIDRs.
func segmentOf(cfg Config, n *Node, v int) (netip.Prefix, string) {
	segs := append(slices.Clone(cfg.Edge), cfg.Cloud...)
	find := func(p netip.Prefix) netip.Prefix {
		for _, s := range segs {
			if s.Bits() <= p.Bits() && s.Contains(p.Addr()) {
				return s
			}
		}
		return netip.Prefix{}
	}
	if anno := strings.TrimSpace(n.Annotations[ipam.AnnoSegment]); anno != "" {
		for _, f := range strings.Split(anno, ",") {
			p, err := netip.ParsePrefix(strings.TrimSpace(f))
			if err != nil {
				return netip.Prefix{}, fmt.Sprintf("annotation %s: %q is not a CIDR", ipam.AnnoSegment, f)
			}
			if (p.Addr().Is4() && v == 4) || (p.Addr().Is6() && v == 6) {
				if s := find(p.Masked()); s.IsValid() {
					return s, ""
				}
				return netip.Prefix{}, fmt.Sprintf("annotation %s: %s is in no cloudCIDR/edgeCIDR entry %v", ipam.AnnoSegment, p, segs)
			}
		}
	}
	for _, c := range n.PodCIDRs {
		p, err := netip.ParsePrefix(c)
		if err != nil || (p.Addr().Is4() != (v == 4)) {
			continue
		}
		if s := find(p.Masked()); s.IsValid() {
			return s, ""
		}
		return netip.Prefix{}, fmt.Sprintf("spec.podCIDR %s is in no cloudCIDR/edgeCIDR entry %v; set annotation %s", p, segs, ipam.AnnoSegment)
	}
	return netip.Prefix{}, fmt.Sprintf("no segment: the node has no IPv%d spec.podCIDR; set annotation %s to its cloudCIDR/edgeCIDR entry", v, ipam.AnnoSegment)
}

// allocatedOf reads the addresses SpiderPool's agents allocated from a
// pool (status.allocatedIPs: a JSON string keyed by address).
func allocatedOf(sp *ipam.SpiderIPPool) []netip.Addr {
	if sp.Status.AllocatedIPs == nil || *sp.Status.AllocatedIPs == "" {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal([]byte(*sp.Status.AllocatedIPs), &m) != nil {
		return nil
	}
	out := make([]netip.Addr, 0, len(m))
	for k := range m {
		if a, err := netip.ParseAddr(k); err == nil {
			out = append(out, a)
		}
	}
	return out
}

func blockAddrs(b netip.Prefix) int {
	host := b.Addr().BitLen() - b.Bits()
	if host >= 30 {
		return 1 << 30
	}
	return 1 << host
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
