package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"github.com/edgelink/edgelink/pkg/ipam"
	"github.com/edgelink/edgelink/tests/cluster"
	"github.com/edgelink/edgelink/tests/testutil"
)

// blocksOf reads the shared pool's claims from the kube-apiserver.
func blocksOf(t *testing.T, cp *cluster.ControlPlane, pool string) (ipam.Claims, []string) {
	t.Helper()
	u, err := cp.Dynamic.Resource(ipam.PoolGVR).Get(context.Background(), pool, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	claims, err := ipam.ParseClaims(u.GetAnnotations()[ipam.AnnoBlocks])
	if err != nil {
		t.Fatal(err)
	}
	excl, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "excludeIPs")
	return claims, excl
}

// blockPoolsOf lists the block pools of shared pool parent, by the block
// they serve (their spec.ips range), each with its pinned nodes.
func blockPoolsOf(t *testing.T, cp *cluster.ControlPlane, parent string) map[netip.Prefix][]blockPoolInfo {
	t.Helper()
	list, err := cp.Dynamic.Resource(ipam.PoolGVR).List(context.Background(), metav1.ListOptions{LabelSelector: ipam.LabelBlock + "=true"})
	if err != nil {
		t.Fatal(err)
	}
	out := map[netip.Prefix][]blockPoolInfo{}
	for _, u := range list.Items {
		if u.GetAnnotations()[ipam.AnnoBlockOf] != parent {
			continue
		}
		ips, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "ips")
		nodes, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "nodeName")
		var b netip.Prefix // invalid: not one block
		if set, bad := ipam.RangeSet(ips); len(bad) == 0 && len(set.Ranges()) == 1 {
			b, _ = set.Ranges()[0].Prefix()
		}
		out[b] = append(out[b], blockPoolInfo{Name: u.GetName(), Nodes: nodes})
	}
	return out
}

type blockPoolInfo struct {
	Name  string
	Nodes []string
}

