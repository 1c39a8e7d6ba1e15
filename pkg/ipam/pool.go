package ipam

import (
	"fmt"
	"math/big"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"go4.org/netipx"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// SpiderIPPool mirrors the fields of spiderpool.spidernet.io/v2beta1
// SpiderIPPool that allocation reads. Decoding ignores the rest.
type SpiderIPPool struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              IPPoolSpec   `json:"spec"`
	Status            IPPoolStatus `json:"status,omitempty"`
}

// IPPoolStatus is the part of SpiderIPPool.status the controller reads:
// SpiderPool's agents record each address they allocate there.
type IPPoolStatus struct {
	// AllocatedIPs is a JSON object keyed by address, as a string.
	AllocatedIPs *string `json:"allocatedIPs,omitempty"`
}

// IPPoolSpec is SpiderIPPool.spec (v2beta1).
type IPPoolSpec struct {
	IPVersion         *int64                `json:"ipVersion,omitempty"`
	Subnet            string                `json:"subnet"`
	IPs               []string              `json:"ips,omitempty"`
	ExcludeIPs        []string              `json:"excludeIPs,omitempty"`
	Gateway           *string               `json:"gateway,omitempty"`
	Vlan              *int64                `json:"vlan,omitempty"`
	Routes            []Route               `json:"routes,omitempty"`
	PodAffinity       *metav1.LabelSelector `json:"podAffinity,omitempty"`
	NamespaceAffinity *metav1.LabelSelector `json:"namespaceAffinity,omitempty"`
	NamespaceName     []string              `json:"namespaceName,omitempty"`
	NodeAffinity      *metav1.LabelSelector `json:"nodeAffinity,omitempty"`
	NodeName          []string              `json:"nodeName,omitempty"`
	Default           *bool                 `json:"default,omitempty"`
	Disable           *bool                 `json:"disable,omitempty"`
}

// Route is one entry of SpiderIPPool.spec.routes.
type Route struct {
	Dst string `json:"dst"`
	Gw  string `json:"gw"`
}

// Pool is a validated SpiderIPPool ready for allocation. Immutable.
type Pool struct {
	Name    string
	Version int // 4 or 6
	Subnet  netip.Prefix
	Gateway netip.Addr // invalid when the pool has none
	Vlan    int64
	Routes  []Route
	Default bool
	Disable bool

	nodeNames    []string
	nodeSelector labels.Selector // nil: no nodeAffinity
	nsSelector   labels.Selector
	nsNames      []string
	podSelector  labels.Selector

	blockOf string // AnnoBlockOf: the shared pool this block was cut from
	claims  Claims // AnnoBlocks: this shared pool's blocks

	ranges  []ipRange // allocatable, sorted, gateway and excludes removed
	routed  []ipRange // the node's addresses: ranges plus the gateway
	size    int64
	sizeBig string
}

type ipRange struct{ first, last netip.Addr }

// Size is the number of allocatable addresses.
func (p *Pool) Size() int64 { return p.size }

// Contains reports whether a is allocatable in p.
func (p *Pool) Contains(a netip.Addr) bool {
	i := sort.Search(len(p.ranges), func(i int) bool { return !p.ranges[i].last.Less(a) })
	return i < len(p.ranges) && !a.Less(p.ranges[i].first)
}

// next returns the first allocatable address after a (wrapping), or the
// first address when a is invalid; used with a free check to walk the pool.
func (p *Pool) next(a netip.Addr) netip.Addr {
	if len(p.ranges) == 0 {
		return netip.Addr{}
	}
	if !a.IsValid() {
		return p.ranges[0].first
	}
	for _, r := range p.ranges {
		if a.Less(r.first) {
			return r.first
		}
		if a.Less(r.last) {
			return a.Next()
		}
	}
	return p.ranges[0].first
}

