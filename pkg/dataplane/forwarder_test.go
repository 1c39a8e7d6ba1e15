package dataplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/tun"
)

// fakeTUN is a TUN device for unit tests of the forwarder's logic: reads
// come from in, writes are recorded.
type fakeTUN struct {
	in     chan []byte
	closed chan struct{}
	once   sync.Once

	mu      sync.Mutex
	written [][]byte
}

func newFakeTUN() *fakeTUN { return &fakeTUN{in: make(chan []byte, 16), closed: make(chan struct{})} }

func (d *fakeTUN) File() *os.File { return nil }
func (d *fakeTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	select {
	case p := <-d.in:
		sizes[0] = copy(bufs[0][offset:], p)
		return 1, nil
	case <-d.closed:
		return 0, os.ErrClosed
	}
}
func (d *fakeTUN) Write(bufs [][]byte, offset int) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, b := range bufs {
		d.written = append(d.written, bytes.Clone(b[offset:]))
	}
	return len(bufs), nil
}
func (d *fakeTUN) MTU() (int, error)        { return 1420, nil }
func (d *fakeTUN) Name() (string, error)    { return "fake0", nil }
func (d *fakeTUN) Events() <-chan tun.Event { return nil }
func (d *fakeTUN) BatchSize() int           { return 8 }
func (d *fakeTUN) Close() error             { d.once.Do(func() { close(d.closed) }); return nil }
func (d *fakeTUN) packets() [][]byte {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([][]byte(nil), d.written...)
}

// fakeNet records what the forwarder sends per node: all of it (sent),
// and each stream it opened, on the path generation gen held then.
type fakeNet struct {
	mu      sync.Mutex
	gen     uint64        // every node's current path (0: none)
	pending bool          // without a path, one is being set up
	changed chan struct{} // closed when gen changes
	sent    map[string]*bytes.Buffer
	streams map[string][]*fakeStream
}

// setPath moves every node to path generation gen (0: no path) and tells
// the senders, as the tunnel's path manager does.
func (n *fakeNet) setPath(gen uint64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.gen = gen
	if n.changed != nil {
		close(n.changed)
	}
	n.changed = make(chan struct{})
}

// fakeStream is one stream the forwarder opened.
type fakeStream struct {
	n      *fakeNet
	node   string
	gen    uint64
	buf    bytes.Buffer
	closed bool
}

func (s *fakeStream) Write(p []byte) (int, error) {
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	if s.closed {
		return 0, os.ErrClosed
	}
	s.buf.Write(p)
	return s.n.sent[s.node].Write(p)
}

func (s *fakeStream) Close() error {
	s.n.mu.Lock()
	defer s.n.mu.Unlock()
	s.closed = true
	return nil
}

func (n *fakeNet) Open(_ context.Context, node string) (io.WriteCloser, <-chan struct{}, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.changed == nil {
		n.changed = make(chan struct{})
	}
	if n.gen == 0 && n.pending {
		return nil, n.changed, fmt.Errorf("%s: %w", node, ErrPathPending)
	}
	if n.gen == 0 {
		return nil, n.changed, errors.New("no path")
	}
	if n.sent[node] == nil {
		n.sent[node] = &bytes.Buffer{}
	}
	if n.streams == nil {
		n.streams = map[string][]*fakeStream{}
	}
	s := &fakeStream{n: n, node: node, gen: n.gen}
	n.streams[node] = append(n.streams[node], s)
	return s, n.changed, nil
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }

var testPlan = &Plan{
	Local: []netip.Prefix{pfx("10.244.1.0/24")},
	Remote: map[string][]netip.Prefix{
		"edge-2": {pfx("10.245.1.0/24"), pfx("10.244.9.7/32")},
		"edge-3": {pfx("10.245.2.0/24")},
	},
}

func newTestForwarder(t *testing.T) (*Forwarder, *fakeTUN, *fakeNet) {
	dev := newFakeTUN()
	f, n := newTestForwarderOn(t, newPlainDevice(dev), dev)
	return f, dev, n
}

