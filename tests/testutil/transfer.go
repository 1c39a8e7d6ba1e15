package testutil

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"time"
)

// TCPTransfer sends size pseudo-random bytes over TCP to port 5201 of dst
// and checks that they arrive intact (SHA-256). server and client run a
// function with its sockets made in the receiving and sending namespace
// (a pod's). The whole exchange must end within timeout. It returns how
// long the bytes took.
func TCPTransfer(server, client func(func() error) error, dst netip.Addr, size int64, timeout time.Duration) (time.Duration, error) {
	deadline := time.Now().Add(timeout)
	var ln net.Listener
	if err := server(func() (err error) { ln, err = net.Listen("tcp", ":5201"); return err }); err != nil {
		return 0, err
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		defer close(got)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_ = c.SetDeadline(deadline)
		h := sha256.New()
		if _, err := io.Copy(h, c); err == nil {
			got <- h.Sum(nil)
		}
	}()
	var conn net.Conn
	if err := client(func() (err error) {
		conn, err = net.DialTimeout("tcp", net.JoinHostPort(dst.String(), "5201"), 5*time.Second)
		return err
	}); err != nil {
		return 0, fmt.Errorf("dial %s: %w", dst, err)
	}
	start := time.Now()
	_ = conn.SetDeadline(deadline)
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(conn, h), io.LimitReader(rand.NewChaCha8([32]byte{7}), size))
	conn.Close()
	if err != nil || n != size {
		return 0, fmt.Errorf("to %s: sent %d of %d bytes: %v", dst, n, size, err)
	}
	select {
	case sum, ok := <-got:
		if !ok || !bytes.Equal(sum, h.Sum(nil)) {
			return 0, fmt.Errorf("to %s: the %d bytes that arrived differ from those sent", dst, size)
		}
	case <-time.After(time.Until(deadline)):
		return 0, fmt.Errorf("to %s: the receiver did not finish within %s", dst, timeout)
	}
	return time.Since(start), nil
}
