// Package simcluster builds a whole simulated cloud-edge cluster for
// EdgeLink's end-to-end scenarios and `make demo`: the network of
// tests/topology, the real KubeEdge control plane of tests/cluster with an
// edgecore on every edge node (reaching cloudcore through its site's NAT),
// an EdgeLink agent on every node, and pods made by real CNI plugins.
//
// # Shape
//
//	public segment 198.18.0.0/24 ("internet", no uplink)
//	  relay-1, relay-2   agents with the tunnel module only (relayNodes)
//	  cloud-1, cloud-2   cloud nodes: the real flanneld (vxlan backend,
//	                     kube subnet manager, --ip-masq; Network is
//	                     cloudCIDR, each node's pod CIDR inside it) and
//	                     pods from Flannel's CNI plugin; agent with
//	                     metaSync from the kube-apiserver, tunnel, edgeCNI
//	  control            forwards cloudcore's and the kube-apiserver's
//	                     ports to the control plane on the host, like a
//	                     load balancer in front of the cloud
//	site A (hole-punchable NAT): a1, a2 on one LAN
//	site C (hole-punchable NAT): c1
//	site B (symmetric NAT, defeats hole punching): b1
//	  edge nodes: edgecore (metaServer on), agent with metaSync from the
//	  metaServer, ipam, tunnel and edgeCNI; pods from edgelink-cni with
//	  the spiderpool IPAM binary, out of the node's blocks of the one
//	  cluster pool
//
// Every node carries a membership certificate from one EdgeLink CA.
//
// Addresses follow the EdgeMesh CNI document's layout: one SpiderIPPool
// for the whole cluster (default-v4: 10.244.0.0/16, 10.244.0.0-10.244.20.200,
// spec.default, pinned to no node), `edgelink controller` giving each edge
// node blocks of it, and segments given only as cloudCIDR/edgeCIDR:
// cloudCIDR 10.244.0.0/22 (cloud-1 10.244.1.0/24, cloud-2 10.244.2.0/24,
// from the cloud's CNI), one edgeCIDR per site (site number i of the spec:
// 10.244.(5+i).0/24, named on its nodes by the edgelink.io/segment
// annotation). Edge pods get /16 addresses, as SpiderPool gives them.
//
// New takes a testing.TB and registers all teardown with its Cleanup, so
// nothing is left behind when a test fails; it skips when not root.
package simcluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ns"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	corev1 "k8s.io/api/core/v1"

	"github.com/edgelink/edgelink/cni/install"
	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/modules/routing"
	"github.com/edgelink/edgelink/pkg/ipam"
	"github.com/edgelink/edgelink/pkg/p2p"
	"github.com/edgelink/edgelink/pkg/unixsock"
	"github.com/edgelink/edgelink/tests/cluster"
	"github.com/edgelink/edgelink/tests/testutil"
	"github.com/edgelink/edgelink/tests/topology"
)

// Kind is what a node is.
type Kind string

const (
	Relay Kind = "relay"
	Cloud Kind = "cloud"
	Edge  Kind = "edge"
)

// PodNamespace is the Kubernetes namespace of every pod made here.
const PodNamespace = "sim"

// Default is the end-to-end issue's cluster.
var Default = topology.Spec{
	Public: []string{"relay-1", "relay-2", "cloud-1", "cloud-2", "control"},
	Sites: []topology.SiteSpec{
		{Name: "A", NAT: topology.HolePunchable, Hosts: []string{"a1", "a2"}},
		{Name: "C", NAT: topology.HolePunchable, Hosts: []string{"c1"}},
		{Name: "B", NAT: topology.Symmetric, Hosts: []string{"b1"}},
	},
}

// CloudCIDR is the cloud segment; SharedPool the one cluster pool.
var CloudCIDR = netip.MustParsePrefix("10.244.0.0/22")

const SharedPool = "default-v4"

// SiteCIDR is the edge segment of site number i (0-based) of the spec.
func SiteCIDR(i int) netip.Prefix {
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(5 + i), 0}), 24)
}

var poolGVR = schema.GroupVersionResource{Group: "spiderpool.spidernet.io", Version: "v2beta1", Resource: "spiderippools"}

