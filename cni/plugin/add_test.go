package plugin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/vishvananda/netlink"
)

// TestAddWiresPodToBridge proves a successful ADD builds the whole
// attachment: a veth pair named eth0 in the pod and el<hash> on the node,
// both with the netconf's MTU; the host end up on a newly made bridge that
// carries the gateways; the pod's addresses and default routes (IPv6 via
// the subnet's first address, as IPAM gave no gateway); proxy ARP and
// forwarding on; an attachment record; and a result naming all of it. The
// pod then reaches its gateway over TCP.
func TestAddWiresPodToBridge(t *testing.T) {
	n := newNode(t)
	p := n.newPod()
	res := n.mustAdd(p)

	// Result.
	if len(res.Interfaces) != 3 || res.Interfaces[0].Name != n.bridge || res.Interfaces[1].Name != p.hostVeth ||
		res.Interfaces[2].Name != "eth0" || res.Interfaces[2].Sandbox != p.netns {
		t.Errorf("result interfaces = %v, want [%s %s eth0@%s]", res.Interfaces, n.bridge, p.hostVeth, p.netns)
	}
	var gotIPs []string
	for _, ipc := range res.IPs {
		if ipc.Interface == nil || *ipc.Interface != 2 {
			t.Errorf("result IP %s not tied to the pod interface (index 2): %v", ipc.Address.String(), ipc.Interface)
		}
		gotIPs = append(gotIPs, ipc.Address.String()+" gw "+ipc.Gateway.String())
	}
	if want := []string{"10.244.5.7/24 gw 10.244.5.1", "fd00:244::7/64 gw fd00:244::1"}; !slices.Equal(gotIPs, want) {
		t.Errorf("result IPs = %q, want %q", gotIPs, want)
	}
	if got := routesText(res.Routes); got != "0.0.0.0/0 via 10.244.5.1\n::/0 via fd00:244::1\n" {
		t.Errorf("result routes:\n%s", got)
	}
	if !slices.Equal(res.DNS.Nameservers, []string{"10.96.0.10"}) {
		t.Errorf("result DNS = %+v, want the netconf's nameserver 10.96.0.10 (IPAM gave none)", res.DNS)
	}

	// Node side.
	brLink := link(t, n.ns, n.bridge)
	br, ok := brLink.(*netlink.Bridge)
	if !ok {
		t.Fatalf("bridge %s = %v, want a bridge", n.bridge, brLink)
	}
	if br.Attrs().MTU != 1400 || br.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("bridge mtu %d flags %v, want mtu 1400 and up", br.Attrs().MTU, br.Attrs().Flags)
	}
	if got := addrs(t, n.ns, n.bridge); !slices.Contains(got, "10.244.5.1/24") || !slices.Contains(got, "fd00:244::1/64") {
		t.Errorf("bridge addresses = %v, want the gateways 10.244.5.1/24 and fd00:244::1/64", got)
	}
	host := link(t, n.ns, p.hostVeth)
	if host == nil {
		t.Fatalf("host veth %s missing; node links %v", p.hostVeth, linkNames(t, n.ns))
	}
	if host.Type() != "veth" || host.Attrs().MasterIndex != br.Index || host.Attrs().MTU != 1400 || host.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("host veth %s: type %s master %d mtu %d flags %v; want an up veth with mtu 1400 on bridge index %d",
			p.hostVeth, host.Type(), host.Attrs().MasterIndex, host.Attrs().MTU, host.Attrs().Flags, br.Index)
	}
	for key, want := range map[string]string{
		"net/ipv4/conf/" + n.bridge + "/proxy_arp": "1",
		"net/ipv4/ip_forward":                      "1",
		"net/ipv6/conf/all/forwarding":             "1",
	} {
		if got := sysctlIn(t, n.ns, key); got != want {
			t.Errorf("node sysctl %s = %q, want %q", key, got, want)
		}
	}

	// Pod side.
	cont := link(t, p.ns, "eth0")
	if cont == nil {
		t.Fatalf("pod has no eth0; pod links %v", linkNames(t, p.ns))
	}
	if cont.Type() != "veth" || cont.Attrs().MTU != 1400 || cont.Attrs().Flags&net.FlagUp == 0 || cont.Attrs().ParentIndex != host.Attrs().Index {
		t.Errorf("pod eth0: type %s mtu %d flags %v peer %d; want an up veth, mtu 1400, peer of %s (index %d)",
			cont.Type(), cont.Attrs().MTU, cont.Attrs().Flags, cont.Attrs().ParentIndex, p.hostVeth, host.Attrs().Index)
	}
	if got := addrs(t, p.ns, "eth0"); !slices.Equal(got, []string{"10.244.5.7/24", "fd00:244::7/64"}) {
		t.Errorf("pod eth0 addresses = %v, want [10.244.5.7/24 fd00:244::7/64]", got)
	}
	if got := defaultGWs(t, p.ns); !slices.Contains(got, "10.244.5.1") || !slices.Contains(got, "fd00:244::1") {
		t.Errorf("pod default routes via %v, want via 10.244.5.1 and fd00:244::1", got)
	}

	// Bookkeeping.
	rec, err := readRecord(stateDir(n.dataDir, "eltest"), p.cid, "eth0")
	if err != nil {
		t.Fatalf("attachment record: %v", err)
	}
	if rec.NetNS != p.netns || rec.HostVeth != p.hostVeth || rec.CNIArgs != p.cniArgs {
		t.Errorf("record %+v, want netns %s, host veth %s, CNI_ARGS %q", rec, p.netns, p.hostVeth, p.cniArgs)
	}
	if adds := n.callsOf("ADD"); len(adds) != 1 || !strings.Contains(adds[0], p.cid+" eth0") {
		t.Errorf("IPAM ADD calls = %q, want one for %s eth0", adds, p.cid)
	}

	// The pod reaches its gateway through the veth and the bridge.
	for _, gw := range []string{"10.244.5.1", "[fd00:244::1]"} {
		var ln net.Listener
		in(t, n.ns, func() error {
			var err error
			ln, err = net.Listen("tcp", gw+":0")
			return err
		})
		go func() {
			if c, err := ln.Accept(); err == nil {
				_, _ = c.Write([]byte("hi"))
				c.Close()
			}
		}()
		in(t, p.ns, func() error {
			c, err := net.DialTimeout("tcp", ln.Addr().String(), 3*time.Second)
			if err != nil {
				return fmt.Errorf("pod cannot reach its gateway: %w", err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(3 * time.Second))
			buf := make([]byte, 2)
			_, err = c.Read(buf)
			return err
		})
		ln.Close()
	}
}

