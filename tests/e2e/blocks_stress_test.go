package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/edgelink/edgelink/pkg/ipam"
	"github.com/edgelink/edgelink/tests/cluster"
	"github.com/edgelink/edgelink/tests/testutil"
)

// stressRuns numbers TestBlocksStress's runs in this process.
var stressRuns int

// stressPod is one pod of the stress run: its API object and its lease.
type stressPod struct {
	name, uid, node, cid string
	addr                 netip.Addr
}

// 500 ADD/DEL cycles over three edge nodes and a cloud node sharing one
// pool (SpiderPool's own agent allocating for the cloud node from the
// addresses no block holds), two edge nodes in one segment (their blocks
// contend), while the agent of one node is
// killed with kill -9 and restarted, the controller is killed and
// restarted, and one edge site is cut from the cloud (its edgecore
// stopped) for a fifth of the run, during which its pods' sandboxes are
// recreated (same pod, new container: the same address) and torn down,
// as the kubelet does offline. At every step no address is held twice
// and every address lies in a block claimed for its node; at the end,
// with every pod deleted, no node holds a lease, and a node deleted from
// the API gives its blocks back.
func TestBlocksStress(t *testing.T) {
	testutil.RequireRoot(t)
	cp := cluster.Shared(t)
	// Pod names are new on each run (-count=N shares one cluster, and
	// spiderpool-agent refuses a name whose endpoint it still recycles).
	stressRuns++
	ctx := context.Background()
	nodes := []*cluster.EdgeNode{cp.AddEdgeNode(t, "st-edge-1"), cp.AddEdgeNode(t, "st-edge-2"), cp.AddEdgeNode(t, "st-edge-3")}
	segs := []string{"10.248.0.0/24", "10.248.0.0/24", "10.248.1.0/24"}
	for i, e := range nodes {
		patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, ipam.AnnoSegment, segs[i])
		if _, err := cp.Client.CoreV1().Nodes().Patch(ctx, e.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	const shared = "st-default-v4"
	createPool(t, cp, shared, map[string]any{"ipVersion": 4, "subnet": "10.248.0.0/16", "ips": []any{"10.248.0.0-10.248.1.255"}, "default": true})
	// The cloud node: a plain Node, its pods' addresses from spiderpool-agent.
	const cloud = "st-cloud-1"
	if _, err := cp.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: cloud,
		Labels: map[string]string{"kubernetes.io/hostname": cloud}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Client.CoreV1().Nodes().Delete(context.Background(), cloud, metav1.DeleteOptions{}) })
	spa := testutil.StartSpiderpoolAgent(t, cp.Kubeconfig, "spiderpool-agent-"+cloud)
	spc := newIPAMClient(spa.Socket)
	ctl := testutil.StartController(t, cp.Kubeconfig, `
meshCIDRConfig: {cloudCIDR: [10.248.2.0/24], edgeCIDR: [10.248.0.0/24, 10.248.1.0/24]}
blockSize: 28
minFree: 4
resyncPeriod: 1s
leaderElection: {enable: true, namespace: kube-system, name: st-controller, leaseDuration: 4s, renewDeadline: 3s, retryPeriod: 500ms}
`)
	agents := map[string]*testutil.Agent{}
	clients := map[string]*ipamClient{}
	for _, e := range nodes {
		agents[e.Name], clients[e.Name] = startEdgeIPAM(t, e, nil)
	}

	held := map[netip.Addr]string{} // address -> pod, over the whole cluster
	live := map[string][]*stressPod{}
	rng := rand.New(rand.NewPCG(1, 2))
	var adds, dels, readds, offlineOps int

	add := func(p *stressPod, wait time.Duration) {
		t.Helper()
		var got string
		var err error
		deadline := time.Now().Add(wait)
		for {
			got, err = clients[p.node].allocPodCID("default", p.name, p.uid, p.cid)
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("ADD %s on %s: %v", p.name, p.node, err)
		}
		pfx, err := netip.ParsePrefix(strings.SplitN(got, "@", 2)[0])
		if err != nil {
			t.Fatalf("ADD %s: %q", p.name, got)
		}
		if p.addr.IsValid() {
			if pfx.Addr() != p.addr {
				t.Fatalf("pod %s's new sandbox got %s, its address is %s", p.name, pfx.Addr(), p.addr)
			}
			return
		}
		if other, dup := held[pfx.Addr()]; dup {
			t.Fatalf("address %s given to %s on %s while %s holds it", pfx.Addr(), p.name, p.node, other)
		}
		p.addr = pfx.Addr()
		held[p.addr] = p.name
	}
	del := func(p *stressPod) {
		t.Helper()
		if err := clients[p.node].releasePodCID("default", p.name, p.uid, p.cid); err != nil {
			t.Fatalf("DEL %s on %s: %v", p.name, p.node, err)
		}
	}
	newPod := func(i int, node string) *stressPod {
		name := fmt.Sprintf("st%d-%d", stressRuns, i)
		obj := cp.CreatePod(t, "default", name, node, nil, nil)
		return &stressPod{name: name, uid: string(obj.UID), node: node, cid: "c1-" + name}
	}
	remove := func(p *stressPod) {
		del(p)
		delete(held, p.addr)
		deletePod(t, cp, "default", p.name)
		dels++
	}

	var cloudPods []*stressPod
	cloudOps := 0
	cut := nodes[2].Name
	var tornDown []string // pods torn down offline; their API objects stay until the node is back
	start := time.Now()
	for i := 0; i < 500; i++ {
		switch i {
		case 100:
			agents[nodes[0].Name].Kill()
			agents[nodes[0].Name].Start("IPAM serving")
		case 200:
			ctl.Kill()
			ctl.Start()
		case 300:
			nodes[2].Stop() // the site's cloud link: its metaServer goes with it
		case 400:
			if err := nodes[2].Start(); err != nil {
				t.Fatal(err)
			}
		}
		if i%4 == 3 { // the cloud node, through SpiderPool's own agent
			cloudOps++
			if len(cloudPods) >= 6 || (len(cloudPods) > 0 && rng.IntN(3) == 0) {
				j := rng.IntN(len(cloudPods))
				p := cloudPods[j]
				deletePod(t, cp, "default", p.name) // SpiderPool releases only pods that are gone
				if err := spRelease(spc, "default", p.name, p.uid); err != nil {
					t.Fatalf("SpiderPool DEL %s: %v", p.name, err)
				}
				delete(held, p.addr)
				cloudPods = append(cloudPods[:j], cloudPods[j+1:]...)
				dels++
				continue
			}
			p := newPod(i, cloud)
			r := spAllocate(spc, "default", p.name, p.uid, shared, 30*time.Second)
			if r.err != nil {
				t.Fatalf("SpiderPool ADD %s: %v\n%s", p.name, r.err, spa.Log())
			}
			if other, dup := held[r.addr.Addr()]; dup {
				t.Fatalf("SpiderPool gave %s to %s while %s holds it", r.addr.Addr(), p.name, other)
			}
			p.addr = r.addr.Addr()
			held[p.addr] = p.name
			cloudPods = append(cloudPods, p)
			adds++
			continue
		}
		n := nodes[i%4].Name
		offline := n == cut && i >= 300 && i < 400
		pods := live[n]
		switch {
		case offline && len(pods) > 0 && rng.IntN(2) == 0:
			// a container restart offline: a new sandbox, the same address
			p := pods[rng.IntN(len(pods))]
			p.cid = fmt.Sprintf("c%d-%s", i, p.name)
			add(p, 10*time.Second)
			readds++
			offlineOps++
		case offline && len(pods) > 0:
			p := pods[0]
			del(p) // the kubelet tears it down; the API object stays until the cloud is back
			delete(held, p.addr)
			live[n] = pods[1:]
			tornDown = append(tornDown, p.name)
			offlineOps++
		case offline:
		case len(pods) >= 8 || (len(pods) > 0 && rng.IntN(3) == 0):
			j := rng.IntN(len(pods))
			remove(pods[j])
			live[n] = append(pods[:j], pods[j+1:]...)
		default:
			p := newPod(i, n)
			add(p, 60*time.Second)
			cp.SetPodIP(t, "default", p.name, p.addr.String())
			live[n] = append(live[n], p)
			adds++
		}
		// Every held address is inside a block claimed for its node.
		if i%50 == 49 {
			claims, _ := blocksOf(t, cp, shared)
			for node, ps := range live {
				for _, p := range ps {
					mine := false
					for _, b := range claims.Of(node) {
						mine = mine || b.Contains(p.addr)
					}
					if !mine {
						t.Fatalf("cycle %d: %s on %s holds %s, outside its blocks %v", i, p.name, node, p.addr, claims.Of(node))
					}
				}
			}
			for _, p := range cloudPods {
				for b, node := range claims {
					if b.Contains(p.addr) {
						t.Fatalf("cycle %d: SpiderPool's %s holds %s, inside %s's block %s", i, p.name, p.addr, node, b)
					}
				}
			}
		}
	}
	for _, ps := range live {
		for _, p := range ps {
			remove(p)
		}
	}
	for _, name := range tornDown {
		deletePod(t, cp, "default", name)
	}
	for _, p := range cloudPods {
		deletePod(t, cp, "default", p.name)
		if err := spRelease(spc, "default", p.name, p.uid); err != nil {
			t.Fatalf("SpiderPool DEL %s: %v", p.name, err)
		}
	}
	if left, n := allocatedIPs(t, cp, shared); len(left) != 0 || n != 0 {
		t.Errorf("SpiderPool still records %d allocations (%d): %v", len(left), n, left)
	}
	for _, e := range nodes {
		eventually(t, "no lease left on "+e.Name, 30*time.Second, func() error {
			if l := clients[e.Name].leaseUIDs(t); len(l) != 0 {
				return fmt.Errorf("%d leases left: %v", len(l), l)
			}
			return nil
		})
	}
	// A deleted node's blocks go back to the pool once nothing uses them
	// (its pods are gone): claim, exclusion and block pool.
	gone := nodes[2].Name
	before, _ := blocksOf(t, cp, shared)
	if err := cp.Client.CoreV1().Nodes().Delete(ctx, gone, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the deleted node's blocks released", 30*time.Second, func() error {
		claims, excl := blocksOf(t, cp, shared)
		if got := claims.Of(gone); len(got) != 0 {
			return fmt.Errorf("%s still holds %v", gone, got)
		}
		for _, b := range before.Of(gone) {
			if ipam.ExcludesBlock(excl, b) {
				return fmt.Errorf("block %s still in excludeIPs %v", b, excl)
			}
			if bps := blockPoolsOf(t, cp, shared)[b]; len(bps) != 0 {
				return fmt.Errorf("block %s still has pools %v", b, bps)
			}
		}
		if len(claims.Of(nodes[0].Name)) == 0 || len(claims.Of(nodes[1].Name)) == 0 {
			return fmt.Errorf("the live nodes lost their blocks: %v", claims)
		}
		return nil
	})

	claims, _ := blocksOf(t, cp, shared)
	t.Logf("500 cycles in %s: %d ADDs, %d re-ADDs of a new sandbox, %d DELs (%d operations on the cloud node through spiderpool-agent), %d operations on %s while cut off; 0 addresses held twice, 0 leases left; blocks %v",
		time.Since(start).Round(time.Second), adds, readds, dels, cloudOps, offlineOps, cut, claims)
}
