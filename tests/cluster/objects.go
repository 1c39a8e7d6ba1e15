package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
)

// CreatePod creates pod ns/name bound to nodeName (spec.nodeName set: there
// is no scheduler) with one dummy container, creating namespace ns if
// needed. Nothing runs it: set its status with SetPodIP. The pod is
// deleted (grace period 0) in t.Cleanup.
func (cp *ControlPlane) CreatePod(t testing.TB, ns, name, nodeName string, labels, annotations map[string]string) *corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := cp.ensureNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}
	zero := int64(0)
	no := false
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels, Annotations: annotations},
		Spec: corev1.PodSpec{
			NodeName:                      nodeName,
			TerminationGracePeriodSeconds: &zero,
			AutomountServiceAccountToken:  &no,
			Containers: []corev1.Container{{
				Name:  "main",
				Image: "registry.invalid/edgelink/dummy:0",
			}},
		},
	}
	created, err := cp.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", ns, name, err)
	}
	t.Cleanup(func() {
		if !cp.apiserver.running() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := cp.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
		if err != nil && !apierrors.IsNotFound(err) {
			t.Logf("delete pod %s/%s: %v", ns, name, err)
		}
	})
	return created
}

func (cp *ControlPlane) ensureNamespace(ctx context.Context, ns string) error {
	_, err := cp.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err == nil {
		return nil
	}
	if !apierrors.IsNotFound(err) {
		return err
	}
	_, err = cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// SetPodIP writes the status a kubelet would for a started pod: phase
// Running, podIP = ips[0] and podIPs = ips (dual-stack: one per family), hostIP = the node's InternalIP (for
// nodes made by AddEdgeNode), conditions Ready, a running container
// status. It uses the status subresource.
func (cp *ControlPlane) SetPodIP(t testing.TB, ns, name string, ips ...string) {
	t.Helper()
	if len(ips) == 0 {
		t.Fatalf("SetPodIP %s/%s: no IP", ns, name)
	}
	var podIPs []corev1.PodIP
	for _, ip := range ips {
		if net.ParseIP(ip) == nil {
			t.Fatalf("SetPodIP %s/%s: bad IP %q", ns, name, ip)
		}
		podIPs = append(podIPs, corev1.PodIP{IP: ip})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pod, err := cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		st := &pod.Status
		st.Phase = corev1.PodRunning
		st.PodIP = ips[0]
		st.PodIPs = podIPs
		if st.StartTime == nil {
			st.StartTime = &now
		}
		cp.mu.Lock()
		if e, ok := cp.edges[pod.Spec.NodeName]; ok {
			st.HostIP = e.IP.String()
			st.HostIPs = []corev1.HostIP{{IP: e.IP.String()}}
		}
		cp.mu.Unlock()
		st.Conditions = nil
		for _, c := range []corev1.PodConditionType{corev1.PodScheduled, corev1.PodInitialized, corev1.ContainersReady, corev1.PodReady} {
			st.Conditions = append(st.Conditions, corev1.PodCondition{Type: c, Status: corev1.ConditionTrue, LastTransitionTime: now})
		}
		st.ContainerStatuses = nil
		for _, c := range pod.Spec.Containers {
			st.ContainerStatuses = append(st.ContainerStatuses, corev1.ContainerStatus{
				Name: c.Name, Image: c.Image, ImageID: c.Image, Ready: true, Started: ptr(true),
				ContainerID: "containerd://" + string(pod.UID),
				State:       corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}},
			})
		}
		_, err = cp.Client.CoreV1().Pods(ns).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatalf("SetPodIP %s/%s: %v", ns, name, err)
	}
}

func ptr[T any](v T) *T { return &v }

// CreatePods creates n running pods <prefix><i> (i zero-padded to 5 digits)
// in ns, pod i bound to nodes[i%len(nodes)] with status IP ipOf(i), through
// 16 concurrent writers, the way a busy cluster's kubelets would. The
// namespace is created if needed; the caller removes what it no longer
// needs (deleting the namespace is quickest). It returns the first error.
func (cp *ControlPlane) CreatePods(ctx context.Context, ns, prefix string, n int, nodes []string, ipOf func(int) string) error {
	if err := cp.ensureNamespace(ctx, ns); err != nil {
		return err
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
		}
		mu.Unlock()
	}
	work := make(chan int)
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				pod := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("%s%05d", prefix, i), Namespace: ns},
					Spec: corev1.PodSpec{NodeName: nodes[i%len(nodes)],
						Containers: []corev1.Container{{Name: "main", Image: "registry.invalid/edgelink/dummy:0"}}},
				}
				created, err := cp.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
				if err != nil {
					fail(fmt.Errorf("create pod %s: %w", pod.Name, err))
					continue
				}
				ip := ipOf(i)
				created.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
				if _, err := cp.Client.CoreV1().Pods(ns).UpdateStatus(ctx, created, metav1.UpdateOptions{}); err != nil {
					fail(fmt.Errorf("status of pod %s: %w", pod.Name, err))
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	return firstErr
}

// CreateCloudNode creates Node name as a cloud node's kubelet registers
// it: its pod CIDR (the cloud CNI's), the kubelet's annotation (flanneld
// v0.28.10's kube subnet manager panics writing its own annotations into
// a Node that has none: it assigns into the nil map) and, in its status,
// the InternalIP ip. The Node is deleted in t.Cleanup.
func (cp *ControlPlane) CreateCloudNode(t testing.TB, name, podCIDR, ip string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
		Annotations: map[string]string{"volumes.kubernetes.io/controller-managed-attach-detach": "true"}},
		Spec: corev1.NodeSpec{PodCIDR: podCIDR, PodCIDRs: []string{podCIDR}}}
	if _, err := cp.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create node %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = cp.Client.CoreV1().Nodes().Delete(ctx, name, metav1.DeleteOptions{})
	})
	if err := cp.setNodeAddresses(ctx, name, ip); err != nil {
		t.Fatal(err)
	}
}

// setNodeAddresses writes n's status.addresses (an InternalIP and its
// Hostname) as a kubelet reports them. A merge patch of the status
// subresource carries no resourceVersion: kube-controller-manager and
// cloudcore write the new Node too (labels, annotations, taints), and
// an update of the object just created would lose that race.
func (cp *ControlPlane) setNodeAddresses(ctx context.Context, name, ip string) error {
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"addresses": []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: ip},
		{Type: corev1.NodeHostName, Address: name},
	}}})
	if err != nil {
		return err
	}
	if _, err := cp.Client.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		return fmt.Errorf("node %s status: %w", name, err)
	}
	return nil
}
