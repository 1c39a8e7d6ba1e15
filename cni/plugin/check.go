package plugin

import (
	"fmt"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
	"github.com/containernetworking/plugins/pkg/ip"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/vishvananda/netlink"
)

// cmdCheck verifies the attachment against prevResult: the pod interface
// exists with the recorded addresses and routes, and its host end is on
// the bridge. IPAM is asked to check its lease too.
func cmdCheck(args *skel.CmdArgs) error {
	conf, err := loadConf(args)
	if err != nil {
		return err
	}
	if conf.RawPrevResult == nil {
		return types.NewError(types.ErrInvalidNetworkConfig, "CHECK needs prevResult",
			"the runtime passed no prevResult; CHECK compares the attachment with it")
	}
	if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
		return types.NewError(types.ErrDecodingFailure, "cannot parse prevResult", err.Error())
	}
	prev, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "cannot convert prevResult", err.Error())
	}

	if err := (delegate{conf: conf, stdin: args.StdinData}).run("CHECK", nil); err != nil {
		return err
	}

	var contIPs []*current.IPConfig
	for _, ipc := range prev.IPs {
		if ipc.Interface != nil && *ipc.Interface < len(prev.Interfaces) && prev.Interfaces[*ipc.Interface].Name == args.IfName {
			contIPs = append(contIPs, ipc)
		}
	}
	if len(contIPs) == 0 {
		return types.NewError(types.ErrInvalidNetworkConfig, "prevResult has no address for this interface",
			fmt.Sprintf("no IP in prevResult belongs to interface %q", args.IfName))
	}

	netns, err := ns.GetNS(args.Netns)
	if err != nil {
		return types.NewError(types.ErrInvalidNetNS, "cannot open netns", fmt.Sprintf("CNI_NETNS %q: %v", args.Netns, err))
	}
	defer netns.Close()
	err = netns.Do(func(ns.NetNS) error {
		if err := ip.ValidateExpectedInterfaceIPs(args.IfName, contIPs); err != nil {
			return err
		}
		return ip.ValidateExpectedRoute(prev.Routes)
	})
	if err != nil {
		return types.NewError(types.ErrInternal, "pod interface does not match prevResult", err.Error())
	}

	hostVeth := hostVethName(args.ContainerID, args.IfName)
	hostLink, err := netlink.LinkByName(hostVeth)
	if err != nil {
		return types.NewError(types.ErrInternal, "host veth missing", fmt.Sprintf("%s: %v", hostVeth, err))
	}
	br, err := bridgeByName(conf.Bridge)
	if err != nil {
		return types.NewError(types.ErrInternal, "bridge missing", err.Error())
	}
	if hostLink.Attrs().MasterIndex != br.Index {
		return types.NewError(types.ErrInternal, "host veth is not on the bridge",
			fmt.Sprintf("%s is not attached to %s", hostVeth, br.Name))
	}
	if hostLink.Attrs().OperState == netlink.OperDown {
		return types.NewError(types.ErrInternal, "host veth is down", hostVeth)
	}
	for _, ipc := range contIPs {
		if ipc.Address.IP.To4() == nil {
			continue
		}
		if v, err := sysctl.Sysctl(proxyARPKey(br.Name)); err != nil || v != "1" {
			return types.NewError(types.ErrInternal, "proxy ARP is off on the bridge",
				fmt.Sprintf("%s is %q (%v): pods cannot reach addresses of their subnet on other nodes; set it to 1", proxyARPKey(br.Name), v, err))
		}
		break
	}
	return nil
}
