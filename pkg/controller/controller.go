package controller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"

	"github.com/edgelink/edgelink/pkg/ipam"
)

// Controller splits shared SpiderIPPools into per-node blocks (see
// pkg/ipam/blocks.go for the record it keeps) for the edge nodes.
type Controller struct {
	Config  Config
	Kube    kubernetes.Interface
	Dynamic dynamic.Interface
	// Resync is how often everything is reconciled without a change.
	Resync time.Duration
	// Signer, if set, signs member certificates alongside.
	Signer *Signer

	pools cache.SharedIndexInformer
	nodes cache.SharedIndexInformer
	pods  cache.SharedIndexInformer
	kick  chan struct{}

	mu       sync.Mutex // guards problems
	problems map[string]bool
}

// Run watches Nodes, Pods and SpiderIPPools and reconciles until ctx
// ends; alongside, it removes cloudcore's sync records of deleted Nodes
// (objectsync.go).
func (c *Controller) Run(ctx context.Context) error {
	if c.Resync <= 0 {
		c.Resync = 30 * time.Second
	}
	c.kick = make(chan struct{}, 1)
	c.problems = map[string]bool{}
	kf := informers.NewSharedInformerFactory(c.Kube, 0)
	df := dynamicinformer.NewDynamicSharedInformerFactory(c.Dynamic, 0)
	c.nodes = kf.Core().V1().Nodes().Informer()
	// Without segments there are no blocks to give: the controller only
	// signs certificates and cleans cloudcore's sync records.
	blocks := len(c.Config.Cloud)+len(c.Config.Edge) > 0
	synced := []cache.InformerSynced{c.nodes.HasSynced}
	if blocks {
		c.pods = kf.Core().V1().Pods().Informer()
		c.pools = df.ForResource(ipam.PoolGVR).Informer()
		kickOnChange := cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { c.trigger() },
			UpdateFunc: func(any, any) { c.trigger() },
			DeleteFunc: func(any) { c.trigger() },
		}
		for _, inf := range []cache.SharedIndexInformer{c.nodes, c.pods, c.pools} {
			if _, err := inf.AddEventHandler(kickOnChange); err != nil {
				return err
			}
		}
		synced = append(synced, c.pods.HasSynced, c.pools.HasSynced)
	}
	syncs := newSyncCleaner(c.Dynamic, c.nodes, c.Config.EdgeLabel)
	if _, err := c.nodes.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: syncs.nodeDeleted}); err != nil {
		return err
	}
	kf.Start(ctx.Done())
	df.Start(ctx.Done())
	defer kf.Shutdown()
	defer df.Shutdown()
	signerErr := make(chan error, 1)
	if c.Signer != nil {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { defer wg.Done(); signerErr <- c.Signer.Run(ctx) }()
		defer wg.Wait()
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		return ctx.Err()
	}
	syncsCtx, stopSyncs := context.WithCancel(ctx)
	var syncsDone sync.WaitGroup
	syncsDone.Add(1)
	go func() { defer syncsDone.Done(); syncs.run(syncsCtx) }() // routineSyncCleaner
	defer func() { stopSyncs(); syncsDone.Wait() }()
	if blocks {
		klog.InfoS("Block controller running", "edgeLabel", c.Config.EdgeLabel, "blockSize", c.Config.Bits4,
			"blockSizeIPv6", c.Config.Bits6, "minFree", c.Config.MinFree, "cloudCIDR", c.Config.Cloud, "edgeCIDR", c.Config.Edge)
	} else {
		klog.InfoS("No meshCIDRConfig: block allocation off; signing member certificates only")
	}
	t := time.NewTicker(c.Resync)
	defer t.Stop()
	for {
		// Coalesce a burst of events into one pass.
		select {
		case <-ctx.Done():
			return nil
		case err := <-signerErr:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("member certificate signer: %w", err)
		case <-c.kick:
		case <-t.C:
		}
		if !blocks {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(100 * time.Millisecond):
		}
		if err := c.reconcile(ctx); err != nil && ctx.Err() == nil {
			klog.ErrorS(err, "Reconcile failed; retrying")
			c.retryLater(ctx, time.Second)
		}
	}
}

