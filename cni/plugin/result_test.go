package plugin

import (
	"net"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
)

func ipc(cidr, gw string) *current.IPConfig {
	ip, n, _ := net.ParseCIDR(cidr)
	n.IP = ip
	c := &current.IPConfig{Address: *n}
	if gw != "" {
		c.Gateway = net.ParseIP(gw)
	}
	return c
}

func routesText(rs []*types.Route) string {
	var b strings.Builder
	for _, r := range rs {
		b.WriteString(r.Dst.String() + " via " + r.GW.String() + "\n")
	}
	return b.String()
}

func TestCompleteGatewaysAndDefaultRoutes(t *testing.T) {
	tests := []struct {
		name    string
		ips     []*current.IPConfig
		routes  []*types.Route
		want    string // routes after, as text
		wantErr string
	}{
		{
			name: "gateway from IPAM",
			ips:  []*current.IPConfig{ipc("10.244.5.7/24", "10.244.5.254")},
			want: "0.0.0.0/0 via 10.244.5.254\n",
		},
		{
			name: "first address when IPAM gives none, both families",
			ips:  []*current.IPConfig{ipc("10.244.5.7/24", ""), ipc("fd00:244::7/64", "")},
			want: "0.0.0.0/0 via 10.244.5.1\n::/0 via fd00:244::1\n",
		},
		{
			name:   "IPAM default route kept, none added",
			ips:    []*current.IPConfig{ipc("10.244.5.7/24", "10.244.5.1")},
			routes: []*types.Route{{Dst: net.IPNet{IP: net.IPv4zero, Mask: net.CIDRMask(0, 32)}, GW: net.ParseIP("10.244.5.254")}},
			want:   "0.0.0.0/0 via 10.244.5.254\n",
		},
		{
			name:    "pod address is the implied gateway",
			ips:     []*current.IPConfig{ipc("10.244.5.1/24", "")},
			wantErr: "IPAM gave 10.244.5.1/24, which is the default gateway of 10.244.5.0/24",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := &current.Result{IPs: tt.ips, Routes: tt.routes}
			err := completeGateways(res)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			addDefaultRoutes(res)
			if got := routesText(res.Routes); got != tt.want {
				t.Errorf("routes:\n%swant:\n%s", got, tt.want)
			}
		})
	}
}

func TestHostVethName(t *testing.T) {
	a := hostVethName("abc", "eth0")
	if a != hostVethName("abc", "eth0") || len(a) != 13 || !strings.HasPrefix(a, "el") {
		t.Errorf("hostVethName = %q: want a stable 13-character name starting with el", a)
	}
	if a == hostVethName("abc", "eth1") || a == hostVethName("abd", "eth0") {
		t.Error("different attachments share a host veth name")
	}
}

func TestRecordsRoundTrip(t *testing.T) {
	dir := t.TempDir()
	a := &attachment{ContainerID: "c1", IfName: "eth0", NetNS: "/run/netns/x", HostVeth: "el0", CNIArgs: "K8S_POD_NAME=p"}
	if err := writeRecord(dir, a); err != nil {
		t.Fatal(err)
	}
	got, err := readRecord(dir, "c1", "eth0")
	if err != nil || *got != *a {
		t.Fatalf("read back %+v, %v", got, err)
	}
	list, err := listRecords(dir)
	if err != nil || len(list) != 1 {
		t.Fatalf("list = %v, %v", list, err)
	}
	if err := removeRecord(dir, "c1", "eth0"); err != nil {
		t.Fatal(err)
	}
	if err := removeRecord(dir, "c1", "eth0"); err != nil {
		t.Fatalf("second remove: %v", err)
	}
	if list, _ := listRecords(dir); len(list) != 0 {
		t.Errorf("records left: %v", list)
	}
}
