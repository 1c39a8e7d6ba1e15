package e2e

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/tests/cluster"
	"github.com/edgelink/edgelink/tests/testutil"
)

// Two cloud nodes run the real flanneld (v0.28, vxlan, --kube-subnet-mgr
// against the test kube-apiserver, --ip-masq: Flannel's masquerade rules
// in nat POSTROUTING) with pods wired as Flannel's CNI plugin wires them;
// an edge node (real edgecore) has a pod outside Flannel's network. Every
// node runs an agent. Cloud pods reach each other over Flannel's vxlan;
// a cloud pod and the edge pod reach each other by pod IP both ways, and
// the edge pod's HTTP server (a Prometheus scrape from the cloud pod)
// sees the cloud pod's own address, not its node's: Flannel's masquerade
// does not touch mesh traffic. `edgelink diagnose` on a cloud node names
// Flannel's chain and says mesh traffic is exempt; with the agent's jump
// deleted, Flannel's masquerade takes the scrape (the edge drops it),
// diagnose fails naming it, and the agent restores the jump. Needs root.
func TestFlannelCloudNodes(t *testing.T) {
	cp := cluster.Shared(t)
	network := netip.MustParsePrefix("10.244.0.0/16")
	cloudCIDR, edgeCIDR := []string{network.String()}, []string{"10.245.0.0/16"}
	c1 := cp.AddCloudNode(t, "fl-cloud-1", netip.MustParsePrefix("10.244.1.0/24"))
	c2 := cp.AddCloudNode(t, "fl-cloud-2", netip.MustParsePrefix("10.244.2.0/24"))
	e := cp.AddEdgeNode(t, "fl-edge")

	t0 := time.Now()
	f1, f2 := startFlannel(t, cp, c1, network), startFlannel(t, cp, c2, network)
	t.Logf("flanneld up on both cloud nodes in %s: %v", time.Since(t0).Round(time.Millisecond), f1.SubnetEnv(t))
	podA, ipA := f1.addPod(t, cp, "fl-pa")
	podB, ipB := f2.addPod(t, cp, "fl-pb")
	ipE := netip.MustParseAddr("10.245.1.2")
	podE := addPod(t, cp, e, "flpe", ipE, netip.MustParseAddr("fd00:245:1::2"))

	caDir := filepath.Join(t.TempDir(), "ca")
	if out, err := testutil.EdgelinkCmd(t, "ca", "init", "--dir", caDir).CombinedOutput(); err != nil {
		t.Fatalf("edgelink ca init: %v\n%s", err, out)
	}
	relays := []v1.RelayNode{{NodeName: c1.Name, AdvertiseAddress: []string{c1.IP.String()}}}
	member := func(c *v1.AgentConfig) {
		testutil.IssueMember(t, &c.Modules.Tunnel, c.NodeName, caDir, caDir, filepath.Join(t.TempDir(), "certs"))
	}
	agents := map[string]*testutil.Agent{}
	for _, c := range []*cluster.CloudNode{c1, c2} {
		cfg := v1.NewDefault()
		cfg.NodeName, cfg.DataDir = c.Name, t.TempDir()
		m := &cfg.Modules
		m.MetaSync.Source, m.MetaSync.Kubeconfig = v1.SourceKubeconfig, cp.Kubeconfig // the kube-apiserver on the namespace's loopback
		m.IPAM.Enable, m.EdgeCNI.Enable = false, true
		m.EdgeCNI.MeshCIDRConfig = v1.MeshCIDRConfig{CloudCIDR: cloudCIDR, EdgeCIDR: edgeCIDR}
		m.Tunnel.IdentityFile = filepath.Join(cfg.DataDir, "tunnel", "identity.key")
		m.Tunnel.RoutableCIDRs = []string{"198.18.0.0/15"}
		m.Tunnel.RelayNodes = relays
		member(cfg)
		agents[c.Name] = testutil.NewAgent(t, cfg, c.NetNS)
	}
	ecfg := agentConfig(t, e, relays, cloudCIDR, edgeCIDR)
	member(ecfg)
	agents[e.Name] = testutil.NewAgent(t, ecfg, e.NetNS)
	for _, a := range agents {
		a.Start("Data plane up")
	}

	t.Run("cloud pod to cloud pod over Flannel vxlan", func(t *testing.T) {
		out, err := exec.Command("ip", "-n", c1.NetNS, "route", "get", ipB.String()).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "dev flannel.1") {
			t.Errorf("%s's route to %s: want dev flannel.1, got %v %s", c1.Name, ipB, err, out)
		}
		for _, c := range []struct {
			from string
			to   netip.Addr
		}{{podA, ipB}, {podB, ipA}} {
			waitFor(t, 30*time.Second, "ping "+c.to.String(), func() error {
				out, err := execIn(c.from, "ping", "-c1", "-W1", c.to.String())
				if err != nil {
					return fmt.Errorf("%v: %s", err, out)
				}
				return nil
			})
		}
	})

	t.Run("Flannel's masquerade rules in place", func(t *testing.T) {
		out, err := exec.Command("ip", "netns", "exec", c1.NetNS, "iptables", "-t", "nat", "-S").CombinedOutput()
		s := string(out)
		if err != nil || !strings.Contains(s, "-A POSTROUTING -m comment --comment \"flanneld masq\" -j FLANNEL-POSTRTG") ||
			!strings.Contains(s, "-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4") {
			t.Fatalf("nat table of %s: %v\n%s", c1.Name, err, s)
		}
	})

	took := waitFor(t, 60*time.Second, "cloud pod pings edge pod", func() error {
		out, err := execIn(podA, "ping", "-c1", "-W1", ipE.String())
		if err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		return nil
	})
	t.Logf("cloud pod -> edge pod works %s after the agents started", took.Round(time.Millisecond))

	t.Run("cloud pod and edge pod, ICMP both ways", func(t *testing.T) {
		for _, c := range []struct {
			from string
			to   netip.Addr
		}{{podA, ipE}, {podB, ipE}, {podE, ipA}, {podE, ipB}} {
			if out, err := execIn(c.from, "ping", "-c3", "-i0.2", "-W2", c.to.String()); err != nil {
				t.Errorf("%s: ping %s: %v\n%s", c.from, c.to, err, out)
			}
		}
	})

	// The edge pod serves a Prometheus endpoint that records who asked.
	var mu sync.Mutex
	var peers []string
	var ln net.Listener
	if err := inNS(t, podE, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(ipE, 9100).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		peers = append(peers, r.RemoteAddr)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintln(w, "# TYPE edge_pod_up gauge\nedge_pod_up 1")
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	// scrape GETs /metrics from pod and returns the source the edge pod saw.
	scrape := func(pod string, timeout time.Duration) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		code, body, err := cluster.HTTPGet(ctx, filepath.Join("/var/run/netns", pod), "http://"+netip.AddrPortFrom(ipE, 9100).String()+"/metrics")
		if err != nil || code != 200 || !strings.Contains(string(body), "edge_pod_up 1") {
			return "", fmt.Errorf("scrape from %s: %d %v %q", pod, code, err, body)
		}
		mu.Lock()
		defer mu.Unlock()
		host, _, _ := net.SplitHostPort(peers[len(peers)-1])
		return host, nil
	}

	t.Run("Prometheus scrape of the edge pod sees the cloud pod's address", func(t *testing.T) {
		for _, c := range []struct {
			pod string
			ip  netip.Addr
		}{{podA, ipA}, {podB, ipB}} {
			src, err := scrape(c.pod, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if src != c.ip.String() {
				t.Errorf("the edge pod saw the scrape from %s come from %s, want the pod's own %s (masqueraded?)", c.pod, src, c.ip)
			}
		}
	})

	t.Run("diagnose names Flannel's masquerade", func(t *testing.T) {
		for _, c := range []*cluster.CloudNode{c1, c2} {
			out, _ := testutil.EdgelinkCmd(t, "diagnose", "--socket", agents[c.Name].Config.StatusSocket).CombinedOutput()
			var line string
			for _, l := range strings.Split(string(out), "\n") {
				if strings.Contains(l, "Flannel masquerade (iptables)") {
					line = l
				}
			}
			if !strings.HasPrefix(line, "OK") || !strings.Contains(line, "FLANNEL-POSTRTG") || !strings.Contains(line, "mesh traffic is exempt") {
				t.Errorf("%s: edgelink diagnose:\n%s", c.Name, out)
			} else {
				t.Logf("%s: %s", c.Name, line)
			}
		}
	})

	t.Run("without the exemption Flannel masquerades, diagnose says so, the agent restores it", func(t *testing.T) {
		// Our jump is POSTROUTING's first rule (the diagnose above said so).
		if out, err := exec.Command("ip", "netns", "exec", c1.NetNS, "iptables", "-t", "nat", "-D", "POSTROUTING", "1").CombinedOutput(); err != nil {
			t.Fatalf("delete the jump: %v %s", err, out)
		}
		out, _ := testutil.EdgelinkCmd(t, "diagnose", "--socket", agents[c1.Name].Config.StatusSocket).CombinedOutput()
		if !strings.Contains(string(out), "FAIL  Flannel masquerade (iptables)") || !strings.Contains(string(out), "before EDGELINK-POSTROUTING") {
			t.Errorf("diagnose with the jump deleted:\n%s", out)
		}
		// Masqueraded to the node's address, the scrape is dropped by the
		// edge as spoofed (or, at most, arrives from the node's address).
		if src, err := scrape(podA, 2*time.Second); err == nil && src == ipA.String() {
			t.Errorf("with the exemption gone the edge pod still saw %s: was Flannel's masquerade in the path at all?", src)
		}
		took := waitFor(t, 20*time.Second, "the agent restores the exemption", func() error {
			src, err := scrape(podA, 2*time.Second)
			if err == nil && src != ipA.String() {
				err = fmt.Errorf("source %s", src)
			}
			return err
		})
		t.Logf("scrape from the cloud pod's own address again %s after the jump was deleted", took.Round(time.Millisecond))
	})
}
