package e2e

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
	"time"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/tests/cluster"
	"github.com/edgelink/edgelink/tests/testutil"
)

// Dual-stack pods on two edge nodes in different segments (cloudCIDR
// 10.244.0.0/16 and fd00:244::/32, edgeCIDR 10.245.0.0/16 and
// fd00:245::/32) reach each other through the TUN and the tunnel: ICMP
// over IPv4 and IPv6, 1 GiB of TCP with its content checked, TCP over
// IPv6, UDP; a spoofed
// inner source is dropped; an address no node has gets ICMP unreachable;
// a DF packet over the TUN MTU gets "fragmentation needed" while TCP with
// a larger MSS works (clamped); a policy chain ahead in FORWARD still
// drops the mesh traffic it matches; a node restarted speaking packets
// protocol 1 only (an older release) still gets ping and TCP both ways;
// shutdown leaves no TUN, route or chain.
// Needs root.
func TestDataplanePodToPod(t *testing.T) {
	cp := cluster.Shared(t)
	e1, e2 := cp.AddEdgeNode(t, "dp-edge-1"), cp.AddEdgeNode(t, "dp-edge-2")
	relays := []v1.RelayNode{{NodeName: e1.Name, AdvertiseAddress: []string{e1.IP.String()}}}
	cloud, edge := []string{"10.244.0.0/16", "fd00:244::/32"}, []string{"10.245.0.0/16", "fd00:245::/32"}
	ip1, ip2 := netip.MustParseAddr("10.244.1.2"), netip.MustParseAddr("10.245.1.2")
	ip61, ip62 := netip.MustParseAddr("fd00:244:1::2"), netip.MustParseAddr("fd00:245:1::2")
	pod1, pod2 := addPod(t, cp, e1, "dpa", ip1, ip61), addPod(t, cp, e2, "dpb", ip2, ip62)
	a1 := testutil.NewAgent(t, agentConfig(t, e1, relays, cloud, edge), e1.NetNS)
	a2 := testutil.NewAgent(t, agentConfig(t, e2, relays, cloud, edge), e2.NetNS)
	a1.Start("Data plane up")
	a2.Start("Data plane up")

	took := waitFor(t, 60*time.Second, "pod1 pings pod2", func() error {
		_, err := execIn(pod1, "ping", "-c1", "-W1", ip2.String())
		return err
	})
	t.Logf("pod-to-pod ping works %s after the agents started", took.Round(time.Millisecond))
	if err := directTo(a1, e2.Name); err != nil {
		t.Errorf("path: %v", err)
	}

	t.Run("ICMP both ways", func(t *testing.T) {
		for _, c := range []struct {
			from string
			to   netip.Addr
		}{{pod1, ip2}, {pod2, ip1}} {
			if out, err := execIn(c.from, "ping", "-c3", "-i0.2", "-W2", c.to.String()); err != nil {
				t.Errorf("ping %s: %v\n%s", c.to, err, out)
			}
		}
	})

	t.Run("IPv6", func(t *testing.T) {
		for _, c := range []struct {
			from string
			to   netip.Addr
		}{{pod1, ip62}, {pod2, ip61}} {
			if out, err := execIn(c.from, "ping", "-6", "-c3", "-i0.2", "-W2", c.to.String()); err != nil {
				t.Errorf("ping %s: %v\n%s", c.to, err, out)
			}
		}
		before := dataplaneStatus(t, a2).Stats.RxOffload
		tcpTransfer(t, pod2, pod1, ip62, 64<<20)
		if got := dataplaneStatus(t, a2).Stats.RxOffload - before; got == 0 {
			t.Error("IPv6 TCP did not cross as super-packets")
		}
		out, err := execIn(pod1, "ping", "-6", "-c1", "-W5", "fd00:245:99::9")
		if err == nil || !strings.Contains(out, "nreachable") {
			t.Errorf("ping to an IPv6 address no node has: %v\n%s", err, out)
		}
	})

	t.Run("TCP 1 GiB content checked", func(t *testing.T) {
		before := dataplaneStatus(t, a2).Stats
		defer func() {
			// Pod TCP travels as super-packets, unsplit end to end.
			after := dataplaneStatus(t, a2).Stats
			sent, got := after.TxOffload-before.TxOffload, after.RxOffload-before.RxOffload
			if sent == 0 || got == 0 {
				t.Errorf("edge 2 sent %d and wrote %d super-packets whole during the transfers", sent, got)
			}
			want := uint64(1 << 30) // edge 2 received the 1 GiB
			if testing.Short() {
				want = 64 << 20
			}
			if rx := after.RxBytes - before.RxBytes; rx < want || after.RxPackets-before.RxPackets < got {
				t.Errorf("edge 2 counted %d bytes in %d packets (%d super-packets), want at least %d bytes", rx, after.RxPackets-before.RxPackets, got, want)
			}
			t.Logf("edge 2: %d super-packets sent, %d received of %d packets", sent, got, after.RxPackets-before.RxPackets)
		}()
		for _, c := range []struct {
			srv, cli string
			dst      netip.Addr
		}{{pod2, pod1, ip2}, {pod1, pod2, ip1}} {
			const size = 1 << 30
			if testing.Short() || c.srv == pod1 {
				// the reverse direction moves 64 MiB: the path is the same
				tcpTransfer(t, c.srv, c.cli, c.dst, 64<<20)
				continue
			}
			tcpTransfer(t, c.srv, c.cli, c.dst, size)
		}
	})

	t.Run("UDP both ways", func(t *testing.T) {
		udpExchange(t, pod2, pod1, ip2)
		udpExchange(t, pod1, pod2, ip1)
	})

	t.Run("spoofed inner source dropped", func(t *testing.T) {
		before := dataplaneStatus(t, a2).Stats.DropSpoofed
		// pod1 claims an address no pod of edge 1 has.
		ipIn(t, pod1, "addr", "add", "10.244.7.7/32", "dev", "lo")
		if _, err := execIn(pod1, "ping", "-c2", "-i0.2", "-W1", "-I", "10.244.7.7", ip2.String()); err == nil {
			t.Error("a ping from a spoofed source got an answer")
		}
		waitFor(t, 5*time.Second, "edge 2 counts spoofed packets", func() error {
			if got := dataplaneStatus(t, a2).Stats.DropSpoofed; got <= before {
				return fmt.Errorf("dropSpoofed %d", got)
			}
			return nil
		})
	})

	t.Run("unknown destination gets ICMP unreachable", func(t *testing.T) {
		start := time.Now()
		out, err := execIn(pod1, "ping", "-c1", "-W5", "10.245.99.99")
		if err == nil || !strings.Contains(out, "Unreachable") || time.Since(start) > 3*time.Second {
			t.Errorf("ping to an address no node has: err %v after %s:\n%s", err, time.Since(start), out)
		}
	})

	t.Run("MTU", func(t *testing.T) {
		mtu := dataplaneStatus(t, a1).MTU
		if mtu >= 1500 {
			t.Fatalf("TUN MTU %d", mtu)
		}
		out, err := execIn(pod1, "ping", "-c2", "-i0.3", "-W1", "-M", "do", "-s", "1472", ip2.String())
		if err == nil || !strings.Contains(strings.ToLower(out), fmt.Sprintf("mtu = %d", mtu)) {
			t.Errorf("a 1500-byte DF ping across: want fragmentation needed (mtu = %d), got %v:\n%s", mtu, err, out)
		}
		out, err = execIn(pod1, "ping", "-c1", "-W2", "-M", "do", "-s", fmt.Sprint(mtu-28), ip2.String())
		if err != nil {
			t.Errorf("a DF ping of exactly the TUN MTU: %v\n%s", err, out)
		}
		// The TCP test above ran with the pods' MSS of 1460: clamped.
		rules, _ := exec.Command("ip", "netns", "exec", e1.NetNS, "iptables", "-t", "mangle", "-L", "EDGELINK-MSS", "-v", "-x", "-n").CombinedOutput()
		if !clampedSome(string(rules)) {
			t.Errorf("the MSS clamp matched no SYN:\n%s", rules)
		}
	})

	t.Run("a policy chain in FORWARD still judges mesh traffic", func(t *testing.T) {
		// As Calico's cali-FORWARD or KUBE-FORWARD: a chain jumped to
		// first from FORWARD, dropping what a NetworkPolicy denies.
		ipt := func(args ...string) {
			t.Helper()
			if out, err := exec.Command("ip", append([]string{"netns", "exec", e2.NetNS, "iptables"}, args...)...).CombinedOutput(); err != nil {
				t.Fatalf("iptables %v: %v\n%s", args, err, out)
			}
		}
		ipt("-N", "POLICY-TEST")
		ipt("-A", "POLICY-TEST", "-d", ip2.String(), "-p", "icmp", "--icmp-type", "echo-request", "-j", "DROP")
		ipt("-I", "FORWARD", "1", "-j", "POLICY-TEST")
		t.Cleanup(func() {
			_ = exec.Command("ip", "netns", "exec", e2.NetNS, "iptables", "-D", "FORWARD", "-j", "POLICY-TEST").Run()
			_ = exec.Command("ip", "netns", "exec", e2.NetNS, "iptables", "-F", "POLICY-TEST").Run()
			_ = exec.Command("ip", "netns", "exec", e2.NetNS, "iptables", "-X", "POLICY-TEST").Run()
		})
		// Past one of the agent's 10 s reconciles, which must leave the
		// policy where it is.
		time.Sleep(11 * time.Second)
		if out, err := execIn(pod1, "ping", "-c2", "-i0.2", "-W1", ip2.String()); err == nil {
			rules, _ := exec.Command("ip", "netns", "exec", e2.NetNS, "iptables", "-S", "FORWARD").CombinedOutput()
			t.Errorf("a ping the policy chain drops got through:\n%s\nFORWARD:\n%s", out, rules)
		}
		if _, err := execIn(pod2, "ping", "-c1", "-W2", ip1.String()); err != nil {
			t.Errorf("traffic the policy does not match (to pod1): %v", err)
		}
	})

	t.Run("a peer of an older release (packets protocol 1)", func(t *testing.T) {
		// edge 2 restarted speaking version 1 only: edge 1 cuts its
		// super-packets into IP frames for it, edge 2 sends IP frames.
		a2.Stop()
		a2.Env = []string{"EDGELINK_TEST_PACKETS_VERSION=1"}
		a2.Start("Data plane up")
		t.Cleanup(func() { a2.Env = nil })
		waitFor(t, 60*time.Second, "pod1 pings pod2 again", func() error {
			_, err := execIn(pod1, "ping", "-c1", "-W1", ip2.String())
			return err
		})
		tcpTransfer(t, pod2, pod1, ip2, 64<<20)
		tcpTransfer(t, pod1, pod2, ip1, 64<<20)
		if st := dataplaneStatus(t, a2).Stats; st.RxOffload != 0 || st.BadStreams != 0 {
			t.Errorf("the version-1 node got %d super-packets and closed %d streams as nonsense", st.RxOffload, st.BadStreams)
		}
		if st := dataplaneStatus(t, a1).Stats; st.BadStreams != 0 {
			t.Errorf("edge 1 closed %d packet streams as nonsense", st.BadStreams)
		}
	})

	t.Run("shutdown leaves nothing", func(t *testing.T) {
		a1.Stop()
		for what, args := range map[string][]string{
			"TUN":    {"ip", "link", "show", "edgelink0"},
			"routes": {"sh", "-c", "ip route show proto 77 | grep -q ."},
			"chains": {"sh", "-c", "iptables-save | grep -q EDGELINK"},
		} {
			if out, err := exec.Command("ip", append([]string{"netns", "exec", e1.NetNS}, args...)...).CombinedOutput(); err == nil {
				t.Errorf("%s left behind: %s", what, out)
			}
		}
	})
}

