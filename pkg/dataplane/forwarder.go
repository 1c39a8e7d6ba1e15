// Package dataplane moves pod packets between the TUN device and the
// tunnel: a burst read from the TUN is split by destination node in a
// longest-prefix-match table and goes out as one framed write per peer;
// frames from a peer are checked (the inner source must be that peer's
// pod, the destination one of ours) and written to the TUN in batches,
// coalesced again (GRO). The TUN is a Device (device.go): on Linux the
// wireguard-go tun package's with offloads, where TCP super-packets the
// kernel hands over travel unsplit and are written to the peer's TUN as
// they are, checked (vnet.go). The forwarder reads and writes every
// packet with its virtio-net header, whatever the device.
//
// Per packet there is no lock, no allocation, no map lookup by string and
// no log: the table is an immutable bart.Table swapped atomically, each
// destination's value is its peer link, and buffers come from pools.
package dataplane

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gaissmai/bart"
	"golang.zx2c4.com/wireguard/tun"
	"k8s.io/klog/v2"
)

// Transport carries frame streams to and from peers (the tunnel module
// implements it on libp2p).
type Transport interface {
	// Open opens a stream to send frames to node on its current path.
	// changed is closed when that path stops being node's (another
	// connection took over, it died, node was let go): the forwarder then
	// opens again. Without a path Open fails, and changed closes when
	// there may be one. Checking changed is the forwarder's only per-batch
	// question to the transport: no lock, no lookup. An error wrapping
	// ErrPathPending says a path is being set up (paths on demand): the
	// sender then holds its batch, and the link's queue the ones behind
	// it, until changed closes, for at most pendingWait.
	Open(ctx context.Context, node string) (w io.WriteCloser, changed <-chan struct{}, err error)
}

// ErrPathPending (wrapped) from Transport.Open: the transport is setting
// up a path to the node right now.
var ErrPathPending = errors.New("path being set up")

// pendingWait bounds how long a sender holds a batch for a path being set
// up (the tunnel gives a dial 15 s).
const pendingWait = 15 * time.Second

// Offset is the headroom each TUN buffer keeps in front of a packet (its
// virtio-net header goes there, and the tun package's own).
const Offset = 16

// queueDepth and queueBytes bound the batches waiting for one peer, in
// number and in the bytes their buffers hold: a slow peer (or one that
// stops reading) loses packets (counted) instead of stalling the others
// or holding more than queueBytes of ours.
const (
	queueDepth = 64
	queueBytes = 2 << 20
)

// Packet streams end when idle, so that a peer gone quiet holds no
// buffers and no goroutine of ours: a sender closes its stream once it
// has carried no batch for between sendIdle/2 and sendIdle (it checks
// every sendIdle/2; it opens a new one at the next batch), a receiver
// closes one that brought nothing for receiveIdle (a sender that does not
// close its own; it refreshes its read deadline every
// receiveIdle/receiveRefresh at most, so between 15/16 of receiveIdle and
// receiveIdle after the last data).
const (
	sendIdle       = time.Minute
	receiveIdle    = 2 * sendIdle
	receiveRefresh = 16
)

// Stats count what the forwarder did; all fields are atomic.
type Stats struct {
	TxPackets, TxBytes, RxPackets, RxBytes atomic.Uint64
	TxOffload, RxOffload                   atomic.Uint64 // of the packets: super-packets carried unsplit (vnet.go)
	DropNoRoute                            atomic.Uint64 // TUN packet for an address no node has (ICMP sent)
	DropLoop                               atomic.Uint64 // TUN packet for a local pod
	DropQueue                              atomic.Uint64 // peer too slow or unreachable
	DropSpoofed                            atomic.Uint64 // inner source not the sending peer's
	DropNotLocal                           atomic.Uint64 // inner destination not a pod here
	DropMalformed                          atomic.Uint64
	BadStreams                             atomic.Uint64 // streams closed for a bad frame
}

// StatsSnapshot is Stats as plain numbers.
type StatsSnapshot struct {
	TxPackets, TxBytes, RxPackets, RxBytes                                     uint64
	TxOffload, RxOffload                                                       uint64
	DropNoRoute, DropLoop, DropQueue, DropSpoofed, DropNotLocal, DropMalformed uint64
	BadStreams                                                                 uint64
}

