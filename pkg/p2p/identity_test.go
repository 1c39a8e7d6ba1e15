package p2p

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIdentityCreatedOnceWithMode0600(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tunnel", "identity.key")
	_, id1, err := LoadOrCreateIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v (%v), want 0600", fi.Mode(), err)
	}
	_, id2, err := LoadOrCreateIdentity(path)
	if err != nil || id1 != id2 {
		t.Fatalf("reload gave %s (%v), want %s", id2, err, id1)
	}
	// Two nodes never share an identity: keys are random, not derived.
	_, other, _ := LoadOrCreateIdentity(filepath.Join(t.TempDir(), "identity.key"))
	if other == id1 {
		t.Fatal("two fresh identities are equal")
	}
	// Losing the key gives a new identity, not an error.
	os.Remove(path)
	if _, id3, err := LoadOrCreateIdentity(path); err != nil || id3 == id1 {
		t.Fatalf("after loss: %s %v", id3, err)
	}
}

func TestIdentityRefusesOpenPermissionsAndGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "identity.key")
	if _, _, err := LoadOrCreateIdentity(path); err != nil {
		t.Fatal(err)
	}
	os.Chmod(path, 0o644)
	if _, _, err := LoadOrCreateIdentity(path); err == nil || !strings.Contains(err.Error(), "readable by others") {
		t.Errorf("err = %v", err)
	}
	os.Chmod(path, 0o600)
	os.WriteFile(path, []byte("not a key"), 0o600)
	if _, _, err := LoadOrCreateIdentity(path); err == nil || !strings.Contains(err.Error(), "is not a libp2p private key") {
		t.Errorf("err = %v", err)
	}
}
