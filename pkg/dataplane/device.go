package dataplane

import (
	"errors"
	"sync"

	"golang.zx2c4.com/wireguard/tun"
)

// Device is the TUN as the forwarder sees it. Read, Write, BatchSize, MTU
// and Close have the shape of wireguard-go's tun.Device; TryRead and Wait
// split Read in two, so that the forwarder can read under its lock and
// wait outside it (see Forwarder.pollTUN).
//
// In front of every packet, at bufs[i][offset-vnetHdrLen:offset], sits
// its virtio-net header (vnet.go), both ways and on every device: all
// zero for a plain packet; on a read, a TCP super-packet the kernel did
// not segment, or a checksum it left partial; on a write, a super-packet
// for the kernel to segment. offset must leave room for it (Offset does).
// A device that cannot carry super-packets (no IFF_VNET_HDR, not Linux)
// reads none and refuses to write one.
//
// One goroutine waits (Wait, Read); reads (TryRead, Read) do not overlap
// (the forwarder holds its read lock); Write may be called from any
// goroutine. NewDevice wraps a tun.Device; tests use an in-memory one.
type Device interface {
	// Read waits for packets and reads them, like tun.Device's Read.
	Read(bufs [][]byte, sizes []int, offset int) (n int, err error)
	// TryRead reads the packets queued now, without waiting: up to
	// len(bufs), or readBudget bytes; 0 and no error when none is.
	TryRead(bufs [][]byte, sizes []int, offset int) (n int, err error)
	// Wait returns once a TryRead may find packets (it may find none);
	// an error when the device is closed or broken.
	Wait() error
	// Write writes the packets, in order; n is how many were written.
	Write(bufs [][]byte, offset int) (n int, err error)
	BatchSize() int
	MTU() (int, error)
	Close() error
}

// errNoOffload refuses a super-packet on a device without offloads.
var errNoOffload = errors.New("super-packet written to a TUN without offloads")

// readWait is Read made of TryRead and Wait.
func readWait(d Device, bufs [][]byte, sizes []int, offset int) (int, error) {
	for {
		if n, err := d.TryRead(bufs, sizes, offset); n > 0 || err != nil {
			return n, err
		}
		if err := d.Wait(); err != nil {
			return 0, err
		}
	}
}

// plainHeader reports whether the virtio-net header in front of
// buf[offset:] asks for nothing (a plain packet).
func plainHeader(buf []byte, offset int) bool {
	return buf[offset-vnetHdrLen] == 0 && buf[offset-vnetHdrLen+1] == gsoNone
}

// writeRuns writes bufs in order: each run of plain packets with plain,
// each other packet with super; it goes on past a failed write and
// returns the first error.
func writeRuns(bufs [][]byte, offset int, plain func([][]byte, int) error, super func([]byte, int) error) (int, error) {
	var first error
	n, start := 0, 0
	flush := func(end int) {
		if end > start {
			if err := plain(bufs[start:end], offset); err != nil {
				first = cmpOr(first, err)
			} else {
				n += end - start
			}
		}
	}
	for i, b := range bufs {
		if plainHeader(b, offset) {
			continue
		}
		flush(i)
		start = i + 1
		if err := super(b, offset); err != nil {
			first = cmpOr(first, err)
		} else {
			n++
		}
	}
	flush(len(bufs))
	return n, first
}

func cmpOr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// plainDevice is a tun.Device without offloads behind the Device
// interface: it reads blocking, so Wait reads into a stash that TryRead
// hands out (copied), and it refuses super-packets.
type plainDevice struct {
	dev tun.Device

	mu          sync.Mutex // guards next, n (the stash's filled part)
	stash       [][]byte   // written by Wait only while empty
	sizes       []int
	next, count int
}

func newPlainDevice(dev tun.Device) *plainDevice {
	d := &plainDevice{dev: dev, stash: make([][]byte, dev.BatchSize()), sizes: make([]int, dev.BatchSize())}
	for i := range d.stash {
		d.stash[i] = make([]byte, Offset+MaxPacket)
	}
	return d
}

func (d *plainDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	return readWait(d, bufs, sizes, offset)
}

func (d *plainDevice) TryRead(bufs [][]byte, sizes []int, offset int) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n := 0
	for ; n < len(bufs) && d.next < d.count; n++ {
		sizes[n] = copy(bufs[n][offset:], d.stash[d.next][Offset:Offset+d.sizes[d.next]])
		clear(bufs[n][offset-vnetHdrLen : offset])
		d.next++
	}
	return n, nil
}

func (d *plainDevice) Wait() error {
	d.mu.Lock()
	full := d.next < d.count
	d.mu.Unlock()
	if full {
		return nil
	}
	n, err := d.dev.Read(d.stash, d.sizes, Offset)
	d.mu.Lock()
	d.next, d.count = 0, n
	d.mu.Unlock()
	if errors.Is(err, tun.ErrTooManySegments) && n > 0 {
		err = nil
	}
	return err
}

func (d *plainDevice) Write(bufs [][]byte, offset int) (int, error) {
	return writeRuns(bufs, offset, d.writePlain, refuseSuper)
}

func (d *plainDevice) writePlain(run [][]byte, offset int) error {
	_, err := d.dev.Write(run, offset)
	return err
}

func refuseSuper([]byte, int) error { return errNoOffload }

func (d *plainDevice) BatchSize() int    { return d.dev.BatchSize() }
func (d *plainDevice) MTU() (int, error) { return d.dev.MTU() }
func (d *plainDevice) Close() error      { return d.dev.Close() }
