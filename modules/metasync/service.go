package metasync

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	clientfeatures "k8s.io/client-go/features"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/ipam"
	"github.com/edgelink/edgelink/pkg/kubeclient"
	"github.com/edgelink/edgelink/pkg/metadata"
)

// Service lists and watches pods, nodes, namespaces and SpiderIPPools,
// keeps the metadata cache and its on-disk snapshot, and publishes every
// real change (Reader's Next and Wait return). It is independent of beehive so tests can run it.
type Service struct {
	// Source is v1.SourceMetaServer, SourceKubeconfig or SourceInCluster.
	Source     string
	Server     string // metaServer URL
	Kubeconfig string
	CAFile     string // metaServer HTTPS: CA bundle
	TokenFile  string // metaServer HTTPS: bearer token (requireAuthorization)
	// SnapshotPath is the durable snapshot file.
	SnapshotPath string
	// Publish, if set, receives each published snapshot with the changes
	// it includes, in order, from one goroutine (tests record them; the
	// agent's modules wait on Reader instead). It may block.
	Publish func(snap *metadata.Snapshot, changes []metadata.Change)
	// Debounce is the minimum gap between publishes: a lone change is
	// published at once, a burst is coalesced.
	Debounce time.Duration
	// SaveInterval bounds how often the snapshot is written.
	SaveInterval time.Duration
	// AuditPeriod is how often everything is listed to catch changes the
	// watches missed.
	AuditPeriod time.Duration

	cache *metadata.Cache

	mu     sync.Mutex // guards status
	status metadata.Status
}

// Reader gives the published snapshot; valid after Init.
func (s *Service) Reader() metadata.Reader { return s.cache }

// Init loads the on-disk snapshot, so the picture is available (and
// Reader works) before the cloud answers. Run calls it if needed.
func (s *Service) Init() error {
	if s.cache != nil {
		return nil
	}
	snap, err := metadata.Load(s.SnapshotPath)
	if err != nil {
		klog.ErrorS(err, "Ignoring unreadable metadata snapshot; starting empty", "path", s.SnapshotPath)
		snap = nil
	}
	s.cache = metadata.NewCache(snap)
	s.mu.Lock()
	s.status.Source, s.status.Server, s.status.FromDisk = s.Source, s.server(), snap != nil
	s.mu.Unlock()
	if snap != nil {
		klog.InfoS("Loaded metadata snapshot", "path", s.SnapshotPath, "pods", len(snap.Pods), "nodes", len(snap.Nodes), "version", snap.Version)
	}
	return nil
}

func (s *Service) server() string {
	if s.Source == v1.SourceMetaServer {
		return s.Server
	}
	return s.Source + ":" + s.Kubeconfig
}

// Status reports the source and the picture's size.
func (s *Service) Status() metadata.Status {
	s.mu.Lock()
	st := s.status
	s.mu.Unlock()
	snap := s.cache.Snapshot()
	st.Pods, st.Nodes, st.Namespaces, st.Pools, st.Version = len(snap.Pods), len(snap.Nodes), len(snap.Namespaces), len(snap.Pools), snap.Version
	return st
}

// disableWatchList makes informers LIST then WATCH. client-go's streaming
// "watch-list" asks the server to replay its state on a watch; the
// metaServer replays its local cache, which can hold objects deleted
// while the cloud was away.
var disableWatchList = sync.OnceFunc(func() {
	type setter interface {
		Set(clientfeatures.Feature, bool) error
	}
	if g, ok := clientfeatures.FeatureGates().(setter); ok {
		if err := g.Set(clientfeatures.WatchListClient, false); err != nil {
			klog.ErrorS(err, "Cannot turn off client-go's watch-list; deletes missed offline may linger until an audit")
		}
	}
})

