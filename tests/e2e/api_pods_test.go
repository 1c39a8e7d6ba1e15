package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
}
