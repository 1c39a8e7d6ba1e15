// Command keadmconfig prints the edgecore.yaml `keadm join` (KubeEdge
// v1.20.0) writes, for pkg/nodeinstall's testdata. keadm join itself cannot
// run in the tests: before it writes the file it pulls the
// kubeedge/installation-package image through the node's CRI runtime and
// copies edgecore out of it, and afterwards it creates and starts a systemd
// service. This is keadm's createEdgeConfigFiles
// (keadm/cmd/keadm/app/cmd/edge/join_others.go) with its flag handling for
//
//	keadm join --cloudcore-ipport=CLOUDCORE:10000 --edgenode-name=NODE \
//	    --set modules.metaManager.metaServer.enable=true
//
// and, with -feature-gates, the featureGates an operator then adds to the
// file (keadm's --set panics on featureGates.requireAuthorization=true:
// its parser walks into the map as if it were a struct).
//
// on the defaults (websocket hub, cgroupfs, the default runtime endpoint,
// no token in the file), through keadm's own --set parser and validation.
//
//	go run ./keadmconfig -cloudcore 198.18.0.1:10000 -node edge-1 -set modules.metaManager.metaServer.enable=true
package main

import (
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/kubeedge/api/apis/common/constants"
	"github.com/kubeedge/api/apis/componentconfig/edgecore/v1alpha2"
	"github.com/kubeedge/api/apis/componentconfig/edgecore/v1alpha2/validation"
	"github.com/kubeedge/kubeedge/keadm/cmd/keadm/app/cmd/util"
	pkgutil "github.com/kubeedge/kubeedge/pkg/util"
)

func main() {
	cloudcore := flag.String("cloudcore", "", "--cloudcore-ipport")
	node := flag.String("node", "", "--edgenode-name")
	set := flag.String("set", "", "--set")
	gates := flag.String("feature-gates", "", "NAME=true,...: featureGates entries added after keadm wrote the file (keadm's --set panics on the featureGates map, so operators edit the file)")
	flag.Parse()
	if err := run(*cloudcore, *node, *set, *gates); err != nil {
		fmt.Fprintln(os.Stderr, "keadmconfig:", err)
		os.Exit(1)
	}
}

func run(cloudcore, node, set, gates string) error {
	c := v1alpha2.NewDefaultEdgeCoreConfig()
	if node != "" {
		c.Modules.Edged.HostnameOverride = node
	}
	c.Modules.Edged.TailoredKubeletConfig.CgroupDriver = v1alpha2.CGroupDriverCGroupFS
	c.Modules.Edged.TailoredKubeletConfig.ContainerRuntimeEndpoint = constants.DefaultRemoteRuntimeEndpoint
	c.Modules.Edged.TailoredKubeletConfig.ImageServiceEndpoint = constants.DefaultRemoteRuntimeEndpoint
	host, _, err := net.SplitHostPort(cloudcore)
	if err != nil {
		return fmt.Errorf("-cloudcore: %v", err)
	}
	c.Modules.EdgeHub.HTTPServer = "https://" + net.JoinHostPort(host, "10002")
	c.Modules.EdgeHub.Quic.Enable = false
	c.Modules.EdgeHub.WebSocket.Enable = true
	c.Modules.EdgeHub.Quic.Server = net.JoinHostPort(host, strconv.Itoa(constants.DefaultQuicPort))
	c.Modules.EdgeHub.WebSocket.Server = cloudcore
	c.Modules.EdgeStream.TunnelServer = net.JoinHostPort(host, strconv.Itoa(constants.DefaultTunnelPort))
	if set != "" {
		for _, s := range strings.Split(set, ",") {
			if err := util.ParseSet(c, s); err != nil {
				return fmt.Errorf("--set %s: %v", s, err)
			}
		}
	}
	for _, g := range strings.Split(gates, ",") {
		if g == "" {
			continue
		}
		name, val, _ := strings.Cut(g, "=")
		on, err := strconv.ParseBool(val)
		if err != nil {
			return fmt.Errorf("-feature-gates %s: %v", g, err)
		}
		if c.FeatureGates == nil {
			c.FeatureGates = map[string]bool{}
		}
		c.FeatureGates[name] = on
	}
	if errs := validation.ValidateEdgeCoreConfiguration(c); len(errs) > 0 {
		return errors.New(pkgutil.SpliceErrors(errs.ToAggregate().Errors()))
	}
	b, err := yaml.Marshal(c) // common.Write2File
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(b)
	return err
}