func (c *Controller) trigger() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *Controller) retryLater(ctx context.Context, d time.Duration) {
	go func() {
		select {
		case <-ctx.Done():
		case <-time.After(d):
			c.trigger()
		}
	}()
}

// state reads the informers' caches.
func (c *Controller) state() State {
	st := State{Pools: map[string]*ipam.SpiderIPPool{}, Nodes: map[string]*Node{}}
	for _, o := range c.pools.GetStore().List() {
		u, ok := o.(*unstructured.Unstructured)
		if !ok {
			continue
		}
		sp, err := decodePool(u)
		if err != nil {
			klog.ErrorS(err, "Ignoring undecodable SpiderIPPool", "name", u.GetName())
			continue
		}
		st.Pools[sp.Name] = sp
	}
	for _, o := range c.nodes.GetStore().List() {
		n, ok := o.(*corev1.Node)
		if !ok {
			continue
		}
		cidrs := slices.Clone(n.Spec.PodCIDRs)
		if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
			cidrs = []string{n.Spec.PodCIDR}
		}
		st.Nodes[n.Name] = &Node{Name: n.Name, UID: string(n.UID), Labels: n.Labels, Annotations: n.Annotations, PodCIDRs: cidrs}
	}
	for _, o := range c.pods.GetStore().List() {
		p, ok := o.(*corev1.Pod)
		if !ok {
			continue
		}
		st.Pods = append(st.Pods, podOf(p))
	}
	return st
}

func podOf(p *corev1.Pod) Pod {
	out := Pod{Namespace: p.Namespace, Name: p.Name, Node: p.Spec.NodeName, HostNetwork: p.Spec.HostNetwork,
		Terminal: p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed}
	ips := p.Status.PodIPs
	if len(ips) == 0 && p.Status.PodIP != "" {
		ips = []corev1.PodIP{{IP: p.Status.PodIP}}
	}
	for _, ip := range ips {
		if a, err := netip.ParseAddr(ip.IP); err == nil {
			out.IPs = append(out.IPs, a)
		}
	}
	return out
}

func (c *Controller) reconcile(ctx context.Context) error {
	acts, probs := Decide(c.Config, c.state())
	c.report(probs)
	var errs []error
	for _, a := range acts {
		if err := c.apply(ctx, a); err != nil {
			if apierrors.IsConflict(err) {
				// Someone (SpiderPool's agent, an operator) changed the
				// pool since the decision: decide again on fresh data.
				klog.V(2).InfoS("Pool changed under a decision; deciding again", "action", a.String())
				c.retryLater(ctx, 200*time.Millisecond)
				continue
			}
			errs = append(errs, fmt.Errorf("%s: %w", a, err))
			continue
		}
		klog.InfoS("Block "+string(a.Kind), "pool", a.Pool, "block", a.Block, "node", a.Node, "why", a.Why)
	}
	return errors.Join(errs...)
}

// report logs each problem once, while it lasts.
func (c *Controller) report(probs []Problem) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := map[string]bool{}
	for _, p := range probs {
		s := p.String()
		now[s] = true
		if !c.problems[s] {
			klog.ErrorS(nil, "Cannot give a node blocks", "node", p.Node, "pool", p.Pool, "detail", p.Detail)
		}
	}
	c.problems = now
}

