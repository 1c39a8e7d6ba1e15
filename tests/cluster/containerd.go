package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Containerd is one containerd for one edge node that runs edged: its own
// root, state and socket under dir, started inside the node's network
// namespace so that the pods' CNI calls (edgelink-cni) run there. It is
// started with nsenter, not `ip netns exec`: the latter remounts /sys and
// hides /sys/fs/cgroup from runc and the kubelet.
type Containerd struct {
	Dir        string // root, state, config and socket
	Socket     string // CRI and ctr endpoint: unix://<Socket>
	CNIBinDir  string // where the CRI plugin looks for CNI plugins
	CNIConfDir string // where it reads the conflist

	proc   *proc
	config string
}

// ContainerdOptions says where a node's containerd finds its CNI.
type ContainerdOptions struct {
	NetNSPath  string // /var/run/netns/<node>; "" runs in the host namespace
	CNIBinDir  string // edgelink-cni and the IPAM plugin
	CNIConfDir string // the conflist `edgelink cni install` writes
	Log        string // log file
}

// containerdConfig is containerd 1.6's config (version 2) for one node:
// nothing shared with another containerd on the machine (the sandboxes'
// network namespaces are mounted under its state directory, not the
// host's /var/run/netns), no AppArmor (profiles are per host),
// oom_score_adj not forced below the parent's, runc with cgroupfs (edged's
// driver), and the test pause image.
func containerdConfig(dir, socket string, o ContainerdOptions) string {
	return fmt.Sprintf(`version = 2
root = %q
state = %q

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  address = %q

[metrics]
  address = ""

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  disable_apparmor = true
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), socket, socket+".ttrpc", socket+".debug",
		PauseImage, o.CNIBinDir, o.CNIConfDir)
}

// StartContainerd writes the config into dir, starts containerd and waits
// until ctr answers on its socket. In t.Cleanup it removes every pod
// sandbox it still runs, stops, and unmounts what it left under dir.
func StartContainerd(t testing.TB, dir string, o ContainerdOptions) *Containerd {
	t.Helper()
	for _, b := range []string{"containerd", "ctr", "runc", "containerd-shim-runc-v2"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("%s not installed (apt-get install --no-install-recommends containerd runc)", b)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// A unix socket path is limited to 108 bytes; t.TempDir paths can be long.
	c := &Containerd{Dir: dir, Socket: filepath.Join(dir, "c.sock"), CNIBinDir: o.CNIBinDir, CNIConfDir: o.CNIConfDir, config: filepath.Join(dir, "config.toml")}
	if len(c.Socket) > 100 {
		t.Fatalf("containerd socket path %s is too long for a unix socket", c.Socket)
	}
	if err := os.WriteFile(c.config, []byte(containerdConfig(dir, c.Socket, o)), 0o600); err != nil {
		t.Fatal(err)
	}
	log := o.Log
	if log == "" {
		log = filepath.Join(dir, "containerd.log")
	}
	c.proc = &proc{name: "containerd/" + filepath.Base(dir), log: log, argv: func() []string {
		argv := []string{"containerd", "--config", c.config}
		if o.NetNSPath != "" {
			argv = append([]string{"nsenter", "--net=" + o.NetNSPath, "--"}, argv...)
		}
		return argv
	}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("---- tail of %s ----\n%s", c.proc.log, c.proc.tail(30))
		}
		c.Stop()
	})
	if err := c.proc.start(); err != nil {
		t.Fatal(err)
	}
	if err := waitProc(c.proc, 30*time.Second, func(ctx context.Context) error {
		_, err := c.ctr(ctx, "version")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return c
}

// ctr runs ctr against this containerd in the CRI's namespace (k8s.io).
func (c *Containerd) ctr(ctx context.Context, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "ctr", append([]string{"--address", c.Socket, "-n", "k8s.io"}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ctr %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Stop kills every task this containerd runs (the pods' shims would
// otherwise outlive it), stops it and unmounts the rootfs and sandbox
// mounts it left under Dir.
func (c *Containerd) Stop() {
	if c.proc.running() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if out, err := c.ctr(ctx, "tasks", "ls", "-q"); err == nil {
			for _, id := range strings.Fields(out) {
				_, _ = c.ctr(ctx, "tasks", "kill", "-s", "SIGKILL", id)
				_, _ = c.ctr(ctx, "tasks", "delete", "-f", id)
			}
		}
		cancel()
	}
	c.proc.stop(10 * time.Second)
	// rootfs mounts, and the network namespaces of sandboxes nobody
	// stopped (their pods were never deleted)
	unmountUnder(c.Dir)
}

// unmountUnder lazily unmounts every mount point at or below dir, deepest
// first, as /proc/self/mountinfo lists them.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var mps []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			mps = append(mps, f[4])
		}
	}
	for i := len(mps) - 1; i >= 0; i-- {
		_ = exec.Command("umount", "-l", mps[i]).Run()
	}
}
