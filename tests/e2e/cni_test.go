package e2e

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"

	"github.com/edgelink/edgelink/cni/install"
	"github.com/edgelink/edgelink/tests/testutil"
)

// Three pods on one node get addresses, pass CHECK, reach each other
// through the bridge, and leave nothing behind after DEL.
func TestCNIPodsOnOneNodePing(t *testing.T) {
	n := newCNINode(t, install.Options{Subnets: []string{"10.244.5.0/24"}, MTU: 1400})
	pods := map[string]ns.NetNS{}
	ips := map[string]string{}
	for _, id := range []string{"pod-a", "pod-b", "pod-c"} {
		pods[id] = testutil.NewNS(t)
		res := n.mustAdd(id, pods[id])
		ips[id] = podIP(t, res)
		if res.CNIVersion != "1.1.0" {
			t.Errorf("result version %q, want 1.1.0 (libcni picks the newest of cniVersions)", res.CNIVersion)
		}
		if len(res.Interfaces) != 3 || res.Interfaces[2].Name != "eth0" || res.Interfaces[2].Sandbox != pods[id].Path() {
			t.Errorf("interfaces = %+v, want bridge, host veth, eth0 in the pod netns", res.Interfaces)
		}
	}
	for id, pod := range pods {
		if err := n.check(id, pod); err != nil {
			t.Errorf("CHECK %s: %v", id, err)
		}
	}

	// What a user would look at: the bridge has the gateway, the pod has
	// its address, MTU and a default route via the gateway.
	err := n.inNode(func() error {
		br, err := netlink.LinkByName("edgelink-br0")
		if err != nil {
			return err
		}
		addrs, _ := netlink.AddrList(br, netlink.FAMILY_V4)
		if len(addrs) != 1 || addrs[0].IPNet.String() != "10.244.5.1/24" {
			t.Errorf("bridge addresses = %v, want 10.244.5.1/24", addrs)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := testutil.Exec(pods["pod-a"], "ip", "-4", "route", "show", "default")
	if err != nil || !strings.Contains(out, "default via 10.244.5.1 dev eth0") {
		t.Errorf("pod default route = %q (%v), want via 10.244.5.1", out, err)
	}
	out, _ = testutil.Exec(pods["pod-a"], "ip", "link", "show", "eth0")
	if !strings.Contains(out, "mtu 1400") {
		t.Errorf("pod eth0 = %q, want mtu 1400", out)
	}

	ping(t, pods["pod-a"], ips["pod-b"])
	ping(t, pods["pod-b"], ips["pod-c"])
	ping(t, pods["pod-c"], ips["pod-a"])
	ping(t, pods["pod-a"], "10.244.5.1") // the gateway on the bridge

	for id, pod := range pods {
		if err := n.del(id, pod); err != nil {
			t.Errorf("DEL %s: %v", id, err)
		}
	}
	n.assertClean()
	for id, pod := range pods {
		if l := testutil.Links(t, pod); len(l) != 1 || l[0] != "lo" {
			t.Errorf("pod %s still has links %v after DEL", id, l)
		}
	}
}

// IPv4 and IPv6 together: both addresses, and pods reach each other over both.
func TestCNIDualStack(t *testing.T) {
	n := newCNINode(t, install.Options{Subnets: []string{"10.244.6.0/24", "fd00:244:6::/64"}, HairpinMode: true})
	a, b := testutil.NewNS(t), testutil.NewNS(t)
	ra, rb := n.mustAdd("ds-a", a), n.mustAdd("ds-b", b)
	err := n.inNode(func() error {
		l, err := netlink.LinkByName(ra.Interfaces[1].Name)
		if err != nil {
			return err
		}
		pi, err := netlink.LinkGetProtinfo(l)
		if err != nil {
			return err
		}
		if !pi.Hairpin {
			t.Errorf("hairpinMode set but %s has hairpin off", l.Attrs().Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(ra.IPs) != 2 || len(rb.IPs) != 2 {
		t.Fatalf("want an IPv4 and an IPv6 address each, got %v and %v", ra.IPs, rb.IPs)
	}
	ping(t, a, rb.IPs[0].Address.IP.String())
	ping(t, a, rb.IPs[1].Address.IP.String())
	ping(t, b, ra.IPs[1].Address.IP.String())
	if err := n.check("ds-a", a); err != nil {
		t.Errorf("CHECK: %v", err)
	}
	for id, pod := range map[string]ns.NetNS{"ds-a": a, "ds-b": b} {
		if err := n.del(id, pod); err != nil {
			t.Fatalf("DEL %s: %v", id, err)
		}
	}
	n.assertClean()
}

// DEL after the runtime already deleted the pod's netns succeeds and still
// releases the host veth and the lease; a second DEL succeeds too.
func TestCNIDelAfterNetnsGoneAndTwice(t *testing.T) {
	n := newCNINode(t, install.Options{Subnets: []string{"10.244.7.0/24"}})
	pod, err := testutils.NewNS()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = testutils.UnmountNS(pod) }) // no-op once the test removed it
	n.mustAdd("gone", pod)
	if len(n.links("el")) != 1 || len(n.leases()) != 1 {
		t.Fatalf("after ADD: veths %v leases %v", n.links("el"), n.leases())
	}
	_ = pod.Close()
	if err := testutils.UnmountNS(pod); err != nil {
		t.Fatal(err)
	}
	if err := n.del("gone", pod); err != nil {
		t.Fatalf("DEL after netns removal: %v", err)
	}
	if err := n.del("gone", pod); err != nil {
		t.Fatalf("second DEL: %v", err)
	}
	n.assertClean()
}

// An ADD whose IPAM fails (pool exhausted) leaves no veth, no lease and no
// record; an ADD that fails after IPAM allocated (a route the pod cannot
// install) gives the lease back.
func TestCNIAddFailureLeavesNothing(t *testing.T) {
	t.Run("ipam exhausted", func(t *testing.T) {
		// A /30 has two usable addresses: the gateway and one pod.
		n := newCNINode(t, install.Options{Subnets: []string{"10.244.8.0/30"}})
		first, second := testutil.NewNS(t), testutil.NewNS(t)
		n.mustAdd("first", first)
		_, err := n.add("second", second)
		if err == nil {
			t.Fatal("ADD into an exhausted pool succeeded")
		}
		if !strings.Contains(err.Error(), "IPAM ADD (host-local)") {
			t.Errorf("error %q does not say IPAM failed", err)
		}
		if got := n.links("el"); len(got) != 1 {
			t.Errorf("node veths = %v, want only the first pod's", got)
		}
		if got := testutil.Links(t, second); len(got) != 1 {
			t.Errorf("failed pod still has links %v", got)
		}
		if got := n.leases(); len(got) != 1 {
			t.Errorf("leases = %v, want only the first pod's", got)
		}
		if got := n.records(); len(got) != 1 {
			t.Errorf("records = %v, want only the first pod's", got)
		}
		if err := n.del("first", first); err != nil {
			t.Fatal(err)
		}
		n.assertClean()
	})
	t.Run("failure after IPAM", func(t *testing.T) {
		n := newCNINode(t, install.Options{Subnets: []string{"10.244.9.0/24"}})
		// host-local hands out a route whose gateway is off-link: the pod
		// cannot install it, so ADD fails after the lease was taken.
		raw := patchIPAM(t, n.list, map[string]any{"routes": []map[string]string{{"dst": "192.168.0.0/16", "gw": "10.99.99.1"}}})
		n.list = raw
		pod := testutil.NewNS(t)
		if _, err := n.add("late", pod); err == nil {
			t.Fatal("ADD with an uninstallable route succeeded")
		}
		n.assertClean()
		if got := testutil.Links(t, pod); len(got) != 1 {
			t.Errorf("failed pod still has links %v", got)
		}
	})
}

// patchIPAM returns list with extra keys merged into its plugin's ipam.
func patchIPAM(t *testing.T, list *libcni.NetworkConfigList, extra map[string]any) *libcni.NetworkConfigList {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(list.Bytes, &m); err != nil {
		t.Fatal(err)
	}
	ipam := m["plugins"].([]any)[0].(map[string]any)["ipam"].(map[string]any)
	for k, v := range extra {
		ipam[k] = v
	}
	b, _ := json.Marshal(m)
	out, err := libcni.ConfListFromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// GC releases every attachment the runtime no longer lists and keeps the
// rest working.
func TestCNIGC(t *testing.T) {
	n := newCNINode(t, install.Options{Subnets: []string{"10.244.10.0/24"}})
	keep, drop1, drop2 := testutil.NewNS(t), testutil.NewNS(t), testutil.NewNS(t)
	rk := n.mustAdd("keep", keep)
	n.mustAdd("drop1", drop1)
	r2 := n.mustAdd("drop2", drop2)
	err := n.inNode(func() error {
		return n.cni.GCNetworkList(context.Background(), n.list, &libcni.GCArgs{
			ValidAttachments: []types.GCAttachment{{ContainerID: "keep", IfName: "eth0"}},
		})
	})
	if err != nil {
		t.Fatalf("GC: %v", err)
	}
	if got := n.links("el"); len(got) != 1 {
		t.Errorf("veths after GC = %v, want only keep's", got)
	}
	if got := n.leases(); len(got) != 1 || got[0] != podIP(t, rk) {
		t.Errorf("leases after GC = %v, want only %s", got, podIP(t, rk))
	}
	if got := testutil.Links(t, drop2); len(got) != 1 {
		t.Errorf("collected pod still has links %v", got)
	}
	// The kept pod still works; the collected address is free again.
	if err := n.check("keep", keep); err != nil {
		t.Errorf("CHECK keep after GC: %v", err)
	}
	again := testutil.NewNS(t)
	ra := n.mustAdd("again", again)
	ping(t, again, podIP(t, rk))
	_ = r2
	for id, pod := range map[string]ns.NetNS{"keep": keep, "again": again} {
		if err := n.del(id, pod); err != nil {
			t.Fatal(err)
		}
	}
	_ = ra
	n.assertClean()
}

// STATUS passes with a working IPAM and reports code 50 when the spiderpool
// agent's socket does not answer.
func TestCNIStatus(t *testing.T) {
	n := newCNINode(t, install.Options{Subnets: []string{"10.244.11.0/24"}})
	if err := n.inNode(func() error { return n.cni.GetStatusNetworkList(context.Background(), n.list) }); err != nil {
		t.Errorf("STATUS with host-local: %v", err)
	}
	sock := filepath.Join(t.TempDir(), "absent.sock")
	sp := newCNINode(t, install.Options{IPAMType: "spiderpool", IPAMSocket: sock})
	err := sp.inNode(func() error { return sp.cni.GetStatusNetworkList(context.Background(), sp.list) })
	if err == nil {
		t.Fatal("STATUS passed with no IPAM socket")
	}
	if code := cniErrCode(t, err); code != types.ErrPluginNotAvailable {
		t.Errorf("STATUS code = %d, want %d: %v", code, types.ErrPluginNotAvailable, err)
	}
	if !strings.Contains(err.Error(), sock) {
		t.Errorf("STATUS error %q does not name the socket", err)
	}
}

// Malformed stdin gets a CNI error (JSON on stdout, non-zero exit) that
// names what is wrong.
func TestCNIMalformedStdin(t *testing.T) {
	testutil.RequireRoot(t)
	plugin := filepath.Join(testutil.Binaries(t), "edgelink-cni")
	pod := testutil.NewNS(t)
	tests := []struct {
		name, stdin string
		code        uint
		want        string
	}{
		// skel decodes the version before the plugin runs; its message is kept.
		{"not json", `{"cniVersion":"1.0.0", "name": `, types.ErrDecodingFailure, "network config: unexpected end of JSON input"},
		{"empty", ``, types.ErrDecodingFailure, "network config: unexpected end of JSON input"},
		{"garbage", `\x00\xff not json`, types.ErrDecodingFailure, "network config: invalid character"},
		{"wrong type", `{"cniVersion":"1.0.0","name":"n","type":"edgelink-cni","mtu":"big","ipam":{"type":"host-local"}}`, types.ErrDecodingFailure, "mtu"},
		{"no ipam", `{"cniVersion":"1.0.0","name":"n","type":"edgelink-cni"}`, types.ErrInvalidNetworkConfig, "ipam.type: is required"},
		{"bad bridge", `{"cniVersion":"1.0.0","name":"n","type":"edgelink-cni","bridge":"a/b","ipam":{"type":"host-local"}}`, types.ErrInvalidNetworkConfig, `bridge: "a/b" is not a valid interface name`},
		{"bad mtu", `{"cniVersion":"1.0.0","name":"n","type":"edgelink-cni","mtu":9,"ipam":{"type":"host-local"}}`, types.ErrInvalidNetworkConfig, "mtu: 9"},
		{"unsupported version", `{"cniVersion":"9.9.9","name":"n","type":"edgelink-cni","ipam":{"type":"host-local"}}`, types.ErrIncompatibleCNIVersion, "9.9.9"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(plugin)
			cmd.Env = append(os.Environ(), "CNI_COMMAND=ADD", "CNI_CONTAINERID=bad", "CNI_NETNS="+pod.Path(),
				"CNI_IFNAME=eth0", "CNI_PATH="+t.TempDir())
			cmd.Stdin = strings.NewReader(tt.stdin)
			out, err := cmd.Output()
			if err == nil {
				t.Fatalf("plugin accepted %q", tt.stdin)
			}
			var e types.Error
			if jerr := json.Unmarshal(out, &e); jerr != nil {
				t.Fatalf("stdout is not a CNI error: %q", out)
			}
			if e.Code != tt.code {
				t.Errorf("code = %d, want %d (%s: %s)", e.Code, tt.code, e.Msg, e.Details)
			}
			if !strings.Contains(e.Msg+" "+e.Details, tt.want) {
				t.Errorf("error %q / %q does not contain %q", e.Msg, e.Details, tt.want)
			}
		})
	}
}

// `edgelink cni install` writes a conflist and plugin that libcni loads from
// the conf dir and runs; a runtime that only knows cniVersion (containerd
// 1.6's libcni) gets a 1.0.0 result from the same file.
func TestCNIInstalledConflistAcceptedByLibcni(t *testing.T) {
	testutil.RequireRoot(t)
	bin := testutil.Binaries(t)
	binDir, confDir, dataDir := t.TempDir(), t.TempDir(), t.TempDir()
	out, err := exec.Command(filepath.Join(bin, "edgelink"), "cni", "install",
		"--bin-dir", binDir, "--conf-dir", confDir, "--data-dir", dataDir,
		"--ipam", "host-local", "--subnet", "10.244.12.0/24").CombinedOutput()
	if err != nil {
		t.Fatalf("edgelink cni install: %v\n%s", err, out)
	}
	if fi, err := os.Stat(filepath.Join(binDir, "edgelink-cni")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("plugin not installed executable: %v %v", fi, err)
	}
	if err := os.Symlink(testutil.Tool(t, "host-local"), filepath.Join(binDir, "host-local")); err != nil {
		t.Fatal(err)
	}
	files, err := libcni.ConfFiles(confDir, []string{".conflist"})
	if err != nil || len(files) != 1 {
		t.Fatalf("conf dir holds %v (%v), want one conflist", files, err)
	}
	list, err := libcni.ConfListFromFile(files[0])
	if err != nil {
		t.Fatalf("libcni rejects the installed conflist: %v", err)
	}
	if list.Name != "edgelink" || len(list.Plugins) != 1 || list.Plugins[0].Network.Type != "edgelink-cni" {
		t.Fatalf("conflist = %s", list.Bytes)
	}

	node := testutil.NewNS(t)
	cni := libcni.NewCNIConfigWithCacheDir([]string{binDir}, t.TempDir(), nil)
	run := func(list *libcni.NetworkConfigList, id string) string {
		pod := testutil.NewNS(t)
		var res types.Result
		err := node.Do(func(ns.NetNS) (err error) {
			res, err = cni.AddNetworkList(context.Background(), list, rtConf(id, pod))
			if err != nil {
				return err
			}
			return cni.DelNetworkList(context.Background(), list, rtConf(id, pod))
		})
		if err != nil {
			t.Fatalf("ADD/DEL with the installed conflist: %v", err)
		}
		return res.Version()
	}
	if v := run(list, "new-runtime"); v != "1.1.0" {
		t.Errorf("current libcni got a %s result, want 1.1.0", v)
	}
	// A runtime that ignores "cniVersions" uses "cniVersion".
	var m map[string]any
	_ = json.Unmarshal(list.Bytes, &m)
	delete(m, "cniVersions")
	b, _ := json.Marshal(m)
	old, err := libcni.ConfListFromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	if v := run(old, "old-runtime"); v != "1.0.0" {
		t.Errorf("a cniVersion-only runtime got a %s result, want 1.0.0", v)
	}

	// --dry-run prints the same conflist and writes nothing.
	dry := t.TempDir()
	out, err = exec.Command(filepath.Join(bin, "edgelink"), "cni", "install", "--dry-run",
		"--conf-dir", dry, "--data-dir", dataDir, "--ipam", "host-local", "--subnet", "10.244.12.0/24").Output()
	if err != nil {
		t.Fatal(err)
	}
	installed, _ := os.ReadFile(files[0])
	if string(out) != string(installed) {
		t.Errorf("--dry-run printed\n%s\nbut install wrote\n%s", out, installed)
	}
	if e, _ := os.ReadDir(dry); len(e) != 0 {
		t.Errorf("--dry-run wrote %v", e)
	}
}

// cnitool, the reference CNI runtime, drives ADD, CHECK, STATUS, GC and DEL.
func TestCNIWithCnitool(t *testing.T) {
	testutil.RequireRoot(t)
	cnitool := testutil.Tool(t, "cnitool")
	n := newCNINode(t, install.Options{Subnets: []string{"10.244.13.0/24"}})
	confDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(confDir, "10-edgelink.conflist"), n.list.Bytes, 0o644); err != nil {
		t.Fatal(err)
	}
	tool := func(args ...string) (string, error) {
		full := append([]string{"env", "CNI_PATH=" + n.pluginDir, "NETCONFPATH=" + confDir, cnitool}, args...)
		return testutil.Exec(n.ns, full[0], full[1:]...)
	}
	a, b := testutil.NewNS(t), testutil.NewNS(t)
	t.Cleanup(func() { // cnitool caches results under /var/lib/cni; DEL clears them
		_, _ = tool("del", "edgelink", a.Path())
		_, _ = tool("del", "edgelink", b.Path())
	})
	out, err := tool("add", "edgelink", a.Path())
	if err != nil {
		t.Fatal(err)
	}
	var ra current.Result
	if err := json.Unmarshal([]byte(out), &ra); err != nil || len(ra.IPs) == 0 {
		t.Fatalf("cnitool add printed %q (%v)", out, err)
	}
	if _, err := tool("add", "edgelink", b.Path()); err != nil {
		t.Fatal(err)
	}
	ping(t, b, ra.IPs[0].Address.IP.String())
	if _, err := tool("check", "edgelink", a.Path()); err != nil {
		t.Errorf("cnitool check: %v", err)
	}
	if _, err := tool("status", "edgelink", a.Path()); err != nil {
		t.Errorf("cnitool status: %v", err)
	}
	if _, err := tool("del", "edgelink", b.Path()); err != nil {
		t.Fatalf("cnitool del: %v", err)
	}
	// cnitool's gc passes no valid attachments: everything left is collected.
	if _, err := tool("gc", "edgelink", a.Path()); err != nil {
		t.Fatalf("cnitool gc: %v", err)
	}
	n.assertClean()
}

// The bridge keeps its MAC address as pods come and go: a port with a
// lower MAC would otherwise become the bridge's address, and every pod's
// ARP entry for its gateway would go stale (traffic stalls for seconds).
func TestCNIBridgeMACStaysPut(t *testing.T) {
	n := newCNINode(t, install.Options{Subnets: []string{"10.244.6.0/24"}})
	n.mustAdd("first", testutil.NewNS(t))
	mac := func() string {
		var s string
		if err := n.inNode(func() error {
			br, err := netlink.LinkByName("edgelink-br0")
			if err == nil {
				s = br.Attrs().HardwareAddr.String()
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return s
	}
	before := mac()
	// A port with the lowest possible unicast MAC joins the bridge, as a
	// new pod's veth might.
	if err := n.inNode(func() error {
		la := netlink.NewLinkAttrs()
		la.Name, la.HardwareAddr = "ellow0", net.HardwareAddr{0x02, 0, 0, 0, 0, 1}
		if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "ellow1"}); err != nil {
			return err
		}
		br, err := netlink.LinkByName("edgelink-br0")
		if err != nil {
			return err
		}
		l, err := netlink.LinkByName("ellow0")
		if err != nil {
			return err
		}
		if err := netlink.LinkSetMaster(l, br); err != nil {
			return err
		}
		return netlink.LinkSetUp(l)
	}); err != nil {
		t.Fatal(err)
	}
	n.mustAdd("second", testutil.NewNS(t))
	if after := mac(); after != before {
		t.Errorf("the bridge's MAC changed from %s to %s when ports joined", before, after)
	}
}

// SpiderPool's usual layout gives a pod the cluster subnet's prefix
// (10.244.0.2/16): every pod of the cluster looks on-link to it, and it
// ARPs for them. The node answers for what it routes elsewhere (proxy
// ARP on the bridge), so the pod reaches a pod behind another device (a
// veth to a "remote node" standing in for the TUN); CHECK fails once
// proxy ARP is turned off, and the same ping then fails.
func TestCNIWideSubnetPodReachesOtherNodes(t *testing.T) {
	n := newCNINode(t, install.Options{Subnets: []string{"10.244.0.0/16"}})
	pod := testutil.NewNS(t)
	res := n.mustAdd("wide", pod)
	if got := res.IPs[0].Address.String(); !strings.HasSuffix(got, "/16") {
		t.Fatalf("pod got %s, want an address with the cluster subnet's /16", got)
	}
	// A remote node: its pod 10.244.6.9 lives behind a veth from the node,
	// routed there as the agent routes a remote segment into the TUN.
	remote := testutil.NewNS(t)
	for _, c := range [][]string{
		{"link", "add", "rmt0", "type", "veth", "peer", "name", "rmt1"},
		{"link", "set", "rmt1", "netns", remote.Path()},
		{"addr", "add", "198.18.9.1/30", "dev", "rmt0"},
		{"link", "set", "rmt0", "up"},
		{"route", "add", "10.244.6.0/24", "via", "198.18.9.2", "dev", "rmt0"},
	} {
		if out, err := testutil.Exec(n.ns, "ip", c...); err != nil {
			t.Fatalf("ip %v: %v %s", c, err, out)
		}
	}
	for _, c := range [][]string{
		{"addr", "add", "198.18.9.2/30", "dev", "rmt1"},
		{"addr", "add", "10.244.6.9/32", "dev", "lo"},
		{"link", "set", "rmt1", "up"},
		{"link", "set", "lo", "up"},
		{"route", "add", "10.244.0.0/16", "via", "198.18.9.1", "dev", "rmt1"},
	} {
		if out, err := testutil.Exec(remote, "ip", c...); err != nil {
			t.Fatalf("remote ip %v: %v %s", c, err, out)
		}
	}
	ping(t, pod, "10.244.6.9")
	if err := n.check("wide", pod); err != nil {
		t.Errorf("CHECK: %v", err)
	}

	// Proxy ARP off: CHECK says so, and the pod's next ARP goes unanswered.
	if out, err := testutil.Exec(n.ns, "sysctl", "-w", "net.ipv4.conf.edgelink-br0.proxy_arp=0"); err != nil {
		t.Fatalf("sysctl: %v %s", err, out)
	}
	if err := n.check("wide", pod); err == nil || !strings.Contains(err.Error(), "proxy ARP is off") {
		t.Errorf("CHECK with proxy ARP off: %v, want it named", err)
	}
	_, _ = testutil.Exec(pod, "ip", "neigh", "flush", "all")
	if out, err := testutil.Exec(pod, "ping", "-c", "1", "-W", "1", "10.244.6.9"); err == nil {
		t.Errorf("ping went through with proxy ARP off; the test proves nothing:\n%s", out)
	}
	if err := n.del("wide", pod); err != nil {
		t.Fatal(err)
	}
}
