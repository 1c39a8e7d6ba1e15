package routing

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/agenthost"
)

// errNotUp answers operations while the TUN is not up.
var errNotUp = errors.New("data plane is not up")

// opsRoutes are GET /v1/dataplane/routes (agentapi.Routes) and GET
// /v1/dataplane/peers ([]agentapi.PeerTraffic); both 503 until the TUN
// is up.
func (s *Service) opsRoutes() agenthost.Routes {
	return agenthost.Routes{"GET /v1/dataplane/routes": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		rs, err := s.Routes()
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		agentapi.WriteJSON(w, rs)
	}), "GET /v1/dataplane/peers": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		st := s.state.Load()
		if st == nil {
			http.Error(w, errNotUp.Error(), http.StatusServiceUnavailable)
			return
		}
		agentapi.WriteJSON(w, peerTraffic(st))
	})}
}

func peerTraffic(st *state) []agentapi.PeerTraffic {
	out := []agentapi.PeerTraffic{}
	for _, p := range st.fwd.PeerStats() {
		out = append(out, agentapi.PeerTraffic{Node: p.Node, TxPackets: p.TxPackets, TxBytes: p.TxBytes,
			RxPackets: p.RxPackets, RxBytes: p.RxBytes, DropQueue: p.DropQueue, DropSpoof: p.DropSpoofed,
			LastTx: p.LastTx, LastRx: p.LastRx, Prefixes: p.Prefixes})
	}
	return out
}

// Routes reports the current plan: this node's prefixes, the kernel
// routes (each checked against the main table) and the forwarder's table.
func (s *Service) Routes() (agentapi.Routes, error) {
	st := s.state.Load()
	if st == nil {
		return agentapi.Routes{}, errNotUp
	}
	tunName := s.cfg.Modules.EdgeCNI.TunName
	rs := agentapi.Routes{TUN: tunName, Segments: []string{}, Local: []agentapi.Route{}, Kernel: []agentapi.Route{},
		Forward: []agentapi.Route{}, Errors: st.errs}
	for _, seg := range st.plan.Segments {
		rs.Segments = append(rs.Segments, seg.String())
	}
	p := st.plan
	for _, ig := range p.Ignored {
		rs.Ignored = append(rs.Ignored, agentapi.Route{Dst: ig.IP.String(), Kind: KindPod, Node: ig.Pod, Why: ig.Why})
	}
	for _, l := range sortedPrefixes(p.Forward.Local) {
		rs.Local = append(rs.Local, agentapi.Route{Dst: l.String(), Kind: p.Origin[l], Node: s.cfg.NodeName, Why: "this node's pods"})
	}
	missing, err := missingRoutes(s.sys, tunName, p.Kernel)
	if err != nil {
		return agentapi.Routes{}, err
	}
	for _, k := range p.Kernel {
		r := agentapi.Route{Dst: k.Dst.String(), Kind: k.Kind, Node: k.Node, Why: k.Why, InKernel: !slices.Contains(missing, k)}
		if k.Via.IsValid() {
			r.Via = k.Via.String()
		} else {
			r.Dev = tunName
		}
		if k.Kind == KindSegment {
			r.Why = "another segment: every pod in it is reached through the tunnel"
		}
		rs.Kernel = append(rs.Kernel, r)
	}
	for node, pfxs := range p.Forward.Remote {
		for _, pfx := range pfxs {
			rs.Forward = append(rs.Forward, agentapi.Route{Dst: pfx.String(), Kind: p.Origin[pfx], Node: node,
				Why: fmt.Sprintf("%s of %s: frames go over the tunnel to %s", kindNoun(p.Origin[pfx]), node, node)})
		}
	}
	sortForward(rs.Forward)
	return rs, nil
}

// sortForward orders forward routes by address, prefix length, then node,
// so the output is the same every time (the plan is a map).
func sortForward(rs []agentapi.Route) {
	slices.SortStableFunc(rs, func(a, b agentapi.Route) int {
		if c := comparePrefix(netip.MustParsePrefix(a.Dst), netip.MustParsePrefix(b.Dst)); c != 0 {
			return c
		}
		return strings.Compare(a.Node, b.Node)
	})
}

func kindNoun(kind string) string {
	switch kind {
	case KindNode:
		return "pod CIDR"
	case KindPool:
		return "pinned SpiderIPPool"
	case KindPod:
		return "pod IP"
	}
	return "prefix"
}

func sortedPrefixes(ps []netip.Prefix) []netip.Prefix {
	out := slices.Clone(ps)
	slices.SortFunc(out, comparePrefix)
	return out
}

