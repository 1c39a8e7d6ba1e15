package plugin

import (
	"errors"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/edgelink/edgelink/cni/netconf"
)

// VersionInfo is what the plugin reports for the VERSION command: the CNI
// spec versions edgelink-cni speaks.
func VersionInfo() version.PluginInfo {
	return version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
}

// Funcs returns the command table for skel.PluginMainFuncs.
func Funcs() skel.CNIFuncs {
	return skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck, Status: cmdStatus, GC: cmdGC}
}

// loadConf parses stdin and the per-call arguments, mapping problems to CNI
// error codes.
func loadConf(args *skel.CmdArgs) (*netconf.NetConf, error) {
	conf, err := netconf.Parse(args.StdinData)
	switch {
	case errors.Is(err, netconf.ErrDecode):
		return nil, types.NewError(types.ErrDecodingFailure, "cannot decode network configuration", err.Error())
	case err != nil:
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "invalid network configuration", err.Error())
	}
	return conf, nil
}

// internalErr wraps an unexpected failure as a CNI error with code 999.
func internalErr(msg string, err error) error {
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		return cniErr
	}
	return types.NewError(types.ErrInternal, msg, err.Error())
}
