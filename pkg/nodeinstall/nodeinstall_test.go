package nodeinstall

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// build/systemd/edgelink.service is what `edgelink install` writes with
// the default paths.
func TestSystemdUnitFileMatches(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "build", "systemd", "edgelink.service"))
	if err != nil {
		t.Fatal(err)
	}
	if want := Unit(DefaultBinDir, DefaultConfigPath); !bytes.Equal(b, want) {
		t.Errorf("build/systemd/edgelink.service differs from the unit edgelink install writes; regenerate it:\n%s", want)
	}
}
