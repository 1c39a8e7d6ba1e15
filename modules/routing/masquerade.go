package routing

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/edgelink/edgelink/pkg/agentapi"
)

// Other CNIs' masquerade chains in nat POSTROUTING that diagnose names.
// Flannel (iptables mode, its default; flanneld --ip-masq) appends
//
//	-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG
//
// and FLANNEL-POSTRTG returns for traffic inside its network and
// masquerades "-s <network> ! -d 224.0.0.0/4" (ff00::/8 for IPv6): a cloud
// pod's packet to an edge pod outside Flannel's network would leave with
// the node's address, and the edge drops it as spoofed. Mesh traffic is
// exempt when POSTROUTING jumps to EDGELINK-POSTROUTING (which accepts
// mesh-to-mesh) before it.
var cniMasqChains = []struct{ cni, chain string }{
	{"Flannel", "FLANNEL-POSTRTG"},
}

// masqueradeChecks names each known CNI masquerade chain that nat
// POSTROUTING jumps to (none: no check), what it masquerades, and whether
// mesh traffic is exempt from it. ours says whether EDGELINK-POSTROUTING
// itself is in place (its own check reports what is wrong with it).
func masqueradeChecks(ipt iptablesLister, fam string, ours bool) []agentapi.Check {
	post, err := ipt.List("nat", "POSTROUTING")
	if err != nil {
		return nil // the SNAT exemption check reports it
	}
	jump := func(chain string) int {
		for i, r := range post {
			if strings.HasPrefix(r, "-A POSTROUTING ") && strings.HasSuffix(r, "-j "+chain) {
				return i
			}
		}
		return -1
	}
	var out []agentapi.Check
	for _, m := range cniMasqChains {
		at := jump(m.chain)
		if at < 0 {
			continue
		}
		name := fmt.Sprintf("%s masquerade (%s)", m.cni, fam)
		what := fmt.Sprintf("nat POSTROUTING jumps to %s's %s", m.cni, m.chain)
		if flows := masqueraded(ipt, m.chain); len(flows) > 0 {
			what += " (masquerades " + strings.Join(flows, ", ") + ")"
		}
		if e := jump(chainNAT); ours && e >= 0 && e < at {
			out = append(out, agentapi.OK(name, what+" after "+chainNAT+": mesh traffic is exempt"))
			continue
		}
		out = append(out, agentapi.Fail(name, what+" before "+chainNAT+" accepts mesh traffic: pod traffic to other segments leaves with the node's address and the other side drops it as spoofed",
			"the agent restores its chain and its first place in nat POSTROUTING within 10 s; if the SNAT exemption check fails too, see its fix"))
	}
	return out
}

// masqueraded lists what chain masquerades, one "SRC to DST" per
// MASQUERADE rule ("any" for no -s/-d, "not X" for "! -s X").
func masqueraded(ipt iptablesLister, chain string) []string {
	rules, err := ipt.List("nat", chain)
	if err != nil {
		return nil
	}
	var out []string
	for _, r := range rules {
		f := strings.Fields(r)
		if !containsSeq(f, "-j", "MASQUERADE") {
			continue
		}
		match := func(flag string) string {
			for i := 0; i+1 < len(f); i++ {
				if f[i] == flag {
					v := f[i+1]
					if p, err := netip.ParsePrefix(v); err == nil {
						v = p.String()
					}
					if i > 0 && f[i-1] == "!" {
						v = "not " + v
					}
					return v
				}
			}
			return "any"
		}
		out = append(out, match("-s")+" to "+match("-d"))
	}
	return out
}

func containsSeq(f []string, a, b string) bool {
	for i := 0; i+1 < len(f); i++ {
		if f[i] == a && f[i+1] == b {
			return true
		}
	}
	return false
}
