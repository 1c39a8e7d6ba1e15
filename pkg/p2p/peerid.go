package p2p

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"
	msmux "github.com/multiformats/go-multistream"
)

// LearnPeerID asks the libp2p listener at addr (host:port, TCP) for its
// peer ID: it negotiates libp2p's TLS security with a throwaway key and
// returns the identity the listener proved, then hangs up.
//
// EdgeMesh's relayNodes name a relay by node name and address only, so a
// node learns the relay's peer ID this way. That is not trust: the caller
// then connects with the learned ID and the relay must prove membership
// under the configured node name before it is used (the gate checks the
// certificate, the tunnel module checks the name).
func LearnPeerID(ctx context.Context, addr string) (peer.ID, error) {
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return "", err
	}
	tpt, err := libp2ptls.New(libp2ptls.ID, key, nil)
	if err != nil {
		return "", err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if err := msmux.SelectProtoOrFail(libp2ptls.ID, c); err != nil {
		return "", fmt.Errorf("%s does not speak libp2p TLS: %w", addr, err)
	}
	sc, err := tpt.SecureOutbound(ctx, c, "")
	if err != nil {
		return "", fmt.Errorf("TLS handshake with %s: %w", addr, err)
	}
	defer sc.Close()
	return sc.RemotePeer(), nil
}
