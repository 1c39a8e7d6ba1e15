// Package dataplane benchmarks pod-to-pod data paths between two edge nodes:
// throughput, packet rate, latency and the tunnel's CPU cost, every path
// measured in the same run beside two baselines, the kernel's plain routed
// veth path and wireguard-go. TestBenchDataplane (dataplane_test.go) runs it
// under `make bench` (EDGELINK_BENCH=1); docs/development.md describes it.
//
// A path is a Case (cases.go). Each run of each case gets a fresh Env: two
// node namespaces joined by a veth underlay, and one pod namespace per node
// joined to its node by a veth pair, with no route yet between the pod
// CIDRs. The case's Setup connects them.
package dataplane

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgelink/edgelink/tests/testutil"
)

// NetnsPrefix starts the `ip netns` name of every namespace this benchmark
// makes: <prefix><pid>-<seq>-<role>. Stale ones (their process gone) are
// swept at start, the process's own on SIGINT/SIGTERM.
const NetnsPrefix = "elbench-dp-"

// Env is one freshly built two-node topology:
//
//	PodA eth0 10.244.1.2/24 --veth-- NodeA vpod 10.244.1.1/24
//	NodeA ul0 198.18.50.1/24 --veth underlay-- NodeB ul0 198.18.50.2/24
//	NodeB vpod 10.244.2.1/24 --veth-- PodB eth0 10.244.2.2/24
//
// Pods route everything via their gateway; nodes forward (ip_forward=1) but
// have no route to the remote pod CIDR: that is the case's job.
type Env struct {
	// T is the subtest of this case's run: TempDir, Logf, Cleanup (run
	// when the run ends, before the namespaces are deleted).
	T testing.TB
	// ID is unique per Env in this machine (pid and sequence), for names
	// outside the namespaces: sockets, files.
	ID string

	NodeA, NodeB, PodA, PodB string // `ip netns` names

	UnderlayDev          string       // "ul0" in both nodes
	UnderlayA, UnderlayB netip.Addr   // 198.18.50.1, 198.18.50.2
	Underlay             netip.Prefix // 198.18.50.0/24
	PodHostDev           string       // "vpod": a node's end of its pod's veth
	PodDev               string       // "eth0": the pod's end
	PodAIP, PodBIP       netip.Addr   // 10.244.1.2, 10.244.2.2
	PodGWA, PodGWB       netip.Addr   // 10.244.1.1 (on NodeA), 10.244.2.1 (on NodeB)
	PodCIDRA, PodCIDRB   netip.Prefix // 10.244.1.0/24, 10.244.2.0/24
	MTU                  int          // of the underlay and pod veths: 1500

	// WorkDir is a private directory removed when the run ends.
	WorkDir string
}

var envSeq atomic.Int64

// NewEnv builds the topology; t.Cleanup tears it down (processes left in
// its namespaces are killed first).
func NewEnv(ctx context.Context, t testing.TB) (*Env, error) {
	seq := envSeq.Add(1)
	base := fmt.Sprintf("%s%d-%d-", NetnsPrefix, os.Getpid(), seq)
	e := &Env{
		T:           t,
		ID:          fmt.Sprintf("%d-%d", os.Getpid(), seq),
		NodeA:       base + "nodeA",
		NodeB:       base + "nodeB",
		PodA:        base + "podA",
		PodB:        base + "podB",
		UnderlayDev: "ul0",
		UnderlayA:   netip.MustParseAddr("198.18.50.1"),
		UnderlayB:   netip.MustParseAddr("198.18.50.2"),
		Underlay:    netip.MustParsePrefix("198.18.50.0/24"),
		PodHostDev:  "vpod",
		PodDev:      "eth0",
		PodAIP:      netip.MustParseAddr("10.244.1.2"),
		PodBIP:      netip.MustParseAddr("10.244.2.2"),
		PodGWA:      netip.MustParseAddr("10.244.1.1"),
		PodGWB:      netip.MustParseAddr("10.244.2.1"),
		PodCIDRA:    netip.MustParsePrefix("10.244.1.0/24"),
		PodCIDRB:    netip.MustParsePrefix("10.244.2.0/24"),
		MTU:         1500,
		WorkDir:     t.TempDir(),
	}
	namespaces := []string{e.NodeA, e.NodeB, e.PodA, e.PodB}
	t.Cleanup(func() {
		for _, n := range namespaces {
			removeNetns(n)
		}
	})
	ul := e.UnderlayDev
	steps := [][]string{}
	for _, n := range namespaces {
		steps = append(steps, []string{"netns", "add", n}, []string{"-n", n, "link", "set", "lo", "up"})
	}
	mtu := strconv.Itoa(e.MTU)
	steps = append(steps,
		[]string{"link", "add", ul, "netns", e.NodeA, "mtu", mtu, "type", "veth", "peer", "name", ul, "netns", e.NodeB, "mtu", mtu},
		[]string{"-n", e.NodeA, "addr", "add", e.UnderlayA.String() + "/24", "dev", ul},
		[]string{"-n", e.NodeB, "addr", "add", e.UnderlayB.String() + "/24", "dev", ul},
		[]string{"-n", e.NodeA, "link", "set", ul, "up"},
		[]string{"-n", e.NodeB, "link", "set", ul, "up"},
	)
	for _, p := range []struct {
		node, pod string
		ip, gw    netip.Addr
	}{{e.NodeA, e.PodA, e.PodAIP, e.PodGWA}, {e.NodeB, e.PodB, e.PodBIP, e.PodGWB}} {
		steps = append(steps,
			[]string{"link", "add", e.PodDev, "netns", p.pod, "mtu", mtu, "type", "veth", "peer", "name", e.PodHostDev, "netns", p.node, "mtu", mtu},
			[]string{"-n", p.node, "addr", "add", p.gw.String() + "/24", "dev", e.PodHostDev},
			[]string{"-n", p.node, "link", "set", e.PodHostDev, "up"},
			[]string{"-n", p.pod, "addr", "add", p.ip.String() + "/24", "dev", e.PodDev},
			[]string{"-n", p.pod, "link", "set", e.PodDev, "up"},
			[]string{"-n", p.pod, "route", "add", "default", "via", p.gw.String()},
		)
	}
	for _, args := range steps {
		if err := e.IP(ctx, args...); err != nil {
			return nil, err
		}
	}
	for _, n := range []string{e.NodeA, e.NodeB} {
		if _, err := e.Exec(ctx, n, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"); err != nil {
			return nil, err
		}
	}
	return e, nil
}

