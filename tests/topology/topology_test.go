package topology

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgelink/edgelink/tests/testutil"
)

var fullSpec = Spec{
	Public: []string{"relay-1", "relay-2", "cloud-1"},
	Sites: []SiteSpec{
		{Name: "A", NAT: HolePunchable, Hosts: []string{"a1", "a2"}},
		{Name: "C", NAT: HolePunchable, Hosts: []string{"c1"}},
		{Name: "B", NAT: Symmetric, Hosts: []string{"b1"}},
	},
}

const failTimeout = time.Second // how long an expected failure is given

// TestTopology builds the full topology once and checks, in order, that it
// is what the package documents; after it, no namespace of it is left.
func TestTopology(t *testing.T) {
	testutil.RequireRoot(t)
	var (
		names []string
		id    string
	)
	t.Run("scenario", func(t *testing.T) {
		start := time.Now()
		tp := New(t, fullSpec)
		t.Logf("New built %d namespaces in %v", len(tp.Namespaces()), time.Since(start))
		names, id = tp.Namespaces(), tp.ID()
		for _, n := range names {
			if _, err := os.Stat(filepath.Join(nsRunDir, n)); err != nil {
				t.Fatalf("namespace %s missing: %v", n, err)
			}
		}

		obs := map[string]netip.AddrPort{} // TCP "who am I" servers on public hosts
		refl := map[string]netip.AddrPort{}
		for _, name := range fullSpec.Public {
			obs[name] = startObserver(t, tp.Host(name))
			refl[name] = startReflector(t, tp.Host(name))
		}

		t.Run("connectivity", func(t *testing.T) { testConnectivity(t, tp, obs) })
		t.Run("unsolicited", func(t *testing.T) { testUnsolicited(t, tp, refl) })
		t.Run("mapping", func(t *testing.T) { testMapping(t, tp, refl) })
		t.Run("holepunch", func(t *testing.T) { testHolePunch(t, tp, refl["cloud-1"]) })
		t.Run("cutuplink", func(t *testing.T) { testCutUplink(t, tp, obs) })
		t.Run("block", func(t *testing.T) { testBlock(t, tp, refl["cloud-1"]) })
	})
	checkGone(t, id, names)
}

func testConnectivity(t *testing.T, tp *Topology, obs map[string]netip.AddrPort) {
	for _, sh := range []string{"a1", "a2", "c1", "b1"} {
		h := tp.Host(sh)
		for _, ph := range fullSpec.Public {
			p := tp.Host(ph)
			if err := h.Ping(p.IP); err != nil {
				t.Errorf("%s ping %s: %v", h, p, err)
			}
			// NAT: the public host sees the site's router WAN address.
			src, err := observedSource(h, obs[ph])
			if err != nil {
				t.Errorf("%s TCP to %s: %v", h, p, err)
				continue
			}
			if src.Addr() != tp.Router(h.Site).IP || src.Addr() != h.PublicIP {
				t.Errorf("%s -> %s seen from %v, want the router WAN address %v", h, p, src, h.PublicIP)
			}
		}
	}
	// Public hosts reach each other and the routers' WAN addresses are on
	// the same segment.
	for _, ph := range fullSpec.Public {
		for _, other := range fullSpec.Public {
			if ph != other {
				if err := tp.Host(ph).Ping(tp.Host(other).IP); err != nil {
					t.Errorf("%s ping %s: %v", ph, other, err)
				}
			}
		}
	}
	// a1 <-> a2 directly on the LAN, no NAT in between.
	a1, a2 := tp.Host("a1"), tp.Host("a2")
	for _, pair := range [][2]*Host{{a1, a2}, {a2, a1}} {
		from, to := pair[0], pair[1]
		if err := from.Ping(to.IP); err != nil {
			t.Errorf("%s ping %s: %v", from, to, err)
		}
		o := startObserver(t, to)
		src, err := observedSource(from, o)
		if err != nil {
			t.Errorf("%s TCP to %s: %v", from, to, err)
		} else if src.Addr() != from.IP {
			t.Errorf("%s -> %s seen from %v, want %v (no NAT on the LAN)", from, to, src, from.IP)
		}
	}
	// Loopback is up everywhere.
	for _, h := range append(tp.Hosts(), tp.Router("A")) {
		if err := h.Ping(netip.MustParseAddr("127.0.0.1")); err != nil {
			t.Errorf("%s ping 127.0.0.1: %v", h, err)
		}
	}
}

