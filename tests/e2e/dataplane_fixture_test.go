package e2e

import (
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/modules/routing"
	"github.com/edgelink/edgelink/pkg/p2p"
	"github.com/edgelink/edgelink/tests/cluster"
	"github.com/edgelink/edgelink/tests/testutil"
)

// dpNode is an edge node of the test control plane running a full agent
// (metaSync from its edgecore, tunnel with the KubeEdge certificates,
// routing), with one pod namespace wired to it by a veth pair.
type dpNode struct {
	edge  *cluster.EdgeNode
	agent *testutil.Agent
	pod   string     // pod namespace (`ip netns` name)
	podIP netip.Addr // in the pod, /24 with the node side as gateway
}

// ipIn runs ip with args in netns.
func ipIn(t *testing.T, netns string, args ...string) {
	t.Helper()
	if out, err := exec.Command("ip", append([]string{"-n", netns}, args...)...).CombinedOutput(); err != nil {
		t.Fatalf("ip -n %s %v: %v %s", netns, args, err, out)
	}
}

// addPod makes a pod namespace behind node e with addresses ip/24 and
// ip6/64 (gateways .1 and ::1 on the node's side) and registers the pod
// with those IPs in the API.
func addPod(t *testing.T, cp *cluster.ControlPlane, e *cluster.EdgeNode, name string, ip, ip6 netip.Addr) string {
	t.Helper()
	podNS := e.NetNS + "-" + name
	if len(podNS) > 40 {
		t.Fatalf("namespace name %s too long", podNS)
	}
	if out, err := exec.Command("ip", "netns", "add", podNS).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", podNS).Run() })
	gw := ip.As4()
	gw[3] = 1
	host := "v" + name
	ipIn(t, e.NetNS, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", podNS)
	ipIn(t, e.NetNS, "addr", "add", netip.AddrFrom4(gw).String()+"/24", "dev", host)
	ipIn(t, e.NetNS, "link", "set", host, "up")
	ipIn(t, podNS, "link", "set", "lo", "up")
	ipIn(t, podNS, "addr", "add", ip.String()+"/24", "dev", "eth0")
	ipIn(t, podNS, "link", "set", "eth0", "up")
	ipIn(t, podNS, "route", "add", "default", "via", netip.AddrFrom4(gw).String())
	gw6 := ip6.As16()
	gw6[15] = 1
	ipIn(t, e.NetNS, "addr", "add", netip.AddrFrom16(gw6).String()+"/64", "dev", host, "nodad")
	ipIn(t, podNS, "addr", "add", ip6.String()+"/64", "dev", "eth0", "nodad")
	ipIn(t, podNS, "-6", "route", "add", "default", "via", netip.AddrFrom16(gw6).String())
	cp.CreatePod(t, "dataplane", name, e.Name, nil, nil)
	cp.SetPodIP(t, "dataplane", name, ip.String(), ip6.String())
	return podNS
}

// agentConfig is a full agent for edge node e (relays: the given ones).
func agentConfig(t *testing.T, e *cluster.EdgeNode, relays []v1.RelayNode, cloud, edge []string) *v1.AgentConfig {
	c := v1.NewDefault()
	c.NodeName, c.DataDir = e.Name, t.TempDir()
	c.Modules.MetaSync.MetaServer = e.MetaServer
	c.Modules.IPAM.Enable = false
	c.Modules.EdgeCNI.Enable = true
	c.Modules.EdgeCNI.MeshCIDRConfig = v1.MeshCIDRConfig{CloudCIDR: cloud, EdgeCIDR: edge}
	tn := &c.Modules.Tunnel
	tn.IdentityFile = filepath.Join(c.DataDir, "tunnel", "identity.key")
	tn.CAFile = filepath.Join(e.Dir, "ca", "rootCA.crt")
	tn.CertFile, tn.KeyFile = filepath.Join(e.Dir, "certs", "server.crt"), filepath.Join(e.Dir, "certs", "server.key")
	tn.RoutableCIDRs = []string{"198.18.0.0/15"}
	tn.RelayNodes = relays
	return c
}

func dataplaneStatus(t *testing.T, a *testutil.Agent) routing.Status {
	t.Helper()
	var st routing.Status
	if err := a.GetJSON("/v1/dataplane", &st); err != nil {
		t.Fatalf("dataplane status: %v", err)
	}
	return st
}

// waitFor polls cond every 100 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := cond()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > timeout {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// directTo reports whether a has a direct path to node.
func directTo(a *testutil.Agent, node string) error {
	var peers []p2p.PeerStatus
	if err := a.GetJSON("/v1/tunnel/peers", &peers); err != nil {
		return err
	}
	for _, p := range peers {
		if p.Node == node {
			if p.Path == p2p.PathDirectQUIC || p.Path == p2p.PathDirectTCP {
				return nil
			}
			return fmt.Errorf("path to %s is %s", node, p.Path)
		}
	}
	return fmt.Errorf("no peer %s", node)
}

// inNS runs f with its sockets created in the pod namespace.
func inNS(t *testing.T, name string, f func() error) error {
	t.Helper()
	n, err := ns.GetNS(filepath.Join("/var/run/netns", name))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	return n.Do(func(ns.NetNS) error { return f() })
}

func execIn(podNS string, args ...string) (string, error) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", podNS}, args...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
