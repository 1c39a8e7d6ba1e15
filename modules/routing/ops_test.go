package routing

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/dataplane"
	"github.com/edgelink/edgelink/tests/unittest"
)

// fakeIPT is iptables as a map of chains to their `-S` lines.
type fakeIPT map[string][]string

func (f fakeIPT) ChainExists(table, chain string) (bool, error) {
	_, ok := f[table+"/"+chain]
	return ok, nil
}
func (f fakeIPT) List(table, chain string) ([]string, error) { return f[table+"/"+chain], nil }
func (f fakeIPT) Exists(table, chain string, rule ...string) (bool, error) {
	want := strings.Join(rule, " ")
	for _, l := range f[table+"/"+chain] {
		if strings.HasSuffix(l, want) {
			return true, nil
		}
	}
	return false, nil
}

var _ iptablesLister = fakeIPT(nil)

func TestCheckChain(t *testing.T) {
	spec := chainSpec{"nat", "POSTROUTING", chainNAT, [][]string{{"-s", "10.244.0.0/16", "-d", "10.245.0.0/16", "-j", "ACCEPT"}}, false}
	good := func() fakeIPT {
		return fakeIPT{
			"nat/" + chainNAT: {"-N " + chainNAT, "-A " + chainNAT + " -s 10.244.0.0/16 -d 10.245.0.0/16 -j ACCEPT"},
			"nat/POSTROUTING": {"-P POSTROUTING ACCEPT", "-A POSTROUTING -m comment --comment edgelink -j " + chainNAT, "-A POSTROUTING -j MASQUERADE"},
		}
	}
	tests := []struct {
		name   string
		mutate func(fakeIPT)
		want   string
	}{
		{"in place", func(fakeIPT) {}, ""},
		{"chain missing", func(f fakeIPT) { delete(f, "nat/"+chainNAT) }, "chain EDGELINK-POSTROUTING missing from table nat"},
		{"rule missing", func(f fakeIPT) { f["nat/"+chainNAT] = f["nat/"+chainNAT][:1] }, "holds 0 rules, want 1"},
		{"rule changed", func(f fakeIPT) { f["nat/"+chainNAT][1] = "-A " + chainNAT + " -j RETURN" }, `lacks rule "-s 10.244.0.0/16`},
		{"jump missing", func(f fakeIPT) {
			f["nat/POSTROUTING"] = []string{"-P POSTROUTING ACCEPT", "-A POSTROUTING -j MASQUERADE"}
		}, "no jump from nat POSTROUTING to EDGELINK-POSTROUTING"},
		{"jump not first", func(f fakeIPT) {
			p := f["nat/POSTROUTING"]
			f["nat/POSTROUTING"] = []string{p[0], p[2], p[1]}
		}, "is not the first rule of nat POSTROUTING"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := good()
			tc.mutate(f)
			got := checkChain(f, spec)
			if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
				t.Errorf("checkChain = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestMTUCheck(t *testing.T) {
	tests := []struct {
		name                 string
		mtu, cfg, underlay   int
		status, detailSubstr string
	}{
		{"derived", 1420, 0, 1500, agentapi.CheckOK, "TUN 1420 = underlay 1500 - 80"},
		{"underlay changed", 1420, 0, 9000, agentapi.CheckFail, "underlay's is now 9000"},
		{"configured lower", 1300, 1300, 1500, agentapi.CheckOK, ""},
		{"configured too high", 1500, 1500, 1500, agentapi.CheckFail, "modules.edgeCNI.mtu 1500 is more than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := mtuCheck(nil, tc.mtu, tc.cfg, tc.underlay)
			if c.Status != tc.status || !strings.Contains(c.Detail, tc.detailSubstr) || (c.Status == agentapi.CheckFail && c.Fix == "") {
				t.Errorf("%+v", c)
			}
		})
	}
}

// Every routed prefix says where it comes from.
func TestPlanOrigins(t *testing.T) {
	p := Plan(goldenInput())
	for _, k := range p.Kernel {
		if k.Kind == "" || (k.Kind != KindSegment && k.Node == "") {
			t.Errorf("kernel route without kind or node: %+v", k)
		}
	}
	want := map[string]string{"10.244.1.0/24": KindNode, "10.245.6.2/32": KindPod, "10.245.7.0/24": KindPool, "10.245.5.4/31": KindPool}
	for pfx, kind := range want {
		got, ok := p.Origin[netip.MustParsePrefix(pfx)]
		if !ok || (kind != "" && got != kind) {
			t.Errorf("origin of %s = %q, want %q", pfx, got, kind)
		}
	}
}

func TestCollectPeers(t *testing.T) {
	c := collectFunc(func(ch chan<- prometheus.Metric) {
		collectPeers(ch, []dataplane.PeerStats{{Node: "edge-2", TxBytes: 100, RxBytes: 50, TxPackets: 2, RxPackets: 1, DropQueue: 3}})
	})
	want := []string{
		`edgelink_dataplane_peer_bytes_total{direction="rx",peer="edge-2"} 50`,
		`edgelink_dataplane_peer_bytes_total{direction="tx",peer="edge-2"} 100`,
		`edgelink_dataplane_peer_packets_total{direction="tx",peer="edge-2"} 2`,
		`edgelink_dataplane_peer_drops_total{peer="edge-2",reason="queue"} 3`,
		`edgelink_dataplane_peer_drops_total{peer="edge-2",reason="spoofed"} 0`,
		`edgelink_dataplane_peer_last_activity_timestamp_seconds{peer="edge-2"} 0`,
		"# TYPE edgelink_dataplane_peer_bytes_total counter",
	}
	text := unittest.MetricsText(t, c)
	for _, w := range want {
		if !strings.Contains(text, w+"\n") {
			t.Errorf("no %q in\n%s", w, text)
		}
	}
}

// collectFunc is a collector made of a function (unit tests).
type collectFunc func(ch chan<- prometheus.Metric)

func (f collectFunc) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(f, ch) }
func (f collectFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }

// blockingIPT is iptables whose every call waits for release (the xtables
// lock held by another program).
type blockingIPT struct{ release chan struct{} }

func (b blockingIPT) ChainExists(string, string) (bool, error) { <-b.release; return false, nil }
func (b blockingIPT) List(string, string) ([]string, error)    { <-b.release; return nil, nil }
func (b blockingIPT) Exists(string, string, ...string) (bool, error) {
	<-b.release
	return false, nil
}

var _ iptablesLister = blockingIPT{}

// A diagnose whose iptables calls block reports a timeout instead of
// hanging, does not start a second check while the first still waits,
// and checks again once iptables answers.
func TestIPTablesChecksTimeout(t *testing.T) {
	c := v1.NewDefault()
	c.NodeName = "edge-1"
	c.Modules.EdgeCNI.MeshCIDRConfig.CloudCIDR = []string{"10.244.1.0/24"}
	c.Modules.EdgeCNI.MeshCIDRConfig.EdgeCIDR = []string{"10.244.5.0/24"}
	a, err := v1.Validate(c)
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	s := NewService(a, nil, nil)
	s.newIPT = func(bool) (iptablesLister, error) { return blockingIPT{release}, nil }
	mesh := []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24"), netip.MustParsePrefix("10.244.5.0/24")}

	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	out := s.iptablesChecks(ctx, mesh)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v with a 50ms deadline", d)
	}
	if len(out) != 1 || out[0].Status != agentapi.CheckFail || !strings.Contains(out[0].Detail, "timed out waiting for iptables (xtables lock held?)") {
		t.Fatalf("blocked iptables: %+v", out)
	}
	// The first check still waits: the next one does not pile up.
	out = s.iptablesChecks(t.Context(), mesh)
	if len(out) != 1 || out[0].Status != agentapi.CheckFail || !strings.Contains(out[0].Detail, "still waiting for iptables") {
		t.Errorf("second check while the first waits: %+v", out)
	}
	// iptables answers: the goroutine ends and checks run again.
	close(release)
	deadline := time.Now().Add(5 * time.Second)
	for s.iptBusy.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the iptables check goroutine did not end")
		}
		time.Sleep(time.Millisecond)
	}
	out = s.iptablesChecks(t.Context(), mesh)
	if len(out) != 3 || !strings.Contains(out[0].Detail, "missing") {
		t.Errorf("checks after release: %+v", out)
	}
}

