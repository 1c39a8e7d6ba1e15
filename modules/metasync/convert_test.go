package metasync

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/cache"

	"github.com/edgelink/edgelink/pkg/ipam"
	"github.com/edgelink/edgelink/pkg/metadata"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// fullPod is a pod as the API server returns it, with fields the agent
// does not read (containers, conditions, managed fields).
func fullPod() *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "shop", Name: "web-1", UID: "uid-web-1", ResourceVersion: "42",
			Labels:        map[string]string{"app": "web"},
			Annotations:   map[string]string{"ipam.spidernet.io/ippool": `{"ipv4":["edge-v4"]}`},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kubelet"}},
		},
		Spec: corev1.PodSpec{
			NodeName:   "edge-1",
			Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}},
		},
		Status: corev1.PodStatus{
			Phase:      corev1.PodRunning,
			PodIP:      "10.20.0.5",
			PodIPs:     []corev1.PodIP{{IP: "10.20.0.5"}, {IP: "fd00:20::5"}},
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		},
	}
}

// TestPodInfo proves which pod fields reach the metadata picture: identity,
// node, phase (terminal phases included, so consumers can release their
// addresses), hostNetwork, labels, annotations, and the pod's IPs — from
// status.podIPs, falling back to status.podIP, with malformed addresses
// skipped rather than failing the pod.
func TestPodInfo(t *testing.T) {
	tests := []struct {
		name   string
		modify func(p *corev1.Pod)
		want   func(w *metadata.PodInfo)
	}{
		{"running dual-stack pod", func(*corev1.Pod) {}, func(*metadata.PodInfo) {}},
		{"podIP used when podIPs is empty", func(p *corev1.Pod) { p.Status.PodIPs = nil },
			func(w *metadata.PodInfo) { w.IPs = addrs("10.20.0.5") }},
		{"podIPs wins over podIP", func(p *corev1.Pod) { p.Status.PodIP = "10.99.0.1" }, func(*metadata.PodInfo) {}},
		{"malformed podIPs entry skipped", func(p *corev1.Pod) {
			p.Status.PodIPs = []corev1.PodIP{{IP: "not-an-ip"}, {IP: "fd00:20::5"}}
		}, func(w *metadata.PodInfo) { w.IPs = addrs("fd00:20::5") }},
		{"only malformed podIPs: podIP fallback", func(p *corev1.Pod) {
			p.Status.PodIPs = []corev1.PodIP{{IP: "10.20.0.300"}}
		}, func(w *metadata.PodInfo) { w.IPs = addrs("10.20.0.5") }},
		{"malformed podIP and no podIPs: no IPs", func(p *corev1.Pod) {
			p.Status.PodIPs, p.Status.PodIP = nil, "garbage"
		}, func(w *metadata.PodInfo) { w.IPs = nil }},
		{"pending pod without node or IP", func(p *corev1.Pod) {
			p.Spec.NodeName, p.Status.Phase, p.Status.PodIP, p.Status.PodIPs = "", corev1.PodPending, "", nil
		}, func(w *metadata.PodInfo) { w.NodeName, w.Phase, w.IPs = "", "Pending", nil }},
		{"succeeded pod keeps its phase and IPs", func(p *corev1.Pod) { p.Status.Phase = corev1.PodSucceeded },
			func(w *metadata.PodInfo) { w.Phase = "Succeeded" }},
		{"failed pod keeps its phase", func(p *corev1.Pod) { p.Status.Phase = corev1.PodFailed },
			func(w *metadata.PodInfo) { w.Phase = "Failed" }},
		{"hostNetwork pod", func(p *corev1.Pod) {
			p.Spec.HostNetwork = true
			p.Status.PodIPs = []corev1.PodIP{{IP: "192.168.1.10"}}
		}, func(w *metadata.PodInfo) { w.HostNetwork, w.IPs = true, addrs("192.168.1.10") }},
		{"no labels or annotations", func(p *corev1.Pod) { p.Labels, p.Annotations = nil, nil },
			func(w *metadata.PodInfo) { w.Labels, w.Annotations = nil, nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := fullPod()
			tc.modify(p)
			want := &metadata.PodInfo{
				Namespace: "shop", Name: "web-1", UID: "uid-web-1", NodeName: "edge-1",
				IPs: addrs("10.20.0.5", "fd00:20::5"), Phase: "Running",
				Labels:      map[string]string{"app": "web"},
				Annotations: map[string]string{"ipam.spidernet.io/ippool": `{"ipv4":["edge-v4"]}`},
			}
			tc.want(want)
			got := podInfo(p)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("podInfo:\n got %+v\nwant %+v", got, want)
			}
			// The informer stores trimmed pods: trimming must keep everything
			// podInfo reads.
			trimmed, err := trimPod(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := podInfo(trimmed.(*corev1.Pod)); !reflect.DeepEqual(got, want) {
				t.Errorf("podInfo(trimPod):\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func fullNode() *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: "edge-1", UID: "uid-edge-1", ResourceVersion: "7",
			Labels:      map[string]string{"node-role.kubernetes.io/edge": ""},
			Annotations: map[string]string{"node.alpha.kubernetes.io/ttl": "0"}},
		Spec: corev1.NodeSpec{PodCIDR: "10.20.0.0/24", PodCIDRs: []string{"10.20.0.0/24", "fd00:20::/64"}},
		Status: corev1.NodeStatus{
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: "192.168.1.10"},
				{Type: corev1.NodeHostName, Address: "edge-1"},
				{Type: corev1.NodeExternalIP, Address: "2001:db8::10"},
			},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
		},
	}
}

// TestNodeInfo proves which node fields reach the picture: name, UID,
// labels (not annotations), pod CIDRs (spec.podCIDRs, else spec.podCIDR;
// malformed ones skipped) and the IP addresses with their type (hostname
// entries, which are not addresses, are dropped).
func TestNodeInfo(t *testing.T) {
	tests := []struct {
		name   string
		modify func(n *corev1.Node)
		want   func(w *metadata.NodeInfo)
	}{
		{"dual-stack node", func(*corev1.Node) {}, func(*metadata.NodeInfo) {}},
		{"podCIDR used when podCIDRs is empty", func(n *corev1.Node) { n.Spec.PodCIDRs = nil },
			func(w *metadata.NodeInfo) { w.PodCIDRs = prefixes("10.20.0.0/24") }},
		{"podCIDRs wins over podCIDR", func(n *corev1.Node) { n.Spec.PodCIDR = "10.99.0.0/24" }, func(*metadata.NodeInfo) {}},
		{"malformed CIDR skipped", func(n *corev1.Node) { n.Spec.PodCIDRs = []string{"10.20.0.0/33", "fd00:20::/64"} },
			func(w *metadata.NodeInfo) { w.PodCIDRs = prefixes("fd00:20::/64") }},
		{"no CIDR (node without IPAM)", func(n *corev1.Node) { n.Spec.PodCIDR, n.Spec.PodCIDRs = "", nil },
			func(w *metadata.NodeInfo) { w.PodCIDRs = nil }},
		{"no addresses yet", func(n *corev1.Node) { n.Status.Addresses = nil },
			func(w *metadata.NodeInfo) { w.Addresses = nil }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := fullNode()
			tc.modify(n)
			want := &metadata.NodeInfo{
				Name: "edge-1", UID: "uid-edge-1",
				PodCIDRs: prefixes("10.20.0.0/24", "fd00:20::/64"),
				Addresses: []metadata.NodeAddress{
					{Type: "InternalIP", Address: netip.MustParseAddr("192.168.1.10")},
					{Type: "ExternalIP", Address: netip.MustParseAddr("2001:db8::10")},
				},
				Labels: map[string]string{"node-role.kubernetes.io/edge": ""},
			}
			tc.want(want)
			if got := nodeInfo(n); !reflect.DeepEqual(got, want) {
				t.Errorf("nodeInfo:\n got %+v\nwant %+v", got, want)
			}
			trimmed, err := trimNode(n)
			if err != nil {
				t.Fatal(err)
			}
			if got := nodeInfo(trimmed.(*corev1.Node)); !reflect.DeepEqual(got, want) {
				t.Errorf("nodeInfo(trimNode):\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

// TestTrimDropsWhatTheAgentIgnores proves the informers' transforms keep
// memory small (containers, conditions, managed fields and node
// annotations are gone) and pass anything that is not a pod or node —
// such as a delete tombstone — through untouched.
func TestTrimDropsWhatTheAgentIgnores(t *testing.T) {
	p, _ := trimPod(fullPod())
	tp := p.(*corev1.Pod)
	if len(tp.Spec.Containers) != 0 || len(tp.Status.Conditions) != 0 || len(tp.ManagedFields) != 0 {
		t.Errorf("trimPod kept fields the agent does not read: %+v", tp)
	}
	if tp.ResourceVersion != "42" {
		t.Errorf("trimPod dropped the resourceVersion the informer needs: %q", tp.ResourceVersion)
	}
	n, _ := trimNode(fullNode())
	tn := n.(*corev1.Node)
	if len(tn.Status.Conditions) != 0 || tn.Annotations != nil {
		t.Errorf("trimNode kept fields the agent does not read: %+v", tn)
	}
	if tn.ResourceVersion != "7" {
		t.Errorf("trimNode dropped the resourceVersion the informer needs: %q", tn.ResourceVersion)
	}
	tomb := cache.DeletedFinalStateUnknown{Key: "shop/web-1", Obj: fullPod()}
	for name, trim := range map[string]func(any) (any, error){"trimPod": trimPod, "trimNode": trimNode} {
		got, err := trim(tomb)
		if err != nil || !reflect.DeepEqual(got, tomb) {
			t.Errorf("%s(tombstone) = %v, %v; want it unchanged", name, got, err)
		}
	}
}

// TestNamespaceInfo proves namespaces carry name, labels and annotations
// (IPAM reads pool selections from namespace annotations).
func TestNamespaceInfo(t *testing.T) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop", UID: "u",
		Labels:      map[string]string{"team": "a"},
		Annotations: map[string]string{"ipam.spidernet.io/default-ipv4-ippool": `["edge-v4"]`}}}
	want := &metadata.NamespaceInfo{Name: "shop", Labels: map[string]string{"team": "a"},
		Annotations: map[string]string{"ipam.spidernet.io/default-ipv4-ippool": `["edge-v4"]`}}
	if got := namespaceInfo(ns); !reflect.DeepEqual(got, want) {
		t.Errorf("namespaceInfo = %+v, want %+v", got, want)
	}
}

// spiderPool builds a SpiderIPPool as the API server returns it.
func spiderPool(name, subnet, ips string, annotations map[string]string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "spiderpool.spidernet.io/v2beta1",
		"kind":       "SpiderIPPool",
		"metadata": map[string]any{
			"name": name,
		},
		"spec": map[string]any{
			"subnet":   subnet,
			"ips":      []any{ips},
			"nodeName": []any{"edge-1"},
		},
	}}
	u.SetLabels(map[string]string{ipam.LabelBlock: "true"})
	if annotations != nil {
		u.SetAnnotations(annotations)
	}
	return u
}

// TestPoolInfo proves what of a SpiderIPPool reaches the picture and
// IPAM: kind, name, labels, spec and EdgeLink's block annotations
// (edgelink.io/blocks, edgelink.io/block-of) survive; status, other
// annotations and server-side metadata are dropped, so SpiderPool's
// allocation counters and kubectl's bookkeeping do not make a pool change.
func TestPoolInfo(t *testing.T) {
	u := spiderPool("edge-1-v4", "10.20.0.0/24", "10.20.0.10-10.20.0.20", map[string]string{
		ipam.AnnoBlockOf: "shared-v4",
		ipam.AnnoBlocks:  `{"10.20.0.0/26":"edge-1"}`,
		"kubectl.kubernetes.io/last-applied-configuration": "{}",
		"spiderpool.spidernet.io/note":                     "x",
	})
	u.SetResourceVersion("100")
	u.SetUID("uid-pool")
	u.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "spiderpool-controller"}})
	u.Object["status"] = map[string]any{"allocatedIPs": `{"10.20.0.2":{}}`, "allocatedIPCount": int64(1)}

	info, err := poolInfo(u)
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "edge-1-v4" {
		t.Errorf("Name = %q", info.Name)
	}
	var got map[string]any
	if err := json.Unmarshal(info.Object, &got); err != nil {
		t.Fatalf("Object is not JSON: %v", err)
	}
	want := map[string]any{
		"apiVersion": "spiderpool.spidernet.io/v2beta1",
		"kind":       "SpiderIPPool",
		"metadata": map[string]any{
			"name":   "edge-1-v4",
			"labels": map[string]any{ipam.LabelBlock: "true"},
			"annotations": map[string]any{
				ipam.AnnoBlockOf: "shared-v4",
				ipam.AnnoBlocks:  `{"10.20.0.0/26":"edge-1"}`,
			},
		},
		"spec": map[string]any{"subnet": "10.20.0.0/24", "ips": []any{"10.20.0.10-10.20.0.20"}, "nodeName": []any{"edge-1"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("poolInfo object:\n got %v\nwant %v", got, want)
	}

	// The typed form, parsed once here: what routes and IPAM read.
	if info.Err != nil || info.Pool == nil || info.Spider == nil {
		t.Fatalf("typed form missing: err %v, pool %v, spider %v", info.Err, info.Pool, info.Spider)
	}
	if info.Version != 4 || info.Subnet != netip.MustParsePrefix("10.20.0.0/24") || info.Node != "edge-1" ||
		info.BlockOf != "shared-v4" || info.Disabled || info.Gateway.IsValid() ||
		!reflect.DeepEqual(info.Blocks, ipam.Claims{netip.MustParsePrefix("10.20.0.0/26"): "edge-1"}) {
		t.Errorf("typed form: %+v", info)
	}
	if got := fmt.Sprint(info.Prefixes); got != "[10.20.0.10/31 10.20.0.12/30 10.20.0.16/30 10.20.0.20/32]" {
		t.Errorf("Prefixes = %s", got)
	}
	if info.Pool.BlockOf() != "shared-v4" || info.Pool.Size() != 11 {
		t.Errorf("IPAM's pool: block-of %q, size %d", info.Pool.BlockOf(), info.Pool.Size())
	}

	// Churn in what is dropped is not a change; a change in what is kept is.
	churn := u.DeepCopy()
	churn.SetResourceVersion("101")
	churn.Object["status"] = map[string]any{"allocatedIPs": `{}`, "allocatedIPCount": int64(0)}
	a := churn.GetAnnotations()
	a["kubectl.kubernetes.io/last-applied-configuration"] = `{"changed":true}`
	churn.SetAnnotations(a)
	if c, _ := poolInfo(churn); !c.Equal(info) {
		t.Errorf("status/resourceVersion/foreign annotation churn changed the pool:\n%s\n%s", info.Object, c.Object)
	}
	for name, edit := range map[string]func(*unstructured.Unstructured){
		"block record": func(v *unstructured.Unstructured) {
			a := v.GetAnnotations()
			a[ipam.AnnoBlocks] = `{"10.20.0.0/26":"edge-2"}`
			v.SetAnnotations(a)
		},
		"spec": func(v *unstructured.Unstructured) {
			v.Object["spec"].(map[string]any)["excludeIPs"] = []any{"10.20.0.1"}
		},
		"labels": func(v *unstructured.Unstructured) { v.SetLabels(map[string]string{"x": "y"}) },
	} {
		v := u.DeepCopy()
		edit(v)
		if c, _ := poolInfo(v); c.Equal(info) {
			t.Errorf("a change of the pool's %s is not a change", name)
		}
	}
}

// TestPoolInfoWithoutOurAnnotations proves a pool with only foreign
// annotations carries no annotations at all, and a pool that cannot be
// encoded is an error, not a half-empty pool.
func TestPoolInfoWithoutOurAnnotations(t *testing.T) {
	u := spiderPool("shared-v4", "10.20.0.0/16", "10.20.0.10-10.20.0.20", map[string]string{"kubectl.kubernetes.io/last-applied-configuration": "{}"})
	info, err := poolInfo(u)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Metadata map[string]any `json:"metadata"`
	}
	if err := json.Unmarshal(info.Object, &got); err != nil {
		t.Fatal(err)
	}
	if _, ok := got.Metadata["annotations"]; ok {
		t.Errorf("pool without EdgeLink annotations has annotations: %s", info.Object)
	}

	// A pool ParsePool refuses, and JSON that does not decode, are kept
	// with the reason and no typed form.
	inv := spiderPool("inv", "10.30.0.0/24", "10.31.0.10", nil)
	if info, err := poolInfo(inv); err != nil || info.Err == nil || !strings.Contains(info.Err.Error(), "outside subnet") || info.Pool != nil || info.Spider == nil || len(info.Prefixes) != 0 {
		t.Errorf("invalid pool = %+v, %v", info, err)
	}
	if info := metadata.NewPoolInfo("junk", []byte(`{"spec":[]}`)); info.Err == nil || info.Spider != nil || info.Pool != nil || string(info.Object) != `{"spec":[]}` {
		t.Errorf("undecodable pool = %+v", info)
	}

	bad := spiderPool("bad", "10.30.0.0/24", "10.30.0.10", nil)
	bad.Object["spec"].(map[string]any)["vlan"] = math.NaN()
	if info, err := poolInfo(bad); err == nil || info != nil {
		t.Errorf("poolInfo(unencodable) = %v, %v; want an error", info, err)
	}
}