// newTestForwarderOn is newTestForwarder on the Device d made of dev.
func newTestForwarderOn(t *testing.T, d Device, dev *fakeTUN) (*Forwarder, *fakeNet) {
	n := &fakeNet{sent: map[string]*bytes.Buffer{}}
	n.setPath(1)
	f := newForwarder(d, n)
	t.Cleanup(func() { dev.Close(); f.Close() })
	f.SetPlan(testPlan)
	return f, n
}

// A frame from a peer is accepted only if its inner source is that peer's
// and its destination is ours; everything else is dropped and counted.
func TestReceiveAntiSpoofing(t *testing.T) {
	f, dev, _ := newTestForwarder(t)
	var stream []byte
	good := ipv4([4]byte{10, 245, 1, 5}, [4]byte{10, 244, 1, 2}, 60)
	host := ipv4([4]byte{10, 244, 9, 7}, [4]byte{10, 244, 1, 2}, 60) // edge-2's /32
	for _, p := range [][]byte{
		good,
		ipv4([4]byte{10, 245, 2, 5}, [4]byte{10, 244, 1, 2}, 60), // edge-3's source, sent by edge-2
		ipv4([4]byte{10, 244, 1, 9}, [4]byte{10, 244, 1, 2}, 60), // our own pod's source
		ipv4([4]byte{8, 8, 8, 8}, [4]byte{10, 244, 1, 2}, 60),    // nobody's
		ipv4([4]byte{10, 245, 1, 5}, [4]byte{10, 245, 2, 1}, 60), // not for us: transit
		host,
	} {
		stream = AppendFrame(stream, p)
	}
	f.Receive("edge-2", io.NopCloser(bytes.NewReader(stream)))
	got := dev.packets()
	if len(got) != 2 || !bytes.Equal(got[0], good) || !bytes.Equal(got[1], host) {
		t.Fatalf("written to the TUN: %d packets, want the 2 legitimate ones", len(got))
	}
	s := f.Snapshot()
	if s.DropSpoofed != 3 || s.DropNotLocal != 1 || s.RxPackets != 2 {
		t.Errorf("counters: %+v", s)
	}
}

// A stream breaking the framing is closed after what came before it.
func TestReceiveClosesBadStream(t *testing.T) {
	f, dev, _ := newTestForwarder(t)
	stream := AppendFrame(nil, ipv4([4]byte{10, 245, 1, 5}, [4]byte{10, 244, 1, 2}, 60))
	stream = append(stream, 0x7f, 0, 0, 20)
	stream = AppendFrame(stream, ipv4([4]byte{10, 245, 1, 5}, [4]byte{10, 244, 1, 2}, 60))
	f.Receive("edge-2", io.NopCloser(bytes.NewReader(stream)))
	if n := len(dev.packets()); n != 1 {
		t.Errorf("%d packets written, want only the one before the bad frame", n)
	}
	if s := f.Snapshot(); s.BadStreams != 1 {
		t.Errorf("badStreams %d", s.BadStreams)
	}
}

