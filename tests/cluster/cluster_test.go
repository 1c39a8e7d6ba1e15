package cluster_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes"

	"github.com/edgelink/edgelink/tests/cluster"
)

func TestMain(m *testing.M) { os.Exit(cluster.Main(m)) }

var ippoolGVR = schema.GroupVersionResource{Group: "spiderpool.spidernet.io", Version: "v2beta1", Resource: "spiderippools"}

// list GETs a list from an edge's metaServer and returns its items.
func list(ctx context.Context, e *cluster.EdgeNode, path string) ([]unstructured.Unstructured, error) {
	body, err := e.Get(ctx, path)
	if err != nil {
		return nil, err
	}
	var l unstructured.UnstructuredList
	if err := l.UnmarshalJSON(body); err != nil {
		return nil, fmt.Errorf("%s: %w: %.200s", path, err, body)
	}
	return l.Items, nil
}

// eventually retries f until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, f func(ctx context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := f(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func names(items []unstructured.Unstructured) []string {
	var n []string
	for _, i := range items {
		n = append(n, i.GetName())
	}
	sort.Strings(n)
	return n
}

func podIP(items []unstructured.Unstructured, name string) string {
	for _, i := range items {
		if i.GetName() == name {
			ip, _, _ := unstructured.NestedString(i.Object, "status", "podIP")
			return ip
		}
	}
	return ""
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestControlPlane(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	cp := cluster.Start(t, cluster.Options{})
	t.Logf("Start took %v", time.Since(t0).Round(time.Millisecond))
	e1 := cp.AddEdgeNode(t, "edge-1")
	e2 := cp.AddEdgeNode(t, "edge-2")

	cp.CreatePod(t, "default", "web-1", "edge-1", map[string]string{"app": "web"}, map[string]string{"edgelink.io/test": "x"})
	cp.SetPodIP(t, "default", "web-1", "10.244.1.10")
	cp.CreatePod(t, "apps", "web-2", "edge-2", nil, nil)
	cp.SetPodIP(t, "apps", "web-2", "10.244.2.20")

	pool := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "spiderpool.spidernet.io/v2beta1",
		"kind":       "SpiderIPPool",
		"metadata":   map[string]any{"name": "pool-edge-1"},
		"spec": map[string]any{
			"ipVersion": int64(4),
			"subnet":    "10.244.0.0/16",
			"ips":       []any{"10.244.1.10-10.244.1.200"},
			"nodeName":  []any{"edge-1"},
		},
	}}
	ctx := context.Background()
	if _, err := cp.Dynamic.Resource(ippoolGVR).Create(ctx, pool, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create SpiderIPPool: %v", err)
	}

	for _, e := range []*cluster.EdgeNode{e1, e2} {
		eventually(t, 30*time.Second, e.Name+": pods via metaServer", func(ctx context.Context) error {
			pods, err := list(ctx, e, "/api/v1/pods")
			if err != nil {
				return err
			}
			if podIP(pods, "web-1") != "10.244.1.10" || podIP(pods, "web-2") != "10.244.2.20" {
				return fmt.Errorf("pods %v without the expected IPs", names(pods))
			}
			return nil
		})
		eventually(t, 30*time.Second, e.Name+": nodes via metaServer", func(ctx context.Context) error {
			nodes, err := list(ctx, e, "/api/v1/nodes")
			if err != nil {
				return err
			}
			if n := names(nodes); !contains(n, "edge-1") || !contains(n, "edge-2") {
				return fmt.Errorf("nodes %v", n)
			}
			return nil
		})
		eventually(t, 30*time.Second, e.Name+": SpiderIPPools via metaServer", func(ctx context.Context) error {
			pools, err := list(ctx, e, "/apis/spiderpool.spidernet.io/v2beta1/spiderippools")
			if err != nil {
				return err
			}
			if n := names(pools); !contains(n, "pool-edge-1") {
				return fmt.Errorf("pools %v", n)
			}
			return nil
		})
	}

	// A typed client on the edge, dialing inside the netns.
	ec, err := kubernetes.NewForConfig(e2.RestConfig())
	if err != nil {
		t.Fatal(err)
	}
	pod, err := ec.CoreV1().Pods("apps").Get(ctx, "web-2", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("typed get via edge-2 metaServer: %v", err)
	}
	if pod.Status.PodIP != "10.244.2.20" || pod.Status.Phase != corev1.PodRunning || pod.Status.HostIP != e2.IP.String() {
		t.Fatalf("web-2 status via edge-2: %+v", pod.Status)
	}

	for name, rss := range cp.RSS() {
		t.Logf("RSS %-16s %4d MiB", name, rss>>20)
	}

	// Cloud outage: the metaServer answers from edgecore's local cache.
	// edgecontroller pushed each node its own pod, so that one is cached.
	cp.StopCloudcore()
	for _, c := range []struct {
		e   *cluster.EdgeNode
		pod string
	}{{e1, "web-1"}, {e2, "web-2"}} {
		t1 := time.Now()
		eventually(t, 60*time.Second, c.e.Name+": pods from the cache with cloudcore down", func(ctx context.Context) error {
			pods, err := list(ctx, c.e, "/api/v1/pods")
			if err != nil {
				return err
			}
			if podIP(pods, c.pod) == "" {
				return fmt.Errorf("pods %v", names(pods))
			}
			return nil
		})
		t.Logf("%s: offline answer after %v", c.e.Name, time.Since(t1).Round(time.Millisecond))
	}

	// Edge restart while offline: the cache survives in sqlite.
	e1.Stop()
	if err := e1.Start(); err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, "edge-1 restarted offline: cached pods", func(ctx context.Context) error {
		pods, err := list(ctx, e1, "/api/v1/pods")
		if err != nil {
			return err
		}
		if podIP(pods, "web-1") == "" {
			return fmt.Errorf("pods %v", names(pods))
		}
		return nil
	})

	t1 := time.Now()
	if err := cp.StartCloudcore(); err != nil {
		t.Fatal(err)
	}
	t.Logf("cloudcore restarted in %v", time.Since(t1).Round(time.Millisecond))

	// Back online: a change made in the API server reaches both edges.
	cp.SetPodIP(t, "default", "web-1", "10.244.1.11")
	for _, e := range []*cluster.EdgeNode{e1, e2} {
		t1 := time.Now()
		eventually(t, 60*time.Second, e.Name+": new pod IP after cloudcore restart", func(ctx context.Context) error {
			pods, err := list(ctx, e, "/api/v1/pods")
			if err != nil {
				return err
			}
			if ip := podIP(pods, "web-1"); ip != "10.244.1.11" {
				return fmt.Errorf("web-1 podIP %q", ip)
			}
			return nil
		})
		t.Logf("%s: online again after %v", e.Name, time.Since(t1).Round(time.Millisecond))
	}

	// A third node joins after the restart (the join token was regenerated).
	e3 := cp.AddEdgeNode(t, "edge-3")
	eventually(t, 30*time.Second, "edge-3 sees all pods", func(ctx context.Context) error {
		pods, err := list(ctx, e3, "/api/v1/pods")
		if err != nil {
			return err
		}
		if n := names(pods); !contains(n, "web-1") || !contains(n, "web-2") {
			return fmt.Errorf("pods %v", n)
		}
		return nil
	})
}