// Cluster is a running simulated cluster.
type Cluster struct {
	TP *topology.Topology
	CP *cluster.ControlPlane

	// Controller is the block controller (edgelink controller).
	Controller *testutil.Controller

	t         testing.TB
	edgeCIDRs []string
	caDir     string
	relays    []v1.RelayNode
	kubecf    string // cloud agents' kubeconfig, via the control host
	nodes     map[string]*Node
	order     []string
	edged     []string // Options.Edged
}

// Node is one node of the cluster.
type Node struct {
	Name    string
	Kind    Kind
	Host    *topology.Host
	Edge    *cluster.EdgeNode // edge nodes only
	Flannel *cluster.Flannel  // cloud nodes only
	Agent   *testutil.Agent
	// PodPrefix is the node's pod range: its pod CIDR (cloud) or its
	// site's segment (edge).
	PodPrefix netip.Prefix

	c       *Cluster
	cni     *libcni.CNIConfig
	list    *libcni.NetworkConfigList
	mu      sync.Mutex
	podSeq  int
	startOn string // the log line that says the agent is ready
}

// Pod is a pod: a network namespace wired by the node's CNI plugins, and
// its object in the kube-apiserver.
type Pod struct {
	Name string
	Node *Node
	NS   ns.NetNS
	IP   netip.Addr
	UID  string

	nsName string
	once   sync.Once
}

// Options tune New.
type Options struct {
	// Edged names edge nodes that run edged (cluster.AddEdgeNodeWithPods):
	// pods the API server creates for them run on their containerd with
	// edgelink-cni (Node.RunAPIPod). Their libcni pods (AddPod) work too.
	Edged []string
}

// New builds spec (Default if it has no hosts): the network, the control
// plane, an agent on every node, ready to route. Hosts named relay-*,
// cloud-* and "control" on the public segment are relays, cloud nodes and
// the control plane's front; every site host is an edge node.
func New(t testing.TB, spec topology.Spec) *Cluster {
	t.Helper()
	return NewWith(t, spec, Options{})
}

// NewWith is New with options.
func NewWith(t testing.TB, spec topology.Spec, opts Options) *Cluster {
	t.Helper()
	testutil.RequireRoot(t)
	if len(spec.Public) == 0 && len(spec.Sites) == 0 {
		spec = Default
	}
	if !slices.Contains(spec.Public, "control") {
		t.Fatal("simcluster: the spec needs a public host named control")
	}
	tp := topology.New(t, spec)
	control := tp.Host("control")
	cp := cluster.Start(t, cluster.Options{CloudcoreConfig: func(cfg map[string]any) {
		// edgecores dial cloudcore at the control host: its address must
		// be in cloudcore's certificate.
		hub := cfg["modules"].(map[string]any)["cloudHub"].(map[string]any)
		hub["advertiseAddress"] = append(hub["advertiseAddress"].([]any), control.IP.String())
	}})
	c := &Cluster{TP: tp, CP: cp, t: t, caDir: filepath.Join(t.TempDir(), "ca"), nodes: map[string]*Node{}, edged: opts.Edged}

	ws, https, api := cp.CloudHubPorts()
	for _, f := range []struct {
		port   int
		target string
	}{{ws, net.JoinHostPort(cp.BridgeIP.String(), fmt.Sprint(ws))}, {https, net.JoinHostPort(cp.BridgeIP.String(), fmt.Sprint(https))}, {api, fmt.Sprintf("127.0.0.1:%d", api)}} {
		if _, err := control.Forward(f.port, f.target); err != nil {
			t.Fatal(err)
		}
	}
	c.kubecf = c.writeKubeconfig(control.IP, api)
	if out, err := testutil.EdgelinkCmd(t, "ca", "init", "--dir", c.caDir).CombinedOutput(); err != nil {
		t.Fatalf("edgelink ca init: %v\n%s", err, out)
	}
	for _, name := range spec.Public {
		if strings.HasPrefix(name, "relay-") {
			c.relays = append(c.relays, v1.RelayNode{NodeName: name, AdvertiseAddress: []string{tp.Host(name).IP.String()}})
		}
	}

	for i := range spec.Sites {
		c.edgeCIDRs = append(c.edgeCIDRs, SiteCIDR(i).String())
	}
	c.createPool(SharedPool, map[string]any{"subnet": "10.244.0.0/16", "ips": []any{"10.244.0.0-10.244.20.200"}, "default": true})
	cloudN := 0
	for _, h := range tp.Hosts() {
		switch {
		case h.Site != "":
			site := slices.IndexFunc(spec.Sites, func(s topology.SiteSpec) bool { return s.Name == h.Site })
			c.addEdge(h, SiteCIDR(site))
		case strings.HasPrefix(h.Name, "cloud-"):
			cloudN++
			c.addCloud(h, cloudN)
		case strings.HasPrefix(h.Name, "relay-"):
			c.add(&Node{Name: h.Name, Kind: Relay, Host: h}, c.agentConfig(h.Name, Relay))
		}
	}
	c.Controller = testutil.StartController(t, cp.Kubeconfig, fmt.Sprintf(
		"meshCIDRConfig: {cloudCIDR: [%s], edgeCIDR: [%s]}\nresyncPeriod: 2s\n", CloudCIDR, strings.Join(c.edgeCIDRs, ", ")))
	c.waitBlocks()
	for _, name := range c.order {
		n := c.nodes[name]
		n.Agent.Start(n.startOn)
	}
	t.Cleanup(func() {
		if t.Failed() {
			c.Dump(t)
		}
	})
	return c
}