// TestAddResultVersionAndHairpin proves ADD prints its result in the
// netconf's cniVersion (0.3.1 here, whose IPs carry a version field), keeps
// the IPAM's DNS over the netconf's, and that hairpinMode turns on hairpin
// on the host veth (off by default).
func TestAddResultVersionAndHairpin(t *testing.T) {
	n := newNode(t)

	conf := n.netconf()
	conf["cniVersion"] = "0.3.1"
	conf["hairpinMode"] = true
	ipamOf(conf)["dns"] = map[string]any{"nameservers": []string{"10.0.0.53"}}
	p := n.newPod()
	out, err := n.run(n.ns, "ADD", cmdAdd, conf, p.attachmentArgs)
	if err != nil {
		t.Fatal(err)
	}
	var printed struct {
		CNIVersion string `json:"cniVersion"`
		IPs        []struct {
			Version string `json:"version"`
		} `json:"ips"`
	}
	if err := json.Unmarshal([]byte(out), &printed); err != nil {
		t.Fatalf("ADD printed %q: %v", out, err)
	}
	if printed.CNIVersion != "0.3.1" || len(printed.IPs) != 2 || printed.IPs[0].Version != "4" || printed.IPs[1].Version != "6" {
		t.Errorf("ADD printed %s\nwant a 0.3.1 result (cniVersion 0.3.1, IPs with version 4 and 6)", out)
	}
	if !strings.Contains(out, "10.0.0.53") || strings.Contains(out, "10.96.0.10") {
		t.Errorf("ADD printed %s\nwant the IPAM's nameserver 10.0.0.53, not the netconf's", out)
	}

	plain := n.newPod()
	n.mustAdd(plain)
	for _, c := range []struct {
		p    *pod
		want bool
	}{{p, true}, {plain, false}} {
		var pi netlink.Protinfo
		in(t, n.ns, func() error {
			l, err := netlink.LinkByName(c.p.hostVeth)
			if err != nil {
				return err
			}
			pi, err = netlink.LinkGetProtinfo(l)
			return err
		})
		if pi.Hairpin != c.want {
			t.Errorf("host veth %s hairpin = %v, want %v", c.p.hostVeth, pi.Hairpin, c.want)
		}
	}
}

// TestAddKeepsBridgeMAC proves ADD pins the MAC of a bridge it finds (one
// made by an older version, whose MAC follows its ports): the gateway's MAC
// the pods have cached stays the same as pods come and go.
func TestAddKeepsBridgeMAC(t *testing.T) {
	n := newNode(t)
	in(t, n.ns, func() error {
		la := netlink.NewLinkAttrs()
		la.Name = n.bridge
		return netlink.LinkAdd(&netlink.Bridge{LinkAttrs: la})
	})
	before := link(t, n.ns, n.bridge).Attrs().HardwareAddr

	a, b := n.newPod(), n.newPod()
	n.mustAdd(a)
	n.mustAdd(b)
	if err := n.del(a, n.netconf()); err != nil {
		t.Fatal(err)
	}
	if after := link(t, n.ns, n.bridge).Attrs().HardwareAddr; !bytes.Equal(before, after) {
		t.Errorf("bridge MAC changed from %s to %s as pods were added and deleted; pods' ARP entries for the gateway go stale", before, after)
	}
}

