package agentapi

import (
	"os/exec"
	"strings"
	"testing"
)

// The wire types, their client and the metadata module link no libp2p:
// the CLI's status commands, the CNI side and test tools that read the
// status socket stay small. pkg/p2p and pkg/dataplane types reach the
// wire only through the modules that serve them (tunnel, routing).
func TestNoLibp2p(t *testing.T) {
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH")
	}
	const mod = "github.com/edgelink/edgelink/"
	for _, pkg := range []string{"pkg/agentapi", "pkg/statusclient", "modules/metasync"} {
		out, err := exec.Command(goTool, "list", "-deps", mod+pkg).CombinedOutput()
		if err != nil {
			t.Fatalf("go list -deps %s: %v\n%s", pkg, err, out)
		}
		for _, dep := range strings.Fields(string(out)) {
			if strings.Contains(dep, "libp2p") || dep == mod+"pkg/p2p" || dep == mod+"pkg/dataplane" {
				t.Errorf("%s depends on %s", pkg, dep)
			}
		}
	}
}
