package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/ipam"
	"github.com/edgelink/edgelink/tests/cluster"
	"github.com/edgelink/edgelink/tests/testutil"
)

func createPool(t *testing.T, cp *cluster.ControlPlane, name string, spec map[string]any) {
	t.Helper()
	pool := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool",
		"metadata": map[string]any{"name": name}, "spec": spec,
	}}
	if _, err := cp.Dynamic.Resource(ipam.PoolGVR).Create(context.Background(), pool, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cp.Dynamic.Resource(ipam.PoolGVR).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
}

func (c *ipamClient) leaseUIDs(t *testing.T) map[string]bool {
	t.Helper()
	code, body, err := c.do("GET", "/v1/edgelink/leases", nil)
	if err != nil || code != 200 {
		t.Fatalf("leases: %d %s %v", code, body, err)
	}
	var leases []ipam.Lease
	if err := json.Unmarshal(body, &leases); err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, l := range leases {
		out[l.PodUID] = true
	}
	return out
}

// startEdgeIPAM runs an agent with metaSync (from e's metaServer) and
// ipam, no tunnel, inside e's namespace, edited by edit when not nil, and
// returns it with a client of its IPAM socket.
func startEdgeIPAM(t *testing.T, e *cluster.EdgeNode, edit func(*v1.AgentConfig)) (*testutil.Agent, *ipamClient) {
	t.Helper()
	dir := t.TempDir()
	c := v1.NewDefault()
	c.NodeName, c.DataDir = e.Name, filepath.Join(dir, "data")
	c.Modules.MetaSync.MetaServer = e.MetaServer
	c.Modules.Tunnel.Enable = false
	c.Modules.IPAM.SocketPath = filepath.Join(dir, "ipam.sock")
	if edit != nil {
		edit(c)
	}
	agent := testutil.NewAgent(t, c, e.NetNS)
	agent.Start("Metadata synced")
	return agent, newIPAMClient(c.Modules.IPAM.SocketPath)
}

// eventually retries f until it succeeds or the timeout passes.
func eventually(t *testing.T, what string, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still failing after %s: %v", what, timeout, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// The agent on an edge node (inside its netns, reading its edgecore's
// metaServer) allocates from SpiderIPPools and pod annotations it learns
// through the cloud channel; restarted while cloudcore is down it still
// allocates; a pod deleted in the cloud while the node was offline frees
// its address once the node hears of it, and live pods keep theirs.
func TestIPAMFromCloudChannel(t *testing.T) {
	testutil.RequireRoot(t)
	cp := cluster.Shared(t)
	e := cp.AddEdgeNode(t, "ipam-edge")
	createPool(t, cp, "ipam-edge-v4", map[string]any{"subnet": "10.244.0.0/16", "ips": []any{"10.244.40.2-10.244.40.200"},
		"gateway": "10.244.40.1", "nodeName": []any{e.Name}, "default": true})
	createPool(t, cp, "ipam-edge-special", map[string]any{"subnet": "10.244.0.0/16", "ips": []any{"10.244.41.2-10.244.41.9"},
		"nodeName": []any{e.Name}})

	agent, client := startEdgeIPAM(t, e, func(c *v1.AgentConfig) { c.Modules.IPAM.ReconcileGrace = "1s" })

	doomed := cp.CreatePod(t, "default", "ipam-doomed", e.Name, nil, nil)
	survivor := cp.CreatePod(t, "default", "ipam-survivor", e.Name, nil, nil)
	special := cp.CreatePod(t, "default", "ipam-special", e.Name, nil,
		map[string]string{"ipam.spidernet.io/ippool": `{"ipv4":["ipam-edge-special"]}`})
	var got string
	eventually(t, "allocation from the cloud's pool", 30*time.Second, func() (err error) {
		got, err = client.allocPod("default", "ipam-doomed", string(doomed.UID))
		return err
	})
	if !strings.HasPrefix(got, "10.244.40.") || !strings.HasSuffix(got, "@ipam-edge-v4") {
		t.Errorf("doomed pod got %s, want an address of ipam-edge-v4", got)
	}
	eventually(t, "allocation by pod annotation", 30*time.Second, func() error {
		got, err := client.allocPod("default", "ipam-special", string(special.UID))
		if err == nil && !strings.HasSuffix(got, "@ipam-edge-special") {
			return fmt.Errorf("got %s, want the annotated pool ipam-edge-special", got)
		}
		return err
	})

	// Cloud away; the agent restarts; pods still get addresses.
	cp.StopCloudcore()
	t.Cleanup(func() {
		if !cp.CloudcoreRunning() {
			_ = cp.StartCloudcore()
		}
	})
	agent.Stop()
	agent.Start("IPAM serving")
	if ip, err := client.allocPod("default", "ipam-survivor", string(survivor.UID)); err != nil || !strings.HasSuffix(ip, "@ipam-edge-v4") {
		t.Fatalf("offline allocation after restart: %s %v", ip, err)
	}
	// Deleted in the cloud while the node cannot hear it: the lease stays.
	deletePod(t, cp, "default", "ipam-doomed")
	time.Sleep(3 * time.Second)
	if !client.leaseUIDs(t)[string(doomed.UID)] {
		t.Fatal("lease of a pod released before the node could know it was deleted")
	}

	if err := cp.StartCloudcore(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			var lines []string
			for _, l := range strings.Split(agent.Log(), "\n") {
				if strings.Contains(l, "metasync") || strings.Contains(l, "Metadata") || strings.Contains(l, "Released") || strings.Contains(l, "metadata") {
					lines = append(lines, l)
				}
			}
			t.Logf("agent log (metadata lines):\n%s", strings.Join(lines, "\n"))
		}
	})
	eventually(t, "release of the pod deleted while offline", 150*time.Second, func() error {
		if client.leaseUIDs(t)[string(doomed.UID)] {
			return fmt.Errorf("lease of deleted pod ipam-doomed still held")
		}
		return nil
	})
	leases := client.leaseUIDs(t)
	if !leases[string(survivor.UID)] || !leases[string(special.UID)] {
		t.Errorf("live pods lost their leases: %v", leases)
	}
}
