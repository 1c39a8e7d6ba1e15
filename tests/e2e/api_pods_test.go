package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/edgelink/edgelink/tests/cluster"
)

// A pod created through the kube-apiserver for an edge node runs there:
// edgecore's edged starts it on the node's containerd 1.6 + runc, which
// calls edgelink-cni (the conflist `edgelink cni install` writes), which
// calls the stock spiderpool binary, which asks the agent's IPAM. The
// API server's status.podIP is the node's address from its block of the
// cluster default pool, and the agent's lease table holds it. A cloud pod
// GETs the pod's HTTP port by pod IP (as a Prometheus scrape does) and the
// two ping each other both ways. The container killed restarts with the
// same address; edgecore and the agent restarted while the pod runs lose
// nothing. Deleting the pod through the API releases its lease. Needs root,
// containerd and runc.
func TestAPIPodOnEdged(t *testing.T) {
	m := newPodsMesh(t, "apip", 249)
	cp, e := m.cp, m.edge
	ctd := e.Containerd()

	t0 := time.Now()
	pod := cp.RunPod(t, podServer("default", "apip-web", e.Name, false), 60*time.Second)
	t.Logf("pod %s Running with podIP %s %v after create", pod.Name, pod.Status.PodIP, time.Since(t0).Round(time.Millisecond))
	ip, err := netip.ParseAddr(pod.Status.PodIP)
	if err != nil {
		t.Fatalf("status.podIP %q: %v", pod.Status.PodIP, err)
	}
	cid := cluster.ContainerID(pod, "podserver")

	t.Run("podIP is the node's address from the cluster pool", func(t *testing.T) {
		if !m.poolRange.Contains(ip) || !m.segment.Contains(ip) {
			t.Errorf("podIP %s: want an address of pool %s inside the node's segment %s", ip, m.pool, m.segment)
		}
		claims, _ := blocksOf(t, cp, m.pool)
		inBlock := false
		for _, b := range claims.Of(e.Name) {
			inBlock = inBlock || b.Contains(ip)
		}
		if !inBlock {
			t.Errorf("podIP %s is in none of %s's blocks %v", ip, e.Name, claims.Of(e.Name))
		}
		if got, ok := m.leaseOf(t, pod.UID); !ok || got != ip {
			t.Errorf("agent's lease of pod %s: %v %v, want %s", pod.UID, got, ok, ip)
		}
		if pod.Status.HostIP != e.IP.String() {
			t.Errorf("hostIP %s, want the node's %s", pod.Status.HostIP, e.IP)
		}
	})

	// reachable checks HTTP from the cloud pod (the body is the address
	// the edge pod has) and ICMP both ways; edge -> cloud from inside the
	// container's network namespace.
	reachable := func(t *testing.T, within time.Duration) {
		t.Helper()
		took := waitFor(t, within, "cloud pod GETs the edge pod", func() error {
			body, err := fetch(m.cloudPod, ip, 3*time.Second)
			if err == nil && body != ip.String() {
				err = fmt.Errorf("the pod at %s says it has %s", ip, body)
			}
			return err
		})
		t.Logf("HTTP cloud pod -> edge pod %s ok (%v)", ip, took.Round(time.Millisecond))
		if out, err := execIn(m.cloudPod, "ping", "-c2", "-i0.2", "-W2", ip.String()); err != nil {
			t.Errorf("cloud pod: ping %s: %v\n%s", ip, err, out)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		p, err := cp.Client.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pid, err := ctd.TaskPID(ctx, cluster.ContainerID(p, "podserver"))
		if err != nil {
			t.Fatal(err)
		}
		if out, err := cluster.NSEnterNet(ctx, pid, "ping", "-c2", "-i0.2", "-W2", m.cloudIP.String()); err != nil {
			t.Errorf("edge pod (pid %d): ping %s: %v\n%s", pid, m.cloudIP, err, out)
		}
	}

	t.Run("cloud pod and edge pod by pod IP, HTTP and ICMP both ways", func(t *testing.T) {
		reachable(t, 60*time.Second)
	})

	// same waits until the pod is Ready again with the same podIP (and a
	// lease of that address) and returns it.
	same := func(t *testing.T, what string) *corev1.Pod {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		p, err := cp.WaitPodRunning(ctx, "default", pod.Name)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if p.Status.PodIP != ip.String() {
			t.Errorf("%s: podIP %s, was %s", what, p.Status.PodIP, ip)
		}
		if got, ok := m.leaseOf(t, pod.UID); !ok || got != ip {
			t.Errorf("%s: agent's lease %v %v, want %s", what, got, ok, ip)
		}
		return p
	}

	t.Run("container killed restarts with the same address", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		if err := ctd.KillTask(ctx, cid); err != nil {
			t.Fatal(err)
		}
		t0 := time.Now()
		var p *corev1.Pod
		waitFor(t, 60*time.Second, "the container restarts", func() error {
			var err error
			p, err = cp.Client.CoreV1().Pods("default").Get(ctx, pod.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if cluster.RestartCount(p, "podserver") < 1 || !cluster.PodReady(p) {
				return fmt.Errorf("restarts %d, ready %v", cluster.RestartCount(p, "podserver"), cluster.PodReady(p))
			}
			return nil
		})
		t.Logf("restarted (restartCount %d) in %v", cluster.RestartCount(p, "podserver"), time.Since(t0).Round(time.Millisecond))
		same(t, "after the container restart")
		reachable(t, 30*time.Second)
	})

	t.Run("edgecore restarted: the pod keeps running, same address", func(t *testing.T) {
		before := same(t, "before")
		e.Stop()
		t0 := time.Now()
		if err := e.Start(); err != nil {
			t.Fatal(err)
		}
		t.Logf("edgecore back in %v", time.Since(t0).Round(time.Millisecond))
		after := same(t, "after the edgecore restart")
		if a, b := cluster.ContainerID(after, "podserver"), cluster.ContainerID(before, "podserver"); a != b {
			t.Errorf("container %s replaced by %s across the edgecore restart", b, a)
		}
		reachable(t, 30*time.Second)
	})

	t.Run("agent restarted: same address, still reachable", func(t *testing.T) {
		m.edgeAgent.Stop()
		m.edgeAgent.Start("Data plane up")
		same(t, "after the agent restart")
		reachable(t, 30*time.Second)
	})

	t.Run("deleted through the API: the lease is released", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		t0 := time.Now()
		if err := cp.DeletePod(ctx, "default", pod.Name); err != nil {
			t.Fatal(err)
		}
		t.Logf("pod gone from the API %v after delete", time.Since(t0).Round(time.Millisecond))
		waitFor(t, 20*time.Second, "the lease is released", func() error {
			if a, ok := m.leaseOf(t, pod.UID); ok {
				return fmt.Errorf("lease of %s still held: %s", pod.UID, a)
			}
			return nil
		})
		if _, err := fetch(m.cloudPod, ip, 2*time.Second); err == nil {
			t.Errorf("%s still answers after its pod was deleted", ip)
		}
	})

	t.Run("Deployment with a nodeSelector for the edge node", func(t *testing.T) {
		deploymentOnEdge(t, m)
	})
}