// Node returns the named node; it fails the test if there is none.
func (c *Cluster) Node(name string) *Node {
	n, ok := c.nodes[name]
	if !ok {
		c.t.Fatalf("simcluster: no node %q", name)
	}
	return n
}

// Nodes lists the nodes in spec order: relays and cloud nodes, then the
// edge nodes site by site.
func (c *Cluster) Nodes() []*Node {
	out := make([]*Node, 0, len(c.order))
	for _, name := range c.order {
		out = append(out, c.nodes[name])
	}
	return out
}

// PodNodes are the nodes that run pods (cloud and edge nodes).
func (c *Cluster) PodNodes() []*Node {
	var out []*Node
	for _, n := range c.Nodes() {
		if n.Kind != Relay {
			out = append(out, n)
		}
	}
	return out
}

func (c *Cluster) add(n *Node, cfg *v1.AgentConfig) {
	n.c = c
	n.startOn = "Tunnel up"
	if cfg.Modules.EdgeCNI.Enable {
		n.startOn = "Data plane up"
	}
	n.Agent = testutil.NewAgent(c.t, cfg, n.Host.NetNS)
	c.nodes[n.Name] = n
	c.order = append(c.order, n.Name)
}

// agentConfig is node name's agent config: a fresh identity and a
// certificate from the cluster CA, the relays, and the modules its kind
// runs.
func (c *Cluster) agentConfig(name string, kind Kind) *v1.AgentConfig {
	t := c.t
	t.Helper()
	dir := t.TempDir()
	cfg := v1.NewDefault()
	cfg.NodeName, cfg.DataDir = name, dir
	m := &cfg.Modules
	m.MetaSync.Enable, m.IPAM.Enable, m.EdgeCNI.Enable = kind != Relay, kind == Edge, kind != Relay
	m.IPAM.SocketPath = filepath.Join(dir, "ipam.sock")
	m.EdgeCNI.MeshCIDRConfig = v1.MeshCIDRConfig{CloudCIDR: []string{CloudCIDR.String()}, EdgeCIDR: c.edgeCIDRs}
	tn := &m.Tunnel
	tn.IdentityFile = filepath.Join(dir, "tunnel", "identity.key")
	tn.RoutableCIDRs = []string{topology.PublicPrefix.String()}
	tn.RelayNodes = c.relays
	testutil.IssueMember(t, tn, name, c.caDir, c.caDir, filepath.Join(dir, "certs"))
	return cfg
}

// addCloud makes cloud node number n: its Node object (pod CIDR
// 10.244.n.0/24, InternalIP its public address), flanneld (vxlan, kube
// subnet manager, --ip-masq) with Flannel's CNI plugin for its pods, and
// an agent reading the kube-apiserver.
func (c *Cluster) addCloud(h *topology.Host, n int) {
	t := c.t
	pfx := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(n), 0}), 24)
	c.CP.CreateCloudNode(t, h.Name, pfx.String(), h.IP.String())
	fl := cluster.StartFlannel(t, cluster.FlannelOptions{Node: h.Name, NetNS: h.NetNS, Kubeconfig: c.kubecf, Network: CloudCIDR})
	nd := &Node{Name: h.Name, Kind: Cloud, Host: h, PodPrefix: pfx, Flannel: fl, c: c}
	nd.setCNI(string(fl.Conflist()), cluster.FlannelPlugins...)
	cfg := c.agentConfig(h.Name, Cloud)
	cfg.Modules.MetaSync.Source, cfg.Modules.MetaSync.Kubeconfig = v1.SourceKubeconfig, c.kubecf
	c.add(nd, cfg)
}