// comparePrefix orders prefixes by address, then prefix length.
func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// missingRoutes lists the planned routes the main table lacks or holds
// differently (another gateway or device). An error means the main table
// could not be read, not that routes are missing.
func missingRoutes(sys Kernel, tunName string, want []KernelRoute) ([]KernelRoute, error) {
	have, err := sys.Routes()
	if err != nil {
		return nil, fmt.Errorf("cannot list routes: %w", err)
	}
	byDst := routesByDst(have)
	var out []KernelRoute
	for _, w := range want {
		r := routeFor(w, tunName)
		if h, ok := byDst[r.Dst.String()]; ok && sameRoute(h, r) {
			continue
		}
		out = append(out, w)
	}
	return out, nil
}

// Lookup says where the forwarder sends a packet for a: a remote node
// (node != ""), this node (local), or nowhere (ok false). up is false
// while the data plane is not up.
func (m *Module) Lookup(a netip.Addr) (node string, local, ok, up bool) {
	st := m.svc.state.Load()
	if st == nil {
		return "", false, false, false
	}
	node, ok = st.fwd.Lookup(a)
	return node, ok && node == "", ok, true
}

// Diagnose runs the data plane's checks (`edgelink diagnose`): TUN up,
// planned routes in the kernel, MTU consistent with the underlay, the
// TUN's reverse-path filter, the iptables chains (SNAT exemption, MSS
// clamp, forward accept) in place, and whether mesh traffic is exempt
// from another CNI's masquerade chain (Flannel's). The iptables checks give up after
// iptablesTimeout or when ctx ends.
func (m *Module) Diagnose(ctx context.Context) []agentapi.Check {
	if !m.enable {
		return []agentapi.Check{agentapi.Skip("data plane", "the edgeCNI module is disabled")}
	}
	return m.svc.diagnose(ctx)
}

func (s *Service) diagnose(ctx context.Context) []agentapi.Check {
	st := s.state.Load()
	c := s.cfg.Modules.EdgeCNI
	if st == nil {
		return []agentapi.Check{agentapi.Fail("TUN up", "the data plane is not up (no TUN "+c.TunName+" yet)",
			"read the agent's log (journalctl -u edgelink) for the routing module's error; it needs CAP_NET_ADMIN and /dev/net/tun")}
	}
	var out []agentapi.Check

	// TUN
	link, err := s.sys.Link(c.TunName)
	switch {
	case err != nil:
		out = append(out, agentapi.Fail("TUN up", fmt.Sprintf("TUN %s: %v", c.TunName, err),
			"restart the agent (systemctl restart edgelink); something deleted its TUN device"))
	case !link.Up:
		out = append(out, agentapi.Fail("TUN up", fmt.Sprintf("TUN %s is %s (flags %s)", c.TunName, link.State, link.Flags),
			fmt.Sprintf("ip link set %s up; if it stays down, restart the agent", c.TunName)))
	default:
		out = append(out, agentapi.OK("TUN up", fmt.Sprintf("%s is up, MTU %d", c.TunName, link.MTU)))
	}

	// Routes
	missing, err := missingRoutes(s.sys, c.TunName, st.plan.Kernel)
	out = append(out, routesCheck(st.plan.Kernel, missing, err))
	if st.errs != "" {
		out = append(out, agentapi.Fail("last reconcile", st.errs, "read the agent's log; the agent retries every 10 s"))
	}

	// MTU
	out = append(out, mtuCheck(link, st.mtu, c.MTU, s.sys.UnderlayMTU()))

	// Reverse-path filter
	all, dev, err := readRPFilter(c.TunName)
	if err != nil {
		out = append(out, agentapi.Fail(rpFilterName, err.Error(), "read the value by hand: sysctl net.ipv4.conf.all.rp_filter net.ipv4.conf."+c.TunName+".rp_filter"))
	} else {
		out = append(out, rpFilterCheck(c.TunName, all, dev))
	}

	// iptables
	mesh := slices.Concat(s.cfg.Parsed.CloudCIDR, s.cfg.Parsed.EdgeCIDR)
	return append(out, s.iptablesChecks(ctx, mesh)...)
}

// routesCheck reports the planned routes missing from the main table, or
// that the table could not be read (err).
func routesCheck(planned, missing []KernelRoute, err error) agentapi.Check {
	const name = "routes present"
	switch {
	case err != nil:
		return agentapi.Fail(name, err.Error(),
			"the agent could not read the main routing table over netlink: read its log, and check `ip route show proto 77` by hand")
	case len(missing) > 0:
		var ms []string
		for _, r := range missing {
			ms = append(ms, r.String())
		}
		return agentapi.Fail(name, fmt.Sprintf("%d of %d planned routes missing or different: %s", len(missing), len(planned), strings.Join(ms, "; ")),
			"the agent puts them back within 10 s; if they keep disappearing, another program (NetworkManager, a CNI) removes routes of protocol 77: `ip route show proto 77`")
	}
	return agentapi.OK(name, fmt.Sprintf("all %d planned routes in the main table", len(planned)))
}

