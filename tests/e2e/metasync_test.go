package e2e

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/ipam"
	"github.com/edgelink/edgelink/tests/cluster"
	"github.com/edgelink/edgelink/tests/metaprobe"
	"github.com/edgelink/edgelink/tests/testutil"
)

func deletePod(t *testing.T, cp *cluster.ControlPlane, ns, name string) {
	t.Helper()
	zero := int64(0)
	if err := cp.Client.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatalf("delete pod %s/%s: %v", ns, name, err)
	}
}

func edgeProbe(t *testing.T, e *cluster.EdgeNode, snapshot string) *metaprobe.Probe {
	t.Helper()
	p := metaprobe.Start(t, e.NetNS, metaprobe.Config{Source: v1.SourceMetaServer, Server: e.MetaServer, SnapshotPath: snapshot})
	p.WaitFor("initial sync", 60*time.Second, func(ev metaprobe.Event) bool { return ev.Status.Synced })
	return p
}

// On an edge node, through the real edgecore metaServer: pods, nodes,
// namespaces and SpiderIPPools added, changed and deleted anywhere in the
// cluster reach the snapshot and arrive as messages in KubeEdge's format.
func TestMetasyncEdgeNode(t *testing.T) {
	testutil.RequireRoot(t)
	cp := cluster.Shared(t)
	e := cp.AddEdgeNode(t, "ms-edge-1")
	// Only the watches can deliver changes within wait: the audit, which
	// would repair a missed event, comes after 10 minutes.
	const wait = 20 * time.Second
	p := metaprobe.Start(t, e.NetNS, metaprobe.Config{Source: v1.SourceMetaServer, Server: e.MetaServer,
		SnapshotPath: filepath.Join(t.TempDir(), "snapshot.json"), AuditPeriod: 10 * time.Minute})
	p.WaitFor("initial sync", 60*time.Second, func(ev metaprobe.Event) bool { return ev.Status.Synced })

	cp.CreateCloudNode(t, "ms-worker-1", "10.244.1.0/24", "198.18.1.10")
	ev := p.WaitFor("node insert", wait, func(ev metaprobe.Event) bool { return metaprobe.HasChange(ev, "insert", "null/node/ms-worker-1") })
	_ = ev

	cp.CreatePod(t, "default", "ms-web", "ms-worker-1", map[string]string{"app": "web"}, nil)
	p.WaitFor("pod insert", wait, func(ev metaprobe.Event) bool { return metaprobe.HasChange(ev, "insert", "default/pod/ms-web") })
	cp.SetPodIP(t, "default", "ms-web", "10.244.1.10")
	p.WaitFor("pod IP update", wait, func(ev metaprobe.Event) bool {
		return metaprobe.HasChange(ev, "update", "default/pod/ms-web") && ev.Pods["default/ms-web"] == "10.244.1.10"
	})
	// A pod on this edge node and one on another edge node, too.
	cp.CreatePod(t, "default", "ms-local", e.Name, nil, nil)
	p.WaitFor("local pod", wait, func(ev metaprobe.Event) bool { return metaprobe.HasChange(ev, "insert", "default/pod/ms-local") })

	patch := []byte(`{"metadata":{"labels":{"app":"web","tier":"front"}}}`)
	if _, err := cp.Client.CoreV1().Pods("default").Patch(context.Background(), "ms-web", types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	p.WaitFor("label update", wait, func(ev metaprobe.Event) bool {
		return metaprobe.HasChange(ev, "update", "default/pod/ms-web") && ev.Version > 0
	})

	deletePod(t, cp, "default", "ms-web")
	p.WaitFor("pod delete", wait, func(ev metaprobe.Event) bool {
		_, still := ev.Pods["default/ms-web"]
		return metaprobe.HasChange(ev, "delete", "default/pod/ms-web") && !still
	})

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ms-team",
		Annotations: map[string]string{"ipam.spidernet.io/default-ipv4-ippool": `["ms-pool"]`}}}
	if _, err := cp.Client.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p.WaitFor("namespace insert", wait, func(ev metaprobe.Event) bool { return metaprobe.HasChange(ev, "insert", "null/namespace/ms-team") })

	pool := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool",
		"metadata": map[string]any{"name": "ms-pool"},
		"spec":     map[string]any{"subnet": "10.244.0.0/16", "ips": []any{"10.244.5.2-10.244.5.9"}, "nodeName": []any{e.Name}},
	}}
	if _, err := cp.Dynamic.Resource(ipam.PoolGVR).Create(context.Background(), pool, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cp.Dynamic.Resource(ipam.PoolGVR).Delete(context.Background(), "ms-pool", metav1.DeleteOptions{})
	})
	p.WaitFor("pool insert", wait, func(ev metaprobe.Event) bool { return metaprobe.HasChange(ev, "insert", "null/spiderippool/ms-pool") })

	if err := cp.Client.CoreV1().Nodes().Delete(context.Background(), "ms-worker-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	p.WaitFor("node delete", wait, func(ev metaprobe.Event) bool { return metaprobe.HasChange(ev, "delete", "null/node/ms-worker-1") })
	st := p.LastEvent().Status
	if st.Source != v1.SourceMetaServer || !st.Connected || st.LastEvent.IsZero() {
		t.Errorf("status = %+v", st)
	}
}

