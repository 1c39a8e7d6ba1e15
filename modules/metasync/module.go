// Package metasync is the agent's metadata module. It lists and watches
// Pods, Nodes, Namespaces and SpiderIPPools — on edge nodes through
// EdgeCore's metaServer (the cloud channel), on cloud nodes from the
// kube-apiserver — keeps pkg/metadata's snapshot current and durable on
// disk, and publishes every real change there: the other modules wait on
// Reader's Next or Wait (no beehive messages).
//
// What it relies on of the metaServer (docs/metadata.md, measured there):
// JSON only; no discovery; cluster-wide watches (namespaced pod watches lag
// ~5 s in KubeEdge v1.20); every watch replays the local cache as ADDED and
// ignores resourceVersion, so only real differences are published; the
// first request stalls ~10 s while the cloud is away, so the snapshot on
// disk carries the agent until then.
package metasync

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
	ModuleName = "metasync"
	GroupName  = "metasync"
)

// Module is the beehive face of Service.
type Module struct {
	enable bool
	svc    *Service
}

var _ core.Module = (*Module)(nil)

// New builds the module from the validated agent config and loads the
// on-disk snapshot, so Reader is usable by the modules built after it.
func New(c *v1.Agent) *Module {
	m := &Module{
		enable: c.Modules.MetaSync.Enable,
		svc: &Service{
			Source:       c.Modules.MetaSync.Source,
			Server:       c.Modules.MetaSync.MetaServer,
			Kubeconfig:   c.Modules.MetaSync.Kubeconfig,
			CAFile:       c.Modules.MetaSync.CAFile,
			TokenFile:    c.Modules.MetaSync.TokenFile,
			SnapshotPath: filepath.Join(c.DataDir, "metasync", "snapshot.json"),
			AuditPeriod:  c.Parsed.AuditPeriod,
		},
	}
	if m.enable {
		_ = m.svc.Init()
	}
	return m
}

// Reader gives the metadata snapshot and its change signal (Next, Wait),
// or nil when the module is disabled.
func (m *Module) Reader() metadata.Reader {
	if !m.enable {
		return nil
	}
	return m.svc.Reader()
}

// Status reports the source's state.
func (m *Module) Status() metadata.Status { return m.svc.Status() }

func (m *Module) Name() string  { return ModuleName }
func (m *Module) Group() string { return GroupName }
func (m *Module) Enable() bool  { return m.enable }

// Start syncs until the agent shuts down.
func (m *Module) Start() {
	if err := m.svc.Run(beehiveContext.GetContext()); err != nil {
		klog.ErrorS(err, "Metadata module failed")
	}
}
