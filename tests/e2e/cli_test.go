package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/statusclient"
	"github.com/edgelink/edgelink/tests/cluster"
	"github.com/edgelink/edgelink/tests/testutil"
)

// The CLI against no agent: a clear error naming the socket and what to
// check, and a non-zero exit. Needs no root.
func TestCLIAgentNotRunning(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	for _, args := range [][]string{{"status"}, {"status", "-o", "json"}, {"ping", "10.245.1.2"}, {"routes"}, {"diagnose"}} {
		out, errOut, code := edgelink(t, append(args, "--socket", sock)...)
		if code == 0 || !strings.Contains(errOut, sock) || !strings.Contains(errOut, "systemctl status edgelink") ||
			!strings.Contains(errOut, "Is the agent running?") {
			t.Errorf("edgelink %v with no agent: exit %d, stdout %q, stderr %q", args, code, out, errOut)
		}
	}
}

// The CLI and the metrics against two running agents on real edgecores
// (the data-plane fixture: pods in two segments, edge 1 the relay).
// status (table and JSON), ping (pod IP and node name, and the errors for
// an unknown IP, a local pod, an unknown node), routes, diagnose (all OK,
// then a deleted route and a deleted SNAT jump each FAIL by name, then OK
// again once the agent repaired them), and /metrics on the socket and on
// metricsAddress: per-peer byte counters grow with pod traffic, the path
// and RTT are there, and no pod IP ever becomes a label. Needs root.
func TestCLIAgainstAgents(t *testing.T) {
	cp := cluster.Shared(t)
	e1, e2 := cp.AddEdgeNode(t, "cli-edge-1"), cp.AddEdgeNode(t, "cli-edge-2")
	relays := []v1.RelayNode{{NodeName: e1.Name, AdvertiseAddress: []string{e1.IP.String()}}}
	cloud, edge := []string{"10.244.0.0/16", "fd00:244::/32"}, []string{"10.245.0.0/16", "fd00:245::/32"}
	ip1, ip2 := netip.MustParseAddr("10.244.1.2"), netip.MustParseAddr("10.245.1.2")
	pod1 := addPod(t, cp, e1, "clia", ip1, netip.MustParseAddr("fd00:244:1::2"))
	pod2 := addPod(t, cp, e2, "clib", ip2, netip.MustParseAddr("fd00:245:1::2"))
	c1 := agentConfig(t, e1, relays, cloud, edge)
	c1.MetricsAddress = "127.0.0.1:9091"
	a1 := testutil.NewAgent(t, c1, e1.NetNS)
	a2 := testutil.NewAgent(t, agentConfig(t, e2, relays, cloud, edge), e2.NetNS)
	a1.Start("Data plane up")
	a2.Start("Data plane up")
	waitFor(t, 60*time.Second, "pod1 pings pod2", func() error {
		_, err := execIn(pod1, "ping", "-c1", "-W1", ip2.String())
		return err
	})
	waitFor(t, 20*time.Second, "a direct path", func() error { return directTo(a1, e2.Name) })

	sock1, sock2 := a1.Config.StatusSocket, a2.Config.StatusSocket
	cli := func(sock string, args ...string) (string, string, int) {
		t.Helper()
		return edgelink(t, append(args, "--socket", sock)...)
	}

	// Some pod traffic first, so that counters and last activity are set
	// (in a subtest: its listener closes when it ends).
	t.Run("traffic", func(t *testing.T) { tcpTransfer(t, pod2, pod1, ip2, 4<<20) })

	t.Run("status -o json", func(t *testing.T) {
		out, errOut, code := cli(sock1, "status", "-o", "json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var o statusclient.Overview
		if err := json.Unmarshal([]byte(out), &o); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		if o.Node != e1.Name || !strings.Contains(strings.Join(o.Segments, ","), "10.244.0.0/16") ||
			!strings.Contains(strings.Join(o.PodCIDRs, ","), "10.244.1.2/32") || o.TUN != "edgelink0" || o.MTU == 0 || !o.Relay {
			t.Errorf("this node: %+v", o)
		}
		var peer *statusclient.Peer
		for i := range o.Peers {
			if o.Peers[i].Node == e2.Name {
				peer = &o.Peers[i]
			}
		}
		switch {
		case peer == nil:
			t.Fatalf("no peer %s in %+v", e2.Name, o.Peers)
		case !strings.HasPrefix(peer.Path, "direct-") || peer.RTTMillis <= 0 || peer.RemoteAddr == "":
			t.Errorf("peer path: %+v", *peer)
		case peer.BytesOut < 4<<20 || peer.PacketsOut == 0 || peer.BytesIn == 0 || peer.PacketsIn == 0:
			t.Errorf("peer traffic after 4 MiB sent: %+v", *peer)
		case peer.LastActivity.IsZero() || time.Since(peer.LastActivity) > time.Minute:
			t.Errorf("peer last activity %s", peer.LastActivity)
		}
	})

	t.Run("status table", func(t *testing.T) {
		out, errOut, code := cli(sock1, "status")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		row := regexp.MustCompile(`(?m)^` + e2.Name + `\s+direct-(tcp|quic)\s+[0-9.]+ms\s+\S+ \S+/\d+ pkts\s+\S+ \S+/\d+ pkts\s+\d+\s+(now|\d+s ago)`)
		if !strings.Contains(out, "Node:       "+e1.Name+" (relay)") || !strings.Contains(out, "PEER") || !row.MatchString(out) {
			t.Errorf("status:\n%s", out)
		}
		// Edge 2 reaches edge 1 directly too, and holds its reservation.
		out, _, _ = cli(sock2, "status")
		if !strings.Contains(out, "Relays:     "+e1.Name+" reserved") {
			t.Errorf("edge 2 status:\n%s", out)
		}
	})

	t.Run("ping", func(t *testing.T) {
		out, errOut, code := cli(sock1, "ping", "-c", "3", "-i", "200ms", ip2.String())
		pong := regexp.MustCompile(`(?m)^pong from ` + e2.Name + ` \(` + regexp.QuoteMeta(ip2.String()) + `\) via direct-(tcp|quic) /ip4/\S+ in [0-9.]+ms$`)
		if code != 0 || len(pong.FindAllString(out, -1)) != 3 {
			t.Errorf("ping %s: exit %d\n%s%s", ip2, code, out, errOut)
		}
		out, errOut, code = cli(sock2, "ping", "-c", "1", e1.Name)
		if code != 0 || !strings.HasPrefix(out, "pong from "+e1.Name+" via direct-") {
			t.Errorf("ping %s by name: exit %d\n%s%s", e1.Name, code, out, errOut)
		}
		out, errOut, code = cli(sock1, "ping", "-c", "1", "-o", "json", ip2.String())
		var rs []agentapi.PingResult
		if code != 0 || json.Unmarshal([]byte(out), &rs) != nil || len(rs) != 1 || rs[0].Node != e2.Name || rs[0].RTTMillis <= 0 {
			t.Errorf("ping -o json: exit %d\n%s%s", code, out, errOut)
		}
		for _, c := range []struct{ target, want string }{
			{"10.245.99.99", "no node has 10.245.99.99"},
			{ip1.String(), "is a pod on this node"},
			{"no-such-node", `unknown node "no-such-node"`},
		} {
			start := time.Now()
			out, errOut, code := cli(sock1, "ping", "-c", "3", c.target)
			if code == 0 || !strings.Contains(errOut, c.want) || time.Since(start) > 3*time.Second {
				t.Errorf("ping %s: exit %d after %s, stdout %q, stderr %q; want an error saying %q at once", c.target, code, time.Since(start), out, errOut, c.want)
			}
		}
	})

	t.Run("routes", func(t *testing.T) {
		out, errOut, code := cli(sock1, "routes")
		segment := regexp.MustCompile(`(?m)^10\.245\.0\.0/16\s+dev edgelink0\s+segment\s+-\s+present\s+another segment`)
		fwd := regexp.MustCompile(`(?m)^10\.245\.1\.2/32\s+` + e2.Name + `\s+pod$`)
		local := regexp.MustCompile(`(?m)^10\.244\.1\.2/32\s+pod$`)
		if code != 0 || !segment.MatchString(out) || !fwd.MatchString(out) || !local.MatchString(out) {
			t.Errorf("routes: exit %d\n%s%s", code, out, errOut)
		}
		out, _, _ = cli(sock1, "routes", "-o", "json")
		var rs agentapi.Routes
		if err := json.Unmarshal([]byte(out), &rs); err != nil || len(rs.Kernel) == 0 {
			t.Fatalf("routes -o json: %v\n%s", err, out)
		}
		for _, r := range rs.Kernel {
			if !r.InKernel {
				t.Errorf("route %+v not in the kernel", r)
			}
		}
	})

	diagnose := func(sock string) (string, int) {
		out, errOut, code := cli(sock, "diagnose")
		return out + errOut, code
	}
	t.Run("diagnose all OK", func(t *testing.T) {
		for _, sock := range []string{sock1, sock2} {
			var out string
			// Edge 2's reservation may still be renewing; everything else is up.
			waitFor(t, 20*time.Second, "diagnose passes", func() error {
				var code int
				if out, code = diagnose(sock); code != 0 {
					return fmt.Errorf("exit %d:\n%s", code, out)
				}
				return nil
			})
			for _, want := range []string{"OK    TUN up", "OK    routes present", "OK    MTU consistent", "OK    reverse-path filter", "OK    SNAT exemption (iptables)",
				"OK    SNAT exemption (ip6tables)", "OK    MSS clamp (iptables)", "OK    metadata fresh", "OK    relays reachable",
				"SKIP  IPAM socket answering", "All "} {
				if !strings.Contains(out, want) {
					t.Errorf("diagnose lacks %q:\n%s", want, out)
				}
			}
			if strings.Contains(out, "FAIL") {
				t.Errorf("diagnose:\n%s", out)
			}
		}
	})

	// breakAndDiagnose breaks something with args (in edge 1's namespace)
	// and wants diagnose to fail naming it; the agent repairs within its
	// reconcile interval, so a repair that came first is broken again.
	breakAndDiagnose := func(t *testing.T, wants []string, args ...string) {
		t.Helper()
		var out string
		var code int
		for try := 0; try < 5; try++ {
			if b, err := exec.Command("ip", append([]string{"netns", "exec", e1.NetNS}, args...)...).CombinedOutput(); err != nil {
				t.Fatalf("%v: %v %s", args, err, b)
			}
			if out, code = diagnose(sock1); code != 0 {
				break
			}
		}
		if code == 0 {
			t.Fatalf("diagnose passed after %v:\n%s", args, out)
		}
		for _, w := range wants {
			if !strings.Contains(out, w) {
				t.Errorf("diagnose after %v lacks %q:\n%s", args, w, out)
			}
		}
		waitFor(t, 20*time.Second, "the agent repairs it and diagnose passes", func() error {
			if out, code := diagnose(sock1); code != 0 {
				return fmt.Errorf("exit %d:\n%s", code, out)
			}
			return nil
		})
	}
	t.Run("diagnose finds a deleted route", func(t *testing.T) {
		breakAndDiagnose(t, []string{"FAIL  routes present", "10.245.0.0/16 dev tun (segment)", "fix: ", "checks failed on " + e1.Name},
			"ip", "route", "del", "10.245.0.0/16", "proto", "77")
	})
	t.Run("diagnose finds a deleted SNAT jump", func(t *testing.T) {
		breakAndDiagnose(t, []string{"FAIL  SNAT exemption (iptables): no jump from nat POSTROUTING to EDGELINK-POSTROUTING", "OK    routes present"},
			"iptables", "-t", "nat", "-D", "POSTROUTING", "-m", "comment", "--comment", "edgelink", "-j", "EDGELINK-POSTROUTING")
	})

	t.Run("diagnose finds strict rp_filter", func(t *testing.T) {
		// The agent sets its TUN's rp_filter once, at start: strict
		// stays until someone fixes it.
		tun := c1.Modules.EdgeCNI.TunName
		sysctl := func(kv string) {
			t.Helper()
			if b, err := exec.Command("ip", "netns", "exec", e1.NetNS, "sysctl", "-w", kv).CombinedOutput(); err != nil {
				t.Fatalf("sysctl %s: %v %s", kv, err, b)
			}
		}
		sysctl("net.ipv4.conf." + tun + ".rp_filter=1")
		defer sysctl("net.ipv4.conf." + tun + ".rp_filter=2")
		out, code := diagnose(sock1)
		if code == 0 || !strings.Contains(out, "FAIL  reverse-path filter: strict on "+tun) || !strings.Contains(out, "net.ipv4.conf.all.rp_filter=2") {
			t.Errorf("diagnose with strict rp_filter on %s (exit %d):\n%s", tun, code, out)
		}
		sysctl("net.ipv4.conf." + tun + ".rp_filter=2")
		if out, code := diagnose(sock1); code != 0 || !strings.Contains(out, "OK    reverse-path filter: loose on "+tun) {
			t.Errorf("diagnose with loose rp_filter (exit %d):\n%s", code, out)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		c := statusclient.New(sock1)
		defer c.Close()
		scrape := func() string {
			t.Helper()
			m, err := c.Metrics(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			return m
		}
		before := scrape()
		peer := map[string]string{"peer": e2.Name}
		txBefore := metricValue(t, before, "edgelink_dataplane_peer_bytes_total", map[string]string{"peer": e2.Name, "direction": "tx"})
		rxBefore := metricValue(t, before, "edgelink_dataplane_peer_bytes_total", map[string]string{"peer": e2.Name, "direction": "rx"})
		pktBefore := metricValue(t, before, "edgelink_dataplane_peer_packets_total", map[string]string{"peer": e2.Name, "direction": "tx"})
		tcpTransfer(t, pod2, pod1, ip2, 8<<20)
		after := scrape()
		tx := metricValue(t, after, "edgelink_dataplane_peer_bytes_total", map[string]string{"peer": e2.Name, "direction": "tx"})
		rx := metricValue(t, after, "edgelink_dataplane_peer_bytes_total", map[string]string{"peer": e2.Name, "direction": "rx"})
		pkt := metricValue(t, after, "edgelink_dataplane_peer_packets_total", map[string]string{"peer": e2.Name, "direction": "tx"})
		if tx-txBefore < 8<<20 || rx <= rxBefore || pkt <= pktBefore {
			t.Errorf("after 8 MiB to %s: tx bytes %v -> %v, rx bytes %v -> %v, tx packets %v -> %v", e2.Name, txBefore, tx, rxBefore, rx, pktBefore, pkt)
		}
		if v := metricValue(t, after, "edgelink_tunnel_peer_rtt_seconds", peer); v <= 0 || v > 1 {
			t.Errorf("RTT %v s", v)
		}
		direct := metricValue(t, after, "edgelink_tunnel_peer_path", map[string]string{"peer": e2.Name, "path": "direct-tcp"}) +
			metricValue(t, after, "edgelink_tunnel_peer_path", map[string]string{"peer": e2.Name, "path": "direct-quic"})
		if direct != 1 {
			t.Errorf("edgelink_tunnel_peer_path for %s is not direct:\n%s", e2.Name, grepLines(after, "edgelink_tunnel_peer_path"))
		}
		for name, want := range map[string]float64{"edgelink_metadata_synced": 1, "edgelink_dataplane_up": 1, "edgelink_tunnel_up": 1} {
			if v := metricValue(t, after, name, nil); v != want {
				t.Errorf("%s = %v, want %v", name, v, want)
			}
		}
		for _, name := range []string{"edgelink_tunnel_holepunch_attempts_total", "edgelink_tunnel_peer_path_changes_total",
			"edgelink_metadata_sync_age_seconds", "edgelink_dataplane_drops_total", "edgelink_build_info", "go_goroutines"} {
			if !strings.Contains(after, "\n"+name) {
				t.Errorf("no %s in the metrics", name)
			}
		}
		// Bounded labels: no label value is an address or a prefix (pod
		// IPs, CIDRs, endpoints).
		for _, v := range labelValues(after) {
			_, aerr := netip.ParseAddr(v)
			_, perr := netip.ParsePrefix(v)
			_, aperr := netip.ParseAddrPort(v)
			if aerr == nil || perr == nil || aperr == nil {
				t.Errorf("label value %q is an address:\n%s", v, grepLines(after, `"`+v+`"`))
			}
		}
		// Edge 2 holds a reservation on edge 1 (the relay).
		m2, err := statusclient.New(sock2).Metrics(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if v := metricValue(t, m2, "edgelink_tunnel_relay_reservation", map[string]string{"relay": e1.Name}); v != 1 {
			t.Errorf("edge 2's reservation on %s: %v", e1.Name, v)
		}
		// metricsAddress: the same over TCP inside edge 1's namespace, and
		// nothing else of the status API (which stays on the unix socket).
		overTCP := func(method, path string) string {
			var body string
			if err := inNS(t, e1.NetNS, func() error {
				conn, err := net.DialTimeout("tcp", c1.MetricsAddress, 5*time.Second)
				if err != nil {
					return err
				}
				defer conn.Close()
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
				req := method + " " + path + " HTTP/1.0\r\nHost: x\r\n"
				if method == "POST" {
					req += "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
				} else {
					req += "\r\n"
				}
				if _, err := io.WriteString(conn, req); err != nil {
					return err
				}
				b, err := io.ReadAll(conn)
				body = string(b)
				return err
			}); err != nil {
				t.Fatalf("metricsAddress %s: %s %s: %v", c1.MetricsAddress, method, path, err)
			}
			return body
		}
		body := overTCP("GET", "/metrics")
		if !strings.HasPrefix(body, "HTTP/1.0 200") || metricValue(t, body, "edgelink_dataplane_peer_bytes_total", map[string]string{"peer": e2.Name, "direction": "tx"}) < tx {
			t.Errorf("metrics on %s:\n%.600s", c1.MetricsAddress, body)
		}
		for _, r := range []struct{ method, path string }{{"GET", "/debug/pprof/"}, {"GET", "/v1/diagnose"}, {"GET", "/v1/agent"}, {"POST", "/v1/ping"}} {
			if body := overTCP(r.method, r.path); !strings.HasPrefix(body, "HTTP/1.0 404") {
				t.Errorf("%s %s on metricsAddress %s answers, want 404:\n%.300s", r.method, r.path, c1.MetricsAddress, body)
			}
		}
	})
}

// metricValue finds one sample of name whose labels include want in a
// Prometheus text exposition; it fails the test when there is none.
func metricValue(t *testing.T, text, name string, want map[string]string) float64 {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) || strings.HasPrefix(line, "#") {
			continue
		}
		rest := line[len(name):]
		labels := map[string]string{}
		if strings.HasPrefix(rest, "{") {
			end := strings.Index(rest, "}")
			if end < 0 {
				continue
			}
			for _, kv := range strings.Split(rest[1:end], ",") {
				if k, v, ok := strings.Cut(kv, "="); ok {
					labels[k] = strings.Trim(v, `"`)
				}
			}
			rest = rest[end+1:]
		} else if !strings.HasPrefix(rest, " ") {
			continue // a longer name
		}
		match := true
		for k, v := range want {
			if labels[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		return v
	}
	if strings.Contains(name, "peer_path") && want["path"] != "" {
		return 0 // the other kinds are absent, not zero
	}
	t.Fatalf("no %s%v in the metrics:\n%s", name, want, grepLines(text, name))
	return 0
}

// labelRE matches one label value of a Prometheus text exposition.
var labelRE = regexp.MustCompile(`[a-zA-Z_][a-zA-Z0-9_]*="((?:[^"\\]|\\.)*)"`)

// labelValues lists every label value in a Prometheus text exposition.
func labelValues(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "#") {
			continue
		}
		for _, m := range labelRE.FindAllStringSubmatch(l, -1) {
			out = append(out, m[1])
		}
	}
	return out
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
