package tunnel

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/edgelink/edgelink/pkg/dataplane"
	"github.com/edgelink/edgelink/pkg/p2p"
)

// packets is the tunnel's side of the data plane (dataplane.Network): it
// opens packet streams on the paths the path manager chose and hands
// inbound ones to the routing module's forwarder.
type packets struct {
	s      *Service
	handle atomic.Pointer[func(node string, r io.ReadCloser)]
}

var _ dataplane.Network = (*packets)(nil)

// Packets is the data plane's view of the tunnel.
func (s *Service) Packets() dataplane.Network { return s.packets }

var errNotUp = errors.New("tunnel is not up")

func (p *packets) Open(ctx context.Context, node string) (io.WriteCloser, <-chan struct{}, error) {
	r := p.s.running.Load()
	if r == nil {
		return nil, p2p.RetryAfter(time.Second), errNotUp // the tunnel may be up then
	}
	w, changed, err := r.paths.Open(ctx, node)
	if errors.Is(err, p2p.ErrConnecting) {
		err = fmt.Errorf("%w: %w", dataplane.ErrPathPending, err)
	}
	return w, changed, err
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
