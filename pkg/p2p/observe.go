package p2p

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
	"k8s.io/klog/v2"
)

// Relays carry circuits over TCP (a circuit over TCP moved 1.72 Gbit/s
// in one TCP stream on the data-plane benchmark, over QUIC 0.36 Gbit/s,
// at twice the CPU per GiB), but UDP hole punching needs the NAT mapping
// of our QUIC socket, which a relay only sees on UDP. So a node asks each
// relay, on its QUIC port and from its own QUIC socket, which address the
// datagram came from: a STUN-like exchange on the non-QUIC packets the
// QUIC socket shares (quic-go hands those to us). The answer, as
// /ip4/<ip>/udp/<port>/quic-v1, is offered to peers for hole punching,
// and the exchange, repeated every ObserveInterval, keeps the NAT mapping
// open.
//
// Wire format (all datagrams; big-endian):
//
//	request (64 bytes):  0x00 "ELO" | version 1 | type 1 | nonce (16) | zeros (42)
//	answer (27 or 39 B): 0x00 "ELO" | version 1 | type 2 | nonce (16) |
//	                     family (4 or 6) | port (2) | address (4 or 16)
//
// The first byte has bit 0x40 clear, which is how quic-go tells a
// datagram that is not QUIC (every QUIC packet sets it), as STUN does.
// An answer is never longer than a request, so a relay cannot be used to
// amplify traffic toward a spoofed source. Anything else on the socket is
// ignored. Only relays (public hosts) answer, at most observeAnswerRate
// answers a second. The answer is not authenticated: a forged one can
// only make a node offer a wrong address for hole punching, which then
// fails and the path stays relayed; a node takes an answer only from the
// address it asked, and only with the nonce it sent.
// ObserveInterval is how often a node repeats the exchange with each
// relay: well within the 30 s Linux keeps an unanswered UDP mapping.
const ObserveInterval = 15 * time.Second

const (
	observeMagic   = "\x00ELO"
	observeVersion = 1
	observeRequest = 1
	observeAnswer  = 2
	observeReqLen  = 64
	observeTimeout = 2 * time.Second
	// observeAnswerRate bounds a relay's answers (burst: observeAnswerBurst):
	// 10,000 nodes asking every ObserveInterval need about 670 a second.
	observeAnswerRate  = 2000
	observeAnswerBurst = 500
)

var errNotObserve = errors.New("not an observe message")

type observeMsg struct {
	typ   byte
	nonce [16]byte
	addr  netip.AddrPort // answers only
}

func (m observeMsg) append(b []byte) []byte {
	b = append(b, observeMagic...)
	b = append(b, observeVersion, m.typ)
	b = append(b, m.nonce[:]...)
	if m.typ == observeRequest {
		return append(b, make([]byte, observeReqLen-len(b))...)
	}
	ip := m.addr.Addr().Unmap()
	fam := byte(4)
	if ip.Is6() {
		fam = 6
	}
	b = append(b, fam)
	b = binary.BigEndian.AppendUint16(b, m.addr.Port())
	return append(b, ip.AsSlice()...)
}

// parseObserve reads one datagram; errNotObserve for anything that is not
// a well-formed request or answer.
func parseObserve(b []byte) (observeMsg, error) {
	var m observeMsg
	if len(b) < 22 || !bytes.Equal(b[:4], []byte(observeMagic)) || b[4] != observeVersion {
		return m, errNotObserve
	}
	m.typ = b[5]
	copy(m.nonce[:], b[6:22])
	rest := b[22:]
	switch m.typ {
	case observeRequest:
		if len(b) != observeReqLen {
			return m, errNotObserve
		}
		return m, nil
	case observeAnswer:
		if len(rest) < 3 {
			return m, errNotObserve
		}
		port := binary.BigEndian.Uint16(rest[1:3])
		var ip netip.Addr
		switch {
		case rest[0] == 4 && len(rest) == 3+4:
			ip = netip.AddrFrom4([4]byte(rest[3:7]))
		case rest[0] == 6 && len(rest) == 3+16:
			if ip = netip.AddrFrom16([16]byte(rest[3:19])); ip.Is4In6() {
				return m, errNotObserve // an IPv4 address is sent as family 4
			}
		default:
			return m, errNotObserve
		}
		m.addr = netip.AddrPortFrom(ip, port)
		return m, nil
	}
	return m, errNotObserve
}

