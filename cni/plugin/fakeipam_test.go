package plugin

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/edgelink/edgelink/cni/netconf"
)

// fakeIPAMType is the ipam.type under which the tests install the fake
// IPAM plugin in CNI_PATH. The plugin is this test binary itself: when it
// runs under that name (or as "spiderpool"), TestMain plays the IPAM
// delegate instead of running the tests, so ADD/DEL/CHECK/GC/STATUS go
// through the real exec-and-parse path of invoke.
const fakeIPAMType = "fakeipam"

func TestMain(m *testing.M) {
	switch filepath.Base(os.Args[0]) {
	case fakeIPAMType, netconf.SpiderpoolType:
		fakeIPAMMain()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// fakeIPAMConf is the ipam section the fake reads. Every call is appended
// to <dir>/calls, and ADD leaves a lease file <dir>/lease-<id>_<if> that
// DEL removes and CHECK requires.
type fakeIPAMConf struct {
	CNIVersion string `json:"cniVersion"`
	IPAM       struct {
		Dir string `json:"dir"`
		IPs []struct {
			Address string `json:"address"`
			Gateway string `json:"gateway,omitempty"`
		} `json:"ips"`
		Routes []*types.Route `json:"routes,omitempty"`
		DNS    types.DNS      `json:"dns,omitempty"`
		// Fail makes a verb ("DEL"), or a verb for one container
		// ("DEL <containerID>"), answer this CNI error.
		Fail map[string]*types.Error `json:"fail,omitempty"`
		// Malformed makes a verb print garbage and exit 0.
		Malformed map[string]bool `json:"malformed,omitempty"`
	} `json:"ipam"`
	Valid []types.GCAttachment `json:"cni.dev/valid-attachments,omitempty"`
}

func fakeIPAMMain() {
	verb := func(name string) func(*skel.CmdArgs) error {
		return func(args *skel.CmdArgs) error { return fakeIPAM(name, args) }
	}
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add: verb("ADD"), Del: verb("DEL"), Check: verb("CHECK"), GC: verb("GC"), Status: verb("STATUS"),
	}, version.All, "fake IPAM for cni/plugin tests")
}

func fakeIPAM(verb string, args *skel.CmdArgs) error {
	var c fakeIPAMConf
	if err := json.Unmarshal(args.StdinData, &c); err != nil {
		return types.NewError(types.ErrDecodingFailure, "fake IPAM: bad conf", err.Error())
	}
	line := fmt.Sprintf("%s %s %s %s args=%q version=%s", filepath.Base(os.Args[0]), verb, args.ContainerID, args.IfName, args.Args, c.CNIVersion)
	if verb == "GC" {
		line += fmt.Sprintf(" valid=%v", c.Valid)
	}
	f, err := os.OpenFile(filepath.Join(c.IPAM.Dir, "calls"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintln(f, line)
	f.Close()

	if e := c.IPAM.Fail[verb+" "+args.ContainerID]; e != nil {
		return e
	}
	if e := c.IPAM.Fail[verb]; e != nil {
		return e
	}
	if c.IPAM.Malformed[verb] {
		fmt.Print("this is not a CNI result")
		return nil
	}
	lease := filepath.Join(c.IPAM.Dir, "lease-"+args.ContainerID+"_"+args.IfName)
	switch verb {
	case "ADD":
		res := &current.Result{CNIVersion: current.ImplementedSpecVersion, Routes: c.IPAM.Routes, DNS: c.IPAM.DNS}
		for _, ip := range c.IPAM.IPs {
			addr, n, err := net.ParseCIDR(ip.Address)
			if err != nil {
				return err
			}
			n.IP = addr
			res.IPs = append(res.IPs, &current.IPConfig{Address: *n, Gateway: net.ParseIP(ip.Gateway)})
		}
		data, err := json.Marshal(c.IPAM.IPs)
		if err != nil {
			return err
		}
		if err := os.WriteFile(lease, data, 0o600); err != nil {
			return err
		}
		return types.PrintResult(res, c.CNIVersion)
	case "DEL":
		if err := os.Remove(lease); err != nil && !os.IsNotExist(err) {
			return err
		}
	case "CHECK":
		if _, err := os.Stat(lease); err != nil {
			return types.NewError(types.ErrInternal, "no lease", fmt.Sprintf("%s/%s holds no address", args.ContainerID, args.IfName))
		}
	}
	return nil
}
