package dataplane

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/modules/routing"
	"github.com/edgelink/edgelink/pkg/metadata"
	"github.com/edgelink/edgelink/pkg/p2p"
	"github.com/edgelink/edgelink/tests/testutil"
)

func init() {
	Register(edgelinkCase{})
	Register(edgelinkCase{relayed: true})
}

// edgelinkCase runs EdgeLink agents (tunnel + routing) on both nodes; pod
// CIDRs are in different mesh segments, so pod traffic goes TUN -> libp2p
// -> TUN.
//
// direct: the nodes dial each other over the underlay (TCP, TLS, yamux).
// Each agent's peer cache is seeded with the other's peer ID: no relay.
//
// relayed: a relay agent runs in a third namespace behind NodeA
// (198.18.51.2, routed by NodeA), and NodeB drops everything to and from
// NodeA's address: A and B meet only through the relay, which carries
// every packet (its CPU counts too).
//
// members are more node names in the agents' metadata, without pod CIDRs:
// members that are no agent of the case (the hostile-member benchmark's
// rogue).
//
// pathIdle, if set, is modules.tunnel.pathIdleTimeout (paths on demand):
// the case is then ready when A knows B, with no path yet (the cold-path
// benchmark).
type edgelinkCase struct {
	relayed  bool
	members  []string
	pathIdle string
}

func (c edgelinkCase) Name() string {
	if c.relayed {
		return "edgelink_relayed"
	}
	return "edgelink_direct"
}

type benchNode struct {
	name, netns string
	ip          netip.Addr
	port        int
	key         string
	id          string
}

// edgelinkRun is a started edgelinkCase: agents[i] runs nodes[i] (A, B,
// then the relay), with certificates of the CA in caDir.
type edgelinkRun struct {
	nodes  []*benchNode
	agents []*testutil.Agent
	caDir  string
	// run runs the edgelink command line to completion.
	run func(args ...string) (string, error)
}

func (c edgelinkCase) Setup(ctx context.Context, env *Env) ([]int, func(), error) {
	r, err := c.start(ctx, env)
	if err != nil {
		return nil, nil, err
	}
	var pids []int
	for _, a := range r.agents {
		pids = append(pids, a.PID())
	}
	return pids, nil, nil
}

