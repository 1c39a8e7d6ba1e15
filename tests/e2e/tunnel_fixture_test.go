package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/modules/tunnel"
	"github.com/edgelink/edgelink/pkg/p2p"
	"github.com/edgelink/edgelink/tests/testutil"
	"github.com/edgelink/edgelink/tests/topology"
)

// mesh is a topology with an agent (tunnel module only) on every host,
// all members of one cluster CA.
type mesh struct {
	t      *testing.T
	tp     *topology.Topology
	caDir  string
	relays []v1.RelayNode
	agents map[string]*testutil.Agent
}

// meshSpec is the tunnel issue's topology: two relays and a cloud node on
// the public segment; site A (hole-punchable NAT) with a1 and a2 on one
// LAN, site C (hole-punchable) with c1, site B (symmetric NAT) with b1.
var meshSpec = topology.Spec{
	Public: []string{"relay-1", "relay-2", "cloud-1"},
	Sites: []topology.SiteSpec{
		{Name: "A", NAT: topology.HolePunchable, Hosts: []string{"a1", "a2"}},
		{Name: "C", NAT: topology.HolePunchable, Hosts: []string{"c1"}},
		{Name: "B", NAT: topology.Symmetric, Hosts: []string{"b1"}},
	},
}

// newMesh builds spec and an agent for every host except those in
// without.
func newMesh(t *testing.T, spec topology.Spec, without ...string) *mesh {
	t.Helper()
	tp := topology.New(t, spec)
	m := &mesh{t: t, tp: tp, caDir: filepath.Join(t.TempDir(), "ca"), agents: map[string]*testutil.Agent{}}
	if _, errOut, code := edgelink(t, "ca", "init", "--dir", m.caDir); code != 0 {
		t.Fatalf("ca init: %s", errOut)
	}
	for _, name := range spec.Public {
		if strings.HasPrefix(name, "relay-") {
			m.relays = append(m.relays, v1.RelayNode{NodeName: name, AdvertiseAddress: []string{tp.Host(name).IP.String()}})
		}
	}
	for _, h := range tp.Hosts() {
		if !slices.Contains(without, h.Name) {
			m.agents[h.Name] = m.newAgent(h, "", "")
		}
	}
	return m
}

// newAgent writes an agent config for host h with a fresh identity and a
// certificate from the mesh CA (issuer overrides the CA directory,
// validity the certificate's lifetime).
func (m *mesh) newAgent(h *topology.Host, issuer, validity string) *testutil.Agent {
	t := m.t
	t.Helper()
	dir := t.TempDir()
	c := v1.NewDefault()
	c.NodeName, c.DataDir = h.Name, dir
	c.Modules.MetaSync.Enable, c.Modules.IPAM.Enable = false, false
	tn := &c.Modules.Tunnel
	tn.Enable = true
	tn.IdentityFile = filepath.Join(dir, "tunnel", "identity.key")
	tn.RoutableCIDRs = []string{"198.18.0.0/15"}
	tn.RelayNodes = m.relays
	if issuer == "" {
		issuer = m.caDir
	}
	var extra []string
	if validity != "" {
		extra = []string{"--validity", validity}
	}
	testutil.IssueMember(t, tn, h.Name, issuer, m.caDir, filepath.Join(dir, "certs"), extra...)
	return testutil.NewAgent(t, c, h.NetNS)
}

func (m *mesh) startAll() {
	m.t.Helper()
	for _, name := range m.names() {
		m.agents[name].Start("Tunnel up")
	}
}

func (m *mesh) names() []string {
	var out []string
	for _, h := range m.tp.Hosts() {
		if m.agents[h.Name] != nil {
			out = append(out, h.Name)
		}
	}
	return out
}

