package p2p

import (
	"net"
	"net/netip"
	"sync"

	manet "github.com/multiformats/go-multiaddr/net"
)

var routableMu sync.Mutex

// SetRoutable makes libp2p treat the given underlay ranges as public.
//
// libp2p hole-punches only towards addresses it deems public, learns its
// own NAT mapping only from public observed addresses, and advertises a
// relay only on public ones; go-multiaddr's manet package decides, from
// the lists manet.Private4/6 and manet.Unroutable4/6. Real edge WANs often
// run between sites on private ranges, and test topologies use the
// benchmarking range 198.18.0.0/15, so the operator lists the ranges the
// sites reach each other on (modules.tunnel.routableCIDRs) and this
// removes them from those lists.
//
// The lists are process-wide: call SetRoutable before creating hosts.
// Calls accumulate (a range once made routable stays routable).
//
// Why not a per-host filter: go-libp2p (v0.51) asks manet.IsPublicAddr
// directly, with no hook, in the hole puncher (its own addresses to punch
// from, before holepunch.WithAddrFilter sees them), in identify (which
// observed addresses count) and in the basic host's address manager and
// autorelay (what is advertised). Those package lists are the one lever;
// an agent runs one host, so process-wide costs nothing in practice.
func SetRoutable(prefixes []netip.Prefix) {
	if len(prefixes) == 0 {
		return
	}
	routableMu.Lock()
	defer routableMu.Unlock()
	for _, list := range []*[]*net.IPNet{&manet.Private4, &manet.Private6, &manet.Unroutable4, &manet.Unroutable6} {
		var out []*net.IPNet
		for _, n := range *list {
			p, ok := netipPrefix(n)
			if !ok {
				out = append(out, n)
				continue
			}
			for _, rest := range subtract(p, prefixes) {
				out = append(out, &net.IPNet{IP: rest.Addr().AsSlice(), Mask: net.CIDRMask(rest.Bits(), rest.Addr().BitLen())})
			}
		}
		*list = out
	}
}

func netipPrefix(n *net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits == 32 {
		a = a.Unmap()
	}
	return netip.PrefixFrom(a, ones).Masked(), true
}

// subtract returns the parts of p that no prefix in minus covers, as the
// fewest prefixes found by halving p around each overlap.
func subtract(p netip.Prefix, minus []netip.Prefix) []netip.Prefix {
	for _, m := range minus {
		if m.Addr().Is4() != p.Addr().Is4() || !m.Overlaps(p) {
			continue
		}
		if m.Bits() <= p.Bits() { // m covers p
			return nil
		}
		// p strictly contains m: split p in two and subtract from each.
		lo := netip.PrefixFrom(p.Addr(), p.Bits()+1)
		hiAddr := p.Addr().AsSlice()
		bit := p.Bits()
		hiAddr[bit/8] |= 0x80 >> (bit % 8)
		hi, _ := netip.AddrFromSlice(hiAddr)
		return append(subtract(lo, minus), subtract(netip.PrefixFrom(hi, p.Bits()+1), minus)...)
	}
	return []netip.Prefix{p}
}
