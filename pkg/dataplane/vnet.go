package dataplane

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// A TUN opened with IFF_VNET_HDR (the tun package does, and turns on
// TSO and checksum offload) puts a virtio-net header in front of every
// packet, both ways (include/uapi/linux/virtio_net.h, native byte order):
//
//	+---------+------------+-------------+-------------+---------------+----------------+
//	| flags 1 | gso type 1 | hdr len 2   | gso size 2  | csum start 2  | csum offset 2  |
//	+---------+------------+-------------+-------------+---------------+----------------+
//
// Reading, the kernel hands over pod TCP super-packets of up to 64 KiB
// unsegmented, checksums left partial (UDP segmentation offload is turned
// off: the kernel segments UDP before the TUN). The forwarder reads the
// file itself (the Device, device_linux.go) and sends such a packet as one offload frame
// (frame.go) instead of splitting it into MTU-sized packets; the
// receiver writes it to its TUN with the header rebuilt from the frame,
// and its kernel segments it only if it must (a pod behind a veth takes
// it whole). Packets without offload work travel as IP frames and are
// written through the tun package (which coalesces them, GRO).
//
// The header format is Linux's, but this file is not: the Device carries
// it in front of every packet on every platform (all zero: a plain
// packet), so the forwarder has one read and one write path.
const (
	vnetHdrLen    = 10
	vnetNeedsCsum = 1 // VIRTIO_NET_HDR_F_NEEDS_CSUM
	gsoNone       = 0 // VIRTIO_NET_HDR_GSO_NONE
	gsoTCPv4      = 1 // VIRTIO_NET_HDR_GSO_TCPV4
	gsoTCPv6      = 4 // VIRTIO_NET_HDR_GSO_TCPV6
	gsoUDP        = 5 // VIRTIO_NET_HDR_GSO_UDP_L4
	csumOffTCP    = 16
	csumOffUDP    = 6
	protoTCP      = 6
	protoUDP      = 17
)

var errOffload = errors.New("bad offload header")

// Bounds on segmentation a peer may ask for: no segment smaller than
// minGSOSize, no more than maxSegments of them (a 64 KiB super-packet at
// an MSS of 536 is 123).
const (
	minGSOSize  = 64
	maxSegments = 128
)

// offloadHeader checks what a peer (or the kernel) says about pkt's
// offload work and returns the virtio-net header that asks this node's
// kernel to do it. The claim must be exactly what a kernel emits: the
// checksum where the packet's own TCP or UDP header has it, right after
// an IP header whose lengths match the packet, no fragment, segmentation
// only of TCP, in bounded segments. Anything else is refused: the frame
// came off the network.
func offloadHeader(pkt []byte, off Offload) ([vnetHdrLen]byte, error) {
	var h [vnetHdrLen]byte
	ipl, proto, err := ipHeader(pkt)
	if err != nil {
		return h, err
	}
	cs, co := int(off.CsumStart), int(off.CsumOffset)
	var l4 int // transport header length
	switch {
	case proto == protoTCP && co == csumOffTCP && len(pkt) >= ipl+20:
		if l4 = int(pkt[ipl+12]>>4) * 4; l4 < 20 || ipl+l4 > len(pkt) {
			return h, fmt.Errorf("%w: TCP header of %d bytes in a %d-byte packet", errOffload, l4, len(pkt))
		}
	case proto == protoUDP && co == csumOffUDP && len(pkt) >= ipl+8:
		l4 = 8
	default:
		return h, fmt.Errorf("%w: IP protocol %d with checksum offset %d in a %d-byte packet", errOffload, proto, co, len(pkt))
	}
	if cs != ipl {
		return h, fmt.Errorf("%w: checksum start %d, transport header at %d", errOffload, cs, ipl)
	}
	switch off.GSOType {
	case gsoNone:
	case gsoTCPv4, gsoTCPv6:
		payload := len(pkt) - ipl - l4
		switch {
		case proto != protoTCP || (off.GSOType == gsoTCPv6) != (ipl == 40 && pkt[0]>>4 == 6):
			return h, fmt.Errorf("%w: gso type %d for IPv%d protocol %d", errOffload, off.GSOType, pkt[0]>>4, proto)
		case payload <= 0 || off.GSOSize < minGSOSize || (payload+int(off.GSOSize)-1)/int(off.GSOSize) > maxSegments:
			return h, fmt.Errorf("%w: gso size %d for %d bytes of payload", errOffload, off.GSOSize, payload)
		}
	default:
		return h, fmt.Errorf("%w: gso type %d", errOffload, off.GSOType)
	}
	h[0], h[1] = vnetNeedsCsum, off.GSOType
	binary.NativeEndian.PutUint16(h[2:], uint16(ipl+l4))
	binary.NativeEndian.PutUint16(h[4:], off.GSOSize)
	binary.NativeEndian.PutUint16(h[6:], off.CsumStart)
	binary.NativeEndian.PutUint16(h[8:], uint16(off.CsumOffset))
	return h, nil
}

