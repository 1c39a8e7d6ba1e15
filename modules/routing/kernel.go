package routing

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"
	"sort"
	"strings"

	"k8s.io/klog/v2"
)

// RouteProtocol marks the routes this module programs (ip route shows
// "proto 77"), so that a restart adopts them and nothing else is touched.
const RouteProtocol = 77

// Kernel is everything the module does to the host's network stack: the
// TUN link, sysctls, routes of RouteProtocol in the main table, addresses
// and iptables chains. The reconcile logic (this file) runs on it;
// kernel_linux.go implements it with netlink, /proc/sys and go-iptables,
// kernel_other.go refuses everything, and the tests' fakeKernel records
// every change as one line of text.
type Kernel interface {
	// Link describes the link named name (an error when there is none).
	Link(name string) (*Link, error)
	DeleteLink(name string) error
	SetLinkUp(name string) error
	// UnderlayMTU is the MTU of the default route's link (1500 without).
	UnderlayMTU() int

	// Addrs lists the global-scope addresses of every link.
	Addrs() ([]LinkAddr, error)
	// ReplaceAddr puts a (as a /32 or /128) on link.
	ReplaceAddr(link string, a netip.Addr) error
	DeleteAddr(link string, p netip.Prefix) error

	// Routes lists the routes of RouteProtocol in the main table, both
	// families (what it could list, and why it could not list the rest).
	Routes() ([]Route, error)
	// ReplaceRoute adds r (protocol RouteProtocol, main table) or
	// replaces the route to its destination.
	ReplaceRoute(r Route) error
	// DeleteRoute removes r; a route already gone is no error.
	DeleteRoute(r Route) error

	// Sysctl reads and SetSysctl writes /proc/sys/<key>
	// (key: "net/ipv4/ip_forward"); a key the kernel lacks is an error
	// satisfying errors.Is(err, fs.ErrNotExist).
	Sysctl(key string) (string, error)
	SetSysctl(key, value string) error

	// IPTables is iptables (v6: ip6tables).
	IPTables(v6 bool) (IPTables, error)
}

// Link is what the module reads of a link.
type Link struct {
	Name, Type string
	MTU        int
	Up         bool   // administratively up and not operationally down
	State      string // operational state, flags (for messages)
	Flags      string
}

// LinkAddr is an address with its prefix length, on a link.
type LinkAddr struct {
	Link   string
	Prefix netip.Prefix
}

// Route is a main-table route of RouteProtocol: via a gateway, or into a
// device (with a preferred source).
type Route struct {
	Dst netip.Prefix
	Via netip.Addr
	Dev string
	Src netip.Addr
}

func (r Route) String() string {
	s := r.Dst.String()
	if r.Via.IsValid() {
		s += " via " + r.Via.String()
	}
	if r.Dev != "" {
		s += " dev " + r.Dev
	}
	if r.Src.IsValid() {
		s += " src " + r.Src.String()
	}
	return s
}

// IPTables is the part of go-iptables the module uses (*iptables.IPTables
// is one).
type IPTables interface {
	iptablesLister
	NewChain(table, chain string) error
	ClearChain(table, chain string) error
	ClearAndDeleteChain(table, chain string) error
	Append(table, chain string, rulespec ...string) error
	Insert(table, chain string, pos int, rulespec ...string) error
	Delete(table, chain string, rulespec ...string) error
}

// iptables chains this module owns, each jumped to from its built-in
// chain:
//
//	nat    POSTROUTING -> EDGELINK-POSTROUTING (jump first): -s MESH -d MESH
//	       -j ACCEPT (pod-to-pod traffic between mesh CIDRs is never
//	       masqueraded, whatever Flannel or Calico add after us)
//	mangle FORWARD     -> EDGELINK-MSS (jump first): TCP SYNs in or out of
//	       the TUN get their MSS clamped to the path MTU
//	filter FORWARD     -> EDGELINK-FORWARD (jump appended, wherever it then
//	       is): accept traffic in or out of the TUN that nothing before
//	       judged (hosts whose FORWARD policy is DROP). Appended, so that
//	       the NetworkPolicy chains in FORWARD (Calico's cali-FORWARD,
//	       KUBE-FORWARD, a user's rules) see mesh traffic first, and no
//	       fight with Felix over the first place.
const (
	chainNAT     = "EDGELINK-POSTROUTING"
	chainMSS     = "EDGELINK-MSS"
	chainForward = "EDGELINK-FORWARD"
)