// restConfig reaches the source as pkg/kubeclient maps it, with the
// module's rate limits and User-Agent.
func (s *Service) restConfig() (*rest.Config, error) {
	if s.Source == v1.SourceMetaServer {
		disableWatchList()
	}
	cfg, err := kubeclient.RESTConfig(v1.MetaSync{Source: s.Source, MetaServer: s.Server, Kubeconfig: s.Kubeconfig,
		CAFile: s.CAFile, TokenFile: s.TokenFile})
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 50, 100
	cfg.UserAgent = "edgelink-metasync"
	return cfg, nil
}

// Run syncs until ctx is done, then saves the snapshot a last time.
//
// Goroutines: routineWatch runs the informers; routineAudit lists
// everything every AuditPeriod and corrects what the watches missed; this
// goroutine publishes and saves.
func (s *Service) Run(ctx context.Context) error {
	if err := s.Init(); err != nil { // the snapshot serves even if the source cannot
		return err
	}
	// A client that cannot be built (an unreadable token file, say) is
	// reported in the status too, not only in the log: the module stops,
	// the agent and its picture stay.
	fail := func(err error) error {
		s.noteError("client", err)
		return fmt.Errorf("client: %s", s.explain(err))
	}
	cfg, err := s.restConfig()
	if err != nil {
		return fail(err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return fail(err)
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return fail(err)
	}
	return s.run(ctx, client, dyn)
}

func (s *Service) defaults() {
	if s.Debounce <= 0 {
		s.Debounce = 5 * time.Millisecond
	}
	if s.SaveInterval <= 0 {
		s.SaveInterval = time.Second
	}
	if s.AuditPeriod <= 0 {
		s.AuditPeriod = 30 * time.Second
	}
}

// run is Run on given clients (tests pass fakes); it fills in the
// defaults of unset durations.
func (s *Service) run(ctx context.Context, client kubernetes.Interface, dyn dynamic.Interface) error {
	if err := s.Init(); err != nil {
		return err
	}
	s.defaults()

	kick := make(chan struct{}, 1)
	changed := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	syncedCh := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // routineWatch
		defer wg.Done()
		s.watch(ctx, client, dyn, changed, syncedCh)
	}()
	go func() { // routineAudit
		defer wg.Done()
		s.auditLoop(ctx, client, dyn, changed)
	}()

	// This goroutine: coalesce, publish, save.
	var lastSave time.Time
	saveDirty := false
	save := func() {
		if err := metadata.Save(s.SnapshotPath, s.cache.Snapshot()); err != nil {
			klog.ErrorS(err, "Cannot save metadata snapshot", "path", s.SnapshotPath)
			return
		}
		lastSave, saveDirty = time.Now(), false
	}
	saveTimer := time.NewTimer(time.Hour)
	defer saveTimer.Stop()
	// dirty schedules a save at most once per SaveInterval.
	dirty := func() {
		saveDirty = true
		if wait := s.SaveInterval - time.Since(lastSave); wait > 0 {
			saveTimer.Reset(wait)
		} else {
			save()
		}
	}
	if s.Publish != nil {
		s.Publish(s.cache.Snapshot(), nil) // consumers start from the disk picture
	}
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			s.publish(time.Now()) // whatever arrived last
			if saveDirty {
				save()
			}
			return nil
		case <-kick:
			// Leading edge: publish at once, then hold off for Debounce so a
			// burst (an initial list, a replay) becomes one publish.
			published := s.publish(time.Now())
			time.Sleep(s.Debounce)
			if s.publish(time.Now()) || published {
				dirty()
			}
		case <-syncedCh:
			syncedCh = nil // closed: once is enough
			// Consumers learn Synced from this publish (MarkSynced makes
			// one even when the listing changed nothing).
			if s.publish(time.Now()) {
				dirty()
			}
		case <-saveTimer.C:
			if saveDirty {
				save()
			}
		}
	}
}