func testUnsolicited(t *testing.T, tp *Topology, refl map[string]netip.AddrPort) {
	cloud, a1, a2, rA := tp.Host("cloud-1"), tp.Host("a1"), tp.Host("a2"), tp.Router("A")

	// A service on the router itself: reachable from the LAN, not from the WAN.
	rl, err := rA.ListenTCP("0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	defer rl.Close()
	go acceptAndClose(rl)
	port := uint16(rl.Addr().(*net.TCPAddr).Port)
	if c, err := a1.DialTCP(netip.AddrPortFrom(rA.LANIP, port).String(), 2*time.Second); err != nil {
		t.Errorf("control: a1 -> router LAN address: %v", err)
	} else {
		c.Close()
	}
	if c, err := cloud.DialTCP(netip.AddrPortFrom(rA.IP, port).String(), failTimeout); err == nil {
		c.Close()
		t.Errorf("cloud-1 connected to router A's WAN address unsolicited")
	}
	if err := cloud.Ping(rA.IP); err == nil {
		t.Errorf("cloud-1 pinged router A's WAN address unsolicited")
	}

	// A service on a1, even with a route to the LAN through the router.
	al, err := a1.ListenTCP("")
	if err != nil {
		t.Fatal(err)
	}
	defer al.Close()
	go acceptAndClose(al)
	aAddr := al.Addr().String()
	if c, err := a2.DialTCP(aAddr, 2*time.Second); err != nil {
		t.Errorf("control: a2 -> a1: %v", err)
	} else {
		c.Close()
	}
	if c, err := cloud.DialTCP(aAddr, failTimeout); err == nil {
		c.Close()
		t.Errorf("cloud-1 reached a1's private address without a route")
	}
	lan := a1.Prefix.String()
	if _, err := cloud.Exec("ip", "route", "add", lan, "via", rA.IP.String()); err != nil {
		t.Fatal(err)
	}
	defer cloud.Exec("ip", "route", "del", lan, "via", rA.IP.String())
	if c, err := cloud.DialTCP(aAddr, failTimeout); err == nil {
		c.Close()
		t.Errorf("cloud-1 reached a1 through router A (route via WAN): FORWARD drop missing")
	}
	if err := cloud.Ping(a1.IP); err == nil {
		t.Errorf("cloud-1 pinged a1 through router A")
	}

	// UDP: a mapping a1 opened towards relay-1 does not let cloud-1 in.
	u, err := a1.ListenUDP("")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	m, err := mappedAddr(u, refl["relay-1"])
	if err != nil {
		t.Fatalf("a1 via relay-1 reflector: %v", err)
	}
	cu, err := cloud.ListenUDP("")
	if err != nil {
		t.Fatal(err)
	}
	defer cu.Close()
	for range 3 {
		if _, err := cu.WriteToUDPAddrPort([]byte("unsolicited"), m); err != nil {
			t.Fatal(err)
		}
	}
	if got, from, ok := readUDP(u, 500*time.Millisecond); ok {
		t.Errorf("a1 received %q from %v through a mapping opened towards relay-1", got, from)
	}
}

func testMapping(t *testing.T, tp *Topology, refl map[string]netip.AddrPort) {
	for _, name := range []string{"a1", "b1"} {
		h := tp.Host(name)
		u, err := h.ListenUDP("")
		if err != nil {
			t.Fatal(err)
		}
		local := uint16(u.LocalAddr().(*net.UDPAddr).Port)
		ports := map[uint16]bool{}
		var seen []string
		for _, p := range fullSpec.Public {
			m, err := mappedAddr(u, refl[p])
			if err != nil {
				t.Fatalf("%s via %s reflector: %v", h, p, err)
			}
			if m.Addr() != h.PublicIP {
				t.Errorf("%s mapped to %v, want address %v", h, m, h.PublicIP)
			}
			ports[m.Port()] = true
			seen = append(seen, fmt.Sprintf("%s:%v", p, m))
		}
		u.Close()
		t.Logf("%s (%v) local port %d, mapped %s", h, tp.Router(h.Site).Name, local, strings.Join(seen, " "))
		switch name {
		case "a1": // MASQUERADE keeps a free source port, for every destination
			if len(ports) != 1 || !ports[local] {
				t.Errorf("HolePunchable: %s mapped ports %v, want only the local port %d", h, ports, local)
			}
		case "b1": // --random-fully: a new port per destination
			if len(ports) < 2 {
				t.Errorf("Symmetric: %s got the same mapped port %v for %d destinations", h, ports, len(fullSpec.Public))
			}
		}
	}
}

func testHolePunch(t *testing.T, tp *Topology, refl netip.AddrPort) {
	a1, c1, b1 := tp.Host("a1"), tp.Host("c1"), tp.Host("b1")
	start := time.Now()
	ra := punch(t, a1, c1, refl, 3*time.Second)
	if !ra.xGot || !ra.yGot {
		t.Errorf("hole punching a1 <-> c1 failed: %v", ra)
	} else {
		t.Logf("a1 <-> c1 punched in %v (%v)", time.Since(start), ra)
	}
	// Symmetric NAT: must fail every time.
	const tries = 3
	for i := range tries {
		r := punch(t, b1, a1, refl, failTimeout)
		t.Logf("b1 <-> a1 attempt %d: %v", i+1, r)
		if r.xGot || r.yGot {
			t.Errorf("hole punching through the symmetric NAT got through on attempt %d: %v", i+1, r)
		}
	}
}

func testCutUplink(t *testing.T, tp *Topology, obs map[string]netip.AddrPort) {
	a1, a2, c1, relay := tp.Host("a1"), tp.Host("a2"), tp.Host("c1"), tp.Host("relay-1")

	// An established flow across the uplink.
	el, err := relay.ListenTCP("")
	if err != nil {
		t.Fatal(err)
	}
	defer el.Close()
	go echoServer(el)
	conn, err := a1.DialTCP(el.Addr().String(), 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := echo(conn, "before", 2*time.Second); err != nil {
		t.Fatalf("echo before the cut: %v", err)
	}
	if err := a1.Ping(relay.IP); err != nil {
		t.Fatalf("control: %v", err)
	}

	restore := tp.CutUplink("A")
	if err := echo(conn, "during", 300*time.Millisecond); err == nil {
		t.Errorf("established flow still works with the uplink cut")
	}
	if err := a1.Ping(relay.IP); err == nil {
		t.Errorf("a1 pings relay-1 with the uplink cut")
	}
	if _, err := observedSourceTimeout(a2, obs["relay-1"], failTimeout); err == nil {
		t.Errorf("a2 connects to relay-1 with the uplink cut")
	}
	if err := a1.Ping(a2.IP); err != nil {
		t.Errorf("the LAN broke with the uplink: %v", err)
	}
	if err := c1.Ping(relay.IP); err != nil {
		t.Errorf("site C lost the public segment too: %v", err)
	}
	restore()
	restore() // harmless

	if err := a1.Ping(relay.IP); err != nil {
		t.Errorf("after restore: %v", err)
	}
	if _, err := observedSource(a2, obs["relay-1"]); err != nil {
		t.Errorf("after restore: a2 TCP to relay-1: %v", err)
	}
	// The established flow survives (conntrack kept it); the data written
	// during the cut arrives with TCP's next retransmission.
	if err := readEcho(conn, "during", 10*time.Second); err != nil {
		t.Errorf("established flow after restore: %v", err)
	}
}

func testBlock(t *testing.T, tp *Topology, refl netip.AddrPort) {
	a1, a2, c1 := tp.Host("a1"), tp.Host("a2"), tp.Host("c1")
	relay1, relay2 := tp.Host("relay-1"), tp.Host("relay-2")

	// Direct path between two sites cut, relays still reachable.
	restore := tp.Block(a1, c1)
	if r := punch(t, a1, c1, refl, failTimeout); r.xGot || r.yGot {
		t.Errorf("a1 <-> c1 punched through Block: %v", r)
	}
	for _, h := range []*Host{a1, c1} {
		if err := h.Ping(relay1.IP); err != nil {
			t.Errorf("Block(a1, c1) cut %s from relay-1: %v", h, err)
		}
	}
	restore()
	if r := punch(t, a1, c1, refl, 3*time.Second); !r.xGot || !r.yGot {
		t.Errorf("a1 <-> c1 after Block restore: %v", r)
	}

	// A public host and a site: the whole site loses that host only.
	restore = tp.Block(relay1, a1)
	if err := a1.Ping(relay1.IP); err == nil {
		t.Errorf("a1 pings relay-1 through Block")
	}
	if err := a2.Ping(relay1.IP); err == nil {
		t.Errorf("a2 (same router) pings relay-1 through Block")
	}
	if err := a1.Ping(relay2.IP); err != nil {
		t.Errorf("Block(relay-1, a1) cut a1 from relay-2: %v", err)
	}
	if err := c1.Ping(relay1.IP); err != nil {
		t.Errorf("Block(relay-1, a1) cut c1 from relay-1: %v", err)
	}
	restore()
	if err := a1.Ping(relay1.IP); err != nil {
		t.Errorf("after restore: %v", err)
	}

	// Two hosts of one site: their LAN path.
	restore = tp.Block(a1, a2)
	if err := a1.Ping(a2.IP); err == nil {
		t.Errorf("a1 pings a2 through Block")
	}
	if err := a1.Ping(relay1.IP); err != nil {
		t.Errorf("Block(a1, a2) cut a1 from relay-1: %v", err)
	}
	restore()
	if err := a1.Ping(a2.IP); err != nil {
		t.Errorf("after restore: %v", err)
	}
}

// TestParallelTopologies builds two topologies with the same host and site
// names at the same time and checks both work and both are gone after.
func TestParallelTopologies(t *testing.T) {
	testutil.RequireRoot(t)
	spec := Spec{
		Public: []string{"relay"},
		Sites:  []SiteSpec{{Name: "S", NAT: HolePunchable, Hosts: []string{"e1", "e2"}}},
	}
	var mu sync.Mutex
	built := map[string][]string{}
	t.Run("group", func(t *testing.T) {
		for i := range 2 {
			t.Run(fmt.Sprint(i), func(t *testing.T) {
				t.Parallel()
				start := time.Now()
				tp := New(t, spec)
				t.Logf("New: %v", time.Since(start))
				mu.Lock()
				built[tp.ID()] = tp.Namespaces()
				mu.Unlock()
				relay := tp.Host("relay")
				o := startObserver(t, relay)
				for _, e := range []string{"e1", "e2"} {
					h := tp.Host(e)
					if err := h.Ping(relay.IP); err != nil {
						t.Errorf("%s: %v", h, err)
					}
					if src, err := observedSource(h, o); err != nil || src.Addr() != h.PublicIP {
						t.Errorf("%s: seen from %v (%v), want %v", h, src, err, h.PublicIP)
					}
				}
			})
		}
	})
	if len(built) != 2 && !t.Failed() {
		t.Fatalf("built %d topologies, want 2", len(built))
	}
	for id, names := range built {
		checkGone(t, id, names)
	}
}

// TestSweepAfterKill kills a test binary that holds a topology (SIGKILL:
// no cleanup runs) and checks the next New removes what it left.
func TestSweepAfterKill(t *testing.T) {
	testutil.RequireRoot(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperTopologyOwner$", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), "EDGELINK_TOPOLOGY_HELPER=1")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	defer func() {
		if !killed {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if line, ok := strings.CutPrefix(sc.Text(), "READY "); ok {
				ready <- line
			}
		}
		close(ready)
	}()
	var line string
	select {
	case l, ok := <-ready:
		if !ok {
			t.Fatal("helper exited before its topology was ready")
		}
		line = l
	case <-time.After(30 * time.Second):
		t.Fatal("helper not ready after 30s")
	}
	id, list, _ := strings.Cut(line, " ")
	names := strings.Split(list, ",")
	if len(names) < 4 {
		t.Fatalf("helper said %q", line)
	}

	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	killed = true
	// Another test binary's New may sweep them first (that is the point of
	// the sweep, but then this run proves nothing).
	for _, p := range append(namePaths(names), filepath.Join(RecordDir, id+".json")) {
		if _, err := os.Stat(p); err != nil {
			t.Skipf("%s of the killed helper already gone (%v): swept by a concurrent New", p, err)
		}
	}

	t.Logf("helper (pid %d) killed holding topology %s: %s", cmd.Process.Pid, id, strings.Join(names, " "))
	New(t, Spec{Public: []string{"p"}})
	checkGone(t, id, names)
}

// TestHelperTopologyOwner is the process TestSweepAfterKill kills.
func TestHelperTopologyOwner(t *testing.T) {
	if os.Getenv("EDGELINK_TOPOLOGY_HELPER") != "1" {
		t.Skip("helper process of TestSweepAfterKill")
	}
	tp := New(t, Spec{
		Public: []string{"relay"},
		Sites:  []SiteSpec{{Name: "S", NAT: Symmetric, Hosts: []string{"e1"}}},
	})
	fmt.Printf("READY %s %s\n", tp.ID(), strings.Join(tp.Namespaces(), ","))
	time.Sleep(time.Minute) // killed long before
}

// TestSweepLeavesOthersAlone: records of live processes and names without
// the package's prefix are never touched.
func TestSweepLeavesOthersAlone(t *testing.T) {
	testutil.RequireRoot(t)
	if err := os.MkdirAll(RecordDir, 0o755); err != nil {
		t.Fatal(err)
	}
	addNS := func(name string) {
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", name, err, out)
		}
		t.Cleanup(func() { _ = deleteNetNS(name) })
	}
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(nsRunDir, name))
		return err == nil
	}
	foreign := "edgelink-sweeptest-" + randomID()
	deadNS := nsPrefix + randomID() + "-h-dead"
	liveNS := nsPrefix + randomID() + "-h-live"
	for _, n := range []string{foreign, deadNS, liveNS} {
		addNS(n)
	}

	// A PID that is certainly dead: a child we already reaped.
	c := exec.Command("true")
	if err := c.Run(); err != nil {
		t.Fatal(err)
	}
	writeRec := func(name string, r record) string {
		b, _ := json.Marshal(r)
		p := filepath.Join(RecordDir, name+".json")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Remove(p) })
		return p
	}
	deadRec := writeRec("sweeptest-dead-"+randomID(), record{PID: c.Process.Pid, StartTicks: 1, NetNS: []string{foreign, deadNS, "../" + foreign}})
	me, err := startTicks(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	liveRec := writeRec("sweeptest-live-"+randomID(), record{PID: os.Getpid(), StartTicks: me, NetNS: []string{liveNS}})
	// Same PID, different start time: a reused PID, so the owner is dead.
	reusedNS := nsPrefix + randomID() + "-h-reused"
	addNS(reusedNS)
	reusedRec := writeRec("sweeptest-reused-"+randomID(), record{PID: os.Getpid(), StartTicks: me + 1, NetNS: []string{reusedNS}})

	if err := Sweep(); err != nil {
		t.Logf("Sweep: %v", err)
	}
	if exists(deadNS) || exists(reusedNS) {
		t.Errorf("dead owners' namespaces survived the sweep")
	}
	if _, err := os.Stat(deadRec); err == nil {
		t.Errorf("dead owner's record survived")
	}
	if _, err := os.Stat(reusedRec); err == nil {
		t.Errorf("reused-PID owner's record survived")
	}
	if !exists(foreign) {
		t.Errorf("Sweep deleted %s, a namespace without the %q prefix", foreign, nsPrefix)
	}
	if !exists(liveNS) {
		t.Errorf("Sweep deleted %s of a live owner", liveNS)
	}
	if _, err := os.Stat(liveRec); err != nil {
		t.Errorf("Sweep removed a live owner's record: %v", err)
	}
}

