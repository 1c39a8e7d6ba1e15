package controller

import (
	"context"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// KubeEdge's reliable sync and deleted Nodes.
//
// cloudcore records every cluster-scoped object it sent an edge node in a
// ClusterObjectSync named "<edge node>.<object UID>". Every edge agent
// watches Nodes through its metaServer, so each edge node holds one such
// record per Node of the cluster. When a Node is deleted and the watch's
// delete event is not acknowledged by an edge node (it was offline, or
// cloudcore had restarted and its watch was not registered yet),
// cloudcore's sync controller sends that edge node a "delete node/<name>"
// message every 5 s; cloudhub (KubeEdge v1.20, IsNodeStopped) takes any
// node delete message as "this edge node was deleted" and closes the
// edge node's session. The edge node reconnects 30 s later, gets the same
// message and is cut again: it flaps for as long as the record lives, and
// nothing removes it.
//
// So the controller removes the records of Nodes that no longer exist:
// at once when it sees a Node deleted (by name, one per edge node), and
// in a paginated sweep at start and every syncSweep (deletions it missed
// while down). An edge node's metaServer cache then keeps the deleted
// Node, but the agent's periodic audit lists through the cloud and drops
// it. Without KubeEdge's CRD (a cluster without cloudcore) this is a
// no-op; without the RBAC to list and delete the records it warns once.

// ClusterObjectSyncGVR is KubeEdge's record of a cluster-scoped object
// sent to an edge node.
var ClusterObjectSyncGVR = schema.GroupVersionResource{Group: "reliablesyncs.kubeedge.io", Version: "v1alpha1", Resource: "clusterobjectsyncs"}

const syncSweep = 10 * time.Minute

// syncCleaner removes cloudcore's ClusterObjectSyncs of deleted Nodes.
type syncCleaner struct {
	dyn       dynamic.Interface
	nodes     cache.SharedIndexInformer
	edgeLabel string           // only nodes with it hold records; "" asks every node
	deleted   chan corev1.Node // Nodes just deleted
	warned    bool             // the missing-RBAC warning was given
}

func newSyncCleaner(dyn dynamic.Interface, nodes cache.SharedIndexInformer, edgeLabel string) *syncCleaner {
	return &syncCleaner{dyn: dyn, nodes: nodes, edgeLabel: edgeLabel, deleted: make(chan corev1.Node, 256)}
}

// nodeDeleted is the Node informer's delete handler: it never blocks (a
// full queue leaves the Node to the next sweep).
func (s *syncCleaner) nodeDeleted(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	n, ok := obj.(*corev1.Node)
	if !ok {
		return
	}
	select {
	case s.deleted <- *n:
	default:
	}
}

// run cleans until ctx ends: each deleted Node at once, everything at
// start and every syncSweep. Call it once the Node informer has synced.
func (s *syncCleaner) run(ctx context.Context) {
	s.sweep(ctx)
	t := time.NewTicker(syncSweep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case n := <-s.deleted:
			s.forNode(ctx, n.Name, string(n.UID))
		case <-t.C:
			s.sweep(ctx)
		}
	}
}

// forNode deletes the record "<edge>.<uid>" of every edge node (every
// node, without an edge label) the informer knows; one it never had is
// NotFound.
func (s *syncCleaner) forNode(ctx context.Context, name, uid string) {
	removed := 0
	for _, o := range s.nodes.GetStore().List() {
		n, ok := o.(*corev1.Node)
		if !ok {
			continue
		}
		if _, edge := n.Labels[s.edgeLabel]; s.edgeLabel != "" && !edge {
			continue
		}
		err := s.dyn.Resource(ClusterObjectSyncGVR).Delete(ctx, n.Name+"."+uid, metav1.DeleteOptions{})
		switch {
		case err == nil:
			removed++
		case apierrors.IsNotFound(err):
		case s.refused(err):
			return
		default:
			klog.ErrorS(err, "Cannot delete KubeEdge's sync record of a deleted Node", "node", name, "edgeNode", n.Name)
		}
	}
	if removed > 0 {
		klog.InfoS("Removed KubeEdge's sync records of a deleted Node (cloudcore would cut the edge nodes holding them)", "node", name, "records", removed)
	}
}

// sweep deletes every Node record whose Node is gone or was re-created
// (another UID), a page at a time.
func (s *syncCleaner) sweep(ctx context.Context) {
	uids := map[string]bool{}
	for _, o := range s.nodes.GetStore().List() {
		if n, ok := o.(*corev1.Node); ok {
			uids[string(n.UID)] = true
		}
	}
	opts := metav1.ListOptions{Limit: 500}
	removed := 0
	for {
		l, err := s.dyn.Resource(ClusterObjectSyncGVR).List(ctx, opts)
		if err != nil {
			if !s.refused(err) && ctx.Err() == nil {
				klog.ErrorS(err, "Cannot list KubeEdge's sync records")
			}
			return
		}
		for i := range l.Items {
			if orphanNodeRecord(&l.Items[i], uids) {
				u := l.Items[i].GetUID()
				err := s.dyn.Resource(ClusterObjectSyncGVR).Delete(ctx, l.Items[i].GetName(), metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &u}})
				if err == nil {
					removed++
				} else if !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && !s.refused(err) {
					klog.ErrorS(err, "Cannot delete KubeEdge's sync record of a deleted Node", "record", l.Items[i].GetName())
				}
			}
		}
		if opts.Continue = l.GetContinue(); opts.Continue == "" {
			break
		}
	}
	if removed > 0 {
		klog.InfoS("Removed KubeEdge's sync records of deleted Nodes", "records", removed)
	}
}

// orphanNodeRecord reports whether rec is cloudcore's record of a Node
// whose UID (the name's part after the edge node's name) no live Node has.
func orphanNodeRecord(rec *unstructured.Unstructured, liveUIDs map[string]bool) bool {
	kind, _, _ := unstructured.NestedString(rec.Object, "spec", "objectKind")
	if kind != "Node" {
		return false
	}
	i := strings.LastIndexByte(rec.GetName(), '.')
	if i < 0 {
		return false
	}
	return !liveUIDs[rec.GetName()[i+1:]]
}

// refused reports a missing CRD (a List's NotFound: not a KubeEdge
// cluster, nothing to do) or missing RBAC (warned about once); the
// caller stops.
func (s *syncCleaner) refused(err error) bool {
	switch {
	case apierrors.IsNotFound(err):
		return true
	case apierrors.IsForbidden(err):
		if !s.warned {
			s.warned = true
			klog.InfoS("Warning: cannot clean KubeEdge's sync records of deleted Nodes: grant the controller list and delete on clusterobjectsyncs.reliablesyncs.kubeedge.io, or edge nodes that missed a Node's deletion are cut from cloudcore every 30 s", "err", err)
		}
		return true
	}
	return false
}
