package v1alpha1

import (
	"fmt"
	"os"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"
)

// ControllerKind identifies the controller's config file (same apiVersion
// as the agent's).
const ControllerKind = "EdgeLinkController"

// ControllerConfig is the configuration of `edgelink controller`, the one
// cluster-wide arbiter in the cloud: it splits shared SpiderIPPools into
// per-node blocks for edge nodes.
type ControllerConfig struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`

	// Kubeconfig is the kube-apiserver's kubeconfig; empty: in-cluster
	// (the controller's ServiceAccount).
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// MeshCIDRConfig lists the segments, as the agents' config does: a
	// node's blocks come from the segment holding its spec.podCIDR (or
	// named by its edgelink.io/segment annotation). Empty (allowed only
	// with enrollment on): no blocks, the controller only signs.
	MeshCIDRConfig MeshCIDRConfig `json:"meshCIDRConfig"`
	// EdgeNodeLabel selects the nodes that get blocks: nodes carrying this
	// label (any value). KubeEdge labels its edge nodes so.
	EdgeNodeLabel string `json:"edgeNodeLabel"`
	// BlockSize is the prefix length of IPv4 blocks (a /26 holds 64
	// addresses, one of them the node's gateway); BlockSizeIPv6 of IPv6.
	BlockSize     int `json:"blockSize"`
	BlockSizeIPv6 int `json:"blockSizeIPv6"`
	// MinFree is how many free addresses each edge node keeps in its
	// blocks of a pool: below it the controller claims another block, so
	// a node cut off from the cloud can still start that many pods.
	MinFree int `json:"minFree"`
	// ResyncPeriod is how often everything is reconciled even without a
	// change, as a Go duration.
	ResyncPeriod string `json:"resyncPeriod"`
	// LeaderElection: one controller decides at a time.
	LeaderElection LeaderElection `json:"leaderElection"`
	// Enrollment signs cloud nodes' member certificates.
	Enrollment Enrollment `json:"enrollment"`
}

// Enrollment configures the member certificate signer: cloud nodes'
// agents ask for their certificates through the CertificateSigningRequest
// API (signer edgelink.io/member).
type Enrollment struct {
	Enable bool `json:"enable"`
	// Namespace holds CASecret and CAConfigMap; defaults to
	// $POD_NAMESPACE, then kube-system.
	Namespace string `json:"namespace"`
	// CASecret keeps the cluster CA, created on first start; only the
	// controller reads it.
	CASecret string `json:"caSecret"`
	// CAConfigMap publishes the CA certificates agents trust (ca.crt and
	// KubeEdge's, kubeedge-ca.crt).
	CAConfigMap string `json:"caConfigMap"`
	// AgentServiceAccount (namespace/name) is the only requester approved:
	// the cloud agents' ServiceAccount.
	AgentServiceAccount string `json:"agentServiceAccount"`
	// CertificateLifetime of a member certificate, as a Go duration;
	// agents renew at two thirds of it.
	CertificateLifetime string `json:"certificateLifetime"`
	// KubeEdgeCASecret (namespace/name) is cloudcore's CA Secret, whose
	// certificate (never its key) is published as kubeedge-ca.crt; "-":
	// none.
	KubeEdgeCASecret string `json:"kubeEdgeCASecret"`
}

// LeaderElection configures client-go's leader election on a Lease.
type LeaderElection struct {
	Enable bool `json:"enable"`
	// Namespace and Name of the Lease; Namespace defaults to
	// $POD_NAMESPACE, then kube-system.
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// LeaseDuration, RenewDeadline and RetryPeriod as Go durations.
	LeaseDuration string `json:"leaseDuration"`
	RenewDeadline string `json:"renewDeadline"`
	RetryPeriod   string `json:"retryPeriod"`
}

// DefaultControllerConfig is the controller's configuration with defaults.
func DefaultControllerConfig() *ControllerConfig {
	c := &ControllerConfig{}
	SetControllerDefaults(c)
	return c
}

// SetControllerDefaults fills in unset fields.
func SetControllerDefaults(c *ControllerConfig) {
	if c.APIVersion == "" {
		c.APIVersion = APIVersion
	}
	if c.Kind == "" {
		c.Kind = ControllerKind
	}
	if c.EdgeNodeLabel == "" {
		c.EdgeNodeLabel = "node-role.kubernetes.io/edge"
	}
	if c.BlockSize == 0 {
		c.BlockSize = 26
	}
	if c.BlockSizeIPv6 == 0 {
		c.BlockSizeIPv6 = 122
	}
	if c.MinFree == 0 {
		c.MinFree = 16
	}
	if c.ResyncPeriod == "" {
		c.ResyncPeriod = "30s"
	}
	le := &c.LeaderElection
	if le.Namespace == "" {
		le.Namespace = os.Getenv("POD_NAMESPACE")
	}
	if le.Namespace == "" {
		le.Namespace = "kube-system"
	}
	if le.Name == "" {
		le.Name = "edgelink-controller"
	}
	if le.LeaseDuration == "" {
		le.LeaseDuration = "15s"
	}
	if le.RenewDeadline == "" {
		le.RenewDeadline = "10s"
	}
	if le.RetryPeriod == "" {
		le.RetryPeriod = "2s"
	}
	en := &c.Enrollment
	if en.Namespace == "" {
		en.Namespace = le.Namespace
	}
	if en.CASecret == "" {
		en.CASecret = "edgelink-ca"
	}
	if en.CAConfigMap == "" {
		en.CAConfigMap = "edgelink-ca"
	}
	if en.CertificateLifetime == "" {
		en.CertificateLifetime = "168h"
	}
	if en.KubeEdgeCASecret == "" {
		en.KubeEdgeCASecret = "kubeedge/casecret"
	}
	if c.MeshCIDRConfig.CloudCIDR == nil {
		c.MeshCIDRConfig.CloudCIDR = []string{}
	}
	if c.MeshCIDRConfig.EdgeCIDR == nil {
		c.MeshCIDRConfig.EdgeCIDR = []string{}
	}
}

// ValidateController returns c (defaults applied) with its values parsed,
// or every problem at once, field path first.
func ValidateController(c *ControllerConfig) (*Controller, error) {
	v := &validator{}
	var p ControllerValues
	if c.APIVersion != APIVersion {
		v.add("apiVersion", c.APIVersion, "must be %s", APIVersion)
	}
	if c.Kind != ControllerKind {
		v.add("kind", c.Kind, "must be %s (this is the controller's config)", ControllerKind)
	}
	p.CloudCIDR, p.EdgeCIDR = v.meshCIDRs("meshCIDRConfig", &c.MeshCIDRConfig)
	if len(c.MeshCIDRConfig.CloudCIDR)+len(c.MeshCIDRConfig.EdgeCIDR) == 0 && !c.Enrollment.Enable {
		v.add("meshCIDRConfig", nil, "needs at least one cloudCIDR or edgeCIDR entry: blocks come from the nodes' segments (with none, the controller would only sign certificates: set enrollment.enable)")
	}
	if c.BlockSize < 16 || c.BlockSize > 30 {
		v.add("blockSize", c.BlockSize, "must be an IPv4 prefix length between 16 and 30 (26: 64 addresses)")
	}
	if c.BlockSizeIPv6 < 64 || c.BlockSizeIPv6 > 126 {
		v.add("blockSizeIPv6", c.BlockSizeIPv6, "must be an IPv6 prefix length between 64 and 126 (122: 64 addresses)")
	}
	if c.BlockSize >= 16 && c.BlockSize <= 30 {
		if most := 1<<(32-c.BlockSize) - 1; c.MinFree < 1 || c.MinFree > most {
			v.add("minFree", c.MinFree, "must be between 1 and a block's addresses less its gateway (%d)", most)
		}
	}
	if c.EdgeNodeLabel == "" {
		v.add("edgeNodeLabel", nil, "must name a label")
	}
	p.ResyncPeriod = v.duration("resyncPeriod", c.ResyncPeriod, time.Second, "30s")
	le := c.LeaderElection
	p.LeaseDuration = v.duration("leaderElection.leaseDuration", le.LeaseDuration, time.Second, "15s")
	p.RenewDeadline = v.duration("leaderElection.renewDeadline", le.RenewDeadline, time.Second, "10s")
	p.RetryPeriod = v.duration("leaderElection.retryPeriod", le.RetryPeriod, 100*time.Millisecond, "2s")
	if ld, rd := p.LeaseDuration, p.RenewDeadline; ld > 0 && rd > 0 && rd >= ld {
		v.add("leaderElection.renewDeadline", le.RenewDeadline, "must be shorter than leaderElection.leaseDuration (%s)", le.LeaseDuration)
	}
	if en := c.Enrollment; en.Enable {
		if ns, name, ok := strings.Cut(en.AgentServiceAccount, "/"); !ok || !ValidNodeName(ns) || !ValidNodeName(name) {
			v.add("enrollment.agentServiceAccount", en.AgentServiceAccount, "must be the cloud agents' ServiceAccount as namespace/name (only it may enroll)")
		} else {
			p.AgentServiceAccount = types.NamespacedName{Namespace: ns, Name: name}
		}
		if en.KubeEdgeCASecret != "-" {
			if ns, name, ok := strings.Cut(en.KubeEdgeCASecret, "/"); !ok || ns == "" || name == "" {
				v.add("enrollment.kubeEdgeCASecret", en.KubeEdgeCASecret, "must be namespace/name (cloudcore's is kubeedge/casecret), or - for none")
			} else {
				p.KubeEdgeCASecret = types.NamespacedName{Namespace: ns, Name: name}
			}
		}
		p.CertificateLifetime = v.duration("enrollment.certificateLifetime", en.CertificateLifetime, time.Hour, "168h")
	}
	if len(v.errs) > 0 {
		return nil, v.errs
	}
	return &Controller{ControllerConfig: c, Parsed: p}, nil
}

// LoadController reads, defaults and validates the controller's config
// file (unknown fields are errors) and returns it parsed.
func LoadController(path string) (*Controller, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c := &ControllerConfig{}
	if err := yaml.UnmarshalStrict(data, c); err != nil {
		return nil, fmt.Errorf("%s: decode config: %w", path, err)
	}
	SetControllerDefaults(c)
	parsed, err := ValidateController(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return parsed, nil
}
