package edgecni

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"go4.org/netipx"
	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// RouteProtocol marks the routes this module programs (ip route shows
// "proto 77"), so that a restart adopts them and nothing else is touched.
const RouteProtocol netlink.RouteProtocol = 77

// iptables chains this module owns, each jumped to from the top of its
// built-in chain:
//
//	nat    POSTROUTING -> EDGELINK-POSTROUTING: -s MESH -d MESH -j ACCEPT
//	       (pod-to-pod traffic between mesh CIDRs is never masqueraded,
//	       whatever Flannel or Calico add after us)
//	mangle FORWARD     -> EDGELINK-MSS: TCP SYNs in or out of the TUN get
//	       their MSS clamped to the path MTU
//	filter FORWARD     -> EDGELINK-FORWARD: accept traffic in or out of
//	       the TUN (hosts whose FORWARD policy is DROP)
const (
	chainNAT     = "EDGELINK-POSTROUTING"
	chainMSS     = "EDGELINK-MSS"
	chainForward = "EDGELINK-FORWARD"
)

type chainSpec struct {
	table, builtin, chain string
	rules                 [][]string
}

func (k *kernel) chains(mesh []netip.Prefix, v6 bool) []chainSpec {
	var nat [][]string
	for _, s := range mesh {
		for _, d := range mesh {
			if s.Addr().Is6() == v6 && d.Addr().Is6() == v6 {
				nat = append(nat, []string{"-s", s.String(), "-d", d.String(), "-m", "comment", "--comment", "edgelink: no SNAT between pods", "-j", "ACCEPT"})
			}
		}
	}
	mss := func(dir string) []string {
		return []string{dir, k.tun, "-p", "tcp", "-m", "tcp", "--tcp-flags", "SYN,RST", "SYN", "-m", "comment", "--comment", "edgelink: clamp MSS", "-j", "TCPMSS", "--clamp-mss-to-pmtu"}
	}
	fwd := func(dir string) []string {
		return []string{dir, k.tun, "-m", "comment", "--comment", "edgelink: mesh traffic", "-j", "ACCEPT"}
	}
	return []chainSpec{
		{"nat", "POSTROUTING", chainNAT, nat},
		{"mangle", "FORWARD", chainMSS, [][]string{mss("-o"), mss("-i")}},
		{"filter", "FORWARD", chainForward, [][]string{fwd("-o"), fwd("-i")}},
	}
}

// kernel programs routes and iptables for one TUN device.
type kernel struct {
	tun string
}

// reconcileRoutes makes the main table hold exactly want among routes of
// RouteProtocol.
func (k *kernel) reconcileRoutes(want []KernelRoute) error {
	link, err := netlink.LinkByName(k.tun)
	if err != nil {
		return fmt.Errorf("TUN %s: %w", k.tun, err)
	}
	routes, err := ourRoutes()
	errs := []error{err}
	have := routesByDst(routes)
	wanted := map[string]bool{}
	for _, w := range want {
		r := routeFor(w, link.Attrs().Index)
		wanted[r.Dst.String()] = true
		if h, ok := have[r.Dst.String()]; ok && sameRoute(h, r) {
			continue
		}
		if err := netlink.RouteReplace(&r); err != nil {
			errs = append(errs, fmt.Errorf("route %s: %w", w, err))
		}
	}
	for dst, r := range have {
		if !wanted[dst] {
			if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
				errs = append(errs, fmt.Errorf("remove route %s: %w", dst, err))
			}
		}
	}
	return errors.Join(errs...)
}

// reconcileIPTables makes our chains hold exactly their rules, jumped to
// first from their built-in chains, for each IP family in use.
func (k *kernel) reconcileIPTables(mesh []netip.Prefix) error {
	var errs []error
	for _, v6 := range []bool{false, true} {
		if v6 && !slices.ContainsFunc(mesh, func(p netip.Prefix) bool { return p.Addr().Is6() }) {
			continue
		}
		ipt, err := newIPT(v6)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, c := range k.chains(mesh, v6) {
			if err := ensureChain(ipt, c); err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", c.table, c.chain, err))
			}
		}
	}
	return errors.Join(errs...)
}

func newIPT(v6 bool) (*iptables.IPTables, error) {
	proto := iptables.ProtocolIPv4
	if v6 {
		proto = iptables.ProtocolIPv6
	}
	return iptables.New(iptables.IPFamily(proto), iptables.Timeout(5))
}

func ensureChain(ipt *iptables.IPTables, c chainSpec) error {
	exists, err := ipt.ChainExists(c.table, c.chain)
	if err != nil {
		return err
	}
	if !exists {
		if err := ipt.NewChain(c.table, c.chain); err != nil {
			return err
		}
	}
	current, err := ipt.List(c.table, c.chain)
	if err != nil {
		return err
	}
	ok := len(current) == len(c.rules)+1 // the -N line
	for _, r := range c.rules {
		if !ok {
			break
		}
		ok, err = ipt.Exists(c.table, c.chain, r...)
		if err != nil {
			return err
		}
	}
	if !ok {
		if err := ipt.ClearChain(c.table, c.chain); err != nil {
			return err
		}
		for _, r := range c.rules {
			if err := ipt.Append(c.table, c.chain, r...); err != nil {
				return err
			}
		}
	}
	jump := []string{"-m", "comment", "--comment", "edgelink", "-j", c.chain}
	builtin, err := ipt.List(c.table, c.builtin)
	if err != nil {
		return err
	}
	if len(builtin) < 2 || !strings.Contains(builtin[1], "-j "+c.chain) {
		// Not first (or missing): (re)insert at the top.
		for {
			if err := ipt.Delete(c.table, c.builtin, jump...); err != nil {
				break
			}
		}
		return ipt.Insert(c.table, c.builtin, 1, jump...)
	}
	return nil
}

