package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/edgelink/edgelink/tests/testutil"
)

// Options tune a control plane. The zero value is what the tests normally
// want.
type Options struct {
	// Verbosity is klog's -v for cloudcore and edgecore (default 2).
	Verbosity int
	// APIServerFlags are appended to kube-apiserver's command line.
	APIServerFlags []string
	// CloudcoreConfig, if set, edits cloudcore's configuration (the YAML
	// document as generic maps) after the harness's own edits.
	CloudcoreConfig func(cfg map[string]any)
	// EdgecoreConfig, if set, edits each edgecore's configuration after the
	// harness's own edits.
	EdgecoreConfig func(node string, cfg map[string]any)
	// RequireAuthorization turns KubeEdge's requireAuthorization feature
	// gate on in cloudcore and every edgecore: the metaServers serve HTTPS
	// (EdgeNode.MetaServerCA) and want a ServiceAccount token
	// (ServiceAccountToken) that RBAC lets read (authorization.go). It
	// also runs kube-controller-manager's CSR signer. Off by default.
	RequireAuthorization bool
}

// ControlPlane is a running etcd + kube-apiserver + cloudcore, with the
// KubeEdge and SpiderPool CRDs installed and namespace kubeedge created.
type ControlPlane struct {
	Client     kubernetes.Interface // admin (system:masters)
	Dynamic    dynamic.Interface    // admin
	RestConfig *rest.Config         // admin
	Kubeconfig string               // path of an admin kubeconfig file
	APIServer  string               // https://127.0.0.1:<port>
	Dir        string               // run directory: logs/, pki/, cloud/, edge-*/
	Bridge     string               // the host bridge of the cloud-edge network
	BridgeIP   net.IP               // cloudcore listens here
	Subnet     *net.IPNet           // the bridge's /24 (198.18.0.0/15)

	opts Options
	bins tools
	net  *network
	pki  *pki

	etcdClient, etcdPeer, apiPort int
	wsPort, httpsPort, quicPort   int
	monitorPort                   int

	etcd, apiserver, cloudcore *proc
	kcm                        *proc // Options.RequireAuthorization only
	scheduler, workloads       *proc // StartScheduling only
	madeEtcKubeEdge            bool  // /etc/kubeedge created as a mount point

	mu         sync.Mutex
	edges      map[string]*EdgeNode
	nextHost   int
	edgeDefCfg []byte // `edgecore --defaultconfig`, cached
	closed     bool
	closeOnce  sync.Once
	logf       func(format string, args ...any)
}

type tools struct{ etcd, apiserver, cloudcore, edgecore string }

// Start brings up a control plane for t and tears it down in t.Cleanup
// (logging the tail of every log when t failed). It skips t when not root.
// The binaries come from tests/tools/build.sh (cached; a cold build of all
// four takes about 8 minutes: run `tests/tools/build.sh etcd kube-apiserver
// cloudcore edgecore` once beforehand so go test's timeout is not spent on
// it).
func Start(t testing.TB, opts Options) *ControlPlane {
	t.Helper()
	testutil.RequireRoot(t)
	bins, err := buildTools()
	if err != nil {
		t.Fatal(err)
	}
	cp, err := start(bins, opts, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			cp.DumpLogs(t)
		}
		cp.Close()
	})
	return cp
}

var shared struct {
	sync.Mutex
	main    bool
	started bool
	cp      *ControlPlane
	err     error
}

// Main runs the tests of a package that uses Shared and then tears the
// shared control plane down. Call it from TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(cluster.Main(m)) }
//
// When a test failed, the tail of every log is printed to stderr first.
func Main(m *testing.M) int {
	shared.Lock()
	shared.main = true
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	cp := shared.cp
	shared.Unlock()
	if cp != nil {
		if code != 0 {
			cp.dumpLogs(func(s string) { fmt.Fprintln(os.Stderr, s) })
		}
		cp.Close()
	}
	return code
}

