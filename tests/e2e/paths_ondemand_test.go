package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/p2p"
	"github.com/edgelink/edgelink/tests/cluster"
	"github.com/edgelink/edgelink/tests/testutil"
)

// Paths on demand (modules.tunnel.pathIdleTimeout) with real agents on
// three edge nodes of the shared control plane, od-1 the relay: before
// any traffic, od-2 keeps a path to the relay only and lists od-3 as
// idle; the first ping from a pod on od-2 to a pod on od-3 is answered
// (its packet waits for the path instead of being dropped) and nothing is
// dropped for want of a path; the relay, which no pod traffic of its own
// used, sets a path up for `edgelink ping` and lets it go again, with its
// connection, once the idle timeout has passed.
// Needs root.
func TestPathsOnDemand(t *testing.T) {
	cp := cluster.Shared(t)
	e1, e2, e3 := cp.AddEdgeNode(t, "od-1"), cp.AddEdgeNode(t, "od-2"), cp.AddEdgeNode(t, "od-3")
	relays := []v1.RelayNode{{NodeName: e1.Name, AdvertiseAddress: []string{e1.IP.String()}}}
	cloud, edge := []string{"10.244.0.0/16", "fd00:244::/32"}, []string{"10.245.0.0/16", "fd00:245::/32"}
	// od-2's pod in the cloud segment, od-3's in the edge segment: traffic
	// between them goes through the TUN and the tunnel (pods of one
	// segment would meet on the underlay).
	ip2, ip3 := netip.MustParseAddr("10.244.21.2"), netip.MustParseAddr("10.245.22.2")
	pod2 := addPod(t, cp, e2, "odb", ip2, netip.MustParseAddr("fd00:244:21::2"))
	addPod(t, cp, e3, "odc", ip3, netip.MustParseAddr("fd00:245:22::2"))
	var agents []*testutil.Agent
	for _, e := range []*cluster.EdgeNode{e1, e2, e3} {
		c := agentConfig(t, e, relays, cloud, edge)
		c.Modules.Tunnel.PathIdleTimeout = "10s"
		a := testutil.NewAgent(t, c, e.NetNS)
		a.Start("Data plane up")
		agents = append(agents, a)
	}
	a1, a2 := agents[0], agents[1]

	pathOf := func(a *testutil.Agent, node string) (p2p.PeerStatus, error) {
		var peers []p2p.PeerStatus
		if err := a.GetJSON("/v1/tunnel/peers", &peers); err != nil {
			return p2p.PeerStatus{}, err
		}
		for _, p := range peers {
			if p.Node == node {
				return p, nil
			}
		}
		return p2p.PeerStatus{}, fmt.Errorf("no peer %s", node)
	}
	waitFor(t, 60*time.Second, "od-2 knows od-3 (idle) and holds a path to the relay", func() error {
		p3, err := pathOf(a2, e3.Name)
		if err != nil {
			return err
		}
		if p3.Path != p2p.PathIdle {
			return fmt.Errorf("od-3 is %s, want idle", p3.Path)
		}
		if p1, err := pathOf(a2, e1.Name); err != nil || (p1.Path != p2p.PathDirectTCP && p1.Path != p2p.PathDirectQUIC) {
			return fmt.Errorf("relay od-1: %+v %v", p1.Path, err)
		}
		// The pod's route must be in od-2's plan before the ping, or
		// the ping would fail for another reason than the path.
		// Both pods' routes must be in the plans before the ping (the
		// echo and its reply), or it would fail for another reason than
		// the path.
		if plan := dataplaneStatus(t, a2).Plan; !strings.Contains(plan, ip3.String()) {
			return fmt.Errorf("od-3's pod not in od-2's plan yet:\n%s", plan)
		}
		if plan := dataplaneStatus(t, agents[2]).Plan; !strings.Contains(plan, ip2.String()) {
			return fmt.Errorf("od-2's pod not in od-3's plan yet:\n%s", plan)
		}
		return nil
	})

	t.Run("the first packet waits for the path", func(t *testing.T) {
		before := dataplaneStatus(t, a2).Stats.DropQueue
		start := time.Now()
		if out, err := execIn(pod2, "ping", "-c1", "-W10", ip3.String()); err != nil {
			for i, a := range agents[1:] {
				p, perr := pathOf(a, []string{e3.Name, e2.Name}[i])
				t.Logf("%s: forwarder %+v; path %+v %v", []string{e2.Name, e3.Name}[i], dataplaneStatus(t, a).Stats, p, perr)
			}
			t.Fatalf("the first ping over an idle path: %v\n%s", err, out)
		}
		t.Logf("first ping over an idle path answered in %s", time.Since(start).Round(time.Millisecond))
		if got := dataplaneStatus(t, a2).Stats.DropQueue; got != before {
			t.Errorf("od-2 dropped %d packets for want of a path, want none", got-before)
		}
		if err := directTo(a2, e3.Name); err != nil {
			t.Errorf("after the ping: %v", err)
		}
	})

	t.Run("an idle path is let go", func(t *testing.T) {
		if p, err := pathOf(a1, e3.Name); err != nil || p.Path != p2p.PathIdle {
			t.Fatalf("the relay's path to od-3 before anything asked: %+v %v, want idle", p.Path, err)
		}
		out, errOut, code := edgelink(t, "ping", "-c", "1", e3.Name, "--socket", a1.Config.StatusSocket)
		if code != 0 {
			t.Fatalf("edgelink ping od-3 from the relay: exit %d: %s%s", code, out, errOut)
		}
		if err := directTo(a1, e3.Name); err != nil {
			t.Fatalf("after the ping: %v", err)
		}
		took := waitFor(t, 40*time.Second, "the relay's path to od-3 let go", func() error {
			p, err := pathOf(a1, e3.Name)
			if err != nil {
				return err
			}
			if p.Path != p2p.PathIdle || len(p.Conns) != 0 {
				return fmt.Errorf("path %s with %d connections", p.Path, len(p.Conns))
			}
			return nil
		})
		t.Logf("idle path let go %s after the ping", took.Round(time.Millisecond))
	})
}
