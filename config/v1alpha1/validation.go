package v1alpha1

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// FieldError is one problem in a config file: the field's path, the value
// found there, and what is wrong with it.
type FieldError struct {
	Path   string
	Value  any
	Detail string
}

func (e *FieldError) Error() string {
	if e.Value == nil {
		return fmt.Sprintf("%s: %s", e.Path, e.Detail)
	}
	return fmt.Sprintf("%s: %q %s", e.Path, fmt.Sprint(e.Value), e.Detail)
}

// ErrorList is every problem found in one config; it is returned as a
// single error whose message lists them one per line.
type ErrorList []*FieldError

func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return fmt.Sprintf("%d problem(s) in config:\n  %s", len(l), strings.Join(msgs, "\n  "))
}

// Validate checks c (with defaults already applied) and returns it with its
// values parsed, or every problem at once as an ErrorList. It does not
// modify c; a CIDR repeated within one list is Normalize's business, not an
// error (the parsed lists leave it out). Validate before Normalize, so that
// paths name the entries as the file numbers them.
func Validate(c *AgentConfig) (*Agent, error) {
	v := &validator{}
	parsed := v.config(c)
	if len(v.errs) > 0 {
		return nil, v.errs
	}
	return &Agent{AgentConfig: c, Parsed: parsed}, nil
}

// Normalize drops repeated CIDRs from the mesh CIDR lists (EdgeMesh's own
// documentation repeats one), keeping the first, and returns one warning per
// entry dropped.
func Normalize(c *AgentConfig) (warnings []string) {
	mc := &c.Modules.EdgeCNI.MeshCIDRConfig
	seen := map[netip.Prefix]string{}
	dedup := func(name string, in []string) []string {
		out := in[:0:0]
		for i, s := range in {
			p, err := netip.ParsePrefix(strings.TrimSpace(s))
			if err != nil { // Validate reports it
				out = append(out, s)
				continue
			}
			if first, dup := seen[p]; dup && strings.HasPrefix(first, name+"[") {
				warnings = append(warnings, fmt.Sprintf("%s.%s[%d]: %q repeats %s.%s; dropped",
					meshPath, name, i, s, meshPath, first))
				continue
			}
			if _, dup := seen[p]; !dup {
				seen[p] = fmt.Sprintf("%s[%d]", name, i)
			}
			out = append(out, s)
		}
		return out
	}
	if mc.CloudCIDR != nil {
		mc.CloudCIDR = dedup("cloudCIDR", mc.CloudCIDR)
	}
	if mc.EdgeCIDR != nil {
		mc.EdgeCIDR = dedup("edgeCIDR", mc.EdgeCIDR)
	}
	return warnings
}

const meshPath = "modules.edgeCNI.meshCIDRConfig"

type validator struct{ errs ErrorList }

func (v *validator) add(path string, value any, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Path: path, Value: value, Detail: fmt.Sprintf(format, args...)})
}

// dns1123Subdomain is Kubernetes' rule for object names such as Node names.
var dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

// ValidNodeName reports whether s can name a Kubernetes Node.
func ValidNodeName(s string) bool {
	return len(s) <= 253 && dns1123Subdomain.MatchString(s)
}

// ValidLinkName reports whether s can name a Linux network interface.
func ValidLinkName(s string) bool {
	if s == "" || len(s) > 15 || s == "." || s == ".." {
		return false
	}
	return !strings.ContainsAny(s, "/: \t\n\r\x00")
}

func (v *validator) config(c *AgentConfig) (p AgentValues) {
	if c.APIVersion != APIVersion {
		v.add("apiVersion", c.APIVersion, "is not supported; use %q", APIVersion)
	}
	if c.Kind != Kind {
		v.add("kind", c.Kind, "is not supported; use %q", Kind)
	}
	switch {
	case c.NodeName == "":
		v.add("nodeName", nil, "is required (set it, or $NODE_NAME, to this node's Node object name)")
	case !ValidNodeName(c.NodeName):
		v.add("nodeName", c.NodeName, "is not a valid node name (lower-case DNS-1123 subdomain)")
	}
	if !filepath.IsAbs(c.DataDir) {
		v.add("dataDir", c.DataDir, "must be an absolute path")
	}
	p.ShutdownTimeout = v.duration("shutdownTimeout", c.ShutdownTimeout, 0, DefaultShutdownTimeout)
	v.socketPath("statusSocket", c.StatusSocket)
	v.listenAddress("metricsAddress", c.MetricsAddress)
	p.AuditPeriod = v.metaSync(&c.Modules.MetaSync)
	p.ReconcileGrace = v.ipam(&c.Modules.IPAM)
	p.CloudCIDR, p.EdgeCIDR = v.edgeCNI(&c.Modules.EdgeCNI)
	p.RoutableCIDRs, p.PathIdleTimeout = v.tunnel(&c.Modules.Tunnel)
	if t, m := c.Modules.Tunnel, c.Modules.MetaSync; t.Enable && t.Enroll && (!m.Enable || m.Source == SourceMetaServer) {
		v.add("modules.tunnel.enroll", true, "asks the kube-apiserver for a certificate, which needs modules.metaSync enabled with source %s or %s (cloud nodes); edge nodes keep the certificates cloudcore gave them", SourceInCluster, SourceKubeconfig)
	}
	return p
}