type chainSpec struct {
	table, builtin, chain string
	rules                 [][]string
	last                  bool // jump appended (anywhere will do), not first
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
		{"nat", "POSTROUTING", chainNAT, nat, false},
		{"mangle", "FORWARD", chainMSS, [][]string{mss("-o"), mss("-i")}, false},
		{"filter", "FORWARD", chainForward, [][]string{fwd("-o"), fwd("-i")}, true},
	}
}

// kernel programs routes, addresses, sysctls and iptables for one TUN
// device, through sys.
type kernel struct {
	tun string
	sys Kernel
}

// clean removes what a crash may have left: a persistent TUN of our name
// (an error when the name belongs to another kind of link) and our
// routes (those with a gateway outlive the TUN).
func (k *kernel) clean() error {
	if l, err := k.sys.Link(k.tun); err == nil {
		if l.Type != "tuntap" {
			return fmt.Errorf("modules.edgeCNI.tunName: a %s link named %s already exists", l.Type, k.tun)
		}
		_ = k.sys.DeleteLink(k.tun) // a persistent TUN someone left
	}
	if err := k.removeRoutes(); err != nil {
		klog.InfoS("Removing leftover routes failed", "err", err)
	}
	return nil
}

// setUp brings the TUN up and sets the sysctls.
func (k *kernel) setUp(v6 bool) error {
	if err := k.sys.SetLinkUp(k.tun); err != nil {
		return err
	}
	return k.setSysctls(v6)
}

