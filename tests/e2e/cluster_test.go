package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/edgelink/edgelink/pkg/p2p"
	"github.com/edgelink/edgelink/tests/simcluster"
	"github.com/edgelink/edgelink/tests/testutil"
)

// The end-to-end issue's cluster (tests/simcluster): two cloud nodes with
// the reference bridge + host-local plugins and host-gw routes, two relays,
// site A (two edge nodes on one LAN) and site C behind hole-punchable NATs,
// site B behind a symmetric NAT; real cloudcore, kube-apiserver and an
// edgecore per edge node; an agent on every node. Each subtest is one of
// the scenarios, in order, on the same cluster. Needs root.
func TestCluster(t *testing.T) {
	c := simcluster.New(t, simcluster.Default)
	pods := map[string]*simcluster.Pod{}
	for _, n := range c.PodNodes() {
		pods[n.Name] = n.AddPod(t, "")
	}
	// The pairs of the issue: cloud<->A, cloud<->B, cloud<->C, A<->A on
	// one LAN, A<->C, A<->B, B<->C, and the two cloud nodes.
	pairs := [][2]string{
		{"cloud-1", "a1"}, {"cloud-2", "b1"}, {"cloud-1", "c1"}, {"a1", "a2"},
		{"a2", "c1"}, {"a1", "b1"}, {"b1", "c1"}, {"cloud-1", "cloud-2"},
	}
	took := waitFor(t, 90*time.Second, "every pod pings every other", func() error {
		for _, pr := range pairs {
			for _, d := range [][2]string{pr, {pr[1], pr[0]}} {
				if _, err := pods[d[0]].Exec("ping", "-c1", "-W1", pods[d[1]].IP.String()); err != nil {
					return fmt.Errorf("%s -> %s", pods[d[0]], pods[d[1]])
				}
			}
		}
		return nil
	})
	t.Logf("all pairs answer pings %s after the agents started", took.Round(time.Millisecond))

	t.Run("every pod reaches every other", func(t *testing.T) {
		for _, pr := range pairs {
			for _, d := range [][2]string{pr, {pr[1], pr[0]}} {
				from, to := pods[d[0]], pods[d[1]]
				if out, err := from.Exec("ping", "-c2", "-i0.2", "-W2", to.IP.String()); err != nil {
					t.Errorf("ping %s -> %s: %v\n%s", from, to, err, out)
				}
				if _, err := simcluster.Transfer(from, to, 8<<20); err != nil {
					t.Error(err)
				}
				udpExchange(t, testutil.Name(to.NS), testutil.Name(from.NS), to.IP)
			}
		}
	})

	t.Run("paths are as they should be", func(t *testing.T) {
		want := map[[2]string]func(p2p.PeerStatus, bool) string{
			{"a1", "a2"}:      noRelay(direct), // same LAN
			{"cloud-1", "a1"}: direct,          // public: the edge dials out
			{"cloud-2", "b1"}: direct,          // even through the symmetric NAT
			{"a1", "c1"}:      direct,          // hole-punched
			{"a1", "b1"}:      relayedVia(),    // symmetric NAT: relayed
			{"b1", "c1"}:      relayedVia(),
		}
		took := waitClusterPaths(t, c, 30*time.Second, want)
		t.Logf("paths as wanted (%s)", took.Round(time.Millisecond))
		// The cloud nodes reach each other's pods through the cloud's
		// own CNI, not the tunnel: no route of ours for cloud-2's CIDR.
		out, _ := c.Node("cloud-1").Host.Exec("ip", "route", "show", "proto", "77")
		if strings.Contains(out, c.Node("cloud-2").PodPrefix.String()) {
			t.Errorf("cloud-1 routes cloud-2's pods itself:\n%s", out)
		}
	})
}

// waitClusterPaths polls the agents' /v1/tunnel/peers until every check
// holds on both ends of its pair.
func waitClusterPaths(t *testing.T, c *simcluster.Cluster, timeout time.Duration, checks map[[2]string]func(p2p.PeerStatus, bool) string) time.Duration {
	t.Helper()
	peers := func(node string) map[string]p2p.PeerStatus {
		var list []p2p.PeerStatus
		_ = c.Node(node).Agent.GetJSON("/v1/tunnel/peers", &list)
		out := map[string]p2p.PeerStatus{}
		for _, p := range list {
			out[p.Node] = p
		}
		return out
	}
	return waitFor(t, timeout, "paths", func() error {
		var problems []string
		for pair, check := range checks {
			for _, d := range [][2]string{pair, {pair[1], pair[0]}} {
				p, ok := peers(d[0])[d[1]]
				if msg := check(p, ok); msg != "" {
					problems = append(problems, fmt.Sprintf("%s->%s: %s (path %s via %q)", d[0], d[1], msg, p.Path, p.Relay))
				}
			}
		}
		if len(problems) > 0 {
			return fmt.Errorf("%s", strings.Join(problems, "; "))
		}
		return nil
	})
}
