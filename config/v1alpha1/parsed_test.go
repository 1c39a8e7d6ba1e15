package v1alpha1

import (
	"net/netip"
	"reflect"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

func prefixes(ss ...string) []netip.Prefix {
	var out []netip.Prefix
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}

// Every parsed field of an agent config comes back with the file's value
// (not the default), as the modules are built from it.
func TestParseHandsBackParsedValues(t *testing.T) {
	in := `
nodeName: edge-1
shutdownTimeout: 45s
modules:
  metaSync: {enable: true, auditPeriod: 2m}
  ipam: {enable: true, reconcileGrace: 90s}
  edgeCNI:
    enable: true
    meshCIDRConfig:
      cloudCIDR: [" 10.244.1.0/24 ", "10.244.1.0/24"]
      edgeCIDR:  ["10.244.5.0/24", "fd00:244:6::/64", "10.244.5.0/24"]
  tunnel:
    enable: true
    routableCIDRs: ["198.18.0.0/15", "10.0.0.0/8"]
    pathIdleTimeout: 5m
`
	a, warnings, err := Parse([]byte(in))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(warnings) != 2 {
		t.Errorf("warnings = %q, want the two repeats", warnings)
	}
	for _, tt := range []struct {
		field     string
		got, want any
	}{
		{"shutdownTimeout", a.Parsed.ShutdownTimeout, 45 * time.Second},
		{"modules.metaSync.auditPeriod", a.Parsed.AuditPeriod, 2 * time.Minute},
		{"modules.ipam.reconcileGrace", a.Parsed.ReconcileGrace, 90 * time.Second},
		{"modules.edgeCNI.meshCIDRConfig.cloudCIDR", a.Parsed.CloudCIDR, prefixes("10.244.1.0/24")},
		{"modules.edgeCNI.meshCIDRConfig.edgeCIDR", a.Parsed.EdgeCIDR, prefixes("10.244.5.0/24", "fd00:244:6::/64")},
		{"modules.tunnel.routableCIDRs", a.Parsed.RoutableCIDRs, prefixes("198.18.0.0/15", "10.0.0.0/8")},
		{"modules.tunnel.pathIdleTimeout", a.Parsed.PathIdleTimeout, 5 * time.Minute},
		// The file's own fields stay reachable, normalized.
		{"nodeName", a.NodeName, "edge-1"},
		{"modules.edgeCNI.meshCIDRConfig.edgeCIDR as written", a.Modules.EdgeCNI.MeshCIDRConfig.EdgeCIDR, []string{"10.244.5.0/24", "fd00:244:6::/64"}},
	} {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.field, tt.got, tt.want)
		}
	}
}

// The defaults come back parsed too; a disabled module's fields are not
// checked and stay zero.
func TestValidateParsesDefaults(t *testing.T) {
	c := NewDefault()
	c.NodeName = "edge-1"
	c.Modules.IPAM.Enable = false
	c.Modules.IPAM.ReconcileGrace = "whenever" // not checked: ipam is off
	a, err := Validate(c)
	if err != nil {
		t.Fatal(err)
	}
	want := AgentValues{ShutdownTimeout: 30 * time.Second, AuditPeriod: 30 * time.Second}
	if !reflect.DeepEqual(a.Parsed, want) {
		t.Errorf("parsed defaults = %+v, want %+v", a.Parsed, want)
	}
	if a.AgentConfig != c {
		t.Error("the Agent does not hold the config it validated")
	}
}

// Every parsed field of a controller config comes back with its value.
func TestValidateControllerHandsBackParsedValues(t *testing.T) {
	c := &ControllerConfig{
		MeshCIDRConfig: MeshCIDRConfig{CloudCIDR: []string{"10.244.0.0/22"}, EdgeCIDR: []string{"10.244.5.0/24", "10.244.6.0/24"}},
		ResyncPeriod:   "45s",
		LeaderElection: LeaderElection{Enable: true, LeaseDuration: "20s", RenewDeadline: "12s", RetryPeriod: "500ms"},
		Enrollment: Enrollment{Enable: true, AgentServiceAccount: "edgelink/edgelink-agent",
			CertificateLifetime: "24h", KubeEdgeCASecret: "kubeedge/casecret"},
	}
	SetControllerDefaults(c)
	got, err := ValidateController(c)
	if err != nil {
		t.Fatal(err)
	}
	p := got.Parsed
	for _, tt := range []struct {
		field     string
		got, want any
	}{
		{"resyncPeriod", p.ResyncPeriod, 45 * time.Second},
		{"meshCIDRConfig.cloudCIDR", p.CloudCIDR, prefixes("10.244.0.0/22")},
		{"meshCIDRConfig.edgeCIDR", p.EdgeCIDR, prefixes("10.244.5.0/24", "10.244.6.0/24")},
		{"leaderElection.leaseDuration", p.LeaseDuration, 20 * time.Second},
		{"leaderElection.renewDeadline", p.RenewDeadline, 12 * time.Second},
		{"leaderElection.retryPeriod", p.RetryPeriod, 500 * time.Millisecond},
		{"enrollment.agentServiceAccount", p.AgentServiceAccount, types.NamespacedName{Namespace: "edgelink", Name: "edgelink-agent"}},
		{"enrollment.certificateLifetime", p.CertificateLifetime, 24 * time.Hour},
		{"enrollment.kubeEdgeCASecret", p.KubeEdgeCASecret, types.NamespacedName{Namespace: "kubeedge", Name: "casecret"}},
		{"blockSize", got.BlockSize, 26},
	} {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s = %v, want %v", tt.field, tt.got, tt.want)
		}
	}

	c.Enrollment.KubeEdgeCASecret = "-"
	if got, err := ValidateController(c); err != nil || got.Parsed.KubeEdgeCASecret != (types.NamespacedName{}) {
		t.Errorf("kubeEdgeCASecret - = %+v, %v; want none", got, err)
	}
}
