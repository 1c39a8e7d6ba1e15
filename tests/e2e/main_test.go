package e2e

import (
	"os"
	"testing"

	"github.com/edgelink/edgelink/tests/testutil"
)

func TestMain(m *testing.M) { os.Exit(testutil.Main(m)) }