// Forwarder is the data path of one node.
//
// Locking: mu guards links and plan (SetPlan, Close); the packet paths
// read only the atomic table.
type Forwarder struct {
	dev Device
	rmu sync.Mutex // held while reading the TUN and dispatching; guards tx
	tx  *txBurst
	tr  Transport

	tbl   atomic.Pointer[table]
	Stats Stats

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	links   map[string]*link
	inbound map[string]*inboundStream // each node's newest packet stream to us

	icmpTokens atomic.Int64
	batches    sync.Pool // *rxBatch

	sendIdle, receiveIdle time.Duration // the constants; tests shorten them
	frames                sync.Pool     // *[]byte
	readers               sync.Pool     // *bufio.Reader of streamBuffer bytes
}

// link is the way to one peer node.
type link struct {
	node    string
	ch      chan *[]byte
	cancel  context.CancelFunc
	queued  atomic.Int64 // bytes of the batches in ch (their buffers' capacity)
	pending *[]byte      // filled by dispatch only
	ipOnly  []byte       // send's: a batch as IP frames only, for a version-1 stream
	packets int
	c       peerCounters
	pfxs    int // prefixes routed to it (SetPlan)
}

// New starts forwarding between dev and tr. Give it routes with SetPlan;
// feed it inbound streams with Receive; Close stops it (not dev).
func New(dev tun.Device, tr Transport) *Forwarder {
	return newForwarder(NewDevice(dev), tr)
}

// newForwarder is New on a Device.
func newForwarder(dev Device, tr Transport) *Forwarder {
	ctx, cancel := context.WithCancel(context.Background())
	f := &Forwarder{dev: dev, tr: tr, ctx: ctx, cancel: cancel, links: map[string]*link{}, inbound: map[string]*inboundStream{},
		sendIdle: sendIdle, receiveIdle: receiveIdle}
	f.tbl.Store(&table{t: new(bart.Table[dest])})
	f.tx = newTxBurst(dev.BatchSize())
	f.icmpTokens.Store(icmpRate)
	f.batches.New = func() any { return newRxBatch(min(dev.BatchSize(), rxBatchSize)) }
	f.frames.New = func() any { b := make([]byte, 0, 256<<10); return &b }
	f.readers.New = func() any { return bufio.NewReaderSize(nil, streamBuffer) }
	f.wg.Add(2)
	go func() { defer f.wg.Done(); f.readTUN() }()    // routineReadTUN
	go func() { defer f.wg.Done(); f.refillICMP() }() // routineICMPTokens
	return f
}

