package p2p

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// PacketsProtocol carries pod packets: one stream per direction and peer,
// opened by the sender on the connection the path manager chose, holding
// back-to-back frames (wire format in pkg/dataplane/frame.go). Only
// members reach it, and the receiver learns the sender's node name from
// its membership proof.
//
// Versions: 2 (PacketsProtocol) carries IP and offload frames, 1
// (PacketsProtocolV1) IP frames only. A sender offers the versions it
// speaks, newest first, and the stream runs on the newest both speak
// (multistream-select), so that nodes of two releases keep talking during
// a rolling upgrade: towards a version-1 peer the sender cuts
// super-packets itself. PacketStream.Offload tells the data plane which.
const (
	PacketsProtocol   = protocol.ID("/edgelink/packets/2.0.0")
	PacketsProtocolV1 = protocol.ID("/edgelink/packets/1.0.0")
)

// packetsVersions are the versions a new host speaks, newest first.
// EDGELINK_TEST_PACKETS_VERSION=1 makes it speak version 1 only, as an
// agent of an older release does (the upgrade tests).
func packetsVersions() []protocol.ID {
	if os.Getenv("EDGELINK_TEST_PACKETS_VERSION") == "1" {
		return []protocol.ID{PacketsProtocolV1}
	}
	return []protocol.ID{PacketsProtocol, PacketsProtocolV1}
}

// PacketStream is a packet stream of either version.
type PacketStream struct{ network.Stream }

// Offload reports whether the stream carries offload frames (version 2).
func (s PacketStream) Offload() bool { return s.Protocol() == PacketsProtocol }

// pathGen is node's current path generation: 0 without a path; it
// changes whenever the path manager moves the node to another connection
// (tests read it; senders watch Open's change signal).
func (m *PathManager) pathGen(node string) uint64 {
	m.mu.Lock()
	pp := m.peers[node]
	m.mu.Unlock()
	if pp == nil {
		return 0
	}
	if c := pp.current.Load(); c.conn != nil {
		return c.gen
	}
	return 0
}

// Open opens a packet stream to node on its current path. changed is
// closed when that path stops being node's path (another connection took
// over, it died, its membership ended, the node was let go): open again
// then. Without a path it fails with ErrNoPath (ErrUnknownPeer for a node
// that is no target; ErrConnecting, which is an ErrNoPath, while a path
// is being set up on demand), and changed closes when there may be one:
// checking it costs a sender no lock and no lookup per packet.
func (m *PathManager) Open(ctx context.Context, node string) (w io.WriteCloser, changed <-chan struct{}, err error) {
	pp, connecting := m.want(node)
	if pp == nil {
		return nil, RetryAfter(time.Second), fmt.Errorf("%q: %w", node, ErrUnknownPeer) // it may become a target
	}
	c := pp.current.Load()
	if c.conn == nil {
		if connecting {
			return nil, c.changed, fmt.Errorf("%s: %w", node, ErrConnecting)
		}
		return nil, c.changed, fmt.Errorf("%s: %w", node, ErrNoPath)
	}
	s, err := openStream(ctx, c.conn, 5*time.Second, m.h.packetVersions...)
	if err != nil {
		return nil, RetryAfter(time.Second), err // the path may be fine: try again soon
	}
	_ = s.SetDeadline(time.Time{})
	_ = s.CloseRead()
	return PacketStream{s}, c.changed, nil
}

// HandlePackets calls handle for every packet stream a member opens to
// us, with the node name it proved; handle owns the stream.
func (h *Host) HandlePackets(handle func(node string, r io.ReadCloser)) {
	for _, proto := range h.packetVersions {
		h.Gate.Handle(proto, func(s network.Stream) {
			node, ok := h.Gate.Member(s.Conn().RemotePeer())
			if !ok {
				_ = s.Reset()
				return
			}
			_ = s.CloseWrite()
			handle(node, PacketStream{s}) // the data plane asks it Offload()
		})
	}
}

// RetryAfter is a change signal that fires after d: for a sender to ask
// again when nothing else would tell it to.
func RetryAfter(d time.Duration) <-chan struct{} {
	ch := make(chan struct{})
	time.AfterFunc(d, func() { close(ch) })
	return ch
}