// duration checks a Go duration field, longer than 0 (min 0) or at least
// min, and returns it (0 when it is refused). The message shows the
// field's default as an example.
func (v *validator) duration(path, value string, min time.Duration, example string) time.Duration {
	d, err := time.ParseDuration(value)
	switch {
	case min == 0 && (err != nil || d <= 0):
		v.add(path, value, "must be a positive duration such as %q", example)
	case min > 0 && (err != nil || d < min):
		v.add(path, value, "must be a duration of at least %s such as %q", min, example)
	default:
		return d
	}
	return 0
}

// metaSync checks the module's section and returns its audit period.
func (v *validator) metaSync(m *MetaSync) (audit time.Duration) {
	const p = "modules.metaSync"
	if !m.Enable {
		return 0
	}
	audit = v.duration(p+".auditPeriod", m.AuditPeriod, time.Second, DefaultAuditPeriod)
	switch m.Source {
	case SourceMetaServer:
		u, err := url.Parse(m.MetaServer)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.add(p+".metaServer", m.MetaServer, "must be an http:// or https:// URL such as %q", DefaultMetaServer)
		} else if u.Scheme == "http" && m.TokenFile != "" {
			v.add(p+".tokenFile", m.TokenFile, "would send a bearer token over plain http; use an https:// metaServer")
		}
	case SourceKubeconfig:
		if m.Kubeconfig == "" {
			v.add(p+".kubeconfig", nil, "is required when source is %q", SourceKubeconfig)
		}
	case SourceInCluster:
	default:
		v.add(p+".source", m.Source, "must be one of %s, %s, %s", SourceMetaServer, SourceKubeconfig, SourceInCluster)
	}
	return audit
}

// ipam checks the module's section and returns its reconcile grace.
func (v *validator) ipam(m *IPAM) (grace time.Duration) {
	if !m.Enable {
		return 0
	}
	grace = v.duration("modules.ipam.reconcileGrace", m.ReconcileGrace, 0, DefaultReconcileGrace)
	if m.PoolFile != "" && !filepath.IsAbs(m.PoolFile) {
		v.add("modules.ipam.poolFile", m.PoolFile, "must be an absolute path")
	}
	v.socketPath("modules.ipam.socketPath", m.SocketPath)
	return grace
}

// socketPath checks a unix socket path.
func (v *validator) socketPath(path, value string) {
	switch {
	case !filepath.IsAbs(value):
		v.add(path, value, "must be an absolute path")
	case len(value) >= 108:
		v.add(path, value, "is longer than a unix socket path may be (107 bytes)")
	}
}

// edgeCNI checks the module's section and returns its mesh CIDRs.
func (v *validator) edgeCNI(m *EdgeCNI) (cloud, edge []netip.Prefix) {
	const p = "modules.edgeCNI"
	if !ValidLinkName(m.TunName) {
		v.add(p+".tunName", m.TunName, "is not a valid interface name (1-15 characters, no '/', ':' or spaces)")
	}

	cloud, edge = v.meshCIDRs(meshPath, &m.MeshCIDRConfig)
	anyV6 := slices.ContainsFunc(append(slices.Clone(cloud), edge...), func(p netip.Prefix) bool { return p.Addr().Is6() })

	if m.Enable && len(m.MeshCIDRConfig.CloudCIDR) == 0 && len(m.MeshCIDRConfig.EdgeCIDR) == 0 {
		v.add(p+".enable", true, "needs at least one of %s.cloudCIDR or %s.edgeCIDR", meshPath, meshPath)
	}

	minMTU := 576
	if anyV6 {
		minMTU = 1280 // IPv6 minimum link MTU (RFC 8200)
	}
	if m.MTU != 0 && (m.MTU < minMTU || m.MTU > 65535) {
		v.add(p+".mtu", m.MTU, "must be 0 (derive from the underlay) or between %d and 65535", minMTU)
	}
	return cloud, edge
}

