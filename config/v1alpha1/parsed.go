package v1alpha1

import (
	"net/netip"
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// Agent is an agent config that Validate accepted, with every value whose
// type is richer than its YAML string (durations, CIDRs) parsed once, by the
// validation that checked it. The agent and its modules are built from an
// Agent, so none of them parses a config string again and none can ignore a
// parse error.
type Agent struct {
	// AgentConfig is the file as read: defaults applied and, after Parse,
	// repeated CIDRs dropped (Normalize).
	*AgentConfig
	// Parsed holds the parsed values, each named for its field.
	Parsed AgentValues
}

// AgentValues are an agent config's parsed fields. Those of a disabled
// module are not validated and stay zero.
type AgentValues struct {
	// ShutdownTimeout is shutdownTimeout.
	ShutdownTimeout time.Duration
	// AuditPeriod is modules.metaSync.auditPeriod.
	AuditPeriod time.Duration
	// ReconcileGrace is modules.ipam.reconcileGrace.
	ReconcileGrace time.Duration
	// CloudCIDR and EdgeCIDR are modules.edgeCNI.meshCIDRConfig's lists,
	// without the repeats Normalize drops (whether or not it ran).
	CloudCIDR, EdgeCIDR []netip.Prefix
	// RoutableCIDRs is modules.tunnel.routableCIDRs.
	RoutableCIDRs []netip.Prefix
	// PathIdleTimeout is modules.tunnel.pathIdleTimeout; 0 when empty.
	PathIdleTimeout time.Duration
}

// Controller is a controller config that ValidateController accepted, with
// its values parsed (see Agent).
type Controller struct {
	*ControllerConfig
	Parsed ControllerValues
}

// ControllerValues are a controller config's parsed fields. The
// enrollment's stay zero when enrollment is off.
type ControllerValues struct {
	// ResyncPeriod is resyncPeriod.
	ResyncPeriod time.Duration
	// CloudCIDR and EdgeCIDR are meshCIDRConfig's lists, without repeats.
	CloudCIDR, EdgeCIDR []netip.Prefix
	// LeaseDuration, RenewDeadline and RetryPeriod are leaderElection's.
	LeaseDuration, RenewDeadline, RetryPeriod time.Duration
	// AgentServiceAccount is enrollment.agentServiceAccount.
	AgentServiceAccount types.NamespacedName
	// CertificateLifetime is enrollment.certificateLifetime.
	CertificateLifetime time.Duration
	// KubeEdgeCASecret is enrollment.kubeEdgeCASecret; zero for "-" (none).
	KubeEdgeCASecret types.NamespacedName
}
