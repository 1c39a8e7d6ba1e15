package cluster

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Pods that really run: created through the kube-apiserver, started by the
// edged of an AddEdgeNodeWithPods node, their status written by edged.

// PodServerPort is the port the podserver image listens on.
const PodServerPort = 8080

// PodServerSpec is a pod spec running the podserver image from the node's
// containerd (imagePullPolicy Never: there is no registry), with a short
// grace period (podserver exits on SIGTERM).
func PodServerSpec() corev1.PodSpec {
	grace := int64(2)
	no := false
	return corev1.PodSpec{
		TerminationGracePeriodSeconds: &grace,
		AutomountServiceAccountToken:  &no,
		EnableServiceLinks:            &no,
		Containers: []corev1.Container{{
			Name:            "podserver",
			Image:           PodServerImage,
			ImagePullPolicy: corev1.PullNever,
			Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: PodServerPort, Protocol: corev1.ProtocolTCP}},
		}},
	}
}

// RunPod creates pod (namespace created if needed) and waits until it is
// Running and Ready with a podIP. In t.Cleanup it deletes the pod through
// the API and waits until edged has torn it down and the object is gone,
// so register it after whatever must still run for that (the agent's IPAM
// for the CNI DEL).
func (cp *ControlPlane) RunPod(t testing.TB, pod *corev1.Pod, timeout time.Duration) *corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := cp.ensureNamespace(ctx, pod.Namespace); err != nil {
		t.Fatal(err)
	}
	if _, err := cp.Client.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create pod %s/%s: %v", pod.Namespace, pod.Name, err)
	}
	t.Cleanup(func() {
		if !cp.apiserver.running() {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cp.DeletePod(ctx, pod.Namespace, pod.Name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	got, err := cp.WaitPodRunning(ctx, pod.Namespace, pod.Name)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// WaitPodRunning waits until pod ns/name is Running and Ready with a
// podIP and returns it.
func (cp *ControlPlane) WaitPodRunning(ctx context.Context, ns, name string) (*corev1.Pod, error) {
	var last string
	for {
		p, err := cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			if PodReady(p) && p.Status.PodIP != "" {
				return p, nil
			}
			last = podSummary(p)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("pod %s/%s not Running and Ready with an IP: %s", ns, name, last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// DeletePod deletes pod ns/name with its own grace period and waits until
// the object is gone (edged confirms the deletion only after it stopped
// the containers and the sandbox, whose CNI DEL releases the address).
func (cp *ControlPlane) DeletePod(ctx context.Context, ns, name string) error {
	err := cp.Client.CoreV1().Pods(ns).Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("delete pod %s/%s: %w", ns, name, err)
	}
	for {
		_, err := cp.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("pod %s/%s still there after delete: %v", ns, name, err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// PodReady reports whether p is Running with condition Ready true.
func PodReady(p *corev1.Pod) bool {
	if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
		return false
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ContainerID is the runtime's ID of p's container name ("" if none yet):
// the part after "containerd://".
func ContainerID(p *corev1.Pod, name string) string {
	for _, s := range p.Status.ContainerStatuses {
		if s.Name == name {
			_, id, _ := strings.Cut(s.ContainerID, "://")
			return id
		}
	}
	return ""
}

// RestartCount is p's container name's restart count.
func RestartCount(p *corev1.Pod, name string) int32 {
	for _, s := range p.Status.ContainerStatuses {
		if s.Name == name {
			return s.RestartCount
		}
	}
	return 0
}

func podSummary(p *corev1.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "phase %s, podIP %q, node %q", p.Status.Phase, p.Status.PodIP, p.Spec.NodeName)
	for _, c := range p.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			fmt.Fprintf(&b, "; %s %s %s %s", c.Type, c.Status, c.Reason, c.Message)
		}
	}
	for _, s := range p.Status.ContainerStatuses {
		if w := s.State.Waiting; w != nil {
			fmt.Fprintf(&b, "; %s waiting %s: %s", s.Name, w.Reason, w.Message)
		}
		if x := s.State.Terminated; x != nil {
			fmt.Fprintf(&b, "; %s terminated %s (%d): %s", s.Name, x.Reason, x.ExitCode, x.Message)
		}
	}
	return b.String()
}
