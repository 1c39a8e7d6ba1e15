package dataplane

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"github.com/gaissmai/bart"
)

// Plan is what the data plane routes: which prefixes are this node's own
// pods, and which belong to which remote node. The routing module builds
// it from the metadata picture and the config.
type Plan struct {
	Local  []netip.Prefix            // this node's pods (pod CIDRs and pod /32s)
	Remote map[string][]netip.Prefix // node name -> its pods' prefixes
	// Hosts are remote nodes' own addresses (their InternalIPs): the
	// sources their kernels send ICMP errors from (fragmentation needed,
	// unreachable) about our pods' packets. Only ICMP errors from them
	// are taken besides packets from the node's prefixes.
	Hosts map[string][]netip.Addr
}

// String renders the plan as sorted text (golden tests, `edgelink routes`).
func (p *Plan) String() string {
	var b strings.Builder
	local := slices.Clone(p.Local)
	sort.Slice(local, func(i, j int) bool { return local[i].String() < local[j].String() })
	for _, l := range local {
		fmt.Fprintf(&b, "local  %s\n", l)
	}
	nodes := make([]string, 0, len(p.Remote))
	for n := range p.Remote {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		ps := slices.Clone(p.Remote[n])
		sort.Slice(ps, func(i, j int) bool { return ps[i].String() < ps[j].String() })
		for _, pfx := range ps {
			fmt.Fprintf(&b, "remote %s via %s\n", pfx, n)
		}
	}
	return b.String()
}

// dest is where a prefix leads: this node (link nil) or a peer's link.
type dest struct {
	link *link
}

// table is an immutable longest-prefix-match table; the forwarder swaps
// whole tables atomically, so lookups take no lock.
type table struct {
	t     *bart.Table[dest]
	hosts map[netip.Addr]*link // Plan.Hosts: ICMP error sources
}

func (t *table) lookup(a netip.Addr) (dest, bool) { return t.t.Lookup(a) }

// Fprint writes the table, for debugging.
func (t *table) Fprint(w io.Writer) error { return t.t.Fprint(w) }