// addEdge makes an edge node of segment seg: edgecore in the host's
// namespace (Node object with its LAN address, annotated with its
// segment), edgelink-cni + spiderpool as its CNI, and a full agent. Its
// addresses come from its blocks of the shared pool.
func (c *Cluster) addEdge(h *topology.Host, seg netip.Prefix) {
	t := c.t
	cfg := c.agentConfig(h.Name, Edge)
	in := cluster.EdgeIn{NetNS: h.NetNS, IP: net.IP(h.IP.AsSlice()), CloudHost: c.TP.Host("control").IP.String()}
	var e *cluster.EdgeNode
	if slices.Contains(c.edged, h.Name) {
		e = c.CP.AddEdgeNodeWithPods(t, h.Name, cluster.PodsOptions{IPAMSocket: cfg.Modules.IPAM.SocketPath, In: &in})
	} else {
		e = c.CP.AddEdgeNodeIn(t, h.Name, in)
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, ipam.AnnoSegment, seg.String())
	if _, err := c.CP.Client.CoreV1().Nodes().Patch(context.Background(), h.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("annotate node %s: %v", h.Name, err)
	}
	pfx := seg
	cfg.Modules.MetaSync.MetaServer = e.MetaServer
	conf, err := install.Conflist(install.Options{IPAMType: "spiderpool", IPAMSocket: cfg.Modules.IPAM.SocketPath, DataDir: filepath.Join(t.TempDir(), "cni")})
	if err != nil {
		t.Fatal(err)
	}
	// spiderpool logs to /var/log/spidernet unless told otherwise.
	conf = setIPAMKey(t, conf, "log_file_path", filepath.Join(t.TempDir(), "spiderpool.log"))
	nd := &Node{Name: h.Name, Kind: Edge, Host: h, Edge: e, PodPrefix: pfx, c: c}
	nd.setCNI(string(conf), "spiderpool")
	c.add(nd, cfg)
}

func setIPAMKey(t testing.TB, conf []byte, key string, v any) []byte {
	var m map[string]any
	if err := json.Unmarshal(conf, &m); err != nil {
		t.Fatal(err)
	}
	m["plugins"].([]any)[0].(map[string]any)["ipam"].(map[string]any)[key] = v
	out, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitBlocks waits until the controller has given every edge node a block.
func (c *Cluster) waitBlocks() {
	deadline := time.Now().Add(60 * time.Second)
	for {
		u, err := c.CP.Dynamic.Resource(poolGVR).Get(context.Background(), SharedPool, metav1.GetOptions{})
		var claims ipam.Claims
		if err == nil {
			claims, err = ipam.ParseClaims(u.GetAnnotations()[ipam.AnnoBlocks])
		}
		missing := ""
		for _, n := range c.nodes {
			if n.Kind == Edge && len(claims.Of(n.Name)) == 0 {
				missing = n.Name
			}
		}
		if err == nil && missing == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("simcluster: no block for edge node %s after 60s (err %v)\ncontroller log:\n%s", missing, err, c.Controller.Log())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *Cluster) createPool(name string, spec map[string]any) {
	pool := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool",
		"metadata": map[string]any{"name": name}, "spec": spec,
	}}
	if _, err := c.CP.Dynamic.Resource(poolGVR).Create(context.Background(), pool, metav1.CreateOptions{}); err != nil {
		c.t.Fatalf("create SpiderIPPool %s: %v", name, err)
	}
}

func (c *Cluster) writeKubeconfig(ip netip.Addr, port int) string {
	rc := c.CP.RestConfig
	path := filepath.Join(c.t.TempDir(), "cloud.kubeconfig")
	err := clientcmd.WriteToFile(clientcmdapi.Config{
		Clusters: map[string]*clientcmdapi.Cluster{"sim": {
			Server: fmt.Sprintf("https://%s", netip.AddrPortFrom(ip, uint16(port))), CertificateAuthorityData: rc.CAData,
			TLSServerName: "localhost", // the apiserver's certificate names localhost and 127.0.0.1
		}},
		AuthInfos:      map[string]*clientcmdapi.AuthInfo{"node": {ClientCertificateData: rc.CertData, ClientKeyData: rc.KeyData}},
		Contexts:       map[string]*clientcmdapi.Context{"sim": {Cluster: "sim", AuthInfo: "node"}},
		CurrentContext: "sim",
	}, path)
	if err != nil {
		c.t.Fatal(err)
	}
	return path
}

