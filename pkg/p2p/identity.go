// Package p2p builds the agent's libp2p host: identity, transports,
// security, resource limits, and the membership gate every EdgeLink
// protocol sits behind.
package p2p

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/edgelink/edgelink/pkg/atomicfile"
)

// LoadOrCreateIdentity returns the node's libp2p key from path, creating
// a fresh Ed25519 key (from crypto/rand, never from public data such as
// the node name) on first start. The file is written with mode 0600
// through a temporary file and a rename; an existing file readable by
// others is refused, as ssh refuses such keys. Losing the file means a new
// identity (and a new membership certificate), not a broken node.
func LoadOrCreateIdentity(path string) (crypto.PrivKey, peer.ID, error) {
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		fi, err := os.Stat(path)
		if err != nil {
			return nil, "", err
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, "", fmt.Errorf("identity key %s is readable by others (mode %o); run chmod 600 %s", path, fi.Mode().Perm(), path)
		}
		key, id, err := ParseIdentity(data)
		if err != nil {
			return nil, "", fmt.Errorf("identity key %s %w (move it away to generate a new identity)", path, err)
		}
		return key, id, nil
	case !errors.Is(err, os.ErrNotExist):
		return nil, "", fmt.Errorf("identity key: %w", err)
	}

	key, data, err := NewIdentity()
	if err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, "", fmt.Errorf("identity key: %w", err)
	}
	if err := atomicfile.WriteBytes(path, data, 0o600); err != nil {
		return nil, "", fmt.Errorf("identity key: %w", err)
	}
	id, err := peer.IDFromPrivateKey(key)
	return key, id, err
}

// ParseIdentity parses an identity key file's content.
func ParseIdentity(data []byte) (crypto.PrivKey, peer.ID, error) {
	key, err := crypto.UnmarshalPrivateKey(data)
	if err != nil {
		return nil, "", fmt.Errorf("is not a libp2p private key: %w", err)
	}
	id, err := peer.IDFromPrivateKey(key)
	return key, id, err
}

// NewIdentity makes a fresh Ed25519 identity key (from crypto/rand) and
// returns it with the content of its key file.
func NewIdentity() (crypto.PrivKey, []byte, error) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	data, err := crypto.MarshalPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return key, data, nil
}
