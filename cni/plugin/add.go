package plugin

import (
	"fmt"
	"net"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/ip"
	"github.com/containernetworking/plugins/pkg/ipam"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/vishvananda/netlink"
)

// undoStack collects rollback steps; run executes them newest first.
type undoStack []func()

func (u *undoStack) push(f func()) { *u = append(*u, f) }

func (u undoStack) run() {
	for i := len(u) - 1; i >= 0; i-- {
		u[i]()
	}
}

func cmdAdd(args *skel.CmdArgs) (err error) {
	conf, err := loadConf(args)
	if err != nil {
		return err
	}
	var undo undoStack
	defer func() {
		if err != nil {
			undo.run()
		}
	}()

	dir := stateDir(conf.DataDir, conf.Name)
	rec := &attachment{
		ContainerID: args.ContainerID,
		IfName:      args.IfName,
		NetNS:       args.Netns,
		HostVeth:    hostVethName(args.ContainerID, args.IfName),
		CNIArgs:     args.Args,
	}
	if _, statErr := readRecord(dir, rec.ContainerID, rec.IfName); statErr == nil {
		return types.NewError(types.ErrInternal, "attachment already exists",
			fmt.Sprintf("container %q interface %q was already added to network %q; DEL it first", rec.ContainerID, rec.IfName, conf.Name))
	}
	if err := writeRecord(dir, rec); err != nil {
		return internalErr("cannot record attachment", err)
	}
	undo.push(func() { _ = removeRecord(dir, rec.ContainerID, rec.IfName) })

	netns, err := ns.GetNS(args.Netns)
	if err != nil {
		return types.NewError(types.ErrInvalidNetNS, "cannot open netns", fmt.Sprintf("CNI_NETNS %q: %v", args.Netns, err))
	}
	defer netns.Close()

	br, err := ensureBridge(conf.Bridge, conf.MTU)
	if err != nil {
		return internalErr("cannot set up bridge", err)
	}

	hostNS, err := ns.GetCurrentNS()
	if err != nil {
		return internalErr("cannot open host netns", err)
	}
	defer hostNS.Close()

	var hostIface, contIface net.Interface
	err = netns.Do(func(ns.NetNS) error {
		var err error
		hostIface, contIface, err = ip.SetupVethWithName(args.IfName, rec.HostVeth, conf.MTU, "", hostNS)
		return err
	})
	if err != nil {
		return internalErr("cannot create veth pair", fmt.Errorf("interface %q in %s: %w", args.IfName, args.Netns, err))
	}
	undo.push(func() { _ = ip.DelLinkByName(rec.HostVeth) }) // takes the pod end with it

	hostLink, err := netlink.LinkByName(hostIface.Name)
	if err != nil {
		return internalErr("cannot find host veth", err)
	}
	if err := netlink.LinkSetMaster(hostLink, br); err != nil {
		return internalErr("cannot attach veth to bridge", fmt.Errorf("%s to %s: %w", hostIface.Name, br.Name, err))
	}
	if conf.HairpinMode {
		if err := netlink.LinkSetHairpin(hostLink, true); err != nil {
			return internalErr("cannot enable hairpin mode", err)
		}
	}

	ipamDelegate := delegate{conf: conf, stdin: args.StdinData}
	res, err := ipamDelegate.add()
	if err != nil {
		return err
	}
	undo.push(func() { _ = ipamDelegate.del() })

	if err := completeGateways(res); err != nil {
		return err
	}
	res.CNIVersion = current.ImplementedSpecVersion
	res.Interfaces = []*current.Interface{
		{Name: br.Name, Mac: br.HardwareAddr.String()},
		{Name: hostIface.Name, Mac: hostIface.HardwareAddr.String()},
		{Name: contIface.Name, Mac: contIface.HardwareAddr.String(), Sandbox: args.Netns},
	}
	for _, ipc := range res.IPs {
		ipc.Interface = current.Int(2)
	}
	addDefaultRoutes(res)
	if res.DNS.IsEmpty() {
		res.DNS = conf.DNS
	}

	if err := netns.Do(func(ns.NetNS) error {
		disableDAD(args.IfName, res.IPs)
		return ipam.ConfigureIface(args.IfName, res)
	}); err != nil {
		return internalErr("cannot configure pod interface", err)
	}
	if err := addGatewayAddrs(br, res.IPs); err != nil {
		return internalErr("cannot add gateway address", err)
	}
	if err := enableForwarding(res.IPs); err != nil {
		return internalErr("cannot enable IP forwarding", err)
	}
	if err := enableProxyARP(br.Name, res.IPs); err != nil {
		return internalErr("cannot enable proxy ARP on the bridge", err)
	}
	return types.PrintResult(res, conf.CNIVersion)
}

