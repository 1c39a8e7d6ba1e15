package dataplane

import (
	"encoding/binary"
	"errors"
	"testing"
)

// tcp4 is an IPv4 TCP packet of size bytes (20-byte IP and TCP headers).
func tcp4(size int) []byte {
	p := ipv4([4]byte{10, 244, 1, 2}, [4]byte{10, 245, 1, 2}, size)
	p[9] = 6
	p[20+12] = 5 << 4
	return p
}

// withIHL is a 20000-byte IPv4 TCP packet with a 24-byte IP header.
func withIHL(words byte) []byte {
	p := tcp4(20000)
	p[0] = 0x40 | words
	copy(p[int(words)*4:], p[20:40])
	return p
}

func tcp6(size int) []byte {
	p := make([]byte, size)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(size-40))
	p[6] = 6
	p[40+12] = 8 << 4 // 32-byte header (timestamps)
	return p
}

// checkVnetHeader asserts what the kernel relies on in a header built
// for pkt.
func checkVnetHeader(t *testing.T, h [vnetHdrLen]byte, pkt []byte) {
	t.Helper()
	hdrLen := int(binary.NativeEndian.Uint16(h[2:]))
	start, off := int(binary.NativeEndian.Uint16(h[6:])), int(binary.NativeEndian.Uint16(h[8:]))
	if h[0] != vnetNeedsCsum || start+off+2 > len(pkt) || hdrLen > len(pkt) || hdrLen < start {
		t.Fatalf("header %x does not fit a %d-byte packet", h, len(pkt))
	}
	if h[1] != gsoNone && (binary.NativeEndian.Uint16(h[4:]) == 0 || hdrLen >= len(pkt)) {
		t.Fatalf("segmentation header %x for a %d-byte packet", h, len(pkt))
	}
}

func TestOffloadHeader(t *testing.T) {
	for name, tc := range map[string]struct {
		pkt     []byte
		off     Offload
		hdrLen  int
		wantErr bool
	}{
		"tcp4 super-packet":         {tcp4(20000), Offload{gsoTCPv4, 20, 16, 1380}, 40, false},
		"tcp6 super-packet":         {tcp6(20000), Offload{gsoTCPv6, 40, 16, 1348}, 72, false},
		"tcp checksum only":         {tcp4(100), Offload{gsoNone, 20, 16, 0}, 40, false},
		"udp checksum only":         {ipv4([4]byte{1}, [4]byte{2}, 200), Offload{gsoNone, 20, 6, 0}, 28, false},
		"ipv4 options":              {withIHL(6), Offload{gsoTCPv4, 24, 16, 1380}, 44, false},
		"udp segmentation":          {ipv4([4]byte{1}, [4]byte{2}, 9000), Offload{gsoUDP, 20, 6, 1400}, 0, true},
		"tcp6 type for ipv4":        {tcp4(20000), Offload{gsoTCPv6, 20, 16, 1380}, 0, true},
		"no gso size":               {tcp4(20000), Offload{gsoTCPv4, 20, 16, 0}, 0, true},
		"tiny gso size":             {tcp4(20000), Offload{gsoTCPv4, 20, 16, minGSOSize - 1}, 0, true},
		"too many segments":         {tcp4(20000), Offload{gsoTCPv4, 20, 16, 100}, 0, true},
		"unknown type":              {tcp4(20000), Offload{3, 20, 16, 1380}, 0, true},
		"start inside IP":           {tcp4(20000), Offload{gsoTCPv4, 10, 16, 1380}, 0, true},
		"start inside payload":      {tcp4(20000), Offload{gsoTCPv4, 100, 16, 1380}, 0, true},
		"start not after options":   {withIHL(6), Offload{gsoTCPv4, 20, 16, 1380}, 0, true},
		"checksum past end":         {tcp4(40), Offload{gsoNone, 30, 16, 0}, 0, true},
		"odd csum offset":           {tcp4(20000), Offload{gsoNone, 20, 10, 0}, 0, true},
		"udp offset for tcp":        {tcp4(20000), Offload{gsoTCPv4, 20, 6, 1380}, 0, true},
		"tcp offload for udp":       {ipv4([4]byte{1}, [4]byte{2}, 20000), Offload{gsoTCPv4, 20, 16, 1380}, 0, true},
		"ip length beyond packet":   {func() []byte { p := tcp4(100); p[2], p[3] = 0xff, 0xff; return p }(), Offload{gsoNone, 20, 16, 0}, 0, true},
		"ipv6 length beyond packet": {func() []byte { p := tcp6(2000); p[4], p[5] = 0xff, 0xff; return p }(), Offload{gsoTCPv6, 40, 16, 1348}, 0, true},
		"ipv6 extension header":     {func() []byte { p := tcp6(2000); p[6] = 0; return p }(), Offload{gsoTCPv6, 40, 16, 1348}, 0, true},
		"fragment":                  {func() []byte { p := tcp4(2000); p[6] = 0x20; return p }(), Offload{gsoTCPv4, 20, 16, 1380}, 0, true},
		"headers only":              {tcp4(40), Offload{gsoTCPv4, 20, 16, 1380}, 0, true},
		"short tcp header":          {func() []byte { p := tcp4(2000); p[32] = 2 << 4; return p }(), Offload{gsoTCPv4, 20, 16, 1380}, 0, true},
		"not IP":                    {make([]byte, 100), Offload{gsoNone, 20, 6, 0}, 0, true},
	} {
		h, err := offloadHeader(tc.pkt, tc.off)
		if tc.wantErr {
			if !errors.Is(err, errOffload) {
				t.Errorf("%s: accepted (%x), want an error", name, h)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		checkVnetHeader(t, h, tc.pkt)
		if got := int(binary.NativeEndian.Uint16(h[2:])); got != tc.hdrLen || h[1] != tc.off.GSOType ||
			binary.NativeEndian.Uint16(h[4:]) != tc.off.GSOSize {
			t.Errorf("%s: header %x, want type %d, hdr len %d, gso size %d", name, h, tc.off.GSOType, tc.hdrLen, tc.off.GSOSize)
		}
	}
}

// sum16 is the plain ones' complement sum of b (the reference).
func sum16(b []byte) uint32 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s&0xffff + s>>16
	}
	return s
}