// Outbound: a packet goes to the node owning its destination (longest
// prefix wins); an address nobody has gets ICMP host unreachable back.
func TestSendAndUnreachable(t *testing.T) {
	f, dev, n := newTestForwarder(t)
	toEdge3 := ipv4([4]byte{10, 244, 1, 2}, [4]byte{10, 245, 2, 9}, 100)
	toHost := ipv4([4]byte{10, 244, 1, 2}, [4]byte{10, 244, 9, 7}, 100)
	dev.in <- toEdge3
	dev.in <- toHost
	dev.in <- ipv4([4]byte{10, 244, 1, 2}, [4]byte{10, 246, 0, 1}, 100)
	deadline := time.Now().Add(5 * time.Second)
	for len(dev.packets()) == 0 || f.Snapshot().TxPackets < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("nothing sent or answered: %+v", f.Snapshot())
		}
		time.Sleep(10 * time.Millisecond)
	}
	n.mu.Lock()
	e3, e2 := n.sent["edge-3"].Bytes(), n.sent["edge-2"].Bytes()
	n.mu.Unlock()
	if !bytes.Equal(e3, AppendFrame(nil, toEdge3)) || !bytes.Equal(e2, AppendFrame(nil, toHost)) {
		t.Errorf("sent to edge-3 %d bytes, to edge-2 %d", len(e3), len(e2))
	}
	icmp := dev.packets()[0]
	if icmp[9] != 1 || icmp[20] != 3 || icmp[21] != 1 || checksum(icmp[:20], 0) != 0 || checksum(icmp[20:], 0) != 0 {
		t.Errorf("not a valid ICMP host unreachable: % x", icmp[:28])
	}
	if src, dst, _ := addrs(icmp); src != netip.MustParseAddr("10.246.0.1") || dst != netip.MustParseAddr("10.244.1.2") {
		t.Errorf("ICMP from %s to %s", src, dst)
	}
}

