package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// EdgeNode is one edgecore (edged off, metaServer on; edged on with
// AddEdgeNodeWithPods) in its own network namespace, with the Node object
// that stands for it.
type EdgeNode struct {
	Name       string // node name
	NetNS      string // `ip netns` name
	NetNSPath  string // /var/run/netns/<NetNS>
	IP         net.IP // eth0 address in the namespace, on the bridge
	MetaServer string // http://127.0.0.1:10550 (https with Options.RequireAuthorization), reachable only inside NetNS
	Dir        string // config, certificates, sqlite cache

	cp        *ControlPlane
	veth      string // "" when the namespace is not ours (AddEdgeNodeIn)
	cloudHost string // cloudcore's address as this node dials it
	proc      *proc
	config    string
	edged     *edgedNode // AddEdgeNodeWithPods only
	mu        sync.Mutex
}

// EdgeIn places an edge node in a network namespace someone else made
// (a tests/topology host behind a NAT, say).
type EdgeIn struct {
	NetNS string // `ip netns` name; not created or removed by the control plane
	IP    net.IP // the node's InternalIP in its Node object
	// CloudHost is the address cloudcore is reached at from NetNS (for
	// example a forwarder on a public host); cloudcore's ports are the
	// same as on the bridge (CloudHubPorts). It must be one of cloudcore's
	// certificate SANs: add it with Options.CloudcoreConfig
	// ("modules.cloudHub.advertiseAddress").
	CloudHost string
}

// AddEdgeNode creates Node name (label node-role.kubernetes.io/edge: "",
// status.addresses = the namespace's IP), a network namespace with a veth
// onto the bridge, and starts edgecore in it; it returns when the node's
// metaServer answers through the cloud. In t.Cleanup it stops edgecore,
// removes the namespace and deletes the Node.
func (cp *ControlPlane) AddEdgeNode(t testing.TB, name string) *EdgeNode {
	t.Helper()
	return cp.addEdgeNode(t, name, nil)
}

// AddEdgeNodeIn is AddEdgeNode for a node whose namespace exists already
// (in.NetNS): no namespace or veth is made or removed, and edgecore dials
// cloudcore at in.CloudHost.
func (cp *ControlPlane) AddEdgeNodeIn(t testing.TB, name string, in EdgeIn) *EdgeNode {
	t.Helper()
	return cp.addEdgeNode(t, name, &in)
}

func (cp *ControlPlane) addEdgeNode(t testing.TB, name string, in *EdgeIn) *EdgeNode {
	t.Helper()
	var e *EdgeNode
	if in != nil {
		e = cp.newEdge(name, in.NetNS, in.IP, "")
		e.cloudHost = in.CloudHost
	} else {
		host := cp.nextHostLocked(t)
		e = cp.newEdge(name, cp.net.nsName(name), cp.net.addr(host), cp.net.vethName(host))
	}
	if err := cp.registerEdge(e); err != nil {
		t.Fatal(err)
	}

	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- tail of %s ----\n%s", e.proc.log, e.proc.tail(40))
		}
		e.remove()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cp.createNode(ctx, e); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(e.etcKubeEdge(), 0o700); err != nil {
		t.Fatal(err)
	}
	if e.veth != "" {
		if err := cp.net.addEdge(e.NetNS, e.veth, e.IP); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Now()
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	t.Logf("edge node %s (netns %s, %s) up in %v", name, e.NetNS, e.IP, time.Since(t0).Round(time.Millisecond))
	return e
}

// nextHostLocked takes the next host number on the bridge /24.
func (cp *ControlPlane) nextHostLocked(t testing.TB) int {
	t.Helper()
	cp.mu.Lock()
	defer cp.mu.Unlock()
	host := cp.nextHost
	cp.nextHost++
	if host > 254 {
		t.Fatal("no more addresses on the bridge /24")
	}
	return host
}

// newEdge is edge node name in namespace netns with address ip (veth ""
// when the namespace is not ours), not yet registered.
func (cp *ControlPlane) newEdge(name, netns string, ip net.IP, veth string) *EdgeNode {
	e := &EdgeNode{
		Name:       name,
		NetNS:      netns,
		NetNSPath:  filepath.Join("/var/run/netns", netns),
		IP:         ip,
		MetaServer: "http://127.0.0.1:10550",
		Dir:        filepath.Join(cp.Dir, "edge-"+name),
		cp:         cp,
		veth:       veth,
		cloudHost:  cp.BridgeIP.String(),
	}
	e.config = filepath.Join(e.Dir, "edgecore.yaml")
	if cp.opts.RequireAuthorization {
		e.MetaServer = "https://127.0.0.1:10550"
	}
	e.proc = &proc{name: "edgecore/" + name, log: cp.logPath("edgecore-" + name), argv: func() []string {
		if e.edged != nil {
			return cp.edgedArgv(e)
		}
		return cp.edgecoreArgv(e)
	}}
	return e
}

