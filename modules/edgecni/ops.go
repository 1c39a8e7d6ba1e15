package edgecni

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/edgelink/edgelink/pkg/agentapi"
)

// errNotUp answers operations while the TUN is not up.
var errNotUp = errors.New("data plane is not up")

// registerOps adds GET /v1/dataplane/routes (agentapi.Routes) and GET
// /v1/dataplane/peers ([]agentapi.PeerTraffic); both 503 until the TUN
// is up.
func (s *Service) registerOps(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/dataplane/routes", func(w http.ResponseWriter, _ *http.Request) {
		rs, err := s.Routes()
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, rs)
	})
	mux.HandleFunc("GET /v1/dataplane/peers", func(w http.ResponseWriter, _ *http.Request) {
		st := s.state.Load()
		if st == nil {
			http.Error(w, errNotUp.Error(), http.StatusServiceUnavailable)
			return
		}
		writeJSON(w, peerTraffic(st))
	})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
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
	for _, l := range sortedPrefixes(p.Forward.Local) {
		rs.Local = append(rs.Local, agentapi.Route{Dst: l.String(), Kind: p.Origin[l], Node: s.cfg.NodeName, Why: "this node's pods"})
	}
	missing := missingRoutes(tunName, p.Kernel)
	for _, k := range p.Kernel {
		r := agentapi.Route{Dst: k.Dst.String(), Kind: k.Kind, Node: k.Node, Why: k.Why, InKernel: !slices.Contains(missing, k)}
		if k.Via.IsValid() {
			r.Via = k.Via.String()
		} else {
			r.Dev = tunName
		}
		if k.Kind == agentapi.KindSegment {
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
	slices.SortFunc(rs.Forward, func(a, b agentapi.Route) int {
		return netip.MustParsePrefix(a.Dst).Addr().Compare(netip.MustParsePrefix(b.Dst).Addr())
	})
	return rs, nil
}

func kindNoun(kind string) string {
	switch kind {
	case agentapi.KindNode:
		return "pod CIDR"
	case agentapi.KindPool:
		return "pinned SpiderIPPool"
	case agentapi.KindPod:
		return "pod IP"
	}
	return "prefix"
}

func sortedPrefixes(ps []netip.Prefix) []netip.Prefix {
	out := slices.Clone(ps)
	slices.SortFunc(out, func(a, b netip.Prefix) int {
		if c := a.Addr().Compare(b.Addr()); c != 0 {
			return c
		}
		return a.Bits() - b.Bits()
	})
	return out
}

// missingRoutes lists the planned routes the main table lacks or holds
// differently (another gateway or device).
func missingRoutes(tunName string, want []KernelRoute) []KernelRoute {
	have, _ := ourRoutes()
	idx := -1
	if l, err := netlink.LinkByName(tunName); err == nil {
		idx = l.Attrs().Index
	}
	byDst := map[string]netlink.Route{}
	for _, r := range have {
		if r.Dst != nil {
			byDst[r.Dst.String()] = r
		}
	}
	var out []KernelRoute
	for _, w := range want {
		dst := &net.IPNet{IP: w.Dst.Addr().AsSlice(), Mask: net.CIDRMask(w.Dst.Bits(), w.Dst.Addr().BitLen())}
		h, ok := byDst[dst.String()]
		switch {
		case !ok:
		case w.Via.IsValid() && h.Gw.Equal(w.Via.AsSlice()):
			continue
		case !w.Via.IsValid() && h.Gw == nil && h.LinkIndex == idx:
			continue
		}
		out = append(out, w)
	}
	return out
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
// iptables chains (SNAT exemption, MSS clamp, forward accept) in place.
func (m *Module) Diagnose() []agentapi.Check {
	if !m.enable {
		return []agentapi.Check{agentapi.Skip("data plane", "the edgeCNI module is disabled")}
	}
	return m.svc.diagnose()
}

func (s *Service) diagnose() []agentapi.Check {
	st := s.state.Load()
	c := s.cfg.Modules.EdgeCNI
	if st == nil {
		return []agentapi.Check{agentapi.Fail("TUN up", "the data plane is not up (no TUN "+c.TunName+" yet)",
			"read the agent's log (journalctl -u edgelink) for the edgecni module's error; it needs CAP_NET_ADMIN and /dev/net/tun")}
	}
	var out []agentapi.Check

	// TUN
	link, err := netlink.LinkByName(c.TunName)
	switch {
	case err != nil:
		out = append(out, agentapi.Fail("TUN up", fmt.Sprintf("TUN %s: %v", c.TunName, err),
			"restart the agent (systemctl restart edgelink); something deleted its TUN device"))
	case link.Attrs().Flags&net.FlagUp == 0 || link.Attrs().OperState == netlink.OperDown:
		out = append(out, agentapi.Fail("TUN up", fmt.Sprintf("TUN %s is %s (flags %s)", c.TunName, link.Attrs().OperState, link.Attrs().Flags),
			fmt.Sprintf("ip link set %s up; if it stays down, restart the agent", c.TunName)))
	default:
		out = append(out, agentapi.OK("TUN up", fmt.Sprintf("%s is up, MTU %d", c.TunName, link.Attrs().MTU)))
	}

	// Routes
	if missing := missingRoutes(c.TunName, st.plan.Kernel); len(missing) > 0 {
		var ms []string
		for _, r := range missing {
			ms = append(ms, r.String())
		}
		out = append(out, agentapi.Fail("routes present", fmt.Sprintf("%d of %d planned routes missing or different: %s",
			len(missing), len(st.plan.Kernel), strings.Join(ms, "; ")),
			"the agent puts them back within 10 s; if they keep disappearing, another program (NetworkManager, a CNI) removes routes of protocol 77: `ip route show proto 77`"))
	} else {
		out = append(out, agentapi.OK("routes present", fmt.Sprintf("all %d planned routes in the main table", len(st.plan.Kernel))))
	}
	if st.errs != "" {
		out = append(out, agentapi.Fail("last reconcile", st.errs, "read the agent's log; the agent retries every 10 s"))
	}

	// MTU
	out = append(out, mtuCheck(link, st.mtu, c.MTU, underlayMTU()))

	// iptables
	cloud, edge := mustPrefixes(c.MeshCIDRConfig.CloudCIDR), mustPrefixes(c.MeshCIDRConfig.EdgeCIDR)
	mesh := append(cloud, edge...)
	k := &kernel{tun: c.TunName}
	names := map[string]string{chainNAT: "SNAT exemption", chainMSS: "MSS clamp", chainForward: "forward accept"}
	for _, v6 := range []bool{false, true} {
		if v6 && !slices.ContainsFunc(mesh, func(p netip.Prefix) bool { return p.Addr().Is6() }) {
			continue
		}
		fam := "iptables"
		if v6 {
			fam = "ip6tables"
		}
		ipt, err := newIPT(v6)
		if err != nil {
			out = append(out, agentapi.Fail(fam, err.Error(), "install iptables (nft or legacy, the same the host's other rules use)"))
			continue
		}
		for _, spec := range k.chains(mesh, v6) {
			name := fmt.Sprintf("%s (%s)", names[spec.chain], fam)
			if problem := checkChain(ipt, spec); problem != "" {
				out = append(out, agentapi.Fail(name, problem,
					fmt.Sprintf("the agent restores it within 10 s; if it keeps disappearing, a firewall manager flushes %s %s: run the agent's rules after it or exclude EDGELINK-* chains", spec.table, spec.builtin)))
			} else {
				out = append(out, agentapi.OK(name, fmt.Sprintf("%s %s jumps first to %s (%d rules)", spec.table, spec.builtin, spec.chain, len(spec.rules))))
			}
		}
	}
	return out
}

// mtuCheck compares the TUN's MTU with the one planned (mtu), the
// configured one (cfg, 0: derived) and the underlay's.
func mtuCheck(link netlink.Link, mtu, cfg, underlay int) agentapi.Check {
	const name = "MTU consistent"
	if link != nil && link.Attrs().MTU != mtu {
		return agentapi.Fail(name, fmt.Sprintf("TUN MTU is %d, the agent set %d", link.Attrs().MTU, mtu),
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
// nothing): chain missing, rules different, jump missing or not first.
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
