// Package tunnel is the agent's tunnel beehive module: the libp2p host
// that connects this node to every other member of the mesh. It owns the
// node's identity and membership proof, runs a members-only circuit relay
// and the discovery directory on relay nodes, keeps reservations on every
// configured relay, learns peers from the relays' directories, the
// metadata picture and its own on-disk cache, and keeps one path to each
// (pkg/p2p's PathManager: direct, hole-punched or relayed, probed,
// upgraded and failed over). The protocols themselves live in pkg/p2p;
// this package wires them to the config, the disk and the status API.
package tunnel

import (
	"net/http"

	"github.com/kubeedge/beehive/pkg/core"
	beehiveContext "github.com/kubeedge/beehive/pkg/core/context"
	"k8s.io/klog/v2"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/agenthost"
	"github.com/edgelink/edgelink/pkg/dataplane"
	"github.com/edgelink/edgelink/pkg/metadata"
)

// ModuleName and GroupName identify the module in beehive.
const (
	ModuleName = "tunnel"
	GroupName  = "tunnel"
)

// Module is the beehive face of Service.
type Module struct {
	enable bool
	svc    *Service
	pods   PodLocator // may be nil (ping.go)
}

var _ core.Module = (*Module)(nil)

// New builds the module from the validated agent config. md is the
// metadata picture (nil when metaSync is off).
func New(c *v1.Agent, md metadata.Reader) *Module {
	return &Module{enable: c.Modules.Tunnel.Enable, svc: NewService(c, md)}
}

// StatusRoutes are the module's endpoints on the status socket: GET
// /v1/tunnel/status and /v1/tunnel/peers when enabled (status.go), and
// POST /v1/ping always (ping.go; 503 while the tunnel is not up or
// disabled).
func (m *Module) StatusRoutes() agenthost.Routes {
	rs := agenthost.Routes{}
	if m.enable {
		rs = m.svc.statusRoutes()
	}
	rs["POST /v1/ping"] = http.HandlerFunc(m.pingHandler)
	return rs
}

// Packets is the tunnel's side of the data plane, for the routing module.
func (m *Module) Packets() dataplane.Network { return m.svc.Packets() }

func (m *Module) Name() string  { return ModuleName }
func (m *Module) Group() string { return GroupName }
func (m *Module) Enable() bool  { return m.enable }

// Start runs until the agent shuts down; an error (no identity, no valid
// certificate, port in use) ends it early, which stops the agent.
func (m *Module) Start() {
	if err := m.svc.Run(beehiveContext.GetContext()); err != nil {
		klog.ErrorS(err, "Tunnel module failed")
	}
}
