package p2p

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"
)

func listenUDP(t *testing.T) *net.UDPConn {
	t.Helper()
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc
}

func addrPort(pc *net.UDPConn) netip.AddrPort { return pc.LocalAddr().(*net.UDPAddr).AddrPort() }

// testObserver serves the exchange on a plain loopback UDP socket,
// answering as a relay does.
func testObserver(t *testing.T) (*observer, *net.UDPConn) {
	t.Helper()
	return testObserverLimited(t, rate.NewLimiter(observeAnswerRate, observeAnswerBurst))
}

func testObserverLimited(t *testing.T, answers *rate.Limiter) (*observer, *net.UDPConn) {
	t.Helper()
	pc := listenUDP(t)
	o := newObserver(pc, answers)
	t.Cleanup(o.close)
	return o, pc
}

// What a node takes as its observed address from a relay that answers
// right, one that also sends forged answers (another nonce), garbage and
// our own request reflected back, one that only sends those, and one that
// answers with our nonce but a malformed datagram: only a well-formed
// answer with the nonce we sent counts.
func TestObserveTakesOnlyItsAnswer(t *testing.T) {
	mapped := netip.MustParseAddrPort("198.18.0.101:40001")
	forged := netip.MustParseAddrPort("203.0.113.66:666")
	for _, tc := range []struct {
		name  string
		reply func(req observeMsg) [][]byte
		want  netip.AddrPort // zero: no answer
	}{
		{"answer", func(req observeMsg) [][]byte {
			return [][]byte{observeMsg{typ: observeAnswer, nonce: req.nonce, addr: mapped}.append(nil)}
		}, mapped},
		{"forgeries before the answer", func(req observeMsg) [][]byte {
			other := req.nonce
			other[0] ^= 1
			return [][]byte{
				observeMsg{typ: observeAnswer, nonce: other, addr: forged}.append(nil),
				[]byte("\x00ELO\x01\x02short"),
				req.append(nil),
				observeMsg{typ: observeAnswer, nonce: req.nonce, addr: mapped}.append(nil),
			}
		}, mapped},
		{"another nonce only", func(req observeMsg) [][]byte {
			other := req.nonce
			other[15] ^= 0x80
			return [][]byte{observeMsg{typ: observeAnswer, nonce: other, addr: forged}.append(nil)}
		}, netip.AddrPort{}},
		{"our request reflected", func(req observeMsg) [][]byte { return [][]byte{req.append(nil)} }, netip.AddrPort{}},
		{"malformed answer with our nonce", func(req observeMsg) [][]byte {
			b := observeMsg{typ: observeAnswer, nonce: req.nonce, addr: forged}.append(nil)
			return [][]byte{b[:len(b)-1], append(b, 0)}
		}, netip.AddrPort{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, _ := testObserver(t)
			relay := listenUDP(t)
			go func() { // the relay: answers every request its way
				buf := make([]byte, 1500)
				for {
					n, from, err := relay.ReadFrom(buf)
					if err != nil {
						return
					}
					req, err := parseObserve(buf[:n])
					if err != nil || req.typ != observeRequest {
						continue // our observer's answer to a reflected request
					}
					for _, d := range tc.reply(req) {
						_, _ = relay.WriteTo(d, from)
					}
				}
			}()
			timeout := 10 * time.Second
			if !tc.want.IsValid() {
				timeout = 500 * time.Millisecond
			}
			ctx, cancel := context.WithTimeout(context.Background(), timeout)
			defer cancel()
			got, err := o.observe(ctx, addrPort(relay))
			if !tc.want.IsValid() {
				if err == nil {
					t.Fatalf("took %s as our address", got)
				}
				if !strings.Contains(err.Error(), "observe via "+addrPort(relay).String()) {
					t.Errorf("error %q does not name the relay", err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("observed %s, %v; want %s", got, err, tc.want)
			}
			o.mu.Lock()
			waiting := len(o.waiting)
			o.mu.Unlock()
			if waiting != 0 {
				t.Errorf("%d observations still wait after the answer", waiting)
			}
		})
	}
}

// The answering side, to anyone: a well-formed request gets one answer
// with its nonce and the sender's address, no longer than the request;
// garbage, a short or padded request, an answer nobody waits for and a
// QUIC-looking datagram get nothing and do not stop it.
func TestObserverAnswersRequests(t *testing.T) {
	_, server := testObserver(t)
	client := listenUDP(t)
	to := server.LocalAddr()
	req := observeMsg{typ: observeRequest, nonce: [16]byte{9, 8, 7}}
	for _, junk := range [][]byte{
		[]byte("hello"),
		req.append(nil)[:observeReqLen-1],
		append(req.append(nil), 0),
		observeMsg{typ: observeAnswer, nonce: [16]byte{1}, addr: netip.MustParseAddrPort("1.2.3.4:5")}.append(nil),
		append([]byte{0xc0}, make([]byte, 1199)...),
	} {
		if _, err := client.WriteTo(junk, to); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := client.WriteTo(req.append(nil), to); err != nil {
		t.Fatal(err)
	}
	_ = client.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1500)
	n, from, err := client.ReadFrom(buf)
	if err != nil {
		t.Fatal(err)
	}
	if from.String() != to.String() {
		t.Errorf("answer from %s, want %s", from, to)
	}
	ans, err := parseObserve(buf[:n])
	if err != nil || ans.typ != observeAnswer || ans.nonce != req.nonce || ans.addr != addrPort(client) {
		t.Fatalf("first datagram back %x: %+v %v; want the answer to our request, %s", buf[:n], ans, err, addrPort(client))
	}
	if n > observeReqLen {
		t.Errorf("answer of %d bytes to a %d-byte request", n, observeReqLen)
	}
}

// A host without an IPv4 QUIC listener has no observation to offer, and
// says so instead of failing later.
func TestObserveUDPWithoutQUIC(t *testing.T) {
	c := newCluster(t)
	h := c.hostAt("edge-a", []string{"/ip4/127.0.0.1/tcp/0"})
	_, err := h.ObserveUDP(context.Background(), netip.MustParseAddrPort("127.0.0.1:9"))
	if err == nil || !strings.Contains(err.Error(), "no UDP address observation") {
		t.Fatalf("ObserveUDP on a TCP-only host: %v", err)
	}
	if _, err := sharedQUICSocket(h.Host, nil); err == nil {
		t.Error("a QUIC socket without a QUIC connection manager")
	}
}

// An answer with our nonce from another address than the relay we asked
// (an on-path or off-path forger who saw the request) is not taken.
func TestObserveIgnoresAnswersFromElsewhere(t *testing.T) {
	o, _ := testObserver(t)
	relay, forger := listenUDP(t), listenUDP(t)
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := relay.ReadFrom(buf)
			if err != nil {
				return
			}
			if req, err := parseObserve(buf[:n]); err == nil && req.typ == observeRequest {
				ans := observeMsg{typ: observeAnswer, nonce: req.nonce, addr: netip.MustParseAddrPort("198.18.9.9:999")}
				_, _ = forger.WriteTo(ans.append(nil), from)
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if got, err := o.observe(ctx, addrPort(relay)); err == nil {
		t.Fatalf("took %s, answered from %s, as our address observed by %s", got, addrPort(forger), addrPort(relay))
	}
}

// Only relays answer, and within a rate: a host that is not one answers
// nothing; a relay answers at most its burst at once.
func TestObserverAnswerLimits(t *testing.T) {
	count := func(answers *rate.Limiter, requests int) int {
		_, server := testObserverLimited(t, answers)
		client := listenUDP(t)
		for i := range requests {
			req := observeMsg{typ: observeRequest, nonce: [16]byte{byte(i), byte(i >> 8)}}
			if _, err := client.WriteTo(req.append(nil), server.LocalAddr()); err != nil {
				t.Fatal(err)
			}
		}
		got := 0
		buf := make([]byte, 1500)
		for {
			_ = client.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			if _, _, err := client.ReadFrom(buf); err != nil {
				return got
			}
			got++
		}
	}
	if n := count(nil, 10); n != 0 {
		t.Errorf("a host that is not a relay answered %d of 10 requests", n)
	}
	if n := count(rate.NewLimiter(rate.Every(time.Hour), 5), 50); n != 5 {
		t.Errorf("a relay with a burst of 5 answered %d of 50 requests at once", n)
	}
}