// Shared returns the test binary's one control plane, started (with zero
// Options) by the first test that asks for it and torn down by Main after
// all tests ran. Tests that share it must clean up the objects they create
// (CreatePod and AddEdgeNode do so themselves) and should not leave
// cloudcore or the apiserver stopped. It skips t when not root, and fails
// t unless TestMain calls Main.
func Shared(t testing.TB) *ControlPlane {
	t.Helper()
	testutil.RequireRoot(t)
	shared.Lock()
	defer shared.Unlock()
	if !shared.main {
		t.Fatal("cluster.Shared needs TestMain to call cluster.Main (it tears the shared control plane down)")
	}
	if !shared.started {
		shared.started = true
		var bins tools
		bins, shared.err = buildTools()
		if shared.err == nil {
			shared.cp, shared.err = start(bins, Options{}, t.Logf)
		}
		if shared.cp != nil {
			// t ends long before the control plane does
			shared.cp.logf = func(f string, a ...any) { fmt.Fprintf(os.Stderr, "cluster: "+f+"\n", a...) }
		}
	}
	if shared.err != nil {
		t.Fatalf("shared control plane: %v", shared.err)
	}
	cp := shared.cp
	t.Cleanup(func() {
		if t.Failed() {
			cp.DumpLogs(t)
		}
	})
	return cp
}

// buildTools gets the four binaries through tests/tools/build.sh.
func buildTools() (tools, error) {
	names := []string{"etcd", "kube-apiserver", "cloudcore", "edgecore"}
	cmd := exec.Command(filepath.Join(testutil.RepoRoot(), "tests", "tools", "build.sh"), names...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return tools{}, fmt.Errorf("tests/tools/build.sh %s: %v\n%s", strings.Join(names, " "), err, stderr.String())
	}
	paths := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			paths[k] = v
		}
	}
	b := tools{etcd: paths["etcd"], apiserver: paths["kube-apiserver"], cloudcore: paths["cloudcore"], edgecore: paths["edgecore"]}
	if b.etcd == "" || b.apiserver == "" || b.cloudcore == "" || b.edgecore == "" {
		return tools{}, fmt.Errorf("tests/tools/build.sh printed %q", out)
	}
	return b, nil
}

