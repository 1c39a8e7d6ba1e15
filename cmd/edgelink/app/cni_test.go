package app

import (
	"bytes"
	"strings"
	"testing"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
)

// Without --ipam-socket or --agent-config the conflist points spiderpool
// at the agent's default IPAM socket, not at SpiderPool's own default
// (which the agent does not serve).
func TestCNIInstallDefaultIPAMSocket(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, `"ipam_unix_socket_path": "` + v1.DefaultIPAMSocket + `"`},
		{[]string{"--ipam-socket", "/run/x/ipam.sock"}, `"ipam_unix_socket_path": "/run/x/ipam.sock"`},
	} {
		cmd := newCNIInstallCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetArgs(append([]string{"--dry-run"}, tc.args...))
		if err := cmd.Execute(); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), tc.want) {
			t.Errorf("cni install --dry-run %v: want %s in\n%s", tc.args, tc.want, out.String())
		}
	}
}
