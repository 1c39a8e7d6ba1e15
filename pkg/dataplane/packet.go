package dataplane

import "net/netip"

// addrs returns an IP packet's source and destination, or ok=false when
// it is not a well-formed IPv4 or IPv6 header.
func addrs(pkt []byte) (src, dst netip.Addr, ok bool) {
	if len(pkt) < 1 {
		return src, dst, false
	}
	switch pkt[0] >> 4 {
	case 4:
		if len(pkt) < 20 {
			return src, dst, false
		}
		return netip.AddrFrom4([4]byte(pkt[12:16])), netip.AddrFrom4([4]byte(pkt[16:20])), true
	case 6:
		if len(pkt) < 40 {
			return src, dst, false
		}
		return netip.AddrFrom16([16]byte(pkt[8:24])), netip.AddrFrom16([16]byte(pkt[24:40])), true
	}
	return src, dst, false
}

// checksum is the Internet checksum of b, seeded with a partial sum.
func checksum(b []byte, sum uint32) uint16 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// isICMPError reports whether pkt is an ICMP error message: destination
// unreachable (fragmentation needed among them), time exceeded or
// parameter problem, for IPv4; the same and packet too big for IPv6
// (which must be the next header, no extension headers before it).
func isICMPError(pkt []byte) bool {
	switch pkt[0] >> 4 {
	case 4:
		ihl := int(pkt[0]&0x0f) * 4
		if pkt[9] != 1 || ihl < 20 || len(pkt) < ihl+8 || pkt[6]&0x3f != 0 || pkt[7] != 0 { // ICMP, unfragmented
			return false
		}
		t := pkt[ihl]
		return t == 3 || t == 11 || t == 12
	case 6:
		if pkt[6] != 58 || len(pkt) < 48 { // ICMPv6 right after the header
			return false
		}
		t := pkt[40]
		return t >= 1 && t <= 4
	}
	return false
}
