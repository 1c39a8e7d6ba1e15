package ipam

// Wire format: SpiderPool's agent API v1 (spiderpool v0.9.3,
// api/v1/agent/openapi.yaml), HTTP/1.1 over a unix socket, JSON bodies.
//
//	GET    /v1/ipam/healthy        200 when the module can allocate (no body)
//	POST   /v1/ipam/ip             IpamAddArgs  -> 200 IpamAddResponse
//	DELETE /v1/ipam/ip             IpamDelArgs  -> 200 (no body)
//	DELETE /v1/ipam/ips            IpamBatchDelArgs -> 200 (no body)
//	GET    /v1/runtime/startup     200 once serving
//	GET    /v1/runtime/readiness   200 once serving
//	GET    /v1/runtime/liveness    200 while serving
//
// EdgeLink adds two read-only endpoints (not SpiderPool's):
//
//	GET    /v1/edgelink/leases     200 [Lease...] (pkg/ipam.Lease as JSON)
//	GET    /v1/edgelink/pools      200 {"pools": [PoolUsage...], "invalid": {name: reason}}
//
// Every failure is HTTP 500 with the Error model: a bare JSON string, e.g.
//
//	"pool exhausted: IPv4 pool edge-1-v4 (all 20 addresses allocated) for pod default/web on node edge-1"
//
// which the spiderpool binary passes up to the container runtime.
// Requests bodies are limited to 1 MiB; unknown fields are ignored, as
// go-swagger's server does. Routes not listed answer 404 (unknown path) or
// 501 (SpiderPool paths EdgeLink does not implement: POST /v1/ipam/ips,
// /v1/workloadendpoint, /v1/coordinator/config).
//
// The structs below match SpiderPool's generated models field for field
// (tests/tools/spiderpool-wire/wire_test.go checks them against the real package).

// IpamAddArgs is the body of POST /v1/ipam/ip.
type IpamAddArgs struct {
	ContainerID       *string  `json:"containerID"`
	IfName            *string  `json:"ifName"`
	NetNamespace      *string  `json:"netNamespace"`
	PodNamespace      *string  `json:"podNamespace"`
	PodName           *string  `json:"podName"`
	PodUID            *string  `json:"podUID"`
	DefaultIPV4IPPool []string `json:"defaultIPv4IPPool"`
	DefaultIPV6IPPool []string `json:"defaultIPv6IPPool"`
	CleanGateway      bool     `json:"cleanGateway,omitempty"`
}

// IpamDelArgs is the body of DELETE /v1/ipam/ip.
type IpamDelArgs struct {
	ContainerID  *string `json:"containerID"`
	IfName       *string `json:"ifName"`
	NetNamespace string  `json:"netNamespace,omitempty"`
	PodNamespace *string `json:"podNamespace"`
	PodName      *string `json:"podName"`
	PodUID       *string `json:"podUID"`
}

// IpamBatchDelArgs is the body of DELETE /v1/ipam/ips.
type IpamBatchDelArgs struct {
	ContainerID          *string `json:"containerID"`
	IsReleaseConflictIPs bool    `json:"isReleaseConflictIPs,omitempty"`
	NetNamespace         string  `json:"netNamespace,omitempty"`
	PodNamespace         *string `json:"podNamespace"`
	PodName              *string `json:"podName"`
	PodUID               *string `json:"podUID"`
}

// IpamAddResponse is the answer to POST /v1/ipam/ip.
type IpamAddResponse struct {
	DNS    *DNS        `json:"dns,omitempty"`
	Ips    []*IPConfig `json:"ips"`
	Routes []*Route    `json:"routes"`
}

// IPConfig is one allocated address; Address carries the pool subnet's
// prefix length ("10.244.5.2/16").
type IPConfig struct {
	Address *string `json:"address"`
	Gateway string  `json:"gateway,omitempty"`
	IPPool  string  `json:"ipPool,omitempty"`
	Nic     *string `json:"nic"`
	Version *int64  `json:"version"`
	Vlan    int64   `json:"vlan,omitempty"`
}

// Route is one route for interface IfName.
type Route struct {
	Dst    *string `json:"dst"`
	Gw     *string `json:"gw"`
	IfName *string `json:"ifName"`
}

// DNS is SpiderPool's DNS model (EdgeLink never fills it).
type DNS struct {
	Domain      string   `json:"domain,omitempty"`
	Nameservers []string `json:"nameservers"`
	Options     []string `json:"options"`
	Search      []string `json:"search"`
}
