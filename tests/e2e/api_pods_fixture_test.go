package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/ipam"
	"github.com/edgelink/edgelink/tests/cluster"
	"github.com/edgelink/edgelink/tests/testutil"
)

// podsMesh is one cloud node and one edge node with edged, as the EdgeMesh
// guide lays them out: one cluster default SpiderIPPool pinned to no node,
// `edgelink controller` giving the edge node blocks of it inside its
// segment, the real flanneld on the cloud node with a cloud pod from
// Flannel's CNI plugin, and an agent on each node (the edge one with IPAM, which edged's pods get
// their addresses from through containerd -> edgelink-cni -> spiderpool).
type podsMesh struct {
	cp        *cluster.ControlPlane
	edge      *cluster.EdgeNode
	cloud     *cluster.CloudNode
	edgeAgent *testutil.Agent
	cloudAg   *testutil.Agent
	ipam      *ipamClient
	pool      string       // the cluster default pool
	poolRange netip.Prefix // what its spec.ips range lies in
	segment   netip.Prefix // the edge node's segment
	cloudPod  string       // cloud pod namespace
	cloudIP   netip.Addr
}

// newPodsMesh builds it with names prefixed by prefix and addresses from
// 10.<octet>.0.0/16: cloud pods 10.<octet>.1.0/24, the edge segment
// 10.<octet>.5.0/24.
func newPodsMesh(t *testing.T, prefix string, octet byte) *podsMesh {
	t.Helper()
	testutil.RequireRoot(t)
	cp := cluster.Shared(t)
	m := &podsMesh{cp: cp, pool: prefix + "-default-v4"}
	net16 := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, octet, 0, 0}), 16)
	// Flannel's network, the cloud node's pod CIDR its lease inside it
	cloudCIDR := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, octet, 0, 0}), 22)
	cloudPodCIDR := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, octet, 1, 0}), 24)
	m.segment = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, octet, 5, 0}), 24)
	m.poolRange = netip.PrefixFrom(netip.AddrFrom4([4]byte{10, octet, 0, 0}), 19) // ips 10.x.0.0-10.x.20.200
	createPool(t, cp, m.pool, map[string]any{"subnet": net16.String(),
		"ips": []any{fmt.Sprintf("10.%d.0.0-10.%d.20.200", octet, octet)}, "default": true})
	testutil.StartController(t, cp.Kubeconfig, fmt.Sprintf(`
meshCIDRConfig: {cloudCIDR: [%s], edgeCIDR: [%s]}
blockSize: 28
minFree: 4
resyncPeriod: 1s
leaderElection: {enable: true, namespace: kube-system, name: %s-controller, leaseDuration: 4s, renewDeadline: 3s, retryPeriod: 500ms}
`, cloudCIDR, m.segment, prefix))

	m.cloud = cp.AddCloudNode(t, prefix+"-cloud", cloudPodCIDR)
	sock := filepath.Join(t.TempDir(), "ipam.sock")
	m.edge = cp.AddEdgeNodeWithPods(t, prefix+"-edge", cluster.PodsOptions{IPAMSocket: sock})
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, ipam.AnnoSegment, m.segment)
	if _, err := cp.Client.CoreV1().Nodes().Patch(context.Background(), m.edge.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a block for the edge node", 60*time.Second, func() error {
		claims, _ := blocksOf(t, cp, m.pool)
		if len(claims.Of(m.edge.Name)) == 0 {
			return fmt.Errorf("no block for %s yet: %v", m.edge.Name, claims)
		}
		return nil
	})

	caDir := filepath.Join(t.TempDir(), "ca")
	if out, err := testutil.EdgelinkCmd(t, "ca", "init", "--dir", caDir).CombinedOutput(); err != nil {
		t.Fatalf("edgelink ca init: %v\n%s", err, out)
	}
	relays := []v1.RelayNode{{NodeName: m.cloud.Name, AdvertiseAddress: []string{m.cloud.IP.String()}}}
	cloudCIDRs, edgeCIDRs := []string{cloudCIDR.String()}, []string{m.segment.String()}

	cc := v1.NewDefault()
	cc.NodeName, cc.DataDir = m.cloud.Name, t.TempDir()
	cm := &cc.Modules
	cm.MetaSync.Source, cm.MetaSync.Kubeconfig = v1.SourceKubeconfig, cp.Kubeconfig
	cm.IPAM.Enable, cm.EdgeCNI.Enable = false, true
	cm.EdgeCNI.MeshCIDRConfig = v1.MeshCIDRConfig{CloudCIDR: cloudCIDRs, EdgeCIDR: edgeCIDRs}
	cm.Tunnel.IdentityFile = filepath.Join(cc.DataDir, "tunnel", "identity.key")
	cm.Tunnel.RoutableCIDRs = []string{"198.18.0.0/15"}
	cm.Tunnel.RelayNodes = relays
	testutil.IssueMember(t, &cm.Tunnel, cc.NodeName, caDir, caDir, filepath.Join(t.TempDir(), "certs"))
	m.cloudAg = testutil.NewAgent(t, cc, m.cloud.NetNS)

	ec := agentConfig(t, m.edge, relays, cloudCIDRs, edgeCIDRs)
	ec.Modules.IPAM.Enable, ec.Modules.IPAM.SocketPath = true, sock
	testutil.IssueMember(t, &ec.Modules.Tunnel, ec.NodeName, caDir, caDir, filepath.Join(t.TempDir(), "certs"))
	m.edgeAgent = testutil.NewAgent(t, ec, m.edge.NetNS)
	m.ipam = newIPAMClient(sock)
	m.cloudAg.Start("Data plane up")
	m.edgeAgent.Start("Data plane up")

	fl := startFlannel(t, cp, m.cloud, cloudCIDR)
	podNS := m.cloud.NetNS + "-p"
	m.cloudPod, m.cloudIP = podNS, cniPod(t, cp, fl.cni, fl.list, m.cloud.Name, m.cloud.NetNSPath, podNS, "default", prefix+"-cp")
	return m
}

