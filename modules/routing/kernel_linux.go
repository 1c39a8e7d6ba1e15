package routing

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/coreos/go-iptables/iptables"
	"github.com/vishvananda/netlink"
	"go4.org/netipx"
	"golang.org/x/sys/unix"
)

// linuxKernel is the Kernel of a Linux host: netlink for links,
// addresses and routes, /proc/sys for sysctls, the iptables binaries
// (go-iptables) for rules.
type linuxKernel struct{}

func newKernel() Kernel { return linuxKernel{} }

func (linuxKernel) Link(name string) (*Link, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, err
	}
	a := l.Attrs()
	return &Link{Name: a.Name, Type: l.Type(), MTU: a.MTU,
		Up:    a.Flags&net.FlagUp != 0 && a.OperState != netlink.OperDown,
		State: a.OperState.String(), Flags: a.Flags.String()}, nil
}

func (linuxKernel) DeleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	return netlink.LinkDel(l)
}

func (linuxKernel) SetLinkUp(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	return netlink.LinkSetUp(l)
}

func (linuxKernel) UnderlayMTU() int {
	routes, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err == nil {
		for _, r := range routes {
			if r.Dst == nil || r.Dst.String() == "0.0.0.0/0" {
				if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil && l.Attrs().MTU > 0 {
					return l.Attrs().MTU
				}
			}
		}
	}
	return 1500
}

// linkNames maps link indexes to names, asking netlink once per index.
type linkNames map[int]string

func (n linkNames) name(index int) string {
	if s, ok := n[index]; ok {
		return s
	}
	s := ""
	if l, err := netlink.LinkByIndex(index); err == nil {
		s = l.Attrs().Name
	}
	n[index] = s
	return s
}

func (linuxKernel) Addrs() ([]LinkAddr, error) {
	addrs, err := netlink.AddrList(nil, netlink.FAMILY_ALL)
	if err != nil {
		return nil, err
	}
	names := linkNames{}
	var out []LinkAddr
	for _, a := range addrs {
		if a.IPNet == nil || a.Scope != int(netlink.SCOPE_UNIVERSE) {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ones, _ := a.Mask.Size()
		out = append(out, LinkAddr{Link: names.name(a.LinkIndex), Prefix: netip.PrefixFrom(ip.Unmap(), ones)})
	}
	return out, nil
}

func (linuxKernel) ReplaceAddr(link string, ip netip.Addr) error {
	l, err := netlink.LinkByName(link)
	if err != nil {
		return err
	}
	a := &netlink.Addr{IPNet: netipx.PrefixIPNet(netip.PrefixFrom(ip, ip.BitLen()))}
	if ip.Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	return netlink.AddrReplace(l, a)
}

func (linuxKernel) DeleteAddr(link string, p netip.Prefix) error {
	l, err := netlink.LinkByName(link)
	if err != nil {
		return err
	}
	if err := netlink.AddrDel(l, &netlink.Addr{IPNet: netipx.PrefixIPNet(p)}); err != nil && !errors.Is(err, unix.EADDRNOTAVAIL) {
		return err
	}
	return nil
}

func (linuxKernel) Routes() ([]Route, error) {
	var out []Route
	var errs []error
	names := linkNames{}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := netlink.RouteListFiltered(fam, &netlink.Route{Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN},
			netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range routes {
			if r.Dst == nil {
				continue
			}
			dst, ok := netipx.FromStdIPNet(r.Dst)
			if !ok {
				continue
			}
			rt := Route{Dst: dst}
			if gw, ok := netip.AddrFromSlice(r.Gw); ok {
				rt.Via = gw.Unmap()
			} else if r.LinkIndex > 0 {
				rt.Dev = names.name(r.LinkIndex)
			}
			if src, ok := netip.AddrFromSlice(r.Src); ok {
				rt.Src = src.Unmap()
			}
			out = append(out, rt)
		}
	}
	return out, errors.Join(errs...)
}

// netlinkRoute is r as netlink has it.
func netlinkRoute(r Route) (*netlink.Route, error) {
	nr := &netlink.Route{Dst: netipx.PrefixIPNet(r.Dst), Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN}
	switch {
	case r.Via.IsValid():
		nr.Gw = r.Via.AsSlice()
	case r.Dev != "":
		l, err := netlink.LinkByName(r.Dev)
		if err != nil {
			return nil, fmt.Errorf("TUN %s: %w", r.Dev, err)
		}
		nr.LinkIndex = l.Attrs().Index
		if r.Src.IsValid() {
			nr.Src = r.Src.AsSlice()
		}
	}
	return nr, nil
}

func (linuxKernel) ReplaceRoute(r Route) error {
	nr, err := netlinkRoute(r)
	if err != nil {
		return err
	}
	return netlink.RouteReplace(nr)
}

func (linuxKernel) DeleteRoute(r Route) error {
	nr := &netlink.Route{Dst: netipx.PrefixIPNet(r.Dst), Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN}
	if r.Via.IsValid() {
		nr.Gw = r.Via.AsSlice()
	}
	if err := netlink.RouteDel(nr); err != nil && !errors.Is(err, unix.ESRCH) {
		return err
	}
	return nil
}

func (linuxKernel) Sysctl(key string) (string, error) {
	b, err := os.ReadFile("/proc/sys/" + key)
	return string(b), err
}

func (linuxKernel) SetSysctl(key, value string) error {
	return os.WriteFile("/proc/sys/"+key, []byte(value), 0o644)
}

func (linuxKernel) IPTables(v6 bool) (IPTables, error) {
	proto := iptables.ProtocolIPv4
	if v6 {
		proto = iptables.ProtocolIPv6
	}
	// Timeout: every call waits at most 5 s for the xtables lock
	// (diagnose relies on it, ops.go).
	return iptables.New(iptables.IPFamily(proto), iptables.Timeout(5))
}
