package e2e

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/ipam"
	"github.com/edgelink/edgelink/pkg/metadata"
	"github.com/edgelink/edgelink/tests/cluster"
	"github.com/edgelink/edgelink/tests/testutil"
)

// KubeEdge's requireAuthorization on cloudcore and edgecore: the agent
// lists and watches pods, nodes and SpiderIPPools through the HTTPS
// metaServer with a ServiceAccount token from the TokenRequest API, bound
// by RBAC to get/list/watch. With a bad or a missing token file the agent
// reports (edgelink status: /v1/metasync) an error naming the metaServer
// and the token file, and keeps the picture it had from disk instead of
// publishing an empty one; a missing token file stops the agent with an
// error naming both.
func TestMetasyncAuthorizedMetaServer(t *testing.T) {
	cp := cluster.Start(t, cluster.Options{RequireAuthorization: true})
	e := cp.AddEdgeNode(t, "auth-1")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The agent's ServiceAccount, allowed to read what metaSync reads.
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods", "nodes", "namespaces"}, Verbs: []string{"get", "list", "watch"}},
		{APIGroups: []string{"spiderpool.spidernet.io"}, Resources: []string{"spiderippools"}, Verbs: []string{"get", "list", "watch"}},
	}
	if _, err := cp.Client.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "edgelink-metaserver"}, Rules: rules}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Client.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "edgelink-metaserver"},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "edgelink-metaserver"},
		Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: "edgelink", Namespace: "kube-system"}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	token, err := cp.ServiceAccountToken(ctx, "kube-system", "edgelink")
	if err != nil {
		t.Fatal(err)
	}
	// EdgeCore knows a ServiceAccount (and its RBAC) only from the
	// ServiceAccountAccess objects cloudcore's policy controller sends to
	// nodes that run a pod using it: as the agent's DaemonSet pod does.
	zero, no := int64(0), false
	agentPod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "edgelink-agent-auth-1"},
		Spec: corev1.PodSpec{NodeName: e.Name, ServiceAccountName: "edgelink", AutomountServiceAccountToken: &no, TerminationGracePeriodSeconds: &zero,
			Containers: []corev1.Container{{Name: "agent", Image: "registry.invalid/edgelink/dummy:0"}}},
	}
	if _, err := cp.Client.CoreV1().Pods("kube-system").Create(ctx, agentPod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cp.Client.CoreV1().Pods("kube-system").Delete(context.Background(), agentPod.Name, metav1.DeleteOptions{})
	})
	dir := t.TempDir()
	goodToken := filepath.Join(dir, "token")
	if err := os.WriteFile(goodToken, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}

	cp.CreatePod(t, "default", "auth-web", e.Name, nil, nil)
	pool := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool",
		"metadata": map[string]any{"name": "auth-pool"},
		"spec":     map[string]any{"subnet": "10.244.0.0/16", "ips": []any{"10.244.5.2-10.244.5.9"}, "nodeName": []any{e.Name}},
	}}
	if _, err := cp.Dynamic.Resource(ipam.PoolGVR).Create(ctx, pool, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cp.Dynamic.Resource(ipam.PoolGVR).Delete(context.Background(), "auth-pool", metav1.DeleteOptions{})
	})

	dataDir := filepath.Join(dir, "data")
	agent := func(tokenFile string) (*testutil.Agent, func() metadata.Status) {
		c := v1.NewDefault()
		c.NodeName, c.DataDir = e.Name, dataDir
		c.Modules.MetaSync.MetaServer, c.Modules.MetaSync.CAFile, c.Modules.MetaSync.TokenFile = e.MetaServer, e.MetaServerCA(), tokenFile
		c.Modules.Tunnel.Enable, c.Modules.IPAM.Enable, c.Modules.EdgeCNI.Enable = false, false, false
		a := testutil.NewAgent(t, c, e.NetNS)
		a.Start("")
		return a, func() metadata.Status {
			var st metadata.Status
			if err := a.GetJSON("/v1/metasync", &st); err != nil {
				return metadata.Status{LastError: "status socket: " + err.Error()}
			}
			return st
		}
	}

	// A good token: list, then watch.
	t0 := time.Now()
	a, status := agent(goodToken)
	eventually(t, "sync through the authorized metaServer", 60*time.Second, func() error {
		if st := status(); !st.Synced || st.Pods < 1 || st.Nodes < 1 || st.Pools < 1 {
			return fmt.Errorf("%+v", st)
		}
		return nil
	})
	t.Logf("synced through https + token in %v", time.Since(t0).Round(time.Millisecond))
	before := status()
	cp.CreatePod(t, "default", "auth-web-2", e.Name, nil, nil)
	eventually(t, "a pod created after the sync (watch)", 30*time.Second, func() error {
		if st := status(); st.Pods != before.Pods+1 {
			return fmt.Errorf("pods %d, want %d", st.Pods, before.Pods+1)
		}
		return nil
	})
	good := status()
	a.Stop() // saves the snapshot

	// A bad token and a missing token file: a clear error, the picture from disk kept.
	badToken := filepath.Join(dir, "bad-token")
	if err := os.WriteFile(badToken, []byte("not-a-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Run("bad token", func(t *testing.T) {
		a, status := agent(badToken)
		defer a.Stop()
		want := "rejected the token in modules.metaSync.tokenFile " + badToken
		eventually(t, "the error in /v1/metasync", 30*time.Second, func() error {
			if st := status(); !strings.Contains(st.LastError, want) || !strings.Contains(st.LastError, e.MetaServer) {
				return fmt.Errorf("lastError %q does not name %q and %s", st.LastError, want, e.MetaServer)
			}
			return nil
		})
		time.Sleep(2 * time.Second) // a publish of an empty picture would show by now
		st := status()
		if st.Synced || st.Connected || !st.FromDisk || st.Pods != good.Pods || st.Nodes != good.Nodes || st.Pools != good.Pools {
			t.Errorf("status %+v; want the snapshot's picture (%d pods, %d nodes, %d pools), not synced, not connected", st, good.Pods, good.Nodes, good.Pools)
		}
		t.Logf("lastError: %s", st.LastError)
	})

	// A token file that is not there: the agent stops (its host stops when
	// a module does; systemd or the kubelet restarts it) saying which file
	// and which metaServer, and the snapshot on disk is left as it was.
	t.Run("missing token file", func(t *testing.T) {
		snapPath := filepath.Join(dataDir, "metasync", "snapshot.json")
		snap, err := os.ReadFile(snapPath)
		if err != nil {
			t.Fatal(err)
		}
		missing := filepath.Join(dir, "nope")
		c := v1.NewDefault()
		c.NodeName, c.DataDir = e.Name, dataDir
		c.Modules.MetaSync.MetaServer, c.Modules.MetaSync.CAFile, c.Modules.MetaSync.TokenFile = e.MetaServer, e.MetaServerCA(), missing
		c.Modules.Tunnel.Enable, c.Modules.IPAM.Enable, c.Modules.EdgeCNI.Enable = false, false, false
		a := testutil.NewAgent(t, c, e.NetNS)
		if err := a.Run(30 * time.Second); err == nil {
			t.Fatal("the agent ran on without its token file")
		}
		if log := a.Log(); !strings.Contains(log, "failed to read token file") || !strings.Contains(log, missing) || !strings.Contains(log, "metaServer "+e.MetaServer) {
			t.Errorf("the agent's log does not name the token file and the metaServer:\n%s", log)
		}
		if after, err := os.ReadFile(snapPath); err != nil || !bytes.Equal(after, snap) {
			t.Errorf("snapshot changed (%v)", err)
		}
	})
}
