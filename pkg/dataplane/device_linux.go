package dataplane

import (
	"io"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
	"golang.zx2c4.com/wireguard/tun"
)

// NewDevice wraps dev for the forwarder. A TUN opened with IFF_VNET_HDR
// (the tun package's, on Linux) is read from its file directly, so TCP
// super-packets stay whole, and gets TCP segmentation and checksum
// offload turned on; others become a device without offloads.
func NewDevice(dev tun.Device) Device {
	if v := openVnet(dev); v != nil {
		return v
	}
	return newPlainDevice(dev)
}

// vnetDevice is a Linux TUN that carries virtio-net headers: reads come
// from its file (non-blocking, through the Go poller), plain packets are
// written through the tun package (which coalesces them, GRO), and
// super-packets straight to the file with their header.
type vnetDevice struct {
	dev tun.Device
	f   *os.File
	rc  syscall.RawConn

	// Wait's state (one goroutine waits): its RawConn callback, made
	// once, polls the file the first time it is called and reports
	// readable after that (the poller woke it).
	waitFn func(fd uintptr) bool
	woken  bool
	pollFD [1]unix.PollFd
	tryFn  func(fd uintptr)
	try    tryRead
}

// tryRead holds TryRead's arguments and results across its RawConn
// callback (so that the callback is made once, not per call); TryRead's
// callers hold the forwarder's read lock.
type tryRead struct {
	bufs  [][]byte
	sizes []int
	off   int
	n     int
	err   error
}

// openVnet returns dev as a vnetDevice when its file is a TUN with
// IFF_VNET_HDR, nil otherwise.
func openVnet(dev tun.Device) *vnetDevice {
	f := dev.File()
	if f == nil {
		return nil
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	var flags uint16
	var oerr error
	cerr := rc.Control(func(fd uintptr) {
		ifr, err := unix.NewIfreq("")
		if err == nil && unix.IoctlIfreq(int(fd), unix.TUNGETIFF, ifr) == nil {
			flags = ifr.Uint16()
		}
		if flags&unix.IFF_VNET_HDR != 0 {
			// TCP segmentation and checksums only: the kernel segments
			// UDP (USO) itself before the TUN, so no UDP super-packet
			// needs a peer's kernel to take one (before Linux 6.2 it
			// would not).
			oerr = unix.IoctlSetInt(int(fd), unix.TUNSETOFFLOAD, unix.TUN_F_CSUM|unix.TUN_F_TSO4|unix.TUN_F_TSO6)
		}
	})
	if cerr != nil || oerr != nil || flags&unix.IFF_VNET_HDR == 0 {
		return nil
	}
	return newVnetDevice(dev, f, rc)
}

func newVnetDevice(dev tun.Device, f *os.File, rc syscall.RawConn) *vnetDevice {
	v := &vnetDevice{dev: dev, f: f, rc: rc}
	v.waitFn = v.waitReady
	v.tryFn = v.tryFD
	return v
}

func (v *vnetDevice) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	return readWait(v, bufs, sizes, offset)
}

// TryRead reads the file without waiting. Its callers do not overlap
// (the forwarder's read lock), so the callback's arguments live in v.
func (v *vnetDevice) TryRead(bufs [][]byte, sizes []int, offset int) (int, error) {
	v.try = tryRead{bufs: bufs, sizes: sizes, off: offset}
	if err := v.rc.Control(v.tryFn); err != nil {
		return 0, os.ErrClosed // Control fails only when the file is closing
	}
	n, err := v.try.n, v.try.err
	v.try = tryRead{}
	return n, err
}

func (v *vnetDevice) tryFD(fd uintptr) {
	v.try.n, v.try.err = readFD(int(fd), v.try.bufs, v.try.sizes, v.try.off, readBudget)
}

// Wait blocks until the file is readable. Its callback polls first:
// readiness the poller saw before Wait was called is reset on entry, so
// packets already queued would otherwise wait for the next one.
func (v *vnetDevice) Wait() error {
	v.woken = false
	if err := v.rc.Read(v.waitFn); err != nil {
		return os.ErrClosed // RawConn.Read fails only when the file is closing
	}
	return nil
}

func (v *vnetDevice) waitReady(fd uintptr) bool {
	if v.woken {
		return true // the poller woke us (or spuriously: TryRead finds nothing)
	}
	v.woken = true
	v.pollFD[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLIN}
	n, err := unix.Poll(v.pollFD[:], 0)
	return err != nil || n > 0
}

// readFD reads packets (each with its virtio-net header, at
// bufs[i][offset-vnetHdrLen:]) from the non-blocking fd until the TUN has
// no more, bufs are full or budget bytes were read.
func readFD(fd int, bufs [][]byte, sizes []int, offset, budget int) (int, error) {
	count := 0
	for count < len(bufs) && budget > 0 {
		n, err := unix.Read(fd, bufs[count][offset-vnetHdrLen:])
		switch {
		case err == unix.EAGAIN:
			return count, nil
		case err == unix.EINTR:
			continue
		case err == unix.EBADFD:
			return count, os.ErrClosed
		case err != nil:
			return count, err
		case n == 0:
			return count, io.ErrUnexpectedEOF // no TUN does this; do not spin on it
		case n < vnetHdrLen || n > len(bufs[count])-(offset-vnetHdrLen):
			continue // nothing a TUN with IFF_VNET_HDR returns (or truncated)
		}
		sizes[count] = n - vnetHdrLen
		budget -= n
		count++
	}
	return count, nil
}

// Write writes runs of plain packets through the tun package (GRO) and
// each super-packet to the file with its header.
func (v *vnetDevice) Write(bufs [][]byte, offset int) (int, error) {
	return writeRuns(bufs, offset, v.writePlain, v.writeSuper)
}

func (v *vnetDevice) writePlain(run [][]byte, offset int) error {
	_, err := v.dev.Write(run, offset)
	return err
}

func (v *vnetDevice) writeSuper(buf []byte, offset int) error {
	_, err := v.f.Write(buf[offset-vnetHdrLen:])
	return err
}

func (v *vnetDevice) BatchSize() int    { return v.dev.BatchSize() }
func (v *vnetDevice) MTU() (int, error) { return v.dev.MTU() }
func (v *vnetDevice) Close() error      { return v.dev.Close() }
