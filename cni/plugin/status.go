package plugin

import (
	"github.com/containernetworking/cni/pkg/skel"
)

// cmdStatus reports whether the plugin can serve ADD: today that is
// whether IPAM can (code 50 when not).
func cmdStatus(args *skel.CmdArgs) error {
	conf, err := loadConf(args)
	if err != nil {
		return err
	}
	return delegate{conf: conf, stdin: args.StdinData}.status()
}