// watch runs the informers until ctx is done. Once they have listed,
// objects the listing lacks are deleted from the cache (they were deleted
// while nobody watched).
func (s *Service) watch(ctx context.Context, client kubernetes.Interface, dyn dynamic.Interface, changed func(), syncedCh chan<- struct{}) {
	// Cluster-wide watches only: KubeEdge v1.20 delays namespaced pod
	// watches through the metaServer by ~5 s (docs/metadata.md).
	var tweak func(*metav1.ListOptions)
	if s.Source == v1.SourceMetaServer {
		// A list with resourceVersion=0 may be answered from the edge's
		// local cache, which keeps pods deleted while the cloud was away;
		// without one it goes to the cloud while connected.
		tweak = func(o *metav1.ListOptions) { o.ResourceVersion = "" }
	}
	factory := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithTweakListOptions(tweak))
	dynFactory := dynamicinformer.NewFilteredDynamicSharedInformerFactory(dyn, 0, metav1.NamespaceAll, tweak)
	pods := factory.Core().V1().Pods().Informer()
	nodes := factory.Core().V1().Nodes().Informer()
	namespaces := factory.Core().V1().Namespaces().Informer()
	pools := dynFactory.ForResource(ipam.PoolGVR).Informer()
	_ = pods.SetTransform(trimPod)
	_ = nodes.SetTransform(trimNode)
	for name, inf := range map[string]cache.SharedIndexInformer{"pods": pods, "nodes": nodes, "namespaces": namespaces, "spiderippools": pools} {
		_ = inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
			// A cluster without SpiderPool (the feature off) has no
			// SpiderIPPool resource: that is not a broken connection.
			if !(inf == pools && apierrors.IsNotFound(err)) {
				s.noteError(name, err)
			}
			cache.DefaultWatchErrorHandler(ctx, r, err)
		})
	}
	s.addHandlers(pods, nodes, namespaces, pools, changed)
	factory.Start(ctx.Done())
	dynFactory.Start(ctx.Done())
	defer factory.Shutdown()
	defer dynFactory.Shutdown()

	if cache.WaitForCacheSync(ctx.Done(), pods.HasSynced, nodes.HasSynced, namespaces.HasSynced) {
		keys := metadata.Keys{Pods: storeKeys(pods), Nodes: storeKeys(nodes), Namespaces: storeKeys(namespaces)}
		// Pools sync on their own: a cluster without SpiderPool's CRD has none.
		poolCtx, poolCancel := context.WithTimeout(ctx, poolSyncTimeout)
		if cache.WaitForCacheSync(poolCtx.Done(), pools.HasSynced) {
			keys.Pools = storeKeys(pools)
		}
		poolCancel()
		s.cache.Retain(keys)
		s.cache.MarkSynced() // published with the listing's changes
		s.mu.Lock()
		s.status.Synced, s.status.Connected = true, true
		s.status.LastSync = time.Now()
		s.mu.Unlock()
		klog.InfoS("Metadata synced", "source", s.Source, "server", s.server(), "pods", len(keys.Pods), "nodes", len(keys.Nodes), "pools", len(keys.Pools))
		close(syncedCh)
	}
	<-ctx.Done()
}

// poolSyncTimeout is how long the first sync waits for SpiderIPPools
// (a variable for tests).
var poolSyncTimeout = 30 * time.Second

// auditLoop lists everything every AuditPeriod and makes the cache agree
// with the listing. The metaServer needs this: events missed while the
// cloud was away (deletes above all) are never delivered, and its watches
// replay a local cache that can still hold deleted objects (the cache
// ignores such replays once a listing has found the object deleted).
func (s *Service) auditLoop(ctx context.Context, client kubernetes.Interface, dyn dynamic.Interface, changed func()) {
	t := time.NewTicker(s.AuditPeriod)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !s.Status().Synced {
			continue
		}
		since := time.Now()
		actx, cancel := context.WithTimeout(ctx, 30*time.Second)
		listing, err := s.list(actx, client, dyn)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.noteError("audit", err)
			}
			continue
		}
		s.mu.Lock()
		s.status.LastSync, s.status.Connected = time.Now(), true
		s.mu.Unlock()
		if n, example := s.cache.ApplyListing(listing, since); n > 0 {
			klog.InfoS("Metadata audit corrected changes the watches missed", "objects", n, "example", example)
			changed()
		}
	}
}