// When a peer's path changes (a relay died, a direct path came up), the
// next packets go out on a stream opened on the new path and the old
// stream is closed; with no path they are dropped and counted, and the
// first packet after a path is back opens one.
func TestSendFollowsPathChanges(t *testing.T) {
	f, dev, n := newTestForwarder(t)
	streams := func() []*fakeStream {
		n.mu.Lock()
		defer n.mu.Unlock()
		return append([]*fakeStream(nil), n.streams["edge-3"]...)
	}
	// sendOne sends packet i to edge-3 and waits until the forwarder has
	// dealt with it (sent or dropped).
	sendOne := func(i int) []byte {
		t.Helper()
		before := f.Snapshot()
		p := ipv4([4]byte{10, 244, 1, 2}, [4]byte{10, 245, 2, byte(i)}, 100)
		dev.in <- p
		deadline := time.Now().Add(5 * time.Second)
		for {
			s := f.Snapshot()
			if s.TxPackets+s.DropQueue > before.TxPackets+before.DropQueue {
				return p
			}
			if time.Now().After(deadline) {
				t.Fatalf("packet %d neither sent nor dropped: %+v", i, s)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	carried := func(s *fakeStream, pkts ...[]byte) {
		t.Helper()
		var want []byte
		for _, p := range pkts {
			want = AppendFrame(want, p)
		}
		n.mu.Lock()
		got := bytes.Clone(s.buf.Bytes())
		n.mu.Unlock()
		if !bytes.Equal(got, want) {
			t.Errorf("stream on path %d carried %d bytes, want %d (%d packets)", s.gen, len(got), len(want), len(pkts))
		}
	}

	p1, p2 := sendOne(1), sendOne(2)
	n.setPath(2) // the path changed
	p3 := sendOne(3)
	st := streams()
	if len(st) != 2 || st[0].gen != 1 || st[1].gen != 2 {
		t.Fatalf("streams opened: %d, want one on path 1 then one on path 2", len(st))
	}
	carried(st[0], p1, p2)
	carried(st[1], p3)
	if !st[0].closed || st[1].closed {
		t.Errorf("after the path change: old stream closed %v, new stream closed %v", st[0].closed, st[1].closed)
	}

	n.setPath(0) // no path at all
	drops := f.Snapshot().DropQueue
	sendOne(4)
	if got := f.Snapshot().DropQueue; got != drops+1 {
		t.Errorf("a packet without a path: DropQueue %d -> %d, want +1", drops, got)
	}
	if st := streams(); len(st) != 2 || !st[1].closed {
		t.Errorf("without a path: %d streams, the last closed %v; want no new stream and the last closed", len(st), st[len(st)-1].closed)
	}
	n.setPath(3)
	p5 := sendOne(5)
	st = streams()
	if len(st) != 3 || st[2].gen != 3 {
		t.Fatalf("after the path came back: %d streams, want a third on path 3", len(st))
	}
	carried(st[2], p5)
}

// While the transport sets a path up (paths on demand: Open says
// ErrPathPending), packets for the node wait in its queue instead of
// being dropped, and go out in order on the stream opened once the path
// is there.
func TestSendWaitsForAPendingPath(t *testing.T) {
	f, dev, n := newTestForwarder(t)
	n.mu.Lock()
	n.pending = true
	n.mu.Unlock()
	n.setPath(0)
	var pkts [][]byte
	for i := 1; i <= 3; i++ {
		p := ipv4([4]byte{10, 244, 1, 2}, [4]byte{10, 245, 2, byte(i)}, 100)
		pkts = append(pkts, p)
		dev.in <- p
	}
	time.Sleep(200 * time.Millisecond)
	if s := f.Snapshot(); s.DropQueue != 0 || s.TxPackets != 0 {
		t.Fatalf("while the path was pending: %+v, want nothing sent and nothing dropped", s)
	}
	n.setPath(7)
	deadline := time.Now().Add(5 * time.Second)
	for f.Snapshot().TxPackets < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("queued packets not sent once the path came: %+v", f.Snapshot())
		}
		time.Sleep(5 * time.Millisecond)
	}
	var want []byte
	for _, p := range pkts {
		want = AppendFrame(want, p)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if st := n.streams["edge-3"]; len(st) != 1 || st[0].gen != 7 || !bytes.Equal(st[0].buf.Bytes(), want) {
		t.Errorf("streams to edge-3: %d, want one on path 7 carrying the three packets in order", len(st))
	}
	if s := f.Snapshot(); s.DropQueue != 0 {
		t.Errorf("DropQueue %d, want 0", s.DropQueue)
	}
}

// Plans swap atomically under concurrent lookups: every lookup sees one
// whole plan or the other, never a mix or nothing.
func TestPlanSwapUnderLookups(t *testing.T) {
	f, _, _ := newTestForwarder(t)
	other := &Plan{Local: testPlan.Local, Remote: map[string][]netip.Prefix{"edge-3": {pfx("10.245.1.0/24")}, "edge-2": {pfx("10.245.2.0/24")}}}
	a, b := netip.MustParseAddr("10.245.1.1"), netip.MustParseAddr("10.245.2.1")
	// What a reader of one table sees for (a, b): the whole of one plan.
	whole := map[[2]string]string{{"edge-2", "edge-3"}: "testPlan", {"edge-3", "edge-2"}: "other"}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan string, 4)
	var seen sync.Map // plan name -> *atomic.Int64
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				tbl := f.tbl.Load() // one table, as a forwarder's batch reads it
				da, oka := tbl.lookup(a)
				db, okb := tbl.lookup(b)
				if !oka || !okb || da.link == nil || db.link == nil {
					errs <- "a lookup found no route"
					return
				}
				plan, ok := whole[[2]string{da.link.node, db.link.node}]
				if !ok {
					errs <- fmt.Sprintf("a mix of plans: %s via %s, %s via %s", a, da.link.node, b, db.link.node)
					return
				}
				c, _ := seen.LoadOrStore(plan, new(atomic.Int64))
				c.(*atomic.Int64).Add(1)
			}
		}(i)
	}
	count := func(plan string) int64 {
		if c, ok := seen.Load(plan); ok {
			return c.(*atomic.Int64).Load()
		}
		return 0
	}
	// At least 2000 swaps, and on until the readers have seen both plans
	// (bounded: a loaded machine may be slow to schedule them).
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; i < 2000 || ((count("testPlan") == 0 || count("other") == 0) && time.Now().Before(deadline)); i++ {
		if i%2 == 0 {
			f.SetPlan(other)
		} else {
			f.SetPlan(testPlan)
		}
		if i%100 == 0 {
			runtime.Gosched()
		}
	}
	f.SetPlan(testPlan)
	close(stop)
	wg.Wait()
	select {
	case e := <-errs:
		t.Fatal(e)
	default:
	}
	if count("testPlan") == 0 || count("other") == 0 {
		t.Errorf("the readers saw testPlan %d times, other %d times: the swaps were not under lookups", count("testPlan"), count("other"))
	}
	if node, _ := f.Lookup(a); node != "edge-2" {
		t.Errorf("after the last swap 10.245.1.1 goes to %q", node)
	}
}

