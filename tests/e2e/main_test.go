package e2e

import (
	"os"
	"testing"

	"github.com/edgelink/edgelink/tests/cluster"
	"github.com/edgelink/edgelink/tests/metaprobe"
	"github.com/edgelink/edgelink/tests/rogue"
	"github.com/edgelink/edgelink/tests/testutil"
)

func TestMain(m *testing.M) {
	metaprobe.RunIfChild()  // the metasync probe re-executes this binary
	rogue.RunIfChild()      // so does the non-member peer
	code := cluster.Main(m) // tears down the shared control plane
	testutil.RemoveBuilt()
	os.Exit(code)
}
