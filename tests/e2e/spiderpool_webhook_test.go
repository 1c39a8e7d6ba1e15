package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	"go4.org/netipx"

	"github.com/edgelink/edgelink/pkg/ipam"
	"github.com/edgelink/edgelink/tests/cluster"
	"github.com/edgelink/edgelink/tests/testutil"
)

// excludedSet is the set of addresses a pool's spec.excludeIPs entries
// cover; an entry that does not parse fails the test.
func excludedSet(t *testing.T, excl []string) *netipx.IPSet {
	t.Helper()
	set, bad := ipam.RangeSet(excl)
	if len(bad) > 0 {
		t.Fatalf("excludeIPs entries %q", bad)
	}
	return set
}

// webhookDenials are the lines of log that say an admission webhook
// refused a write.
func webhookDenials(log string) []string {
	var out []string
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, "denied the request") {
			out = append(out, l)
		}
	}
	return out
}

// SpiderPool's own controller and admission webhook (spiderpool-controller
// v0.9.3) run against the test kube-apiserver, so every SpiderIPPool write
// goes through SpiderPool's real mutation and validation. The webhook is
// live (it fills spec.ipVersion, adds its finalizer and CIDR label, and
// refuses a pool whose addresses overlap the shared pool's, and one whose
// subnet overlaps it). Under it, the EdgeMesh document's default pool is
// split as everywhere else: `edgelink controller` claims blocks for two
// edge nodes (shared pool's excludeIPs + annotation, then a block pool
// pinned to the node; one node gets two adjacent blocks, the other one),
// the nodes' agents allocate from them, and the nodes deleted give them
// back (claims, excludeIPs and block pools gone). No write of the
// controller is refused by the webhook.
//
// What SpiderPool's webhook does that EdgeLink must live with: its
// mutation merges adjacent spec.excludeIPs entries (two blocks' ranges
// become one), and adds its finalizer to every pool, so a deleted block
// pool lingers (terminating) until spiderpool-controller removes the
// finalizer; while it does, dropping its range from the shared pool's
// excludeIPs overlaps it and is refused.
func TestBlocksUnderSpiderpoolWebhook(t *testing.T) {
	testutil.RequireRoot(t)
	t0 := time.Now()
	cp := cluster.Shared(t)
	ctx := context.Background()
	pools := cp.Dynamic.Resource(ipam.PoolGVR)
	spc := testutil.StartSpiderpoolController(t, cp.Kubeconfig)
	tWebhook := time.Since(t0)

	const shared = "wh-default-v4"
	// Two edge nodes: wh-edge-1 with 16 pods, more than one /28 (15
	// addresses past the gateway) holds with minFree 4, so it gets two
	// blocks next to each other; wh-edge-2 with one pod and one block, in
	// another segment.
	type edge struct {
		name string
		seg  netip.Prefix
		pods int
	}
	edges := []edge{
		{"wh-edge-1", netip.MustParsePrefix("10.251.5.0/24"), 16},
		{"wh-edge-2", netip.MustParsePrefix("10.251.6.0/24"), 1},
	}
	// As the EdgeMesh document's default pool: unpinned, default, no
	// ipVersion (the webhook fills it).
	createPool(t, cp, shared, map[string]any{"subnet": "10.251.0.0/16", "ips": []any{"10.251.0.0-10.251.20.200"}, "default": true})
	// Block pools left by a failure are deleted (after the controller is
	// killed, before the shared pool and spiderpool-controller go).
	t.Cleanup(func() {
		list, err := pools.List(ctx, metav1.ListOptions{LabelSelector: ipam.LabelBlock + "=true"})
		if err != nil {
			return
		}
		for _, p := range list.Items {
			if p.GetAnnotations()[ipam.AnnoBlockOf] == shared {
				_ = pools.Delete(ctx, p.GetName(), metav1.DeleteOptions{})
			}
		}
	})
	u, err := pools.Get(ctx, shared, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if v, _, _ := unstructured.NestedInt64(u.Object, "spec", "ipVersion"); v != 4 {
		t.Errorf("shared pool's spec.ipVersion %d, want 4 filled by SpiderPool's mutating webhook", v)
	}
	if !slices.Contains(u.GetFinalizers(), testutil.SpiderpoolFinalizer) {
		t.Errorf("shared pool's finalizers %v, want SpiderPool's %s", u.GetFinalizers(), testutil.SpiderpoolFinalizer)
	}
	if got := u.GetLabels()["ipam.spidernet.io/ippool-cidr"]; got != "10-251-0-0-16" {
		t.Errorf("shared pool's label ipam.spidernet.io/ippool-cidr %q, want 10-251-0-0-16", got)
	}

	// The validating webhook is live: it refuses what SpiderPool refuses.
	refused := func(name string, spec map[string]any, want string) {
		t.Helper()
		obj := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool",
			"metadata": map[string]any{"name": name}, "spec": spec,
		}}
		_, err := pools.Create(ctx, obj, metav1.CreateOptions{})
		if err == nil {
			_ = pools.Delete(ctx, name, metav1.DeleteOptions{})
			t.Fatalf("pool %s %v was accepted, want SpiderPool's webhook to refuse it (%s)", name, spec, want)
		}
		if !strings.Contains(err.Error(), `admission webhook "spiderippool.spiderpool.spidernet.io" denied the request`) || !strings.Contains(err.Error(), want) {
			t.Fatalf("pool %s: %v, want SpiderPool's webhook to refuse it with %q", name, err, want)
		}
		t.Logf("refused as SpiderPool refuses: %v", err)
	}
	refused("wh-overlap-ips", map[string]any{"subnet": "10.251.0.0/16", "ips": []any{"10.251.0.10-10.251.0.20"}},
		"overlap with IPPool "+shared+" in IP ranges [10.251.0.10-10.251.0.20]")
	refused("wh-overlap-subnet", map[string]any{"subnet": "10.251.7.0/24", "ips": []any{"10.251.7.10"}},
		"overlap with IPPool "+shared+" which 'spec.subnet' is 10.251.0.0/16")

	ctl := testutil.StartController(t, cp.Kubeconfig, `
meshCIDRConfig: {cloudCIDR: [10.251.1.0/24], edgeCIDR: [10.251.5.0/24, 10.251.6.0/24]}
blockSize: 28
minFree: 4
resyncPeriod: 1s
leaderElection: {enable: true, namespace: kube-system, name: wh-test-controller, leaseDuration: 4s, renewDeadline: 3s, retryPeriod: 500ms}
`)
	blocks := map[string][]netip.Prefix{}
	var exclWhileClaimed []string
	t.Run("claim and allocate", func(t *testing.T) {
		clients := map[string]*ipamClient{}
		for _, ed := range edges {
			e := cp.AddEdgeNode(t, ed.name)
			if _, err := cp.Client.CoreV1().Nodes().Patch(ctx, e.Name, types.MergePatchType,
				[]byte(`{"metadata":{"annotations":{"edgelink.io/segment":"`+ed.seg.String()+`"}}}`), metav1.PatchOptions{}); err != nil {
				t.Fatal(err)
			}
			_, clients[ed.name] = startEdgeIPAM(t, e, nil)
		}
		eventually(t, "a block for each edge node", 60*time.Second, func() error {
			claims, _ := blocksOf(t, cp, shared)
			for _, ed := range edges {
				if len(claims.Of(ed.name)) == 0 {
					return fmt.Errorf("no block for %s yet: %v", ed.name, claims)
				}
			}
			return nil
		})
		owner := map[netip.Addr]string{}
		for _, ed := range edges {
			for i := 0; i < ed.pods; i++ {
				name := fmt.Sprintf("%s-pod-%d", ed.name, i)
				pod := cp.CreatePod(t, "default", name, ed.name, nil, nil)
				var got string
				eventually(t, "an address for "+name, 60*time.Second, func() error {
					var err error
					got, err = clients[ed.name].allocPod("default", name, string(pod.UID))
					return err
				})
				addr, pool, _ := strings.Cut(got, "@")
				a := netip.MustParsePrefix(addr).Addr()
				if prev, dup := owner[a]; dup {
					t.Fatalf("address %s given to %s and to %s", a, prev, name)
				}
				owner[a] = name
				if !ed.seg.Contains(a) || !strings.HasPrefix(pool, shared+"-") {
					t.Errorf("pod %s got %s from %s, want an address of %s from a block of %s", name, addr, pool, ed.seg, shared)
				}
				cp.SetPodIP(t, "default", name, a.String())
			}
		}
		eventually(t, "blocks and their pools under the webhook", 30*time.Second, func() error {
			claims, excl := blocksOf(t, cp, shared)
			set := excludedSet(t, excl)
			bps := blockPoolsOf(t, cp, shared)
			for _, ed := range edges {
				mine := claims.Of(ed.name)
				if want := (ed.pods + 4 + 14) / 15; len(mine) < want {
					return fmt.Errorf("%s has blocks %v for %d pods, want at least %d /28s", ed.name, mine, ed.pods, want)
				}
				blocks[ed.name] = mine
				for _, b := range mine {
					if !ed.seg.Contains(b.Addr()) {
						return fmt.Errorf("block %s outside %s's segment %s", b, ed.name, ed.seg)
					}
					if !set.ContainsPrefix(b) {
						return fmt.Errorf("block %s not covered by %s's excludeIPs %v: SpiderPool could hand it out", b, shared, excl)
					}
					if len(bps[b]) != 1 || !slices.Equal(bps[b][0].Nodes, []string{ed.name}) {
						return fmt.Errorf("block %s has pools %v, want one pinned to [%s]", b, bps[b], ed.name)
					}
					bp, err := pools.Get(ctx, bps[b][0].Name, metav1.GetOptions{})
					if err != nil {
						return err
					}
					if !slices.Contains(bp.GetFinalizers(), testutil.SpiderpoolFinalizer) {
						return fmt.Errorf("block pool %s has finalizers %v: not through SpiderPool's mutating webhook", bp.GetName(), bp.GetFinalizers())
					}
				}
			}
			exclWhileClaimed = excl
			return nil
		})
		t.Logf("%d pods, blocks %v, %s's excludeIPs %v (%v since start)", len(owner), blocks, shared, exclWhileClaimed, time.Since(t0).Round(time.Millisecond))
		if d := webhookDenials(ctl.Log()); len(d) != 0 {
			t.Errorf("SpiderPool's webhook refused %d writes of the controller while claiming:\n%s", len(d), strings.Join(d, "\n"))
		}
	})
	if t.Failed() {
		return
	}
	tClaimed := time.Since(t0)

	// The subtest's cleanup deleted the pods, stopped the agents and
	// edgecores and deleted the Nodes: their blocks come back. A release
	// drops the claim and the block's range from excludeIPs in one write.
	eventually(t, "the deleted nodes' claims and block pools gone", 60*time.Second, func() error {
		if claims, _ := blocksOf(t, cp, shared); len(claims) != 0 {
			return fmt.Errorf("claims still %v", claims)
		}
		if bps := blockPoolsOf(t, cp, shared); len(bps) != 0 {
			return fmt.Errorf("block pools still exist: %v", bps)
		}
		return nil
	})
	if _, excl := blocksOf(t, cp, shared); len(excl) != 0 {
		t.Errorf("claims released, but %s's excludeIPs still %v (blocks were %v, excludeIPs while claimed %v): these addresses are lost to SpiderPool and to EdgeLink",
			shared, excl, blocks, exclWhileClaimed)
	}
	d := webhookDenials(ctl.Log())
	if len(d) != 0 {
		t.Errorf("SpiderPool's webhook refused %d writes of the controller:\n%s", len(d), strings.Join(d, "\n"))
	}
	// The webhook's own record of what it refused, less the two probes.
	var spRefusals []string
	for _, l := range strings.Split(spc.Log(), "\n") {
		if (strings.Contains(l, "Failed to create IPPool") || strings.Contains(l, "Failed to update IPPool")) &&
			!strings.Contains(l, "wh-overlap-") {
			spRefusals = append(spRefusals, l)
		}
	}
	if len(spRefusals) != 0 {
		t.Errorf("spiderpool-controller logged %d refusals of pool writes:\n%s", len(spRefusals), strings.Join(spRefusals, "\n"))
	}
	t.Logf("webhook up in %v, blocks claimed and used by %v, given back by %v", tWebhook.Round(time.Millisecond),
		tClaimed.Round(time.Millisecond), time.Since(t0).Round(time.Millisecond))
}
