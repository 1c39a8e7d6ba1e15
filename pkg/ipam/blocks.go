package ipam

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"go4.org/netipx"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// PoolGVR is SpiderPool's SpiderIPPool resource.
var PoolGVR = schema.GroupVersionResource{Group: "spiderpool.spidernet.io", Version: "v2beta1", Resource: "spiderippools"}

// Blocks: how a pool shared by several nodes is split so that each edge
// node can allocate from it offline without ever handing out an address
// another node (or SpiderPool's own agent in the cloud) hands out too.
//
// A shared pool is any pool not pinned to exactly one node: spec.nodeName
// listing several nodes, spec.nodeAffinity, or no pinning at all (the
// cluster default pool). `edgelink controller`, the one arbiter in the
// cloud, gives each edge node blocks of it: aligned CIDRs (a /26 by
// default) inside the node's segment. A claim is two writes to the
// kube-apiserver, in this order:
//
//  1. The shared pool's spec.excludeIPs gains the block's range and its
//     annotation edgelink.io/blocks records the claim (block -> node), in
//     one update carrying the pool's resourceVersion. SpiderPool's agent
//     records its allocations in the same object's status, so either
//     write sees the other or fails with a conflict; SpiderPool's webhook
//     also refuses to exclude an address already allocated.
//  2. A SpiderIPPool for the block, pinned to the node (spec.nodeName:
//     [node]), with the shared pool's subnet, routes and vlan, and its
//     own gateway (the block's first address, on the node's bridge). It
//     reaches the edge through the cloud channel like any pool.
//
// SpiderPool's webhook requires pools of one subnet to be disjoint after
// excludeIPs, which is why step 1 comes first; a release runs the other
// way (the block pool deleted, then, once it is gone, the claim and the
// exclusion removed with ExcludeWithout: the webhook merges adjacent
// excludeIPs entries). The annotation, not the
// block pools, is the record of claims: a controller restarted between
// the two steps re-creates missing block pools from it.
//
// At the edge a request for the shared pool is served from this node's
// blocks of it (pools whose edgelink.io/block-of annotation names it),
// never from the shared pool's other addresses.
const (
	// AnnoBlocks on a shared pool: JSON object, block CIDR -> node name.
	AnnoBlocks = "edgelink.io/blocks"
	// AnnoBlockOf on a block pool: the shared pool it was cut from.
	AnnoBlockOf = "edgelink.io/block-of"
	// LabelBlock marks block pools (value "true"), for selectors.
	LabelBlock = "edgelink.io/block"
	// AnnoSegment on a Node: the mesh segment (a cloudCIDR/edgeCIDR
	// entry) the node's blocks come from, for nodes without spec.podCIDR.
	AnnoSegment = "edgelink.io/segment"
)

// Claims is the AnnoBlocks record of a shared pool: block -> node.
type Claims map[netip.Prefix]string

// ParseClaims reads the AnnoBlocks annotation of a pool ("" is none).
func ParseClaims(anno string) (Claims, error) {
	out := Claims{}
	if strings.TrimSpace(anno) == "" {
		return out, nil
	}
	var raw map[string]string
	if err := json.Unmarshal([]byte(anno), &raw); err != nil {
		return nil, fmt.Errorf("annotation %s: %w", AnnoBlocks, err)
	}
	for k, node := range raw {
		p, err := netip.ParsePrefix(k)
		if err != nil || p != p.Masked() {
			return nil, fmt.Errorf("annotation %s: %q is not a block CIDR", AnnoBlocks, k)
		}
		if node == "" {
			return nil, fmt.Errorf("annotation %s: block %s has no node", AnnoBlocks, k)
		}
		out[p] = node
	}
	return out, nil
}

// String renders the annotation value (sorted keys: stable across writes).
func (c Claims) String() string {
	raw := make(map[string]string, len(c))
	for p, n := range c {
		raw[p.String()] = n
	}
	b, _ := json.Marshal(raw) // map keys are sorted by encoding/json
	return string(b)
}