// tunnel checks the module's section and returns its routable CIDRs and
// path idle timeout.
func (v *validator) tunnel(m *Tunnel) (routable []netip.Prefix, idle time.Duration) {
	const p = "modules.tunnel"
	if m.PathIdleTimeout != "" {
		idle = v.duration(p+".pathIdleTimeout", m.PathIdleTimeout, 10*time.Second, "5m")
	}
	if m.ListenPort < 1 || m.ListenPort > 65535 {
		v.add(p+".listenPort", m.ListenPort, "must be a port between 1 and 65535")
	}
	if m.Enable {
		for _, f := range []struct{ name, value string }{
			{"identityFile", m.IdentityFile}, {"caFile", m.CAFile}, {"certFile", m.CertFile}, {"keyFile", m.KeyFile},
		} {
			if !filepath.IsAbs(f.value) {
				v.add(p+"."+f.name, f.value, "must be an absolute path")
			}
		}
		if m.KubeEdgeCAFile != "" && !filepath.IsAbs(m.KubeEdgeCAFile) {
			v.add(p+".kubeEdgeCAFile", m.KubeEdgeCAFile, "must be an absolute path (or empty)")
		}
	}
	for i, s := range m.RoutableCIDRs {
		path := fmt.Sprintf("%s.routableCIDRs[%d]", p, i)
		pfx, err := netip.ParsePrefix(strings.TrimSpace(s))
		switch {
		case err != nil:
			v.add(path, s, "is not a CIDR (want e.g. 10.0.0.0/8 or 198.18.0.0/15)")
		case pfx != pfx.Masked():
			v.add(path, s, "has host bits set; did you mean %q?", pfx.Masked().String())
		default:
			routable = append(routable, pfx)
		}
	}
	names := map[string]int{}
	for i, r := range m.RelayNodes {
		rp := fmt.Sprintf("%s.relayNodes[%d]", p, i)
		switch {
		case r.NodeName == "":
			v.add(rp+".nodeName", nil, "is required")
		case !ValidNodeName(r.NodeName):
			v.add(rp+".nodeName", r.NodeName, "is not a valid node name (lower-case DNS-1123 subdomain)")
		default:
			if j, dup := names[r.NodeName]; dup {
				v.add(rp+".nodeName", r.NodeName, "repeats %s.relayNodes[%d]", p, j)
			}
			names[r.NodeName] = i
		}
		if len(r.AdvertiseAddress) == 0 {
			v.add(rp+".advertiseAddress", nil, "needs at least one address other nodes can dial")
		}
		for j, a := range r.AdvertiseAddress {
			if _, err := netip.ParseAddr(a); err == nil {
				continue
			}
			if !dns1123Subdomain.MatchString(strings.ToLower(a)) {
				v.add(fmt.Sprintf("%s.advertiseAddress[%d]", rp, j), a, "is neither an IP address nor a DNS name")
			}
		}
	}
	return routable, idle
}

// listenAddress checks an optional TCP listen address: empty, or
// host:port with a port from 1 to 65535.
func (v *validator) listenAddress(path, value string) {
	if value == "" {
		return
	}
	_, port, err := net.SplitHostPort(value)
	if err != nil {
		v.add(path, value, "must be host:port such as %q (empty: off)", "127.0.0.1:9091")
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		v.add(path, value, "has port %q; want 1-65535", port)
	}
}

// meshCIDRs checks the segment lists under base (each a CIDR, masked,
// disjoint, in one list only) and returns them parsed, a CIDR repeated
// within its list once.
func (v *validator) meshCIDRs(base string, mc *MeshCIDRConfig) (cloud, edge []netip.Prefix) {
	type entry struct {
		list, path string
		pfx        netip.Prefix
	}
	var all []entry
	check := func(name string, list []string) {
		for i, s := range list {
			path := fmt.Sprintf("%s.%s[%d]", base, name, i)
			pfx, err := netip.ParsePrefix(strings.TrimSpace(s))
			switch {
			case err != nil:
				v.add(path, s, "is not a CIDR (want e.g. 10.244.5.0/24 or fd00:244::/64)")
				continue
			case pfx != pfx.Masked():
				v.add(path, s, "has host bits set; did you mean %q?", pfx.Masked().String())
				continue
			}
			repeat := false
			for _, prev := range all {
				switch {
				case prev.pfx == pfx && prev.list == name:
					repeat = true // Normalize drops it with a warning
				case prev.pfx == pfx:
					v.add(path, s, "is also listed as %s: a segment is either cloud or edge", prev.path)
				case prev.pfx.Overlaps(pfx):
					v.add(path, s, "overlaps %s %q: segments must be disjoint", prev.path, prev.pfx.String())
				}
			}
			if !repeat {
				all = append(all, entry{name, path, pfx})
			}
		}
	}
	check("cloudCIDR", mc.CloudCIDR)
	check("edgeCIDR", mc.EdgeCIDR)
	for _, e := range all {
		if e.list == "cloudCIDR" {
			cloud = append(cloud, e.pfx)
		} else {
			edge = append(edge, e.pfx)
		}
	}
	return cloud, edge
}
