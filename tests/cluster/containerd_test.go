package cluster

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestContainerdRunsTestImage starts a node's containerd the way an edge
// node with edged does (inside a network namespace, nsenter, its own
// cgroupRoot), imports the test images, runs the podserver image in the
// namespace's network and GETs it: the body is the namespace's address.
// Teardown leaves no task, mount or cgroup behind. Needs root.
func TestContainerdRunsTestImage(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: network namespace, cgroups, containerd")
	}
	ns := fmt.Sprintf("elctrd%d", os.Getpid()%100000)
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", ns).Run() })
	addr := "198.18.250.2"
	for _, args := range [][]string{
		// a veth pair inside the namespace: a link to hold the address
		// (this kernel has no dummy module).
		{"link", "add", "d0", "type", "veth", "peer", "name", "d1"},
		{"addr", "add", addr + "/24", "dev", "d0"},
		{"link", "set", "d0", "up"},
		{"link", "set", "d1", "up"},
		{"link", "set", "lo", "up"},
	} {
		if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v: %s", args, err, out)
		}
	}
	root := "/" + ns
	if err := makeCgroupRoot(root); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := removeCgroupRoot(root); err != nil {
			t.Error(err)
		}
	})
	dir, err := os.MkdirTemp("", "elctrd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	nsPath := "/var/run/netns/" + ns
	t0 := time.Now()
	c := StartContainerd(t, dir, ContainerdOptions{NetNSPath: nsPath, CNIBinDir: filepath.Join(dir, "cni-bin"), CNIConfDir: filepath.Join(dir, "cni-conf")})
	t.Logf("containerd up in %v", time.Since(t0).Round(time.Millisecond))
	t0 = time.Now()
	ImportImages(t, "../..", c.Socket)
	t.Logf("images built and imported in %v", time.Since(t0).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// --net-host: the container shares containerd's (the node's) network
	// namespace; CNI is the CRI path's business, exercised by edged.
	if _, err := c.ctr(ctx, "run", "-d", "--net-host", "--cgroup", root+"/podserver", PodServerImage, "podserver"); err != nil {
		t.Fatal(err)
	}
	var body string
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, b, err := HTTPGet(ctx, nsPath, "http://"+net.JoinHostPort(addr, "8080")+"/")
		if err == nil && code == 200 {
			body = strings.TrimSpace(string(b))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET podserver: %d %v", code, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if body != addr {
		t.Errorf("podserver answered %q, want the namespace's address %s", body, addr)
	}
	c.Stop()
	if out, err := exec.Command("sh", "-c", "grep -c "+dir+" /proc/self/mountinfo").Output(); err == nil && strings.TrimSpace(string(out)) != "0" {
		t.Errorf("%s mounts left under %s after Stop", strings.TrimSpace(string(out)), dir)
	}
}
