package app

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/statusclient"
)

func TestWriteStatus(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	o := &statusclient.Overview{
		Node: "edge-1", Version: "v0.1", PeerID: "12D3KooW", Reachability: "Private", TUN: "edgelink0", MTU: 1420,
		Segments: []string{"10.245.0.0/16"}, PodCIDRs: []string{"10.245.5.0/24", "10.245.6.2/32"},
		Reservations: []agentapi.Reservation{{Node: "relay-1", Reserved: true}, {Node: "relay-2", LastError: "dial timeout"}},
		Peers: []statusclient.Peer{
			{Node: "cloud-1", Path: "direct-tcp", RTTMillis: 0.42, BytesIn: 2 << 20, PacketsIn: 1500, BytesOut: 512, PacketsOut: 3,
				LastActivity: now.Add(-5 * time.Second), PathSince: now.Add(-2 * time.Hour)},
			{Node: "edge-b", Path: "relayed", Relay: "relay-1", RTTMillis: 23.4, LastActivity: now.Add(-90 * time.Second)},
			{Node: "edge-c", Path: "none", LastError: "connect to edge-c: all dials failed"},
		},
		Unavailable: map[string]string{"traffic": "data plane is not up"},
	}
	var b bytes.Buffer
	if err := writeStatus(&b, o, now); err != nil {
		t.Fatal(err)
	}
	want := `Node:       edge-1, edgelink v0.1
Peer ID:    12D3KooW (reachability private)
Segments:   10.245.0.0/16
Pod CIDRs:  10.245.5.0/24, 10.245.6.2/32
TUN:        edgelink0, MTU 1420
Relays:     relay-1 reserved; relay-2 NOT reserved (dial timeout)
Note:       no traffic information: data plane is not up

PEER     PATH                                        RTT     IN                 OUT           DROPS  LAST ACTIVITY  PATH SINCE
cloud-1  direct-tcp                                  0.42ms  2.0 MiB/1500 pkts  512 B/3 pkts  0      5s ago         2h ago
edge-b   relayed via relay-1                         23ms    0 B                0 B           0      1m ago         -
edge-c   none (connect to edge-c: all dials failed)  -       0 B                0 B           0      -              -
`
	if got := b.String(); got != want {
		t.Errorf("status:\n%s\nwant:\n%s", got, want)
	}
}

func TestWriteDiagnosis(t *testing.T) {
	d := agentapi.Diagnosis{Node: "edge-1", Checks: []agentapi.Check{
		agentapi.OK("TUN up", "edgelink0 is up"),
		agentapi.Fail("routes present", "1 of 3 planned routes missing", "wait 10 s"),
		agentapi.Skip("IPAM socket answering", "the ipam module is disabled"),
	}}
	var b bytes.Buffer
	_ = writeDiagnosis(&b, d)
	want := `OK    TUN up: edgelink0 is up
FAIL  routes present: 1 of 3 planned routes missing
      fix: wait 10 s
SKIP  IPAM socket answering: the ipam module is disabled

1 of 3 checks failed on edge-1.
`
	if b.String() != want || !d.Failed() {
		t.Errorf("diagnosis:\n%s\nwant:\n%s", b.String(), want)
	}
	d.Checks = d.Checks[:1]
	b.Reset()
	_ = writeDiagnosis(&b, d)
	if !strings.HasSuffix(b.String(), "All 1 checks passed on edge-1.\n") || d.Failed() {
		t.Errorf("all OK:\n%s", b.String())
	}
}

func TestWriteRoutes(t *testing.T) {
	rs := agentapi.Routes{TUN: "edgelink0", Segments: []string{"10.245.0.0/16"},
		Local: []agentapi.Route{{Dst: "10.245.5.0/24", Kind: "node"}},
		Kernel: []agentapi.Route{
			{Dst: "10.244.0.0/16", Dev: "edgelink0", Kind: "segment", Why: "another segment", InKernel: true},
			{Dst: "10.245.6.2/32", Via: "192.168.1.12", Kind: "pod", Node: "edge-a2", Why: "same segment, same LAN: edge-a2"},
		},
		Forward: []agentapi.Route{{Dst: "10.244.1.0/24", Node: "cloud-1", Kind: "node"}}}
	var b bytes.Buffer
	_ = writeRoutes(&b, rs)
	for _, want := range []string{
		"10.244.0.0/16  dev edgelink0  segment  -        present  another segment",
		"10.245.6.2/32  192.168.1.12   pod      edge-a2  MISSING  same segment, same LAN: edge-a2",
		"10.244.1.0/24  cloud-1  node",
		"10.245.5.0/24  node",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("routes lack %q:\n%s", want, b.String())
		}
	}
}

func TestHumanAndAgo(t *testing.T) {
	for n, want := range map[uint64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 3 << 30: "3.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
	now := time.Now()
	for d, want := range map[time.Duration]string{0: "now", 3 * time.Second: "3s ago", 5 * time.Minute: "5m ago", 3 * time.Hour: "3h ago", 72 * time.Hour: "3d ago"} {
		if got := ago(now, now.Add(-d)); got != want {
			t.Errorf("ago(%s) = %q, want %q", d, got, want)
		}
	}
	if ago(now, time.Time{}) != "-" {
		t.Error("never is not -")
	}
}

func TestFatalPingError(t *testing.T) {
	for err, want := range map[error]bool{
		&statusclient.NotRunningError{Socket: "/x", Err: errors.New("no")}:                    true,
		&statusclient.HTTPError{Status: http.StatusNotFound}:                                  true,
		&statusclient.HTTPError{Status: http.StatusConflict}:                                  true,
		fmt.Errorf("wrapped: %w", &statusclient.HTTPError{Status: http.StatusGatewayTimeout}): false,
		&statusclient.HTTPError{Status: http.StatusServiceUnavailable}:                        false,
	} {
		if fatalPingError(err) != want {
			t.Errorf("fatalPingError(%v) = %v", err, !want)
		}
	}
}

// `edgelink ping --timeout` outside 1ms..60s is refused before asking the
// agent.
func TestPingTimeoutFlag(t *testing.T) {
	for _, tc := range []struct{ timeout, want string }{
		{"2m", "--timeout 2m0s: give between 1ms and 1m0s"},
		{"0s", "--timeout 0s: give between 1ms and 1m0s"},
		{"100us", "--timeout 100µs: give between 1ms and 1m0s"},
	} {
		var out, errb bytes.Buffer
		root := newRoot(&out, &errb)
		root.SetArgs([]string{"ping", "--socket", filepath.Join(t.TempDir(), "none.sock"), "--timeout", tc.timeout, "edge-2"})
		if err := root.Execute(); err == nil || err.Error() != tc.want {
			t.Errorf("--timeout %s: error %v, want %q", tc.timeout, err, tc.want)
		}
	}
}