func (m *mesh) peers(node string) map[string]p2p.PeerStatus {
	var list []p2p.PeerStatus
	if err := m.agents[node].GetJSON("/v1/tunnel/peers", &list); err != nil {
		return nil
	}
	out := map[string]p2p.PeerStatus{}
	for _, p := range list {
		out[p.Node] = p
	}
	return out
}

func (m *mesh) status(node string) tunnel.Status {
	var st tunnel.Status
	if err := m.agents[node].GetJSON("/v1/tunnel/status", &st); err != nil {
		m.t.Fatalf("%s status: %v", node, err)
	}
	return st
}

// pathCheck says what is wrong with the path from one node to another,
// or "" when it is as wanted.
type pathCheck func(p p2p.PeerStatus, ok bool) string

// waitPaths polls until every check holds on both ends of its pair, and
// returns how long that took; it fails the test after timeout, printing
// what was wrong.
func (m *mesh) waitPaths(timeout time.Duration, checks map[[2]string]pathCheck) time.Duration {
	m.t.Helper()
	return waitPeerPaths(m.t, timeout, m.peers, checks)
}

// waitPeerPaths is waitPaths for any set of agents: peers reads one
// node's view of its peers.
func waitPeerPaths(t *testing.T, timeout time.Duration, peers func(node string) map[string]p2p.PeerStatus, checks map[[2]string]pathCheck) time.Duration {
	t.Helper()
	start := time.Now()
	var problems []string
	for {
		problems = problems[:0]
		views := map[string]map[string]p2p.PeerStatus{}
		for pair, check := range checks {
			for _, dir := range [][2]string{{pair[0], pair[1]}, {pair[1], pair[0]}} {
				v, ok := views[dir[0]]
				if !ok {
					v = peers(dir[0])
					views[dir[0]] = v
				}
				p, found := v[dir[1]]
				if msg := check(p, found); msg != "" {
					problems = append(problems, fmt.Sprintf("%s->%s: %s (path %s via %q, remote %s, conns %+v, err %q)",
						dir[0], dir[1], msg, p.Path, p.Relay, p.RemoteAddr, p.Conns, p.LastError))
				}
			}
		}
		if len(problems) == 0 {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("paths not as expected after %s:\n%s", timeout, strings.Join(problems, "\n"))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func direct(p p2p.PeerStatus, ok bool) string {
	switch {
	case !ok:
		return "peer unknown"
	case p.Path != p2p.PathDirectTCP && p.Path != p2p.PathDirectQUIC:
		return "not direct"
	}
	return ""
}

// directIn wants a direct path whose remote address is in pfx.
func directIn(pfx netip.Prefix) pathCheck {
	return func(p p2p.PeerStatus, ok bool) string {
		if msg := direct(p, ok); msg != "" {
			return msg
		}
		parts := strings.Split(p.RemoteAddr, "/")
		if ip, err := netip.ParseAddr(parts[min(2, len(parts)-1)]); err != nil || !pfx.Contains(ip) {
			return "direct, but not over " + pfx.String()
		}
		return ""
	}
}

// noRelay wants a direct path and no relayed connection at all.
func noRelay(check pathCheck) pathCheck {
	return func(p p2p.PeerStatus, ok bool) string {
		if msg := check(p, ok); msg != "" {
			return msg
		}
		for _, c := range p.Conns {
			if c.Path == p2p.PathRelayed {
				return "a relayed connection exists"
			}
		}
		return ""
	}
}

// relayedVia wants a relayed path through one of relays (any if none).
func relayedVia(relays ...string) pathCheck {
	return func(p p2p.PeerStatus, ok bool) string {
		switch {
		case !ok:
			return "peer unknown"
		case p.Path != p2p.PathRelayed:
			return "not relayed"
		case len(relays) > 0 && !slices.Contains(relays, p.Relay):
			return "relayed via " + p.Relay + ", want one of " + strings.Join(relays, ",")
		}
		return ""
	}
}

// fdCount is the number of open files of a process.
func fdCount(pid int) int {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(fds)
}
