package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/edgelink/edgelink/tests/cluster"
	"github.com/edgelink/edgelink/tests/testutil"
)

// flannelNode is a cloud node running the real flanneld (vxlan backend,
// --kube-subnet-mgr against the test kube-apiserver, --ip-masq) and pods
// wired by Flannel's CNI plugin.
type flannelNode struct {
	*cluster.CloudNode
	dir        string // net-conf.json, subnet.env, flanneld.log, the CNI plugins' state
	subnetFile string
	cmd        *exec.Cmd
	cni        *libcni.CNIConfig
	list       *libcni.NetworkConfigList
}

// startFlannel runs flanneld on c for network (net-conf.json "Network")
// and waits for its subnet file. Every path flanneld writes is in its own
// directory (--subnet-file, --net-config-path): nothing of the host's
// /run/flannel or /etc/kube-flannel is touched; its vxlan device, routes,
// neighbours and iptables chains are in c's namespace.
func startFlannel(t *testing.T, cp *cluster.ControlPlane, c *cluster.CloudNode, network netip.Prefix) *flannelNode {
	t.Helper()
	f := &flannelNode{CloudNode: c, dir: t.TempDir()}
	f.subnetFile = filepath.Join(f.dir, "subnet.env")
	netConf := filepath.Join(f.dir, "net-conf.json")
	conf := fmt.Sprintf(`{"Network":%q,"Backend":{"Type":"vxlan"}}`, network)
	if err := os.WriteFile(netConf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(f.dir, "flanneld.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	f.cmd = exec.Command("ip", "netns", "exec", c.NetNS, testutil.Tool(t, "flanneld"),
		"--kube-subnet-mgr", "--kubeconfig-file", cp.Kubeconfig, "--iface", "eth0", "--ip-masq",
		"--subnet-file", f.subnetFile, "--net-config-path", netConf)
	f.cmd.Env = append(os.Environ(), "NODE_NAME="+c.Name)
	f.cmd.Stdout, f.cmd.Stderr = logf, logf
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- tail of flanneld on %s ----\n%s", c.Name, f.logTail(30))
		}
		_ = f.cmd.Process.Signal(syscall.SIGTERM) // `ip netns exec` execs flanneld: this PID is flanneld's
		done := make(chan struct{})
		go func() { _ = f.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = f.cmd.Process.Kill()
			<-done
		}
	})
	waitFor(t, 60*time.Second, "flanneld on "+c.Name+" writes its subnet file", func() error {
		_, err := os.Stat(f.subnetFile)
		return err
	})

	f.subnetEnv(t)
	list, err := libcni.ConfListFromBytes(flannelConf(f.subnetFile, f.dir))
	if err != nil {
		t.Fatal(err)
	}
	f.list = list
	f.cni = libcni.NewCNIConfigWithCacheDir([]string{testutil.PluginDir(t, "flannel", "bridge", "host-local")}, t.TempDir(), nil)
	return f
}

func (f *flannelNode) logTail(n int) string {
	b, _ := os.ReadFile(filepath.Join(f.dir, "flanneld.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// subnetEnv reads flanneld's subnet file (KEY=VALUE lines:
// FLANNEL_NETWORK, FLANNEL_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ).
func (f *flannelNode) subnetEnv(t *testing.T) map[string]string {
	t.Helper()
	fh, err := os.Open(f.subnetFile)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(fh)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	for _, k := range []string{"FLANNEL_NETWORK", "FLANNEL_SUBNET", "FLANNEL_MTU", "FLANNEL_IPMASQ"} {
		if env[k] == "" {
			t.Fatalf("%s lacks %s: %v", f.subnetFile, k, env)
		}
	}
	return env
}

// flannelConf is kube-flannel's default cni-conf.json for Flannel's CNI
// plugin (tests/tools/flannel-cni), {"type":"flannel","delegate":
// {"hairpinMode":true,"isDefaultGateway":true}}, with the plugin's
// subnetFile, its scratch dataDir and host-local's dataDir pointed into
// dir instead of the host's /run/flannel and /var/lib/cni. The plugin
// reads subnet.env at each ADD and hands bridge (cni0 as the pods'
// gateway, flanneld's MTU, ipMasq only if flanneld does not masquerade
// itself) and host-local (FLANNEL_SUBNET, a route to FLANNEL_NETWORK) the
// delegate configuration. It speaks CNI up to 0.4.0; kube-flannel's
// file says 0.3.1.
func flannelConf(subnetFile, dir string) []byte {
	return []byte(fmt.Sprintf(`{"cniVersion":"0.3.1","name":"cbr0","plugins":[{"type":"flannel",`+
		`"subnetFile":%q,"dataDir":%q,"ipam":{"dataDir":%q},"delegate":{"hairpinMode":true,"isDefaultGateway":true}}]}`,
		subnetFile, filepath.Join(dir, "flannel"), filepath.Join(dir, "host-local")))
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
