package metasync

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	dynfake "k8s.io/client-go/dynamic/fake"
	k8sfake "k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/ipam"
	"github.com/edgelink/edgelink/pkg/metadata"
)

// batch is one call of Service.Publish.
type batch struct {
	snap    *metadata.Snapshot
	changes []string
	objects []any
	synced  bool // Status().Synced when it was published
}

// rig runs a Service against fake clients and records what it publishes.
type rig struct {
	t      *testing.T
	svc    *Service
	client *k8sfake.Clientset
	dyn    *dynfake.FakeDynamicClient

	mu      sync.Mutex
	batches []batch

	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan error
}

func newRig(t *testing.T, svc *Service, objs []runtime.Object, pools ...*unstructured.Unstructured) *rig {
	t.Helper()
	if svc.SnapshotPath == "" {
		svc.SnapshotPath = filepath.Join(t.TempDir(), "metasync", "snapshot.json")
	}
	if svc.Source == "" {
		svc.Source, svc.Kubeconfig = v1.SourceKubeconfig, "/etc/edgelink/kubeconfig"
	}
	if svc.Debounce == 0 {
		svc.Debounce = time.Millisecond
	}
	if svc.SaveInterval == 0 {
		svc.SaveInterval = time.Hour
	}
	if svc.AuditPeriod == 0 {
		svc.AuditPeriod = time.Hour
	}
	var dynObjs []runtime.Object
	for _, p := range pools {
		dynObjs = append(dynObjs, p)
	}
	r := &rig{t: t, svc: svc,
		client: k8sfake.NewClientset(objs...),
		dyn: dynfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(),
			map[schema.GroupVersionResource]string{ipam.PoolGVR: "SpiderIPPoolList"}, dynObjs...),
	}
	svc.Publish = func(snap *metadata.Snapshot, changes []metadata.Change) {
		b := batch{snap: snap, changes: changeStrings(changes), synced: svc.Status().Synced}
		for _, c := range changes {
			b.objects = append(b.objects, c.Object)
		}
		r.mu.Lock()
		r.batches = append(r.batches, b)
		r.mu.Unlock()
	}
	return r
}

// start loads the snapshot (as Module.New does) and runs the service
// until the test ends (or stop).
func (r *rig) start() {
	if err := r.svc.Init(); err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan error, 1)
	go func() { r.done <- r.svc.run(ctx, r.client, r.dyn) }()
	r.t.Cleanup(r.stop)
}

// stop cancels Run and waits for it to return.
func (r *rig) stop() {
	r.stopOnce.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				r.t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			r.t.Fatal("Run did not return after its context ended")
		}
	})
}

func (r *rig) all() []batch {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.batches)
}

