package metasync

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/dynamic/dynamicinformer"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/metadata"
)

// PoolGVR is SpiderPool's SpiderIPPool resource.
var PoolGVR = schema.GroupVersionResource{Group: "spiderpool.spidernet.io", Version: "v2beta1", Resource: "spiderippools"}

// Service lists and watches pods, nodes, namespaces and SpiderIPPools,
// keeps the metadata cache and its on-disk snapshot, and hands every real
// change to Publish. It is independent of beehive so tests can run it.
type Service struct {
	// Source is v1.SourceMetaServer, SourceKubeconfig or SourceInCluster.
	Source     string
	Server     string // metaServer URL
	Kubeconfig string
	CAFile     string // metaServer HTTPS: CA bundle
	TokenFile  string // metaServer HTTPS: bearer token (requireAuthorization)
	// SnapshotPath is the durable snapshot file.
	SnapshotPath string
	// Publish receives each batch of changes with the snapshot that
	// includes them, in order, from one goroutine. It may block.
	Publish func(snap *metadata.Snapshot, changes []metadata.Change)
	// Debounce is the minimum gap between publishes: a lone change is
	// published at once, a burst is coalesced.
	Debounce time.Duration
	// SaveInterval bounds how often the snapshot is written.
	SaveInterval time.Duration

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

func (s *Service) restConfig() (*rest.Config, error) {
	var cfg *rest.Config
	switch s.Source {
	case v1.SourceMetaServer:
		// The metaServer speaks JSON only and serves no discovery.
		cfg = &rest.Config{Host: s.Server}
		cfg.ContentType, cfg.AcceptContentTypes = "application/json", "application/json"
		if s.CAFile != "" {
			cfg.TLSClientConfig.CAFile = s.CAFile
		}
		if s.TokenFile != "" {
			cfg.BearerTokenFile = s.TokenFile
		}
	case v1.SourceKubeconfig:
		c, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", s.Kubeconfig, err)
		}
		cfg = c
	case v1.SourceInCluster:
		c, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config: %w", err)
		}
		cfg = c
	default:
		return nil, fmt.Errorf("unknown metadata source %q", s.Source)
	}
	cfg.QPS, cfg.Burst = 50, 100
	cfg.UserAgent = "edgelink-metasync"
	return cfg, nil
}

// Run syncs until ctx is done, then saves the snapshot a last time.
func (s *Service) Run(ctx context.Context) error {
	if err := s.Init(); err != nil {
		return err
	}
	if s.Debounce <= 0 {
		s.Debounce = 20 * time.Millisecond
	}
	if s.SaveInterval <= 0 {
		s.SaveInterval = time.Second
	}
	cfg, err := s.restConfig()
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}

	kick := make(chan struct{}, 1)
	changed := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	// Cluster-wide watches only: KubeEdge v1.20 delays namespaced pod
	// watches through the metaServer by ~5 s (DESIGN.md).
	factory := informers.NewSharedInformerFactory(client, 0)
	dynFactory := dynamicinformer.NewDynamicSharedInformerFactory(dyn, 0)
	pods := factory.Core().V1().Pods().Informer()
	nodes := factory.Core().V1().Nodes().Informer()
	namespaces := factory.Core().V1().Namespaces().Informer()
	pools := dynFactory.ForResource(PoolGVR).Informer()
	_ = pods.SetTransform(trimPod)
	_ = nodes.SetTransform(trimNode)
	for name, inf := range map[string]cache.SharedIndexInformer{"pods": pods, "nodes": nodes, "namespaces": namespaces, "spiderippools": pools} {
		_ = inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, r *cache.Reflector, err error) {
			s.noteError(name, err)
			cache.DefaultWatchErrorHandler(ctx, r, err)
		})
	}
	s.addHandlers(pods, nodes, namespaces, pools, changed)

	factory.Start(ctx.Done())
	dynFactory.Start(ctx.Done())

	syncedCh := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // routineSync: reconcile the disk snapshot once listings are complete
		defer wg.Done()
		if !cache.WaitForCacheSync(ctx.Done(), pods.HasSynced, nodes.HasSynced, namespaces.HasSynced) {
			return
		}
		keys := metadata.Keys{Pods: storeKeys(pods), Nodes: storeKeys(nodes), Namespaces: storeKeys(namespaces)}
		// Pools sync on their own: a cluster without SpiderPool's CRD has none.
		poolCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if cache.WaitForCacheSync(poolCtx.Done(), pools.HasSynced) {
			keys.Pools = storeKeys(pools)
		}
		cancel()
		s.cache.Retain(keys)
		s.mu.Lock()
		s.status.Synced, s.status.Connected = true, true
		s.mu.Unlock()
		klog.InfoS("Metadata synced", "source", s.Source, "server", s.server(), "pods", len(keys.Pods), "nodes", len(keys.Nodes), "pools", len(keys.Pools))
		close(syncedCh)
	}()

	// routinePublish (this goroutine): coalesce, publish, save.
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
	if s.Publish != nil {
		s.Publish(s.cache.Snapshot(), nil) // consumers start from the disk picture
	}
	for {
		select {
		case <-ctx.Done():
			factory.Shutdown()
			dynFactory.Shutdown()
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
				saveDirty = true
				if wait := s.SaveInterval - time.Since(lastSave); wait > 0 {
					saveTimer.Reset(wait)
				} else {
					save()
				}
			}
		case <-syncedCh:
			syncedCh = nil
			// Consumers learn Synced from the publish that follows, even
			// when the listing changed nothing.
			if s.publish(time.Now()) {
				saveDirty = true
			} else if s.Publish != nil {
				s.Publish(s.cache.Snapshot(), nil)
			}
		case <-saveTimer.C:
			if saveDirty {
				save()
			}
		}
	}
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
	s.status.LastError = fmt.Sprintf("%s: %v", what, err)
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
