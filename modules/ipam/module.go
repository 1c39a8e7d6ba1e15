// Package ipam is the agent's ipam beehive module: it serves SpiderPool's
// agent API on a unix socket so the stock spiderpool IPAM binary allocates
// on edge nodes from pools pinned to the node, with durable leases, also
// while the cloud is unreachable. The allocation logic is pkg/ipam; this
// package is the socket, the module lifecycle and the pool sources.
package ipam

import (
	"path/filepath"

	"github.com/kubeedge/beehive/pkg/core"
	beehiveContext "github.com/kubeedge/beehive/pkg/core/context"
	"k8s.io/klog/v2"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/metadata"
)

// ModuleName and GroupName identify the module in beehive.
const (
	ModuleName = "ipam"
	GroupName  = "ipam"
)

// Module is the beehive face of Service.
type Module struct {
	enable bool
	svc    *Service
}

var _ core.Module = (*Module)(nil)

// New builds the module from the validated agent config. md is the
// metadata picture (nil when metaSync is off: pools then come from the
// pool file).
func New(c *v1.Agent, md metadata.Reader) *Module {
	return &Module{
		enable: c.Modules.IPAM.Enable,
		svc: &Service{
			NodeName:     c.NodeName,
			SocketPath:   c.Modules.IPAM.SocketPath,
			DBPath:       filepath.Join(c.DataDir, "ipam", "leases.db"),
			PoolFile:     c.Modules.IPAM.PoolFile,
			Metadata:     md,
			ReleaseGrace: c.Parsed.ReconcileGrace,
		},
	}
}

func (m *Module) Name() string  { return ModuleName }
func (m *Module) Group() string { return GroupName }
func (m *Module) Enable() bool  { return m.enable }

// Start serves until the agent shuts down. An error (a store another
// process holds, an unreadable pool file, a socket in use) ends Start
// early, which stops the agent with that error.
func (m *Module) Start() {
	if err := m.svc.Run(beehiveContext.GetContext(), nil); err != nil {
		klog.ErrorS(err, "IPAM module failed")
	}
}
