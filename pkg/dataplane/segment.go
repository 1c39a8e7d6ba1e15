package dataplane

import "encoding/binary"

// Peers that speak version 1 of the packets protocol take IP frames only
// (frame.go). For them the sender does in user space what the receiving
// kernel would have done with an offload frame: it cuts a TCP super-packet
// into its segments and finishes checksums. Only that peer's stream pays.

// appendIPFrames appends to out the batch's frames as IP frames only: an
// offload frame becomes the IP frames of its segments (or, without GSO,
// one packet with its checksum finished). Malformed offload frames are
// dropped and counted in dropped.
func appendIPFrames(out, batch []byte) (_ []byte, dropped int) {
	for len(batch) >= frameHeader {
		typ, n := batch[0], int(batch[1])<<16|int(batch[2])<<8|int(batch[3])
		if frameHeader+n > len(batch) {
			break // the forwarder's own batches are whole
		}
		body := batch[frameHeader : frameHeader+n]
		batch = batch[frameHeader+n:]
		if typ != FrameOffload {
			out = AppendFrame(out, body)
			continue
		}
		if len(body) < offloadLen {
			dropped++
			continue
		}
		off := Offload{GSOType: body[0], CsumStart: binary.BigEndian.Uint16(body[1:]), CsumOffset: body[3], GSOSize: binary.BigEndian.Uint16(body[4:])}
		var err error
		if out, err = appendSegments(out, body[offloadLen:], off); err != nil {
			dropped++
		}
	}
	return out, dropped
}

// appendSegments appends pkt, whose sender left off's work to do, as
// complete IP frames.
func appendSegments(out, pkt []byte, off Offload) ([]byte, error) {
	if _, err := offloadHeader(pkt, off); err != nil {
		return out, err
	}
	start := int(off.CsumStart)
	if off.GSOType == gsoNone {
		n := len(out) + frameHeader
		out = AppendFrame(out, pkt)
		finishChecksum(out[n:], start, start+int(off.CsumOffset))
		return out, nil
	}
	hdrLen := start + int(pkt[start+12]>>4)*4
	payload := pkt[hdrLen:]
	seq := binary.BigEndian.Uint32(pkt[start+4:])
	v4 := pkt[0]>>4 == 4
	var id uint16
	if v4 {
		id = binary.BigEndian.Uint16(pkt[4:])
	}
	size := int(off.GSOSize)
	for i := 0; len(payload) > 0; i++ {
		chunk := payload[:min(size, len(payload))]
		payload = payload[len(chunk):]
		n := hdrLen + len(chunk)
		out = append(out, FrameIP, byte(n>>16), byte(n>>8), byte(n))
		at := len(out)
		out = append(out, pkt[:hdrLen]...)
		out = append(out, chunk...)
		seg := out[at:]
		if v4 {
			binary.BigEndian.PutUint16(seg[2:], uint16(n))
			binary.BigEndian.PutUint16(seg[4:], id+uint16(i))
			seg[10], seg[11] = 0, 0
			binary.BigEndian.PutUint16(seg[10:], checksum(seg[:start], 0))
		} else {
			binary.BigEndian.PutUint16(seg[4:], uint16(n-40))
		}
		tcp := seg[start:]
		binary.BigEndian.PutUint32(tcp[4:], seq+uint32(i*size))
		if len(payload) > 0 {
			tcp[13] &^= 0x09 // FIN and PSH: the last segment's
		}
		if i > 0 {
			tcp[13] &^= 0x80 // CWR: the first segment's
		}
		tcp[16], tcp[17] = 0, 0
		binary.BigEndian.PutUint16(tcp[16:], checksum(tcp, pseudoHeaderSum(seg, start, len(tcp))))
	}
	return out, nil
}

// pseudoHeaderSum is the unfolded sum of the TCP pseudo-header of seg
// (its IP header ends at start), for a transport length of l.
func pseudoHeaderSum(seg []byte, start, l int) uint32 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(b[i])<<8 | uint32(b[i+1])
		}
	}
	if seg[0]>>4 == 4 {
		add(seg[12:20])
	} else {
		add(seg[8:40])
	}
	return sum + protoTCP + uint32(l)
}