// TestAddTwiceFailsAndKeepsFirst proves a second ADD of the same container
// and interface fails with an error saying to DEL first, and leaves the
// first attachment alone: its veth, addresses, record and lease survive,
// and IPAM is not asked again.
func TestAddTwiceFailsAndKeepsFirst(t *testing.T) {
	n := newNode(t)
	p := n.newPod()
	n.mustAdd(p)

	_, err := n.add(p, n.netconf())
	e := cniError(t, err, types.ErrInternal)
	wantErrText(t, e, "attachment already exists", p.cid, `"eth0"`, "DEL it first")

	if link(t, n.ns, p.hostVeth) == nil || link(t, p.ns, "eth0") == nil {
		t.Errorf("second ADD removed the first attachment's veth pair")
	}
	if got := addrs(t, p.ns, "eth0"); !slices.Contains(got, "10.244.5.7/24") {
		t.Errorf("pod addresses after the second ADD = %v", got)
	}
	if !n.recordExists(p.cid, "eth0") || !n.hasLease(p.cid, "eth0") {
		t.Errorf("second ADD removed the first attachment's record (%v) or lease (%v)", n.recordExists(p.cid, "eth0"), n.hasLease(p.cid, "eth0"))
	}
	if len(n.callsOf("ADD")) != 1 || len(n.callsOf("DEL")) != 0 {
		t.Errorf("IPAM calls = %q, want only the first ADD", n.calls())
	}
}

// TestAddFailureRollsBack proves a failing ADD returns a CNI error naming
// the cause, with the right code, and leaves nothing behind: no veth on
// the node or in the pod, no attachment record, and no lease (a lease
// already granted is released).
func TestAddFailureRollsBack(t *testing.T) {
	tests := []struct {
		name     string
		edit     func(n *node, p *pod, conf map[string]any)
		code     uint
		parts    []string
		released bool // IPAM granted a lease, so DEL must have released it
	}{
		{
			name: "IPAM refuses",
			edit: func(_ *node, _ *pod, c map[string]any) {
				ipamOf(c)["fail"] = map[string]any{"ADD": map[string]any{"code": 11, "msg": "pool exhausted", "details": "no free address in 10.244.5.0/24"}}
			},
			code:  types.ErrTryAgainLater,
			parts: []string{"IPAM ADD (fakeipam): pool exhausted", "no free address in 10.244.5.0/24"},
		},
		{
			name:     "IPAM answers garbage",
			edit:     func(_ *node, _ *pod, c map[string]any) { ipamOf(c)["malformed"] = map[string]any{"ADD": true} },
			code:     types.ErrInternal,
			parts:    []string{"IPAM ADD (fakeipam) failed"},
			released: true, // the reply may follow an allocation
		},
		{
			name:     "IPAM gives no address",
			edit:     func(_ *node, _ *pod, c map[string]any) { ipamOf(c)["ips"] = []any{} },
			code:     types.ErrInternal,
			parts:    []string{"IPAM returned no address", `"fakeipam"`},
			released: true,
		},
		{
			name: "IPAM gives the gateway address",
			edit: func(_ *node, _ *pod, c map[string]any) {
				ipamOf(c)["ips"] = []map[string]any{{"address": "10.244.5.1/24"}}
			},
			code:     types.ErrInvalidNetworkConfig,
			parts:    []string{"pod address is its own gateway", "10.244.5.1/24"},
			released: true,
		},
		{
			name:  "IPAM plugin not installed",
			edit:  func(_ *node, _ *pod, c map[string]any) { ipamOf(c)["type"] = "nosuch-ipam" },
			code:  types.ErrPluginNotAvailable,
			parts: []string{"IPAM plugin not found", `ipam.type "nosuch-ipam"`},
		},
		{
			name:  "netns does not exist",
			edit:  func(_ *node, p *pod, _ map[string]any) { p.netns = "/run/netns/eltest-gone-" + randHex(4) },
			code:  types.ErrInvalidNetNS,
			parts: []string{"cannot open netns", "CNI_NETNS", "eltest-gone-"},
		},
		{
			name: "bridge name taken by another link",
			edit: func(n *node, _ *pod, _ map[string]any) {
				addVeth(n.t, n.ns, n.bridge)
			},
			code:  types.ErrInternal,
			parts: []string{"cannot set up bridge", "is a veth, not a bridge", `set "bridge"`},
		},
		{
			name: "pod already has the interface",
			edit: func(n *node, p *pod, _ map[string]any) {
				addVeth(n.t, p.ns, "eth0")
			},
			code:  types.ErrInternal,
			parts: []string{"cannot create veth pair", `interface "eth0"`},
		},
	}
	n := newNode(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n.t = t
			p := n.newPod()
			conf := n.netconf()
			tt.edit(n, p, conf)
			nodeLinksBefore := linkNames(t, n.ns)
			podLinksBefore := linkNames(t, p.ns)
			delsBefore := len(n.callsOf("DEL"))

			_, err := n.add(p, conf)
			e := cniError(t, err, tt.code)
			wantErrText(t, e, tt.parts...)

			if l := link(t, n.ns, p.hostVeth); l != nil {
				t.Errorf("failed ADD left host veth %s", p.hostVeth)
			}
			if got := linkNames(t, p.ns); !slices.Equal(got, podLinksBefore) {
				t.Errorf("failed ADD left pod links %v (before: %v)", got, podLinksBefore)
			}
			for _, l := range linkNames(t, n.ns) {
				if l != n.bridge && !slices.Contains(nodeLinksBefore, l) {
					t.Errorf("failed ADD left node link %s", l)
				}
			}
			if n.recordExists(p.cid, "eth0") {
				t.Error("failed ADD left its attachment record")
			}
			if n.hasLease(p.cid, "eth0") {
				t.Error("failed ADD left its IPAM lease")
			}
			if dels := len(n.callsOf("DEL")) - delsBefore; tt.released && dels != 1 {
				t.Errorf("IPAM DEL calls = %d, want 1 to release the granted lease", dels)
			}
			// The next case starts without a bridge (or the dummy in its place).
			if l := link(t, n.ns, n.bridge); l != nil {
				in(t, n.ns, func() error { return netlink.LinkDel(l) })
			}
		})
	}
}

