package kubeclient

import (
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/tests/unittest"
)

// Each source maps to what reaches it: the metaServer with JSON only and
// its CA and token when set, a kubeconfig's server; errors name the
// kubeconfig, the unknown source, the missing in-cluster setup.
func TestRESTConfig(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := unittest.Kubeconfig(t, "https://10.0.0.1:6443")

	ms, err := RESTConfig(v1.MetaSync{Source: v1.SourceMetaServer, MetaServer: "https://127.0.0.1:10550",
		CAFile: "/etc/kubeedge/ca/rootCA.crt", TokenFile: "/var/run/token"})
	if err != nil || ms.Host != "https://127.0.0.1:10550" || ms.ContentType != "application/json" ||
		ms.AcceptContentTypes != "application/json" || ms.TLSClientConfig.CAFile != "/etc/kubeedge/ca/rootCA.crt" ||
		ms.BearerTokenFile != "/var/run/token" {
		t.Errorf("metaServer: %+v, %v", ms, err)
	}
	kc, err := RESTConfig(v1.MetaSync{Source: v1.SourceKubeconfig, Kubeconfig: kubeconfig})
	if err != nil || kc.Host != "https://10.0.0.1:6443" || kc.BearerToken != "t" {
		t.Errorf("kubeconfig: %+v, %v", kc, err)
	}
	for _, tc := range []struct {
		name string
		m    v1.MetaSync
		want string
	}{
		{"missing kubeconfig", v1.MetaSync{Source: v1.SourceKubeconfig, Kubeconfig: filepath.Join(dir, "nope")}, "kubeconfig " + filepath.Join(dir, "nope") + ":"},
		{"unknown source", v1.MetaSync{Source: "metaserver"}, `unknown metadata source "metaserver"`},
		{"in-cluster outside a cluster", v1.MetaSync{Source: v1.SourceInCluster}, "in-cluster config:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if cfg, err := RESTConfig(tc.m); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("RESTConfig = %v, %v; want an error containing %q", cfg, err, tc.want)
			}
		})
	}
}