func (n *Node) setCNI(conf string, tools ...string) {
	t := n.c.t
	list, err := libcni.ConfListFromBytes([]byte(conf))
	if err != nil {
		t.Fatalf("%s: CNI config: %v\n%s", n.Name, err, conf)
	}
	n.list = list
	n.cni = libcni.NewCNIConfigWithCacheDir([]string{testutil.PluginDir(t, tools...)}, t.TempDir(), nil)
}

func (n *Node) rt(p *Pod) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{ContainerID: "c-" + p.UID, NetNS: p.NS.Path(), IfName: "eth0", Args: [][2]string{
		{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", PodNamespace}, {"K8S_POD_NAME", p.Name},
		{"K8S_POD_INFRA_CONTAINER_ID", "c-" + p.UID}, {"K8S_POD_UID", p.UID},
	}}
}

// AddPod creates a pod on n: the Pod object, a namespace, a CNI ADD (run
// inside the node's namespace, as the kubelet's runtime would) and the
// pod's IP in its status. An empty name gets one. Teardown is registered
// with t.
func (n *Node) AddPod(t testing.TB, name string) *Pod {
	t.Helper()
	p, err := n.TryAddPod(t, name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// RunAPIPod creates a podserver pod for node n (an Options.Edged node)
// through the kube-apiserver and waits until edged runs it; it returns
// the pod as the API server has it (status.podIP). The pod is deleted
// through the API at cleanup.
func (n *Node) RunAPIPod(t testing.TB, name string) *corev1.Pod {
	t.Helper()
	if n.Edge == nil || !n.Edge.Edged() {
		t.Fatalf("simcluster: %s does not run edged (Options.Edged)", n.Name)
	}
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: PodNamespace, Name: name, Labels: map[string]string{"app": "sim-api"}}, Spec: cluster.PodServerSpec()}
	p.Spec.NodeName = n.Name
	return n.c.CP.RunPod(t, p, 90*time.Second)
}

