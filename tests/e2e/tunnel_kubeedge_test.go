package e2e

import (
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/p2p"
	"github.com/edgelink/edgelink/tests/cluster"
	"github.com/edgelink/edgelink/tests/testutil"
)

// KubeEdge's CA as the cluster CA: two edge nodes prove membership with
// the certificates cloudcore issued to their edgecores (CN
// "system:node:<name>", no EdgeLink extensions), one of them a relay, and
// connect directly. The agents also read their edgecore's metaServer, so
// the peers they keep are the nodes the cloud knows. Needs root.
func TestTunnelWithKubeEdgeCertificates(t *testing.T) {
	cp := cluster.Shared(t)
	e1, e2 := cp.AddEdgeNode(t, "tun-edge-1"), cp.AddEdgeNode(t, "tun-edge-2")
	relays := []v1.RelayNode{{NodeName: e1.Name, AdvertiseAddress: []string{e1.IP.String()}}}
	agents := map[string]*testutil.Agent{}
	for _, e := range []*cluster.EdgeNode{e1, e2} {
		c := v1.NewDefault()
		c.NodeName, c.DataDir = e.Name, t.TempDir()
		c.Modules.MetaSync.MetaServer = e.MetaServer
		c.Modules.IPAM.Enable = false
		tn := &c.Modules.Tunnel
		tn.IdentityFile = filepath.Join(c.DataDir, "tunnel", "identity.key")
		tn.CAFile = filepath.Join(e.Dir, "ca", "rootCA.crt")
		tn.CertFile, tn.KeyFile = filepath.Join(e.Dir, "certs", "server.crt"), filepath.Join(e.Dir, "certs", "server.key")
		tn.RoutableCIDRs = []string{"198.18.0.0/15"}
		tn.RelayNodes = relays
		agents[e.Name] = testutil.NewAgent(t, c, e.NetNS)
		agents[e.Name].Start("Tunnel up")
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok := true
		for self, other := range map[string]string{e1.Name: e2.Name, e2.Name: e1.Name} {
			var peers []p2p.PeerStatus
			_ = agents[self].GetJSON("/v1/tunnel/peers", &peers)
			found := false
			for _, p := range peers {
				found = found || (p.Node == other && (p.Path == p2p.PathDirectQUIC || p.Path == p2p.PathDirectTCP))
			}
			ok = ok && found
			if !found && time.Now().After(deadline) {
				t.Fatalf("%s has no direct path to %s: %+v\n%s", self, other, peers, agents[self].Log())
			}
		}
		if ok {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
}
