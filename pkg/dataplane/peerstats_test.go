package dataplane

import (
	"bytes"
	"io"
	"net/netip"
	"testing"
	"time"
)

// Per-peer counters: what a peer sent us (accepted and spoofed) and what
// we sent it land on that peer's entry only.
func TestPeerStats(t *testing.T) {
	f, dev, _ := newTestForwarder(t)
	good := ipv4([4]byte{10, 245, 1, 5}, [4]byte{10, 244, 1, 2}, 60)
	var stream []byte
	for _, p := range [][]byte{good, good, ipv4([4]byte{10, 245, 2, 5}, [4]byte{10, 244, 1, 2}, 60)} {
		stream = AppendFrame(stream, p)
	}
	f.Receive("edge-2", io.NopCloser(bytes.NewReader(stream)))
	dev.in <- ipv4([4]byte{10, 244, 1, 2}, [4]byte{10, 245, 2, 9}, 100)
	deadline := time.Now().Add(5 * time.Second)
	for f.Snapshot().TxPackets < 1 {
		if time.Now().After(deadline) {
			t.Fatal("nothing sent")
		}
		time.Sleep(10 * time.Millisecond)
	}
	ps := f.PeerStats()
	if len(ps) != 2 || ps[0].Node != "edge-2" || ps[1].Node != "edge-3" {
		t.Fatalf("peers: %+v", ps)
	}
	e2, e3 := ps[0], ps[1]
	if e2.RxPackets != 2 || e2.RxBytes != uint64(2*len(good)) || e2.DropSpoofed != 1 || e2.TxPackets != 0 || e2.LastRx.IsZero() || e2.Prefixes != 2 {
		t.Errorf("edge-2: %+v", e2)
	}
	if e3.TxPackets != 1 || e3.TxBytes != uint64(len(AppendFrame(nil, make([]byte, 100)))) || e3.RxPackets != 0 || e3.LastTx.IsZero() || !e3.LastRx.IsZero() {
		t.Errorf("edge-3: %+v", e3)
	}
	// A node leaving the plan takes its counters with it.
	f.SetPlan(&Plan{Local: testPlan.Local, Remote: map[string][]netip.Prefix{"edge-3": testPlan.Remote["edge-3"]}})
	if ps := f.PeerStats(); len(ps) != 1 || ps[0].Node != "edge-3" || ps[0].TxPackets != 1 {
		t.Errorf("after edge-2 left: %+v", ps)
	}
}