// ParsePool validates a SpiderIPPool and computes its allocatable ranges.
// The error names the field and value at fault.
func ParsePool(sp *SpiderIPPool) (*Pool, error) {
	p := &Pool{Name: sp.Name}
	fail := func(field, format string, args ...any) (*Pool, error) {
		return nil, fmt.Errorf("SpiderIPPool %q: spec.%s: %s", sp.Name, field, fmt.Sprintf(format, args...))
	}
	if sp.Name == "" {
		return nil, fmt.Errorf("SpiderIPPool without metadata.name")
	}
	subnet, err := netip.ParsePrefix(sp.Spec.Subnet)
	if err != nil {
		return fail("subnet", "%q is not a CIDR", sp.Spec.Subnet)
	}
	p.Subnet = subnet.Masked()
	p.Version = 4
	if subnet.Addr().Is6() {
		p.Version = 6
	}
	if sp.Spec.IPVersion != nil && int(*sp.Spec.IPVersion) != p.Version {
		return fail("ipVersion", "%d does not match subnet %s", *sp.Spec.IPVersion, sp.Spec.Subnet)
	}
	if sp.Spec.Gateway != nil && *sp.Spec.Gateway != "" {
		gw, err := netip.ParseAddr(*sp.Spec.Gateway)
		if err != nil || !p.Subnet.Contains(gw) {
			return fail("gateway", "%q is not an address in %s", *sp.Spec.Gateway, p.Subnet)
		}
		p.Gateway = gw
	}
	if sp.Spec.Vlan != nil {
		p.Vlan = *sp.Spec.Vlan
	}
	for i, r := range sp.Spec.Routes {
		if _, err := netip.ParsePrefix(r.Dst); err != nil {
			return fail(fmt.Sprintf("routes[%d].dst", i), "%q is not a CIDR", r.Dst)
		}
		if _, err := netip.ParseAddr(r.Gw); err != nil {
			return fail(fmt.Sprintf("routes[%d].gw", i), "%q is not an address", r.Gw)
		}
	}
	p.Routes = sp.Spec.Routes
	p.blockOf = sp.Annotations[AnnoBlockOf]
	if c, ok := sp.Annotations[AnnoBlocks]; ok {
		claims, err := ParseClaims(c)
		if err != nil {
			return nil, fmt.Errorf("SpiderIPPool %q: metadata.annotations: %w", sp.Name, err)
		}
		p.claims = claims
	}
	p.Default = sp.Spec.Default != nil && *sp.Spec.Default
	p.Disable = sp.Spec.Disable != nil && *sp.Spec.Disable
	p.nodeNames = sp.Spec.NodeName
	p.nsNames = sp.Spec.NamespaceName
	for _, s := range []struct {
		field string
		in    *metav1.LabelSelector
		out   *labels.Selector
	}{{"nodeAffinity", sp.Spec.NodeAffinity, &p.nodeSelector}, {"namespaceAffinity", sp.Spec.NamespaceAffinity, &p.nsSelector}, {"podAffinity", sp.Spec.PodAffinity, &p.podSelector}} {
		if s.in == nil {
			continue
		}
		sel, err := metav1.LabelSelectorAsSelector(s.in)
		if err != nil {
			return fail(s.field, "%v", err)
		}
		*s.out = sel
	}

	include, err := parseRanges(sp.Spec.IPs, p.Subnet)
	if err != nil {
		return fail("ips", "%v", err)
	}
	if len(sp.Spec.IPs) == 0 {
		return fail("ips", "is empty: a pool needs addresses to allocate")
	}
	exclude, err := parseRanges(sp.Spec.ExcludeIPs, p.Subnet)
	if err != nil {
		return fail("excludeIPs", "%v", err)
	}
	routed := subtract(merge(include), merge(slices.Clone(exclude)))
	if p.Gateway.IsValid() {
		exclude = append(exclude, ipRange{p.Gateway, p.Gateway})
		routed = merge(append(routed, ipRange{p.Gateway, p.Gateway}))
	}
	p.ranges = subtract(merge(include), merge(exclude))
	p.routed = routed
	var total big.Int
	for _, r := range p.ranges {
		total.Add(&total, rangeLen(r))
	}
	p.sizeBig = total.String()
	if total.IsInt64() {
		p.size = total.Int64()
	} else {
		p.size = 1<<63 - 1
	}
	return p, nil
}

