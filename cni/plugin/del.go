package plugin

import (
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/plugins/pkg/ip"
	"github.com/containernetworking/plugins/pkg/ns"
)

// cmdDel releases the attachment. Anything already gone (netns, link,
// lease, record) counts as released; only a failure to release something
// that still exists is an error, so the runtime retries.
func cmdDel(args *skel.CmdArgs) error {
	conf, err := loadConf(args)
	if err != nil {
		return err
	}
	dir := stateDir(conf.DataDir, conf.Name)

	// IPAM first: if it cannot release now, keep everything so a retried
	// DEL can finish the job.
	if err := (delegate{conf: conf, stdin: args.StdinData}).del(); err != nil {
		return err
	}
	if err := removeLinks(args.Netns, args.IfName, hostVethName(args.ContainerID, args.IfName)); err != nil {
		return internalErr("cannot delete pod interface", err)
	}
	if err := removeRecord(dir, args.ContainerID, args.IfName); err != nil {
		return internalErr("cannot remove attachment record", err)
	}
	return nil
}

// removeLinks deletes the pod's interface (inside netnsPath, when it still
// exists) and the host end of the veth pair.
func removeLinks(netnsPath, ifName, hostVeth string) error {
	if netnsPath != "" {
		err := ns.WithNetNSPath(netnsPath, func(ns.NetNS) error {
			if err := ip.DelLinkByName(ifName); err != nil && !errors.Is(err, ip.ErrLinkNotFound) {
				return err
			}
			return nil
		})
		var gone ns.NSPathNotExistErr
		var notNS ns.NSPathNotNSErr
		if err != nil && !errors.As(err, &gone) && !errors.As(err, &notNS) {
			return fmt.Errorf("netns %s: %w", netnsPath, err)
		}
	}
	if err := ip.DelLinkByName(hostVeth); err != nil && !errors.Is(err, ip.ErrLinkNotFound) {
		return fmt.Errorf("host veth %s: %w", hostVeth, err)
	}
	return nil
}