// changesSince lists the changes published in batches [from:].
func (r *rig) changesSince(from int) []string {
	var out []string
	for _, b := range r.all()[min(from, len(r.all())):] {
		out = append(out, b.changes...)
	}
	return out
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// waitSynced waits for the publish that tells consumers the source has
// been listed.
func (r *rig) waitSynced() {
	r.t.Helper()
	waitFor(r.t, "a publish after the first sync", func() bool {
		return slices.ContainsFunc(r.all(), func(b batch) bool { return b.synced })
	})
}

// waitChanges waits until the changes published from batch from on
// contain want, then checks they are exactly want (in any order).
func (r *rig) waitChanges(from int, want ...string) {
	r.t.Helper()
	waitFor(r.t, fmt.Sprintf("changes %q", want), func() bool {
		got := r.changesSince(from)
		for _, w := range want {
			if !slices.Contains(got, w) {
				return false
			}
		}
		return true
	})
	got := r.changesSince(from)
	slices.Sort(got)
	want = slices.Clone(want)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		r.t.Errorf("published %q, want %q", got, want)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestServicePublishesRealChanges proves the informer-driven path end to
// end: the first listing is published as inserts; label, phase and block
// changes as updates; churn in fields the agent ignores (container
// images, node conditions, pool status and kubectl annotations) as
// nothing; deletes as deletes carrying the last known object; and every
// publish increases the picture's version by one.
func TestServicePublishesRealChanges(t *testing.T) {
	pod := fullPod()
	node := fullNode()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}
	pool := spiderPool("edge-1-v4", "10.20.0.0/24", "10.20.0.10-10.20.0.20", nil)
	r := newRig(t, &Service{}, []runtime.Object{pod, node, ns}, pool)
	r.start()
	r.waitSynced()
	r.waitChanges(0, "insert shop/pod/web-1", "insert null/node/edge-1", "insert null/namespace/shop", "insert null/spiderippool/edge-1-v4")

	ctx := ctxT(t)
	pods, nodes, nss := r.client.CoreV1().Pods("shop"), r.client.CoreV1().Nodes(), r.client.CoreV1().Namespaces()
	pools := r.dyn.Resource(ipam.PoolGVR)
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name string
		do   func()
		want []string
	}{
		{"pod label change", func() {
			pod.Labels = map[string]string{"app": "web", "v": "2"}
			must(pods.Update(ctx, pod, metav1.UpdateOptions{}))
		}, []string{"update shop/pod/web-1"}},
		{"container image change is not a change; a new pod is", func() {
			pod.Spec.Containers[0].Image = "nginx:1.28"
			must(pods.Update(ctx, pod, metav1.UpdateOptions{}))
			must(pods.Create(ctx, simplePod("shop", "job-1"), metav1.CreateOptions{}))
		}, []string{"insert shop/pod/job-1"}},
		{"terminal phase is an update, not a delete", func() {
			p := simplePod("shop", "job-1")
			p.Status.Phase = corev1.PodSucceeded
			must(pods.UpdateStatus(ctx, p, metav1.UpdateOptions{}))
		}, []string{"update shop/pod/job-1"}},
		{"node heartbeat is not a change; a label is", func() {
			node.Status.Conditions[0].LastHeartbeatTime = metav1.Now()
			must(nodes.UpdateStatus(ctx, node, metav1.UpdateOptions{}))
			node.Labels = map[string]string{"zone": "b"}
			must(nodes.Update(ctx, node, metav1.UpdateOptions{}))
		}, []string{"update null/node/edge-1"}},
		{"namespace annotation", func() {
			ns.Annotations = map[string]string{"ipam.spidernet.io/default-ipv4-ippool": `["edge-1-v4"]`}
			must(nss.Update(ctx, ns, metav1.UpdateOptions{}))
		}, []string{"update null/namespace/shop"}},
		{"pool status and kubectl churn is not a change; a new pool is", func() {
			p := pool.DeepCopy()
			p.Object["status"] = map[string]any{"allocatedIPCount": int64(3)}
			p.SetAnnotations(map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"})
			must(pools.Update(ctx, p, metav1.UpdateOptions{}))
			must(pools.Create(ctx, spiderPool("edge-1-v4b", "10.20.1.0/24", "10.20.1.10", nil), metav1.CreateOptions{}))
		}, []string{"insert null/spiderippool/edge-1-v4b"}},
		{"pool block record", func() {
			p, err := pools.Get(ctx, "edge-1-v4", metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			p.SetAnnotations(map[string]string{"edgelink.io/block-of": "shared-v4"})
			must(pools.Update(ctx, p, metav1.UpdateOptions{}))
		}, []string{"update null/spiderippool/edge-1-v4"}},
		{"deletes of every kind", func() {
			must(nil, pods.Delete(ctx, "web-1", metav1.DeleteOptions{}))
			must(nil, pools.Delete(ctx, "edge-1-v4b", metav1.DeleteOptions{}))
			must(nil, nodes.Delete(ctx, "edge-1", metav1.DeleteOptions{}))
			must(nil, nss.Delete(ctx, "shop", metav1.DeleteOptions{}))
		}, []string{"delete shop/pod/web-1", "delete null/spiderippool/edge-1-v4b", "delete null/node/edge-1", "delete null/namespace/shop"}},
	}
	for _, st := range steps {
		from := len(r.all())
		st.do()
		t.Logf("step %q", st.name)
		r.waitChanges(from, st.want...)
		if t.Failed() {
			t.Fatalf("step %q failed", st.name)
		}
	}

	// The delete carried the pod as last seen.
	for _, b := range r.all() {
		for i, c := range b.changes {
			if c == "delete shop/pod/web-1" {
				if p := b.objects[i].(*metadata.PodInfo); p.Labels["v"] != "2" {
					t.Errorf("delete carries %+v, want the last known pod", p)
				}
			}
		}
	}
	// The first batch is the start picture; every later one is a publish
	// (the sync's with or without changes).
	var last uint64
	for i, b := range r.all()[1:] {
		if b.snap.Version != last+1 {
			t.Errorf("batch %d: version %d after %d", i, b.snap.Version, last)
		}
		last = b.snap.Version
	}
	snap := r.svc.Reader().Snapshot()
	if len(snap.Pods) != 1 || snap.Pods["shop/job-1"] == nil || snap.Pods["shop/job-1"].Phase != "Succeeded" ||
		len(snap.Nodes) != 0 || len(snap.Namespaces) != 0 || len(snap.Pools) != 1 {
		t.Errorf("final picture: %d pods %v, %d nodes, %d namespaces, %d pools", len(snap.Pods), snap.Pods, len(snap.Nodes), len(snap.Namespaces), len(snap.Pools))
	}
}

// TestServiceAnnouncesSyncWithoutChanges proves consumers are told the
// picture is synced even when the first listing changes nothing (an empty
// cluster and no snapshot): first the disk picture is published, then —
// with no changes — once more after the sync.
func TestServiceAnnouncesSyncWithoutChanges(t *testing.T) {
	r := newRig(t, &Service{}, nil)
	r.start()
	r.waitSynced()
	b := r.all()
	if b[0].synced || len(b[0].changes) != 0 || b[0].snap.Version != 0 {
		t.Errorf("first publish = %+v, want the (empty) disk picture before the sync", b[0])
	}
	for _, x := range b {
		if len(x.changes) != 0 {
			t.Errorf("an empty cluster published changes %q", x.changes)
		}
	}
	if last := b[len(b)-1]; !last.snap.Synced || last.snap.Version != 1 {
		t.Errorf("the sync's publish: version %d, synced %v; want a new version with Synced", last.snap.Version, last.snap.Synced)
	}
	st := r.svc.Status()
	if !st.Synced || !st.Connected || st.LastSync.IsZero() || st.FromDisk {
		t.Errorf("status after sync = %+v", st)
	}
}

// TestServiceRestartFromSnapshot proves a restart starts from the snapshot
// on disk — published at once, before the source answers — and that the
// first listing then corrects it: objects deleted while the agent was
// down are published as deletes, changed ones as updates, and objects that
// did not change produce nothing.
func TestServiceRestartFromSnapshot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "snapshot.json")
	oldPod := fullPod()
	oldPod.Labels = map[string]string{"app": "web", "v": "1"}
	gone := simplePod("shop", "gone")
	pool := spiderPool("edge-1-v4", "10.20.0.0/24", "10.20.0.10", map[string]string{"edgelink.io/block-of": "shared-v4"})
	pi, err := poolInfo(pool)
	if err != nil {
		t.Fatal(err)
	}
	disk := metadata.Empty()
	disk.Version = 41
	disk.Pods["shop/web-1"] = podInfo(oldPod)
	disk.Pods["shop/gone"] = podInfo(gone)
	disk.Nodes["edge-1"] = nodeInfo(fullNode())
	disk.Nodes["edge-2"] = &metadata.NodeInfo{Name: "edge-2"}
	disk.Namespaces["shop"] = &metadata.NamespaceInfo{Name: "shop"}
	disk.Pools["edge-1-v4"] = pi
	disk.Pools["old-v4"] = &metadata.PoolInfo{Name: "old-v4", Object: []byte(`{}`)}
	if err := metadata.Save(path, disk); err != nil {
		t.Fatal(err)
	}

	r := newRig(t, &Service{SnapshotPath: path}, []runtime.Object{fullPod(), fullNode(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}}, pool)
	if err := r.svc.Init(); err != nil {
		t.Fatal(err)
	}
	if st := r.svc.Status(); !st.FromDisk || st.Synced || st.Pods != 2 || st.Version != 41 {
		t.Errorf("status before Run = %+v, want the disk picture, not synced", st)
	}
	r.start()
	r.waitSynced()
	first := r.all()[0]
	if first.snap.Version != 41 || len(first.snap.Pods) != 2 || len(first.changes) != 0 {
		t.Errorf("first publish: version %d, %d pods, changes %q; want the disk picture", first.snap.Version, len(first.snap.Pods), first.changes)
	}
	r.waitChanges(1, "update shop/pod/web-1", "delete shop/pod/gone", "delete null/node/edge-2", "delete null/spiderippool/old-v4")
	snap := r.svc.Reader().Snapshot()
	if snap.Version <= 41 || len(snap.Pods) != 1 || len(snap.Nodes) != 1 || len(snap.Pools) != 1 {
		t.Errorf("picture after sync: version %d, %d pods, %d nodes, %d pools", snap.Version, len(snap.Pods), len(snap.Nodes), len(snap.Pools))
	}
	if st := r.svc.Status(); !st.FromDisk || !st.Synced {
		t.Errorf("status after sync = %+v, want synced and started from disk", st)
	}
}

