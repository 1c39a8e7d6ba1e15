package metasync

import (
	"errors"
	"math"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"

	"github.com/edgelink/edgelink/pkg/metadata"
)

// captureInformer records the event handler metasync registers, so tests
// can deliver events to it directly (add, update, delete, tombstones).
type captureInformer struct {
	cache.SharedIndexInformer // nil: only AddEventHandler is used
	h                         cache.ResourceEventHandler
}

func (c *captureInformer) AddEventHandler(h cache.ResourceEventHandler) (cache.ResourceEventHandlerRegistration, error) {
	c.h = h
	return nil, nil
}

type handlerRig struct {
	svc                          *Service
	pods, nodes, namespaces, pls *captureInformer
	kicks                        int
}

func newHandlerRig(t *testing.T) *handlerRig {
	t.Helper()
	r := &handlerRig{svc: &Service{SnapshotPath: filepath.Join(t.TempDir(), "snapshot.json")},
		pods: &captureInformer{}, nodes: &captureInformer{}, namespaces: &captureInformer{}, pls: &captureInformer{}}
	if err := r.svc.Init(); err != nil {
		t.Fatal(err)
	}
	r.svc.addHandlers(r.pods, r.nodes, r.namespaces, r.pls, func() { r.kicks++ })
	return r
}

// publish returns the changes since the last publish as "op resource".
func (r *handlerRig) publish() []string {
	_, changes := r.svc.cache.Publish(time.Now())
	return changeStrings(changes)
}

func changeStrings(changes []metadata.Change) []string {
	out := []string{}
	for _, c := range changes {
		out = append(out, c.Op+" "+c.Resource)
	}
	return out
}

func simplePod(ns, name string) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: types.UID("uid-" + name)},
		Spec:   corev1.PodSpec{NodeName: "edge-1"},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIPs: []corev1.PodIP{{IP: "10.20.0.5"}}}}
}

// TestHandlersApplyEvents proves, for every kind, that an add is published
// as an insert, a real update as an update, an unchanged re-delivery (the
// metaServer's watch replay) as nothing, and a delete — plain or as a
// cache.DeletedFinalStateUnknown tombstone, which the informer hands over
// when it missed the delete — as a delete; each event kicks the publisher.
func TestHandlersApplyEvents(t *testing.T) {
	tests := []struct {
		name     string
		inf      func(r *handlerRig) *captureInformer
		obj      any
		changed  any
		key      string
		resource string
	}{
		{"pod", func(r *handlerRig) *captureInformer { return r.pods }, simplePod("shop", "web-1"),
			func() any { p := simplePod("shop", "web-1"); p.Status.Phase = corev1.PodSucceeded; return p }(),
			"shop/web-1", "shop/pod/web-1"},
		{"node", func(r *handlerRig) *captureInformer { return r.nodes }, fullNode(),
			func() any { n := fullNode(); n.Spec.PodCIDRs = []string{"10.21.0.0/24"}; return n }(),
			"edge-1", "null/node/edge-1"},
		{"namespace", func(r *handlerRig) *captureInformer { return r.namespaces },
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
			&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", Labels: map[string]string{"team": "b"}}},
			"shop", "null/namespace/shop"},
		{"pool", func(r *handlerRig) *captureInformer { return r.pls },
			spiderPool("edge-1-v4", "10.20.0.0/24", "10.20.0.10", nil),
			spiderPool("edge-1-v4", "10.20.0.0/24", "10.20.0.11", nil),
			"edge-1-v4", "null/spiderippool/edge-1-v4"},
	}
	for _, tc := range tests {
		for _, tomb := range []bool{false, true} {
			name := tc.name + "/plain delete"
			if tomb {
				name = tc.name + "/tombstone delete"
			}
			t.Run(name, func(t *testing.T) {
				r := newHandlerRig(t)
				h := tc.inf(r).h
				step := func(what string, do func(), want ...string) {
					t.Helper()
					kicks := r.kicks
					do()
					if r.kicks != kicks+1 {
						t.Errorf("%s: %d kicks, want 1", what, r.kicks-kicks)
					}
					if got := r.publish(); !reflect.DeepEqual(got, append([]string{}, want...)) {
						t.Errorf("%s: published %q, want %q", what, got, want)
					}
				}
				step("add", func() { h.OnAdd(tc.obj, false) }, "insert "+tc.resource)
				step("replay", func() { h.OnUpdate(tc.obj, tc.obj) })
				step("update", func() { h.OnUpdate(tc.obj, tc.changed) }, "update "+tc.resource)
				if tomb {
					step("delete", func() { h.OnDelete(cache.DeletedFinalStateUnknown{Key: tc.key, Obj: tc.changed}) }, "delete "+tc.resource)
				} else {
					step("delete", func() { h.OnDelete(tc.changed) }, "delete "+tc.resource)
				}
				if snap := r.svc.cache.Snapshot(); len(snap.Pods)+len(snap.Nodes)+len(snap.Namespaces)+len(snap.Pools) != 0 {
					t.Errorf("picture not empty after the delete: %+v", snap)
				}
			})
		}
	}
}

