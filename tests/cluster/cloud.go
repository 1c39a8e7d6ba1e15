package cluster

import (
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// CloudNode is a cloud node of the control plane: a network namespace on
// the bridge (as an edge node's, but no edgecore), its Node object with
// spec.podCIDR (what a kube-controller-manager would allocate, and what
// Flannel's --kube-subnet-mgr reads), and the kube-apiserver reachable
// inside the namespace at the same 127.0.0.1 port as on the host, so the
// admin kubeconfig (cp.Kubeconfig) works there unchanged.
type CloudNode struct {
	Name      string
	NetNS     string // `ip netns` name
	NetNSPath string // /var/run/netns/<NetNS>
	IP        net.IP // eth0 address in the namespace, on the bridge
	PodCIDR   netip.Prefix
}

// AddCloudNode makes cloud node name with pod CIDR podCIDR. Everything is
// removed at t's cleanup.
func (cp *ControlPlane) AddCloudNode(t testing.TB, name string, podCIDR netip.Prefix) *CloudNode {
	t.Helper()
	cp.mu.Lock()
	host := cp.nextHost
	cp.nextHost++
	cp.mu.Unlock()
	if host > 254 {
		t.Fatal("no more addresses on the bridge /24")
	}
	c := &CloudNode{Name: name, NetNS: cp.net.nsName(name), IP: cp.net.addr(host), PodCIDR: podCIDR}
	c.NetNSPath = filepath.Join("/var/run/netns", c.NetNS)
	veth := cp.net.vethName(host)
	if err := cp.net.addEdge(c.NetNS, veth, c.IP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cp.net.delEdge(c.NetNS, veth) })

	cp.CreateCloudNode(t, name, podCIDR.String(), c.IP.String())

	// The kube-apiserver listens on the host's loopback only; a listener
	// on the namespace's loopback splices to it.
	addr := "127.0.0.1:" + strconv.Itoa(cp.apiPort)
	var ln net.Listener
	if err := ns.WithNetNSPath(c.NetNSPath, func(ns.NetNS) error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("%s: forward the kube-apiserver: %v", name, err)
	}
	var wg sync.WaitGroup
	conns := map[net.Conn]struct{}{}
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.DialTimeout("tcp", addr, 5*time.Second) // from the host's namespace
			if err != nil {
				in.Close()
				continue
			}
			mu.Lock()
			conns[in], conns[out] = struct{}{}, struct{}{}
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(out, in); out.Close() }()
			go func() { defer wg.Done(); _, _ = io.Copy(in, out); in.Close() }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return c
}