// parseRanges reads SpiderPool's range syntax: "10.0.0.5" or
// "10.0.0.10-10.0.0.20", every address inside subnet.
func parseRanges(specs []string, subnet netip.Prefix) ([]ipRange, error) {
	var out []ipRange
	for _, s := range specs {
		r, err := parseRange(s)
		if err != nil {
			return nil, err
		}
		if !subnet.Contains(r.first) || !subnet.Contains(r.last) {
			return nil, fmt.Errorf("%q is outside subnet %s", s, subnet)
		}
		out = append(out, r)
	}
	return out, nil
}

// parseRange reads one entry of SpiderPool's range syntax.
func parseRange(s string) (ipRange, error) {
	a, b, isRange := strings.Cut(strings.TrimSpace(s), "-")
	first, err := netip.ParseAddr(strings.TrimSpace(a))
	if err != nil {
		return ipRange{}, fmt.Errorf("%q is not an address or range", s)
	}
	last := first
	if isRange {
		if last, err = netip.ParseAddr(strings.TrimSpace(b)); err != nil {
			return ipRange{}, fmt.Errorf("%q is not an address or range", s)
		}
	}
	if last.Less(first) || first.Is4() != last.Is4() {
		return ipRange{}, fmt.Errorf("%q ends before it starts", s)
	}
	return ipRange{first, last}, nil
}

// String renders r in SpiderPool's range syntax.
func (r ipRange) String() string {
	if r.first == r.last {
		return r.first.String()
	}
	return r.first.String() + "-" + r.last.String()
}

func merge(rs []ipRange) []ipRange {
	if len(rs) == 0 {
		return nil
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].first.Less(rs[j].first) })
	out := []ipRange{rs[0]}
	for _, r := range rs[1:] {
		last := &out[len(out)-1]
		if !last.last.Next().Less(r.first) { // overlapping or adjacent
			if last.last.Less(r.last) {
				last.last = r.last
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// subtract removes every address of ex (merged) from in (merged).
func subtract(in, ex []ipRange) []ipRange {
	var out []ipRange
	for _, r := range in {
		cur := r
		ok := true
		for _, e := range ex {
			if e.last.Less(cur.first) || cur.last.Less(e.first) {
				continue
			}
			if cur.first.Less(e.first) {
				out = append(out, ipRange{cur.first, e.first.Prev()})
			}
			if e.last.Less(cur.last) {
				cur.first = e.last.Next()
			} else {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, cur)
		}
	}
	return out
}

func rangeLen(r ipRange) *big.Int {
	a, b := new(big.Int).SetBytes(r.first.AsSlice()), new(big.Int).SetBytes(r.last.AsSlice())
	return b.Sub(b, a).Add(b, big.NewInt(1))
}

// SizeString is Size as a decimal string, exact also for huge IPv6 pools.
func (p *Pool) SizeString() string { return p.sizeBig }

// PinnedNode is the one node the pool is pinned to by spec.nodeName, or
// "" for a shared pool (several nodes, nodeAffinity, or none).
func (p *Pool) PinnedNode() string {
	if len(p.nodeNames) == 1 {
		return p.nodeNames[0]
	}
	return ""
}

// Prefixes covers the pool's allocatable addresses and its gateway with
// the fewest CIDRs (routes to the pods it will hold and to the node's
// bridge address): a block is one prefix.
func (p *Pool) Prefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, r := range p.routed {
		out = append(out, rangePrefixes(r.first, r.last)...)
	}
	return out
}

// rangePrefixes splits [first, last] into the fewest CIDRs.
func rangePrefixes(first, last netip.Addr) []netip.Prefix {
	return netipx.IPRangeFrom(first, last).Prefixes()
}