// A metaServer watch replay (edgecore restarted: every watch reopens and
// replays the cache as ADDED) publishes nothing for unchanged objects.
func TestMetasyncNoFlapOnReplay(t *testing.T) {
	testutil.RequireRoot(t)
	cp := cluster.Shared(t)
	e := cp.AddEdgeNode(t, "ms-edge-2")
	for i := 0; i < 5; i++ {
		name := fmt.Sprintf("ms-replay-%d", i)
		cp.CreatePod(t, "default", name, e.Name, nil, nil)
		cp.SetPodIP(t, "default", name, fmt.Sprintf("10.244.7.%d", 10+i))
	}
	p := edgeProbe(t, e, filepath.Join(t.TempDir(), "snapshot.json"))
	p.WaitFor("pods with IPs", 30*time.Second, func(ev metaprobe.Event) bool { return ev.Pods["default/ms-replay-4"] == "10.244.7.14" })
	before := p.EventCount()
	nodeRV := func() string {
		n, err := cp.Client.CoreV1().Nodes().Get(context.Background(), e.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return n.ResourceVersion
	}
	rv := nodeRV()

	e.Stop()
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second) // let the informers reconnect and replay
	cp.CreatePod(t, "default", "ms-replay-marker", e.Name, nil, nil)
	p.WaitFor("marker after reconnect", 90*time.Second, func(ev metaprobe.Event) bool {
		return metaprobe.HasChange(ev, "insert", "default/pod/ms-replay-marker")
	})
	// cloudcore writes the Node of a node that connects (its annotation):
	// an update the Node really had is no replay.
	nodeChanged := nodeRV() != rv
	for _, ev := range p.EventsSince(before) {
		for _, c := range ev.Changes {
			if nodeChanged && c.Resource == "null/node/"+e.Name {
				t.Logf("%s %s: the Node did change meanwhile", c.Op, c.Resource)
				continue
			}
			if c.Resource != "default/pod/ms-replay-marker" {
				t.Errorf("replay published %s %s", c.Op, c.Resource)
			}
		}
	}
}

// cloudcore stopped, the agent restarted meanwhile: it comes up from the
// snapshot on disk with the last known picture, and changes made while the
// cloud was away arrive once cloudcore is back.
func TestMetasyncCloudOutageAndRestart(t *testing.T) {
	testutil.RequireRoot(t)
	cp := cluster.Shared(t)
	e := cp.AddEdgeNode(t, "ms-edge-3")
	snapshot := filepath.Join(t.TempDir(), "snapshot.json")
	cp.CreatePod(t, "default", "ms-out-1", e.Name, nil, nil)
	cp.SetPodIP(t, "default", "ms-out-1", "10.244.8.10")
	p := edgeProbe(t, e, snapshot)
	p.WaitFor("pod", 30*time.Second, func(ev metaprobe.Event) bool { return ev.Pods["default/ms-out-1"] == "10.244.8.10" })

	cp.StopCloudcore()
	t.Cleanup(func() {
		if !cp.CloudcoreRunning() {
			_ = cp.StartCloudcore()
		}
	})
	p.Stop()
	p2 := metaprobe.Start(t, e.NetNS, metaprobe.Config{Source: v1.SourceMetaServer, Server: e.MetaServer, SnapshotPath: snapshot})
	first := p2.WaitFor("first publish", 10*time.Second, func(metaprobe.Event) bool { return true })
	if !first.Status.FromDisk || first.Pods["default/ms-out-1"] != "10.244.8.10" {
		t.Fatalf("restarted offline without the last picture: %+v", first)
	}
	if first.Status.Synced {
		t.Errorf("claims synced before the source answered")
	}
	// Changes while the cloud is away: the kube-apiserver takes them;
	// the edge cannot see them yet.
	cp.CreatePod(t, "default", "ms-out-2", e.Name, nil, nil)
	cp.SetPodIP(t, "default", "ms-out-2", "10.244.8.11")
	time.Sleep(12 * time.Second) // past the metaServer's 10 s offline stall
	if ev := p2.LastEvent(); ev.Pods["default/ms-out-1"] != "10.244.8.10" {
		t.Errorf("offline, the picture lost ms-out-1: %+v", ev.Pods)
	}
	if err := cp.StartCloudcore(); err != nil {
		t.Fatal(err)
	}
	p2.WaitFor("change made while the cloud was away", 120*time.Second, func(ev metaprobe.Event) bool {
		return ev.Pods["default/ms-out-2"] == "10.244.8.11" && ev.Pods["default/ms-out-1"] == "10.244.8.10"
	})
}

