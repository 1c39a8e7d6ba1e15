// Package kubeclient maps the agent's metadata source (modules.metaSync:
// EdgeCore's metaServer, a kubeconfig, or the in-cluster ServiceAccount) to
// a client-go *rest.Config. The metadata module reads through it, and the
// tunnel's enrollment asks the kube-apiserver for certificates through the
// same source; modules do not import each other, so the mapping lives here.
package kubeclient

import (
	"fmt"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
)

// RESTConfig is how to reach the source m names. Callers set their own
// User-Agent and rate limits, and wrap the error with what they were doing.
func RESTConfig(m v1.MetaSync) (*rest.Config, error) {
	switch m.Source {
	case v1.SourceMetaServer:
		// The metaServer speaks JSON only and serves no discovery.
		cfg := &rest.Config{Host: m.MetaServer}
		cfg.ContentType, cfg.AcceptContentTypes = "application/json", "application/json"
		cfg.TLSClientConfig.CAFile = m.CAFile
		cfg.BearerTokenFile = m.TokenFile
		return cfg, nil
	case v1.SourceKubeconfig:
		cfg, err := clientcmd.BuildConfigFromFlags("", m.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", m.Kubeconfig, err)
		}
		return cfg, nil
	case v1.SourceInCluster:
		cfg, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config: %w", err)
		}
		return cfg, nil
	default:
		return nil, fmt.Errorf("unknown metadata source %q", m.Source)
	}
}
