package v1alpha1

import (
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	in := `
nodeName: edge-1
modules:
  edgeCNI:
    enable: true
    meshCIDRConfig:
      cloudCIDR: ["10.244.1.0/24"]
      edgeCIDR:  ["10.244.5.0/24", "10.244.6.0/24", "fd00:244:6::/64"]
  tunnel:
    enable: true
    relayNodes:
    - {nodeName: relay-1, advertiseAddress: ["198.18.0.10", "relay-1.example.com"]}
`
	c, warnings, err := Parse([]byte(in))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if len(warnings) != 0 {
		t.Errorf("warnings = %q, want none", warnings)
	}
	if c.Modules.EdgeCNI.TunName != DefaultTunName || c.Modules.Tunnel.ListenPort != DefaultListenPort {
		t.Errorf("defaults not applied: tunName=%q listenPort=%d", c.Modules.EdgeCNI.TunName, c.Modules.Tunnel.ListenPort)
	}
	// Modules the file does not mention stay off: a file names what it runs.
	if c.Modules.MetaSync.Enable || c.Modules.IPAM.Enable {
		t.Errorf("modules absent from the file were enabled: %+v", c.Modules)
	}
}

func TestDuplicateCIDRsDroppedWithWarning(t *testing.T) {
	// EdgeMesh's documentation example repeats 10.244.2.0/24 in edgeCIDR.
	in := `
nodeName: edge-1
modules:
  edgeCNI:
    enable: true
    meshCIDRConfig:
      cloudCIDR: ["10.244.1.0/24", "10.244.1.0/24"]
      edgeCIDR:  ["10.244.2.0/24", "10.244.3.0/24", "10.244.2.0/24"]
`
	c, warnings, err := Parse([]byte(in))
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	mc := c.Modules.EdgeCNI.MeshCIDRConfig
	if got := strings.Join(mc.CloudCIDR, ","); got != "10.244.1.0/24" {
		t.Errorf("cloudCIDR = %s", got)
	}
	if got := strings.Join(mc.EdgeCIDR, ","); got != "10.244.2.0/24,10.244.3.0/24" {
		t.Errorf("edgeCIDR = %s", got)
	}
	want := []string{
		`modules.edgeCNI.meshCIDRConfig.cloudCIDR[1]: "10.244.1.0/24" repeats modules.edgeCNI.meshCIDRConfig.cloudCIDR[0]; dropped`,
		`modules.edgeCNI.meshCIDRConfig.edgeCIDR[2]: "10.244.2.0/24" repeats modules.edgeCNI.meshCIDRConfig.edgeCIDR[0]; dropped`,
	}
	if strings.Join(warnings, "\n") != strings.Join(want, "\n") {
		t.Errorf("warnings:\n%s\nwant:\n%s", strings.Join(warnings, "\n"), strings.Join(want, "\n"))
	}
}

