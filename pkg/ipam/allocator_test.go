package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const poolsYAML = `
apiVersion: v1
kind: Node
metadata: {name: edge-1, labels: {site: a}}
---
apiVersion: v1
kind: Namespace
metadata:
  name: annotated
  annotations: {ipam.spidernet.io/default-ipv4-ippool: '["ns-pool"]'}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: edge-1-v4}
spec: {subnet: 10.244.0.0/16, ips: ["10.244.5.1-10.244.5.6"], excludeIPs: ["10.244.5.3"], gateway: 10.244.5.1, nodeName: [edge-1], default: true,
       routes: [{dst: 10.96.0.0/12, gw: 10.244.5.1}]}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: edge-1-v6}
spec: {ipVersion: 6, subnet: "fd00:244::/32", ips: ["fd00:244:5::10-fd00:244:5::12"], nodeName: [edge-1], default: true}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: ns-pool}
spec: {subnet: 10.244.0.0/16, ips: ["10.244.7.0-10.244.7.200"], excludeIPs: ["10.244.7.0-10.244.7.63"], nodeAffinity: {matchLabels: {site: a}}}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: ns-pool-10-244-7-0-26, annotations: {edgelink.io/block-of: ns-pool}}
spec: {subnet: 10.244.0.0/16, ips: ["10.244.7.0-10.244.7.63"], excludeIPs: ["10.244.7.0-10.244.7.9"], gateway: 10.244.7.0, nodeName: [edge-1]}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: anno-pool}
spec: {subnet: 10.244.0.0/16, ips: ["10.244.8.10-10.244.8.11"], nodeName: [edge-1]}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: edge-2-v4}
spec: {subnet: 10.244.0.0/16, ips: ["10.244.6.2-10.244.6.200"], nodeName: [edge-2]}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: shared}
spec: {subnet: 10.244.0.0/16, ips: ["10.244.9.2-10.244.9.200"], nodeName: [edge-1, edge-2]}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: unpinned}
spec: {subnet: 10.244.0.0/16, ips: ["10.244.10.2-10.244.10.200"]}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: "off"}
spec: {subnet: 10.244.0.0/16, ips: ["10.244.11.2"], nodeName: [edge-1], disable: true}
---
apiVersion: spiderpool.spidernet.io/v2beta1
kind: SpiderIPPool
metadata: {name: broken}
spec: {subnet: 10.244.0.0/16, ips: ["10.245.0.1"], nodeName: [edge-1]}
---
apiVersion: v1
kind: Pod
metadata:
  name: picky
  namespace: default
  uid: uid-picky
  annotations: {ipam.spidernet.io/ippool: '{"ipv4":["anno-pool"]}'}
---
apiVersion: v1
kind: Pod
metadata:
  name: multi
  namespace: default
  uid: uid-multi
  annotations: {ipam.spidernet.io/ippools: '[{"interface":"net1","ipv4":["ns-pool"]},{"interface":"eth0","ipv4":["anno-pool"]}]'}
`

