package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/edgelink/edgelink/tests/testutil"
)

// An edge node with edged on runs the pods the API server binds to it, as
// a keadm-joined node does: edgecore's edged (a kubelet) talks CRI to the
// node's own containerd 1.6 + runc, which calls edgelink-cni with the
// conflist `edgelink cni install` writes, which calls the stock spiderpool
// IPAM binary, which asks the agent's ipam module on PodsOptions.IPAMSocket.
// The agent itself is the test's to start (its tunnel and mesh settings
// are the test's business), before it creates pods.
//
// What is per node: the namespace, containerd (root, state, socket, CNI
// directories under EdgeNode.Dir), the kubelet rootDirectory, pod logs,
// static pod and volume plugin directories, and the cgroupRoot
// /<netns name> in every cgroup hierarchy. What edged shares with every
// other kubelet on the host whatever it is told: /var/lib/kubelet
// (device-plugins/kubelet.sock: the last edged wins), /var/log/containers
// symlinks, /run/mount, and libcni's result cache /var/lib/cni/results.
// Those are removed when the last edged node of the process goes, if no
// one had them before; this node's result cache entries when it goes.

// PodsOptions are an edged node's CNI settings.
type PodsOptions struct {
	// IPAMSocket is the agent's modules.ipam.socketPath; the conflist
	// points the spiderpool binary at it (`edgelink cni install
	// --ipam-socket`). Required.
	IPAMSocket string
	// In, if set, places the node in a namespace someone else made, as
	// AddEdgeNodeIn does (a tests/topology host behind a NAT).
	In *EdgeIn
}

// edgedNode is what an edge node with edged on has beyond edgecore.
type edgedNode struct {
	containerd *Containerd
	cgroupRoot string // /<netns name>
	rootDir    string // kubelet rootDirectory
	cniData    string // edgelink-cni's dataDir
	network    string // the conflist's name
}

// sharedKubeletPaths are the host paths every kubelet uses whatever its
// configuration says.
var sharedKubeletPaths = []string{"/var/lib/kubelet", "/var/log/containers", "/run/mount"}

// edgedHost counts this process's edged nodes and remembers which shared
// host paths existed before the first.
var edgedHost struct {
	sync.Mutex
	nodes   int
	existed map[string]bool
}

func acquireEdgedHost() {
	edgedHost.Lock()
	defer edgedHost.Unlock()
	if edgedHost.nodes == 0 {
		edgedHost.existed = map[string]bool{}
		for _, p := range sharedKubeletPaths {
			if _, err := os.Stat(p); err == nil {
				edgedHost.existed[p] = true
			}
		}
	}
	edgedHost.nodes++
}

// releaseEdgedHost removes the shared paths the last edged node leaves
// behind, unless they existed before this process's first.
func releaseEdgedHost() {
	edgedHost.Lock()
	defer edgedHost.Unlock()
	edgedHost.nodes--
	if edgedHost.nodes > 0 {
		return
	}
	for _, p := range sharedKubeletPaths {
		if !edgedHost.existed[p] {
			unmountUnder(p)
			_ = os.RemoveAll(p)
		}
	}
}