// Of lists the blocks of node, sorted.
func (c Claims) Of(node string) []netip.Prefix {
	var out []netip.Prefix
	for p, n := range c {
		if n == node {
			out = append(out, p)
		}
	}
	sortPrefixes(out)
	return out
}

// Sorted lists every block, sorted.
func (c Claims) Sorted() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(c))
	for p := range c {
		out = append(out, p)
	}
	sortPrefixes(out)
	return out
}

func sortPrefixes(ps []netip.Prefix) {
	sort.Slice(ps, func(i, j int) bool {
		if c := ps[i].Addr().Compare(ps[j].Addr()); c != 0 {
			return c < 0
		}
		return ps[i].Bits() < ps[j].Bits()
	})
}

// RangeString renders a block in SpiderPool's range syntax
// ("10.244.5.0-10.244.5.63"), as excludeIPs and ips hold it.
func RangeString(p netip.Prefix) string {
	r := netipx.RangeOfPrefix(p)
	return r.From().String() + "-" + r.To().String()
}

// RangeSet is the set of addresses entries in SpiderPool's range syntax
// ("10.0.0.5", "10.0.0.10-10.0.0.20") cover, and the entries that do not
// parse.
func RangeSet(entries []string) (set *netipx.IPSet, bad []string) {
	var b netipx.IPSetBuilder
	for _, e := range entries {
		r, err := parseRange(e)
		if err != nil {
			bad = append(bad, e)
			continue
		}
		b.AddRange(netipx.IPRangeFrom(r.first, r.last))
	}
	set, _ = b.IPSet() // the builder only reports misuse
	return set, bad
}

// ExcludesBlock reports whether excludeIPs entries excl cover every
// address of block (in one entry or several: SpiderPool's webhook merges
// adjacent entries, so two claimed blocks may be one range).
func ExcludesBlock(excl []string, block netip.Prefix) bool {
	set, _ := RangeSet(excl)
	return set.ContainsPrefix(block.Masked())
}

// ExcludeWithout is excludeIPs entries excl with block's addresses taken
// out: what releasing a claim writes. Entries that do not touch the block
// stay as they are, in their order; one that does is replaced by what is
// left of it (nothing, or the part before and the part after). Entries
// that do not parse are kept.
func ExcludeWithout(excl []string, block netip.Prefix) []string {
	bf, bl := block.Masked().Addr(), netipx.PrefixLastIP(block)
	out := make([]string, 0, len(excl))
	for _, e := range excl {
		r, err := parseRange(e)
		if err != nil || r.first.Is4() != bf.Is4() || r.last.Less(bf) || bl.Less(r.first) {
			out = append(out, e)
			continue
		}
		if r.first.Less(bf) {
			out = append(out, ipRange{r.first, bf.Prev()}.String())
		}
		if bl.Less(r.last) {
			out = append(out, ipRange{bl.Next(), r.last}.String())
		}
	}
	return out
}

// BlockName is the SpiderIPPool name of block p of pool parent claimed
// for the node whose Node object has UID nodeUID:
// "<parent>-<address with dashes>-<bits>-<8 hex digits of the UID's
// SHA-256>", e.g. default-v4-10-244-5-0-26-1a2b3c4d. The same claim
// always has the same name (a create that is repeated finds its pool);
// a block claimed again for a node that left and joined again (a new Node
// object) gets a new name, so a deletion of the old pool that KubeEdge
// still delivers to the edge never removes the new one.
func BlockName(parent string, p netip.Prefix, nodeUID string) string {
	addr := strings.NewReplacer(".", "-", ":", "-").Replace(p.Addr().String())
	sum := sha256.Sum256([]byte(nodeUID))
	name := fmt.Sprintf("%s-%s-%d-%s", parent, strings.Trim(addr, "-"), p.Bits(), hex.EncodeToString(sum[:4]))
	if len(name) > 253 { // a DNS subdomain: keep the block part whole
		suffix := name[len(parent):]
		name = parent[:253-len(suffix)] + suffix
	}
	return name
}

