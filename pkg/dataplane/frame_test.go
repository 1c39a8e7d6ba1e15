package dataplane

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

func ipv4(src, dst [4]byte, size int) []byte {
	p := make([]byte, size)
	p[0] = 0x45
	p[2], p[3] = byte(size>>8), byte(size)
	p[8], p[9] = 64, 17
	copy(p[12:16], src[:])
	copy(p[16:20], dst[:])
	return p
}

func TestFrameRoundTrip(t *testing.T) {
	var stream []byte
	pkts := [][]byte{ipv4([4]byte{10, 244, 1, 2}, [4]byte{10, 245, 1, 2}, 20), ipv4([4]byte{1}, [4]byte{2}, 1420), ipv4([4]byte{3}, [4]byte{4}, MaxPacket)}
	offs := []Offload{{}, {GSOType: gsoTCPv4, CsumStart: 20, CsumOffset: 16, GSOSize: 1380}, {}}
	for i, p := range pkts {
		if offs[i] != (Offload{}) {
			stream = AppendOffloadFrame(stream, offs[i], p)
		} else {
			stream = AppendFrame(stream, p)
		}
	}
	if n := countFrames(stream); n != len(pkts) {
		t.Errorf("countFrames = %d, want %d", n, len(pkts))
	}
	r := bufio.NewReader(bytes.NewReader(stream))
	buf := make([]byte, MaxPacket)
	for i, want := range pkts {
		fr, err := ReadFrame(r, buf)
		if err != nil || !bytes.Equal(buf[:fr.Len], want) {
			t.Fatalf("frame %d: %d bytes, %v", i, fr.Len, err)
		}
		if fr.Off != offs[i] || fr.Partial != (offs[i] != Offload{}) {
			t.Errorf("frame %d: offload %+v (partial %v), want %+v", i, fr.Off, fr.Partial, offs[i])
		}
	}
	if _, err := ReadFrame(r, buf); err != io.EOF {
		t.Errorf("after the last frame: %v, want EOF", err)
	}
}

func TestFrameRejectsNonsense(t *testing.T) {
	buf := make([]byte, MaxPacket)
	for name, tc := range map[string]struct {
		in   []byte
		want error
	}{
		"unknown type":        {[]byte{0x03, 0, 0, 20}, ErrBadFrame},
		"offload header only": {[]byte{FrameOffload, 0, 0, offloadLen, 1, 0, 20, 16, 5, 100}, ErrBadFrame},
		"offload truncated":   {[]byte{FrameOffload, 0, 0, offloadLen + 40, 1, 0, 20}, io.ErrUnexpectedEOF},
		"too short":           {[]byte{FrameIP, 0, 0, 19}, ErrBadFrame},
		"too long":            {[]byte{FrameIP, 1, 0, 0}, ErrBadFrame},
		"truncated":           {append([]byte{FrameIP, 0, 0, 40}, make([]byte, 10)...), io.ErrUnexpectedEOF},
		"partial header":      {[]byte{FrameIP, 0}, io.ErrUnexpectedEOF},
	} {
		_, err := ReadFrame(bufio.NewReader(bytes.NewReader(tc.in)), buf)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
	}
}

// Any byte stream a peer sends is read frame by frame without panicking;
// every frame read re-encodes to the bytes it came from.
func FuzzReadFrame(f *testing.F) {
	f.Add(AppendFrame(nil, ipv4([4]byte{1}, [4]byte{2}, 40)))
	f.Add(AppendOffloadFrame(nil, Offload{GSOType: gsoTCPv4, CsumStart: 20, CsumOffset: 16, GSOSize: 1380}, ipv4([4]byte{1}, [4]byte{2}, 3000)))
	f.Add([]byte{FrameIP, 0xff, 0xff, 0xff})
	f.Add([]byte{0, 0, 0, 0, 0})
	buf := make([]byte, MaxPacket) // one per worker: inputs run one at a time
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		off := 0
		for {
			fr, err := ReadFrame(r, buf)
			if err != nil {
				return
			}
			if fr.Len < minPacket || fr.Len > MaxPacket {
				t.Fatalf("accepted a %d-byte packet", fr.Len)
			}
			got := AppendFrame(nil, buf[:fr.Len])
			if fr.Partial {
				got = AppendOffloadFrame(nil, fr.Off, buf[:fr.Len])
			}
			if !bytes.Equal(got, data[off:off+len(got)]) {
				t.Fatalf("frame at %d does not re-encode to its bytes", off)
			}
			// What a peer says about offloads reaches the kernel only
			// when it fits the packet.
			if fr.Partial {
				if h, err := offloadHeader(buf[:fr.Len], fr.Off); err == nil {
					checkVnetHeader(t, h, buf[:fr.Len])
				}
			}
			off += len(got)
		}
	})
}
