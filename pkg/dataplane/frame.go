package dataplane

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// Packets travel between nodes as frames on one long-lived stream per
// direction and peer (p2p's /edgelink/packets/1.0.0).
//
// Wire format of a frame:
//
//	+--------+------------------------+---------------------------+
//	| type 1 | length 3 (big-endian)  | payload (length bytes)    |
//	+--------+------------------------+---------------------------+
//
// type 0x01: payload is one IPv4 or IPv6 packet, 20..MaxPacket bytes.
// Other types are reserved; a receiver closes a stream carrying one, or a
// length out of range (the sender speaks nonsense). Frames are written
// back to back, many per write: a burst of packets read from the TUN goes
// out as one write.
const (
	FrameIP     = 0x01
	frameHeader = 4
	// MaxPacket is the largest packet a frame carries (a TUN MTU of
	// 65535 at most).
	MaxPacket = 65535
	minPacket = 20
)

// ErrBadFrame is wrapped by every framing error.
var ErrBadFrame = errors.New("bad frame")

// AppendFrame appends pkt as an IP frame to b.
func AppendFrame(b, pkt []byte) []byte {
	n := len(pkt)
	b = append(b, FrameIP, byte(n>>16), byte(n>>8), byte(n))
	return append(b, pkt...)
}

// ReadFrame reads one frame's packet into buf (at least MaxPacket bytes)
// and returns its length. io.EOF means the stream ended cleanly between
// frames.
func ReadFrame(r *bufio.Reader, buf []byte) (int, error) {
	hdr, err := r.Peek(frameHeader)
	if err != nil {
		if err == io.EOF && len(hdr) > 0 {
			return 0, io.ErrUnexpectedEOF
		}
		return 0, err
	}
	typ, n := hdr[0], int(hdr[1])<<16|int(hdr[2])<<8|int(hdr[3])
	if typ != FrameIP {
		return 0, fmt.Errorf("%w: type %#x", ErrBadFrame, typ)
	}
	if n < minPacket || n > MaxPacket || n > len(buf) {
		return 0, fmt.Errorf("%w: length %d", ErrBadFrame, n)
	}
	_, _ = r.Discard(frameHeader)
	if _, err := io.ReadFull(r, buf[:n]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	return n, nil
}