func start(bins tools, opts Options, logf func(string, ...any)) (cp *ControlPlane, err error) {
	if opts.Verbosity == 0 {
		opts.Verbosity = 2
	}
	t0 := time.Now()
	dir, err := os.MkdirTemp("", "edgelink-cluster-")
	if err != nil {
		return nil, err
	}
	cp = &ControlPlane{Dir: dir, opts: opts, bins: bins, edges: map[string]*EdgeNode{}, nextHost: 10, logf: logf}
	defer func() {
		if err != nil {
			var tails strings.Builder
			cp.dumpLogs(func(s string) { tails.WriteString(s + "\n") })
			cp.Close()
			err = fmt.Errorf("%w\n%s", err, tails.String())
		}
	}()
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		return cp, err
	}
	if cp.net, err = newNetwork(dir); err != nil {
		return cp, fmt.Errorf("network: %w", err)
	}
	cp.Bridge, cp.BridgeIP, cp.Subnet = cp.net.bridge, cp.net.gw, cp.net.subnet
	if cp.pki, err = newPKI(filepath.Join(dir, "pki")); err != nil {
		return cp, fmt.Errorf("pki: %w", err)
	}
	ports, err := freePorts("127.0.0.1", 3)
	if err != nil {
		return cp, err
	}
	cp.etcdClient, cp.etcdPeer, cp.apiPort = ports[0], ports[1], ports[2]
	if ports, err = freePorts(cp.BridgeIP.String(), 4); err != nil {
		return cp, err
	}
	cp.wsPort, cp.httpsPort, cp.quicPort, cp.monitorPort = ports[0], ports[1], ports[2], ports[3]
	cp.APIServer = fmt.Sprintf("https://127.0.0.1:%d", cp.apiPort)
	if err := cp.writeKubeconfig(); err != nil {
		return cp, err
	}
	tPKI := time.Now()

	// etcd
	cp.etcd = &proc{name: "etcd", log: cp.logPath("etcd"), argv: cp.etcdArgv}
	if err := cp.etcd.start(); err != nil {
		return cp, err
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d/health", cp.etcdClient)
	if err := waitProc(cp.etcd, 30*time.Second, func(ctx context.Context) error {
		return httpOK(ctx, http.DefaultClient, etcdURL)
	}); err != nil {
		return cp, fmt.Errorf("etcd: %w", err)
	}
	tEtcd := time.Now()

	// kube-apiserver
	cp.apiserver = &proc{name: "kube-apiserver", log: cp.logPath("kube-apiserver"), argv: cp.apiserverArgv}
	if err := cp.StartAPIServer(); err != nil {
		return cp, err
	}
	tAPI := time.Now()

	// CRDs and namespace kubeedge
	if err := cp.installCRDs(); err != nil {
		return cp, fmt.Errorf("CRDs: %w", err)
	}
	tCRD := time.Now()

	if opts.RequireAuthorization {
		if err := cp.prepareAuthorization(); err != nil {
			return cp, fmt.Errorf("requireAuthorization: %w", err)
		}
	}

	// cloudcore
	if err := cp.writeCloudcoreConfig(); err != nil {
		return cp, fmt.Errorf("cloudcore config: %w", err)
	}
	cp.cloudcore = &proc{name: "cloudcore", log: cp.logPath("cloudcore"), argv: func() []string {
		return []string{cp.bins.cloudcore, "--config", cp.cloudcoreConfigPath(), "-v=" + strconv.Itoa(cp.opts.Verbosity)}
	}}
	if err := cp.StartCloudcore(); err != nil {
		return cp, err
	}
	tCloud := time.Now()
	logf("control plane %s up in %v (pki+net %v, etcd %v, kube-apiserver %v, CRDs %v, cloudcore %v); bridge %s %s, apiserver %s, run dir %s",
		cp.net.suffix, tCloud.Sub(t0).Round(time.Millisecond), tPKI.Sub(t0).Round(time.Millisecond),
		tEtcd.Sub(tPKI).Round(time.Millisecond), tAPI.Sub(tEtcd).Round(time.Millisecond),
		tCRD.Sub(tAPI).Round(time.Millisecond), tCloud.Sub(tCRD).Round(time.Millisecond),
		cp.Bridge, cp.Subnet, cp.APIServer, cp.Dir)
	return cp, nil
}

func (cp *ControlPlane) logPath(name string) string {
	return filepath.Join(cp.Dir, "logs", name+".log")
}

func (cp *ControlPlane) etcdArgv() []string {
	c := fmt.Sprintf("http://127.0.0.1:%d", cp.etcdClient)
	p := fmt.Sprintf("http://127.0.0.1:%d", cp.etcdPeer)
	return []string{cp.bins.etcd,
		"--name", "edgelink",
		"--data-dir", filepath.Join(cp.Dir, "etcd-data"),
		"--listen-client-urls", c, "--advertise-client-urls", c,
		"--listen-peer-urls", p, "--initial-advertise-peer-urls", p,
		"--initial-cluster", "edgelink=" + p,
		"--unsafe-no-fsync", // test data: durability across host crashes is moot
	}
}

func (cp *ControlPlane) apiserverArgv() []string {
	p := cp.pki
	argv := []string{cp.bins.apiserver,
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", cp.etcdClient),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", cp.apiPort),
		"--endpoint-reconciler-type=none", // required with a loopback advertise address (G3)
		"--tls-cert-file=" + p.ServerCert, "--tls-private-key-file=" + p.ServerKey,
		"--client-ca-file=" + p.CACert,
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file=" + p.SAPub,
		"--service-account-signing-key-file=" + p.SAKey,
		"--service-cluster-ip-range=10.96.0.0/12",
		"--authorization-mode=Node,RBAC",
		"--disable-admission-plugins=ServiceAccount", // no controller-manager creates the default SA
		"--allow-privileged=true",
		"--profiling=false",
	}
	return append(argv, cp.opts.APIServerFlags...)
}