// ---- helpers ----

func namePaths(names []string) []string {
	var out []string
	for _, n := range names {
		out = append(out, filepath.Join(nsRunDir, n))
	}
	return out
}

// checkGone asserts that no namespace of topology id is left, comparing
// against `ip netns list`, and that its owner record is gone.
func checkGone(t *testing.T, id string, names []string) {
	t.Helper()
	if id == "" {
		return
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatalf("ip netns list: %v: %s", err, out)
	}
	listed := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			listed[f[0]] = true
		}
	}
	for _, n := range names {
		if listed[n] {
			t.Errorf("namespace %s left behind", n)
		}
	}
	for n := range listed {
		if strings.HasPrefix(n, nsPrefix+id+"-") {
			t.Errorf("namespace %s of topology %s left behind", n, id)
		}
	}
	if _, err := os.Stat(filepath.Join(RecordDir, id+".json")); err == nil {
		t.Errorf("owner record of topology %s left behind", id)
	}
}

// startObserver runs a TCP server on h that tells each client the source
// address it saw, and returns its address.
func startObserver(t *testing.T, h *Host) netip.AddrPort {
	t.Helper()
	l, err := h.ListenTCP("")
	if err != nil {
		t.Fatalf("observer on %s: %v", h, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			_, _ = io.WriteString(c, c.RemoteAddr().String()+"\n")
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { l.Close(); <-done })
	return l.Addr().(*net.TCPAddr).AddrPort()
}

func observedSource(from *Host, obs netip.AddrPort) (netip.AddrPort, error) {
	return observedSourceTimeout(from, obs, 3*time.Second)
}

func observedSourceTimeout(from *Host, obs netip.AddrPort, timeout time.Duration) (netip.AddrPort, error) {
	c, err := from.DialTCP(obs.String(), timeout)
	if err != nil {
		return netip.AddrPort{}, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(timeout))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return netip.AddrPort{}, err
	}
	return netip.ParseAddrPort(strings.TrimSpace(line))
}