// apply makes the kernel hold what plan asks for: the TUN's addresses,
// the routes, and the iptables chains for mesh.
func (k *kernel) apply(plan *RoutePlan, mesh []netip.Prefix) error {
	var errs []error
	if err := k.reconcileAddrs(plan.Sources); err != nil {
		errs = append(errs, err)
	}
	if err := k.reconcileRoutes(plan.Kernel); err != nil {
		errs = append(errs, err)
	}
	if err := k.reconcileIPTables(mesh); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// tearDown removes our chains and routes (shutdown).
func (k *kernel) tearDown() error {
	return errors.Join(k.removeIPTables(), k.removeRoutes())
}

// reconcileRoutes makes the main table hold exactly want among routes of
// RouteProtocol.
func (k *kernel) reconcileRoutes(want []KernelRoute) error {
	if _, err := k.sys.Link(k.tun); err != nil {
		return fmt.Errorf("TUN %s: %w", k.tun, err)
	}
	routes, err := k.sys.Routes()
	errs := []error{err}
	have := routesByDst(routes)
	wanted := map[string]bool{}
	for _, w := range want {
		r := routeFor(w, k.tun)
		wanted[r.Dst.String()] = true
		if h, ok := have[r.Dst.String()]; ok && sameRoute(h, r) {
			continue
		}
		if err := k.sys.ReplaceRoute(r); err != nil {
			errs = append(errs, fmt.Errorf("route %s: %w", w, err))
		}
	}
	for _, dst := range sortedKeys(have) {
		if !wanted[dst] {
			if err := k.sys.DeleteRoute(have[dst]); err != nil {
				errs = append(errs, fmt.Errorf("remove route %s: %w", dst, err))
			}
		}
	}
	return errors.Join(errs...)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// reconcileIPTables makes our chains hold exactly their rules, jumped to
// from their built-in chains (first, or anywhere for the filter chain),
// for each IP family in use.
func (k *kernel) reconcileIPTables(mesh []netip.Prefix) error {
	var errs []error
	for _, v6 := range []bool{false, true} {
		if v6 && !slices.ContainsFunc(mesh, func(p netip.Prefix) bool { return p.Addr().Is6() }) {
			continue
		}
		ipt, err := k.sys.IPTables(v6)
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

func ensureChain(ipt IPTables, c chainSpec) error {
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
	if c.last {
		if ok, err := ipt.Exists(c.table, c.builtin, jump...); err != nil || ok {
			return err
		}
		return ipt.Append(c.table, c.builtin, jump...)
	}
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
		ipt, err := k.sys.IPTables(v6)
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

// routesByDst indexes routes by destination.
func routesByDst(routes []Route) map[string]Route {
	out := map[string]Route{}
	for _, r := range routes {
		if r.Dst.IsValid() {
			out[r.Dst.String()] = r
		}
	}
	return out
}

// routeFor is the main-table route that carries w: via its gateway, or
// into the TUN.
func routeFor(w KernelRoute, tun string) Route {
	if w.Via.IsValid() {
		return Route{Dst: w.Dst, Via: w.Via}
	}
	return Route{Dst: w.Dst, Dev: tun, Src: w.Src}
}

// sameRoute reports whether the kernel's route h is what want asks for:
// the same gateway, or, without one, the same device and source.
func sameRoute(h, want Route) bool {
	if want.Via.IsValid() {
		return h.Via == want.Via
	}
	return !h.Via.IsValid() && h.Dev == want.Dev && h.Src == want.Src
}

// reconcileAddrs makes the TUN hold exactly the host sources that belong
// on it (one address per family, as a /32 or /128), before the routes
// that name them as their source. Every global address on the TUN is ours.
func (k *kernel) reconcileAddrs(sources []HostSource) error {
	if _, err := k.sys.Link(k.tun); err != nil {
		return fmt.Errorf("TUN %s: %w", k.tun, err)
	}
	want := map[netip.Addr]bool{}
	var errs []error
	for _, src := range sources {
		if !src.OnTUN {
			continue
		}
		want[src.Addr] = true
		if err := k.sys.ReplaceAddr(k.tun, src.Addr); err != nil {
			errs = append(errs, fmt.Errorf("address %s on %s: %w", src.Addr, k.tun, err))
		}
	}
	have, err := k.sys.Addrs()
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	for _, a := range have {
		if a.Link != k.tun || want[a.Prefix.Addr()] {
			continue
		}
		if err := k.sys.DeleteAddr(k.tun, a.Prefix); err != nil {
			errs = append(errs, fmt.Errorf("remove address %s from %s: %w", a.Prefix.Addr(), k.tun, err))
		}
	}
	return errors.Join(errs...)
}

// removeRoutes deletes every route of ours (also after a crash: they
// outlive the TUN only when they use a gateway).
func (k *kernel) removeRoutes() error {
	routes, err := k.sys.Routes()
	errs := []error{err}
	for _, r := range routes {
		if err := k.sys.DeleteRoute(r); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// setSysctls enables forwarding and loose reverse-path filtering on the
// TUN (replies from remote pods arrive on it, while the route back to a
// remote segment may be another one under strict filtering). A sysctl
// that cannot be set is logged; only IPv4 forwarding left off is an
// error.
func (k *kernel) setSysctls(v6 bool) error {
	set := [][2]string{
		{"net/ipv4/ip_forward", "1"},
		{"net/ipv4/conf/" + k.tun + "/rp_filter", "2"},
		{"net/ipv4/conf/" + k.tun + "/send_redirects", "0"},
	}
	if v6 {
		set = append(set, [2]string{"net/ipv6/conf/all/forwarding", "1"})
	}
	var errs []error
	for _, kv := range set {
		if err := k.sys.SetSysctl(kv[0], kv[1]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		klog.V(2).InfoS("Some sysctls could not be set", "errs", errors.Join(errs...))
	}
	if v, err := k.sys.Sysctl("net/ipv4/ip_forward"); err != nil || strings.TrimSpace(v) != "1" {
		return fmt.Errorf("IPv4 forwarding is off and could not be turned on")
	}
	return nil
}

// localNets are the subnets of this node's addresses, except the TUN's,
// and the addresses themselves, sorted.
func localNets(sys Kernel, tunName string) ([]netip.Prefix, []netip.Addr) {
	addrs, err := sys.Addrs()
	if err != nil {
		return nil, nil
	}
	var out []netip.Prefix
	var own []netip.Addr
	for _, a := range addrs {
		if a.Link == tunName {
			continue
		}
		out = append(out, a.Prefix.Masked())
		own = append(own, a.Prefix.Addr())
	}
	slices.SortFunc(own, netip.Addr.Compare)
	return out, own
}
