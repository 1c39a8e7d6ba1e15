package cluster

import (
	"bufio"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgelink/edgelink/tests/testutil"
)

// Flannel is the real flanneld on one cloud node: the vxlan backend and
// the kube subnet manager (the node's lease is its Node's spec.podCIDR),
// with --ip-masq, as kube-flannel's DaemonSet runs it. Pods on the node
// are wired by Flannel's CNI plugin from Conflist.
//
// Every path flanneld and the plugins write is in Dir (--subnet-file,
// --net-config-path, the plugins' dataDirs): nothing of the host's
// /run/flannel, /etc/kube-flannel or /var/lib/cni is touched. Its vxlan
// device (flannel.1), routes, neighbours and iptables chains are in the
// node's namespace and go with it.
type Flannel struct {
	Node       string
	Dir        string // net-conf.json, subnet.env, flanneld.log, the CNI plugins' state
	SubnetFile string
	cmd        *exec.Cmd
}

// FlannelOptions say where flanneld runs.
type FlannelOptions struct {
	Node       string       // the Node object's name (flanneld's NODE_NAME); it must exist with spec.podCIDR
	NetNS      string       // `ip netns` name of the node's namespace
	Kubeconfig string       // reachable from NetNS
	Network    netip.Prefix // net-conf.json "Network"; every podCIDR is inside it
	Iface      string       // --iface; default eth0
}

// StartFlannel runs flanneld and waits until it has written its subnet
// file (it has its lease and its vxlan device). t's cleanup stops it.
func StartFlannel(t testing.TB, o FlannelOptions) *Flannel {
	t.Helper()
	if o.Iface == "" {
		o.Iface = "eth0"
	}
	f := &Flannel{Node: o.Node, Dir: t.TempDir()}
	f.SubnetFile = filepath.Join(f.Dir, "subnet.env")
	netConf := filepath.Join(f.Dir, "net-conf.json")
	conf := fmt.Sprintf(`{"Network":%q,"Backend":{"Type":"vxlan"}}`, o.Network)
	if err := os.WriteFile(netConf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(f.Dir, "flanneld.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	f.cmd = exec.Command("ip", "netns", "exec", o.NetNS, testutil.Tool(t, "flanneld"),
		"--kube-subnet-mgr", "--kubeconfig-file", o.Kubeconfig, "--iface", o.Iface, "--ip-masq",
		"--subnet-file", f.SubnetFile, "--net-config-path", netConf)
	f.cmd.Env = append(os.Environ(), "NODE_NAME="+o.Node)
	f.cmd.Stdout, f.cmd.Stderr = logf, logf
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- tail of flanneld on %s ----\n%s", o.Node, f.LogTail(30))
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
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(f.SubnetFile); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("flanneld on %s wrote no subnet file in 60s:\n%s", o.Node, f.LogTail(30))
		}
		time.Sleep(100 * time.Millisecond)
	}
	f.SubnetEnv(t)
	return f
}

// LogTail is the last n lines of flanneld's log.
func (f *Flannel) LogTail(n int) string {
	b, _ := os.ReadFile(filepath.Join(f.Dir, "flanneld.log"))
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// SubnetEnv reads flanneld's subnet file (KEY=VALUE lines:
// FLANNEL_NETWORK, FLANNEL_SUBNET, FLANNEL_MTU, FLANNEL_IPMASQ); it fails
// the test if a key is missing.
func (f *Flannel) SubnetEnv(t testing.TB) map[string]string {
	t.Helper()
	fh, err := os.Open(f.SubnetFile)
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
			t.Fatalf("%s lacks %s: %v", f.SubnetFile, k, env)
		}
	}
	return env
}

// FlannelPlugins are the CNI plugins Conflist runs, for
// testutil.PluginDir.
var FlannelPlugins = []string{"flannel", "bridge", "host-local"}

// Conflist is kube-flannel's default cni-conf.json for Flannel's CNI
// plugin (tests/tools/flannel-cni), {"type":"flannel","delegate":
// {"hairpinMode":true,"isDefaultGateway":true}}, with the plugin's
// subnetFile, its scratch dataDir and host-local's dataDir in f.Dir. At
// each ADD the plugin reads subnet.env and hands bridge (cni0 as the pods'
// gateway, flanneld's MTU, ipMasq only if flanneld does not masquerade
// itself) and host-local (FLANNEL_SUBNET, a route to FLANNEL_NETWORK)
// their configuration. The plugin speaks CNI up to 0.4.0; kube-flannel's
// file says 0.3.1.
func (f *Flannel) Conflist() []byte {
	return []byte(fmt.Sprintf(`{"cniVersion":"0.3.1","name":"cbr0","plugins":[{"type":"flannel",`+
		`"subnetFile":%q,"dataDir":%q,"ipam":{"dataDir":%q},"delegate":{"hairpinMode":true,"isDefaultGateway":true}}]}`,
		f.SubnetFile, filepath.Join(f.Dir, "flannel"), filepath.Join(f.Dir, "host-local")))
}
