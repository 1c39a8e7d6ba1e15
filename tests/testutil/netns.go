package testutil

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/containernetworking/plugins/pkg/testutils"
	"github.com/vishvananda/netlink"
)

// NewNS creates a named network namespace (under /run/netns, so `ip netns
// exec` reaches it) with loopback up, deleted at cleanup.
func NewNS(t testing.TB) ns.NetNS {
	t.Helper()
	n, err := testutils.NewNS()
	if err != nil {
		t.Fatalf("create netns: %v", err)
	}
	t.Cleanup(func() {
		_ = n.Close()
		_ = testutils.UnmountNS(n)
	})
	err = n.Do(func(ns.NetNS) error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		return netlink.LinkSetUp(lo)
	})
	if err != nil {
		t.Fatalf("netns %s: lo up: %v", n.Path(), err)
	}
	return n
}

// Name is the `ip netns` name of a namespace made by NewNS.
func Name(n ns.NetNS) string { return filepath.Base(n.Path()) }

// Exec runs a command inside the namespace and returns its combined output.
func Exec(n ns.NetNS, name string, args ...string) (string, error) {
	full := append([]string{"netns", "exec", Name(n), name}, args...)
	out, err := exec.Command("ip", full...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip netns exec %s %s %s: %w\n%s", Name(n), name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// Links lists the link names in a namespace.
func Links(t testing.TB, n ns.NetNS) []string {
	t.Helper()
	var names []string
	err := n.Do(func(ns.NetNS) error {
		links, err := netlink.LinkList()
		if err != nil {
			return err
		}
		for _, l := range links {
			names = append(names, l.Attrs().Name)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("list links in %s: %v", n.Path(), err)
	}
	return names
}
