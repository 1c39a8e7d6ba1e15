package plugin

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ip"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ensureBridge returns the node bridge, creating it (up, with mtu when
// non-zero) if it does not exist. Concurrent ADDs may race to create it;
// the loser finds the winner's bridge.
func ensureBridge(name string, mtu int) (*netlink.Bridge, error) {
	if br, err := bridgeByName(name); err == nil {
		if err := pinBridgeMAC(br); err != nil { // bridges of older versions, too
			return nil, err
		}
		return br, netlink.LinkSetUp(br)
	} else if !isNotFound(err) {
		return nil, err
	}
	la := netlink.NewLinkAttrs()
	la.Name = name
	la.MTU = mtu
	br := &netlink.Bridge{LinkAttrs: la}
	if err := netlink.LinkAdd(br); err != nil && !errors.Is(err, os.ErrExist) && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("create bridge %q: %w", name, err)
	}
	got, err := bridgeByName(name)
	if err != nil {
		return nil, err
	}
	// The bridge owns gateway addresses; it must not autoconfigure its own.
	_, _ = sysctl.Sysctl(fmt.Sprintf("net/ipv6/conf/%s/accept_ra", name), "0")
	if err := pinBridgeMAC(got); err != nil {
		return nil, err
	}
	if err := netlink.LinkSetUp(got); err != nil {
		return nil, fmt.Errorf("set bridge %q up: %w", name, err)
	}
	return got, nil
}

// pinBridgeMAC sets the bridge's MAC address explicitly. A bridge whose
// address was never set takes the lowest MAC among its ports, so it would
// change as pods come and go, and every pod's ARP entry for its gateway
// would go stale: traffic stalls for seconds until the pod re-resolves.
// A freshly made bridge has a random address; it is kept.
func pinBridgeMAC(br *netlink.Bridge) error {
	mac := br.HardwareAddr
	if len(mac) != 6 || bytes.Equal(mac, make([]byte, 6)) {
		mac = make(net.HardwareAddr, 6)
		if _, err := rand.Read(mac); err != nil {
			return err
		}
		mac[0] = mac[0]&0xfe | 0x02 // unicast, locally administered
	}
	if err := netlink.LinkSetHardwareAddr(br, mac); err != nil {
		return fmt.Errorf("pin the MAC of bridge %q: %w", br.Name, err)
	}
	return nil
}

func bridgeByName(name string) (*netlink.Bridge, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		if isNotFound(err) {
			return nil, err
		}
		return nil, fmt.Errorf("look up bridge %q: %w", name, err)
	}
	br, ok := l.(*netlink.Bridge)
	if !ok {
		return nil, fmt.Errorf("%q exists but is a %s, not a bridge; set \"bridge\" in the netconf to another name", name, l.Type())
	}
	return br, nil
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, ip.ErrLinkNotFound)
}

// addGatewayAddrs puts each IP's gateway on the bridge, with the pod
// subnet's prefix length, unless it is there already. IPv6 gateways skip
// duplicate address detection so pods can use them at once.
func addGatewayAddrs(br *netlink.Bridge, ips []*current.IPConfig) error {
	for _, ipc := range ips {
		if ipc.Gateway == nil {
			continue
		}
		gw := &net.IPNet{IP: ipc.Gateway, Mask: ipc.Address.Mask}
		addr := &netlink.Addr{IPNet: gw}
		if ipc.Gateway.To4() == nil {
			_, _ = sysctl.Sysctl(fmt.Sprintf("net/ipv6/conf/%s/disable_ipv6", br.Name), "0")
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := netlink.AddrAdd(br, addr); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add gateway %s to bridge %q: %w", gw, br.Name, err)
		}
	}
	return nil
}

// hostVethName derives the host end's name from the attachment, so DEL can
// find it after the pod's netns is gone: "el" + 11 hex digits of
// sha256(containerID "/" ifName).
func hostVethName(containerID, ifName string) string {
	return "el" + shortHash(containerID+"/"+ifName, 11)
}
