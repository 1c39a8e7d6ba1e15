package e2e

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/edgelink/edgelink/cni/install"
	"github.com/edgelink/edgelink/tests/testutil"
)

// cniNode is one "node": a network namespace standing in for the host, a
// CNI_PATH with edgelink-cni and host-local, and libcni as the runtime.
type cniNode struct {
	t         *testing.T
	ns        ns.NetNS
	pluginDir string
	dataDir   string
	cni       *libcni.CNIConfig
	list      *libcni.NetworkConfigList
}

func newCNINode(t *testing.T, opts install.Options) *cniNode {
	t.Helper()
	testutil.RequireRoot(t)
	n := &cniNode{t: t, ns: testutil.NewNS(t), pluginDir: testutil.PluginDir(t, "host-local", "spiderpool"), dataDir: t.TempDir()}
	if opts.IPAMType == "" {
		opts.IPAMType = "host-local"
	}
	if opts.DataDir == "" {
		opts.DataDir = n.dataDir
	}
	conf, err := install.Conflist(opts)
	if err != nil {
		t.Fatalf("conflist: %v", err)
	}
	n.list, err = libcni.ConfListFromBytes(conf)
	if err != nil {
		t.Fatalf("libcni rejects our conflist: %v\n%s", err, conf)
	}
	n.cni = libcni.NewCNIConfigWithCacheDir([]string{n.pluginDir}, t.TempDir(), nil)
	return n
}

func rtConf(id string, pod ns.NetNS) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID: id,
		NetNS:       pod.Path(),
		IfName:      "eth0",
		// As kubelet's runtimes pass them; IgnoreUnknown lets host-local
		// accept the Kubernetes keys it does not use.
		Args: [][2]string{
			{"IgnoreUnknown", "1"},
			{"K8S_POD_NAMESPACE", "default"},
			{"K8S_POD_NAME", id},
			{"K8S_POD_INFRA_CONTAINER_ID", id},
			{"K8S_POD_UID", "uid-" + id},
		},
	}
}

// inNode runs f with the calling thread in the node's namespace, so the
// plugins libcni executes run there.
func (n *cniNode) inNode(f func() error) error {
	return n.ns.Do(func(ns.NetNS) error { return f() })
}

func (n *cniNode) add(id string, pod ns.NetNS) (*current.Result, error) {
	var res types.Result
	err := n.inNode(func() (err error) {
		res, err = n.cni.AddNetworkList(context.Background(), n.list, rtConf(id, pod))
		return err
	})
	if err != nil {
		return nil, err
	}
	return current.NewResultFromResult(res)
}

func (n *cniNode) mustAdd(id string, pod ns.NetNS) *current.Result {
	n.t.Helper()
	res, err := n.add(id, pod)
	if err != nil {
		n.t.Fatalf("ADD %s: %v", id, err)
	}
	return res
}

func (n *cniNode) del(id string, pod ns.NetNS) error {
	return n.inNode(func() error {
		return n.cni.DelNetworkList(context.Background(), n.list, rtConf(id, pod))
	})
}

func (n *cniNode) check(id string, pod ns.NetNS) error {
	return n.inNode(func() error {
		return n.cni.CheckNetworkList(context.Background(), n.list, rtConf(id, pod))
	})
}

// links returns the node's links whose names start with prefix.
func (n *cniNode) links(prefix string) []string {
	var out []string
	for _, l := range testutil.Links(n.t, n.ns) {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// leases lists the addresses host-local has on record.
func (n *cniNode) leases() []string {
	dir := filepath.Join(n.dataDir, "host-local", n.list.Name)
	entries, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		n.t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if net.ParseIP(e.Name()) != nil {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out
}

// records lists edgelink-cni's attachment records.
func (n *cniNode) records() []string {
	entries, err := os.ReadDir(filepath.Join(n.dataDir, n.list.Name))
	if err != nil && !os.IsNotExist(err) {
		n.t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out
}

// assertClean fails unless no pod veth, host-local lease or record is left.
func (n *cniNode) assertClean() {
	n.t.Helper()
	n.assertCleanLinks()
	if l := n.leases(); len(l) > 0 {
		n.t.Errorf("leaked IPAM leases: %v", l)
	}
}

// assertCleanLinks fails unless no pod veth or attachment record is left.
func (n *cniNode) assertCleanLinks() {
	n.t.Helper()
	if l := n.links("el"); len(l) > 0 {
		n.t.Errorf("leaked veths on the node: %v", l)
	}
	if r := n.records(); len(r) > 0 {
		n.t.Errorf("leaked attachment records: %v", r)
	}
}

func podIP(t *testing.T, res *current.Result) string {
	t.Helper()
	if len(res.IPs) == 0 {
		t.Fatalf("result has no IP: %+v", res)
	}
	return res.IPs[0].Address.IP.String()
}

func ping(t *testing.T, from ns.NetNS, ip string) {
	t.Helper()
	if out, err := testutil.Exec(from, "ping", "-c", "1", "-W", "2", ip); err != nil {
		t.Fatalf("ping %s from %s failed: %v\n%s", ip, testutil.Name(from), err, out)
	}
}

func cniErrCode(t *testing.T, err error) uint {
	t.Helper()
	var e *types.Error
	for cur := err; cur != nil; {
		if te, ok := cur.(*types.Error); ok {
			e = te
			break
		}
		u, ok := cur.(interface{ Unwrap() error })
		if !ok {
			break
		}
		cur = u.Unwrap()
	}
	if e == nil {
		t.Fatalf("error %v (%T) is not a CNI error", err, err)
	}
	return e.Code
}