// The EdgeMesh document's layout: one cluster default pool, pinned to no
// node, over one /16. The controller gives each edge node blocks inside
// its segment (one node's segment from an annotation, the other's from
// spec.podCIDR), more as pods arrive; the agents allocate from their own
// blocks only; a controller killed mid-way and restarted carries on; cut
// from the cloud, a node allocates what its blocks hold and then says it
// cannot claim more offline. No address is ever given twice.
func TestBlocksFromOneSharedPool(t *testing.T) {
	testutil.RequireRoot(t)
	cp := cluster.Shared(t)
	ctx := context.Background()
	e1 := cp.AddEdgeNode(t, "blk-edge-1")
	e2 := cp.AddEdgeNode(t, "blk-edge-2")
	seg := map[string]netip.Prefix{e1.Name: netip.MustParsePrefix("10.246.5.0/24"), e2.Name: netip.MustParsePrefix("10.246.6.0/24")}
	patch := func(name, body string) {
		if _, err := cp.Client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, []byte(body), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	patch(e1.Name, `{"metadata":{"annotations":{"edgelink.io/segment":"10.246.5.0/24"}}}`)
	patch(e2.Name, `{"spec":{"podCIDR":"10.246.6.0/24","podCIDRs":["10.246.6.0/24"]}}`)
	const shared = "blk-default-v4"
	createPool(t, cp, shared, map[string]any{"subnet": "10.246.0.0/16", "ips": []any{"10.246.0.0-10.246.20.200"}, "default": true})

	ctl := testutil.StartController(t, cp.Kubeconfig, `
meshCIDRConfig: {cloudCIDR: [10.246.1.0/24], edgeCIDR: [10.246.5.0/24, 10.246.6.0/24]}
blockSize: 28
minFree: 4
resyncPeriod: 1s
leaderElection: {enable: true, namespace: kube-system, name: blk-test-controller, leaseDuration: 4s, renewDeadline: 3s, retryPeriod: 500ms}
`)
	eventually(t, "a block for each edge node", 60*time.Second, func() error {
		claims, _ := blocksOf(t, cp, shared)
		for node := range seg {
			if len(claims.Of(node)) == 0 {
				return fmt.Errorf("no block for %s yet: %v", node, claims)
			}
		}
		return nil
	})

	clients := map[string]*ipamClient{}
	for _, e := range []*cluster.EdgeNode{e1, e2} {
		_, clients[e.Name] = startEdgeIPAM(t, e, nil)
	}

	owner := map[netip.Addr]string{} // address -> pod
	allocate := func(e *cluster.EdgeNode, name string, wait time.Duration) (string, error) {
		pod := cp.CreatePod(t, "default", name, e.Name, nil, nil)
		var got string
		var err error
		deadline := time.Now().Add(wait)
		for {
			got, err = clients[e.Name].allocPod("default", name, string(pod.UID))
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
		if err != nil {
			return "", err
		}
		addr, poolName, _ := strings.Cut(got, "@")
		pfx, perr := netip.ParsePrefix(addr)
		if perr != nil {
			t.Fatalf("pod %s got %q", name, got)
		}
		if prev, dup := owner[pfx.Addr()]; dup {
			t.Fatalf("address %s given to %s and to %s", pfx.Addr(), prev, name)
		}
		owner[pfx.Addr()] = name
		if !seg[e.Name].Contains(pfx.Addr()) || pfx.Bits() != 16 {
			t.Errorf("pod %s on %s got %s, want an address of %s with the pool's /16", name, e.Name, addr, seg[e.Name])
		}
		if !strings.HasPrefix(poolName, shared+"-") {
			t.Errorf("pod %s got its address from pool %s, want a block of %s", name, poolName, shared)
		}
		cp.SetPodIP(t, "default", name, pfx.Addr().String())
		return addr, nil
	}

	// 24 pods per node: more than one /28 holds, so the controller claims
	// blocks as the pods come. Halfway, the controller is killed and
	// restarted.
	for i := 0; i < 24; i++ {
		if i == 12 {
			ctl.Kill()
			ctl.Start()
		}
		for _, e := range []*cluster.EdgeNode{e1, e2} {
			if _, err := allocate(e, fmt.Sprintf("blk-%s-%d", e.Name[len(e.Name)-1:], i), 60*time.Second); err != nil {
				t.Fatalf("pod %d on %s: %v", i, e.Name, err)
			}
		}
	}
	claims, excl := blocksOf(t, cp, shared)
	for b, node := range claims {
		if !seg[node].Contains(b.Addr()) {
			t.Errorf("block %s of %s is outside its segment %s", b, node, seg[node])
		}
		if !ipam.ExcludesBlock(excl, b) {
			t.Errorf("block %s is not in %s's excludeIPs %v: SpiderPool could hand it out", b, shared, excl)
		}
		bps := blockPoolsOf(t, cp, shared)[b]
		if len(bps) != 1 {
			t.Errorf("block %s has %d SpiderIPPools, want 1: %v", b, len(bps), bps)
			continue
		}
		if len(bps[0].Nodes) != 1 || bps[0].Nodes[0] != node {
			t.Errorf("block pool %s is pinned to %v, want [%s]", bps[0].Name, bps[0].Nodes, node)
		}
	}
	if n := len(claims.Of(e1.Name)); n < 2 {
		t.Errorf("%s has %d blocks for 24 pods of /28 blocks", e1.Name, n)
	}

	// Cut from the cloud: the node allocates what its blocks still hold
	// (at least minFree), then says it cannot claim more while offline.
	// (Pods are created in the API; the node cannot hear of them.)
	cp.StopCloudcore()
	t.Cleanup(func() {
		if !cp.CloudcoreRunning() {
			_ = cp.StartCloudcore()
		}
	})
	offline := 0
	var lastErr error
	for i := 0; i < 40; i++ {
		if _, err := allocate(e1, fmt.Sprintf("blk-off-%d", i), 0); err != nil {
			lastErr = err
			break
		}
		offline++
	}
	if offline < 4 {
		t.Errorf("offline, %s allocated %d pods, want at least minFree (4)", e1.Name, offline)
	}
	if lastErr == nil || !strings.Contains(lastErr.Error(), shared) || !strings.Contains(lastErr.Error(), "none while it is offline") {
		t.Errorf("offline exhaustion: %v, want an error naming %s and saying no block can be claimed offline", lastErr, shared)
	}
	var js []byte
	js, _ = json.Marshal(claims)
	t.Logf("%d addresses over 2 nodes, blocks %s, %d allocated offline before: %v", len(owner), js, offline, lastErr)
}

// A node deleted from the API gives its blocks back; a node that joins
// again under the same name (a machine re-installed with keadm join) gets
// blocks of the shared pool again, the same addresses included, and its
// agent allocates from them. Three rounds: each round's node is new to
// KubeEdge (new Node object, new edgecore with an empty cache).
func TestBlocksNodeRejoins(t *testing.T) {
	testutil.RequireRoot(t)
	cp := cluster.Shared(t)
	ctx := context.Background()
	const (
		shared = "rj-default-v4"
		name   = "rj-edge-1"
	)
	createPool(t, cp, shared, map[string]any{"subnet": "10.249.0.0/16", "ips": []any{"10.249.0.0-10.249.0.255"}, "default": true})
	testutil.StartController(t, cp.Kubeconfig, `
meshCIDRConfig: {cloudCIDR: [10.249.1.0/24], edgeCIDR: [10.249.0.0/24]}
blockSize: 28
minFree: 4
resyncPeriod: 1s
leaderElection: {enable: true, namespace: kube-system, name: rj-test-controller, leaseDuration: 4s, renewDeadline: 3s, retryPeriod: 500ms}
`)
	var first []netip.Prefix
	for round := 1; round <= 3; round++ {
		t.Run(fmt.Sprintf("round %d", round), func(t *testing.T) {
			e := cp.AddEdgeNode(t, name)
			if _, err := cp.Client.CoreV1().Nodes().Patch(ctx, e.Name, types.MergePatchType,
				[]byte(`{"metadata":{"annotations":{"edgelink.io/segment":"10.249.0.0/24"}}}`), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
			eventually(t, "a block for "+name, 60*time.Second, func() error {
				claims, _ := blocksOf(t, cp, shared)
				if len(claims.Of(name)) == 0 {
					return fmt.Errorf("no block yet: %v", claims)
				}
				return nil
			})
			claims, _ := blocksOf(t, cp, shared)
			mine := claims.Of(name)
			if round == 1 {
				first = mine
			} else if fmt.Sprint(mine) != fmt.Sprint(first) {
				// What this test is about: the same blocks claimed again
				// for a new node of the same name.
				t.Errorf("round %d: blocks %v, want round 1's %v again (the lowest free blocks)", round, mine, first)
			}
			_, c := startEdgeIPAM(t, e, nil)
			pod := cp.CreatePod(t, "default", fmt.Sprintf("rj-pod-%d", round), name, nil, nil)
			var got string
			eventually(t, "an address for a pod on "+name, 60*time.Second, func() error {
				var err error
				got, err = c.allocPod("default", pod.Name, string(pod.UID))
				return err
			})
			addr, pool, _ := strings.Cut(got, "@")
			a := netip.MustParsePrefix(addr).Addr()
			if !slices.ContainsFunc(mine, func(b netip.Prefix) bool { return b.Contains(a) }) {
				t.Fatalf("round %d: pod got %s from %s, outside the node's blocks %v", round, a, pool, mine)
			}
			if err := c.releasePodCID("default", pod.Name, string(pod.UID), "c-"+string(pod.UID)); err != nil {
				t.Fatalf("DEL: %v", err)
			}
			deletePod(t, cp, "default", pod.Name)
			t.Logf("round %d: blocks %v, pod address %s from %s", round, mine, a, pool)
		})
		if t.Failed() {
			return
		}
		// The subtest's cleanup stopped edgecore and deleted the Node.
		eventually(t, "the deleted node's blocks released", 60*time.Second, func() error {
			claims, excl := blocksOf(t, cp, shared)
			if got := claims.Of(name); len(got) != 0 {
				return fmt.Errorf("%s still holds %v", name, got)
			}
			if len(excl) != 0 {
				return fmt.Errorf("excludeIPs still %v", excl)
			}
			list, err := cp.Dynamic.Resource(ipam.PoolGVR).List(ctx, metav1.ListOptions{LabelSelector: ipam.LabelBlock + "=true"})
			if err != nil {
				return err
			}
			for _, p := range list.Items {
				if p.GetAnnotations()[ipam.AnnoBlockOf] == shared {
					return fmt.Errorf("block pool %s still exists", p.GetName())
				}
			}
			return nil
		})
	}
}