// podServer is a podserver pod for node (nodeName set) or, with nodeName
// "", for the scheduler (nodeSelector on the node's hostname label).
func podServer(ns, name, node string, selector bool) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{"app": name}}, Spec: cluster.PodServerSpec()}
	if selector {
		p.Spec.NodeSelector = map[string]string{"kubernetes.io/hostname": node}
	} else {
		p.Spec.NodeName = node
	}
	return p
}

// fetch GETs the podserver at ip from namespace podNS; it answers with
// the address the pod has.
func fetch(podNS string, ip netip.Addr, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	url := "http://" + netip.AddrPortFrom(ip, cluster.PodServerPort).String() + "/"
	code, body, err := cluster.HTTPGet(ctx, filepath.Join("/var/run/netns", podNS), url)
	if err != nil {
		return "", err
	}
	if code != 200 {
		return "", fmt.Errorf("GET %s: HTTP %d: %s", url, code, body)
	}
	return strings.TrimSpace(string(body)), nil
}

// leaseOf is the agent's lease of pod uid ("" address when none).
func (m *podsMesh) leaseOf(t *testing.T, uid types.UID) (netip.Addr, bool) {
	t.Helper()
	code, body, err := m.ipam.do("GET", "/v1/edgelink/leases", nil)
	if err != nil || code != 200 {
		t.Fatalf("leases: %d %s %v", code, body, err)
	}
	var leases []ipam.Lease
	if err := json.Unmarshal(body, &leases); err != nil {
		t.Fatal(err)
	}
	for _, l := range leases {
		if l.PodUID == string(uid) {
			for _, a := range l.IPs {
				if a.Address.Addr().Is4() {
					return a.Address.Addr(), true
				}
			}
			return netip.Addr{}, true
		}
	}
	return netip.Addr{}, false
}