// AddEdgeNodeWithPods is AddEdgeNode for a node whose pods the API server
// creates: edged on (it registers the Node itself: Ready, InternalIP the
// namespace's address), the node's containerd with the test images
// imported (PauseImage, PodServerImage; pods use imagePullPolicy: Never),
// edgelink-cni and the spiderpool binary in its CNI bin directory and the
// conflist from `edgelink cni install` in its conf directory. It returns
// when the Node is Ready. In t.Cleanup (in this order): edgecore stops,
// containerd kills what still runs (and removes its pods' namespaces) and
// stops, the kubelet's mounts, the cgroupRoot, the namespace and the Node
// go. Pods should be deleted
// through the API before (while the agent still serves IPAM): RunPod does.
func (cp *ControlPlane) AddEdgeNodeWithPods(t testing.TB, name string, o PodsOptions) *EdgeNode {
	t.Helper()
	if o.IPAMSocket == "" {
		t.Fatal("PodsOptions.IPAMSocket: required (the agent's modules.ipam.socketPath)")
	}
	if cp.opts.RequireAuthorization {
		t.Fatal("AddEdgeNodeWithPods: not with Options.RequireAuthorization (edgecore runs in a private mount namespace there)")
	}
	var e *EdgeNode
	if o.In != nil {
		e = cp.newEdge(name, o.In.NetNS, o.In.IP, "")
		e.cloudHost = o.In.CloudHost
	} else {
		host := cp.nextHostLocked(t)
		e = cp.newEdge(name, cp.net.nsName(name), cp.net.addr(host), cp.net.vethName(host))
	}
	ed := &edgedNode{cgroupRoot: "/" + e.NetNS, rootDir: filepath.Join(e.Dir, "kubelet"), cniData: filepath.Join(e.Dir, "cni-data"), network: "edgelink"}
	e.edged = ed
	if err := cp.registerEdge(e); err != nil {
		t.Fatal(err)
	}

	acquireEdgedHost()
	t.Cleanup(releaseEdgedHost)
	// Cleanups run last registered first: edgecore stops (below), then
	// containerd (StartContainerd's), then the kubelet's mounts, cgroups
	// and result cache entries, then the namespace, directory and Node.
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- tail of %s ----\n%s", e.proc.log, e.proc.tail(40))
		}
		e.remove()
	})
	resultsBefore := cniResults()
	t.Cleanup(func() {
		unmountUnder(ed.rootDir) // kubelet bind-mounts its rootDirectory onto itself
		if err := removeCgroupRoot(ed.cgroupRoot); err != nil {
			t.Errorf("edge node %s: %v", name, err)
		}
		for f := range cniResults() {
			if !resultsBefore[f] && strings.HasPrefix(filepath.Base(f), ed.network+"-") {
				_ = os.Remove(f)
			}
		}
	})
	if err := makeCgroupRoot(ed.cgroupRoot); err != nil {
		t.Fatal(err)
	}
	if e.veth != "" {
		if err := cp.net.addEdge(e.NetNS, e.veth, e.IP); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(e.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	binDir, confDir := filepath.Join(e.Dir, "cni-bin"), filepath.Join(e.Dir, "cni-conf")
	if err := installCNI(t, binDir, confDir, ed.cniData, o.IPAMSocket, filepath.Join(e.Dir, "spiderpool.log")); err != nil {
		t.Fatal(err)
	}
	ed.containerd = StartContainerd(t, filepath.Join(e.Dir, "containerd"), ContainerdOptions{
		NetNSPath: e.NetNSPath, CNIBinDir: binDir, CNIConfDir: confDir, Log: cp.logPath("containerd-" + name),
	})
	t0 := time.Now()
	ImportImages(t, testutil.RepoRoot(), ed.containerd.Socket)
	tImages := time.Since(t0)

	// Before containerd's cleanup: edged must not restart what it kills.
	t.Cleanup(func() { e.proc.stop(10 * time.Second) })
	t0 = time.Now()
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	if err := cp.waitNodeReady(e, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("edge node %s with edged (netns %s, %s, containerd %s) Ready in %v (images %v)", name, e.NetNS, e.IP,
		ed.containerd.Socket, time.Since(t0).Round(time.Millisecond), tImages.Round(time.Millisecond))
	return e
}

// installCNI runs `edgelink cni install` into binDir and confDir (it
// copies edgelink-cni and writes 10-edgelink.conflist for the agent's
// socket) and puts the stock spiderpool binary beside edgelink-cni. The
// only edit of the written conflist is spiderpool's log_file_path: it logs
// to the host's /var/log/spidernet otherwise.
func installCNI(t testing.TB, binDir, confDir, dataDir, socket, spiderpoolLog string) error {
	out, err := testutil.EdgelinkCmd(t, "cni", "install", "--bin-dir", binDir, "--conf-dir", confDir,
		"--ipam", "spiderpool", "--ipam-socket", socket, "--data-dir", dataDir).CombinedOutput()
	if err != nil {
		return fmt.Errorf("edgelink cni install: %v\n%s", err, out)
	}
	sp, err := os.ReadFile(testutil.Tool(t, "spiderpool"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(binDir, "spiderpool"), sp, 0o755); err != nil {
		return err
	}
	// containerd's CRI plugin also runs the reference loopback plugin for
	// every sandbox (a node gets it from containernetworking-plugins).
	lo, err := os.ReadFile(testutil.Tool(t, "loopback"))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(binDir, "loopback"), lo, 0o755); err != nil {
		return err
	}
	path := filepath.Join(confDir, "10-edgelink.conflist")
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var conf map[string]any
	if err := json.Unmarshal(b, &conf); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	plugins, _ := conf["plugins"].([]any)
	if len(plugins) == 0 {
		return fmt.Errorf("%s: no plugins", path)
	}
	ipamConf, _ := plugins[0].(map[string]any)["ipam"].(map[string]any)
	if ipamConf == nil {
		return fmt.Errorf("%s: plugins[0] has no ipam", path)
	}
	ipamConf["log_file_path"] = spiderpoolLog
	b, err = json.MarshalIndent(conf, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// cniResults lists libcni's result cache, which containerd's CRI plugin
// keeps in the host's /var/lib/cni/results whatever its config says.
func cniResults() map[string]bool {
	m := map[string]bool{}
	files, _ := filepath.Glob("/var/lib/cni/results/*")
	for _, f := range files {
		m[f] = true
	}
	return m
}

// edgedConfig edits edgecore's config for edged: the node's containerd,
// its own rootDirectory, cgroupRoot and directories, no iptables chains
// (the kubelet's would be the host namespace's business on a real node;
// here they would collide between nodes).
func (e *EdgeNode) edgedConfig(cfg map[string]any) {
	ed := e.edged
	sock := "unix://" + ed.containerd.Socket
	for k, v := range map[string]any{
		"modules.edged.enable":                                         true,
		"modules.edged.nodeIP":                                         e.IP.String(),
		"modules.edged.rootDirectory":                                  ed.rootDir,
		"modules.edged.podSandboxImage":                                PauseImage,
		"modules.edged.tailoredKubeletConfig.containerRuntimeEndpoint": sock,
		"modules.edged.tailoredKubeletConfig.imageServiceEndpoint":     sock,
		"modules.edged.tailoredKubeletConfig.cgroupRoot":               ed.cgroupRoot,
		"modules.edged.tailoredKubeletConfig.cgroupDriver":             "cgroupfs",
		"modules.edged.tailoredKubeletConfig.cgroupsPerQOS":            true,
		"modules.edged.tailoredKubeletConfig.failSwapOn":               false,
		"modules.edged.tailoredKubeletConfig.makeIPTablesUtilChains":   false,
		"modules.edged.tailoredKubeletConfig.podLogsDir":               filepath.Join(e.Dir, "pod-logs"),
		"modules.edged.tailoredKubeletConfig.staticPodPath":            filepath.Join(e.Dir, "manifests"),
		"modules.edged.tailoredKubeletConfig.volumePluginDir":          filepath.Join(e.Dir, "volume-plugins"),
	} {
		setPath(cfg, k, v)
	}
}

// waitNodeReady waits until edged has registered e's Node and reports it
// Ready with InternalIP e.IP.
func (cp *ControlPlane) waitNodeReady(e *EdgeNode, timeout time.Duration) error {
	return waitProc(e.proc, timeout, func(ctx context.Context) error {
		n, err := cp.Client.CoreV1().Nodes().Get(ctx, e.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		ip := ""
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				ip = a.Address
			}
		}
		if ip != e.IP.String() {
			return fmt.Errorf("node %s: InternalIP %q, want %s", e.Name, ip, e.IP)
		}
		for _, c := range n.Status.Conditions {
			if c.Type == corev1.NodeReady {
				if c.Status == corev1.ConditionTrue {
					return nil
				}
				return fmt.Errorf("node %s: Ready %s: %s", e.Name, c.Status, c.Message)
			}
		}
		return fmt.Errorf("node %s: no Ready condition yet", e.Name)
	})
}

// Containerd is the node's containerd (nil for edge nodes without edged).
func (e *EdgeNode) Containerd() *Containerd {
	if e.edged == nil {
		return nil
	}
	return e.edged.containerd
}

// Edged reports whether the node runs edged.
func (e *EdgeNode) Edged() bool { return e.edged != nil }

// edgedArgv is edgecore's command line on an edged node: nsenter into the
// namespace's network only; `ip netns exec` would remount /sys and hide
// /sys/fs/cgroup from the kubelet and runc.
func (cp *ControlPlane) edgedArgv(e *EdgeNode) []string {
	return []string{"nsenter", "--net=" + e.NetNSPath, "--", cp.bins.edgecore, "--config", e.config, "-v=" + fmt.Sprint(cp.opts.Verbosity)}
}

// TaskPID is the PID of container id's task (its main process) in this
// containerd.
func (c *Containerd) TaskPID(ctx context.Context, id string) (int, error) {
	out, err := c.ctr(ctx, "tasks", "ls")
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[0] == id {
			var pid int
			if _, err := fmt.Sscan(f[1], &pid); err != nil {
				return 0, fmt.Errorf("ctr tasks ls: pid %q of %s: %w", f[1], id, err)
			}
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no task %s in ctr tasks ls:\n%s", id, out)
}

// KillTask sends SIGKILL to container id's task (runc kill, through ctr).
func (c *Containerd) KillTask(ctx context.Context, id string) error {
	_, err := c.ctr(ctx, "tasks", "kill", "-s", "SIGKILL", id)
	return err
}

// NSEnterNet runs argv inside the network namespace of process pid (a
// container's), returning its combined output.
func NSEnterNet(ctx context.Context, pid int, argv ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "nsenter", append([]string{fmt.Sprintf("--net=/proc/%d/ns/net", pid), "--"}, argv...)...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}
