package tunnel

import (
	"context"
	"errors"
	"io"
	"sync/atomic"

	"github.com/edgelink/edgelink/pkg/dataplane"
)

// packets is the tunnel's side of the data plane (dataplane.Network): it
// opens packet streams on the paths the path manager chose and hands
// inbound ones to the edgecni module's forwarder.
type packets struct {
	s      *Service
	handle atomic.Pointer[func(node string, r io.ReadCloser)]
}

var _ dataplane.Network = (*packets)(nil)

// Packets is the data plane's view of the tunnel.
func (s *Service) Packets() dataplane.Network { return s.packets }

var errNotUp = errors.New("tunnel is not up")

func (p *packets) Open(ctx context.Context, node string) (io.WriteCloser, uint64, error) {
	r := p.s.running.Load()
	if r == nil {
		return nil, 0, errNotUp
	}
	return r.paths.Open(ctx, node)
}

func (p *packets) PathGen(node string) uint64 {
	r := p.s.running.Load()
	if r == nil {
		return 0
	}
	return r.paths.PathGen(node)
}

func (p *packets) Count(node string, in, out uint64) {
	if r := p.s.running.Load(); r != nil {
		r.paths.Count(node, in, out)
	}
}

func (p *packets) Accept(handle func(node string, r io.ReadCloser)) { p.handle.Store(&handle) }

// deliver passes an inbound stream to the forwarder, or closes it.
func (p *packets) deliver(node string, r io.ReadCloser) {
	if h := p.handle.Load(); h != nil {
		(*h)(node, r)
		return
	}
	_ = r.Close()
}