// TryAddPod is AddPod returning the CNI error instead of failing.
func (n *Node) TryAddPod(t testing.TB, name string) (*Pod, error) {
	t.Helper()
	if name == "" {
		n.mu.Lock()
		n.podSeq++
		name = fmt.Sprintf("%s-p%d", n.Name, n.podSeq)
		n.mu.Unlock()
	}
	obj := n.c.CP.CreatePod(t, PodNamespace, name, n.Name, map[string]string{"app": "sim"}, nil)
	nsName, path, err := n.c.TP.NewNamespace(name)
	if err != nil {
		return nil, err
	}
	netns, err := ns.GetNS(path)
	if err != nil {
		return nil, err
	}
	p := &Pod{Name: name, Node: n, NS: netns, UID: string(obj.UID), nsName: nsName}
	t.Cleanup(func() { _ = p.release() })
	var res *current.Result
	err = n.Host.Do(func() error {
		r, err := n.cni.AddNetworkList(context.Background(), n.list, n.rt(p))
		if err != nil {
			return err
		}
		res, err = current.NewResultFromResult(r)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("CNI ADD %s on %s: %w", name, n.Name, err)
	}
	for _, ipc := range res.IPs {
		if a, ok := netip.AddrFromSlice(ipc.Address.IP.To4()); ok && !p.IP.IsValid() {
			p.IP = a
		}
	}
	if !p.IP.IsValid() {
		return nil, fmt.Errorf("CNI ADD %s on %s: no IPv4 address in %+v", name, n.Name, res)
	}
	n.c.CP.SetPodIP(t, PodNamespace, name, p.IP.String())
	return p, nil
}

func (n *Node) delCNI(p *Pod) error {
	return n.Host.Do(func() error { return n.cni.DelNetworkList(context.Background(), n.list, n.rt(p)) })
}

// Delete removes the pod: the Pod object, then a CNI DEL, then its
// namespace.
func (p *Pod) Delete(t testing.TB) {
	t.Helper()
	zero := int64(0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Node.c.CP.Client.CoreV1().Pods(PodNamespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Errorf("delete pod %s: %v", p.Name, err)
	}
	if err := p.release(); err != nil {
		t.Errorf("CNI DEL %s: %v", p.Name, err)
	}
}

// release runs the CNI DEL and deletes the pod's namespace, once; it
// returns the DEL's error.
func (p *Pod) release() (err error) {
	p.once.Do(func() {
		err = p.Node.delCNI(p)
		_ = p.NS.Close()
		_ = p.Node.c.TP.DeleteNamespace(p.nsName)
	})
	return err
}

// Exec runs a command inside the pod's namespace.
func (p *Pod) Exec(args ...string) (string, error) {
	out, err := testutil.Exec(p.NS, args[0], args[1:]...)
	return strings.TrimSpace(out), err
}

// Do runs f with sockets made in the pod's namespace.
func (p *Pod) Do(f func() error) error {
	return p.NS.Do(func(ns.NetNS) error { return f() })
}

func (p *Pod) String() string { return fmt.Sprintf("%s(%s on %s)", p.Name, p.IP, p.Node.Name) }

// CA is the directory of the cluster's membership CA (`edgelink ca`).
func (c *Cluster) CA() string { return c.caDir }

// Relays are the relay nodes as the agents are configured with them.
func (c *Cluster) Relays() []v1.RelayNode { return c.relays }

// Kubeconfig is the cloud agents' kubeconfig (admin, via the control
// host).
func (c *Cluster) Kubeconfig() string { return c.kubecf }

// Dump logs, per node, what someone debugging a failed scenario looks at
// first: kernel routes, the agent's route plan and errors, its peers and
// the tail of its log.
func (c *Cluster) Dump(t testing.TB) {
	t.Helper()
	for _, n := range c.Nodes() {
		var b strings.Builder
		routes, _ := n.Host.Exec("ip", "route")
		fmt.Fprintf(&b, "==== %s (%s)\n-- ip route\n%s", n.Name, n.Kind, routes)
		var dp routing.Status
		if err := n.Agent.GetJSON("/v1/dataplane", &dp); err == nil {
			fmt.Fprintf(&b, "-- plan\n%s-- errors %q stats %+v\n", dp.Plan, dp.Errors, dp.Stats)
		}
		var peers []p2p.PeerStatus
		if err := n.Agent.GetJSON("/v1/tunnel/peers", &peers); err == nil {
			for _, p := range peers {
				fmt.Fprintf(&b, "-- peer %s: %s via %q %s err %q\n", p.Node, p.Path, p.Relay, p.RemoteAddr, p.LastError)
			}
		}
		log := n.Agent.Log()
		if dir := os.Getenv("SIMCLUSTER_LOGDIR"); dir != "" {
			// The whole log, for a debugging session that asked for it.
			_ = os.MkdirAll(dir, 0o755)
			_ = os.WriteFile(filepath.Join(dir, n.Name+".log"), []byte(log), 0o644)
		}
		if i := len(log) - 3000; i > 0 {
			log = log[i:]
		}
		fmt.Fprintf(&b, "-- agent log (tail)\n%s", log)
		t.Log(b.String())
	}
}

// Transfer sends size pseudo-random bytes over TCP from pod from to pod to
// and checks they arrive intact (SHA-256); it returns how long that took.
func Transfer(from, to *Pod, size int64) (time.Duration, error) {
	d, err := testutil.TCPTransfer(to.Do, from.Do, to.IP, size, 2*time.Minute)
	if err != nil {
		return 0, fmt.Errorf("%s -> %s: %w", from, to, err)
	}
	return d, nil
}

// Leases lists the IPAM leases an edge node's agent holds (the ipam
// module's own listing on its socket).
func (n *Node) Leases(t testing.TB) []ipam.Lease {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second, Transport: unixsock.HTTPTransport(n.Agent.Config.Modules.IPAM.SocketPath)}
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://ipam/v1/edgelink/leases")
	if err != nil {
		t.Fatalf("%s leases: %v", n.Name, err)
	}
	defer resp.Body.Close()
	var leases []ipam.Lease
	if err := json.NewDecoder(resp.Body).Decode(&leases); err != nil {
		t.Fatalf("%s leases: %v", n.Name, err)
	}
	return leases
}
