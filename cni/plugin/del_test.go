package plugin

import (
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/testutils"
)

// assertReleased checks that nothing of p's attachment is left: no pod
// interface, no host veth, no record, no lease.
func (n *node) assertReleased(p *pod, podNSAlive bool) {
	n.t.Helper()
	if podNSAlive && link(n.t, p.ns, "eth0") != nil {
		n.t.Errorf("pod %s still has eth0", p.cid)
	}
	if link(n.t, n.ns, p.hostVeth) != nil {
		n.t.Errorf("host veth %s of %s still exists", p.hostVeth, p.cid)
	}
	if n.recordExists(p.cid, "eth0") {
		n.t.Errorf("attachment record of %s still exists", p.cid)
	}
	if n.hasLease(p.cid, "eth0") {
		n.t.Errorf("IPAM lease of %s was not released", p.cid)
	}
}

// TestDelReleasesAndIsIdempotent proves DEL after ADD removes the pod
// interface, the host veth, the record and the lease (with the pod's
// CNI_ARGS passed to IPAM), and that a second DEL succeeds too.
func TestDelReleasesAndIsIdempotent(t *testing.T) {
	n := newNode(t)
	p := n.newPod()
	other := n.newPod()
	n.mustAdd(p)
	n.mustAdd(other)

	for i := range 2 {
		if err := n.del(p, n.netconf()); err != nil {
			t.Fatalf("DEL #%d: %v", i+1, err)
		}
		n.assertReleased(p, true)
	}
	dels := n.callsOf("DEL")
	if len(dels) != 2 || !strings.Contains(dels[0], p.cid+" eth0 args="+`"`+p.cniArgs+`"`) {
		t.Errorf("IPAM DEL calls = %q, want two for %s eth0 with CNI_ARGS %q", dels, p.cid, p.cniArgs)
	}
	if link(t, n.ns, other.hostVeth) == nil || !n.recordExists(other.cid, "eth0") || !n.hasLease(other.cid, "eth0") {
		t.Error("DEL of one pod touched another pod's attachment")
	}
}

// TestDelNeverAdded proves DEL of an attachment that was never added (the
// runtime retries, or ADD never ran) succeeds, whether the netns is empty,
// missing or is not a netns, and still asks IPAM to release.
func TestDelNeverAdded(t *testing.T) {
	n := newNode(t)
	for _, netns := range []string{"", "/run/netns/eltest-never-" + randHex(4), n.dataDir} {
		p := &pod{attachmentArgs: attachmentArgs{cid: "c" + randHex(8), ifName: "eth0", netns: netns}}
		p.hostVeth = hostVethName(p.cid, "eth0")
		if err := n.del(p, n.netconf()); err != nil {
			t.Errorf("DEL with netns %q of a container never added: %v", netns, err)
		}
	}
	if got := len(n.callsOf("DEL")); got != 3 {
		t.Errorf("IPAM DEL calls = %d, want 3", got)
	}
}

// TestDelAfterNetnsGone proves DEL succeeds and releases the lease and the
// record when the pod's netns was already removed (the usual order when a
// pod sandbox is torn down).
func TestDelAfterNetnsGone(t *testing.T) {
	n := newNode(t)
	p := n.newPod()
	n.mustAdd(p)
	if err := p.ns.Close(); err != nil {
		t.Fatal(err)
	}
	if err := testutils.UnmountNS(p.ns); err != nil {
		t.Fatal(err)
	}
	if err := n.del(p, n.netconf()); err != nil {
		t.Fatalf("DEL with the netns gone: %v", err)
	}
	n.assertReleased(p, false)
}

// TestDelKeepsStateWhenIPAMFails proves a DEL whose IPAM release fails
// returns IPAM's error (code kept, verb and type named) and keeps the
// veth and the record, so the runtime's retry can finish; the retry then
// releases everything.
func TestDelKeepsStateWhenIPAMFails(t *testing.T) {
	n := newNode(t)
	p := n.newPod()
	n.mustAdd(p)

	conf := n.netconf()
	ipamOf(conf)["fail"] = map[string]any{"DEL": map[string]any{"code": 11, "msg": "agent unreachable", "details": "dial unix: connection refused"}}
	err := n.del(p, conf)
	wantErrText(t, cniError(t, err, types.ErrTryAgainLater), "IPAM DEL (fakeipam): agent unreachable", "connection refused")
	if link(t, n.ns, p.hostVeth) == nil || link(t, p.ns, "eth0") == nil || !n.recordExists(p.cid, "eth0") || !n.hasLease(p.cid, "eth0") {
		t.Fatal("a DEL that could not release the lease removed the veth, the record or the lease")
	}

	if err := n.del(p, n.netconf()); err != nil {
		t.Fatalf("retried DEL: %v", err)
	}
	n.assertReleased(p, true)
}