// deploymentOnEdge runs a 2-replica Deployment of podserver placed by
// kube-scheduler through a nodeSelector for m's edge node; each replica
// gets an address of the node's blocks with a lease and answers the cloud
// pod. Scaled to 0 (no garbage collector runs: the test removes the
// ReplicaSet itself), the leases are released.
func deploymentOnEdge(t *testing.T, m *podsMesh) {
	cp, e := m.cp, m.edge
	if err := cp.StartScheduling(t); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const name = "apip-deploy"
	tmpl := podServer("default", name, e.Name, true)
	// edged registers its Node tainted not-ready; the node lifecycle
	// controller lifts the taint once the Node is Ready. The replicas
	// tolerate nothing: they run only once it is gone.
	waitFor(t, 90*time.Second, "the node lifecycle controller lifts "+e.Name+"'s not-ready taint", func() error {
		n, err := cp.Client.CoreV1().Nodes().Get(ctx, e.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, tn := range n.Spec.Taints {
			if tn.Key == corev1.TaintNodeNotReady {
				return fmt.Errorf("taint %s:%s", tn.Key, tn.Effect)
			}
		}
		return nil
	})
	replicas := int32(2)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: tmpl.Labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: tmpl.Labels}, Spec: tmpl.Spec},
		},
	}
	deps := cp.Client.AppsV1().Deployments("default")
	if _, err := deps.Create(ctx, d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sel := "app=" + name
	podsGone := func() error {
		l, err := cp.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return err
		}
		if len(l.Items) > 0 {
			return fmt.Errorf("%d pods left", len(l.Items))
		}
		return nil
	}
	scaleToZero := func() {
		if _, err := deps.Patch(ctx, name, types.MergePatchType, []byte(`{"spec":{"replicas":0}}`), metav1.PatchOptions{}); err != nil {
			t.Errorf("scale %s to 0: %v", name, err)
		}
	}
	t.Cleanup(func() {
		scaleToZero()
		deadline := time.Now().Add(30 * time.Second)
		for podsGone() != nil && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		_ = deps.Delete(ctx, name, metav1.DeleteOptions{})
		_ = cp.Client.AppsV1().ReplicaSets("default").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: sel})
		_ = cp.Client.CoreV1().Pods("default").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: sel})
	})

	t0 := time.Now()
	var pods []corev1.Pod
	waitFor(t, 90*time.Second, "both replicas Running on the edge node", func() error {
		l, err := cp.Client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return err
		}
		ready := 0
		for i := range l.Items {
			if cluster.PodReady(&l.Items[i]) && l.Items[i].Status.PodIP != "" {
				ready++
			}
		}
		if ready != int(replicas) {
			var st []string
			for _, p := range l.Items {
				st = append(st, fmt.Sprintf("%s node %q phase %s conditions %v", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.Conditions))
			}
			return fmt.Errorf("%d of %d pods ready: %v", ready, len(l.Items), st)
		}
		pods = l.Items
		return nil
	})
	t.Logf("Deployment %s: %d replicas Running %v after create", name, replicas, time.Since(t0).Round(time.Millisecond))
	for _, p := range pods {
		if p.Spec.NodeName != e.Name {
			t.Errorf("pod %s scheduled to %q, want %s", p.Name, p.Spec.NodeName, e.Name)
		}
		ip, err := netip.ParseAddr(p.Status.PodIP)
		if err != nil || !m.segment.Contains(ip) {
			t.Errorf("pod %s: podIP %q, want an address of %s", p.Name, p.Status.PodIP, m.segment)
			continue
		}
		if got, ok := m.leaseOf(t, p.UID); !ok || got != ip {
			t.Errorf("pod %s: agent's lease %v %v, want %s", p.Name, got, ok, ip)
		}
		waitFor(t, 30*time.Second, "cloud pod GETs replica "+p.Name, func() error {
			body, err := fetch(m.cloudPod, ip, 3*time.Second)
			if err == nil && body != ip.String() {
				err = fmt.Errorf("the pod at %s says it has %s", ip, body)
			}
			return err
		})
	}
	scaleToZero()
	waitFor(t, 60*time.Second, "scaled to 0: the replicas are gone", podsGone)
	for _, p := range pods {
		waitFor(t, 20*time.Second, "the lease of "+p.Name+" is released", func() error {
			if a, ok := m.leaseOf(t, p.UID); ok {
				return fmt.Errorf("still held: %s", a)
			}
			return nil
		})
	}
}
