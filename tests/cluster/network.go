package cluster

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// The cloud-edge network of one control plane: a bridge on the host with a
// /24 out of 198.18.0.0/15 (RFC 2544 benchmarking space, never routed off
// this machine), cloudcore bound to the bridge address, and one network
// namespace per edge node with a veth onto the bridge. The bridge has no
// uplink and the namespaces have no default route.
//
// Every name carries the control plane's random suffix: bridge "elbr<sfx>",
// veths "elv<sfx><n>", namespaces "el<sfx>-<node>". Each control plane
// writes an owner record to stateDir; the next Start in any test binary
// removes leftovers of owners that died without cleanup.

const stateDir = "/run/edgelink-cluster"

type network struct {
	suffix string
	bridge string
	subnet *net.IPNet
	gw     net.IP // the bridge address; cloudcore listens here
	owner  string // path of the owner record
}

func randSuffix(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	for i := range b {
		k, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
		if err != nil {
			panic(err)
		}
		b[i] = alphabet[k.Int64()]
	}
	return string(b)
}

func ipcmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// lockState takes the host-wide lock that serializes subnet choice,
// bridge creation and the sweep of stale resources.
func lockState() (unlock func(), err error) {
	if err := os.MkdirAll(stateDir, 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(stateDir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

// procStart is field 22 of /proc/<pid>/stat (start time in clock ticks),
// which tells a live owner from a recycled PID.
func procStart(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// newNetwork sweeps leftovers of dead owners, picks a free /24 and creates
// the bridge. runDir is recorded so a sweep can remove it too.
func newNetwork(runDir string) (*network, error) {
	unlock, err := lockState()
	if err != nil {
		return nil, err
	}
	defer unlock()
	sweepStale()

	n := &network{suffix: randSuffix(5)}
	n.bridge = "elbr" + n.suffix
	n.owner = filepath.Join(stateDir, n.suffix+".owner")
	pid := os.Getpid()
	if err := os.WriteFile(n.owner, fmt.Appendf(nil, "%d %s %s\n", pid, procStart(pid), runDir), 0o644); err != nil {
		return nil, err
	}
	used := usedV4Nets()
	for range 1000 {
		k, err := rand.Int(rand.Reader, big.NewInt(512))
		if err != nil {
			return nil, err
		}
		v := int(k.Int64())
		ip := net.IPv4(198, byte(18+v/256), byte(v%256), 0).To4()
		cand := &net.IPNet{IP: ip, Mask: net.CIDRMask(24, 32)}
		if v%256 == 0 || overlapsAny(cand, used) {
			continue
		}
		n.subnet = cand
		break
	}
	if n.subnet == nil {
		os.Remove(n.owner)
		return nil, errors.New("no free /24 in 198.18.0.0/15")
	}
	n.gw = n.addr(1)
	if err := ipcmd("link", "add", n.bridge, "type", "bridge"); err != nil {
		os.Remove(n.owner)
		return nil, err
	}
	for _, args := range [][]string{
		{"addr", "add", n.gw.String() + "/24", "dev", n.bridge},
		{"link", "set", n.bridge, "up"},
	} {
		if err := ipcmd(args...); err != nil {
			n.close()
			return nil, err
		}
	}
	return n, nil
}

// addr is host number i in the subnet.
func (n *network) addr(i int) net.IP {
	ip := make(net.IP, 4)
	copy(ip, n.subnet.IP.To4())
	ip[3] = byte(i)
	return ip
}

func (n *network) nsName(node string) string { return "el" + n.suffix + "-" + node }
func (n *network) vethName(i int) string     { return "elv" + n.suffix + strconv.Itoa(i) }

// addEdge creates namespace nsName with eth0 = ip/24 on the bridge (through
// host-side veth), and lo up.
func (n *network) addEdge(nsName, veth string, ip net.IP) error {
	if err := ipcmd("netns", "add", nsName); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", nsName},
		{"link", "set", veth, "master", n.bridge, "up"},
		{"-n", nsName, "addr", "add", ip.String() + "/24", "dev", "eth0"},
		{"-n", nsName, "link", "set", "lo", "up"},
		{"-n", nsName, "link", "set", "eth0", "up"},
	} {
		if err := ipcmd(args...); err != nil {
			n.delEdge(nsName, veth)
			return err
		}
	}
	return nil
}

func (n *network) delEdge(nsName, veth string) {
	_ = ipcmd("netns", "del", nsName) // takes eth0 and with it the veth peer
	if _, err := net.InterfaceByName(veth); err == nil {
		_ = ipcmd("link", "del", veth)
	}
}

// close removes what is left of the network: edge namespaces and veths
// of this suffix, the bridge, the owner record.
func (n *network) close() {
	removeBySuffix(n.suffix)
	os.Remove(n.owner)
}

func removeBySuffix(sfx string) {
	if ents, err := os.ReadDir("/var/run/netns"); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "el"+sfx+"-") {
				_ = ipcmd("netns", "del", e.Name())
			}
		}
	}
	if ifs, err := net.Interfaces(); err == nil {
		for _, i := range ifs {
			if strings.HasPrefix(i.Name, "elv"+sfx) || i.Name == "elbr"+sfx {
				_ = ipcmd("link", "del", i.Name)
			}
		}
	}
}

