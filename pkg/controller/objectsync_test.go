package controller

import (
	"context"
	"slices"
	"sort"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	dynfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/tools/cache"
)

func syncRecord(edge, uid, kind, name string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "reliablesyncs.kubeedge.io/v1alpha1", "kind": "ClusterObjectSync",
		"metadata": map[string]any{"name": edge + "." + uid},
		"spec":     map[string]any{"objectAPIVersion": "v1", "objectKind": kind, "objectName": name},
	}}
	return u
}

func nodeStore(t *testing.T, nodes ...*corev1.Node) cache.SharedIndexInformer {
	t.Helper()
	inf := cache.NewSharedIndexInformer(&cache.ListWatch{}, &corev1.Node{}, 0, cache.Indexers{})
	for _, n := range nodes {
		if err := inf.GetStore().Add(n); err != nil {
			t.Fatal(err)
		}
	}
	return inf
}

func liveNode(name, uid string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(uid), Labels: map[string]string{"node-role.kubernetes.io/edge": ""}}}
}

func remaining(t *testing.T, c *syncCleaner) []string {
	t.Helper()
	l, err := c.dyn.Resource(ClusterObjectSyncGVR).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, i := range l.Items {
		out = append(out, i.GetName())
	}
	sort.Strings(out)
	return out
}

// A deleted Node's records go, one per edge node, and nothing else: not
// the live Nodes', not another kind's (a ClusterRole sent to an edge).
// The sweep finds what the deletion events missed, a re-created Node's
// old records included, and keeps the rest.
func TestSyncCleanerRemovesRecordsOfDeletedNodes(t *testing.T) {
	scheme := runtime.NewScheme()
	gvrs := map[schema.GroupVersionResource]string{ClusterObjectSyncGVR: "ClusterObjectSyncList"}
	objs := []runtime.Object{
		syncRecord("a1", "uid-b1", "Node", "b1"), syncRecord("c1", "uid-b1", "Node", "b1"), // b1 deleted
		syncRecord("a1", "uid-c1", "Node", "c1"), syncRecord("c1", "uid-a1", "Node", "a1"), // live
		syncRecord("a1", "uid-old-c1", "Node", "c1"),     // c1 before it was re-created
		syncRecord("a1", "uid-gone", "ClusterRole", "x"), // not a Node's
	}
	dyn := dynfake.NewSimpleDynamicClientWithCustomListKinds(scheme, gvrs, objs...)
	cloud := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cloud-1", UID: "uid-cloud-1"}}
	c := newSyncCleaner(dyn, nodeStore(t, liveNode("a1", "uid-a1"), liveNode("c1", "uid-c1"), cloud), "node-role.kubernetes.io/edge")

	c.forNode(context.Background(), "b1", "uid-b1")
	want := []string{"a1.uid-c1", "a1.uid-gone", "a1.uid-old-c1", "c1.uid-a1"}
	if got := remaining(t, c); !slices.Equal(got, want) {
		t.Fatalf("after b1's deletion: records %v, want %v", got, want)
	}
	c.sweep(context.Background())
	want = []string{"a1.uid-c1", "a1.uid-gone", "c1.uid-a1"}
	if got := remaining(t, c); !slices.Equal(got, want) {
		t.Fatalf("after the sweep: records %v, want %v", got, want)
	}
}

// The informer's delete handler never blocks, and unwraps a tombstone.
func TestSyncCleanerQueuesDeletedNodes(t *testing.T) {
	c := newSyncCleaner(nil, nodeStore(t), "")
	c.nodeDeleted(cache.DeletedFinalStateUnknown{Key: "b1", Obj: liveNode("b1", "uid-b1")})
	for range cap(c.deleted) + 10 {
		c.nodeDeleted(liveNode("x", "uid-x"))
	}
	if n := <-c.deleted; n.Name != "b1" || n.UID != "uid-b1" {
		t.Errorf("queued %s/%s, want b1/uid-b1", n.Name, n.UID)
	}
}