// startReflector runs a UDP server on h that answers every packet with the
// packet's source address (a STUN server in miniature).
func startReflector(t *testing.T, h *Host) netip.AddrPort {
	t.Helper()
	u, err := h.ListenUDP("")
	if err != nil {
		t.Fatalf("reflector on %s: %v", h, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			_, from, err := u.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			_, _ = u.WriteToUDPAddrPort([]byte("seen "+from.String()), from)
		}
	}()
	t.Cleanup(func() { u.Close(); <-done })
	return u.LocalAddr().(*net.UDPAddr).AddrPort()
}

// mappedAddr asks a reflector which public ip:port u's packets come from.
func mappedAddr(u *net.UDPConn, refl netip.AddrPort) (netip.AddrPort, error) {
	var last error
	for range 3 {
		if _, err := u.WriteToUDPAddrPort([]byte("whoami"), refl); err != nil {
			return netip.AddrPort{}, err
		}
		deadline := time.Now().Add(time.Second)
		for time.Now().Before(deadline) {
			got, from, ok := readUDP(u, time.Until(deadline))
			if !ok {
				break
			}
			if from != refl {
				continue // a late punch packet or similar
			}
			if s, ok := strings.CutPrefix(got, "seen "); ok {
				return netip.ParseAddrPort(s)
			}
		}
		last = fmt.Errorf("no answer from reflector %v", refl)
	}
	return netip.AddrPort{}, last
}