// sweepStale removes the network and run directory of every owner record
// whose process is gone (killed test binaries; their children died with
// them through PDEATHSIG). Called with the state lock held.
func sweepStale() {
	ents, err := os.ReadDir(stateDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		sfx, ok := strings.CutSuffix(e.Name(), ".owner")
		if !ok {
			continue
		}
		path := filepath.Join(stateDir, e.Name())
		b, err := os.ReadFile(path)
		if err != nil {
			continue
		}
		f := strings.Fields(string(b))
		if len(f) < 3 {
			continue
		}
		pid, _ := strconv.Atoi(f[0])
		if pid > 0 && procStart(pid) == f[1] {
			continue // owner alive
		}
		removeBySuffix(sfx)
		sweepEdged(sfx)
		if strings.HasPrefix(filepath.Base(f[2]), "edgelink-cluster-") {
			unmountUnder(f[2]) // kubelet rootDirectories, containerd's rootfs mounts
			_ = os.RemoveAll(f[2])
		}
		os.Remove(path)
	}
}

// usedV4Nets lists the IPv4 networks of host addresses and routes.
func usedV4Nets() []*net.IPNet {
	var nets []*net.IPNet
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if in, ok := a.(*net.IPNet); ok && in.IP.To4() != nil {
				nets = append(nets, &net.IPNet{IP: in.IP.Mask(in.Mask), Mask: in.Mask})
			}
		}
	}
	if out, err := exec.Command("ip", "-4", "route", "show", "table", "all").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			dst := f[0]
			if dst == "local" || dst == "broadcast" || dst == "unicast" {
				if len(f) < 2 {
					continue
				}
				dst = f[1]
			}
			if dst == "default" {
				continue
			}
			if !strings.Contains(dst, "/") {
				dst += "/32"
			}
			if _, in, err := net.ParseCIDR(dst); err == nil {
				nets = append(nets, in)
			}
		}
	}
	return nets
}

func overlapsAny(a *net.IPNet, nets []*net.IPNet) bool {
	for _, b := range nets {
		if a.Contains(b.IP) || b.Contains(a.IP) {
			return true
		}
	}
	return false
}

// sweepEdged removes the cgroupRoots of a dead owner's edged nodes
// (named for their namespaces, "el<sfx>-<node>"); their tasks died with
// the shims' containerd or are killed here first.
func sweepEdged(sfx string) {
	roots, _ := filepath.Glob(filepath.Join(cgroupFS, "pids", "el"+sfx+"-*"))
	for _, r := range roots {
		top := "/" + filepath.Base(r)
		_ = filepath.WalkDir(r, func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			procs, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(procs)) {
				if pid, err := strconv.Atoi(f); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
			return nil
		})
		_ = removeCgroupRoot(top)
	}
}