// apply makes one change, re-checking it against a fresh read of the
// shared pool: the decision came from a cache.
func (c *Controller) apply(ctx context.Context, a Action) error {
	pools := c.Dynamic.Resource(ipam.PoolGVR)
	switch a.Kind {
	case Claim:
		u, err := pools.Get(ctx, a.Pool, metav1.GetOptions{})
		if err != nil {
			return err
		}
		sp, err := decodePool(u)
		if err != nil {
			return err
		}
		pool, err := ipam.ParsePool(sp)
		if err != nil {
			return err
		}
		claims := pool.Claims()
		if claims == nil {
			claims = ipam.Claims{}
		}
		if n := len(claims.Of(a.Node)); n != a.Have {
			return apierrors.NewConflict(ipam.PoolGVR.GroupResource(), a.Pool, fmt.Errorf("node %s has %d blocks now, %d when decided", a.Node, n, a.Have))
		}
		// Still free in the fresh object: not claimed, not allocated by
		// SpiderPool, inside the pool's addresses.
		if got, ok := ipam.CarveBlock(pool, a.Block, a.Block.Bits(), claims.Sorted(), allocatedOf(sp)); !ok || got != a.Block {
			return apierrors.NewConflict(ipam.PoolGVR.GroupResource(), a.Pool, fmt.Errorf("block %s is no longer free", a.Block))
		}
		claims[a.Block] = a.Node
		excl, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "excludeIPs")
		excl = append(excl, ipam.RangeString(a.Block))
		if err := unstructured.SetNestedStringSlice(u.Object, excl, "spec", "excludeIPs"); err != nil {
			return err
		}
		setAnnotation(u, ipam.AnnoBlocks, claims.String())
		// The update carries the resourceVersion read above: it fails
		// if SpiderPool allocated (status) or anyone edited since.
		u, err = pools.Update(ctx, u, metav1.UpdateOptions{FieldManager: "edgelink-controller"})
		if err != nil {
			return err
		}
		return c.createBlock(ctx, u, a.Name, a.Block, a.Node)
	case CreateBlock:
		u, err := pools.Get(ctx, a.Pool, metav1.GetOptions{})
		if err != nil {
			return err
		}
		return c.createBlock(ctx, u, a.Name, a.Block, a.Node)
	case DeleteBlock:
		err := pools.Delete(ctx, a.Name, metav1.DeleteOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	case Release:
		u, err := pools.Get(ctx, a.Pool, metav1.GetOptions{})
		if err != nil {
			return err
		}
		claims, err := ipam.ParseClaims(u.GetAnnotations()[ipam.AnnoBlocks])
		if err != nil {
			return err
		}
		if _, ok := claims[a.Block]; !ok {
			return nil
		}
		// Not while a pool of the block is still there (the decision came
		// from a cache): SpiderPool's webhook would refuse the overlap.
		list, err := pools.List(ctx, metav1.ListOptions{LabelSelector: ipam.LabelBlock + "=true"})
		if err != nil {
			return err
		}
		for i := range list.Items {
			bp := &list.Items[i]
			ips, _, _ := unstructured.NestedStringSlice(bp.Object, "spec", "ips")
			if bp.GetAnnotations()[ipam.AnnoBlockOf] == a.Pool && ipam.ExcludesBlock(ips, a.Block) {
				return apierrors.NewConflict(ipam.PoolGVR.GroupResource(), a.Pool, fmt.Errorf("block pool %s of %s still exists", bp.GetName(), a.Block))
			}
		}
		delete(claims, a.Block)
		// SpiderPool's webhook merges adjacent excludeIPs entries: take
		// the block's addresses out, wherever they are.
		excl, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "excludeIPs")
		excl = ipam.ExcludeWithout(excl, a.Block)
		if err := unstructured.SetNestedStringSlice(u.Object, excl, "spec", "excludeIPs"); err != nil {
			return err
		}
		setAnnotation(u, ipam.AnnoBlocks, claims.String())
		_, err = pools.Update(ctx, u, metav1.UpdateOptions{FieldManager: "edgelink-controller"})
		return err
	}
	return fmt.Errorf("unknown action %q", a.Kind)
}

// createBlock creates SpiderIPPool name for block, pinned to node, from
// the shared pool u (already excluding it). The name is the claim's
// (ipam.BlockName): one that exists already is this claim's pool from an
// earlier try, made what it should be in place.
func (c *Controller) createBlock(ctx context.Context, u *unstructured.Unstructured, name string, block netip.Prefix, node string) error {
	obj, err := BlockPool(u, name, block, node)
	if err != nil {
		return err
	}
	pools := c.Dynamic.Resource(ipam.PoolGVR)
	_, err = pools.Create(ctx, obj, metav1.CreateOptions{FieldManager: "edgelink-controller"})
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	have, err := pools.Get(ctx, obj.GetName(), metav1.GetOptions{})
	if err != nil {
		return err
	}
	if sameBlockPool(have, obj) {
		return nil
	}
	have.Object["spec"] = obj.Object["spec"]
	have.SetLabels(obj.GetLabels())
	have.SetAnnotations(obj.GetAnnotations())
	have.SetOwnerReferences(obj.GetOwnerReferences())
	_, err = pools.Update(ctx, have, metav1.UpdateOptions{FieldManager: "edgelink-controller"})
	return err
}