func (cp *ControlPlane) writeKubeconfig() error {
	p := cp.pki
	cp.RestConfig = &rest.Config{
		Host: cp.APIServer,
		TLSClientConfig: rest.TLSClientConfig{
			CAData: p.caPEM, CertData: p.adminPEM, KeyData: p.adminKey,
		},
		QPS: 100, Burst: 200,
	}
	var err error
	if cp.Client, err = kubernetes.NewForConfig(cp.RestConfig); err != nil {
		return err
	}
	if cp.Dynamic, err = dynamic.NewForConfig(cp.RestConfig); err != nil {
		return err
	}
	cp.Kubeconfig = filepath.Join(cp.Dir, "admin.kubeconfig")
	return clientcmd.WriteToFile(clientcmdapi.Config{
		Clusters: map[string]*clientcmdapi.Cluster{"edgelink": {
			Server: cp.APIServer, CertificateAuthorityData: p.caPEM,
		}},
		AuthInfos: map[string]*clientcmdapi.AuthInfo{"admin": {
			ClientCertificateData: p.adminPEM, ClientKeyData: p.adminKey,
		}},
		Contexts: map[string]*clientcmdapi.Context{"edgelink": {
			Cluster: "edgelink", AuthInfo: "admin",
		}},
		CurrentContext: "edgelink",
	}, cp.Kubeconfig)
}

// CloudHubPorts are cloudcore's ports on BridgeIP: websocket, https
// (certificate bootstrap) and the kube-apiserver's port on 127.0.0.1.
// Forwarders that make the control plane reachable from other namespaces
// listen on the same numbers.
func (cp *ControlPlane) CloudHubPorts() (websocket, https, apiserver int) {
	return cp.wsPort, cp.httpsPort, cp.apiPort
}

// StopAPIServer stops kube-apiserver (SIGTERM, SIGKILL after 10 s).
func (cp *ControlPlane) StopAPIServer() {
	cp.apiserver.stop(10 * time.Second)
}