func TestPlanString(t *testing.T) {
	want := "local  10.244.1.0/24\nremote 10.244.9.7/32 via edge-2\nremote 10.245.1.0/24 via edge-2\nremote 10.245.2.0/24 via edge-3\n"
	if got := testPlan.String(); got != want {
		t.Errorf("plan:\n%s\nwant:\n%s", got, want)
	}
}

// The ICMP errors a peer's own kernel sends about our pods' packets come
// from its node address, outside its pod prefixes: they are taken (path
// MTU discovery across the mesh needs "fragmentation needed"), and only
// those: other ICMP, UDP, or an error from another node's address are
// still spoofed.
func TestReceiveICMPErrorsFromThePeersNode(t *testing.T) {
	f, dev, _ := newTestForwarder(t)
	plan := *testPlan
	plan.Hosts = map[string][]netip.Addr{"edge-2": {netip.MustParseAddr("192.168.1.12")}, "edge-3": {netip.MustParseAddr("192.168.3.13")}}
	f.SetPlan(&plan)
	icmp := func(src [4]byte, typ byte) []byte {
		p := ipv4(src, [4]byte{10, 244, 1, 2}, 56)
		p[9], p[20], p[21] = 1, typ, 4 // ICMP, code 4: fragmentation needed (with type 3)
		return p
	}
	edge2, edge3 := [4]byte{192, 168, 1, 12}, [4]byte{192, 168, 3, 13}
	fragNeeded, timeExceeded := icmp(edge2, 3), icmp(edge2, 11)
	var stream []byte
	for _, p := range [][]byte{
		fragNeeded,
		timeExceeded,
		icmp(edge2, 8),                          // an echo request from the node address: not an error
		ipv4(edge2, [4]byte{10, 244, 1, 2}, 60), // UDP from the node address
		icmp(edge3, 3),                          // edge-3's node address, sent by edge-2
		icmp([4]byte{192, 168, 1, 99}, 3),       // nobody's
	} {
		stream = AppendFrame(stream, p)
	}
	f.Receive("edge-2", io.NopCloser(bytes.NewReader(stream)))
	got := dev.packets()
	if len(got) != 2 || !bytes.Equal(got[0], fragNeeded) || !bytes.Equal(got[1], timeExceeded) {
		t.Fatalf("written to the TUN: %d packets, want the 2 ICMP errors from edge-2's node", len(got))
	}
	if s := f.Snapshot(); s.DropSpoofed != 4 {
		t.Errorf("spoofed drops %d, want 4", s.DropSpoofed)
	}
}

func TestIsICMPError(t *testing.T) {
	v6 := func(next, typ byte) []byte {
		p := make([]byte, 48)
		p[0], p[6], p[40] = 0x60, next, typ
		return p
	}
	frag := ipv4([4]byte{1}, [4]byte{2}, 56)
	frag[9], frag[20], frag[6] = 1, 3, 0x20 // more fragments: a fragment's body is not a header
	for name, tc := range map[string]struct {
		pkt  []byte
		want bool
	}{
		"v6 packet too big":            {v6(58, 2), true},
		"v6 destination unreachable":   {v6(58, 1), true},
		"v6 echo request":              {v6(58, 128), false},
		"v6 UDP":                       {v6(17, 1), false},
		"v4 fragment of an ICMP error": {frag, false},
	} {
		if got := isICMPError(tc.pkt); got != tc.want {
			t.Errorf("%s: %v, want %v", name, got, tc.want)
		}
	}
}

