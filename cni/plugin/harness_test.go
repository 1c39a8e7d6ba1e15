package plugin

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/types/create"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/vishvananda/netlink"

	"github.com/edgelink/edgelink/cni/netconf"
	"github.com/edgelink/edgelink/tests/testutil"
)

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ipamEnv is a CNI_PATH holding the fake IPAM (this test binary, see
// fakeipam_test.go) and the directory where it logs calls and keeps leases.
type ipamEnv struct {
	t       *testing.T
	cniPath string
	ipamDir string
	dataDir string
}

func newIPAMEnv(t *testing.T) *ipamEnv {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	e := &ipamEnv{t: t, cniPath: t.TempDir(), ipamDir: t.TempDir(), dataDir: t.TempDir()}
	for _, name := range []string{fakeIPAMType, netconf.SpiderpoolType} {
		if err := os.Symlink(exe, filepath.Join(e.cniPath, name)); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// netconf is a valid edgelink-cni configuration using the fake IPAM: a
// dual-stack lease whose IPv6 half has no gateway (the plugin must pick
// the subnet's first address).
func (e *ipamEnv) netconf(bridge string) map[string]any {
	return map[string]any{
		"cniVersion": "1.0.0",
		"name":       "eltest",
		"type":       "edgelink-cni",
		"bridge":     bridge,
		"mtu":        1400,
		"dataDir":    e.dataDir,
		"dns":        map[string]any{"nameservers": []string{"10.96.0.10"}},
		"ipam": map[string]any{
			"type": fakeIPAMType,
			"dir":  e.ipamDir,
			"ips": []map[string]any{
				{"address": "10.244.5.7/24", "gateway": "10.244.5.1"},
				{"address": "fd00:244::7/64"},
			},
		},
	}
}

func ipamOf(conf map[string]any) map[string]any { return conf["ipam"].(map[string]any) }

// calls is what the fake IPAM was asked, one line per call:
// "<binary> <VERB> <containerID> <ifName> args=<CNI_ARGS> version=<cniVersion>".
func (e *ipamEnv) calls() []string {
	data, err := os.ReadFile(filepath.Join(e.ipamDir, "calls"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		e.t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

// callsOf returns the fake IPAM calls of one verb.
func (e *ipamEnv) callsOf(verb string) []string {
	var out []string
	for _, c := range e.calls() {
		if f := strings.Fields(c); len(f) > 1 && f[1] == verb {
			out = append(out, c)
		}
	}
	return out
}

func (e *ipamEnv) hasLease(cid, ifName string) bool {
	_, err := os.Stat(filepath.Join(e.ipamDir, "lease-"+cid+"_"+ifName))
	return err == nil
}

func (e *ipamEnv) recordExists(cid, ifName string) bool {
	_, err := os.Stat(recordPath(stateDir(e.dataDir, "eltest"), cid, ifName))
	return err == nil
}

// attachmentArgs identifies one call's attachment.
type attachmentArgs struct {
	cid, ifName, netns, cniArgs string
}

// run calls one of the plugin's command functions the way skel would, with
// the CNI_* environment the IPAM delegate inherits set accordingly, inside
// node (the node's network namespace; nil: the test's own). It returns what
// the command printed on stdout.
func (e *ipamEnv) run(node ns.NetNS, verb string, f func(*skel.CmdArgs) error, conf map[string]any, a attachmentArgs) (string, error) {
	e.t.Helper()
	stdin, err := json.Marshal(conf)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.runRaw(node, verb, f, stdin, a)
}

func (e *ipamEnv) runRaw(node ns.NetNS, verb string, f func(*skel.CmdArgs) error, stdin []byte, a attachmentArgs) (string, error) {
	e.t.Helper()
	for k, v := range map[string]string{
		"CNI_COMMAND": verb, "CNI_CONTAINERID": a.cid, "CNI_NETNS": a.netns,
		"CNI_IFNAME": a.ifName, "CNI_ARGS": a.cniArgs, "CNI_PATH": e.cniPath,
	} {
		e.t.Setenv(k, v)
	}
	args := &skel.CmdArgs{ContainerID: a.cid, Netns: a.netns, IfName: a.ifName, Args: a.cniArgs, Path: e.cniPath, StdinData: stdin}
	call := func() error { return f(args) }
	if node != nil {
		call = func() error { return node.Do(func(ns.NetNS) error { return f(args) }) }
	}
	return captureStdout(e.t, call)
}

// captureStdout runs f with os.Stdout sent to a file and returns what f
// printed.
func captureStdout(t *testing.T, f func() error) (string, error) {
	t.Helper()
	tmp, err := os.CreateTemp(t.TempDir(), "stdout")
	if err != nil {
		t.Fatal(err)
	}
	defer tmp.Close()
	saved := os.Stdout
	os.Stdout = tmp
	ferr := f()
	os.Stdout = saved
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(tmp)
	if err != nil {
		t.Fatal(err)
	}
	return string(out), ferr
}

// cniError asserts err is a CNI error with code and returns it.
func cniError(t *testing.T, err error, code uint) *types.Error {
	t.Helper()
	var e *types.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want a CNI error with code %d", err, err, code)
	}
	if e.Code != code {
		t.Fatalf("error code %d, want %d: %v", e.Code, code, e)
	}
	return e
}

// wantErrText asserts err is non-nil and its text holds every part.
func wantErrText(t *testing.T, err error, parts ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want an error containing %q", parts)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("err = %q\nwant it to contain %q", err, p)
		}
	}
}

// node is a node (its own network namespace, so bridge, sysctls and links
// stay out of the machine's) with the fake IPAM.
type node struct {
	*ipamEnv
	ns     ns.NetNS
	bridge string
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces, veth pairs and a bridge")
	}
}

func newNode(t *testing.T) *node {
	t.Helper()
	requireRoot(t)
	return &node{ipamEnv: newIPAMEnv(t), ns: testutil.NewNS(t), bridge: "eltbr" + randHex(4)}
}

func (n *node) netconf() map[string]any { return n.ipamEnv.netconf(n.bridge) }

// pod is one container: its netns and attachment arguments.
type pod struct {
	ns ns.NetNS
	attachmentArgs
	hostVeth string
}

func (n *node) newPod() *pod {
	n.t.Helper()
	pns := testutil.NewNS(n.t)
	cid := "c" + randHex(8)
	return &pod{
		ns:             pns,
		attachmentArgs: attachmentArgs{cid: cid, ifName: "eth0", netns: pns.Path(), cniArgs: "K8S_POD_NAMESPACE=default;K8S_POD_NAME=p-" + cid},
		hostVeth:       hostVethName(cid, "eth0"),
	}
}

// add runs ADD for p and returns the printed result.
func (n *node) add(p *pod, conf map[string]any) (*current.Result, error) {
	n.t.Helper()
	out, err := n.run(n.ns, "ADD", cmdAdd, conf, p.attachmentArgs)
	if err != nil {
		return nil, err
	}
	r, err := create.CreateFromBytes([]byte(out))
	if err != nil {
		n.t.Fatalf("ADD printed %q: %v", out, err)
	}
	res, err := current.NewResultFromResult(r)
	if err != nil {
		n.t.Fatal(err)
	}
	return res, nil
}

// mustAdd runs ADD with the default netconf and fails the test on error.
func (n *node) mustAdd(p *pod) *current.Result {
	n.t.Helper()
	res, err := n.add(p, n.netconf())
	if err != nil {
		n.t.Fatalf("ADD %s: %v", p.cid, err)
	}
	return res
}

func (n *node) del(p *pod, conf map[string]any) error {
	n.t.Helper()
	_, err := n.run(n.ns, "DEL", cmdDel, conf, p.attachmentArgs)
	return err
}

// in runs f in netns, failing the test on error.
func in(t *testing.T, netns ns.NetNS, f func() error) {
	t.Helper()
	if err := netns.Do(func(ns.NetNS) error { return f() }); err != nil {
		t.Fatal(err)
	}
}

// link returns the named link in netns, or nil when there is none.
func link(t *testing.T, netns ns.NetNS, name string) netlink.Link {
	t.Helper()
	var l netlink.Link
	err := netns.Do(func(ns.NetNS) error {
		var err error
		l, err = netlink.LinkByName(name)
		if isNotFound(err) {
			l, err = nil, nil
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// linkNames lists the links of netns other than lo.
func linkNames(t *testing.T, netns ns.NetNS) []string {
	var out []string
	for _, l := range testutil.Links(t, netns) {
		if l != "lo" {
			out = append(out, l)
		}
	}
	return out
}

// addrs lists the global addresses of the named link in netns as CIDRs.
func addrs(t *testing.T, netns ns.NetNS, name string) []string {
	t.Helper()
	var out []string
	in(t, netns, func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		as, err := netlink.AddrList(l, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, a := range as {
			if a.IP.IsGlobalUnicast() {
				out = append(out, a.IPNet.String())
			}
		}
		return nil
	})
	return out
}

// defaultGWs returns the gateways of the default routes in netns.
func defaultGWs(t *testing.T, netns ns.NetNS) []string {
	t.Helper()
	var out []string
	in(t, netns, func() error {
		rs, err := netlink.RouteList(nil, netlink.FAMILY_ALL)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if isDefault := r.Dst == nil || maskOnes(r.Dst) == 0; isDefault && r.Gw != nil {
				out = append(out, r.Gw.String())
			}
		}
		return nil
	})
	return out
}

func maskOnes(n *net.IPNet) int {
	ones, _ := n.Mask.Size()
	return ones
}

func sysctlIn(t *testing.T, netns ns.NetNS, key string) string {
	t.Helper()
	var v string
	in(t, netns, func() error {
		var err error
		v, err = sysctl.Sysctl(key)
		return err
	})
	return v
}

// addVeth creates a veth pair in netns: name and a random peer.
func addVeth(t *testing.T, netns ns.NetNS, name string) {
	t.Helper()
	in(t, netns, func() error {
		la := netlink.NewLinkAttrs()
		la.Name = name
		return netlink.LinkAdd(&netlink.Veth{LinkAttrs: la, PeerName: "eltp" + randHex(4)})
	})
}
