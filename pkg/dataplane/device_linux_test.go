package dataplane

import (
	"bytes"
	"io"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// vnet.go's header constants are Linux's.
func TestVnetConstants(t *testing.T) {
	for name, c := range map[string][2]int{
		"NEEDS_CSUM": {vnetNeedsCsum, unix.VIRTIO_NET_HDR_F_NEEDS_CSUM},
		"GSO_NONE":   {gsoNone, unix.VIRTIO_NET_HDR_GSO_NONE},
		"GSO_TCPV4":  {gsoTCPv4, unix.VIRTIO_NET_HDR_GSO_TCPV4},
		"GSO_TCPV6":  {gsoTCPv6, unix.VIRTIO_NET_HDR_GSO_TCPV6},
		"GSO_UDP_L4": {gsoUDP, unix.VIRTIO_NET_HDR_GSO_UDP_L4},
		"TCP":        {protoTCP, unix.IPPROTO_TCP},
		"UDP":        {protoUDP, unix.IPPROTO_UDP},
	} {
		if c[0] != c[1] {
			t.Errorf("%s: %d, Linux says %d", name, c[0], c[1])
		}
	}
}

// A super-packet from a peer reaches the kernel whole, exactly its length,
// with the header its offload frame asks for, after the packets before it;
// one whose offload claim does not fit it is dropped.
func TestReceiveSuperPacket(t *testing.T) {
	// The kernel's side: writes go to a pipe; reads wait on another one
	// that stays empty (closed first at cleanup, which ends the reader).
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	idle, idleW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := idle.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	dev := newFakeTUN()
	f, _ := newTestForwarderOn(t, newVnetDevice(dev, w, rc), dev)
	t.Cleanup(func() { idle.Close(); idleW.Close(); r.Close() }) // before f.Close; idle first (no EOF for the reader)
	written := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(r); written <- b }()
	// A large batch earlier leaves stale bytes in the pooled buffers.
	f.Receive("edge-2", io.NopCloser(bytes.NewReader(AppendFrame(nil, func() []byte {
		p := ipv4([4]byte{10, 245, 1, 5}, [4]byte{10, 244, 1, 2}, MaxPacket)
		for i := 20; i < len(p); i++ {
			p[i] = 0xee
		}
		return p
	}()))))
	before := ipv4([4]byte{10, 245, 1, 5}, [4]byte{10, 244, 1, 2}, 60)
	super := tcp4(6000)
	copy(super[12:20], []byte{10, 245, 1, 5, 10, 244, 1, 2})
	off := Offload{GSOType: gsoTCPv4, CsumStart: 20, CsumOffset: 16, GSOSize: 1380}
	lying := append([]byte(nil), super[:1000]...) // IP length says 6000
	stream := AppendFrame(nil, before)
	stream = AppendOffloadFrame(stream, off, super)
	stream = AppendOffloadFrame(stream, off, lying)
	f.Receive("edge-2", io.NopCloser(bytes.NewReader(stream)))
	w.Close()
	got := <-written
	want, _ := offloadHeader(super, off)
	if len(got) != vnetHdrLen+len(super) || !bytes.Equal(got[:vnetHdrLen], want[:]) || !bytes.Equal(got[vnetHdrLen:], super) {
		t.Fatalf("the kernel got %d bytes (header % x), want the %d-byte header and packet", len(got), got[:min(len(got), vnetHdrLen)], vnetHdrLen+len(super))
	}
	if p := dev.packets(); len(p) != 2 || !bytes.Equal(p[1], before) {
		t.Errorf("packets through the device: %d, want the large one and the one before the super-packet", len(p))
	}
	if s := f.Snapshot(); s.RxOffload != 1 || s.DropMalformed != 1 || s.RxPackets != 3 {
		t.Errorf("counters: %+v", s)
	}
}

// A file that reads as ended stops the burst with an error instead of
// being read again and again.
func TestReadFDEnded(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	w.Close()
	bufs, sizes := [][]byte{make([]byte, Offset+MaxPacket)}, []int{0}
	var n int
	var rerr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		n, rerr = readFD(int(r.Fd()), bufs, sizes, Offset, readBudget)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("readFD kept reading an ended file")
	}
	if n != 0 || rerr == nil {
		t.Errorf("readFD on an ended file: %d packets, %v", n, rerr)
	}
}

// Wait returns at once for packets queued before it was called (the
// poller's readiness is reset on entry: Wait polls first), and when one
// arrives while it waits; TryRead hands them out with their header and
// then finds nothing without waiting.
func TestVnetDeviceWaitAndTryRead(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	rc, err := r.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	dev := newFakeTUN()
	v := newVnetDevice(dev, w, rc)
	bufs, sizes := [][]byte{make([]byte, Offset+MaxPacket), make([]byte, Offset+MaxPacket)}, []int{0, 0}
	send := func(size int) {
		t.Helper()
		pkt := append(make([]byte, vnetHdrLen), ipv4([4]byte{10, 244, 1, 2}, [4]byte{10, 245, 1, 5}, size)...)
		if _, err := w.Write(pkt); err != nil {
			t.Fatal(err)
		}
	}
	waited := func() <-chan error {
		ch := make(chan error, 1)
		go func() { ch <- v.Wait() }()
		return ch
	}
	// A pipe stands in for the TUN: each write is read as one packet
	// (one at a time here), header first.
	send(60)
	if n, err := v.TryRead(bufs, sizes, Offset); n != 1 || err != nil || sizes[0] != 60 {
		t.Fatalf("TryRead of a queued packet = %d, %v, size %d", n, err, sizes[0])
	}
	if n, err := v.TryRead(bufs, sizes, Offset); n != 0 || err != nil {
		t.Fatalf("TryRead of nothing = %d, %v", n, err)
	}
	send(70)
	select {
	case err := <-waited():
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return for a packet queued before it")
	}
	if n, _ := v.TryRead(bufs, sizes, Offset); n != 1 || sizes[0] != 70 || !plainHeader(bufs[0], Offset) {
		t.Fatalf("TryRead = %d, size %d", n, sizes[0])
	}
	ch := waited()
	select {
	case <-ch:
		t.Fatal("Wait returned with nothing queued")
	case <-time.After(50 * time.Millisecond):
	}
	send(80)
	select {
	case err := <-ch:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return for a packet that arrived while it waited")
	}
	if n, _ := v.TryRead(bufs, sizes, Offset); n != 1 || sizes[0] != 80 {
		t.Fatalf("TryRead = %d, size %d", n, sizes[0])
	}
	// Closed: Wait fails.
	r.Close()
	if err := v.Wait(); err == nil {
		t.Error("Wait on a closed file returned no error")
	}
}