// observer serves the exchange on one shared QUIC socket: it answers
// requests (relays do, within a rate) and hands answers to the ObserveUDP
// call waiting for their nonce.
type observer struct {
	pc net.PacketConn
	// answers is nil on a host that does not answer (not a relay).
	answers *rate.Limiter

	mu      sync.Mutex                 // guards waiting
	waiting map[[16]byte]observeWaiter // by nonce
}

// observeWaiter is one observe call: the relay it asked, where its answer goes.
type observeWaiter struct {
	relay netip.AddrPort
	ch    chan netip.AddrPort
}

// newObserver serves the exchange on pc; answers (nil: none) limits the
// requests it answers.
func newObserver(pc net.PacketConn, answers *rate.Limiter) *observer {
	o := &observer{pc: pc, answers: answers, waiting: map[[16]byte]observeWaiter{}}
	go o.serve() // routineObserve: ends when pc is closed
	return o
}

func (o *observer) serve() {
	buf := make([]byte, 1500)
	for {
		n, from, err := o.pc.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || errors.Is(err, context.Canceled) {
				return
			}
			time.Sleep(10 * time.Millisecond) // a transient read error
			continue
		}
		m, err := parseObserve(buf[:n])
		if err != nil {
			continue
		}
		ua, ok := from.(*net.UDPAddr)
		if !ok {
			continue
		}
		switch m.typ {
		case observeRequest:
			if o.answers == nil || !o.answers.Allow() {
				continue
			}
			ans := observeMsg{typ: observeAnswer, nonce: m.nonce, addr: ua.AddrPort()}
			_, _ = o.pc.WriteTo(ans.append(nil), from)
		case observeAnswer:
			src := unmapped(ua.AddrPort())
			o.mu.Lock()
			w, ok := o.waiting[m.nonce]
			ok = ok && w.relay == src // from the address asked, or nothing
			if ok {
				delete(o.waiting, m.nonce)
			}
			o.mu.Unlock()
			if ok {
				w.ch <- m.addr
			}
		}
	}
}

// observe asks relay (its QUIC socket's address) where our datagrams come
// from.
func (o *observer) observe(ctx context.Context, relay netip.AddrPort) (netip.AddrPort, error) {
	var req observeMsg
	req.typ = observeRequest
	if _, err := rand.Read(req.nonce[:]); err != nil {
		return netip.AddrPort{}, err
	}
	ch := make(chan netip.AddrPort, 1)
	o.mu.Lock()
	o.waiting[req.nonce] = observeWaiter{relay: unmapped(relay), ch: ch}
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		delete(o.waiting, req.nonce)
		o.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, observeTimeout)
	defer cancel()
	// Three tries, a datagram may be lost.
	for try := 0; try < 3; try++ {
		if _, err := o.pc.WriteTo(req.append(nil), net.UDPAddrFromAddrPort(relay)); err != nil {
			return netip.AddrPort{}, err
		}
		select {
		case a := <-ch:
			return a, nil
		case <-ctx.Done():
			return netip.AddrPort{}, fmt.Errorf("observe via %s: %w", relay, ctx.Err())
		case <-time.After(observeTimeout / 3):
		}
	}
	return netip.AddrPort{}, fmt.Errorf("observe via %s: no answer", relay)
}

func unmapped(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }

func (o *observer) close() {
	if err := o.pc.Close(); err != nil {
		klog.V(2).InfoS("Closing the observe socket", "err", err)
	}
}
