package edgecni

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/dataplane"
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
	spec := chainSpec{"nat", "POSTROUTING", chainNAT, [][]string{{"-s", "10.244.0.0/16", "-d", "10.245.0.0/16", "-j", "ACCEPT"}}}
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
		if k.Kind == "" || (k.Kind != agentapi.KindSegment && k.Node == "") {
			t.Errorf("kernel route without kind or node: %+v", k)
		}
	}
	want := map[string]string{"10.244.1.0/24": agentapi.KindNode, "10.245.6.2/32": agentapi.KindPod, "10.245.7.0/24": agentapi.KindPool, "10.245.5.4/31": agentapi.KindPool}
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
	text := gatherText(t, c)
	for _, w := range want {
		if !strings.Contains(text, w+"\n") {
			t.Errorf("no %q in\n%s", w, text)
		}
	}
}

// gatherText renders what c collects in the text exposition format.
func gatherText(t *testing.T, c prometheus.Collector) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

// collectFunc is a collector made of a function (unit tests).
type collectFunc func(ch chan<- prometheus.Metric)

func (f collectFunc) Describe(ch chan<- *prometheus.Desc) { prometheus.DescribeByCollect(f, ch) }
func (f collectFunc) Collect(ch chan<- prometheus.Metric) { f(ch) }