// sameBlockPool reports whether the existing block pool have already is
// want: same spec, same owner.
func sameBlockPool(have, want *unstructured.Unstructured) bool {
	hs, _ := json.Marshal(have.Object["spec"])
	ws, _ := json.Marshal(want.Object["spec"])
	ho, _ := json.Marshal(have.GetOwnerReferences())
	wo, _ := json.Marshal(want.GetOwnerReferences())
	return string(hs) == string(ws) && string(ho) == string(wo) && have.GetAnnotations()[ipam.AnnoBlockOf] == want.GetAnnotations()[ipam.AnnoBlockOf]
}

// BlockPool is SpiderIPPool name, of a block of shared pool parent, pinned
// to node: the parent's subnet, routes and vlan, the block's addresses,
// its first address as gateway (excluded from allocation, as SpiderPool's
// webhook wants), owned by the parent (deleted with it).
func BlockPool(parent *unstructured.Unstructured, name string, block netip.Prefix, node string) (*unstructured.Unstructured, error) {
	spec, _, _ := unstructured.NestedMap(parent.Object, "spec")
	gw := ipam.BlockGateway(block).String()
	out := map[string]any{
		"subnet":     spec["subnet"],
		"ips":        []any{ipam.RangeString(block)},
		"excludeIPs": []any{gw},
		"gateway":    gw,
		"nodeName":   []any{node},
	}
	for _, k := range []string{"ipVersion", "routes", "vlan"} {
		if v, ok := spec[k]; ok {
			out[k] = v
		}
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": parent.GetAPIVersion(),
		"kind":       "SpiderIPPool",
		"metadata": map[string]any{
			"name":        name,
			"labels":      map[string]any{ipam.LabelBlock: "true"},
			"annotations": map[string]any{ipam.AnnoBlockOf: parent.GetName()},
		},
		"spec": out,
	}}
	if obj.GetAPIVersion() == "" {
		obj.SetAPIVersion(ipam.PoolGVR.GroupVersion().String())
	}
	if parent.GetUID() != "" {
		obj.SetOwnerReferences([]metav1.OwnerReference{{APIVersion: obj.GetAPIVersion(), Kind: "SpiderIPPool", Name: parent.GetName(), UID: parent.GetUID()}})
	}
	return obj, nil
}

func decodePool(u *unstructured.Unstructured) (*ipam.SpiderIPPool, error) {
	sp := &ipam.SpiderIPPool{}
	return sp, runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, sp)
}

func setAnnotation(u *unstructured.Unstructured, k, v string) {
	a := u.GetAnnotations()
	if a == nil {
		a = map[string]string{}
	}
	a[k] = v
	u.SetAnnotations(a)
}

// LeaderElection says how RunElected elects one controller.
type LeaderElection struct {
	Namespace, Name                           string
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
}

// RunElected runs c while this process holds the Lease; losing it ends
// the run with an error (the process restarts and campaigns again, as
// kube-controller-manager does).
func RunElected(ctx context.Context, c *Controller, le LeaderElection) error {
	id, _ := os.Hostname()
	id = fmt.Sprintf("%s_%d", id, os.Getpid())
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, le.Namespace, le.Name,
		c.Kube.CoreV1(), c.Kube.CoordinationV1(), resourcelock.ResourceLockConfig{Identity: id})
	if err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var runErr error
	lost := false
	leaderelection.RunOrDie(runCtx, leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   le.LeaseDuration,
		RenewDeadline:   le.RenewDeadline,
		RetryPeriod:     le.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            le.Name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				klog.InfoS("Leading", "lease", le.Namespace+"/"+le.Name, "identity", id)
				if err := c.Run(ctx); err != nil {
					runErr = err
				}
				cancel()
			},
			OnStoppedLeading: func() {
				if ctx.Err() == nil {
					lost = true
				}
			},
			OnNewLeader: func(identity string) {
				if identity != id {
					klog.InfoS("Another controller leads", "lease", le.Namespace+"/"+le.Name, "leader", identity)
				}
			},
		},
	})
	if runErr != nil {
		return runErr
	}
	if lost {
		return fmt.Errorf("lost the lease %s/%s", le.Namespace, le.Name)
	}
	return nil
}