// removeIPTables deletes our jumps and chains (both families).
func (k *kernel) removeIPTables() error {
	var errs []error
	for _, v6 := range []bool{false, true} {
		ipt, err := newIPT(v6)
		if err != nil {
			continue // no ip6tables: nothing of ours there
		}
		for _, c := range k.chains(nil, v6) {
			exists, err := ipt.ChainExists(c.table, c.chain)
			if err != nil || !exists {
				continue
			}
			for ipt.Delete(c.table, c.builtin, "-m", "comment", "--comment", "edgelink", "-j", c.chain) == nil {
			}
			if err := ipt.ClearAndDeleteChain(c.table, c.chain); err != nil {
				errs = append(errs, fmt.Errorf("%s %s: %w", c.table, c.chain, err))
			}
		}
	}
	return errors.Join(errs...)
}

// ourRoutes lists the routes of RouteProtocol in the main table, both
// families (what it could list, and why it could not list the rest).
func ourRoutes() ([]netlink.Route, error) {
	var out []netlink.Route
	var errs []error
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := netlink.RouteListFiltered(fam, &netlink.Route{Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN},
			netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, routes...)
	}
	return out, errors.Join(errs...)
}

// routesByDst indexes routes by destination.
func routesByDst(routes []netlink.Route) map[string]netlink.Route {
	out := map[string]netlink.Route{}
	for _, r := range routes {
		if r.Dst != nil {
			out[r.Dst.String()] = r
		}
	}
	return out
}

// routeFor is the main-table route that carries w: via its gateway, or
// into the TUN (link index tun).
func routeFor(w KernelRoute, tun int) netlink.Route {
	r := netlink.Route{Dst: netipx.PrefixIPNet(w.Dst), Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN}
	if w.Via.IsValid() {
		r.Gw = w.Via.AsSlice()
	} else {
		r.LinkIndex = tun
		if w.Src.IsValid() {
			r.Src = w.Src.AsSlice()
		}
	}
	return r
}

// sameRoute reports whether the kernel's route h is what want asks for:
// the same gateway, or, without one, the same device.
func sameRoute(h, want netlink.Route) bool {
	if want.Gw != nil {
		return h.Gw.Equal(want.Gw)
	}
	return h.Gw == nil && h.LinkIndex == want.LinkIndex && (h.Src == nil) == (want.Src == nil) && (want.Src == nil || h.Src.Equal(want.Src))
}

// reconcileAddrs makes the TUN hold exactly the host sources that belong
// on it (one address per family, as a /32 or /128), before the routes
// that name them as their source. Every global address on the TUN is ours.
func (k *kernel) reconcileAddrs(sources []HostSource) error {
	link, err := netlink.LinkByName(k.tun)
	if err != nil {
		return fmt.Errorf("TUN %s: %w", k.tun, err)
	}
	want := map[netip.Addr]bool{}
	var errs []error
	for _, src := range sources {
		if !src.OnTUN {
			continue
		}
		want[src.Addr] = true
		a := &netlink.Addr{IPNet: netipx.PrefixIPNet(netip.PrefixFrom(src.Addr, src.Addr.BitLen()))}
		if src.Addr.Is6() {
			a.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrReplace(link, a); err != nil {
			errs = append(errs, fmt.Errorf("address %s on %s: %w", src.Addr, k.tun, err))
		}
	}
	have, err := netlink.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, a := range have {
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok || a.Scope != int(netlink.SCOPE_UNIVERSE) || want[ip.Unmap()] {
			continue
		}
		if err := netlink.AddrDel(link, &a); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
			errs = append(errs, fmt.Errorf("remove address %s from %s: %w", ip, k.tun, err))
		}
	}
	return errors.Join(errs...)
}

// removeRoutes deletes every route of ours (also after a crash: they
// outlive the TUN only when they use a gateway).
func removeRoutes() error {
	routes, err := ourRoutes()
	errs := []error{err}
	for _, r := range routes {
		if err := netlink.RouteDel(&r); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// setSysctls enables forwarding and loose reverse-path filtering on the
// TUN (replies from remote pods arrive on it, while the route back to a
// remote segment may be another one under strict filtering).
func setSysctls(tun string, v6 bool) error {
	set := map[string]string{
		"/proc/sys/net/ipv4/ip_forward":                      "1",
		"/proc/sys/net/ipv4/conf/" + tun + "/rp_filter":      "2",
		"/proc/sys/net/ipv4/conf/" + tun + "/send_redirects": "0",
	}
	if v6 {
		set["/proc/sys/net/ipv6/conf/all/forwarding"] = "1"
	}
	var errs []error
	for path, v := range set {
		if err := os.WriteFile(path, []byte(v), 0o644); err != nil && !os.IsNotExist(err) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		klog.V(2).InfoS("Some sysctls could not be set", "errs", errors.Join(errs...))
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_forward"); err != nil || strings.TrimSpace(string(b)) != "1" {
		return fmt.Errorf("IPv4 forwarding is off and could not be turned on")
	}
	return nil
}
