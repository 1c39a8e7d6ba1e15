package dataplane

import (
	"encoding/binary"
	"net/netip"
)

// unreachable builds the ICMP error a router sends for pkt whose
// destination has no route (ICMPv4 3/1 host unreachable, ICMPv6 1/3
// address unreachable) into out, and returns it; nil when pkt must not
// get one (it is itself an ICMP error, not a first fragment, or
// malformed). The error comes from the unreachable address itself, so
// the sender's stack matches it to its socket.
func unreachable(pkt, out []byte) []byte {
	src, dst, ok := addrs(pkt)
	if !ok || !src.IsValid() || src.IsUnspecified() || src.IsMulticast() || dst.IsMulticast() {
		return nil
	}
	if src.Is4() {
		ihl := int(pkt[0]&0x0f) * 4
		if ihl < 20 || len(pkt) < ihl || binary.BigEndian.Uint16(pkt[6:8])&0x1fff != 0 {
			return nil // malformed or a later fragment
		}
		if pkt[9] == 1 && len(pkt) >= ihl+1 && pkt[ihl] != 0 && pkt[ihl] != 8 {
			return nil // an ICMP error itself
		}
		quote := min(len(pkt), ihl+8)
		n := 20 + 8 + quote
		out = out[:n]
		clear(out[:28])
		out[0], out[8], out[9] = 0x45, 64, 1 // IPv4, TTL, ICMP
		binary.BigEndian.PutUint16(out[2:4], uint16(n))
		copy(out[12:16], dst.AsSlice())
		copy(out[16:20], src.AsSlice())
		binary.BigEndian.PutUint16(out[10:12], checksum(out[:20], 0))
		out[20], out[21] = 3, 1
		copy(out[28:], pkt[:quote])
		binary.BigEndian.PutUint16(out[22:24], checksum(out[20:n], 0))
		return out
	}
	if pkt[6] == 58 && len(pkt) > 40 && pkt[40] < 128 {
		return nil // an ICMPv6 error itself
	}
	quote := min(len(pkt), 1280-40-8)
	n := 40 + 8 + quote
	out = out[:n]
	clear(out[:48])
	out[0] = 0x60
	binary.BigEndian.PutUint16(out[4:6], uint16(8+quote))
	out[6], out[7] = 58, 64
	copy(out[8:24], dst.AsSlice())
	copy(out[24:40], src.AsSlice())
	out[40], out[41] = 1, 3
	copy(out[48:], pkt[:quote])
	binary.BigEndian.PutUint16(out[42:44], checksum(out[40:n], pseudo6(dst, src, 8+quote)))
	return out
}

func pseudo6(src, dst netip.Addr, length int) uint32 {
	var sum uint32
	s, d := src.As16(), dst.As16()
	for i := 0; i < 16; i += 2 {
		sum += uint32(s[i])<<8 | uint32(s[i+1])
		sum += uint32(d[i])<<8 | uint32(d[i+1])
	}
	return sum + uint32(length) + 58
}
