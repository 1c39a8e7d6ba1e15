package nodeinstall

import (
	"fmt"
	"net"
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
)

// Where keadm join puts EdgeCore's config, and what EdgeCore's metaServer
// needs from a client with the requireAuthorization feature gate on.
const (
	DefaultEdgeCoreConfig = "/etc/kubeedge/config/edgecore.yaml"
	// MetaServerCAFile is where EdgeCore writes the kube-apiserver's CA it
	// fetches through cloudcore before it serves HTTPS (KubeEdge v1.20
	// metaserver/certificate.CertificatesDir + "/ca.crt"); its serving
	// certificate comes from a kubernetes.io/kubelet-serving CSR, which
	// that CA's signer signs.
	MetaServerCAFile = "/etc/kubeedge/pki/metaserver/ca.crt"
	// DefaultMetaServerTokenFile is where install points the agent for its
	// bearer token (a ServiceAccount token: kubectl create token).
	DefaultMetaServerTokenFile = "/etc/edgelink/metaserver.token"
	// FeatureRequireAuthorization is KubeEdge's feature gate that turns the
	// metaServer into HTTPS with bearer-token authentication and RBAC.
	FeatureRequireAuthorization = "requireAuthorization"
)

// EdgeCore is what the agent needs from EdgeCore's config file.
type EdgeCore struct {
	Path string // the file, as the node sees it
	// NodeName is modules.edged.hostnameOverride (keadm join
	// --edgenode-name); empty when the file has none.
	NodeName string
	// MetaServerEnabled and MetaServerAddr are
	// modules.metaManager.metaServer.enable and .server (host:port).
	MetaServerEnabled bool
	MetaServerAddr    string
	// RequireAuthorization is featureGates.requireAuthorization: the
	// metaServer serves HTTPS and wants a bearer token.
	RequireAuthorization bool
}

// edgeCoreFile is the part of EdgeCore's v1alpha2 config (as keadm join
// writes it: sigs.k8s.io/yaml of the whole EdgeCoreConfig) this package
// reads; everything else is ignored.
type edgeCoreFile struct {
	Kind         string          `json:"kind"`
	FeatureGates map[string]bool `json:"featureGates"`
	Modules      *struct {
		Edged *struct {
			HostnameOverride string `json:"hostnameOverride"`
		} `json:"edged"`
		MetaManager *struct {
			MetaServer *struct {
				Enable bool   `json:"enable"`
				Server string `json:"server"`
			} `json:"metaServer"`
		} `json:"metaManager"`
	} `json:"modules"`
}

// ParseEdgeCore reads EdgeCore's config; path names it in errors.
// A metaServer section left out is KubeEdge's default: disabled, on
// 127.0.0.1:10550.
func ParseEdgeCore(path string, data []byte) (*EdgeCore, error) {
	var f edgeCoreFile
	if err := yaml.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("EdgeCore config %s: %w", path, err)
	}
	if f.Kind != "EdgeCore" {
		return nil, fmt.Errorf("EdgeCore config %s: kind is %q, want EdgeCore (the file keadm join writes)", path, f.Kind)
	}
	e := &EdgeCore{Path: path, MetaServerAddr: "127.0.0.1:10550", RequireAuthorization: f.FeatureGates[FeatureRequireAuthorization]}
	if m := f.Modules; m != nil {
		if m.Edged != nil {
			e.NodeName = m.Edged.HostnameOverride
		}
		if m.MetaManager != nil && m.MetaManager.MetaServer != nil {
			e.MetaServerEnabled = m.MetaManager.MetaServer.Enable
			if s := m.MetaManager.MetaServer.Server; s != "" {
				e.MetaServerAddr = s
			}
		}
	}
	if _, _, err := net.SplitHostPort(e.MetaServerAddr); err != nil {
		return nil, fmt.Errorf("EdgeCore config %s: modules.metaManager.metaServer.server %q: want HOST:PORT (%v)", path, e.MetaServerAddr, err)
	}
	return e, nil
}

// ReadEdgeCore reads EdgeCore's config at node path p under root.
func ReadEdgeCore(root, p string) (*EdgeCore, error) {
	data, err := os.ReadFile(filepath.Join(root, p))
	if err != nil {
		return nil, err
	}
	return ParseEdgeCore(p, data)
}

// CheckMetaServer says what to change when the agent cannot read
// EdgeCore's metaServer: it is its only source of pods, nodes and pools on
// an edge node.
func (e *EdgeCore) CheckMetaServer() error {
	if e.MetaServerEnabled {
		return nil
	}
	return fmt.Errorf("EdgeCore config %s: modules.metaManager.metaServer.enable is false, and the agent reads pods, nodes and SpiderIPPools from EdgeCore's metaServer: "+
		"set it to true in %s and run systemctl restart edgecore (keadm join --set modules.metaManager.metaServer.enable=true writes it so), then run edgelink install again", e.Path, e.Path)
}

// MetaServerURL is the address the agent dials: https with
// requireAuthorization, else http; an unspecified listen address
// (0.0.0.0, ::) is dialled on loopback.
func (e *EdgeCore) MetaServerURL() string {
	host, port, _ := net.SplitHostPort(e.MetaServerAddr)
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
	}
	scheme := "http"
	if e.RequireAuthorization {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}

// Apply points c's metaSync at this EdgeCore's metaServer (with its CA and
// tokenFile, unless c has them, when it requires authorization) and takes
// the node name from it when c has none.
func (e *EdgeCore) Apply(c *v1.AgentConfig, tokenFile string) {
	if c.NodeName == "" {
		c.NodeName = e.NodeName
	}
	m := &c.Modules.MetaSync
	m.MetaServer = e.MetaServerURL()
	if e.RequireAuthorization {
		if m.CAFile == "" {
			m.CAFile = MetaServerCAFile
		}
		if m.TokenFile == "" {
			m.TokenFile = tokenFile
		}
	} else {
		m.CAFile, m.TokenFile = "", ""
	}
}

// Mismatches lists where config c, written by hand, disagrees with this
// EdgeCore: each would keep the agent from reading the metaServer.
func (e *EdgeCore) Mismatches(c *v1.AgentConfig) []string {
	var out []string
	m := c.Modules.MetaSync
	if m.Source != v1.SourceMetaServer {
		return nil
	}
	if want := e.MetaServerURL(); m.MetaServer != want {
		out = append(out, fmt.Sprintf("modules.metaSync.metaServer is %s, but EdgeCore (%s) serves %s", m.MetaServer, e.Path, want))
	}
	if e.RequireAuthorization && m.TokenFile == "" {
		out = append(out, fmt.Sprintf("EdgeCore (%s) has featureGates.requireAuthorization: the metaServer wants a bearer token, but modules.metaSync.tokenFile is empty", e.Path))
	}
	if e.NodeName != "" && c.NodeName != e.NodeName {
		out = append(out, fmt.Sprintf("nodeName is %s, but EdgeCore (%s) is node %s (modules.edged.hostnameOverride)", c.NodeName, e.Path, e.NodeName))
	}
	return out
}