// On a cloud node (kube-apiserver directly): 5,000 pods across 200 nodes
// sync, and an apiserver restart loses no change.
func TestMetasyncCloudNodeScaleAndAPIServerRestart(t *testing.T) {
	testutil.RequireRoot(t)
	cp := cluster.Shared(t)
	nodes, pods := 200, 5000
	if testing.Short() {
		nodes, pods = 20, 500
	}
	p := metaprobe.Start(t, "", metaprobe.Config{Source: v1.SourceKubeconfig, Kubeconfig: cp.Kubeconfig, SnapshotPath: filepath.Join(t.TempDir(), "snapshot.json")})
	p.WaitFor("initial sync", 60*time.Second, func(ev metaprobe.Event) bool { return ev.Status.Synced })

	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "ms-scale"}}
	if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cp.Client.CoreV1().Namespaces().Delete(context.Background(), "ms-scale", metav1.DeleteOptions{})
	})
	for i := 0; i < nodes; i++ {
		cp.CreateCloudNode(t, fmt.Sprintf("ms-n%03d", i), fmt.Sprintf("10.%d.%d.0/24", 100+i/256, i%256), fmt.Sprintf("198.18.%d.%d", 2+i/250, 1+i%250))
	}
	start := time.Now()
	var nodeNames []string
	for i := 0; i < nodes; i++ {
		nodeNames = append(nodeNames, fmt.Sprintf("ms-n%03d", i))
	}
	err := cp.CreatePods(ctx, "ms-scale", "ms-p", pods, nodeNames, func(i int) string {
		return fmt.Sprintf("10.%d.%d.%d", 100+(i%nodes)/256, (i%nodes)%256, 2+i/nodes)
	})
	if err != nil {
		t.Fatal(err)
	}
	created := time.Since(start)
	last := fmt.Sprintf("ms-scale/ms-p%05d", pods-1)
	ev := p.WaitFor("all pods with IPs", 120*time.Second, func(ev metaprobe.Event) bool {
		n := 0
		for k, ip := range ev.Pods {
			if len(k) > 9 && k[:9] == "ms-scale/" && ip != "" {
				n++
			}
		}
		return n == pods && ev.Pods[last] != ""
	})
	t.Logf("%d pods on %d nodes written in %s, all in the snapshot %s after the last write", pods, nodes, created.Round(time.Millisecond), time.Since(start.Add(created)).Round(time.Millisecond))
	_ = ev

	// apiserver restart: a change made right before and one right after both arrive.
	cp.CreatePod(t, "default", "ms-before-restart", "ms-n000", nil, nil)
	cp.StopAPIServer()
	if err := cp.StartAPIServer(); err != nil {
		t.Fatal(err)
	}
	cp.CreatePod(t, "default", "ms-after-restart", "ms-n001", nil, nil)
	p.WaitFor("changes around the apiserver restart", 90*time.Second, func(ev metaprobe.Event) bool {
		_, a := ev.Pods["default/ms-before-restart"]
		_, b := ev.Pods["default/ms-after-restart"]
		return a && b
	})
}