// list lists every kind from the source.
func (s *Service) list(ctx context.Context, client kubernetes.Interface, dyn dynamic.Interface) (*metadata.Listing, error) {
	want := &metadata.Listing{}
	podList, err := client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for i := range podList.Items {
		want.Pods = append(want.Pods, podInfo(&podList.Items[i]))
	}
	nodeList, err := client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for i := range nodeList.Items {
		want.Nodes = append(want.Nodes, nodeInfo(&nodeList.Items[i]))
	}
	nsList, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	for i := range nsList.Items {
		want.Namespaces = append(want.Namespaces, namespaceInfo(&nsList.Items[i]))
	}
	if poolList, err := dyn.Resource(ipam.PoolGVR).List(ctx, metav1.ListOptions{}); err == nil {
		want.Pools = []*metadata.PoolInfo{}
		for i := range poolList.Items {
			if p, err := poolInfo(&poolList.Items[i]); err == nil {
				want.Pools = append(want.Pools, p)
			}
		}
	}
	return want, nil
}

// publish publishes pending changes; it reports whether there were any.
func (s *Service) publish(now time.Time) bool {
	snap, changes := s.cache.Publish(now)
	if snap == nil {
		return false
	}
	s.mu.Lock()
	s.status.LastEvent = now
	s.mu.Unlock()
	if s.Publish != nil {
		s.Publish(snap, changes)
	}
	return true
}

func (s *Service) noteError(what string, err error) {
	s.mu.Lock()
	s.status.Connected = false
	s.status.LastError = what + ": " + s.explain(err)
	s.mu.Unlock()
}

func (s *Service) noteEvent() {
	s.mu.Lock()
	s.status.Connected = true
	s.status.LastEvent = time.Now()
	s.mu.Unlock()
}

func storeKeys(inf cache.SharedIndexInformer) map[string]bool {
	out := map[string]bool{}
	for _, k := range inf.GetStore().ListKeys() {
		out[k] = true
	}
	return out
}

func (s *Service) addHandlers(pods, nodes, namespaces, pools cache.SharedIndexInformer, changed func()) {
	c := s.cache
	handler := func(set func(obj any), del func(obj any)) cache.ResourceEventHandler {
		return cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { s.noteEvent(); set(obj); changed() },
			UpdateFunc: func(_, obj any) { s.noteEvent(); set(obj); changed() },
			DeleteFunc: func(obj any) {
				s.noteEvent()
				if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
					obj = d.Obj
				}
				if obj != nil {
					del(obj)
					changed()
				}
			},
		}
	}
	_, _ = pods.AddEventHandler(handler(
		func(obj any) {
			if p, ok := obj.(*corev1.Pod); ok {
				c.SetPod(podInfo(p))
			}
		},
		func(obj any) {
			if p, ok := obj.(*corev1.Pod); ok {
				c.DeletePod(p.Namespace + "/" + p.Name)
			}
		}))
	_, _ = nodes.AddEventHandler(handler(
		func(obj any) {
			if n, ok := obj.(*corev1.Node); ok {
				c.SetNode(nodeInfo(n))
			}
		},
		func(obj any) {
			if n, ok := obj.(*corev1.Node); ok {
				c.DeleteNode(n.Name)
			}
		}))
	_, _ = namespaces.AddEventHandler(handler(
		func(obj any) {
			if n, ok := obj.(*corev1.Namespace); ok {
				c.SetNamespace(namespaceInfo(n))
			}
		},
		func(obj any) {
			if n, ok := obj.(*corev1.Namespace); ok {
				c.DeleteNamespace(n.Name)
			}
		}))
	_, _ = pools.AddEventHandler(handler(
		func(obj any) {
			if u, ok := obj.(*unstructured.Unstructured); ok {
				if p, err := poolInfo(u); err == nil {
					c.SetPool(p)
				}
			}
		},
		func(obj any) {
			if u, ok := obj.(*unstructured.Unstructured); ok {
				c.DeletePool(u.GetName())
			}
		}))
}