// An idle inbound stream costs its read buffer, not a batch's buffers
// (32 full-size packets): members holding streams open without sending
// cannot make a node hold megabytes per stream.
func TestIdleStreamsCostTheirBufferOnly(t *testing.T) {
	f, _, _ := newTestForwarder(t)
	const streams = 32
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	before := ms.HeapInuse
	var wg sync.WaitGroup
	writers := make([]*io.PipeWriter, streams)
	for i := range writers {
		r, w := io.Pipe()
		writers[i] = w
		wg.Add(1)
		go func() { defer wg.Done(); f.Receive(fmt.Sprintf("node-%d", i), r) }()
	}
	time.Sleep(200 * time.Millisecond) // every Receive waits for data
	runtime.GC()
	runtime.ReadMemStats(&ms)
	grew := int64(ms.HeapInuse) - int64(before)
	for _, w := range writers {
		w.Close()
	}
	wg.Wait()
	if perStream := grew / streams; perStream > 2*streamBuffer {
		t.Errorf("%d idle streams grew the heap by %d KiB, %d KiB each; want about the %d KiB read buffer", streams, grew>>10, perStream>>10, streamBuffer>>10)
	}
}

// A node sends on one packet stream at a time: a newer stream from the
// same node ends the older one (a member opening many is read on one),
// and the newer one carries on.
func TestReceiveNewestStreamWins(t *testing.T) {
	f, dev, _ := newTestForwarder(t)
	r1, w1 := io.Pipe()
	r2, w2 := io.Pipe()
	first, second := make(chan struct{}), make(chan struct{})
	go func() { defer close(first); f.Receive("edge-2", r1) }()
	time.Sleep(50 * time.Millisecond) // the first is edge-2's stream
	go func() { defer close(second); f.Receive("edge-2", r2) }()
	select {
	case <-first:
	case <-time.After(5 * time.Second):
		t.Fatal("edge-2's older packet stream still open after it opened a newer one")
	}
	if _, err := w1.Write(AppendFrame(nil, ipv4([4]byte{10, 245, 1, 5}, [4]byte{10, 244, 1, 2}, 60))); err == nil {
		t.Error("the older stream still takes data")
	}
	good := ipv4([4]byte{10, 245, 1, 6}, [4]byte{10, 244, 1, 2}, 60)
	if _, err := w2.Write(AppendFrame(nil, good)); err != nil {
		t.Fatalf("the newer stream: %v", err)
	}
	w2.Close()
	<-second
	if got := dev.packets(); len(got) != 1 || !bytes.Equal(got[0], good) {
		t.Errorf("written to the TUN: %d packets, want the newer stream's one", len(got))
	}
}

// A stream that brings nothing for receiveIdle is closed: a peer gone
// quiet (or a member holding streams) keeps no buffer and no goroutine.
func TestReceiveClosesIdleStream(t *testing.T) {
	f, _, _ := newTestForwarder(t)
	f.receiveIdle = 100 * time.Millisecond
	ours, theirs := net.Pipe()
	defer theirs.Close()
	done := make(chan struct{})
	go func() { defer close(done); f.Receive("edge-2", ours) }()
	if _, err := theirs.Write(AppendFrame(nil, ipv4([4]byte{10, 245, 1, 5}, [4]byte{10, 244, 1, 2}, 60))); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("an idle packet stream is still open 5 s after its idle timeout")
	}
	if f.Snapshot().RxPackets != 1 {
		t.Errorf("the packet before the idle time was not delivered: %+v", f.Snapshot())
	}
}

