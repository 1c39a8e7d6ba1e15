package v1alpha1

import (
	"os"
	"path/filepath"
	"strings"
)

// Default values. docs/config-reference.md quotes them; a test checks it.
const (
	DefaultDataDir         = "/var/lib/edgelink"
	DefaultShutdownTimeout = "30s"
	DefaultMetaServer      = "http://127.0.0.1:10550"
	DefaultAuditPeriod     = "30s"
	DefaultIPAMSocket      = "/var/run/edgelink/ipam.sock"
	DefaultReconcileGrace  = "60s"
	DefaultTunName         = "edgelink0"
	DefaultListenPort      = 20006
	DefaultStatusSocket    = "/var/run/edgelink/agent.sock"
	DefaultMembershipDir   = "/etc/edgelink/membership"
)

// NewDefault returns the configuration `edgelink config default` prints:
// every module enabled except edgeCNI, which needs the mesh CIDRs.
func NewDefault() *AgentConfig {
	c := &AgentConfig{
		APIVersion: APIVersion,
		Kind:       Kind,
		Modules: Modules{
			MetaSync: MetaSync{Enable: true},
			IPAM:     IPAM{Enable: true},
			Tunnel:   Tunnel{Enable: true},
		},
	}
	SetDefaults(c)
	return c
}

// SetDefaults fills every empty field with its default. It never overrides
// a value the file set.
func SetDefaults(c *AgentConfig) {
	if c.APIVersion == "" {
		c.APIVersion = APIVersion
	}
	if c.Kind == "" {
		c.Kind = Kind
	}
	if c.NodeName == "" {
		c.NodeName = defaultNodeName()
	}
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir
	}
	if c.ShutdownTimeout == "" {
		c.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.StatusSocket == "" {
		c.StatusSocket = DefaultStatusSocket
	}
	m := &c.Modules
	if m.MetaSync.Source == "" {
		m.MetaSync.Source = SourceMetaServer
	}
	if m.MetaSync.MetaServer == "" {
		m.MetaSync.MetaServer = DefaultMetaServer
	}
	if m.MetaSync.AuditPeriod == "" {
		m.MetaSync.AuditPeriod = DefaultAuditPeriod
	}
	if m.IPAM.SocketPath == "" {
		m.IPAM.SocketPath = DefaultIPAMSocket
	}
	if m.IPAM.ReconcileGrace == "" {
		m.IPAM.ReconcileGrace = DefaultReconcileGrace
	}
	if m.EdgeCNI.TunName == "" {
		m.EdgeCNI.TunName = DefaultTunName
	}
	if m.EdgeCNI.MeshCIDRConfig.CloudCIDR == nil {
		m.EdgeCNI.MeshCIDRConfig.CloudCIDR = []string{}
	}
	if m.EdgeCNI.MeshCIDRConfig.EdgeCIDR == nil {
		m.EdgeCNI.MeshCIDRConfig.EdgeCIDR = []string{}
	}
	if m.Tunnel.ListenPort == 0 {
		m.Tunnel.ListenPort = DefaultListenPort
	}
	if m.Tunnel.IdentityFile == "" {
		m.Tunnel.IdentityFile = filepath.Join(c.DataDir, "tunnel", "identity.key")
	}
	if m.Tunnel.CAFile == "" {
		m.Tunnel.CAFile = filepath.Join(DefaultMembershipDir, "ca.crt")
	}
	if m.Tunnel.CertFile == "" {
		m.Tunnel.CertFile = filepath.Join(DefaultMembershipDir, "node.crt")
	}
	if m.Tunnel.KeyFile == "" {
		m.Tunnel.KeyFile = filepath.Join(DefaultMembershipDir, "node.key")
	}
	if m.Tunnel.RoutableCIDRs == nil {
		m.Tunnel.RoutableCIDRs = []string{}
	}
	if m.Tunnel.RelayNodes == nil {
		m.Tunnel.RelayNodes = []RelayNode{}
	}
}

// defaultNodeName follows EdgeMesh and kubelet: $NODE_NAME (set from the
// downward API in the DaemonSet), else the lower-cased host name.
func defaultNodeName() string {
	if n := os.Getenv("NODE_NAME"); n != "" {
		return n
	}
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	return strings.ToLower(h)
}