// TestAddRejectsBadNetconf proves every command refuses a netconf it cannot
// decode (code 6) or that is invalid (code 7, naming the field), before it
// records, creates or asks IPAM anything.
func TestAddRejectsBadNetconf(t *testing.T) {
	e := newIPAMEnv(t)
	cmds := map[string]func(*skel.CmdArgs) error{"ADD": cmdAdd, "DEL": cmdDel, "CHECK": cmdCheck, "GC": cmdGC, "STATUS": cmdStatus}
	tests := []struct {
		name  string
		stdin string
		code  uint
		parts []string
	}{
		{"empty", "", types.ErrDecodingFailure, []string{"cannot decode network configuration", "stdin is empty"}},
		{"not JSON", `{"name":`, types.ErrDecodingFailure, []string{"cannot decode network configuration", "not valid JSON"}},
		{"mtu wrong type", `{"name":"eltest","mtu":"1400","ipam":{"type":"fakeipam"}}`, types.ErrDecodingFailure, []string{"mtu: got JSON string, want int"}},
		{"mtu out of range", fmt.Sprintf(`{"name":"eltest","mtu":70000,"dataDir":%q,"ipam":{"type":"fakeipam","dir":%q}}`, e.dataDir, e.ipamDir),
			types.ErrInvalidNetworkConfig, []string{"invalid network configuration", "mtu: 70000"}},
		{"bridge name too long", fmt.Sprintf(`{"name":"eltest","bridge":"edgelink-bridge-0","dataDir":%q,"ipam":{"type":"fakeipam","dir":%q}}`, e.dataDir, e.ipamDir),
			types.ErrInvalidNetworkConfig, []string{`bridge: "edgelink-bridge-0"`}},
		{"relative dataDir", fmt.Sprintf(`{"name":"eltest","dataDir":"state","ipam":{"type":"fakeipam","dir":%q}}`, e.ipamDir),
			types.ErrInvalidNetworkConfig, []string{`dataDir: "state"`}},
		{"no ipam type", fmt.Sprintf(`{"name":"eltest","dataDir":%q,"ipam":{"dir":%q}}`, e.dataDir, e.ipamDir),
			types.ErrInvalidNetworkConfig, []string{"ipam.type: is required"}},
	}
	for _, tt := range tests {
		for verb, f := range cmds {
			t.Run(tt.name+"/"+verb, func(t *testing.T) {
				e.t = t
				a := attachmentArgs{cid: "c" + randHex(4), ifName: "eth0", netns: "/run/netns/eltest-none"}
				_, err := e.runRaw(nil, verb, f, []byte(tt.stdin), a)
				wantErrText(t, cniError(t, err, tt.code), tt.parts...)
			})
		}
	}
	if got, _ := listRecords(stateDir(e.dataDir, "eltest")); len(got) != 0 {
		t.Errorf("records written for a bad netconf: %v", got)
	}
	if c := e.calls(); len(c) != 0 {
		t.Errorf("IPAM called for a bad netconf: %q", c)
	}
}