// TestHandlersDeletePublishesLastKnownObject proves a delete carries the
// object as last seen (consumers release what it held), not the
// tombstone's possibly older copy or nothing.
func TestHandlersDeletePublishesLastKnownObject(t *testing.T) {
	r := newHandlerRig(t)
	p := simplePod("shop", "web-1")
	r.pods.h.OnAdd(p, false)
	r.svc.cache.Publish(time.Now())
	r.pods.h.OnDelete(cache.DeletedFinalStateUnknown{Key: "shop/web-1", Obj: p})
	_, changes := r.svc.cache.Publish(time.Now())
	if len(changes) != 1 {
		t.Fatalf("changes = %v", changes)
	}
	got, ok := changes[0].Object.(*metadata.PodInfo)
	if !ok || got.UID != "uid-web-1" || !reflect.DeepEqual(got.IPs, addrs("10.20.0.5")) {
		t.Errorf("delete carries %#v, want the pod with its UID and IP", changes[0].Object)
	}
}

// TestHandlersIgnoreMalformedEvents proves events the handlers cannot use
// leave the picture alone and do not panic: a tombstone without an object,
// an object of the wrong type, and a pool update that cannot be encoded
// (the last good version of the pool stays).
func TestHandlersIgnoreMalformedEvents(t *testing.T) {
	r := newHandlerRig(t)
	good := spiderPool("edge-1-v4", "10.20.0.0/24", "10.20.0.10", nil)
	r.pls.h.OnAdd(good, false)
	r.pods.h.OnAdd(simplePod("shop", "web-1"), false)
	r.publish()
	before := r.svc.cache.Snapshot()

	kicks := r.kicks
	r.pods.h.OnDelete(cache.DeletedFinalStateUnknown{Key: "shop/web-1"})
	if r.kicks != kicks {
		t.Errorf("a tombstone without an object kicked the publisher")
	}
	r.pods.h.OnAdd(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "edge-9"}}, false)
	r.pods.h.OnDelete(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "edge-9"}})
	r.nodes.h.OnAdd(simplePod("shop", "web-9"), false)
	r.pls.h.OnDelete(simplePod("shop", "web-1"))
	bad := good.DeepCopy()
	bad.Object["spec"].(map[string]any)["vlan"] = math.NaN()
	r.pls.h.OnUpdate(good, bad)
	if got := r.publish(); len(got) != 0 {
		t.Errorf("malformed events published %q", got)
	}
	after := r.svc.cache.Snapshot()
	if after != before || after.Pools["edge-1-v4"] == nil || after.Pods["shop/web-1"] == nil {
		t.Errorf("malformed events changed the picture: %+v", after)
	}
}

// TestHandlersNoteEvents proves an event marks the source connected again
// after a watch error, records when it arrived, and keeps the last error
// for the operator.
func TestHandlersNoteEvents(t *testing.T) {
	r := newHandlerRig(t)
	r.svc.noteError("pods", errors.New("connection refused"))
	st := r.svc.Status()
	if st.Connected || st.LastError != "pods: connection refused" {
		t.Fatalf("after a watch error: connected %v, last error %q", st.Connected, st.LastError)
	}
	start := time.Now()
	r.nodes.h.OnAdd(fullNode(), false)
	st = r.svc.Status()
	if !st.Connected || st.LastEvent.Before(start) || st.LastError != "pods: connection refused" {
		t.Errorf("after an event: connected %v, last event %v (want ≥ %v), last error %q", st.Connected, st.LastEvent, start, st.LastError)
	}
}
