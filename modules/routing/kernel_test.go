package routing

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/edgelink/edgelink/pkg/metadata"
)

// kernelWorld is the cluster of the kernel golden tests, seen from
// edge-a1 (LAN 192.168.1.0/24, edge segment 10.245.0.0/16 and
// fd00:245::/32; the cloud is 10.244.0.0/16).
type kernelWorld struct {
	cloud, edge []netip.Prefix
	snap        *metadata.Snapshot
}

func newKernelWorld() *kernelWorld {
	w := &kernelWorld{
		cloud: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")},
		edge:  []netip.Prefix{netip.MustParsePrefix("10.245.0.0/16"), netip.MustParsePrefix("fd00:245::/32")},
		snap:  metadata.Empty(),
	}
	w.node("cloud-1", "198.18.0.13", "10.244.1.0/24")
	w.node("edge-a1", "192.168.1.11")
	w.node("edge-a2", "192.168.1.12")
	w.node("edge-c1", "192.168.3.11")
	// edge-a1's pool: its gateway goes on the TUN.
	obj := `{"apiVersion":"spiderpool.spidernet.io/v2beta1","kind":"SpiderIPPool","metadata":{"name":"a1-pool"},` +
		`"spec":{"subnet":"10.245.0.0/16","gateway":"10.245.5.1","ips":["10.245.5.2-10.245.5.5"],"nodeName":["edge-a1"]}}`
	w.snap.Pools["a1-pool"] = metadata.NewPoolInfo("a1-pool", []byte(obj))
	w.pod("mine", "edge-a1", "10.245.5.2", "fd00:245:5::2")
	w.pod("lan-peer", "edge-a2", "10.245.6.2", "fd00:245:6::2")
	w.pod("other-site", "edge-c1", "10.245.7.2")
	return w
}

func (w *kernelWorld) node(name, internal string, cidrs ...string) {
	n := &metadata.NodeInfo{Name: name, Addresses: []metadata.NodeAddress{{Type: "InternalIP", Address: netip.MustParseAddr(internal)}}}
	for _, c := range cidrs {
		n.PodCIDRs = append(n.PodCIDRs, netip.MustParsePrefix(c))
	}
	w.snap.Nodes[name] = n
}

func (w *kernelWorld) pod(name, node string, ips ...string) {
	p := &metadata.PodInfo{Namespace: "default", Name: name, NodeName: node}
	for _, a := range ips {
		p.IPs = append(p.IPs, netip.MustParseAddr(a))
	}
	w.snap.Pods["default/"+name] = p
}

func (w *kernelWorld) mesh() []netip.Prefix { return append(slices.Clone(w.cloud), w.edge...) }

func (w *kernelWorld) plan(sys Kernel) *RoutePlan {
	nets, addrs := localNets(sys, "edgelink0")
	return Plan(Input{Node: "edge-a1", Cloud: w.cloud, Edge: w.edge, Snapshot: w.snap, LocalNets: nets, LocalAddrs: addrs})
}