// completeGateways gives every IP a gateway: the IPAM's, or else the first
// address of its subnet (the reference bridge plugin's convention).
func completeGateways(res *current.Result) error {
	for _, ipc := range res.IPs {
		if ipc.Gateway != nil {
			continue
		}
		subnet := &net.IPNet{IP: ipc.Address.IP.Mask(ipc.Address.Mask), Mask: ipc.Address.Mask}
		gw := ip.NextIP(subnet.IP)
		if gw.Equal(ipc.Address.IP) {
			return types.NewError(types.ErrInvalidNetworkConfig, "pod address is its own gateway",
				fmt.Sprintf("IPAM gave %s, which is the default gateway of %s; exclude it from the pool or set a gateway", ipc.Address.String(), subnet))
		}
		ipc.Gateway = gw
	}
	return nil
}

// addDefaultRoutes adds a default route via the gateway for each IP family
// the IPAM result has no default route for.
func addDefaultRoutes(res *current.Result) {
	hasDefault := map[bool]bool{}
	for _, r := range res.Routes {
		if ones, _ := r.Dst.Mask.Size(); ones == 0 {
			hasDefault[r.Dst.IP.To4() != nil] = true
		}
	}
	for _, ipc := range res.IPs {
		v4 := ipc.Address.IP.To4() != nil
		if hasDefault[v4] {
			continue
		}
		dst := net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}
		if !v4 {
			dst = net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
		}
		res.Routes = append(res.Routes, &types.Route{Dst: dst, GW: ipc.Gateway})
		hasDefault[v4] = true
	}
}

// disableDAD turns off IPv6 duplicate address detection on the pod
// interface: IPAM guarantees the address is unique, and DAD would hold
// every ADD for about two seconds while the address is tentative.
func disableDAD(ifName string, ips []*current.IPConfig) {
	for _, ipc := range ips {
		if ipc.Address.IP.To4() == nil {
			_, _ = sysctl.Sysctl(fmt.Sprintf("net/ipv6/conf/%s/accept_dad", ifName), "0")
			return
		}
	}
}

// proxyARPKey is the sysctl that makes the bridge answer ARP for
// addresses routed through another device.
func proxyARPKey(bridge string) string { return fmt.Sprintf("net/ipv4/conf/%s/proxy_arp", bridge) }

// enableProxyARP makes the bridge answer ARP for every IPv4 address the
// node routes elsewhere (the TUN, a same-LAN node). A pod whose address
// carries the cluster subnet's prefix (10.244.5.7/16, SpiderPool's usual
// layout) takes pods of other nodes for neighbours and ARPs for them; the
// node answers with the bridge's MAC and routes the packet on. Pods of
// this node, on the bridge itself, still answer for themselves.
func enableProxyARP(bridge string, ips []*current.IPConfig) error {
	for _, ipc := range ips {
		if ipc.Address.IP.To4() == nil {
			continue
		}
		key := proxyARPKey(bridge)
		if v, err := sysctl.Sysctl(key); err == nil && v == "1" {
			return nil
		}
		if _, err := sysctl.Sysctl(key, "1"); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
		return nil
	}
	return nil
}

// enableForwarding turns on forwarding for the families in use: the bridge
// is the pods' gateway and must route their traffic off the node.
func enableForwarding(ips []*current.IPConfig) error {
	for _, ipc := range ips {
		key := "net/ipv4/ip_forward"
		if ipc.Address.IP.To4() == nil {
			key = "net/ipv6/conf/all/forwarding"
		}
		if v, err := sysctl.Sysctl(key); err == nil && v == "1" {
			continue
		}
		if _, err := sysctl.Sysctl(key, "1"); err != nil {
			return fmt.Errorf("%s: %w", key, err)
		}
	}
	return nil
}