func clampedSome(listing string) bool {
	for _, line := range strings.Split(listing, "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && strings.Contains(line, "TCPMSS") && f[0] != "0" {
			return true
		}
	}
	return false
}

// tcpTransfer sends size pseudo-random bytes from cli to srv's pod at dst
// and checks them by SHA-256.
func tcpTransfer(t *testing.T, srv, cli string, dst netip.Addr, size int64) {
	t.Helper()
	in := func(ns string) func(func() error) error {
		return func(f func() error) error { return inNS(t, ns, f) }
	}
	el, err := testutil.TCPTransfer(in(srv), in(cli), dst, size, 3*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("TCP %d MiB %s->%s intact in %s (%.2f Gbit/s)", size>>20, cli, dst, el.Round(time.Millisecond), float64(size*8)/el.Seconds()/1e9)
}

// udpExchange sends 200 numbered 1200-byte datagrams from cli to srv's
// pod and wants at least 190 intact, each checked.
func udpExchange(t *testing.T, srv, cli string, dst netip.Addr) {
	t.Helper()
	var pc net.PacketConn
	if err := inNS(t, srv, func() (err error) { pc, err = net.ListenPacket("udp", ":5202"); return err }); err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	var c net.Conn
	if err := inNS(t, cli, func() (err error) { c, err = net.Dial("udp", net.JoinHostPort(dst.String(), "5202")); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const n = 200
	payload := func(i int) []byte { return bytes.Repeat([]byte{byte(i)}, 1200) }
	go func() {
		for i := 0; i < n; i++ {
			_, _ = c.Write(payload(i))
			time.Sleep(time.Millisecond)
		}
	}()
	ok := 0
	buf := make([]byte, 2048)
	for ok < n {
		_ = pc.SetReadDeadline(time.Now().Add(2 * time.Second))
		m, _, err := pc.ReadFrom(buf)
		if err != nil {
			break
		}
		if m == 1200 && bytes.Equal(buf[:m], payload(int(buf[0]))) {
			ok++
		}
	}
	if ok < n-10 {
		t.Errorf("UDP %s->%s: %d of %d datagrams arrived intact", cli, dst, ok, n)
	}
}