// IP runs `ip args...` (use "-n", netns to act inside a namespace).
func (e *Env) IP(ctx context.Context, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Exec runs a command to completion inside netns and returns its stdout;
// the error carries stderr. ctx bounds it.
func (e *Env) Exec(ctx context.Context, netns, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", netns, name}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("in %s: %s %s: %v: %s", netns, name, strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return stdout.String(), nil
}

// Proc is a long-running process started in a namespace. `ip netns exec`
// execs the command, so PID is the command's own (for /proc/PID/stat).
type Proc struct {
	Name string
	cmd  *exec.Cmd
	log  *testutil.SyncBuffer
	done chan struct{}
	once sync.Once
}

// Start runs name inside netns with extra environment variables; its
// output is kept (Log). The process is stopped when the run ends at the
// latest.
func (e *Env) Start(netns string, env []string, name string, args ...string) (*Proc, error) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", netns, name}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	p := &Proc{Name: filepath.Base(name), cmd: cmd, log: &testutil.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	e.T.Cleanup(func() { p.Stop(3 * time.Second) })
	return p, nil
}

// PID is the process ID.
func (p *Proc) PID() int { return p.cmd.Process.Pid }

// Log is everything the process printed so far.
func (p *Proc) Log() string { return p.log.String() }

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// WaitLog waits until the output contains s, the process exits, or ctx
// ends.
func (p *Proc) WaitLog(ctx context.Context, s string) error {
	for !strings.Contains(p.Log(), s) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited (%v) before printing %q: %s", p.Name, p.cmd.ProcessState, s, p.Log())
		case <-ctx.Done():
			return fmt.Errorf("%s did not print %q: %v: %s", p.Name, s, ctx.Err(), p.Log())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// Wait waits for the process to exit on its own, up to d; false if it did
// not.
func (p *Proc) Wait(d time.Duration) bool {
	select {
	case <-p.done:
		return true
	case <-time.After(d):
		return false
	}
}

// StopAll stops every process of ps (Stop, each with grace).
func StopAll(ps []*Proc, grace time.Duration) {
	for _, p := range ps {
		p.Stop(grace)
	}
}

// Stop sends SIGTERM, then SIGKILL after grace, and waits for the exit.
// Safe to call more than once.
func (p *Proc) Stop(grace time.Duration) {
	p.once.Do(func() {
		if p.Exited() {
			return
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		if !p.Wait(grace) {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
}

// removeNetns kills every process still inside the namespace (by PID,
// listed by `ip netns pids`), then deletes it.
func removeNetns(name string) {
	if _, err := os.Stat(filepath.Join("/run/netns", name)); err != nil {
		return
	}
	for i := 0; i < 20; i++ {
		out, _ := exec.Command("ip", "netns", "pids", name).Output()
		pids := strings.Fields(string(out))
		if len(pids) == 0 {
			break
		}
		for _, s := range pids {
			if pid, err := strconv.Atoi(s); err == nil && pid > 1 && pid != os.Getpid() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = exec.Command("ip", "netns", "del", name).Run()
}

// Sweep removes this benchmark's namespaces left by processes that no
// longer run (a killed earlier run), or, with own, this process's own (on
// an interrupt), and wireguard-go sockets of the same owners.
func Sweep(own bool) {
	entries, _ := os.ReadDir("/run/netns")
	for _, ent := range entries {
		name := ent.Name()
		if !strings.HasPrefix(name, NetnsPrefix) {
			continue
		}
		pid, _ := strconv.Atoi(strings.SplitN(strings.TrimPrefix(name, NetnsPrefix), "-", 2)[0])
		if sweepable(pid, own) {
			removeNetns(name)
		}
	}
	socks, _ := filepath.Glob(filepath.Join(wgSocketDir, wgIfacePrefix+"*.sock"))
	removed := false
	for _, s := range socks {
		rest := strings.TrimPrefix(filepath.Base(s), wgIfacePrefix)
		if i := strings.IndexAny(rest, "ab"); i > 0 {
			if pid, err := strconv.Atoi(rest[:i]); err == nil && sweepable(pid, own) {
				removed = os.Remove(s) == nil || removed
			}
		}
	}
	if removed {
		_ = os.Remove(wgSocketDir) // only if empty
	}
}

func sweepable(pid int, own bool) bool {
	if pid <= 0 {
		return false
	}
	if pid == os.Getpid() {
		return own
	}
	return syscall.Kill(pid, 0) == syscall.ESRCH
}