// ipHeader returns the length of pkt's IP header and its protocol, and
// refuses a packet whose IP length is not its length, a fragment, and
// IPv6 extension headers.
func ipHeader(pkt []byte) (ipl int, proto uint8, err error) {
	if len(pkt) < minPacket {
		return 0, 0, fmt.Errorf("%w: %d-byte packet", errOffload, len(pkt))
	}
	switch pkt[0] >> 4 {
	case 4:
		ipl = int(pkt[0]&0x0f) * 4
		if ipl < 20 || ipl > len(pkt) || int(binary.BigEndian.Uint16(pkt[2:])) != len(pkt) {
			return 0, 0, fmt.Errorf("%w: IPv4 header of %d bytes, total length %d, in a %d-byte packet", errOffload, ipl, binary.BigEndian.Uint16(pkt[2:]), len(pkt))
		}
		if binary.BigEndian.Uint16(pkt[6:])&0x3fff != 0 {
			return 0, 0, fmt.Errorf("%w: an IPv4 fragment", errOffload)
		}
		return ipl, pkt[9], nil
	case 6:
		if len(pkt) < 40 || int(binary.BigEndian.Uint16(pkt[4:])) != len(pkt)-40 {
			return 0, 0, fmt.Errorf("%w: IPv6 payload length of a %d-byte packet", errOffload, len(pkt))
		}
		return 40, pkt[6], nil
	}
	return 0, 0, fmt.Errorf("%w: IP version %d", errOffload, pkt[0]>>4)
}

// fromVnet reads the header the kernel put in front of pkt. A GSO
// super-packet comes back as partial with its offload (it travels as an
// offload frame); a lone packet's partial checksum is finished here, so it
// travels as an IP frame and the receiver can coalesce it. An unusable
// header is an error (the packet is dropped).
func fromVnet(h []byte, pkt []byte) (off Offload, partial bool, err error) {
	flags, typ := h[0], h[1]
	start, offset := int(binary.NativeEndian.Uint16(h[6:])), int(binary.NativeEndian.Uint16(h[8:]))
	if flags&vnetNeedsCsum == 0 {
		if typ != gsoNone {
			return off, false, fmt.Errorf("%w: gso type %d without a partial checksum", errOffload, typ)
		}
		return off, false, nil
	}
	if typ == gsoNone {
		if start+offset+2 > len(pkt) {
			return off, false, fmt.Errorf("%w: checksum at %d+%d in a %d-byte packet", errOffload, start, offset, len(pkt))
		}
		finishChecksum(pkt, start, start+offset)
		return off, false, nil
	}
	off = Offload{GSOType: typ, CsumStart: uint16(start), CsumOffset: uint8(min(offset, 0xff)), GSOSize: binary.NativeEndian.Uint16(h[4:])}
	if _, err := offloadHeader(pkt, off); err != nil {
		return off, false, err
	}
	return off, true, nil
}

// finishChecksum completes a partial Internet checksum: the field at at
// holds the pseudo-header sum; the result covers pkt[start:].
func finishChecksum(pkt []byte, start, at int) {
	initial := uint32(binary.BigEndian.Uint16(pkt[at:]))
	pkt[at], pkt[at+1] = 0, 0
	c := checksum(pkt[start:], initial)
	if c == 0 && at-start == csumOffUDP {
		c = 0xffff // UDP's 0 means "no checksum" (and is invalid over IPv6)
	}
	binary.BigEndian.PutUint16(pkt[at:], c)
}
