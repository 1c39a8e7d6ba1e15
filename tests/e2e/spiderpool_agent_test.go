package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/edgelink/edgelink/pkg/ipam"
	"github.com/edgelink/edgelink/tests/cluster"
	"github.com/edgelink/edgelink/tests/testutil"
)

// spaRuns numbers TestSpiderpoolAgentSharedPool's runs in this process.
var spaRuns int

var endpointGVR = schema.GroupVersionResource{Group: "spiderpool.spidernet.io", Version: "v2beta1", Resource: "spiderendpoints"}

// spAlloc is one allocation by SpiderPool's agent.
type spAlloc struct {
	pod, uid string
	addr     netip.Prefix
	pool     string
	at       time.Time
	tries    int
	err      error
}

// spAllocate asks spiderpool-agent (over its unix socket, as the stock
// `spiderpool` IPAM plugin does on CNI ADD, with the CNI config's
// default_ipv4_ippool) for an address for pod ns/name, retrying for at
// most wait: SpiderPool gives up after 5 update conflicts on the pool,
// and the edgelink controller writes the same object.
func spAllocate(c *ipamClient, ns, name, uid, pool string, wait time.Duration) spAlloc {
	s := func(v string) *string { return &v }
	r := spAlloc{pod: name, uid: uid}
	deadline := time.Now().Add(wait)
	for {
		r.tries++
		code, body, err := c.do("POST", "/v1/ipam/ip", map[string]any{
			"containerID": s("c-" + uid), "ifName": s("eth0"), "netNamespace": s("/run/netns/x"),
			"podNamespace": s(ns), "podName": s(name), "podUID": s(uid),
			"defaultIPv4IPPool": []string{pool},
		})
		if err == nil && code != 200 {
			err = fmt.Errorf("HTTP %d: %s", code, body)
		}
		if err == nil {
			var resp struct {
				Ips []struct{ Address, IPPool string } `json:"ips"`
			}
			if err = json.Unmarshal(body, &resp); err == nil && len(resp.Ips) != 1 {
				err = fmt.Errorf("want one address, got %s", body)
			}
			if err == nil {
				r.addr, err = netip.ParsePrefix(resp.Ips[0].Address)
				r.pool = resp.Ips[0].IPPool
			}
			if err == nil {
				r.at, r.err = time.Now(), nil // an earlier try's error is not this one's
				return r
			}
		}
		r.err = err
		if time.Now().After(deadline) {
			return r
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func addN(a netip.Addr, n int) netip.Addr {
	for ; n > 0; n-- {
		a = a.Next()
	}
	return a
}

// spRelease is CNI DEL through spiderpool-agent.
func spRelease(c *ipamClient, ns, name, uid string) error {
	return c.releasePodCID(ns, name, uid, "c-"+uid)
}

// allocatedIPs reads a pool's status.allocatedIPs: address -> pod UID.
func allocatedIPs(t *testing.T, cp *cluster.ControlPlane, pool string) (map[netip.Addr]string, int64) {
	t.Helper()
	u, err := cp.Dynamic.Resource(ipam.PoolGVR).Get(context.Background(), pool, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := u.Object["status"].(map[string]any)
	out := map[netip.Addr]string{}
	if raw, _ := st["allocatedIPs"].(string); raw != "" {
		var recs map[string]struct {
			NamespacedName string `json:"pod"`
			PodUID         string `json:"podUid"`
		}
		if err := json.Unmarshal([]byte(raw), &recs); err != nil {
			t.Fatalf("pool %s status.allocatedIPs %q: %v", pool, raw, err)
		}
		for ip, r := range recs {
			out[netip.MustParseAddr(ip)] = r.PodUID
		}
	}
	n, _ := st["allocatedIPCount"].(int64)
	return out, n
}

// SpiderPool's own node agent (spiderpool-agent v0.9.3, no
// spiderpool-controller, no webhook) allocates for a cloud node's pods
// from the same small shared SpiderIPPool, at the same time as
// `edgelink controller` claims blocks of it for an edge node and that
// node's EdgeLink agent allocates from them. No address is ever given
// twice, SpiderPool never hands out an address of a claimed block (blocks
// are in excludeIPs before any edge allocation), a block never covers an
// address SpiderPool holds, and the pool's status.allocatedIPs is exactly
// SpiderPool's allocations (until released through its agent).
func TestSpiderpoolAgentSharedPool(t *testing.T) {
	testutil.RequireRoot(t)
	cp := cluster.Shared(t)
	ctx := context.Background()
	// Names are new on each run (-count=N shares one cluster, and
	// KubeEdge may still deliver a previous run's deletions of same-named
	// objects to a new edge node).
	spaRuns++
	run := fmt.Sprintf("spa%d", spaRuns)
	var (
		ns     = run
		shared = run + "-default-v4"
		cloudN = run + "-cloud-1"
	)
	const (
		nEdge   = 40 // > two /28 blocks (15 addresses each after the gateway)
		nSpider = 64 // two workers of 32
	)
	poolRange := [2]netip.Addr{netip.MustParseAddr("10.247.0.0"), netip.MustParseAddr("10.247.0.255")}
	edgeSeg := netip.MustParsePrefix("10.247.0.0/25")

	e1 := cp.AddEdgeNode(t, run+"-edge-1")
	if _, err := cp.Client.CoreV1().Nodes().Patch(ctx, e1.Name, types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"edgelink.io/segment":"10.247.0.0/25"}}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	// The cloud node: a plain Node (no edge label), as a kubelet would
	// register it; nothing runs on it but spiderpool-agent.
	if _, err := cp.Client.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name: cloudN, Labels: map[string]string{"kubernetes.io/hostname": cloudN, "kubernetes.io/os": "linux"},
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cp.Client.CoreV1().Nodes().Delete(context.Background(), cloudN, metav1.DeleteOptions{}) })
	// ipVersion is set by hand: SpiderPool's webhook would add it.
	createPool(t, cp, shared, map[string]any{
		"subnet": "10.247.0.0/16", "ips": []any{"10.247.0.0-10.247.0.255"}, "default": true, "ipVersion": int64(4),
	})
	// The controller's block pools go too (after the controller is
	// stopped: cleanups run last-in first-out); this cluster has no
	// garbage collector to follow their owner reference.
	t.Cleanup(func() {
		ctx := context.Background()
		list, err := cp.Dynamic.Resource(ipam.PoolGVR).List(ctx, metav1.ListOptions{LabelSelector: ipam.LabelBlock + "=true"})
		if err != nil {
			return
		}
		for _, p := range list.Items {
			if p.GetAnnotations()[ipam.AnnoBlockOf] == shared {
				_ = cp.Dynamic.Resource(ipam.PoolGVR).Delete(ctx, p.GetName(), metav1.DeleteOptions{})
			}
		}
	})

	ctl := testutil.StartController(t, cp.Kubeconfig, `
meshCIDRConfig: {cloudCIDR: [10.247.0.128/25], edgeCIDR: [10.247.0.0/25]}
blockSize: 28
minFree: 4
resyncPeriod: 1s
leaderElection: {enable: true, namespace: kube-system, name: `+run+`-test-controller, leaseDuration: 4s, renewDeadline: 3s, retryPeriod: 500ms}
`)
	sp := testutil.StartSpiderpoolAgent(t, cp.Kubeconfig, "spiderpool-agent-"+cloudN)
	spc := newIPAMClient(sp.Socket)

	eventually(t, "a block for the edge node", 60*time.Second, func() error {
		claims, _ := blocksOf(t, cp, shared)
		if len(claims.Of(e1.Name)) == 0 {
			return fmt.Errorf("no block for %s yet: %v", e1.Name, claims)
		}
		return nil
	})
	_, edge := startEdgeIPAM(t, e1, nil)

	// The cloud node's pods exist before SpiderPool is asked (a kubelet
	// calls CNI ADD for a pod bound to it).
	spPods := make([]*corev1.Pod, nSpider)
	for i := range spPods {
		spPods[i] = cp.CreatePod(t, ns, fmt.Sprintf("%s-cloud-%d", run, i), cloudN, nil, nil)
	}
	// Fallback for a failed run: SpiderEndpoints carry SpiderPool's
	// finalizer and this cluster has no garbage collector.
	t.Cleanup(func() {
		ctx := context.Background()
		list, err := cp.Dynamic.Resource(endpointGVR).Namespace(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return
		}
		for _, ep := range list.Items {
			_, _ = cp.Dynamic.Resource(endpointGVR).Namespace(ns).Patch(ctx, ep.GetName(), types.MergePatchType,
				[]byte(`{"metadata":{"finalizers":null}}`), metav1.PatchOptions{})
			_ = cp.Dynamic.Resource(endpointGVR).Namespace(ns).Delete(ctx, ep.GetName(), metav1.DeleteOptions{})
		}
	})

	// When each block was first seen in the shared pool's claims (polled
	// every 100ms until the allocations are done).
	var seenMu sync.Mutex
	seen := map[netip.Prefix]time.Time{}
	stopWatch := make(chan struct{})
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for {
			if u, err := cp.Dynamic.Resource(ipam.PoolGVR).Get(context.Background(), shared, metav1.GetOptions{}); err == nil {
				if cl, err := ipam.ParseClaims(u.GetAnnotations()[ipam.AnnoBlocks]); err == nil {
					now := time.Now()
					seenMu.Lock()
					for b := range cl {
						if _, ok := seen[b]; !ok {
							seen[b] = now
						}
					}
					seenMu.Unlock()
				}
			}
			select {
			case <-stopWatch:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() {
		select {
		case <-stopWatch:
		default:
			close(stopWatch)
		}
		<-watchDone
	})

	// SpiderPool: two workers, paced so that they run all through the
	// edge node's allocations and the controller's claims.
	results := make(chan spAlloc, nSpider)
	start := time.Now()
	var wg sync.WaitGroup
	spStarted := make(chan struct{})
	var spStartedOnce sync.Once
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w) + time.Now().UnixNano()))
			for i := w; i < nSpider; i += 2 {
				p := spPods[i]
				results <- spAllocate(spc, ns, p.Name, string(p.UID), shared, 30*time.Second)
				spStartedOnce.Do(func() { close(spStarted) })
				time.Sleep(time.Duration(100+rng.Intn(300)) * time.Millisecond)
			}
		}(w)
	}
	// The edge node's pods come once SpiderPool has written the pool at
	// least once, so that the claims they cause land among SpiderPool's
	// writes however fast or slow the machine is.
	select {
	case <-spStarted:
	case <-time.After(60 * time.Second):
		t.Fatal("spiderpool-agent made no allocation in 60s")
	}

	// EdgeLink's edge node, while SpiderPool goes on: its pods arrive at
	// once (the controller counts each as needing an address and claims
	// blocks for them while SpiderPool writes the pool), then its agent
	// allocates.
	edgePods := make([]*corev1.Pod, nEdge)
	for i := range edgePods {
		edgePods[i] = cp.CreatePod(t, ns, fmt.Sprintf("%s-edge-%d", run, i), e1.Name, nil, nil)
	}
	type edgeAlloc struct {
		pod  string
		addr netip.Prefix
		pool string
		at   time.Time
	}
	var edgeAllocs []edgeAlloc
	var exhausted error // the edge's last refusal, once no block is left
	noBlock := "no free /28 left in segment " + edgeSeg.String()
	for i := 0; i < nEdge; i++ {
		pod := edgePods[i]
		name := pod.Name
		var got string
		var err error
		deadline := time.Now().Add(60 * time.Second)
		for {
			got, err = edge.allocPod(ns, name, string(pod.UID))
			if err == nil || time.Now().After(deadline) {
				break
			}
			// Out of blocks and the controller found no free aligned
			// block left in the segment: SpiderPool holds an address in
			// each (it never releases during the run), so none will come.
			if strings.Contains(err.Error(), "pool exhausted") && strings.Contains(ctl.Log(), noBlock) && time.Until(deadline) < 45*time.Second {
				break
			}
			time.Sleep(300 * time.Millisecond)
		}
		if err != nil {
			if !strings.Contains(err.Error(), "pool exhausted: IPv4 pool "+shared) || !strings.Contains(ctl.Log(), noBlock) {
				t.Fatalf("edge pod %d: %v (%d edge pods allocated)", i, err, len(edgeAllocs))
			}
			exhausted = err
			break
		}
		addr, poolName, _ := strings.Cut(got, "@")
		pfx, perr := netip.ParsePrefix(addr)
		if perr != nil {
			t.Fatalf("edge pod %s got %q", name, got)
		}
		edgeAllocs = append(edgeAllocs, edgeAlloc{name, pfx, poolName, time.Now()})
		cp.SetPodIP(t, ns, name, pfx.Addr().String())
	}
	wg.Wait()
	close(results)
	var spAllocs []spAlloc
	retried := 0
	for r := range results {
		if r.err != nil && !r.addr.IsValid() {
			t.Errorf("spiderpool-agent, pod %s: %v (after %d tries)", r.pod, r.err, r.tries)
			continue
		}
		if r.tries > 1 {
			retried++
		}
		spAllocs = append(spAllocs, r)
	}
	close(stopWatch)
	<-watchDone
	sort.Slice(spAllocs, func(i, j int) bool { return spAllocs[i].at.Before(spAllocs[j].at) })

	// One owner per address.
	owner := map[netip.Addr]string{}
	dups := 0
	note := func(a netip.Addr, who string) {
		if prev, dup := owner[a]; dup {
			dups++
			t.Errorf("address %s given to %s and to %s", a, prev, who)
		}
		owner[a] = who
	}
	claims, excl := blocksOf(t, cp, shared)
	inBlock := func(a netip.Addr) (netip.Prefix, string, bool) {
		for b, node := range claims {
			if b.Contains(a) {
				return b, node, true
			}
		}
		return netip.Prefix{}, "", false
	}
	for _, r := range spAllocs {
		a := r.addr.Addr()
		note(a, "spiderpool:"+r.pod)
		if r.pool != shared {
			t.Errorf("spiderpool-agent gave %s to %s from pool %s, want %s", a, r.pod, r.pool, shared)
		}
		if a.Less(poolRange[0]) || poolRange[1].Less(a) || r.addr.Bits() != 16 {
			t.Errorf("spiderpool-agent gave %s to %s: outside %s's ips %v or not its /16", r.addr, r.pod, shared, poolRange)
		}
		if b, node, ok := inBlock(a); ok {
			t.Errorf("spiderpool-agent gave %s to %s inside block %s of %s", a, r.pod, b, node)
		}
	}
	blockPools := blockPoolsOf(t, cp, shared)
	for _, r := range edgeAllocs {
		a := r.addr.Addr()
		note(a, "edge:"+r.pod)
		b, node, ok := inBlock(a)
		if !ok || node != e1.Name || !edgeSeg.Contains(a) {
			t.Errorf("edge pod %s got %s (pool %s), want an address in a block of %s inside %s (claims %v)", r.pod, a, r.pool, e1.Name, edgeSeg, claims)
		} else if bps := blockPools[b]; len(bps) != 1 || r.pool != bps[0].Name {
			t.Errorf("edge pod %s got %s from pool %s, want block %s's one pool (%v)", r.pod, a, r.pool, b, bps)
		}
	}
	for b := range claims {
		if !ipam.ExcludesBlock(excl, b) {
			t.Errorf("block %s is not in %s's excludeIPs %v", b, shared, excl)
		}
	}
	// The edge allocated at least its first block (claimed before
	// SpiderPool started). When it ran out, every aligned /28 of its
	// segment that it did not get holds an address of SpiderPool's (or
	// the subnet's first address, never part of a block): the controller
	// refused for the right reason.
	if len(edgeAllocs) < 15 {
		t.Errorf("the edge node allocated %d addresses, want at least its first /28 block's 15", len(edgeAllocs))
	}
	spHeld := map[netip.Addr]bool{}
	for _, r := range spAllocs {
		spHeld[r.addr.Addr()] = true
	}
	if exhausted != nil {
		for b := edgeSeg.Addr(); edgeSeg.Contains(b); b = addN(b, 16) {
			blk := netip.PrefixFrom(b, 28)
			if _, ok := claims[blk]; ok || blk.Contains(netip.MustParseAddr("10.247.0.0")) {
				continue
			}
			held := false
			for a := range spHeld {
				if blk.Contains(a) {
					held = true
					break
				}
			}
			if !held {
				t.Errorf("the controller found no free /28 in %s, but %s is unclaimed and SpiderPool holds nothing in it", edgeSeg, blk)
			}
		}
	}
	// The runs overlapped: SpiderPool allocated both before and after the
	// edge node's last allocation, and some of its addresses lie in the
	// edge segment (it takes the lowest free address).
	inSeg := 0
	for _, r := range spAllocs {
		if edgeSeg.Contains(r.addr.Addr()) {
			inSeg++
		}
	}
	if len(spAllocs) == 0 || len(edgeAllocs) == 0 {
		t.Fatalf("%d SpiderPool and %d edge allocations", len(spAllocs), len(edgeAllocs))
	}
	spFirst, spLast := spAllocs[0].at, spAllocs[len(spAllocs)-1].at
	edgeFirst, edgeLast := edgeAllocs[0].at, edgeAllocs[len(edgeAllocs)-1].at
	if !spFirst.Before(edgeLast) || !edgeFirst.Before(spLast) {
		t.Errorf("SpiderPool's allocations (%s..%s) and the edge's (%s..%s) did not overlap in time",
			spFirst.Sub(start), spLast.Sub(start), edgeFirst.Sub(start), edgeLast.Sub(start))
	}
	// Blocks claimed while SpiderPool was writing the same pool.
	during := 0
	for b, at := range seen {
		if claims[b] == e1.Name && at.After(spFirst) && at.Before(spLast) {
			during++
		}
	}
	// The race this test is for happened if a claim landed among
	// SpiderPool's writes, or if a claim decision met one of them (the
	// controller re-decided on a changed pool). On a slow run SpiderPool
	// may hold an address in every /28 of the segment before the edge
	// needs its second block: then only the conflicts show the race.
	if redecided := strings.Count(ctl.Log(), "Pool changed under a decision"); during == 0 && redecided == 0 {
		t.Errorf("no block was claimed between SpiderPool's first and last allocation, and no claim met a SpiderPool write (claims first seen: %v)", seen)
	}

	// status.allocatedIPs is SpiderPool's allocations, nothing else.
	got, count := allocatedIPs(t, cp, shared)
	want := map[netip.Addr]string{}
	for _, r := range spAllocs {
		want[r.addr.Addr()] = r.uid
	}
	for a, uid := range want {
		if got[a] != uid {
			t.Errorf("%s status.allocatedIPs[%s] = %q, want pod UID %s", shared, a, got[a], uid)
		}
	}
	for a := range got {
		if _, ok := want[a]; !ok {
			t.Errorf("%s status.allocatedIPs holds %s, which SpiderPool did not report (owner %q)", shared, a, owner[a])
		}
	}
	if count != int64(len(want)) {
		t.Errorf("%s status.allocatedIPCount = %d, want %d", shared, count, len(want))
	}

	// The cloud pods are deleted, then CNI DEL through spiderpool-agent
	// gives their addresses back (for a pod still alive it keeps them).
	zero := int64(0)
	for _, r := range spAllocs {
		if err := cp.Client.CoreV1().Pods(ns).Delete(ctx, r.pod, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			t.Errorf("delete pod %s: %v", r.pod, err)
		}
		if err := spRelease(spc, ns, r.pod, r.uid); err != nil {
			t.Errorf("release %s: %v", r.pod, err)
		}
	}
	left, _ := allocatedIPs(t, cp, shared)
	if len(left) != 0 {
		t.Errorf("after release, %s status.allocatedIPs still holds %d addresses", shared, len(left))
	}
	// Their SpiderEndpoints lose SpiderPool's finalizer (the garbage
	// collector, absent here, would remove them with their pods).
	eps, err := cp.Dynamic.Resource(endpointGVR).Namespace(ns).List(ctx, metav1.ListOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		t.Fatal(err)
	}
	for _, ep := range eps.Items {
		if f := ep.GetFinalizers(); len(f) != 0 {
			t.Errorf("SpiderEndpoint %s still has finalizers %v after CNI DEL", ep.GetName(), f)
		}
	}
	var js []byte
	js, _ = json.Marshal(claims)
	conflicts := strings.Count(sp.Log(), "An conflict occurred when updating the status of IPPool")
	redecided := strings.Count(ctl.Log(), "Pool changed under a decision")
	t.Logf("spiderpool-agent: %d allocations (%d in the edge segment, %d needed another request, %d pool update conflicts retried inside the agent) from %s to %s; edge: %d allocations from %s to %s, %d blocks (%d claimed while SpiderPool was allocating; the controller decided again after a pool change %d times), stopped by: %v; duplicates: %d; blocks %s; excludeIPs %v; SpiderEndpoints (finalizer removed, left to the garbage collector): %d",
		len(spAllocs), inSeg, retried, conflicts, spFirst.Sub(start).Round(time.Millisecond), spLast.Sub(start).Round(time.Millisecond),
		len(edgeAllocs), edgeFirst.Sub(start).Round(time.Millisecond), edgeLast.Sub(start).Round(time.Millisecond), len(claims.Of(e1.Name)), during, redecided, exhausted, dups, js, excl, len(eps.Items))
}