// A stream that keeps bringing data stays open past receiveIdle: the
// read deadline, refreshed only now and then, moves with the data.
func TestReceiveKeepsBusyStream(t *testing.T) {
	f, _, _ := newTestForwarder(t)
	f.receiveIdle = time.Second
	ours, theirs := net.Pipe()
	defer theirs.Close()
	done := make(chan struct{})
	go func() { defer close(done); f.Receive("edge-2", ours) }()
	frame := AppendFrame(nil, ipv4([4]byte{10, 245, 1, 5}, [4]byte{10, 244, 1, 2}, 60))
	for i := range 50 { // 2.5 s, a packet every 50 ms
		if _, err := theirs.Write(frame); err != nil {
			t.Fatalf("packet %d: the busy stream was closed: %v", i, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	select {
	case <-done:
		t.Fatal("a busy packet stream was closed")
	default:
	}
	theirs.Close()
	<-done
	if got := f.Snapshot().RxPackets; got != 50 {
		t.Errorf("%d packets delivered, want 50", got)
	}
}

// A sender closes its stream after sendIdle without a batch, and opens a
// new one for the next.
func TestSendClosesIdleStream(t *testing.T) {
	dev := newFakeTUN()
	n := &fakeNet{sent: map[string]*bytes.Buffer{}}
	n.setPath(1)
	f := newForwarder(newPlainDevice(dev), n)
	f.sendIdle = 100 * time.Millisecond
	t.Cleanup(func() { dev.Close(); f.Close() })
	f.SetPlan(testPlan)
	streams := func() []*fakeStream {
		n.mu.Lock()
		defer n.mu.Unlock()
		return append([]*fakeStream(nil), n.streams["edge-3"]...)
	}
	isClosed := func(s *fakeStream) bool { n.mu.Lock(); defer n.mu.Unlock(); return s.closed }
	dev.in <- ipv4([4]byte{10, 244, 1, 2}, [4]byte{10, 245, 2, 9}, 100)
	waitFor(t, "a stream to edge-3", func() bool { return len(streams()) == 1 })
	waitFor(t, "the idle stream closed", func() bool { return isClosed(streams()[0]) })
	dev.in <- ipv4([4]byte{10, 244, 1, 2}, [4]byte{10, 245, 2, 9}, 100)
	waitFor(t, "a new stream for the next packet", func() bool { return len(streams()) == 2 && f.Snapshot().TxPackets == 2 })
}

// The batches waiting for a peer that does not take them hold at most
// queueBytes: the rest are dropped and counted.
func TestSendQueueBoundedInBytes(t *testing.T) {
	dev := newFakeTUN()
	tr := &stalledNet{release: make(chan struct{})}
	f := newForwarder(newPlainDevice(dev), tr)
	t.Cleanup(func() { close(tr.release); dev.Close(); f.Close() })
	f.SetPlan(testPlan)
	const bursts = 100
	for range bursts {
		dev.in <- ipv4([4]byte{10, 244, 1, 2}, [4]byte{10, 245, 2, 9}, 100)
	}
	perBatch := int64(cap(*f.frames.Get().(*[]byte)))
	maxQueued := queueBytes / perBatch // one more is in the stalled Write
	waitFor(t, "the TUN read", func() bool {
		s := f.Snapshot()
		return s.DropQueue+uint64(maxQueued)+1 >= bursts
	})
	time.Sleep(50 * time.Millisecond)
	f.mu.Lock()
	queued := f.links["edge-3"].queued.Load()
	f.mu.Unlock()
	if queued > queueBytes {
		t.Errorf("%d KiB queued for a peer that takes nothing, want at most %d KiB", queued>>10, queueBytes>>10)
	}
	if s := f.Snapshot(); s.DropQueue < bursts-uint64(maxQueued)-1 {
		t.Errorf("dropped %d of %d batches, want all but %d", s.DropQueue, bursts, maxQueued+1)
	}
}

// stalledNet's streams block every Write until release closes.
type stalledNet struct{ release chan struct{} }

func (n *stalledNet) Open(context.Context, string) (io.WriteCloser, <-chan struct{}, error) {
	return stalledStream{n.release}, make(chan struct{}), nil // the path never changes
}

type stalledStream struct{ release chan struct{} }

func (s stalledStream) Write(p []byte) (int, error) { <-s.release; return 0, os.ErrClosed }
func (s stalledStream) Close() error                { return nil }

// waitFor polls cond for up to 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 5 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