// iptablesTimeout bounds the iptables checks of one diagnose: iptables
// waits for the xtables lock, which another program may hold for long.
const iptablesTimeout = 5 * time.Second

// iptablesChecks checks the chains in a goroutine and waits for it until
// iptablesTimeout or ctx ends; then it reports the timeout. The goroutine
// cannot be interrupted (go-iptables runs the iptables binary without a
// context) but ends by itself: every iptables call waits at most 5 s for
// the lock (Kernel.IPTables). While one is still running, the next diagnose does
// not start another.
func (s *Service) iptablesChecks(ctx context.Context, mesh []netip.Prefix) []agentapi.Check {
	const name = "iptables"
	if !s.iptBusy.CompareAndSwap(false, true) {
		return []agentapi.Check{agentapi.Fail(name, "an earlier check is still waiting for iptables (xtables lock held?)", iptablesLockFix)}
	}
	ctx, cancel := context.WithTimeout(ctx, iptablesTimeout)
	defer cancel()
	done := make(chan []agentapi.Check, 1)
	go func() { // routineIPTablesCheck
		defer s.iptBusy.Store(false)
		done <- s.checkChains(mesh)
	}()
	select {
	case out := <-done:
		return out
	case <-ctx.Done():
		detail := "timed out waiting for iptables (xtables lock held?)"
		if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
			detail = "gave up waiting for iptables: " + ctx.Err().Error()
		}
		return []agentapi.Check{agentapi.Fail(name, detail, iptablesLockFix)}
	}
}

const iptablesLockFix = "another program holds the xtables lock (/run/xtables.lock): find it with `fuser -v /run/xtables.lock`; " +
	"the agent's own rules wait for it too"

// checkChains compares every chain the agent keeps with the kernel's.
func (s *Service) checkChains(mesh []netip.Prefix) []agentapi.Check {
	c := s.cfg.Modules.EdgeCNI
	newLister := s.newIPT
	if newLister == nil {
		newLister = func(v6 bool) (iptablesLister, error) { return s.sys.IPTables(v6) }
	}
	var out []agentapi.Check
	k := &kernel{tun: c.TunName, sys: s.sys}
	names := map[string]string{chainNAT: "SNAT exemption", chainMSS: "MSS clamp", chainForward: "forward accept"}
	for _, v6 := range []bool{false, true} {
		if v6 && !slices.ContainsFunc(mesh, func(p netip.Prefix) bool { return p.Addr().Is6() }) {
			continue
		}
		fam := "iptables"
		if v6 {
			fam = "ip6tables"
		}
		ipt, err := newLister(v6)
		if err != nil {
			out = append(out, agentapi.Fail(fam, err.Error(), "install iptables (nft or legacy, the same the host's other rules use)"))
			continue
		}
		natOK := false
		for _, spec := range k.chains(mesh, v6) {
			name := fmt.Sprintf("%s (%s)", names[spec.chain], fam)
			problem := checkChain(ipt, spec)
			if spec.chain == chainNAT {
				natOK = problem == ""
			}
			if problem != "" {
				out = append(out, agentapi.Fail(name, problem,
					fmt.Sprintf("the agent restores it within 10 s; if it keeps disappearing, a firewall manager flushes %s %s: run the agent's rules after it or exclude EDGELINK-* chains", spec.table, spec.builtin)))
			} else {
				where := "first"
				if spec.last {
					where = "after its other rules"
				}
				out = append(out, agentapi.OK(name, fmt.Sprintf("%s %s jumps %s to %s (%d rules)", spec.table, spec.builtin, where, spec.chain, len(spec.rules))))
			}
		}
		out = append(out, masqueradeChecks(ipt, fam, natOK)...)
	}
	return out
}

const rpFilterName = "reverse-path filter"

// readRPFilter reads net.ipv4.conf.all.rp_filter and the TUN's.
func readRPFilter(tun string) (all, dev int, err error) {
	read := func(iface string) (int, error) {
		p := "/proc/sys/net/ipv4/conf/" + iface + "/rp_filter"
		b, err := os.ReadFile(p)
		if err != nil {
			return 0, err
		}
		v, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			return 0, fmt.Errorf("%s: %w", p, err)
		}
		return v, nil
	}
	if all, err = read("all"); err != nil {
		return 0, 0, err
	}
	if dev, err = read(tun); err != nil {
		return 0, 0, err
	}
	return all, dev, nil
}

