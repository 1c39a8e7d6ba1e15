package topology

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Forward accepts TCP connections on h.IP:port inside h's namespace and
// splices each to target ("ip:port"), dialed from the test process's own
// namespace. It puts a service that runs on the host (kube-apiserver or
// cloudcore of tests/cluster, say) at a public address of the topology,
// the way a load balancer fronts a control plane. Close the returned
// closer to stop it (the topology's teardown closes it too); open
// connections are closed with it.
func (h *Host) Forward(port int, target string) (io.Closer, error) {
	if _, err := netip.ParseAddrPort(target); err != nil {
		return nil, fmt.Errorf("Forward %q: want a literal ip:port: %w", target, err)
	}
	ln, err := h.ListenTCP(netip.AddrPortFrom(h.IP, uint16(port)).String())
	if err != nil {
		return nil, fmt.Errorf("%s: forward port %d: %w", h.Name, port, err)
	}
	f := &forwarder{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	go f.serve()
	h.tp.mu.Lock()
	h.tp.closers = append(h.tp.closers, f)
	h.tp.mu.Unlock()
	return f, nil
}

type forwarder struct {
	ln     *net.TCPListener
	target string

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func (f *forwarder) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		go f.splice(c)
	}
}

func (f *forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		c.Close()
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *forwarder) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	c.Close()
}

func (f *forwarder) splice(in net.Conn) {
	if !f.track(in) {
		return
	}
	defer f.untrack(in)
	out, err := net.DialTimeout("tcp", f.target, 5*time.Second)
	if err != nil {
		return
	}
	if !f.track(out) {
		return
	}
	defer f.untrack(out)
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		done <- struct{}{}
	}
	go pipe(out, in)
	go pipe(in, out)
	<-done
	<-done
}

// Close stops accepting and closes every open connection.
func (f *forwarder) Close() error {
	f.mu.Lock()
	f.closed = true
	conns := f.conns
	f.conns = map[net.Conn]struct{}{}
	f.mu.Unlock()
	err := f.ln.Close()
	for c := range conns {
		c.Close()
	}
	return err
}