// BlockGateway is the block's gateway: its first address. The CNI plugin
// puts it on the node's bridge; the agent uses it as the node's own
// address towards other segments.
func BlockGateway(p netip.Prefix) netip.Addr { return p.Masked().Addr() }

// Shared reports whether p is shared between nodes: not pinned to exactly
// one node by spec.nodeName. Shared pools are allocated from at the edge
// only through blocks.
func (p *Pool) Shared() bool { return len(p.nodeNames) != 1 }

// MayServe reports whether a shared pool serves node (with these labels),
// as SpiderPool's node affinity decides: listed in spec.nodeName, matched
// by spec.nodeAffinity, or no node restriction at all.
func (p *Pool) MayServe(node string, nodeLabels map[string]string) bool {
	switch {
	case len(p.nodeNames) > 0:
		return slices.Contains(p.nodeNames, node)
	case p.nodeSelector != nil:
		return p.nodeSelector.Matches(labels.Set(nodeLabels))
	}
	return true
}

// BlockOf is the shared pool a block pool was cut from ("" for pools that
// are not blocks).
func (p *Pool) BlockOf() string { return p.blockOf }

// Claims is the pool's AnnoBlocks record (nil for a pool without blocks;
// a malformed record makes the pool invalid).
func (p *Pool) Claims() Claims { return p.claims }

// CarveBlock picks the first aligned /bits block inside within that lies
// wholly in pool p's allocatable addresses and overlaps neither an
// existing block nor an allocated address. The subnet's first address
// and, for IPv4, its broadcast address are never part of a block. ok is
// false when no such block is left.
func CarveBlock(p *Pool, within netip.Prefix, bits int, claimed []netip.Prefix, allocated []netip.Addr) (netip.Prefix, bool) {
	if bits < within.Bits() {
		bits = within.Bits()
	}
	if within.Addr().BitLen() != p.Subnet.Addr().BitLen() || bits > within.Addr().BitLen() {
		return netip.Prefix{}, false
	}
	var b netipx.IPSetBuilder
	for _, r := range p.ranges {
		b.AddRange(netipx.IPRangeFrom(r.first, r.last))
	}
	// Claimed blocks are in excludeIPs already (not in p.ranges); the
	// explicit removal covers a claim recorded before excludeIPs caught up.
	for _, c := range claimed {
		b.RemovePrefix(c)
	}
	for _, a := range allocated {
		b.Remove(a)
	}
	b.Remove(p.Subnet.Masked().Addr())
	if p.Subnet.Addr().Is4() {
		b.Remove(netipx.PrefixLastIP(p.Subnet))
	}
	var in netipx.IPSetBuilder
	in.AddPrefix(within.Masked())
	inSet, _ := in.IPSet()
	b.Intersect(inSet)
	free, err := b.IPSet()
	if err != nil {
		return netip.Prefix{}, false
	}
	// Each free range is contiguous: its first aligned block either fits
	// or runs past the range's end, and so does every later one.
	for _, r := range free.Ranges() {
		cand := netip.PrefixFrom(r.From(), bits).Masked()
		if cand.Addr().Less(r.From()) {
			next := netipx.PrefixLastIP(cand).Next()
			if !next.IsValid() {
				continue
			}
			cand = netip.PrefixFrom(next, bits)
		}
		if free.ContainsPrefix(cand) {
			return cand, true
		}
	}
	return netip.Prefix{}, false
}

// SharedWithoutBlocks lists, sorted, the enabled shared pools that may
// serve this node and of which it holds no block: a request naming one
// fails until `edgelink controller` gives the node a block.
func (v *View) SharedWithoutBlocks() []string {
	var out []string
	for _, name := range v.PoolNames() {
		p := v.Pools[name]
		if p.Shared() && p.blockOf == "" && !p.Disable && p.MayServe(v.NodeName, v.NodeLabels) && len(v.blocks[name]) == 0 {
			out = append(out, name)
		}
	}
	return out
}