func TestValidationErrors(t *testing.T) {
	base := func() *AgentConfig {
		c := NewDefault()
		c.NodeName = "edge-1"
		c.Modules.EdgeCNI.Enable = true
		c.Modules.EdgeCNI.MeshCIDRConfig.EdgeCIDR = []string{"10.244.5.0/24"}
		return c
	}
	tests := []struct {
		name   string
		mutate func(*AgentConfig)
		want   []string // substrings, one per expected error, in order
	}{
		{"valid", func(*AgentConfig) {}, nil},
		{"edgeCNI enabled without CIDRs", func(c *AgentConfig) {
			c.Modules.EdgeCNI.MeshCIDRConfig.EdgeCIDR = nil
		}, []string{`modules.edgeCNI.enable: "true" needs at least one of`}},
		{"edgeCNI disabled without CIDRs is fine", func(c *AgentConfig) {
			c.Modules.EdgeCNI.Enable = false
			c.Modules.EdgeCNI.MeshCIDRConfig.EdgeCIDR = nil
		}, nil},
		{"not a CIDR", func(c *AgentConfig) {
			c.Modules.EdgeCNI.MeshCIDRConfig.EdgeCIDR = []string{"10.244.5.0/24", "10.244.5.0/33"}
		}, []string{`modules.edgeCNI.meshCIDRConfig.edgeCIDR[1]: "10.244.5.0/33" is not a CIDR`}},
		{"host bits", func(c *AgentConfig) {
			c.Modules.EdgeCNI.MeshCIDRConfig.CloudCIDR = []string{"10.244.1.7/24"}
		}, []string{`cloudCIDR[0]: "10.244.1.7/24" has host bits set; did you mean "10.244.1.0/24"?`}},
		{"overlap across lists", func(c *AgentConfig) {
			c.Modules.EdgeCNI.MeshCIDRConfig.CloudCIDR = []string{"10.244.0.0/16"}
		}, []string{`edgeCIDR[0]: "10.244.5.0/24" overlaps modules.edgeCNI.meshCIDRConfig.cloudCIDR[0] "10.244.0.0/16"`}},
		{"same CIDR cloud and edge", func(c *AgentConfig) {
			c.Modules.EdgeCNI.MeshCIDRConfig.CloudCIDR = []string{"10.244.5.0/24"}
		}, []string{`edgeCIDR[0]: "10.244.5.0/24" is also listed as modules.edgeCNI.meshCIDRConfig.cloudCIDR[0]`}},
		{"IPv6 accepted, IPv6 overlap caught", func(c *AgentConfig) {
			c.Modules.EdgeCNI.MeshCIDRConfig.EdgeCIDR = []string{"fd00:244::/48", "fd00:244:0:1::/64"}
		}, []string{`edgeCIDR[1]: "fd00:244:0:1::/64" overlaps modules.edgeCNI.meshCIDRConfig.edgeCIDR[0] "fd00:244::/48"`}},
		{"IPv6 raises the MTU floor", func(c *AgentConfig) {
			c.Modules.EdgeCNI.MeshCIDRConfig.EdgeCIDR = []string{"fd00:244::/64"}
			c.Modules.EdgeCNI.MTU = 1000
		}, []string{`modules.edgeCNI.mtu: "1000" must be 0 (derive from the underlay) or between 1280 and 65535`}},
		{"bad tun name", func(c *AgentConfig) { c.Modules.EdgeCNI.TunName = "this-name-is-too-long" },
			[]string{`modules.edgeCNI.tunName: "this-name-is-too-long" is not a valid interface name`}},
		{"bad node name", func(c *AgentConfig) { c.NodeName = "Edge_1" },
			[]string{`nodeName: "Edge_1" is not a valid node name`}},
		{"bad port and relay", func(c *AgentConfig) {
			c.Modules.Tunnel.ListenPort = 70000
			c.Modules.Tunnel.RelayNodes = []RelayNode{
				{NodeName: "relay-1", AdvertiseAddress: []string{"198.18.0.1"}},
				{NodeName: "relay-1", AdvertiseAddress: []string{"not an address!"}},
				{AdvertiseAddress: nil},
			}
		}, []string{
			`modules.tunnel.listenPort: "70000" must be a port`,
			`modules.tunnel.relayNodes[1].nodeName: "relay-1" repeats modules.tunnel.relayNodes[0]`,
			`modules.tunnel.relayNodes[1].advertiseAddress[0]: "not an address!" is neither an IP address nor a DNS name`,
			`modules.tunnel.relayNodes[2].nodeName: is required`,
			`modules.tunnel.relayNodes[2].advertiseAddress: needs at least one address`,
		}},
		{"path idle timeout too short", func(c *AgentConfig) { c.Modules.Tunnel.PathIdleTimeout = "5s" },
			[]string{`modules.tunnel.pathIdleTimeout: "5s" must be a duration of at least 10s such as "5m"`}},
		{"path idle timeout not a duration", func(c *AgentConfig) { c.Modules.Tunnel.PathIdleTimeout = "soon" },
			[]string{`modules.tunnel.pathIdleTimeout: "soon" must be a duration of at least 10s`}},
		{"relative KubeEdge CA", func(c *AgentConfig) { c.Modules.Tunnel.KubeEdgeCAFile = "rootCA.crt" },
			[]string{`modules.tunnel.kubeEdgeCAFile: "rootCA.crt" must be an absolute path`}},
		{"enroll needs the kube-apiserver", func(c *AgentConfig) { c.Modules.Tunnel.Enroll = true },
			[]string{`modules.tunnel.enroll: "true" asks the kube-apiserver for a certificate, which needs modules.metaSync enabled with source inCluster or kubeconfig`}},
		{"metaSync source", func(c *AgentConfig) { c.Modules.MetaSync.Source = "apiserver" },
			[]string{`modules.metaSync.source: "apiserver" must be one of metaServer, kubeconfig, inCluster`}},
		{"kubeconfig needed", func(c *AgentConfig) { c.Modules.MetaSync.Source = SourceKubeconfig },
			[]string{`modules.metaSync.kubeconfig: is required when source is "kubeconfig"`}},
		{"relative paths and bad timeout", func(c *AgentConfig) {
			c.DataDir = "var/lib/edgelink"
			c.Modules.IPAM.SocketPath = "ipam.sock"
			c.ShutdownTimeout = "soon"
		}, []string{
			`dataDir: "var/lib/edgelink" must be an absolute path`,
			`shutdownTimeout: "soon" must be a positive duration`,
			`modules.ipam.socketPath: "ipam.sock" must be an absolute path`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mutate(c)
			_, err := Validate(c)
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			list, ok := err.(ErrorList)
			if !ok {
				t.Fatalf("error = %v (%T), want ErrorList", err, err)
			}
			if len(list) != len(tt.want) {
				t.Fatalf("got %d errors, want %d:\n%v", len(list), len(tt.want), err)
			}
			for i, w := range tt.want {
				if !strings.Contains(list[i].Error(), w) {
					t.Errorf("error %d = %q, want it to contain %q", i, list[i].Error(), w)
				}
			}
		})
	}
}

func TestParseRejectsUnknownField(t *testing.T) {
	_, _, err := Parse([]byte("nodeName: edge-1\nmodules:\n  edgeCNI:\n    tunNmae: x\n"))
	if err == nil || !strings.Contains(err.Error(), `tunNmae`) {
		t.Fatalf("err = %v, want unknown field named", err)
	}
}

func TestDefaultRoundTrips(t *testing.T) {
	t.Setenv("NODE_NAME", "edge-7")
	out, err := Marshal(NewDefault())
	if err != nil {
		t.Fatal(err)
	}
	c, warnings, err := Parse(out)
	if err != nil || len(warnings) != 0 {
		t.Fatalf("default config does not validate: %v %v\n%s", err, warnings, out)
	}
	if c.NodeName != "edge-7" {
		t.Errorf("nodeName = %q, want $NODE_NAME", c.NodeName)
	}
}
