package dataplane

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Packets travel between nodes as frames on one long-lived stream per
// direction and peer (p2p's PacketsProtocol). Version 2 of that protocol
// (/edgelink/packets/2.0.0) carries both frame types; version 1
// (/edgelink/packets/1.0.0, older releases) IP frames only: towards such a
// peer the sender cuts super-packets itself (segment.go), and an offload
// frame on a version-1 stream closes it.
//
// Wire format of a frame:
//
//	+--------+------------------------+---------------------------+
//	| type 1 | length 3 (big-endian)  | payload (length bytes)    |
//	+--------+------------------------+---------------------------+
//
// type 0x01 (IP): the payload is one IPv4 or IPv6 packet, 20..MaxPacket
// bytes, complete (checksums filled in, at most the TUN MTU).
//
// type 0x02 (offload): the payload is a 6-byte offload header and one
// packet whose transport checksum is partial (only the pseudo-header sum
// is in place) and which, with a GSO type, is a TCP super-packet still to
// be cut into gso-size segments. This is what the sending
// kernel handed its TUN (virtio-net header, see vnet.go); the receiving
// kernel finishes the work, so neither end splits, coalesces or
// checksums in user space.
//
//	+------------+----------------+----------------+--------------+--------+
//	| gso type 1 | csum start 2   | csum offset 1  | gso size 2   | packet |
//	+------------+----------------+----------------+--------------+--------+
//
// gso type: 0 none (checksum only), 1 TCPv4, 4 TCPv6 (the virtio values;
// UDP segmentation is not carried). csum start: offset of the transport
// header, which must follow the IP header (no IPv6 extension headers);
// csum offset: of the checksum field in it (16 TCP, 6 UDP). gso size: the
// segments' payload, at least 64 bytes, at most 128 segments. The packet's
// IP length must be its length, and it must not be a fragment. Multi-byte
// fields are big-endian. The receiver checks all of this against the
// packet (vnet.go: offloadHeader) before its kernel sees it.
//
// Other types are reserved; a receiver closes a stream carrying one, or a
// length out of range (the sender speaks nonsense). Frames are written
// back to back, many per write: a burst of packets read from the TUN goes
// out as one write.
const (
	FrameIP      = 0x01
	FrameOffload = 0x02
	frameHeader  = 4
	offloadLen   = 6
	// MaxPacket is the largest packet a frame carries (a TUN MTU of
	// 65535 at most, or a GSO super-packet).
	MaxPacket = 65535
	minPacket = 20
)

// Offload is the work a packet's sender left to the receiving kernel:
// the transport checksum from CsumStart (field at CsumStart+CsumOffset),
// and with a GSO type, segmentation into GSOSize-byte segments.
type Offload struct {
	GSOType    uint8
	CsumStart  uint16
	CsumOffset uint8
	GSOSize    uint16
}

// Frame describes the packet ReadFrame read.
type Frame struct {
	Len     int     // packet bytes, at the start of the buffer
	Partial bool    // an offload frame: Off applies
	Off     Offload // zero unless Partial
}

// ErrBadFrame is wrapped by every framing error.
var ErrBadFrame = errors.New("bad frame")

// AppendFrame appends pkt as an IP frame to b.
func AppendFrame(b, pkt []byte) []byte {
	n := len(pkt)
	b = append(b, FrameIP, byte(n>>16), byte(n>>8), byte(n))
	return append(b, pkt...)
}

// AppendOffloadFrame appends pkt as an offload frame to b.
func AppendOffloadFrame(b []byte, off Offload, pkt []byte) []byte {
	n := offloadLen + len(pkt)
	b = append(b, FrameOffload, byte(n>>16), byte(n>>8), byte(n),
		off.GSOType, byte(off.CsumStart>>8), byte(off.CsumStart), off.CsumOffset, byte(off.GSOSize>>8), byte(off.GSOSize))
	return append(b, pkt...)
}

// ReadFrame reads one frame's packet into buf (at least MaxPacket bytes).
// io.EOF means the stream ended cleanly between frames.
func ReadFrame(r *bufio.Reader, buf []byte) (Frame, error) {
	hdr, err := r.Peek(frameHeader)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			return Frame{}, io.ErrUnexpectedEOF
		}
		return Frame{}, err
	}
	typ, n := hdr[0], int(hdr[1])<<16|int(hdr[2])<<8|int(hdr[3])
	var fr Frame
	switch typ {
	case FrameIP:
	case FrameOffload:
		fr.Partial = true
		n -= offloadLen
	default:
		return Frame{}, fmt.Errorf("%w: type %#x", ErrBadFrame, typ)
	}
	if n < minPacket || n > MaxPacket || n > len(buf) {
		return Frame{}, fmt.Errorf("%w: length %d", ErrBadFrame, n)
	}
	_, _ = r.Discard(frameHeader)
	if fr.Partial {
		var o [offloadLen]byte
		if _, err := io.ReadFull(r, o[:]); err != nil {
			return Frame{}, unexpected(err)
		}
		fr.Off = Offload{GSOType: o[0], CsumStart: binary.BigEndian.Uint16(o[1:]), CsumOffset: o[3], GSOSize: binary.BigEndian.Uint16(o[4:])}
	}
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		return Frame{}, unexpected(err)
	}
	fr.Len = n
	return fr, nil
}

// unexpected turns a clean EOF inside a frame into io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
