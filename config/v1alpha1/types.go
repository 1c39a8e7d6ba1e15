package v1alpha1

// APIVersion and Kind identify this schema in a config file. Both are
// optional in the file; when present they must match.
const (
	APIVersion = "agent.edgelink.io/v1alpha1"
	Kind       = "EdgeLinkAgent"
)

// AgentConfig is the whole agent configuration file.
type AgentConfig struct {
	APIVersion string `json:"apiVersion,omitempty"`
	Kind       string `json:"kind,omitempty"`

	// NodeName is this node's name in the cluster; it must equal the name of
	// its Node object (EdgeCore's hostnameOverride on edge nodes). Defaults
	// to $NODE_NAME, then the host name.
	NodeName string `json:"nodeName"`
	// DataDir holds durable state: identity, leases, metadata snapshot.
	DataDir string `json:"dataDir"`
	// ShutdownTimeout bounds how long modules may take to release what they
	// created after SIGTERM/SIGINT, as a Go duration ("30s").
	ShutdownTimeout string `json:"shutdownTimeout"`
	// StatusSocket is the unix socket on which the agent answers status
	// queries (the CLI, tests): one small HTTP API, read-only.
	StatusSocket string `json:"statusSocket"`
	// MetricsAddress, when set ("127.0.0.1:9091"), also serves the
	// Prometheus metrics (always on the status socket at /metrics) over
	// plain HTTP on this TCP address. Empty: off.
	MetricsAddress string `json:"metricsAddress"`

	Modules Modules `json:"modules"`
}

// Modules mirrors EdgeCore's modules section: one entry per beehive module.
type Modules struct {
	MetaSync MetaSync `json:"metaSync"`
	IPAM     IPAM     `json:"ipam"`
	EdgeCNI  EdgeCNI  `json:"edgeCNI"`
	Tunnel   Tunnel   `json:"tunnel"`
}

// Metadata sources for the metaSync module.
const (
	SourceMetaServer = "metaServer"
	SourceKubeconfig = "kubeconfig"
	SourceInCluster  = "inCluster"
)

// MetaSync configures the metadata module: where pods, nodes and
// SpiderIPPools come from.
type MetaSync struct {
	Enable bool `json:"enable"`
	// Source is metaServer (edge nodes: EdgeCore's metaServer), kubeconfig
	// or inCluster (cloud nodes: the kube-apiserver).
	Source string `json:"source"`
	// MetaServer is EdgeCore's metaServer address (source metaServer).
	MetaServer string `json:"metaServer"`
	// Kubeconfig is the kubeconfig file (source kubeconfig).
	Kubeconfig string `json:"kubeconfig"`
	// CAFile and TokenFile authenticate to an https:// metaServer (EdgeCore
	// with requireAuthorization): the CA bundle and a bearer token file.
	CAFile    string `json:"caFile,omitempty"`
	TokenFile string `json:"tokenFile,omitempty"`
	// AuditPeriod is how often everything is listed to catch changes the
	// watches missed (the metaServer does not re-deliver events missed
	// while the cloud was away), as a Go duration.
	AuditPeriod string `json:"auditPeriod"`
}

// IPAM configures the SpiderPool-compatible IPAM module.
type IPAM struct {
	Enable bool `json:"enable"`
	// SocketPath is the unix socket serving SpiderPool's agent API; the CNI
	// conflist's ipam_unix_socket_path must name the same file.
	SocketPath string `json:"socketPath"`
	// PoolFile optionally names a file of SpiderIPPool (and Node, Namespace,
	// Pod) objects to allocate from, re-read when it changes.
	PoolFile string `json:"poolFile,omitempty"`
	// ReconcileGrace protects a lease this young from being released
	// because its pod is missing from the metadata picture (the pod may not
	// have reached it yet), as a Go duration.
	ReconcileGrace string `json:"reconcileGrace"`
}

// EdgeCNI configures the module that owns the TUN device and the routes to
// remote segments.
type EdgeCNI struct {
	Enable bool `json:"enable"`
	// TunName is the TUN device's name.
	TunName string `json:"tunName"`
	// MTU of the TUN device and of pod interfaces; 0 derives it from the
	// underlay interface.
	MTU int `json:"mtu"`
	// MeshCIDRConfig lists the pod network segments, as in EdgeMesh.
	MeshCIDRConfig MeshCIDRConfig `json:"meshCIDRConfig"`
}

// MeshCIDRConfig names the pod CIDRs of the cloud and of the edge sites.
type MeshCIDRConfig struct {
	CloudCIDR []string `json:"cloudCIDR"`
	EdgeCIDR  []string `json:"edgeCIDR"`
}

// Tunnel configures the libp2p tunnel module.
type Tunnel struct {
	Enable bool `json:"enable"`
	// ListenPort is the TCP and UDP (QUIC) port the tunnel listens on.
	ListenPort int `json:"listenPort"`
	// IdentityFile holds this node's libp2p key (created on first start,
	// mode 0600). Losing it means a new peer ID, and a new certificate.
	IdentityFile string `json:"identityFile"`
	// CAFile is the cluster CA members' certificates chain to: EdgeLink's
	// own (edgelink ca init, or the one edgelink controller keeps) or
	// KubeEdge's root CA.
	CAFile string `json:"caFile"`
	// KubeEdgeCAFile, if set, is KubeEdge's root CA: then the certificates
	// cloudcore issues to edge nodes (system:node:<name>) must chain to it
	// and EdgeLink's (bound to a peer ID) to CAFile, each to its own.
	KubeEdgeCAFile string `json:"kubeEdgeCAFile"`
	// CertFile and KeyFile are this node's member certificate (naming the
	// node) and its key.
	CertFile string `json:"certFile"`
	KeyFile  string `json:"keyFile"`
	// Enroll gets the certificate from edgelink controller through the
	// Kubernetes CertificateSigningRequest API (cloud nodes): the key is
	// made on this node and kept in KeyFile, the certificate is written to
	// CertFile and renewed at two thirds of its lifetime.
	Enroll bool `json:"enroll"`
	// RoutableCIDRs are underlay ranges treated as routable between sites
	// even though they are private or special-use (libp2p hole-punches
	// and advertises only addresses it deems public).
	RoutableCIDRs []string `json:"routableCIDRs"`
	// RelayNodes run circuit relays and answer discovery.
	RelayNodes []RelayNode `json:"relayNodes"`
	// PathIdleTimeout, if set (a duration of at least 10s), makes paths
	// on demand: a path to a member is set up when a packet or a ping
	// needs one (the first packets wait for it) and let go, connections
	// closed, once no packet stream has used it for this long. Paths to
	// relays are always kept. Empty: a path to every member, always.
	PathIdleTimeout string `json:"pathIdleTimeout"`
}

// RelayNode is one relay, as in EdgeMesh's agent.relayNodes.
type RelayNode struct {
	NodeName string `json:"nodeName"`
	// AdvertiseAddress lists addresses (IP or DNS name) other nodes dial.
	AdvertiseAddress []string `json:"advertiseAddress"`
}
