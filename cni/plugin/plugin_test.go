package plugin

import (
	"slices"
	"testing"
)

// TestFuncsAndVersions proves the command table skel runs has all five
// commands and that the plugin announces CNI 1.1.0 (needed for GC and
// STATUS) and the 0.3.x versions older runtimes speak.
func TestFuncsAndVersions(t *testing.T) {
	f := Funcs()
	if f.Add == nil || f.Del == nil || f.Check == nil || f.GC == nil || f.Status == nil {
		t.Errorf("Funcs() leaves a command unset: %+v", f)
	}
	got := VersionInfo().SupportedVersions()
	for _, v := range []string{"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"} {
		if !slices.Contains(got, v) {
			t.Errorf("supported versions %v lack %s", got, v)
		}
	}
}