// TestServiceWithoutPoolCRD proves a cluster without SpiderPool's CRD
// still syncs pods, nodes and namespaces, and that the pools known from
// the snapshot are kept, by the first sync and by audits (a failed pool
// listing is not "no pools").
func TestServiceWithoutPoolCRD(t *testing.T) {
	old := poolSyncTimeout
	poolSyncTimeout = 50 * time.Millisecond
	t.Cleanup(func() { poolSyncTimeout = old })

	path := filepath.Join(t.TempDir(), "snapshot.json")
	disk := metadata.Empty()
	disk.Pools["edge-1-v4"] = &metadata.PoolInfo{Name: "edge-1-v4", Object: []byte(`{}`)}
	disk.Pods["shop/gone"] = podInfo(simplePod("shop", "gone"))
	if err := metadata.Save(path, disk); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, &Service{SnapshotPath: path, AuditPeriod: 20 * time.Millisecond}, nil)
	r.dyn.PrependReactor("list", "spiderippools", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewNotFound(ipam.PoolGVR.GroupResource(), "")
	})
	r.start()
	r.waitSynced()
	r.waitChanges(1, "delete shop/pod/gone")
	if snap := r.svc.Reader().Snapshot(); snap.Pools["edge-1-v4"] == nil {
		t.Errorf("the pool from the snapshot was dropped although pools could not be listed")
	}
	// The missing resource is not a broken connection (the reflector keeps
	// retrying it).
	if st := r.svc.Status(); !st.Connected || strings.Contains(st.LastError, "spiderippools") {
		t.Errorf("without SpiderPool's CRD the status says disconnected or failing: %+v", st)
	}
	// Audits cannot list pools either; they must not delete them.
	synced := r.svc.Status().LastSync
	waitFor(t, "an audit", func() bool { return r.svc.Status().LastSync.After(synced) })
	from := len(r.all())
	if _, err := r.client.CoreV1().Pods("shop").Create(ctxT(t), simplePod("shop", "sentinel"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitChanges(from, "insert shop/pod/sentinel")
	if snap := r.svc.Reader().Snapshot(); snap.Pools["edge-1-v4"] == nil {
		t.Errorf("an audit dropped the pool from the snapshot although pools could not be listed")
	}
}

// TestServiceDebounce proves the publisher's leading edge and coalescing:
// a lone change after a quiet period is published at once (well before
// the debounce gap ends), and a burst arriving within the gap is published
// as one batch.
func TestServiceDebounce(t *testing.T) {
	const burst = 20
	r := newRig(t, &Service{Debounce: time.Second}, nil)
	r.start()
	r.waitSynced() // an empty cluster: nothing kicked, the loop is idle
	ctx := ctxT(t)
	from := len(r.all())
	start := time.Now()
	if _, err := r.client.CoreV1().Pods("shop").Create(ctx, simplePod("shop", "lone"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the lone pod", func() bool { return len(r.changesSince(from)) > 0 })
	if d := time.Since(start); d >= r.svc.Debounce/2 {
		t.Errorf("a lone change took %v to publish; want it at once, not after the %v debounce", d, r.svc.Debounce)
	}
	var want []string
	for i := range burst {
		name := fmt.Sprintf("burst-%02d", i)
		want = append(want, "insert shop/pod/"+name)
		if _, err := r.client.CoreV1().Pods("shop").Create(ctx, simplePod("shop", name), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	r.waitChanges(from, append(want, "insert shop/pod/lone")...)
	var sizes []int
	for _, b := range r.all()[from:] {
		if len(b.changes) > 0 {
			sizes = append(sizes, len(b.changes))
		}
	}
	if !slices.Equal(sizes, []int{1, burst}) {
		t.Errorf("batch sizes %v, want [1 %d]: the lone change, then the burst coalesced", sizes, burst)
	}
}

// TestServiceSavesSnapshot proves the picture is saved to disk once it
// changes, rate-limited by SaveInterval, saved a last time on shutdown
// (so the newest change is not lost), and that a new Service loads it —
// the same objects and version, pods indexed by IP again — before any
// source answers.
func TestServiceSavesSnapshot(t *testing.T) {
	path := filepath.Join(t.TempDir(), "metasync", "snapshot.json")
	r := newRig(t, &Service{SnapshotPath: path, SaveInterval: time.Hour}, []runtime.Object{simplePod("shop", "web-1")})
	r.start()
	r.waitSynced()
	waitFor(t, "the first save", func() bool {
		s, err := metadata.Load(path)
		return err == nil && s != nil && s.Pods["shop/web-1"] != nil
	})
	p := simplePod("shop", "web-2")
	p.Status.PodIPs = []corev1.PodIP{{IP: "10.20.0.6"}}
	from := len(r.all())
	if _, err := r.client.CoreV1().Pods("shop").Create(ctxT(t), p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitChanges(from, "insert shop/pod/web-2")
	want := r.svc.Reader().Snapshot()
	r.stop()

	saved, err := metadata.Load(path)
	if err != nil || saved == nil {
		t.Fatalf("Load after shutdown: %v, %v", saved, err)
	}
	if saved.Version != want.Version || !reflect.DeepEqual(saved.Pods, want.Pods) {
		t.Errorf("saved version %d pods %v; want version %d pods %v", saved.Version, saved.Pods, want.Version, want.Pods)
	}

	next := &Service{SnapshotPath: path}
	if err := next.Init(); err != nil {
		t.Fatal(err)
	}
	snap := next.Reader().Snapshot()
	if snap.Version != want.Version || len(snap.Pods) != 2 {
		t.Errorf("reloaded version %d with %d pods, want version %d with 2", snap.Version, len(snap.Pods), want.Version)
	}
	if got := snap.PodsByIP[addrs("10.20.0.6")[0]]; got == nil || got.Name != "web-2" {
		t.Errorf("reloaded picture does not find web-2 by IP: %v", got)
	}
	if st := next.Status(); !st.FromDisk || st.Synced || st.Pods != 2 {
		t.Errorf("reloaded status = %+v", st)
	}
}

// TestServiceAudit proves the periodic audit corrects what the watches
// missed (a delete, a create and an update that no watch delivered), that
// a failed audit marks the source disconnected and names the error, and
// that the next good audit marks it connected and fresh again.
func TestServiceAudit(t *testing.T) {
	r := newRig(t, &Service{AuditPeriod: 20 * time.Millisecond},
		[]runtime.Object{simplePod("shop", "web-1"), simplePod("shop", "web-2")})
	// Pod watches deliver nothing: every change below is missed.
	r.client.PrependWatchReactor("pods", func(k8stesting.Action) (bool, watch.Interface, error) {
		return true, watch.NewFake(), nil
	})
	var failList atomic.Bool
	r.client.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		if failList.Load() {
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	r.start()
	r.waitSynced()
	r.waitChanges(0, "insert shop/pod/web-1", "insert shop/pod/web-2")

	ctx := ctxT(t)
	pods := r.client.CoreV1().Pods("shop")
	from := len(r.all())
	if err := pods.Delete(ctx, "web-2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Create(ctx, simplePod("shop", "web-3"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := simplePod("shop", "web-1")
	p.Labels = map[string]string{"v": "2"}
	if _, err := pods.Update(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitChanges(from, "delete shop/pod/web-2", "insert shop/pod/web-3", "update shop/pod/web-1")

	failList.Store(true)
	waitFor(t, "a failed audit in the status", func() bool {
		st := r.svc.Status()
		return !st.Connected && st.LastError == "audit: connection refused"
	})
	failed := r.svc.Status()
	failList.Store(false)
	waitFor(t, "a good audit", func() bool {
		st := r.svc.Status()
		return st.Connected && st.LastSync.After(failed.LastSync)
	})
	if c := freshness(r.svc.Status(), time.Now(), time.Minute); c.Status != "OK" {
		t.Errorf("freshness after a good audit = %+v", c)
	}
}

// TestServiceListErrorBeforeSync proves that while the source refuses to
// list, the status says so (not synced, not connected, the kind and error
// named) and the freshness check fails with that error; once it answers
// the service syncs.
func TestServiceListErrorBeforeSync(t *testing.T) {
	// Only nodes exist: no event marks the source connected meanwhile.
	r := newRig(t, &Service{}, []runtime.Object{fullNode()})
	var failList atomic.Bool
	failList.Store(true)
	r.client.PrependReactor("list", "nodes", func(k8stesting.Action) (bool, runtime.Object, error) {
		if failList.Load() {
			return true, nil, errors.New("connection refused")
		}
		return false, nil, nil
	})
	r.start()
	waitFor(t, "the list error in the status", func() bool { return r.svc.Status().LastError != "" })
	st := r.svc.Status()
	if st.Synced || st.Connected || !strings.HasPrefix(st.LastError, "nodes: ") || !strings.Contains(st.LastError, "connection refused") ||
		st.Server != "kubeconfig:/etc/edgelink/kubeconfig" {
		t.Errorf("status while listing fails = %+v", st)
	}
	if c := freshness(st, time.Now(), time.Minute); c.Status != "FAIL" ||
		!strings.Contains(c.Detail, "never listed from kubeconfig:/etc/edgelink/kubeconfig") || !strings.Contains(c.Detail, st.LastError) {
		t.Errorf("freshness while listing fails = %+v", c)
	}
	failList.Store(false)
	r.waitSynced()
	r.waitChanges(0, "insert null/node/edge-1")
}

// TestServiceMetaServerListsFromTheCloud proves that with the metaServer
// source every list asks without a resourceVersion (with "0" the edge
// answers from its local cache, which keeps pods deleted while the cloud
// was away), and that the metaServer's habit of replaying every object as
// ADDED on each watch publishes nothing beyond the first inserts.
func TestServiceMetaServerListsFromTheCloud(t *testing.T) {
	r := newRig(t, &Service{Source: v1.SourceMetaServer, Server: "http://127.0.0.1:10550"},
		[]runtime.Object{simplePod("shop", "web-1"), fullNode(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}}},
		spiderPool("edge-1-v4", "10.20.0.0/24", "10.20.0.10", nil))
	r.start()
	r.waitSynced()
	if _, err := r.client.CoreV1().Pods("shop").Create(ctxT(t), simplePod("shop", "sentinel"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r.waitChanges(0, "insert shop/pod/web-1", "insert null/node/edge-1", "insert null/namespace/shop",
		"insert null/spiderippool/edge-1-v4", "insert shop/pod/sentinel")

	lists := map[string]string{}
	for _, a := range append(r.client.Actions(), r.dyn.Actions()...) {
		switch a := a.(type) {
		case k8stesting.ListAction:
			lists[a.GetResource().Resource] = listRV(a)
		case k8stesting.WatchAction:
			if rv := a.GetWatchRestrictions().ResourceVersion; rv != "" {
				t.Errorf("watch of %s with resourceVersion %q", a.GetResource().Resource, rv)
			}
		}
	}
	// (The dynamic fake does not record a list's resourceVersion; the
	// pools' watch above shows their informer gets the same options.)
	for _, res := range []string{"pods", "nodes", "namespaces"} {
		if got, ok := lists[res]; !ok || got != "" {
			t.Errorf("list of %s: %q (listed %v), want no resourceVersion", res, got, ok)
		}
	}
}

func listRV(a k8stesting.ListAction) string {
	if la, ok := a.(k8stesting.ListActionImpl); ok {
		return la.ListOptions.ResourceVersion
	}
	return "?"
}
