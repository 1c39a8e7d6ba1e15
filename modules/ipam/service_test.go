package ipam

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/edgelink/edgelink/pkg/ipam"
	"github.com/edgelink/edgelink/pkg/metadata"
)

func testPool(name, ips string) *metadata.PoolInfo {
	obj := fmt.Sprintf(`{"apiVersion":"spiderpool.spidernet.io/v2beta1","kind":"SpiderIPPool","metadata":{"name":%q},"spec":{"subnet":"10.244.0.0/16","ips":[%q],"nodeName":["edge-1"],"default":true}}`, name, ips)
	return metadata.NewPoolInfo(name, []byte(obj))
}

// TestServiceFollowsMetadata proves the service follows the one change
// signal: a pool published after it started reaches the view without any
// message, and once the picture is synced the lease of a pod it lacks is
// released.
func TestServiceFollowsMetadata(t *testing.T) {
	md := metadata.NewCache(nil)
	md.SetNode(&metadata.NodeInfo{Name: "edge-1"})
	md.SetPool(testPool("p4", "10.244.5.2-10.244.5.9"))
	md.SetPod(&metadata.PodInfo{Namespace: "default", Name: "web", UID: "u1", NodeName: "edge-1"})
	md.Publish(time.Now())

	dir := t.TempDir()
	svc := &Service{NodeName: "edge-1", SocketPath: filepath.Join(dir, "ipam.sock"), DBPath: filepath.Join(dir, "leases.db"),
		Metadata: md, ReleaseGrace: time.Nanosecond}
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan struct{}), make(chan error, 1)
	go func() { done <- svc.Run(ctx, func() { close(ready) }) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	alloc := svc.Allocator()
	if alloc.View().Pools["p4"] == nil {
		t.Fatalf("first view lacks p4: %v", alloc.View().PoolErrors)
	}
	if _, err := alloc.Allocate(&ipam.AddRequest{ContainerID: "c1", IfName: "eth0", NetNS: "/run/netns/x", PodNamespace: "default", PodName: "web", PodUID: "u1"}); err != nil {
		t.Fatal(err)
	}

	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	md.SetPool(testPool("p5", "10.244.6.2"))
	md.Publish(time.Now())
	waitUntil("p5 in the view", func() bool { return alloc.View().Pools["p5"] != nil })

	// Not synced yet: the pod's absence proves nothing.
	md.DeletePod("default/web")
	md.Publish(time.Now())
	time.Sleep(300 * time.Millisecond)
	if ls, _ := alloc.Leases(); len(ls) != 1 {
		t.Fatalf("an unsynced picture released leases: %v", ls)
	}
	md.MarkSynced()
	md.Publish(time.Now())
	waitUntil("the lease of the deleted pod released", func() bool {
		ls, _ := alloc.Leases()
		return len(ls) == 0
	})
}
