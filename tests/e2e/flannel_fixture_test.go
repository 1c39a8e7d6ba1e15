package e2e

import (
	"context"
	"net/netip"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/edgelink/edgelink/tests/cluster"
	"github.com/edgelink/edgelink/tests/testutil"
)

// flannelNode is a cloud node running the real flanneld, its pods wired
// by Flannel's CNI plugin.
type flannelNode struct {
	*cluster.CloudNode
	*cluster.Flannel
	cni  *libcni.CNIConfig
	list *libcni.NetworkConfigList
}

// startFlannel runs flanneld on c for network with the admin kubeconfig
// (the kube-apiserver is forwarded to c's loopback).
func startFlannel(t *testing.T, cp *cluster.ControlPlane, c *cluster.CloudNode, network netip.Prefix) *flannelNode {
	t.Helper()
	f := &flannelNode{CloudNode: c, Flannel: cluster.StartFlannel(t, cluster.FlannelOptions{
		Node: c.Name, NetNS: c.NetNS, Kubeconfig: cp.Kubeconfig, Network: network})}
	list, err := libcni.ConfListFromBytes(f.Conflist())
	if err != nil {
		t.Fatal(err)
	}
	f.list = list
	f.cni = libcni.NewCNIConfigWithCacheDir([]string{testutil.PluginDir(t, cluster.FlannelPlugins...)}, t.TempDir(), nil)
	return f
}

// addPod makes a pod namespace on f, runs the CNI ADD inside the node's
// namespace (as the kubelet's runtime would) and registers the pod with
// its IP in the API. It returns the namespace name and the pod's address.
func (f *flannelNode) addPod(t *testing.T, cp *cluster.ControlPlane, name string) (string, netip.Addr) {
	t.Helper()
	podNS := f.NetNS + "-" + name
	return podNS, cniPod(t, cp, f.cni, f.list, f.Name, f.NetNSPath, podNS, "dataplane", name)
}

// cniPod makes pod namespace podNS for pod ns/name on node (whose network
// namespace is at nodeNetNS), runs the CNI ADD of list inside the node's
// namespace (as the kubelet's runtime would; the DEL in cleanup) and
// registers the pod with its IPv4 address in the API, which it returns.
func cniPod(t *testing.T, cp *cluster.ControlPlane, cni *libcni.CNIConfig, list *libcni.NetworkConfigList,
	node, nodeNetNS, podNS, podNamespace, name string) netip.Addr {
	t.Helper()
	if out, err := exec.Command("ip", "netns", "add", podNS).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", podNS).Run() })
	ipIn(t, podNS, "link", "set", "lo", "up")
	rt := &libcni.RuntimeConf{ContainerID: "c-" + name, NetNS: filepath.Join("/var/run/netns", podNS), IfName: "eth0",
		Args: [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", podNamespace}, {"K8S_POD_NAME", name}}}
	var res *current.Result
	err := ns.WithNetNSPath(nodeNetNS, func(ns.NetNS) error {
		r, err := cni.AddNetworkList(context.Background(), list, rt)
		if err != nil {
			return err
		}
		res, err = current.NewResultFromResult(r)
		return err
	})
	if err != nil {
		t.Fatalf("CNI ADD %s on %s: %v", name, node, err)
	}
	t.Cleanup(func() {
		_ = ns.WithNetNSPath(nodeNetNS, func(ns.NetNS) error {
			return cni.DelNetworkList(context.Background(), list, rt)
		})
	})
	var ip netip.Addr
	for _, c := range res.IPs {
		if a, ok := netip.AddrFromSlice(c.Address.IP.To4()); ok {
			ip = a
		}
	}
	if !ip.IsValid() {
		t.Fatalf("CNI ADD %s: no IPv4 address in %+v", name, res)
	}
	cp.CreatePod(t, podNamespace, name, node, nil, nil)
	cp.SetPodIP(t, podNamespace, name, ip.String())
	return ip
}