func TestRPFilterCheck(t *testing.T) {
	for _, tc := range []struct {
		all, dev int
		status   string
		detail   string
	}{
		{0, 0, agentapi.CheckOK, "off on edgelink0"},
		{0, 2, agentapi.CheckOK, "loose"},
		{2, 1, agentapi.CheckOK, "loose"}, // the larger wins
		{2, 0, agentapi.CheckOK, "loose"},
		{1, 0, agentapi.CheckFail, "strict"},
		{0, 1, agentapi.CheckFail, "strict"},
		{1, 1, agentapi.CheckFail, "net.ipv4.conf.all.rp_filter=1, net.ipv4.conf.edgelink0.rp_filter=1"},
	} {
		got := rpFilterCheck("edgelink0", tc.all, tc.dev)
		if got.Status != tc.status || !strings.Contains(got.Detail, tc.detail) {
			t.Errorf("all %d, dev %d: %+v, want %s %q", tc.all, tc.dev, got, tc.status, tc.detail)
		}
		if got.Status == agentapi.CheckFail && !strings.Contains(got.Fix, "net.ipv4.conf.all.rp_filter=2") {
			t.Errorf("all %d, dev %d: fix %q does not say what to set", tc.all, tc.dev, got.Fix)
		}
	}
}

func TestRoutesCheck(t *testing.T) {
	planned := []KernelRoute{{Dst: netip.MustParsePrefix("10.244.5.0/24"), Why: "segment"}}
	if c := routesCheck(planned, nil, errors.New("netlink dump interrupted")); c.Status != agentapi.CheckFail ||
		c.Detail != "netlink dump interrupted" {
		t.Errorf("list error: %+v", c)
	}
	if c := routesCheck(planned, planned, nil); c.Status != agentapi.CheckFail || !strings.Contains(c.Detail, "1 of 1 planned routes missing") {
		t.Errorf("missing: %+v", c)
	}
	if c := routesCheck(planned, nil, nil); c.Status != agentapi.CheckOK {
		t.Errorf("present: %+v", c)
	}
}

// Forward routes come out in one order: address, prefix length, node.
func TestSortForward(t *testing.T) {
	rs := []agentapi.Route{
		{Dst: "10.244.6.0/24", Node: "b"}, {Dst: "10.244.5.7/32", Node: "b"}, {Dst: "10.244.5.0/24", Node: "c"},
		{Dst: "10.244.5.0/32", Node: "a"}, {Dst: "10.244.5.0/24", Node: "a"},
	}
	sortForward(rs)
	var got []string
	for _, r := range rs {
		got = append(got, r.Dst+" "+r.Node)
	}
	want := "10.244.5.0/24 a,10.244.5.0/24 c,10.244.5.0/32 a,10.244.5.7/32 b,10.244.6.0/24 b"
	if strings.Join(got, ",") != want {
		t.Errorf("order %s, want %s", strings.Join(got, ","), want)
	}
}