// What the module does to the kernel, operation by operation, as the
// plan changes: the first plan (with the start-up), a node added, a pod
// IP moved from one node to another, a node removed, a segment removed,
// shutdown. Each step is checked against testdata/kernel-<step>.golden
// (go test -update rewrites them); applying a plan again changes nothing
// but puts the TUN's address again.
func TestKernelOperationsGolden(t *testing.T) {
	sys := newFakeKernel("edgelink0")
	k := &kernel{tun: "edgelink0", sys: sys}
	w := newKernelWorld()
	apply := func(t *testing.T) {
		t.Helper()
		if err := k.apply(w.plan(sys), w.mesh()); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name string
		do   func(t *testing.T)
	}{
		{"first", func(t *testing.T) {
			if err := k.clean(); err != nil {
				t.Fatal(err)
			}
			sys.links["edgelink0"] = &Link{Name: "edgelink0", Type: "tuntap", MTU: 1420} // the TUN made again
			if err := k.setUp(true); err != nil {
				t.Fatal(err)
			}
			apply(t)
		}},
		{"node-added", func(t *testing.T) {
			w.node("edge-a3", "192.168.1.13")
			w.pod("new-peer", "edge-a3", "10.245.8.2")
			apply(t)
		}},
		{"prefix-moved", func(t *testing.T) {
			w.pod("lan-peer", "edge-c1", "10.245.6.2", "fd00:245:6::2") // recreated on edge-c1 with its IPs
			apply(t)
		}},
		{"node-removed", func(t *testing.T) {
			delete(w.snap.Nodes, "edge-a3")
			delete(w.snap.Pods, "default/new-peer")
			apply(t)
		}},
		{"segment-removed", func(t *testing.T) {
			w.cloud = nil
			delete(w.snap.Nodes, "cloud-1")
			apply(t)
		}},
		{"shutdown", func(t *testing.T) {
			if err := k.tearDown(); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			st.do(t)
			got := strings.Join(sys.take(), "\n") + "\n"
			path := filepath.Join("testdata", "kernel-"+st.name+".golden")
			if want := golden(t, path, got); got != want {
				t.Errorf("operations differ from %s (go test -update rewrites it):\n%s", path, lineDiff(want, got))
			}
			if st.name == "shutdown" {
				return
			}
			// Again: reconcileAddrs replaces the TUN's addresses every
			// time (idempotent); nothing else happens.
			apply(t)
			again := slices.DeleteFunc(sys.take(), func(op string) bool { return strings.HasPrefix(op, "ip addr replace ") })
			if len(again) > 0 {
				t.Errorf("the same plan applied again changed the kernel:\n%s", strings.Join(again, "\n"))
			}
		})
	}
	// Nothing of ours is left.
	if rs, _ := sys.Routes(); len(rs) > 0 {
		t.Errorf("routes left after shutdown: %v", rs)
	}
	for _, ipt := range sys.ipt {
		for name := range ipt.chains {
			if strings.Contains(name, "EDGELINK") {
				t.Errorf("%s: chain %s left after shutdown", ipt.cmd, name)
			}
		}
	}
}

// golden returns the content of the golden file path, which -update
// first rewrites with got.
func golden(t *testing.T, path, got string) string {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(want)
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range w {
		if !slices.Contains(g, l) {
			fmt.Fprintf(&b, "- %s\n", l)
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			fmt.Fprintf(&b, "+ %s\n", l)
		}
	}
	if b.Len() == 0 {
		return "(the same lines in another order)\n--- got:\n" + got
	}
	return b.String()
}

// Leftovers: a TUN of our name is deleted, a link of another kind
// refused; routes of ours are removed.
func TestKernelClean(t *testing.T) {
	sys := newFakeKernel("edgelink0")
	sys.routes[netip.MustParsePrefix("10.244.0.0/16")] = Route{Dst: netip.MustParsePrefix("10.244.0.0/16"), Via: netip.MustParseAddr("192.168.1.1")}
	k := &kernel{tun: "edgelink0", sys: sys}
	if err := k.clean(); err != nil {
		t.Fatal(err)
	}
	want := "ip link del edgelink0\nip route del 10.244.0.0/16 via 192.168.1.1 proto 77"
	if got := strings.Join(sys.take(), "\n"); got != want {
		t.Errorf("clean:\n%s\nwant:\n%s", got, want)
	}
	sys.links["edgelink0"] = &Link{Name: "edgelink0", Type: "bridge"}
	if err := k.clean(); err == nil || !strings.Contains(err.Error(), "a bridge link named edgelink0 already exists") {
		t.Errorf("clean with a bridge of our name: %v", err)
	}
}

// IPv4 forwarding that stays off is an error; sysctls the kernel lacks
// are not.
func TestKernelSysctls(t *testing.T) {
	sys := newFakeKernel("edgelink0")
	delete(sys.sysctls, "net/ipv6/conf/all/forwarding") // no IPv6
	k := &kernel{tun: "edgelink0", sys: sys}
	if err := k.setSysctls(true); err != nil {
		t.Fatal(err)
	}
	if sys.sysctls["net/ipv4/ip_forward"] != "1" || sys.sysctls["net/ipv4/conf/edgelink0/rp_filter"] != "2" {
		t.Errorf("sysctls: %v", sys.sysctls)
	}
	delete(sys.sysctls, "net/ipv4/ip_forward")
	if err := k.setSysctls(false); err == nil {
		t.Error("no error with IPv4 forwarding unavailable")
	}
}