func newTestAllocator(t *testing.T, node string) (*Allocator, *Store) {
	t.Helper()
	objs, err := DecodeObjects(strings.NewReader(poolsYAML), node)
	if err != nil {
		t.Fatal(err)
	}
	store, err := OpenStore(filepath.Join(t.TempDir(), "ipam.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	return NewAllocator(store, NewView(node, objs)), store
}

func req(name string) *AddRequest {
	return &AddRequest{ContainerID: "c-" + name, IfName: "eth0", NetNS: "/run/netns/" + name,
		PodNamespace: "default", PodName: name, PodUID: "uid-" + name}
}

func addrs(l *Lease) string {
	var s []string
	for _, ip := range l.IPs {
		s = append(s, ip.Address.String()+"@"+ip.Pool)
	}
	return strings.Join(s, " ")
}

func TestPoolParsing(t *testing.T) {
	a, _ := newTestAllocator(t, "edge-1")
	v := a.View()
	p := v.Pools["edge-1-v4"]
	// 10.244.5.1-6 minus the excluded .3 and the gateway .1.
	if p.Size() != 4 || p.Contains(netip.MustParseAddr("10.244.5.3")) || p.Contains(netip.MustParseAddr("10.244.5.1")) || !p.Contains(netip.MustParseAddr("10.244.5.6")) {
		t.Errorf("edge-1-v4: size %d ranges %v", p.Size(), p.ranges)
	}
	if err := v.PoolErrors["broken"]; err == nil || !strings.Contains(err.Error(), `spec.ips: "10.245.0.1" is outside subnet 10.244.0.0/16`) {
		t.Errorf("broken pool error = %v", err)
	}
}

func TestAllocateDualStackDefaultsAndIdempotent(t *testing.T) {
	a, _ := newTestAllocator(t, "edge-1")
	l, err := a.Allocate(req("web"))
	if err != nil {
		t.Fatal(err)
	}
	if got := addrs(l); got != "10.244.5.2/16@edge-1-v4 fd00:244:5::10/32@edge-1-v6" {
		t.Errorf("first allocation = %s", got)
	}
	if l.IPs[0].Gateway != "10.244.5.1" || l.IPs[1].Gateway != "" || len(l.Routes) != 1 {
		t.Errorf("gateway/routes: %+v %+v", l.IPs, l.Routes)
	}
	// The same pod again (a new sandbox): same addresses, new container ID.
	r := req("web")
	r.ContainerID = "c-web-2"
	l2, err := a.Allocate(r)
	if err != nil || addrs(l2) != addrs(l) || l2.ContainerID != "c-web-2" {
		t.Errorf("repeat = %v %v", l2, err)
	}
	// DEL from the old sandbox must not free the new sandbox's lease.
	if freed, err := a.Release("uid-web", "eth0", "c-web"); err != nil || freed {
		t.Errorf("stale release freed=%v err=%v", freed, err)
	}
	if freed, err := a.Release("uid-web", "eth0", "c-web-2"); err != nil || !freed {
		t.Errorf("release freed=%v err=%v", freed, err)
	}
	if freed, err := a.Release("uid-web", "eth0", "c-web-2"); err != nil || freed {
		t.Errorf("second release freed=%v err=%v", freed, err)
	}
}

func TestExhaustionNamesPoolAndSize(t *testing.T) {
	a, _ := newTestAllocator(t, "edge-1")
	seen := map[string]bool{}
	for i := 0; i < 3; i++ { // the IPv6 pool has 3 addresses, the IPv4 pool 4
		l, err := a.Allocate(req(fmt.Sprint("p", i)))
		if err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
		for _, ip := range l.IPs {
			if seen[ip.Address.Addr().String()] {
				t.Fatalf("address %s handed out twice", ip.Address)
			}
			seen[ip.Address.Addr().String()] = true
		}
	}
	_, err := a.Allocate(req("p3"))
	if !errors.Is(err, ErrPoolExhausted) || !strings.Contains(err.Error(), "IPv6 pool edge-1-v6 (all 3 addresses allocated) for pod default/p3 on node edge-1") {
		t.Fatalf("err = %v", err)
	}
	// Dual stack is all or nothing: the IPv4 address it took is back.
	u, _ := a.Usage()
	for _, p := range u {
		if p.Pool == "edge-1-v4" && p.Allocated != 3 {
			t.Errorf("edge-1-v4 has %d allocated after a failed dual-stack ADD, want 3", p.Allocated)
		}
	}
}

func TestSelectionOrder(t *testing.T) {
	a, _ := newTestAllocator(t, "edge-1")
	tests := []struct {
		name string
		r    *AddRequest
		want string
	}{
		{"pod ippool annotation beats everything", func() *AddRequest {
			r := req("picky")
			r.DefaultIPv4Pools = []string{"ns-pool"}
			return r
		}(), "10.244.8.10/16@anno-pool"},
		{"ippools annotation entry for the interface", req("multi"), "10.244.8.11/16@anno-pool"},
		{"namespace annotation beats CNI defaults", func() *AddRequest {
			r := req("nsdef")
			r.PodNamespace = "annotated"
			r.DefaultIPv4Pools = []string{"anno-pool"}
			return r
		}(), "10.244.7.10/16@ns-pool-10-244-7-0-26"},
		{"CNI defaults beat spec.default", func() *AddRequest {
			r := req("cni")
			r.DefaultIPv6Pools = []string{"edge-1-v6"}
			return r
		}(), "fd00:244:5::10/32@edge-1-v6"},
		{"spec.default pools last", req("plain"), "10.244.5.2/16@edge-1-v4 fd00:244:5::11/32@edge-1-v6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := a.Allocate(tt.r)
			if err != nil {
				t.Fatal(err)
			}
			if got := addrs(l); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestNoPoolSaysWhatWasSearched(t *testing.T) {
	a, _ := newTestAllocator(t, "edge-1")
	r := req("x")
	r.DefaultIPv4Pools = []string{"edge-2-v4", "shared", "unpinned", "off", "broken", "ghost"}
	_, err := a.Allocate(r)
	if !errors.Is(err, ErrNoPool) {
		t.Fatalf("err = %v", err)
	}
	for _, want := range []string{
		"no usable IPv4 pool for pod default/x on node edge-1",
		"searched CNI config default_ipv4_ippool/default_ipv6_ippool",
		"edge-2-v4 (is pinned to nodes [edge-2])",
		"shared (is shared and this node has no block of it yet",
		"unpinned (is shared and this node has no block of it yet",
		"off (is disabled (spec.disable))",
		"broken (invalid: SpiderIPPool \"broken\": spec.ips",
		"ghost (no such pool)",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	// A node with no pools at all.
	b, _ := newTestAllocator(t, "edge-9")
	_, err = b.Allocate(req("y"))
	if !errors.Is(err, ErrNoPool) || !strings.Contains(err.Error(), "node edge-9") {
		t.Errorf("err = %v", err)
	}
}

func TestBadRequestNamesField(t *testing.T) {
	a, _ := newTestAllocator(t, "edge-1")
	r := req("x")
	r.PodUID = ""
	if _, err := a.Allocate(r); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "podUID is required") {
		t.Errorf("err = %v", err)
	}
	r = req("picky")
	r.PodUID = "uid-picky"
	v := a.View()
	pod := v.Pods["default/picky"]
	pod.Annotations = map[string]string{AnnoPodIPPool: "{not json"}
	v.Pods["default/picky"] = pod
	if _, err := a.Allocate(r); !errors.Is(err, ErrBadRequest) || !strings.Contains(err.Error(), "annotation ipam.spidernet.io/ippool") {
		t.Errorf("err = %v", err)
	}
}

// A freed address is not handed out again at once: the cursor moves on.
func TestNoImmediateReuse(t *testing.T) {
	a, _ := newTestAllocator(t, "edge-1")
	r := req("a")
	r.DefaultIPv4Pools = []string{"edge-1-v4"}
	l1, _ := a.Allocate(r)
	if _, err := a.Release("uid-a", "eth0", ""); err != nil {
		t.Fatal(err)
	}
	r2 := req("b")
	r2.DefaultIPv4Pools = []string{"edge-1-v4"}
	l2, _ := a.Allocate(r2)
	if l1.IPs[0].Address == l2.IPs[0].Address {
		t.Errorf("address %s reused at once", l1.IPs[0].Address)
	}
}

// Leases survive reopening the store; reconcile frees only pods that are
// gone and older than the grace period.
func TestPersistenceAndReconcile(t *testing.T) {
	dir := t.TempDir()
	objs, _ := DecodeObjects(strings.NewReader(poolsYAML), "edge-1")
	open := func() (*Allocator, *Store) {
		s, err := OpenStore(filepath.Join(dir, "ipam.db"))
		if err != nil {
			t.Fatal(err)
		}
		return NewAllocator(s, NewView("edge-1", objs)), s
	}
	a, s := open()
	l, _ := a.Allocate(req("keep"))
	a.Allocate(req("gone"))
	if err := s.SaveObjects(objs); err != nil {
		t.Fatal(err)
	}
	s.Close()

	a, s = open()
	defer s.Close()
	if got, err := a.Allocate(req("keep")); err != nil || addrs(got) != addrs(l) {
		t.Fatalf("after reopen: %v %v, want %s", got, err, addrs(l))
	}
	if saved, err := s.LoadObjects(); err != nil || len(saved.Pools) != len(objs.Pools) {
		t.Errorf("saved objects: %v %v", saved, err)
	}
	alive := func(uid string) bool { return uid == "uid-keep" }
	if freed, _ := a.ReleaseUnless(alive, time.Hour); len(freed) != 0 {
		t.Errorf("young lease freed: %v", freed)
	}
	a.now = func() time.Time { return time.Now().Add(2 * time.Hour) }
	freed, err := a.ReleaseUnless(alive, time.Hour)
	if err != nil || len(freed) != 1 || freed[0].PodUID != "uid-gone" {
		t.Errorf("freed %v %v", freed, err)
	}
}

func TestStoreLockedByAnotherProcessIsNamed(t *testing.T) {
	defer func(d time.Duration) { lockTimeout = d }(lockTimeout)
	lockTimeout = 100 * time.Millisecond
	path := filepath.Join(t.TempDir(), "ipam.db")
	s, err := OpenStore(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// bbolt's flock is per open file description: a second open blocks.
	_, err = OpenStore(path)
	if err == nil || !strings.Contains(err.Error(), "is locked by another process") {
		t.Errorf("err = %v", err)
	}
}

func TestDecodeObjectsRejectsUnknownKinds(t *testing.T) {
	_, err := DecodeObjects(strings.NewReader("kind: ConfigMap\nmetadata: {name: x}\n"), "n")
	if err == nil || !strings.Contains(err.Error(), `document 1: kind "ConfigMap"`) {
		t.Errorf("err = %v", err)
	}
	objs, err := DecodeObjects(strings.NewReader(`{"kind":"List","items":[{"kind":"SpiderIPPool","metadata":{"name":"p"},"spec":{"subnet":"10.0.0.0/24","ips":["10.0.0.2"]}}]}`), "n")
	if err != nil || len(objs.Pools) != 1 {
		t.Errorf("List: %v %v", objs, err)
	}
}