func TestFinishChecksum(t *testing.T) {
	for _, size := range []int{28, 29, 1400, 1401, 65535, 65534} {
		pkt := ipv4([4]byte{10, 244, 1, 2}, [4]byte{10, 245, 7, 9}, size)
		for i := 28; i < size; i++ {
			pkt[i] = byte(i*7 + 3)
		}
		l4 := pkt[20:]
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
		// The kernel leaves the folded pseudo-header sum in the field.
		pseudo := append(append(append([]byte{}, pkt[12:20]...), 0, 17), byte(len(l4)>>8), byte(len(l4)))
		binary.BigEndian.PutUint16(l4[6:], uint16(sum16(pseudo)))
		finishChecksum(pkt, 20, 26)
		if got := sum16(append(pseudo, l4...)); got != 0xffff {
			t.Errorf("%d bytes: checksum %#04x does not verify (sum %#04x)", size, binary.BigEndian.Uint16(l4[6:]), got)
		}
		if binary.BigEndian.Uint16(l4[6:]) == 0 {
			t.Errorf("%d bytes: UDP checksum 0 (means none)", size)
		}
	}
}

func vnetHdr(flags, typ uint8, size, start, off uint16) []byte {
	h := make([]byte, vnetHdrLen)
	h[0], h[1] = flags, typ
	binary.NativeEndian.PutUint16(h[4:], size)
	binary.NativeEndian.PutUint16(h[6:], start)
	binary.NativeEndian.PutUint16(h[8:], off)
	return h
}

func TestFromVnet(t *testing.T) {
	// A super-packet travels unsplit, as an offload frame.
	off, partial, err := fromVnet(vnetHdr(vnetNeedsCsum, gsoTCPv4, 1380, 20, 16), tcp4(30000))
	if err != nil || !partial || off != (Offload{gsoTCPv4, 20, 16, 1380}) {
		t.Errorf("super-packet: %+v partial %v, %v", off, partial, err)
	}
	// A lone packet with a partial checksum is finished here.
	pkt := tcp4(60)
	binary.BigEndian.PutUint16(pkt[36:], 0x1234)
	if _, partial, err := fromVnet(vnetHdr(vnetNeedsCsum, gsoNone, 0, 20, 16), pkt); err != nil || partial ||
		binary.BigEndian.Uint16(pkt[36:]) == 0x1234 {
		t.Errorf("lone partial packet: partial %v, checksum %#x, %v", partial, binary.BigEndian.Uint16(pkt[36:]), err)
	}
	if _, partial, err := fromVnet(vnetHdr(0, gsoNone, 0, 0, 0), tcp4(60)); err != nil || partial {
		t.Errorf("complete packet: partial %v, %v", partial, err)
	}
	for name, h := range map[string][]byte{
		"gso without checksum": vnetHdr(0, gsoTCPv4, 1380, 20, 16),
		"checksum past end":    vnetHdr(vnetNeedsCsum, gsoNone, 0, 50, 16),
		"gso checksum odd":     vnetHdr(vnetNeedsCsum, gsoTCPv4, 1380, 20, 300),
	} {
		if _, _, err := fromVnet(h, tcp4(60)); !errors.Is(err, errOffload) {
			t.Errorf("%s: %v, want an offload error", name, err)
		}
	}
}

// Whatever offload a peer claims, a header reaches the kernel only when
// it fits the packet. The packet is a fuzzed head padded with pad zero
// bytes: large packets from small inputs.
func FuzzOffloadHeader(f *testing.F) {
	f.Add(tcp4(3000)[:60], uint16(2940), uint8(gsoTCPv4), uint16(20), uint8(16), uint16(1380))
	f.Add(tcp6(3000)[:80], uint16(2920), uint8(gsoTCPv6), uint16(40), uint8(16), uint16(1348))
	f.Add(ipv4([4]byte{1}, [4]byte{2}, 200)[:40], uint16(160), uint8(gsoNone), uint16(20), uint8(6), uint16(0))
	f.Fuzz(func(t *testing.T, head []byte, pad uint16, typ uint8, start uint16, off uint8, size uint16) {
		pkt := append(head[:min(len(head), 128)], make([]byte, min(int(pad), MaxPacket-min(len(head), 128)))...)
		if h, err := offloadHeader(pkt, Offload{typ, start, off, size}); err == nil {
			checkVnetHeader(t, h, pkt)
		}
	})
}