// Close stops forwarding and waits; the caller closes the device first
// (that ends the TUN reader).
func (f *Forwarder) Close() {
	f.cancel()
	f.mu.Lock()
	for _, l := range f.links {
		l.cancel()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

// Snapshot reads the counters.
func (f *Forwarder) Snapshot() StatsSnapshot {
	s := &f.Stats
	return StatsSnapshot{s.TxPackets.Load(), s.TxBytes.Load(), s.RxPackets.Load(), s.RxBytes.Load(),
		s.TxOffload.Load(), s.RxOffload.Load(),
		s.DropNoRoute.Load(), s.DropLoop.Load(), s.DropQueue.Load(), s.DropSpoofed.Load(), s.DropNotLocal.Load(),
		s.DropMalformed.Load(), s.BadStreams.Load()}
}

// SetPlan replaces the routing table atomically. Links to nodes no longer
// in the plan stop.
func (f *Forwarder) SetPlan(p *Plan) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ctx.Err() != nil {
		return
	}
	t := new(bart.Table[dest])
	for _, pfx := range p.Local {
		t.Insert(pfx, dest{})
	}
	for node, pfxs := range p.Remote {
		l := f.links[node]
		if l == nil {
			l = f.startLink(node)
		}
		for _, pfx := range pfxs {
			t.Insert(pfx, dest{link: l})
		}
		l.pfxs = len(pfxs)
	}
	hosts := map[netip.Addr]*link{}
	for node, addrs := range p.Hosts {
		if l := f.links[node]; l != nil {
			for _, a := range addrs {
				hosts[a.Unmap()] = l
			}
		}
	}
	f.tbl.Store(&table{t: t, hosts: hosts})
	for node, l := range f.links {
		if _, ok := p.Remote[node]; !ok {
			l.cancel()
			delete(f.links, node)
		}
	}
}

func (f *Forwarder) startLink(node string) *link {
	ctx, cancel := context.WithCancel(f.ctx)
	l := &link{node: node, ch: make(chan *[]byte, queueDepth), cancel: cancel}
	f.links[node] = l
	f.wg.Add(1)
	go func() { // routineSend, one per peer node
		defer f.wg.Done()
		f.send(ctx, l)
	}()
	return l
}

// readBudget bounds the bytes one TUN burst reads (four super-packets):
// a burst goes out as one write per peer.
const readBudget = 256 << 10

// txBurst is the outbound path's state: read buffers and the links a
// burst touched. Whoever reads the TUN holds rmu.
type txBurst struct {
	bufs    [][]byte
	sizes   []int
	touched []*link
	icmp    []byte
}

func newTxBurst(n int) *txBurst {
	t := &txBurst{bufs: make([][]byte, n), sizes: make([]int, n), touched: make([]*link, 0, 16), icmp: make([]byte, Offset+1280)}
	for i := range t.bufs {
		t.bufs[i] = make([]byte, Offset+MaxPacket)
	}
	return t
}

// readTUN is the outbound path: TUN -> peers. It reads and dispatches a
// burst under rmu (pollTUN reads too, and a burst is dispatched whole
// before the next is read: no reordering), and waits outside it.
func (f *Forwarder) readTUN() {
	for {
		f.rmu.Lock()
		n, err := f.dev.TryRead(f.tx.bufs, f.tx.sizes, Offset)
		f.dispatch(f.tx, n)
		f.rmu.Unlock()
		if n == 0 && err == nil {
			err = f.dev.Wait()
		}
		if f.readFailed(err) {
			return
		}
	}
}

// pollBelow: after writing a batch smaller than this (a request, a ping,
// ACKs: traffic that waits for an answer) the receiving goroutine polls
// the TUN for the answer; after bulk batches it leaves that to readTUN (a
// read that finds nothing costs a syscall).
const pollBelow = 16 << 10

// pollTUN forwards what the TUN holds right now, from the goroutine that
// just wrote to it: what a local pod sends back at once (an echo reply,
// TCP's ACKs) leaves without waiting for the TUN reader to be woken,
// often on the other CPU. It does nothing while the reader is at it.
func (f *Forwarder) pollTUN() {
	if !f.rmu.TryLock() {
		return
	}
	defer f.rmu.Unlock()
	n, _ := f.dev.TryRead(f.tx.bufs, f.tx.sizes, Offset) // errors: readTUN's to report
	f.dispatch(f.tx, n)
}

// readFailed reports a TUN read error; true when reading must stop.
func (f *Forwarder) readFailed(err error) bool {
	if err == nil {
		return false
	}
	if f.ctx.Err() != nil || errors.Is(err, os.ErrClosed) {
		return true
	}
	if !errors.Is(err, tun.ErrTooManySegments) {
		klog.ErrorS(err, "TUN read failed")
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// dispatch frames the count packets read into t onto their peers' links,
// one batch per link.
func (f *Forwarder) dispatch(t *txBurst, count int) {
	tbl := f.tbl.Load()
	for i := 0; i < count; i++ {
		pkt := t.bufs[i][Offset : Offset+t.sizes[i]]
		off, partial, err := fromVnet(t.bufs[i][Offset-vnetHdrLen:Offset], pkt)
		if err != nil {
			f.Stats.DropMalformed.Add(1)
			continue
		}
		_, dst, ok := addrs(pkt)
		if !ok {
			f.Stats.DropMalformed.Add(1)
			continue
		}
		d, found := tbl.lookup(dst)
		switch {
		case !found:
			f.Stats.DropNoRoute.Add(1)
			f.sendUnreachable(pkt, t.icmp)
			continue
		case d.link == nil:
			f.Stats.DropLoop.Add(1)
			continue
		}
		l := d.link
		if l.pending == nil {
			l.pending = f.frames.Get().(*[]byte)
			t.touched = append(t.touched, l)
		}
		if partial {
			*l.pending = AppendOffloadFrame(*l.pending, off, pkt)
			f.Stats.TxOffload.Add(1)
		} else {
			*l.pending = AppendFrame(*l.pending, pkt)
		}
		l.packets++
	}
	for _, l := range t.touched {
		size := int64(cap(*l.pending))
		queued := false
		if l.queued.Load()+size <= queueBytes {
			l.queued.Add(size)
			select {
			case l.ch <- l.pending:
				queued = true
			default:
				l.queued.Add(-size)
			}
		}
		if !queued {
			f.Stats.DropQueue.Add(uint64(l.packets))
			l.c.dropQueue.Add(uint64(l.packets))
			f.putFrames(l.pending)
		}
		l.pending, l.packets = nil, 0
	}
	t.touched = t.touched[:0]
}

func (f *Forwarder) putFrames(b *[]byte) {
	*b = (*b)[:0]
	f.frames.Put(b)
}

// send writes l's batches on a stream over the peer's current path,
// reopening it when the path changes or a write fails, and closing it
// when idle for sendIdle.
func (f *Forwarder) send(ctx context.Context, l *link) {
	var w io.WriteCloser
	var changed <-chan struct{} // nil: open at the next batch
	offload := true             // the stream takes offload frames
	idle := time.NewTicker(f.sendIdle / 2)
	busy := false // a batch since the last tick
	defer func() {
		idle.Stop()
		if w != nil {
			_ = w.Close()
		}
	}()
	for {
		var b *[]byte
		select {
		case <-ctx.Done():
			return
		case <-idle.C:
			if !busy && w != nil {
				_ = w.Close()
				w, changed = nil, nil
			}
			busy = false
			continue
		case b = <-l.ch:
			l.queued.Add(-int64(cap(*b)))
			busy = true
		}
		if changed == nil || closed(changed) {
			if w != nil {
				_ = w.Close()
				w = nil
			}
			var err error
			w, changed, err = f.tr.Open(ctx, l.node)
			if errors.Is(err, ErrPathPending) {
				w, changed, err = f.awaitPath(ctx, l.node, changed)
			}
			if err != nil {
				w = nil
				klog.V(2).InfoS("No packet stream", "node", l.node, "err", err)
			} else {
				offload = takesOffload(w)
			}
		}
		if w == nil {
			f.Stats.DropQueue.Add(uint64(countFrames(*b)))
			l.c.dropQueue.Add(uint64(countFrames(*b)))
			f.putFrames(b)
			continue
		}
		data := *b
		if !offload {
			var dropped int
			l.ipOnly, dropped = appendIPFrames(l.ipOnly[:0], data)
			data = l.ipOnly
			if dropped > 0 {
				f.Stats.DropMalformed.Add(uint64(dropped))
			}
		}
		n := len(data)
		if _, err := w.Write(data); err != nil {
			klog.V(2).InfoS("Packet stream broke; reopening", "node", l.node, "err", err)
			_ = w.Close()
			w, changed = nil, nil
			f.Stats.DropQueue.Add(uint64(countFrames(data)))
			l.c.dropQueue.Add(uint64(countFrames(data)))
		} else {
			frames := uint64(countFrames(data))
			f.Stats.TxPackets.Add(frames)
			f.Stats.TxBytes.Add(uint64(n))
			l.c.tx(frames, uint64(n))
		}
		f.putFrames(b)
	}
}

// awaitPath opens a stream to node once the path being set up is there
// (changed closes), or gives up after pendingWait. Meanwhile the batch in
// hand waits, and those behind it in the link's queue.
func (f *Forwarder) awaitPath(ctx context.Context, node string, changed <-chan struct{}) (io.WriteCloser, <-chan struct{}, error) {
	timeout := time.NewTimer(pendingWait)
	defer timeout.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-timeout.C:
			return nil, nil, fmt.Errorf("%s: no path within %s", node, pendingWait)
		case <-changed:
		}
		w, ch, err := f.tr.Open(ctx, node)
		if !errors.Is(err, ErrPathPending) {
			return w, ch, err
		}
		changed = ch
	}
}

// takesOffload reports whether stream s (the tunnel's) carries offload
// frames: version 2 of the packets protocol does, version 1 does not
// (then it says so with an Offload method).
func takesOffload(s any) bool {
	if o, ok := s.(interface{ Offload() bool }); ok {
		return o.Offload()
	}
	return true
}

// closed reports whether ch is closed, without waiting.
func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// countFrames counts the frames in a well-formed batch.
func countFrames(b []byte) int {
	n := 0
	for len(b) >= frameHeader {
		l := int(b[1])<<16 | int(b[2])<<8 | int(b[3])
		b = b[min(len(b), frameHeader+l):]
		n++
	}
	return n
}

// streamBuffer is each inbound stream's read buffer (pooled): what an idle
// stream costs (a batch's buffers are taken from a pool only while data
// flows).
// rxBatchSize bounds the packets of one inbound batch, and so the buffers
// a stream holds while data flows (rxBatchSize full-size buffers, 2 MiB):
// a batch ends anyway when the reader's buffer is drained, which holds
// about four super-packets.
const (
	streamBuffer = 256 << 10
	rxBatchSize  = 32
)

// rxBatch is one batch of inbound packets on their way to the TUN.
type rxBatch struct {
	bufs  [][]byte // full-size buffers (GRO coalesces into them)
	write [][]byte
}

func newRxBatch(n int) *rxBatch {
	b := &rxBatch{bufs: make([][]byte, n), write: make([][]byte, 0, n)}
	for i := range b.bufs {
		b.bufs[i] = make([]byte, Offset+MaxPacket)
	}
	return b
}

// inboundStream is a node's packet stream to us, for the next one to end.
type inboundStream struct{ r io.Closer }

// Receive is the inbound path for one stream from node (the name it
// proved): it returns when the stream ends, is nonsense, idles for
// receiveIdle, is replaced by a newer stream from node, or the forwarder
// closes, and closes r. A node sends on one stream at a time (a new one
// when its path moves), so the newest wins: however many streams a
// member opens, one is read and costs a batch's buffers.
func (f *Forwarder) Receive(node string, r io.ReadCloser) {
	in := &inboundStream{r: r}
	f.mu.Lock()
	if old := f.inbound[node]; old != nil {
		_ = old.r.Close()
	}
	f.inbound[node] = in
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		if f.inbound[node] == in {
			delete(f.inbound, node)
		}
		f.mu.Unlock()
		_ = r.Close()
	}()
	stop := context.AfterFunc(f.ctx, func() { _ = r.Close() })
	defer stop()
	deadline, _ := r.(interface{ SetReadDeadline(time.Time) error })
	// Readers are pooled: a member that keeps replacing its stream (each
	// new one closes the one before) makes no garbage of them.
	br := f.readers.Get().(*bufio.Reader)
	br.Reset(r)
	defer func() { br.Reset(nil); f.readers.Put(br) }()
	offload := takesOffload(r)
	var refreshed time.Time // when the read deadline was last set
	for {
		// A deadline costs the stream a timer: refresh it now and then,
		// not per batch.
		if now := time.Now(); deadline != nil && now.Sub(refreshed) >= f.receiveIdle/receiveRefresh {
			_ = deadline.SetReadDeadline(now.Add(f.receiveIdle))
			refreshed = now
		}
		// Wait for data before taking a batch's buffers from the pool:
		// an idle stream holds its reader's buffer only.
		_, err := br.Peek(1)
		if err == nil {
			b := f.batches.Get().(*rxBatch)
			err = f.receiveBatch(node, br, b, offload)
			f.batches.Put(b)
		}
		if err != nil {
			if errors.Is(err, ErrBadFrame) {
				f.Stats.BadStreams.Add(1)
				klog.InfoS("Closed a packet stream that broke the framing", "node", node, "err", err)
			}
			return
		}
	}
}

