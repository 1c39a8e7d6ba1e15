package p2p

import (
	"context"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/protocol"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	msmux "github.com/multiformats/go-multistream"
)

// fakeListener serves each TCP connection with serve, on loopback.
func fakeListener(t *testing.T, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			serve(c)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// Learning a relay's peer ID from its address: a libp2p listener answers
// with its identity; a listener that speaks something else, one that
// agrees to TLS and then sends garbage, one that never answers (bounded
// by the caller's deadline) and an address where nothing listens are
// errors that say which.
func TestLearnPeerID(t *testing.T) {
	c := newCluster(t)
	r := c.host("relay-1", nil)
	hostPort, ok := tcpHostPort(tcpAddrs(r)[0])
	if !ok {
		t.Fatal("no TCP address")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	nobody := ln.Addr().String()
	ln.Close()

	for _, tc := range []struct {
		name    string
		addr    string
		wantErr string // "": r's ID
	}{
		{"libp2p", hostPort, ""},
		{"another protocol", fakeListener(t, func(c net.Conn) { c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n")) }), "does not speak libp2p TLS"},
		{"TLS agreed, then garbage", fakeListener(t, func(c net.Conn) {
			mux := msmux.NewMultistreamMuxer[protocol.ID]()
			mux.AddHandler(libp2ptls.ID, nil)
			if _, _, err := mux.Negotiate(c); err == nil {
				c.Write([]byte("this is not a TLS server hello at all"))
			}
		}), "TLS handshake with"},
		{"stalls", fakeListener(t, func(c net.Conn) { c.SetReadDeadline(time.Now().Add(5 * time.Second)); io.Copy(io.Discard, c) }), "i/o timeout"},
		{"nothing listens", nobody, "refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			id, err := LearnPeerID(ctx, tc.addr)
			if tc.wantErr == "" {
				if err != nil || id != r.ID() {
					t.Fatalf("learned %s, %v; want %s", id, err, r.ID())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("learned %s, %v; want an error with %q", id, err, tc.wantErr)
			}
		})
	}
}
