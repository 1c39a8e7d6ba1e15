// Package routing is the agent's routing beehive module (configured as
// modules.edgeCNI, EdgeMesh's name for it): it owns the TUN
// device, decides which pod prefixes are remote (the configured cloudCIDR
// and edgeCIDR segments other than this node's, and pods of other nodes
// in its own segment), programs the routes (protocol 77), the TUN's
// address, the sysctls, the SNAT exemption and MSS clamping (iptables),
// and runs the forwarder (pkg/dataplane) between the TUN and the tunnel
// module. Everything it creates is reconciled periodically and removed
// on shutdown.
//
// What it does to the host goes through the Kernel interface (kernel.go:
// the reconcile logic; kernel_linux.go: netlink, /proc/sys and the
// iptables binaries; kernel_other.go: "not supported" elsewhere), so the
// tests drive the same logic against a recording fake.
package routing

import (
	"net/http"

	"github.com/kubeedge/beehive/pkg/core"
	beehiveContext "github.com/kubeedge/beehive/pkg/core/context"
	"k8s.io/klog/v2"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/agentapi"
	"github.com/edgelink/edgelink/pkg/agenthost"
	"github.com/edgelink/edgelink/pkg/dataplane"
	"github.com/edgelink/edgelink/pkg/metadata"
)

// ModuleName and GroupName identify the module in beehive.
const (
	ModuleName = "routing"
	GroupName  = "routing"
)

// Module is the beehive face of Service.
type Module struct {
	enable bool
	svc    *Service
}

var _ core.Module = (*Module)(nil)

// New builds the module: md is the metadata picture, n the tunnel's data
// plane side.
func New(c *v1.Agent, md metadata.Reader, n dataplane.Network) *Module {
	return &Module{enable: c.Modules.EdgeCNI.Enable, svc: NewService(c, md, n)}
}

// StatusRoutes are the module's endpoints on the status socket: GET
// /v1/dataplane (Status), /v1/dataplane/routes and /v1/dataplane/peers
// (ops.go), each 503 until the TUN is up; none when the module is
// disabled.
func (m *Module) StatusRoutes() agenthost.Routes {
	if !m.enable {
		return nil
	}
	return m.svc.statusRoutes()
}

func (m *Module) Name() string  { return ModuleName }
func (m *Module) Group() string { return GroupName }
func (m *Module) Enable() bool  { return m.enable }

// Start runs until the agent shuts down; an error ends it early, which
// stops the agent.
func (m *Module) Start() {
	if err := m.svc.Run(beehiveContext.GetContext()); err != nil {
		klog.ErrorS(err, "routing module failed")
	}
}

// Status is GET /v1/dataplane.
type Status = agentapi.DataplaneStatus

// statusRoutes are GET /v1/dataplane and the operations endpoints
// (ops.go).
func (s *Service) statusRoutes() agenthost.Routes {
	rs := s.opsRoutes()
	rs["GET /v1/dataplane"] = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		st := s.state.Load()
		if st == nil {
			http.Error(w, "data plane is not up", http.StatusServiceUnavailable)
			return
		}
		segs := []string{}
		for _, s := range st.plan.Segments {
			segs = append(segs, s.String())
		}
		agentapi.WriteJSON(w, Status{MTU: st.mtu, Segments: segs, Plan: st.plan.String(), Errors: st.errs, Stats: agentapi.DataplaneStats(st.fwd.Snapshot())})
	})
	return rs
}