// StartAPIServer starts kube-apiserver (same port, flags and etcd) and waits
// until /readyz answers ok.
func (cp *ControlPlane) StartAPIServer() error {
	if err := cp.apiserver.start(); err != nil {
		return err
	}
	err := waitProc(cp.apiserver, 60*time.Second, func(ctx context.Context) error {
		body, err := cp.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err != nil {
			return err
		}
		if string(body) != "ok" {
			return fmt.Errorf("/readyz: %s", body)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	return nil
}

// StopCloudcore stops cloudcore (SIGTERM, SIGKILL after 10 s). The edge
// nodes keep running and serve their metaServer from the local cache.
func (cp *ControlPlane) StopCloudcore() {
	cp.cloudcore.stop(10 * time.Second)
}

// StartCloudcore starts cloudcore and waits until its websocket and https
// ports accept connections (cloudcore sleeps a random 0-9 s before it
// listens) and secret kubeedge/tokensecret exists. Connected edgecores
// reconnect by themselves, within about 20 s (edgeHub backoff).
func (cp *ControlPlane) StartCloudcore() error {
	if err := cp.cloudcore.start(); err != nil {
		return err
	}
	ws := net.JoinHostPort(cp.BridgeIP.String(), strconv.Itoa(cp.wsPort))
	hs := net.JoinHostPort(cp.BridgeIP.String(), strconv.Itoa(cp.httpsPort))
	err := waitProc(cp.cloudcore, 60*time.Second, func(ctx context.Context) error {
		for _, a := range []string{ws, hs} {
			c, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", a)
			if err != nil {
				return err
			}
			c.Close()
		}
		_, err := cp.token(ctx)
		return err
	})
	if err != nil {
		return fmt.Errorf("cloudcore: %w", err)
	}
	return nil
}

// CloudcoreRunning reports whether cloudcore is up (started and not exited).
func (cp *ControlPlane) CloudcoreRunning() bool { return cp.cloudcore != nil && cp.cloudcore.running() }

// waitProc polls check every 100 ms until it succeeds, p exits or timeout.
func waitProc(p *proc, timeout time.Duration, check func(ctx context.Context) error) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		select {
		case <-p.done():
			return fmt.Errorf("%s exited (%v) while starting; last check: %v", p.name, p.exitErr(), last)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		last = check(ctx)
		cancel()
		if last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %v: %v", p.name, timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func httpOK(ctx context.Context, c *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// freePorts returns n distinct TCP ports that are free on ip right now.
func freePorts(ip string, n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Close stops every edgecore, cloudcore, kube-apiserver and etcd (SIGTERM,
// then SIGKILL), and removes the network and the run directory. Start and
// Main call it; it is idempotent. Set EDGELINK_CLUSTER_KEEP=1 to keep the
// run directory.
func (cp *ControlPlane) Close() {
	cp.closeOnce.Do(func() {
		cp.mu.Lock()
		cp.closed = true
		edges := make([]*EdgeNode, 0, len(cp.edges))
		for _, e := range cp.edges {
			edges = append(edges, e)
		}
		cp.mu.Unlock()
		var wg sync.WaitGroup
		for _, e := range edges {
			wg.Add(1)
			go func() { defer wg.Done(); e.proc.stop(5 * time.Second) }()
		}
		wg.Wait()
		cp.closeAuthorization()
		for _, p := range []*proc{cp.scheduler, cp.workloads, cp.cloudcore, cp.apiserver, cp.etcd} {
			if p != nil {
				p.stop(5 * time.Second)
			}
		}
		if cp.net != nil {
			for _, e := range edges {
				if e.veth != "" { // not a namespace of AddEdgeNodeIn's caller
					cp.net.delEdge(e.NetNS, e.veth)
				}
			}
			cp.net.close()
		}
		if os.Getenv("EDGELINK_CLUSTER_KEEP") == "" {
			_ = os.RemoveAll(cp.Dir)
		} else {
			cp.logf("kept run directory %s", cp.Dir)
		}
	})
}

// DumpLogs t.Logs the last 40 lines of the logs of etcd, kube-apiserver,
// cloudcore and every current edgecore. (An edge node's cleanup logs its
// own tail when its test failed.)
func (cp *ControlPlane) DumpLogs(t testing.TB) {
	t.Helper()
	cp.dumpLogs(func(s string) { t.Log(s) })
}

func (cp *ControlPlane) dumpLogs(out func(string)) {
	var procs []*proc
	for _, p := range []*proc{cp.etcd, cp.apiserver, cp.cloudcore, cp.scheduler, cp.workloads} {
		if p != nil {
			procs = append(procs, p)
		}
	}
	cp.mu.Lock()
	var edges []*proc
	for _, e := range cp.edges {
		edges = append(edges, e.proc)
	}
	cp.mu.Unlock()
	sort.Slice(edges, func(i, j int) bool { return edges[i].name < edges[j].name })
	for _, p := range append(procs, edges...) {
		out(fmt.Sprintf("---- tail of %s ----\n%s", p.log, p.tail(40)))
	}
}

// PIDs maps each running process (etcd, kube-apiserver, cloudcore,
// edgecore/<node>) to its PID.
func (cp *ControlPlane) PIDs() map[string]int {
	m := map[string]int{}
	for _, p := range []*proc{cp.etcd, cp.apiserver, cp.cloudcore} {
		if p != nil && p.pid() != 0 {
			m[p.name] = p.pid()
		}
	}
	cp.mu.Lock()
	defer cp.mu.Unlock()
	for _, e := range cp.edges {
		if pid := e.proc.pid(); pid != 0 {
			m["edgecore/"+e.Name] = pid
		}
	}
	return m
}

// RSS maps each running process (as in PIDs) to its resident set size in
// bytes.
func (cp *ControlPlane) RSS() map[string]int64 {
	m := map[string]int64{}
	for name, pid := range cp.PIDs() {
		if v, err := rssOf(pid); err == nil {
			m[name] = v
		}
	}
	return m
}

func rssOf(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024, err
			}
		}
	}
	return 0, errors.New("no VmRSS")
}