// TestShared runs on the binary's shared control plane, in parallel with
// TestControlPlane's own: two control planes side by side on one host.
func TestShared(t *testing.T) {
	t.Parallel()
	cp := cluster.Shared(t)
	if cp2 := cluster.Shared(t); cp2 != cp {
		t.Fatal("Shared returned two control planes")
	}
	e := cp.AddEdgeNode(t, "shared-edge")
	cp.CreatePod(t, "default", "p", "shared-edge", map[string]string{"app": "p"}, nil)
	cp.SetPodIP(t, "default", "p", "10.245.0.5")
	eventually(t, 30*time.Second, "pod via metaServer", func(ctx context.Context) error {
		pods, err := list(ctx, e, "/api/v1/pods")
		if err != nil {
			return err
		}
		if podIP(pods, "p") != "10.245.0.5" {
			return fmt.Errorf("pods %v", names(pods))
		}
		return nil
	})

	// API server restart: clients and the edge recover.
	cp.StopAPIServer()
	if err := cp.StartAPIServer(); err != nil {
		t.Fatal(err)
	}
	cp.SetPodIP(t, "default", "p", "10.245.0.6")
	eventually(t, 60*time.Second, "pod update via metaServer after apiserver restart", func(ctx context.Context) error {
		pods, err := list(ctx, e, "/api/v1/pods")
		if err != nil {
			return err
		}
		if ip := podIP(pods, "p"); ip != "10.245.0.6" {
			return fmt.Errorf("p podIP %q", ip)
		}
		return nil
	})
	if !cp.CloudcoreRunning() {
		t.Fatal("cloudcore exited during the apiserver restart")
	}

	// Edge restart while online.
	e.Stop()
	if e.Running() || e.PID() != 0 {
		t.Fatal("edgecore still running after Stop")
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	cp.SetPodIP(t, "default", "p", "10.245.0.7")
	eventually(t, 30*time.Second, "pod update via metaServer after edgecore restart", func(ctx context.Context) error {
		pods, err := list(ctx, e, "/api/v1/pods")
		if err != nil {
			return err
		}
		if ip := podIP(pods, "p"); ip != "10.245.0.7" {
			return fmt.Errorf("p podIP %q", ip)
		}
		return nil
	})
	if strings.TrimSpace(cp.Kubeconfig) == "" {
		t.Fatal("no kubeconfig")
	}
}
