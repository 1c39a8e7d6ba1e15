package plugin

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/plugins/pkg/utils/sysctl"
	"github.com/vishvananda/netlink"
)

// checkConf is the netconf of a CHECK: the node's with prevResult set to
// ADD's result.
func (n *node) checkConf(prev *current.Result) map[string]any {
	n.t.Helper()
	conf := n.netconf()
	if prev != nil {
		data, err := json.Marshal(prev)
		if err != nil {
			n.t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			n.t.Fatal(err)
		}
		conf["prevResult"] = m
	}
	return conf
}

func (n *node) check(p *pod, conf map[string]any) error {
	n.t.Helper()
	_, err := n.run(n.ns, "CHECK", cmdCheck, conf, p.attachmentArgs)
	return err
}

// TestCheckDetectsDrift proves CHECK passes on a fresh attachment and,
// after one part of it is broken, fails naming that part: the pod's
// address, its default route, the pod interface, the host veth (missing,
// off the bridge, down), the bridge, proxy ARP, and IPAM's lease.
func TestCheckDetectsDrift(t *testing.T) {
	tests := []struct {
		name  string
		brk   func(n *node, p *pod)
		parts []string
		// namesVeth: the error must name the pod's host veth, too.
		namesVeth bool
	}{
		{
			name: "address removed",
			brk: func(n *node, p *pod) {
				in(n.t, p.ns, func() error {
					l, err := netlink.LinkByName("eth0")
					if err != nil {
						return err
					}
					a, _ := netlink.ParseAddr("10.244.5.7/24")
					return netlink.AddrDel(l, a)
				})
			},
			parts: []string{"pod interface does not match prevResult", "10.244.5.7/24", "eth0"},
		},
		{
			name: "default route removed",
			brk: func(n *node, p *pod) {
				in(n.t, p.ns, func() error {
					l, err := netlink.LinkByName("eth0")
					if err != nil {
						return err
					}
					_, dst, _ := net.ParseCIDR("0.0.0.0/0")
					return netlink.RouteDel(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: dst, Gw: net.ParseIP("10.244.5.1")})
				})
			},
			parts: []string{"pod interface does not match prevResult", "Expected Route", "GW:10.244.5.1", "not found in routing table"},
		},
		{
			name: "pod interface renamed",
			brk: func(n *node, p *pod) {
				in(n.t, p.ns, func() error {
					l, err := netlink.LinkByName("eth0")
					if err != nil {
						return err
					}
					if err := netlink.LinkSetDown(l); err != nil {
						return err
					}
					return netlink.LinkSetName(l, "eth9")
				})
			},
			parts: []string{"pod interface does not match prevResult", "eth0"},
		},
		{
			name: "host veth renamed",
			brk: func(n *node, p *pod) {
				in(n.t, n.ns, func() error {
					l, err := netlink.LinkByName(p.hostVeth)
					if err != nil {
						return err
					}
					if err := netlink.LinkSetDown(l); err != nil {
						return err
					}
					if err := netlink.LinkSetName(l, "eltx"+randHex(4)); err != nil {
						return err
					}
					return netlink.LinkSetUp(l)
				})
			},
			parts:     []string{"host veth missing"},
			namesVeth: true,
		},
		{
			name: "host veth off the bridge",
			brk: func(n *node, p *pod) {
				in(n.t, n.ns, func() error {
					l, err := netlink.LinkByName(p.hostVeth)
					if err != nil {
						return err
					}
					return netlink.LinkSetNoMaster(l)
				})
			},
			parts:     []string{"host veth is not on the bridge"},
			namesVeth: true,
		},
		{
			name: "host veth down",
			brk: func(n *node, p *pod) {
				in(n.t, n.ns, func() error {
					l, err := netlink.LinkByName(p.hostVeth)
					if err != nil {
						return err
					}
					return netlink.LinkSetDown(l)
				})
			},
			parts:     []string{"host veth is down"},
			namesVeth: true,
		},
		{
			name: "bridge deleted",
			brk: func(n *node, _ *pod) {
				in(n.t, n.ns, func() error {
					l, err := netlink.LinkByName(n.bridge)
					if err != nil {
						return err
					}
					return netlink.LinkDel(l)
				})
			},
			parts: []string{"bridge missing"},
		},
		{
			name: "proxy ARP off",
			brk: func(n *node, _ *pod) {
				in(n.t, n.ns, func() error {
					_, err := sysctl.Sysctl(proxyARPKey(n.bridge), "0")
					return err
				})
			},
			parts: []string{"proxy ARP is off on the bridge", "proxy_arp"},
		},
		{
			name: "IPAM lost the lease",
			brk: func(n *node, p *pod) {
				if err := os.Remove(filepath.Join(n.ipamDir, "lease-"+p.cid+"_eth0")); err != nil {
					n.t.Fatal(err)
				}
			},
			parts: []string{"IPAM CHECK (fakeipam): no lease"},
		},
	}
	n := newNode(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n.t = t
			p := n.newPod()
			prev := n.mustAdd(p)
			if err := n.check(p, n.checkConf(prev)); err != nil {
				t.Fatalf("CHECK of a fresh attachment: %v", err)
			}
			tt.brk(n, p)
			err := n.check(p, n.checkConf(prev))
			wantErrText(t, err, tt.parts...)
			if tt.namesVeth {
				wantErrText(t, err, p.hostVeth)
			}
			// Next case: a fresh bridge.
			if err := n.del(p, n.netconf()); err != nil {
				t.Fatal(err)
			}
			if l := link(t, n.ns, n.bridge); l != nil {
				in(t, n.ns, func() error { return netlink.LinkDel(l) })
			}
		})
	}
}

// TestCheckNeedsPrevResult proves CHECK refuses a call without prevResult,
// a prevResult it cannot parse, and one with no address on this
// interface, with errors saying so.
func TestCheckNeedsPrevResult(t *testing.T) {
	n := newNode(t)
	p := n.newPod()
	prev := n.mustAdd(p)

	err := n.check(p, n.checkConf(nil))
	wantErrText(t, cniError(t, err, types.ErrInvalidNetworkConfig), "CHECK needs prevResult")

	bad := n.checkConf(prev)
	bad["prevResult"] = map[string]any{"ips": "not a list"}
	wantErrText(t, cniError(t, n.check(p, bad), types.ErrDecodingFailure), "cannot parse prevResult")

	eth1 := *p
	eth1.ifName = "eth1"
	if err := os.WriteFile(filepath.Join(n.ipamDir, "lease-"+p.cid+"_eth1"), nil, 0o600); err != nil {
		t.Fatal(err) // IPAM's CHECK passes; the plugin's own must fail
	}
	err = n.check(&eth1, n.checkConf(prev))
	wantErrText(t, cniError(t, err, types.ErrInvalidNetworkConfig), "prevResult has no address for this interface", `"eth1"`)
}