// start starts the agents and returns when A has the intended path to B.
func (c edgelinkCase) start(ctx context.Context, env *Env) (*edgelinkRun, error) {
	t := env.T
	bin := filepath.Join(testutil.Binaries(t), "edgelink")
	run := func(args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("edgelink %v: %v %s", args, err, out)
		}
		return strings.TrimSpace(string(out)), nil
	}
	caDir := filepath.Join(env.WorkDir, "ca")
	if _, err := run("ca", "init", "--dir", caDir); err != nil {
		return nil, err
	}
	nodes := []*benchNode{
		{name: "bench-a", netns: env.NodeA, ip: env.UnderlayA, port: 20006},
		{name: "bench-b", netns: env.NodeB, ip: env.UnderlayB, port: 20006},
	}
	if c.relayed {
		relayNS, err := addRelayNS(ctx, env)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, &benchNode{name: "bench-relay", netns: relayNS, ip: relayIP, port: 20006})
	}
	for _, n := range nodes {
		n.key = filepath.Join(env.WorkDir, n.name, "tunnel", "identity.key")
		id, err := run("identity", "--key", n.key)
		if err != nil {
			return nil, err
		}
		n.id = id
		if _, err := run("ca", "issue", "--dir", caDir, "--node", n.name, "--identity", n.key, "--out", filepath.Join(env.WorkDir, n.name)); err != nil {
			return nil, err
		}
	}
	if c.relayed {
		// NodeB and NodeA cannot talk directly on the tunnel port (at any
		// of NodeA's addresses); the relay is exempt.
		for _, rule := range [][]string{{"INPUT", "-s"}, {"OUTPUT", "-d"}} {
			for _, proto := range []string{"tcp", "udp"} {
				if _, err := env.Exec(ctx, env.NodeB, "iptables", "-A", rule[0], "!", rule[1], relayIP.String(), "-p", proto,
					"-m", "multiport", "--ports", "20006", "-j", "DROP"); err != nil {
					return nil, err
				}
			}
		}
	}

	// Metadata as the agents would have saved it: the two nodes and their
	// pod CIDRs (the bench has no control plane; metaSync starts from
	// this snapshot and keeps retrying an unreachable metaServer).
	snap := metadata.Empty()
	snap.Version = 1
	snap.Nodes[nodes[0].name] = &metadata.NodeInfo{Name: nodes[0].name, PodCIDRs: []netip.Prefix{env.PodCIDRA},
		Addresses: []metadata.NodeAddress{{Type: "InternalIP", Address: env.UnderlayA}}}
	snap.Nodes[nodes[1].name] = &metadata.NodeInfo{Name: nodes[1].name, PodCIDRs: []netip.Prefix{env.PodCIDRB},
		Addresses: []metadata.NodeAddress{{Type: "InternalIP", Address: env.UnderlayB}}}
	for _, m := range c.members {
		snap.Nodes[m] = &metadata.NodeInfo{Name: m}
	}

	var relays []v1.RelayNode
	if c.relayed {
		relays = []v1.RelayNode{{NodeName: "bench-relay", AdvertiseAddress: []string{relayIP.String()}}}
	}
	var agents []*testutil.Agent
	for i, n := range nodes {
		dir := filepath.Join(env.WorkDir, n.name)
		cfg := v1.NewDefault()
		cfg.NodeName, cfg.DataDir = n.name, dir
		cfg.StatusSocket = filepath.Join(dir, "agent.sock")
		cfg.Modules.IPAM.Enable = false
		cfg.Modules.MetaSync.MetaServer = "http://127.0.0.1:9" // nothing there
		tn := &cfg.Modules.Tunnel
		tn.ListenPort = n.port
		tn.IdentityFile = n.key
		tn.CAFile = filepath.Join(caDir, "ca.crt")
		tn.CertFile, tn.KeyFile = filepath.Join(dir, n.name+".crt"), filepath.Join(dir, n.name+".key")
		tn.RoutableCIDRs = []string{env.Underlay.String()}
		tn.RelayNodes = relays
		tn.PathIdleTimeout = c.pathIdle
		if n.name != "bench-relay" {
			cfg.Modules.EdgeCNI.Enable = true
			cfg.Modules.EdgeCNI.MeshCIDRConfig = v1.MeshCIDRConfig{CloudCIDR: []string{env.PodCIDRA.String()}, EdgeCIDR: []string{env.PodCIDRB.String()}}
			if err := metadata.Save(filepath.Join(dir, "metasync", "snapshot.json"), snap); err != nil {
				return nil, err
			}
		} else {
			cfg.Modules.MetaSync.Enable = false
		}
		if !c.relayed {
			other := nodes[1-i]
			cache := fmt.Sprintf(`{"peers":[{"node":%q,"peer":%q,"addrs":["/ip4/%s/tcp/%d"],"seen":%d}]}`,
				other.name, other.id, other.ip, other.port, time.Now().Unix())
			if err := writeFile(filepath.Join(dir, "tunnel", "peers.json"), cache); err != nil {
				return nil, err
			}
		}
		a := testutil.NewAgent(t, cfg, n.netns)
		a.Start("Tunnel up")
		agents = append(agents, a)
		if cfg.Modules.EdgeCNI.Enable {
			// The forwarder's counters at the end of the case: drops
			// explain a slow path.
			name := n.name
			t.Cleanup(func() {
				var st routing.Status
				if err := a.GetJSON("/v1/dataplane", &st); err == nil {
					t.Logf("%s: %s forwarder %+v", c.Name(), name, st.Stats)
				}
			})
		}
	}

	// Ready when A has the intended path to B.
	want := func(p p2p.PeerStatus) bool {
		if c.pathIdle != "" {
			return p.Path == p2p.PathIdle
		}
		if c.relayed {
			return p.Path == p2p.PathRelayed
		}
		// When one agent dialed before the other listened, the path
		// starts on QUIC and moves to TCP within seconds: wait for it.
		return p.Path == p2p.PathDirectTCP
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var peers []p2p.PeerStatus
		_ = agents[0].GetJSON("/v1/tunnel/peers", &peers)
		for _, p := range peers {
			if p.Node == nodes[1].name && want(p) {
				t.Logf("%s: A->B path %s %s", c.Name(), p.Path, p.RemoteAddr)
				if c.relayed {
					// Which transport each end uses to the relay: the
					// relayed results vary with it.
					for i, a := range agents[:2] {
						var rp []p2p.PeerStatus
						_ = a.GetJSON("/v1/tunnel/peers", &rp)
						for _, q := range rp {
							if q.Node == "bench-relay" {
								t.Logf("%s: %s->relay path %s %s, connections %+v", c.Name(), nodes[i].name, q.Path, q.RemoteAddr, q.Conns)
							}
						}
					}
				}
				return &edgelinkRun{nodes: nodes, agents: agents, caDir: caDir, run: run}, nil
			}
		}
		if time.Now().After(deadline) {
			for i, a := range agents {
				t.Logf("agent %s log:\n%s", nodes[i].name, tail(a.Log(), 40))
			}
			return nil, fmt.Errorf("no %s path from A to B within 60s: %+v", c.Name(), peers)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(content), 0o644)
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

var relayIP = netip.MustParseAddr("198.18.51.2")

// addRelayNS makes the relay's namespace: a veth to NodeA (198.18.51.1 on
// NodeA's side), NodeB routing 198.18.51.0/24 via NodeA. It is deleted
// when the run ends.
func addRelayNS(ctx context.Context, env *Env) (string, error) {
	name := env.NodeA + "-relay"
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", name).CombinedOutput(); err != nil {
		return "", fmt.Errorf("ip netns add %s: %v %s", name, err, out)
	}
	env.T.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	for _, args := range [][]string{
		{"-n", env.NodeA, "link", "add", "vrelay", "type", "veth", "peer", "name", "ul0", "netns", name},
		{"-n", env.NodeA, "addr", "add", "198.18.51.1/24", "dev", "vrelay"},
		{"-n", env.NodeA, "link", "set", "vrelay", "up"},
		{"-n", name, "link", "set", "lo", "up"},
		{"-n", name, "addr", "add", relayIP.String() + "/24", "dev", "ul0"},
		{"-n", name, "link", "set", "ul0", "up"},
		{"-n", name, "route", "add", "default", "via", "198.18.51.1"},
		{"-n", env.NodeB, "route", "add", "198.18.51.0/24", "via", env.UnderlayA.String()},
	} {
		if err := env.IP(ctx, args...); err != nil {
			return "", err
		}
	}
	return name, nil
}
