package ipam

import (
	"fmt"
	"testing"
)

// Durability where it lives. A power cut loses what is only in the page
// cache, which no test here can cause (dropping the page cache discards
// clean pages only; dirty ones are written back first, so the lease would
// survive it even without fsync). What a power cut cannot take is what was
// fsync'd: so this checks that the lease database is opened with fsync on
// (bbolt's NoSync false) and that every Allocate and Release has written
// its transaction to the file before it returns (bbolt fsyncs a commit
// before Update returns, unless NoSync).
func TestLeaseCommittedBeforeReply(t *testing.T) {
	a, store := newTestAllocator(t, "edge-1")
	if store.db.NoSync {
		t.Fatal("lease store opened with NoSync: an acknowledged lease would not survive a power cut")
	}
	writes := func() int64 { s := store.db.Stats(); return s.TxStats.GetWrite() }
	for i := 0; i < 5; i++ {
		before := writes()
		l, err := a.Allocate(req(fmt.Sprintf("durable-%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if writes() == before {
			t.Fatalf("Allocate returned %v before its transaction reached the file", l.IPs)
		}
		before = writes()
		if freed, err := a.Release(l.PodUID, l.IfName, ""); err != nil || !freed {
			t.Fatalf("Release: %v %v", freed, err)
		}
		if writes() == before {
			t.Fatal("Release returned before its transaction reached the file")
		}
	}
}
