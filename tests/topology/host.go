package topology

import (
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

func (h *Host) String() string {
	return fmt.Sprintf("%s(%s)", h.Name, h.IP)
}

// Command returns a command that runs name inside h's namespace (through
// `ip netns exec`), for processes the test starts and stops itself.
func (h *Host) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", h.NetNS, name}, args...)...)
}

// Exec runs a command inside h's namespace and returns its combined output;
// the error carries the output too.
func (h *Host) Exec(args ...string) (string, error) {
	if len(args) == 0 {
		return "", fmt.Errorf("%s: Exec: no command", h.Name)
	}
	out, err := h.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s: %s: %w: %s", h.Name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Ping sends one ICMP echo from h to dst and waits at most a second.
func (h *Host) Ping(dst netip.Addr) error {
	_, err := h.Exec("ping", "-n", "-q", "-c", "1", "-W", "1", dst.String())
	return err
}

// Do runs f with the calling goroutine locked to an OS thread that is in
// h's namespace, and puts the thread back afterwards. Sockets created in f
// stay in h's namespace for their whole life, whichever goroutine uses
// them later. f must not start goroutines that expect to be in h's
// namespace: they are not.
func (h *Host) Do(f func() error) error {
	return ns.WithNetNSPath(h.NetNSPath, func(ns.NetNS) error { return f() })
}

// ListenUDP opens a UDP socket in h's namespace bound to addr ("ip:port";
// "" means h.IP with a kernel-chosen port).
func (h *Host) ListenUDP(addr string) (*net.UDPConn, error) {
	if addr == "" {
		addr = netip.AddrPortFrom(h.IP, 0).String()
	}
	ua, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return nil, err
	}
	var c *net.UDPConn
	err = h.Do(func() (err error) {
		c, err = net.ListenUDP("udp4", ua)
		return err
	})
	return c, err
}

// ListenTCP opens a TCP listener in h's namespace bound to addr ("ip:port";
// "" means h.IP with a kernel-chosen port).
func (h *Host) ListenTCP(addr string) (*net.TCPListener, error) {
	if addr == "" {
		addr = netip.AddrPortFrom(h.IP, 0).String()
	}
	ta, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		return nil, err
	}
	var l *net.TCPListener
	err = h.Do(func() (err error) {
		l, err = net.ListenTCP("tcp4", ta)
		return err
	})
	return l, err
}

// DialTCP connects from h's namespace to addr ("ip:port"), giving up after
// timeout (a dropped SYN otherwise hangs for minutes).
func (h *Host) DialTCP(addr string, timeout time.Duration) (*net.TCPConn, error) {
	if _, err := netip.ParseAddrPort(addr); err != nil {
		// A name would be resolved in another goroutine: literal only.
		return nil, fmt.Errorf("DialTCP %q: want a literal ip:port: %w", addr, err)
	}
	var c net.Conn
	err := h.Do(func() (err error) {
		d := net.Dialer{Timeout: timeout}
		c, err = d.Dial("tcp4", addr)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}
