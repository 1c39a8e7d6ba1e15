package v1alpha1

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every problem of a controller config at once, field path first.
func TestValidateControllerNamesEveryField(t *testing.T) {
	c := &ControllerConfig{Kind: "EdgeLinkAgent", BlockSize: 31, BlockSizeIPv6: 40, MinFree: -1, ResyncPeriod: "soon",
		MeshCIDRConfig: MeshCIDRConfig{EdgeCIDR: []string{"10.244.5.0/33"}},
		LeaderElection: LeaderElection{LeaseDuration: "5s", RenewDeadline: "6s"}}
	SetControllerDefaults(c)
	_, err := ValidateController(c)
	if err == nil {
		t.Fatal("accepted")
	}
	for _, want := range []string{
		`kind: "EdgeLinkAgent" must be EdgeLinkController`,
		`meshCIDRConfig.edgeCIDR[0]: "10.244.5.0/33" is not a CIDR`,
		`blockSize: "31" must be an IPv4 prefix length between 16 and 30`,
		`blockSizeIPv6: "40" must be an IPv6 prefix length`,
		`resyncPeriod: "soon"`,
		`leaderElection.renewDeadline: "6s" must be shorter than leaderElection.leaseDuration (5s)`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	ok := DefaultControllerConfig()
	ok.MeshCIDRConfig.EdgeCIDR = []string{"10.244.5.0/24"}
	ok.MinFree = 64
	if _, err := ValidateController(ok); err == nil || !strings.Contains(err.Error(), `minFree: "64" must be between 1 and a block's addresses less its gateway (63)`) {
		t.Errorf("minFree beyond a block: %v", err)
	}
	ok.MinFree = 16
	if _, err := ValidateController(ok); err != nil {
		t.Errorf("a good config: %v", err)
	}
	empty := DefaultControllerConfig()
	if _, err := ValidateController(empty); err == nil || !strings.Contains(err.Error(), "meshCIDRConfig: needs at least one cloudCIDR or edgeCIDR entry") {
		t.Errorf("no segments: %v", err)
	}
	signer := DefaultControllerConfig()
	signer.Enrollment.Enable, signer.Enrollment.AgentServiceAccount = true, "kube-system/edgelink"
	if c, err := ValidateController(signer); err != nil || len(c.Parsed.CloudCIDR)+len(c.Parsed.EdgeCIDR) != 0 {
		t.Errorf("a signer without segments: %v", err)
	}
}

func TestLoadControllerRefusesUnknownFields(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte("meshCIDRConfig: {edgeCIDR: [10.244.5.0/24]}\nblockSizes: 24\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadController(p); err == nil || !strings.Contains(err.Error(), "blockSizes") {
		t.Errorf("a misspelt field: %v", err)
	}
}
