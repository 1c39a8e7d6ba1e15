package p2p

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// Paths on demand (PathOptions.IdleTimeout): a target nobody talks to has
// no connection and shows as idle; a Keep target (a relay) has its path
// from the start; Open sets a path up (ErrConnecting, an ErrNoPath, until
// it is there, with a change signal that fires when it is); an open
// packet stream keeps the path past the idle timeout; once the stream is
// closed the path is let go, its connection closed; a ping on an idle
// target sets the path up again and answers over it.
func TestPathsOnDemand(t *testing.T) {
	fastPaths(t)
	const idle = time.Second
	c := newCluster(t)
	a, b, r := c.host("edge-a", nil), c.host("edge-b", nil), c.host("relay-1", nil)
	received := make(chan int, 16)
	b.HandlePackets(func(node string, rd io.ReadCloser) {
		defer rd.Close()
		n, _ := io.Copy(io.Discard, rd)
		received <- int(n)
	})
	pm := a.NewPathManager(func() []RelayRef { return nil }, PathOptions{IdleTimeout: idle})
	t.Cleanup(pm.Close)
	pm.SetTargets([]Target{
		{Node: "edge-b", ID: b.ID(), Addrs: b.Addrs()},
		{Node: "relay-1", ID: r.ID(), Addrs: r.Addrs(), Keep: true},
	})
	waitFor(t, "the path to the relay", func() bool { return pm.pathGen("relay-1") != 0 })
	time.Sleep(3 * probeInterval)
	if st := statusOf(t, pm, "edge-b"); st.Path != PathIdle || len(st.Conns) != 0 {
		t.Fatalf("edge-b before anyone asked: %+v, want idle with no connection", st)
	}
	if a.Network().Connectedness(b.ID()) == network.Connected {
		t.Fatal("connected to edge-b before anyone asked for a path")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, changed, err := pm.Open(ctx, "edge-b")
	if !errors.Is(err, ErrConnecting) || !errors.Is(err, ErrNoPath) {
		t.Fatalf("first Open on an idle path: %v, want ErrConnecting (an ErrNoPath)", err)
	}
	select {
	case <-changed:
	case <-ctx.Done():
		t.Fatal("the change signal never fired while the path was set up")
	}
	w, _, err := pm.Open(ctx, "edge-b")
	if err != nil {
		t.Fatalf("Open once the path is up: %v", err)
	}
	if st := statusOf(t, pm, "edge-b"); st.Path != PathDirectTCP || st.PathChanges != 1 {
		t.Errorf("edge-b with a path: %+v, want direct-tcp after one change", st)
	}
	if _, err := w.Write([]byte("frame")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(idle + 5*probeInterval) // an open stream keeps the path
	if st := statusOf(t, pm, "edge-b"); st.Path != PathDirectTCP {
		t.Fatalf("a path with an open packet stream was let go: %+v", st)
	}
	start := time.Now()
	_ = w.Close()
	select {
	case n := <-received:
		if n != len("frame") {
			t.Errorf("edge-b read %d bytes, want %d", n, len("frame"))
		}
	case <-ctx.Done():
		t.Fatal("edge-b never saw the stream end")
	}
	waitFor(t, "the idle path let go", func() bool {
		return statusOf(t, pm, "edge-b").Path == PathIdle && a.Network().Connectedness(b.ID()) != network.Connected
	})
	// A stream is seen at each round, so its last sighting is up to a
	// round before it closed.
	if d := time.Since(start); d < idle-probeInterval {
		t.Errorf("path let go %s after its stream closed, before the idle timeout %s", d, idle)
	}
	if pm.pathGen("relay-1") == 0 || a.Network().Connectedness(r.ID()) != network.Connected {
		t.Error("the relay's path was let go: Keep targets keep theirs")
	}

	res, err := pm.Ping(ctx, "edge-b", 10*time.Second)
	if err != nil || res.Path != PathDirectTCP {
		t.Fatalf("ping on an idle path: %+v %v, want an answer over direct-tcp", res, err)
	}
	if st := statusOf(t, pm, "edge-b"); st.PathChanges != 3 {
		t.Errorf("path changes %d, want 3 (up, idle, up)", st.PathChanges)
	}
}
