package plugin

import (
	"net"
	"sync"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/edgelink/edgelink/tests/testutil"
)

// TestEnsureBridgeConcurrent proves concurrent first ADDs racing to create
// the bridge all get the one bridge (the losers find the winner's), up and
// with the MTU asked for.
func TestEnsureBridgeConcurrent(t *testing.T) {
	requireRoot(t)
	node := testutil.NewNS(t)
	name := "eltbr" + randHex(4)
	for round := range 5 {
		const racers = 6
		idx := make([]int, racers)
		errs := make([]error, racers)
		var wg sync.WaitGroup
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = node.Do(func(ns.NetNS) error {
					br, err := ensureBridge(name, 1400)
					if err == nil {
						idx[i] = br.Index
					}
					return err
				})
			}()
		}
		wg.Wait()
		for i := range racers {
			if errs[i] != nil {
				t.Fatalf("round %d: ensureBridge #%d: %v", round, i, errs[i])
			}
			if idx[i] != idx[0] {
				t.Fatalf("round %d: racers got bridges %v, want one", round, idx)
			}
		}
		l := link(t, node, name)
		if l == nil || l.Attrs().MTU != 1400 || l.Attrs().Flags&net.FlagUp == 0 {
			t.Fatalf("round %d: bridge %v, want up with mtu 1400", round, l)
		}
		in(t, node, func() error { return netlink.LinkDel(l) })
	}
}