// rpFilterCheck evaluates the TUN's reverse-path filter. The kernel uses
// the larger of conf/all and conf/<tun> (0 off, 1 strict, 2 loose).
// Strict drops replies from remote pods that arrive on the TUN while the
// route back to their source is another one; loose and off let them in.
// The systemd agent sets the TUN's to 2 itself (loose whatever "all" is);
// a containerized agent cannot write /proc/sys, so the TUN keeps the
// host's conf/default.
func rpFilterCheck(tun string, all, dev int) agentapi.Check {
	eff := max(all, dev)
	if eff == 1 {
		return agentapi.Fail(rpFilterName,
			fmt.Sprintf("strict on %s (net.ipv4.conf.all.rp_filter=%d, net.ipv4.conf.%s.rp_filter=%d; the kernel uses the larger): replies from remote pods are dropped", tun, all, tun, dev),
			fmt.Sprintf("on the host: sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.default.rp_filter=2 net.ipv4.conf.%s.rp_filter=2, "+
				"and persist it in /etc/sysctl.d/90-edgelink.conf (docs/install.md)", tun))
	}
	mode := map[int]string{0: "off", 2: "loose"}[eff]
	if mode == "" {
		mode = strconv.Itoa(eff)
	}
	return agentapi.OK(rpFilterName, fmt.Sprintf("%s on %s (all %d, %s %d)", mode, tun, all, tun, dev))
}

// mtuCheck compares the TUN's MTU with the one planned (mtu), the
// configured one (cfg, 0: derived) and the underlay's.
func mtuCheck(link *Link, mtu, cfg, underlay int) agentapi.Check {
	const name = "MTU consistent"
	if link != nil && link.MTU != mtu {
		return agentapi.Fail(name, fmt.Sprintf("TUN MTU is %d, the agent set %d", link.MTU, mtu),
			"something changed the TUN's MTU; restart the agent, or set modules.edgeCNI.mtu")
	}
	want := underlay - tunOverhead
	switch {
	case cfg == 0 && mtu != want:
		return agentapi.Fail(name, fmt.Sprintf("TUN MTU %d, but the underlay's is now %d (%d - %d = %d)", mtu, underlay, underlay, tunOverhead, want),
			"the underlay MTU changed since the agent started: restart the agent (pods keep their MTU until recreated)")
	case mtu > want:
		return agentapi.Fail(name, fmt.Sprintf("modules.edgeCNI.mtu %d is more than the underlay's %d - %d = %d: tunneled packets would not fit", mtu, underlay, tunOverhead, want),
			fmt.Sprintf("set modules.edgeCNI.mtu to %d or less (or 0 to derive it)", want))
	}
	return agentapi.OK(name, fmt.Sprintf("TUN %d = underlay %d - %d", mtu, underlay, underlay-mtu))
}

// checkChain says what differs between the kernel and spec ("" when
// nothing): chain missing, rules different, jump missing or not first
// (anywhere, for a chain jumped to last).
func checkChain(ipt iptablesLister, c chainSpec) string {
	exists, err := ipt.ChainExists(c.table, c.chain)
	if err != nil {
		return fmt.Sprintf("%s %s: %v", c.table, c.chain, err)
	}
	if !exists {
		return fmt.Sprintf("chain %s missing from table %s", c.chain, c.table)
	}
	current, err := ipt.List(c.table, c.chain)
	if err != nil {
		return fmt.Sprintf("%s %s: %v", c.table, c.chain, err)
	}
	if len(current) != len(c.rules)+1 {
		return fmt.Sprintf("chain %s in table %s holds %d rules, want %d", c.chain, c.table, len(current)-1, len(c.rules))
	}
	for _, r := range c.rules {
		if ok, err := ipt.Exists(c.table, c.chain, r...); err != nil || !ok {
			return fmt.Sprintf("chain %s in table %s lacks rule %q", c.chain, c.table, strings.Join(r, " "))
		}
	}
	builtin, err := ipt.List(c.table, c.builtin)
	if err != nil {
		return fmt.Sprintf("%s %s: %v", c.table, c.builtin, err)
	}
	if c.last {
		for _, r := range builtin {
			if strings.Contains(r, "-j "+c.chain) {
				return ""
			}
		}
		return fmt.Sprintf("no jump from %s %s to %s", c.table, c.builtin, c.chain)
	}
	if len(builtin) < 2 || !strings.Contains(builtin[1], "-j "+c.chain) {
		for _, r := range builtin {
			if strings.Contains(r, "-j "+c.chain) {
				return fmt.Sprintf("the jump to %s is not the first rule of %s %s", c.chain, c.table, c.builtin)
			}
		}
		return fmt.Sprintf("no jump from %s %s to %s", c.table, c.builtin, c.chain)
	}
	return ""
}

// iptablesLister is the read side of go-iptables (a fake in tests).
type iptablesLister interface {
	ChainExists(table, chain string) (bool, error)
	List(table, chain string) ([]string, error)
	Exists(table, chain string, rulespec ...string) (bool, error)
}
