package dataplane

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"testing"
)

// tcpSuper is a TCP super-packet as a TUN with offloads hands it over:
// payload bytes after a 20-byte TCP header (flags), the checksum field
// holding only the pseudo-header sum.
func tcpSuper(v6 bool, payload int, flags byte) []byte {
	ipl := 20
	if v6 {
		ipl = 40
	}
	pkt := make([]byte, ipl+20+payload)
	if v6 {
		pkt[0], pkt[6], pkt[7] = 0x60, protoTCP, 64
		binary.BigEndian.PutUint16(pkt[4:], uint16(len(pkt)-40))
		copy(pkt[8:24], []byte{0xfd, 0, 2, 0x44, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2})
		copy(pkt[24:40], []byte{0xfd, 0, 2, 0x45, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2})
	} else {
		pkt[0], pkt[8], pkt[9] = 0x45, 64, protoTCP
		binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
		binary.BigEndian.PutUint16(pkt[4:], 0x1234)
		copy(pkt[12:16], []byte{10, 244, 1, 2})
		copy(pkt[16:20], []byte{10, 245, 1, 2})
		binary.BigEndian.PutUint16(pkt[10:], checksum(pkt[:20], 0))
	}
	tcp := pkt[ipl:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 80)
	binary.BigEndian.PutUint32(tcp[4:], 0xfffff000) // wraps within the packet
	tcp[12], tcp[13] = 5<<4, flags
	for i := range payload {
		tcp[20+i] = byte(i * 7)
	}
	sum := pseudoHeaderSum(pkt, ipl, 0) // partial: as the kernel leaves it
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	binary.BigEndian.PutUint16(tcp[16:], uint16(sum))
	return pkt
}

// valid reports whether seg's IPv4 header checksum (if any) and TCP
// checksum verify.
func valid(seg []byte, ipl int) bool {
	if seg[0]>>4 == 4 && checksum(seg[:ipl], 0) != 0 {
		return false
	}
	return checksum(seg[ipl:], pseudoHeaderSum(seg, ipl, len(seg)-ipl)) == 0
}

// A super-packet sent to a version-1 peer arrives as the segments the
// receiving kernel would have made: gso-size payloads in order, sequence
// numbers advancing (across the 32-bit wrap), valid checksums, IPv4 IDs
// counting up, FIN and PSH on the last segment only, the lengths right.
func TestSegmentsForVersion1Peers(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		ipl, gso := 20, byte(gsoTCPv4)
		if v6 {
			ipl, gso = 40, gsoTCPv6
		}
		super := tcpSuper(v6, 2500, 0x18|0x01) // PSH, ACK, FIN
		batch := AppendOffloadFrame(nil, Offload{GSOType: gso, CsumStart: uint16(ipl), CsumOffset: csumOffTCP, GSOSize: 1000}, super)
		plain := tcpSuper(v6, 10, 0x10)
		plain[ipl+16], plain[ipl+17] = 0, 0
		binary.BigEndian.PutUint16(plain[ipl+16:], checksum(plain[ipl:], pseudoHeaderSum(plain, ipl, len(plain)-ipl)))
		batch = AppendFrame(batch, plain)
		out, dropped := appendIPFrames(nil, batch)
		if dropped != 0 {
			t.Fatalf("v6=%v: %d frames dropped", v6, dropped)
		}
		r := bufio.NewReader(bytes.NewReader(out))
		buf := make([]byte, MaxPacket)
		var payload []byte
		for i, want := range []int{1000, 1000, 500, 10} {
			fr, err := ReadFrame(r, buf)
			if err != nil || fr.Partial {
				t.Fatalf("v6=%v frame %d: %+v %v, want an IP frame", v6, i, fr, err)
			}
			seg := buf[:fr.Len]
			if got := fr.Len - ipl - 20; got != want {
				t.Errorf("v6=%v segment %d: %d bytes of payload, want %d", v6, i, got, want)
			}
			if !valid(seg, ipl) {
				t.Errorf("v6=%v segment %d: checksum does not verify", v6, i)
			}
			if i == 3 {
				if !bytes.Equal(seg, plain) {
					t.Errorf("v6=%v: the plain packet changed on the way", v6)
				}
				continue
			}
			payload = append(payload, seg[ipl+20:]...)
			tcp := seg[ipl:]
			if seq := binary.BigEndian.Uint32(tcp[4:]); seq != 0xfffff000+uint32(i*1000) {
				t.Errorf("v6=%v segment %d: seq %#x", v6, i, seq)
			}
			last := i == 2
			if fin, psh := tcp[13]&0x01 != 0, tcp[13]&0x08 != 0; fin != last || psh != last {
				t.Errorf("v6=%v segment %d: FIN %v PSH %v, want them on the last only", v6, i, fin, psh)
			}
			if !v6 {
				if id := binary.BigEndian.Uint16(seg[4:]); id != 0x1234+uint16(i) {
					t.Errorf("segment %d: IP ID %#x", i, id)
				}
				if l := binary.BigEndian.Uint16(seg[2:]); int(l) != fr.Len {
					t.Errorf("segment %d: IP length %d of %d bytes", i, l, fr.Len)
				}
			} else if l := binary.BigEndian.Uint16(seg[4:]); int(l) != fr.Len-40 {
				t.Errorf("segment %d: IPv6 payload length %d of %d bytes", i, l, fr.Len)
			}
		}
		if !bytes.Equal(payload, super[ipl+20:]) {
			t.Errorf("v6=%v: the segments' payload is not the super-packet's", v6)
		}
	}
}

// An offload frame a version-1 peer could not take, malformed, is dropped
// and counted, the rest goes on.
func TestSegmentsDropMalformedOffload(t *testing.T) {
	bad := AppendOffloadFrame(nil, Offload{GSOType: gsoTCPv4, CsumStart: 20, CsumOffset: csumOffTCP, GSOSize: 1}, tcpSuper(false, 100, 0x10))
	good := tcpSuper(false, 10, 0x10)
	out, dropped := appendIPFrames(nil, AppendFrame(bad, good))
	if dropped != 1 || !bytes.Equal(out, AppendFrame(nil, good)) {
		t.Errorf("dropped %d, out %d bytes; want the bad frame dropped and the good one kept", dropped, len(out))
	}
}

// v1Stream is an inbound stream of packets protocol version 1.
type v1Stream struct{ io.ReadCloser }

func (v1Stream) Offload() bool { return false }

// A version-1 stream carries IP frames only: an offload frame on it is
// nonsense from that peer, and the stream is closed after what came
// before, as a version-1 agent does.
func TestVersion1StreamRefusesOffloadFrames(t *testing.T) {
	f, dev, _ := newTestForwarder(t)
	good := ipv4([4]byte{10, 245, 1, 5}, [4]byte{10, 244, 1, 2}, 60)
	super := tcpSuper(false, 2000, 0x10)
	copy(super[12:20], []byte{10, 245, 1, 5, 10, 244, 1, 2})
	stream := AppendFrame(nil, good)
	stream = AppendOffloadFrame(stream, Offload{GSOType: gsoTCPv4, CsumStart: 20, CsumOffset: csumOffTCP, GSOSize: 1000}, super)
	stream = AppendFrame(stream, good)
	f.Receive("edge-2", v1Stream{io.NopCloser(bytes.NewReader(stream))})
	if got := dev.packets(); len(got) != 1 || !bytes.Equal(got[0], good) {
		t.Errorf("written to the TUN: %d packets, want the one before the offload frame", len(got))
	}
	if s := f.Snapshot(); s.BadStreams != 1 {
		t.Errorf("bad streams %d, want 1", s.BadStreams)
	}
}
