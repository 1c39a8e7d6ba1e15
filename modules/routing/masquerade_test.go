package routing

import (
	"strings"
	"testing"

	"github.com/edgelink/edgelink/pkg/agentapi"
)

// The nat table as flanneld v0.28 (--ip-masq, network 10.244.0.0/16,
// lease 10.244.1.0/24) leaves it, `iptables -S` lines.
func flannelNAT(postrouting ...string) fakeIPT {
	return fakeIPT{
		"nat/POSTROUTING": append([]string{"-P POSTROUTING ACCEPT"}, postrouting...),
		"nat/FLANNEL-POSTRTG": {
			"-N FLANNEL-POSTRTG",
			`-A FLANNEL-POSTRTG -m mark --mark 0x4000/0x4000 -m comment --comment "flanneld masq" -j RETURN`,
			`-A FLANNEL-POSTRTG -s 10.244.1.0/24 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j RETURN`,
			`-A FLANNEL-POSTRTG -s 10.244.0.0/16 -d 10.244.1.0/24 -m comment --comment "flanneld masq" -j RETURN`,
			`-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.1.0/24 -m comment --comment "flanneld masq" -j RETURN`,
			`-A FLANNEL-POSTRTG -s 10.244.0.0/16 ! -d 224.0.0.0/4 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully`,
			`-A FLANNEL-POSTRTG ! -s 10.244.0.0/16 -d 10.244.0.0/16 -m comment --comment "flanneld masq" -j MASQUERADE --random-fully`,
		},
	}
}

const (
	ourJump     = "-A POSTROUTING -m comment --comment edgelink -j " + chainNAT
	flannelJump = `-A POSTROUTING -m comment --comment "flanneld masq" -j FLANNEL-POSTRTG`
)

func TestMasqueradeChecks(t *testing.T) {
	tests := []struct {
		name   string
		ipt    fakeIPT
		ours   bool
		status string
		want   []string
	}{
		{"no Flannel", fakeIPT{"nat/POSTROUTING": {"-P POSTROUTING ACCEPT", ourJump, "-A POSTROUTING -j MASQUERADE"}}, true, "", nil},
		{"Flannel after ours", flannelNAT(ourJump, flannelJump), true, agentapi.CheckOK,
			[]string{"Flannel's FLANNEL-POSTRTG", "masquerades 10.244.0.0/16 to not 224.0.0.0/4, not 10.244.0.0/16 to 10.244.0.0/16", "after EDGELINK-POSTROUTING: mesh traffic is exempt"}},
		{"Flannel before ours", flannelNAT(flannelJump, ourJump), true, agentapi.CheckFail,
			[]string{"FLANNEL-POSTRTG", "before EDGELINK-POSTROUTING", "spoofed"}},
		{"ours missing", flannelNAT(flannelJump), true, agentapi.CheckFail, []string{"before EDGELINK-POSTROUTING"}},
		{"ours broken", flannelNAT(ourJump, flannelJump), false, agentapi.CheckFail, []string{"before EDGELINK-POSTROUTING"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := masqueradeChecks(tc.ipt, "iptables", tc.ours)
			if tc.status == "" {
				if len(got) != 0 {
					t.Fatalf("want no check, got %+v", got)
				}
				return
			}
			if len(got) != 1 {
				t.Fatalf("want one check, got %+v", got)
			}
			c := got[0]
			if c.Status != tc.status || c.Name != "Flannel masquerade (iptables)" {
				t.Errorf("got %s %q, want %s", c.Status, c.Name, tc.status)
			}
			for _, w := range tc.want {
				if !strings.Contains(c.Detail, w) {
					t.Errorf("detail %q lacks %q", c.Detail, w)
				}
			}
			if c.Status == agentapi.CheckFail && c.Fix == "" {
				t.Error("a failed check without a fix")
			}
		})
	}
}
