package p2p

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"github.com/edgelink/edgelink/pkg/membership"
)

// fastMembership shortens the gate's renewal and checks for a test.
func fastMembership(t *testing.T, renew time.Duration) {
	t.Helper()
	or, oc := renewEvery, membershipCheck
	renewEvery, membershipCheck = renew, 50*time.Millisecond
	t.Cleanup(func() { renewEvery, membershipCheck = or, oc })
}

func renewedAt(g *Gate, h *Host) time.Time {
	st := g.state(h.ID())
	if st == nil {
		return time.Time{}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return st.renewed
}

// Membership is renewed on the connection it was proven on (fresh proofs,
// the connection and guarded protocols keep working), and ends when the
// member's certificate expires: the connection is closed and the peer is a
// member no more, within a check of the expiry.
func TestMembershipRenewsAndExpires(t *testing.T) {
	fastMembership(t, 300*time.Millisecond)
	c := newCluster(t)
	a := c.host("edge-a", nil)
	c.validity = 4 * time.Second
	b := c.host("edge-b", nil)
	issued := time.Now()
	if node := proven(t, b, a); node != "edge-b" {
		t.Fatalf("edge-b proved %q", node)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn := a.Network().ConnsToPeer(b.ID())[0]
	first := renewedAt(a.Gate, b)
	waitFor(t, "a renewal", func() bool { return renewedAt(a.Gate, b).After(first) })
	if conn.IsClosed() || a.Network().ConnsToPeer(b.ID())[0] != conn {
		t.Fatal("the renewal replaced the connection")
	}
	if err := echo(ctx, b, a); err != nil {
		t.Fatalf("guarded protocol after a renewal: %v", err)
	}

	refusals := a.Gate.Failures()
	waitFor(t, "edge-b expelled", func() bool {
		_, member := a.Gate.Member(b.ID())
		return !member && a.Network().Connectedness(b.ID()) != network.Connected
	})
	// NotAfter has second precision: it may be up to 1 s before 4 s.
	if took := time.Since(issued); took < 3*time.Second {
		t.Errorf("edge-b expelled after %s, before its certificate expired", took)
	}
	if a.Gate.Failures() <= refusals {
		t.Error("the expiry was not counted as a refusal")
	}
	if err := connect(t, b, a); err == nil {
		if _, err := a.Gate.WaitMember(ctx, b.ID()); err == nil {
			t.Error("edge-b became a member again with its expired certificate")
		}
	}
}

// A rotated CA (the CA file replaced): every member is checked again, and
// those whose certificates the new CA did not issue are disconnected.
func TestMembershipEndsWhenTheCARotates(t *testing.T) {
	fastMembership(t, time.Hour)
	c := newCluster(t)
	a, b := c.host("edge-a", nil), c.host("edge-b", nil)
	proven(t, b, a)
	if _, err := membership.InitCA(filepath.Join(c.dir, "next-ca"), "next", time.Hour); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(c.dir, "next-ca", membership.CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(c.dir, "ca", membership.CACertFile)
	if err := os.WriteFile(caFile, data, 0o644); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(time.Minute) // a new mtime even on a coarse clock
	if err := os.Chtimes(caFile, later, later); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "edge-b disconnected after the CA rotated", func() bool {
		_, member := a.Gate.Member(b.ID())
		return !member && a.Network().Connectedness(b.ID()) != network.Connected
	})
}

// A member that renews its certificate (SetCredentials) before the old one
// expires stays a member past that expiry: the new certificate reaches its
// peers at the next check, without waiting for the renewal period.
func TestMembershipFollowsARenewedCertificate(t *testing.T) {
	fastMembership(t, time.Hour) // no periodic renewal within the test
	c := newCluster(t)
	a := c.host("edge-a", nil)
	c.validity = 3 * time.Second
	b := c.host("edge-b", nil)
	issued := time.Now()
	proven(t, b, a)
	crt, key, err := c.ca.Issue("edge-b", b.ID(), time.Hour, filepath.Join(c.dir, "edge-b", "renewed"))
	if err != nil {
		t.Fatal(err)
	}
	creds, err := membership.LoadCredentials(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	b.Gate.SetCredentials(creds)
	conn := a.Network().ConnsToPeer(b.ID())[0]
	for time.Since(issued) < 5*time.Second {
		if _, member := a.Gate.Member(b.ID()); !member || conn.IsClosed() {
			t.Fatalf("edge-b lost its membership %s after its first certificate, renewed in time", time.Since(issued))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// An admission check (Config.Admit) refuses a proven node it does not
// admit, and ends the membership of one it stops admitting (its Node
// deleted) at the next check, whatever its certificate says: the
// connection is closed, and the node cannot come back while refused.
func TestAdmissionRefusesAndExpels(t *testing.T) {
	fastMembership(t, time.Hour)
	c := newCluster(t)
	var mu sync.Mutex
	gone := map[string]bool{"edge-c": true}
	admit := func(node string) error {
		mu.Lock()
		defer mu.Unlock()
		if gone[node] {
			return fmt.Errorf("no Node %q in the cluster", node)
		}
		return nil
	}
	a := c.start("edge-a", nil, Config{ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}, Admit: admit})
	b, cc := c.host("edge-b", nil), c.host("edge-c", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if node := proven(t, b, a); node != "edge-b" {
		t.Fatalf("edge-b proved %q", node)
	}
	if err := connect(t, cc, a); err == nil {
		if node, err := a.Gate.WaitMember(ctx, cc.ID()); err == nil {
			t.Fatalf("edge-c, not admitted, became a member as %q", node)
		} else if !strings.Contains(err.Error(), `node "edge-c" not admitted: no Node "edge-c" in the cluster`) {
			t.Errorf("refusal of edge-c: %v", err)
		}
	}
	if err := echo(ctx, cc, a); err == nil {
		t.Error("edge-c reached a guarded protocol")
	}

	refusals := a.Gate.Failures()
	mu.Lock()
	gone["edge-b"] = true
	mu.Unlock()
	waitFor(t, "edge-b expelled once no longer admitted", func() bool {
		_, member := a.Gate.Member(b.ID())
		return !member && a.Network().Connectedness(b.ID()) != network.Connected
	})
	if a.Gate.Failures() <= refusals {
		t.Error("the expulsion was not counted as a refusal")
	}
	if err := connect(t, b, a); err == nil {
		if _, err := a.Gate.WaitMember(ctx, b.ID()); err == nil {
			t.Error("edge-b became a member again while not admitted")
		}
	}
}
