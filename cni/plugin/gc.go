package plugin

import (
	"errors"
	"fmt"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
)

// cmdGC releases every recorded attachment of this network that the runtime
// does not list in cni.dev/valid-attachments: its host veth (and with it the
// pod end) and its IPAM lease. Failures are collected, the rest proceeds,
// and a failed attachment's record stays for the next GC.
func cmdGC(args *skel.CmdArgs) error {
	conf, err := loadConf(args)
	if err != nil {
		return err
	}
	valid := make(map[types.GCAttachment]bool, len(conf.ValidAttachments))
	for _, a := range conf.ValidAttachments {
		valid[a] = true
	}
	dir := stateDir(conf.DataDir, conf.Name)
	recs, listErr := listRecords(dir)
	errs := []error{listErr}
	d := delegate{conf: conf, stdin: args.StdinData}
	for _, rec := range recs {
		if valid[types.GCAttachment{ContainerID: rec.ContainerID, IfName: rec.IfName}] {
			continue
		}
		if err := d.delAttachment(rec); err != nil {
			errs = append(errs, fmt.Errorf("release %s/%s: %w", rec.ContainerID, rec.IfName, err))
			continue
		}
		if err := removeLinks(rec.NetNS, rec.IfName, rec.HostVeth); err != nil {
			errs = append(errs, fmt.Errorf("remove links of %s/%s: %w", rec.ContainerID, rec.IfName, err))
			continue
		}
		if err := removeRecord(dir, rec.ContainerID, rec.IfName); err != nil {
			errs = append(errs, err)
		}
	}
	if err := d.gc(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return internalErr("GC incomplete", err)
	}
	return nil
}