// registerEdge adds e to the control plane's edges (for Close and logs).
func (cp *ControlPlane) registerEdge(e *EdgeNode) error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.closed {
		return errors.New("control plane is closed")
	}
	if _, dup := cp.edges[e.Name]; dup {
		return fmt.Errorf("edge node %s already exists", e.Name)
	}
	cp.edges[e.Name] = e
	return nil
}

// createNode creates the Node object: with edged off nothing registers it
// (G7). edgecontroller finds edge nodes by the edge role label.
func (cp *ControlPlane) createNode(ctx context.Context, e *EdgeNode) error {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{
		Name: e.Name,
		Labels: map[string]string{
			"node-role.kubernetes.io/edge": "",
			"kubernetes.io/hostname":       e.Name,
			"kubernetes.io/os":             "linux",
			"kubernetes.io/arch":           runtime.GOARCH,
		},
	}}
	if _, err := cp.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create node %s: %w", e.Name, err)
	}
	return cp.setNodeAddresses(ctx, e.Name, e.IP.String())
}

// Start starts this edgecore (again) and waits until its metaServer
// answers: through the cloud (GET of its own Node) when cloudcore is
// running, otherwise with any HTTP response (the local cache). The config
// file is written anew at each start (edgecore rewrites it after the first
// certificate bootstrap, G6); a fresh join token is put in only while the
// node has no certificates yet.
func (e *EdgeNode) Start() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	cp := e.cp
	token := ""
	if _, err := os.Stat(filepath.Join(e.Dir, "certs", "server.crt")); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		tok, err := cp.token(ctx)
		cancel()
		if err != nil {
			return fmt.Errorf("edge %s: join token: %w", e.Name, err)
		}
		token = tok
	}
	cfg, err := cp.edgecoreConfig(e, token)
	if err != nil {
		return err
	}
	if err := writeYAML(e.config, cfg); err != nil {
		return err
	}
	if cp.opts.RequireAuthorization {
		if err := e.ensureDummy(); err != nil {
			return err
		}
	}
	if err := e.proc.start(); err != nil {
		return err
	}
	viaCloud := cp.CloudcoreRunning()
	nodePath := "/api/v1/nodes/" + e.Name
	if cp.opts.RequireAuthorization {
		// The CA, then a signed serving certificate: edgecore polls for
		// each every 5 s.
		return waitProc(e.proc, 120*time.Second, e.metaServerReady)
	}
	return waitProc(e.proc, 60*time.Second, func(ctx context.Context) error {
		code, body, err := HTTPGet(ctx, e.NetNSPath, e.MetaServer+nodePath)
		if err != nil {
			return err
		}
		if viaCloud && code != 200 {
			return fmt.Errorf("GET %s: HTTP %d: %s", nodePath, code, body)
		}
		return nil
	})
}

// Stop stops this edgecore (SIGTERM, SIGKILL after 10 s). Its namespace,
// certificates and local cache stay, for Start.
func (e *EdgeNode) Stop() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.proc.stop(10 * time.Second)
}

// Running reports whether this edgecore is up.
func (e *EdgeNode) Running() bool { return e.proc.running() }

// PID is the edgecore's process id (0 when stopped).
func (e *EdgeNode) PID() int { return e.proc.pid() }

// LogPath is the edgecore's log file.
func (e *EdgeNode) LogPath() string { return e.proc.log }

// remove stops edgecore, removes the namespace and deletes the Node.
func (e *EdgeNode) remove() {
	cp := e.cp
	e.proc.stop(5 * time.Second)
	cp.mu.Lock()
	closed := cp.closed
	if !closed {
		delete(cp.edges, e.Name)
	}
	cp.mu.Unlock()
	if closed {
		return // Close took care of it
	}
	if e.veth != "" {
		cp.net.delEdge(e.NetNS, e.veth)
	}
	_ = os.RemoveAll(e.Dir) // a node of the same name later starts with an empty cache
	if cp.apiserver.running() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := cp.Client.CoreV1().Nodes().Delete(ctx, e.Name, metav1.DeleteOptions{})
		if err != nil && !apierrors.IsNotFound(err) {
			cp.logf("delete node %s: %v", e.Name, err)
		}
	}
}