// receiveBatch reads frames until the reader's buffer is drained or the
// batch is full, then writes the accepted packets to the TUN at once,
// each with its virtio-net header: a super-packet (offload frame) with
// the one that asks the kernel to segment it, the others with none (the
// device coalesces those).
func (f *Forwarder) receiveBatch(node string, br *bufio.Reader, b *rxBatch, offload bool) error {
	b.write = b.write[:0]
	var packets, bytes, spoofed, supers uint64
	var rerr error
	var from *link // the sender's link, from the first accepted packet
	tbl := f.tbl.Load()
	for i := 0; i < len(b.bufs); i++ {
		if i > 0 && br.Buffered() < frameHeader {
			break
		}
		fr, err := ReadFrame(br, b.bufs[i][Offset:])
		if err == nil && fr.Partial && !offload {
			err = fmt.Errorf("%w: an offload frame on a version 1 stream", ErrBadFrame)
		}
		if err != nil {
			rerr = err
			break
		}
		pkt := b.bufs[i][Offset : Offset+fr.Len]
		src, dst, ok := addrs(pkt)
		if !ok {
			f.Stats.DropMalformed.Add(1)
			continue
		}
		sd, found := tbl.lookup(src)
		if !found || sd.link == nil || sd.link.node != node {
			// An ICMP error the sending node's own kernel made about
			// one of our packets (path MTU discovery needs it).
			h := tbl.hosts[src]
			if h == nil || h.node != node || !isICMPError(pkt) {
				f.Stats.DropSpoofed.Add(1)
				spoofed++
				continue
			}
			sd.link = h
		}
		if d, found := tbl.lookup(dst); !found || d.link != nil {
			f.Stats.DropNotLocal.Add(1)
			continue
		}
		hdr := b.bufs[i][Offset-vnetHdrLen : Offset]
		clear(hdr) // a plain packet (the buffer may hold an old header)
		if fr.Partial {
			h, err := offloadHeader(pkt, fr.Off)
			switch {
			case err != nil:
				f.Stats.DropMalformed.Add(1)
				continue
			case fr.Off.GSOType == gsoNone:
				finishChecksum(pkt, int(fr.Off.CsumStart), int(fr.Off.CsumStart)+int(fr.Off.CsumOffset))
			default:
				copy(hdr, h[:]) // a super-packet, for the kernel to segment
				supers++
			}
		}
		b.write = append(b.write, b.bufs[i][:Offset+fr.Len])
		packets, bytes, from = packets+1, bytes+uint64(fr.Len), sd.link
	}
	f.writeTUN(b)
	if supers > 0 {
		f.Stats.RxOffload.Add(supers)
	}
	if packets > 0 {
		f.Stats.RxPackets.Add(packets)
		f.Stats.RxBytes.Add(bytes)
		from.c.rx(packets, bytes)
		if bytes < pollBelow {
			f.pollTUN()
		}
	}
	if spoofed > 0 {
		f.countSpoofed(node, spoofed)
	}
	return rerr
}

