package dataplane

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
)

// memDevice is a Device in memory for benchmarks: TryRead hands out the
// packets in pkts (with a plain header) while queued > 0, Wait blocks
// until Close, Write counts what it is given.
type memDevice struct {
	pkts    [][]byte
	queued  atomic.Int64 // bursts left to hand out
	written atomic.Uint64
	closed  chan struct{}
	once    sync.Once
}

func newMemDevice(pkts [][]byte) *memDevice {
	return &memDevice{pkts: pkts, closed: make(chan struct{})}
}

func (d *memDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	return readWait(d, bufs, sizes, offset)
}

func (d *memDevice) TryRead(bufs [][]byte, sizes []int, offset int) (int, error) {
	select {
	case <-d.closed:
		return 0, os.ErrClosed
	default:
	}
	if d.queued.Add(-1) < 0 {
		d.queued.Add(1)
		return 0, nil
	}
	n := min(len(bufs), len(d.pkts))
	for i := range n {
		clear(bufs[i][offset-vnetHdrLen : offset])
		sizes[i] = copy(bufs[i][offset:], d.pkts[i])
	}
	return n, nil
}

func (d *memDevice) Wait() error { <-d.closed; return os.ErrClosed }

func (d *memDevice) Write(bufs [][]byte, offset int) (int, error) {
	d.written.Add(uint64(len(bufs)))
	return len(bufs), nil
}

func (d *memDevice) BatchSize() int    { return 64 }
func (d *memDevice) MTU() (int, error) { return 1420, nil }
func (d *memDevice) Close() error      { d.once.Do(func() { close(d.closed) }); return nil }

var _ Device = (*memDevice)(nil)

// discardNet is a Transport whose streams take everything.
type discardNet struct{}

func (discardNet) Open(context.Context, string) (io.WriteCloser, <-chan struct{}, error) {
	return nopWriteCloser{}, make(chan struct{}), nil
}

type nopWriteCloser struct{}

func (nopWriteCloser) Write(p []byte) (int, error) { return len(p), nil }
func (nopWriteCloser) Close() error                { return nil }

func newBenchForwarder(b *testing.B, pkts [][]byte) (*Forwarder, *memDevice) {
	dev := newMemDevice(pkts)
	f := newForwarder(dev, discardNet{})
	b.Cleanup(func() { dev.Close(); f.Close() })
	f.SetPlan(testPlan)
	return f, dev
}

// TUN read -> frames for the peers: a burst of 64 packets to two peers,
// read and dispatched as pollTUN does (the reader waits meanwhile), and
// written on the peers' streams (waited for, so that the frame buffers
// come back to their pool as they do when peers keep up).
func BenchmarkTUNToFrames(b *testing.B) {
	var pkts [][]byte
	for i := range 64 {
		pkts = append(pkts, ipv4([4]byte{10, 244, 1, 2}, [4]byte{10, 245, byte(1 + i%2), 9}, 1400))
	}
	f, dev := newBenchForwarder(b, pkts)
	b.ReportAllocs()
	b.SetBytes(64 * 1400)
	var want uint64
	for b.Loop() {
		dev.queued.Store(1)
		f.pollTUN()
		for want += 64; f.Stats.TxPackets.Load()+f.Stats.DropQueue.Load() < want; {
			runtime.Gosched()
		}
	}
}

// Frames from a peer -> TUN write: a batch of 64 frames, checked and
// written to the device.
func BenchmarkFramesToTUN(b *testing.B) {
	var stream []byte
	for range 64 {
		stream = AppendFrame(stream, ipv4([4]byte{10, 245, 1, 5}, [4]byte{10, 244, 1, 2}, 1400))
	}
	f, dev := newBenchForwarder(b, nil)
	r := bytes.NewReader(stream)
	br := bufio.NewReaderSize(r, 256<<10)
	batch := newRxBatch(dev.BatchSize())
	b.ReportAllocs()
	b.SetBytes(int64(len(stream)))
	for b.Loop() {
		r.Reset(stream)
		br.Reset(r)
		if err := f.receiveBatch("edge-2", br, batch, true); err != nil && !errors.Is(err, io.EOF) {
			b.Fatal(err)
		}
	}
	if dev.written.Load() == 0 {
		b.Fatal("nothing written")
	}
}

// A device without offloads refuses a super-packet and writes the plain
// packets around it, in order.
func TestPlainDeviceRefusesSuperPackets(t *testing.T) {
	tun := newFakeTUN()
	d := newPlainDevice(tun)
	defer d.Close()
	mk := func(size int, super bool) []byte {
		b := make([]byte, Offset+size)
		copy(b[Offset:], ipv4([4]byte{10, 245, 1, 5}, [4]byte{10, 244, 1, 2}, size))
		if super {
			b[Offset-vnetHdrLen], b[Offset-vnetHdrLen+1] = vnetNeedsCsum, gsoTCPv4
		}
		return b
	}
	n, err := d.Write([][]byte{mk(60, false), mk(61, true), mk(62, false)}, Offset)
	if n != 2 || !errors.Is(err, errNoOffload) {
		t.Errorf("Write = %d, %v; want 2 and errNoOffload", n, err)
	}
	if p := tun.packets(); len(p) != 2 || len(p[0]) != 60 || len(p[1]) != 62 {
		t.Errorf("written: %d packets, want the 60- and 62-byte ones", len(p))
	}
	// Reads: Wait fills the stash, TryRead hands it out with a plain header.
	tun.in <- ipv4([4]byte{10, 244, 1, 2}, [4]byte{10, 245, 1, 5}, 70)
	if err := d.Wait(); err != nil {
		t.Fatal(err)
	}
	bufs, sizes := [][]byte{bytes.Repeat([]byte{0xff}, Offset+MaxPacket)}, []int{0}
	if n, err := d.TryRead(bufs, sizes, Offset); n != 1 || err != nil || sizes[0] != 70 || !plainHeader(bufs[0], Offset) {
		t.Errorf("TryRead = %d, %v, size %d", n, err, sizes[0])
	}
	if n, err := d.TryRead(bufs, sizes, Offset); n != 0 || err != nil {
		t.Errorf("TryRead of an empty stash = %d, %v", n, err)
	}
}