func readUDP(u *net.UDPConn, timeout time.Duration) (string, netip.AddrPort, bool) {
	buf := make([]byte, 1500)
	_ = u.SetReadDeadline(time.Now().Add(timeout))
	n, from, err := u.ReadFromUDPAddrPort(buf)
	if err != nil {
		return "", netip.AddrPort{}, false
	}
	return string(buf[:n]), netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), true
}

type punchResult struct {
	xMapped, yMapped netip.AddrPort
	xGot, yGot       bool // x received y's packet from y's mapped address, and vice versa
	xSent, ySent     int
}

func (r punchResult) String() string {
	return fmt.Sprintf("x mapped %v got=%v sent=%d, y mapped %v got=%v sent=%d",
		r.xMapped, r.xGot, r.xSent, r.yMapped, r.yGot, r.ySent)
}

// punch is a minimal rendezvous: x and y learn their mapped addresses from
// the reflector, then both send to the other's mapped address every 20ms
// for at most window, stopping once each has heard the other.
func punch(t *testing.T, x, y *Host, refl netip.AddrPort, window time.Duration) punchResult {
	t.Helper()
	var r punchResult
	ux, err := x.ListenUDP("")
	if err != nil {
		t.Fatal(err)
	}
	defer ux.Close()
	uy, err := y.ListenUDP("")
	if err != nil {
		t.Fatal(err)
	}
	defer uy.Close()
	if r.xMapped, err = mappedAddr(ux, refl); err != nil {
		t.Fatalf("%s: %v", x, err)
	}
	if r.yMapped, err = mappedAddr(uy, refl); err != nil {
		t.Fatalf("%s: %v", y, err)
	}

	var xGot, yGot atomic.Bool
	deadline := time.Now().Add(window)
	side := func(u *net.UDPConn, self string, peer netip.AddrPort, peerName string, got, other *atomic.Bool, sent *int) {
		want := "punch from " + peerName
		for time.Now().Before(deadline) && !(got.Load() && other.Load()) {
			if _, err := u.WriteToUDPAddrPort([]byte("punch from "+self), peer); err == nil {
				*sent++
			}
			if s, from, ok := readUDP(u, 20*time.Millisecond); ok && s == want && from == peer {
				got.Store(true)
			}
		}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); side(ux, x.Name, r.yMapped, y.Name, &xGot, &yGot, &r.xSent) }()
	go func() { defer wg.Done(); side(uy, y.Name, r.xMapped, x.Name, &yGot, &xGot, &r.ySent) }()
	wg.Wait()
	r.xGot, r.yGot = xGot.Load(), yGot.Load()
	return r
}

func acceptAndClose(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		c.Close()
	}
}

func echoServer(l net.Listener) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
	}
}

func echo(c net.Conn, msg string, timeout time.Duration) error {
	if _, err := io.WriteString(c, msg+"\n"); err != nil {
		return err
	}
	return readEcho(c, msg, timeout)
}

func readEcho(c net.Conn, msg string, timeout time.Duration) error {
	_ = c.SetReadDeadline(time.Now().Add(timeout))
	buf := make([]byte, len(msg)+1)
	if _, err := io.ReadFull(c, buf); err != nil {
		return err
	}
	if !bytes.Equal(buf, []byte(msg+"\n")) {
		return fmt.Errorf("echo %q, want %q", buf, msg)
	}
	return nil
}