// writeTUN writes the packets collected in b (the device coalesces the
// plain ones, and refuses super-packets when it has no offloads) and
// empties it.
func (f *Forwarder) writeTUN(b *rxBatch) {
	if len(b.write) == 0 {
		return
	}
	if _, err := f.dev.Write(b.write, Offset); err != nil && f.ctx.Err() == nil {
		klog.V(2).InfoS("TUN write failed", "err", err) // per batch, at most
	}
	b.write = b.write[:0]
}

// ICMP errors are rate-limited to 100 per second (a burst of 100).
const icmpRate = 100

func (f *Forwarder) refillICMP() {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-f.ctx.Done():
			return
		case <-t.C:
			if f.icmpTokens.Load() < icmpRate {
				f.icmpTokens.Add(1)
			}
		}
	}
}

func (f *Forwarder) sendUnreachable(pkt, buf []byte) {
	if f.icmpTokens.Load() <= 0 {
		return
	}
	f.icmpTokens.Add(-1)
	msg := unreachable(pkt, buf[Offset:cap(buf)])
	if msg == nil {
		return
	}
	clear(buf[Offset-vnetHdrLen : Offset]) // plain (the last write left the tun package's header)
	_, _ = f.dev.Write([][]byte{buf[:Offset+len(msg)]}, Offset)
}

// Lookup says where a packet to a would go: "" for a local pod, the node
// name for a remote one; ok is false without a route.
func (f *Forwarder) Lookup(a netip.Addr) (node string, ok bool) {
	d, ok := f.tbl.Load().lookup(a)
	if !ok || d.link == nil {
		return "", ok
	}
	return d.link.node, true
}

// Network is a Transport that also delivers inbound packet streams (the
// tunnel module's side of the data plane, handed to the routing module).
type Network interface {
	Transport
	// Accept sets the handler of inbound packet streams (node: the name
	// the sender proved). Streams arriving without one are closed.
	Accept(handle func(node string, r io.ReadCloser))
}
