package routing

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"golang.zx2c4.com/wireguard/tun"
	"k8s.io/klog/v2"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/dataplane"
	"github.com/edgelink/edgelink/pkg/metadata"
)

// reconcileInterval: metadata changes reach the routes as soon as they
// are published (Reader.Next); the kernel state is also re-checked every
// reconcileInterval whatever happens, to repair drift (routes, addresses
// or rules someone else removed) and to notice new local addresses.
var reconcileInterval = 10 * time.Second

// tunOverhead is what the tunnel adds to a packet on the underlay (IP,
// TCP or UDP+QUIC, TLS record, yamux and frame headers), rounded up.
const tunOverhead = 80

// Service owns the TUN device, the routes and iptables rules, and the
// forwarder between the TUN and the tunnel.
type Service struct {
	cfg *v1.Agent
	md  metadata.Reader
	net dataplane.Network
	sys Kernel // the host's (kernel_linux.go); a fake in tests

	state atomic.Pointer[state] // nil until up

	// iptBusy is set while a diagnose's iptables check runs; newIPT, if
	// set, replaces the real iptables in tests.
	iptBusy atomic.Bool
	newIPT  func(v6 bool) (iptablesLister, error)
}

type state struct {
	plan *RoutePlan
	fwd  *dataplane.Forwarder
	mtu  int
	errs string
}

// NewService prepares the module's work; Run does it.
func NewService(c *v1.Agent, md metadata.Reader, n dataplane.Network) *Service {
	return &Service{cfg: c, md: md, net: n, sys: newKernel()}
}

// Run creates the TUN, forwards and keeps routes and rules in shape until
// ctx ends, then removes everything it made.
func (s *Service) Run(ctx context.Context) error {
	m := s.cfg.Modules.EdgeCNI
	cloud, edge := s.cfg.Parsed.CloudCIDR, s.cfg.Parsed.EdgeCIDR
	mesh := append(slices.Clone(cloud), edge...)
	v6 := slices.ContainsFunc(mesh, func(p netip.Prefix) bool { return p.Addr().Is6() })
	k := &kernel{tun: m.TunName, sys: s.sys}

	// Leftovers of a crash: our routes with a gateway outlive the TUN,
	// our chains outlive everything. Adopt by starting clean.
	if err := k.clean(); err != nil {
		return err
	}

	mtu := m.MTU
	if mtu == 0 {
		mtu = s.sys.UnderlayMTU() - tunOverhead
	}
	dev, err := tun.CreateTUN(m.TunName, mtu)
	if err != nil {
		return fmt.Errorf("creating TUN %s: %w", m.TunName, err)
	}
	if err := k.setUp(v6); err != nil {
		dev.Close()
		return fmt.Errorf("setting up TUN %s: %w", m.TunName, err)
	}
	fwd := dataplane.New(dev, s.net)
	s.net.Accept(fwd.Receive)
	klog.InfoS("Data plane up", "tun", m.TunName, "mtu", mtu, "cloudCIDR", cloud, "edgeCIDR", edge)

	var lastVersion uint64
	var lastPlan string
	var lastReconcile time.Time
	resync := time.NewTimer(reconcileInterval)
	defer resync.Stop()
	snap, changed := s.md.Next()
	for first := true; ; first = false {
		due := time.Since(lastReconcile) >= reconcileInterval
		if first || due || snap.Version != lastVersion {
			lastVersion = snap.Version
			nets, addrs := localNets(s.sys, m.TunName)
			plan := Plan(Input{Node: s.cfg.NodeName, Cloud: cloud, Edge: edge, Snapshot: snap, LocalNets: nets, LocalAddrs: addrs})
			text := plan.String()
			if text != lastPlan || due {
				if text != lastPlan {
					fwd.SetPlan(&plan.Forward)
					klog.V(2).InfoS("Route plan", "plan", text)
				}
				st := &state{plan: plan, fwd: fwd, mtu: mtu}
				if err := k.apply(plan, mesh); err != nil {
					st.errs = err.Error()
					klog.ErrorS(err, "Reconciling routes and rules failed; retrying")
				}
				s.state.Store(st)
				lastPlan, lastReconcile = text, time.Now()
			}
		}
		resync.Reset(max(reconcileInterval-time.Since(lastReconcile), 0))
		select {
		case <-ctx.Done():
		case <-changed: // the one change signal: a new snapshot is published
			snap, changed = s.md.Next()
			continue
		case <-resync.C:
			continue
		}
		break
	}

	s.state.Store(nil)
	s.net.Accept(func(_ string, r io.ReadCloser) { _ = r.Close() })
	var errs []error
	if err := k.tearDown(); err != nil {
		errs = append(errs, err)
	}
	if err := dev.Close(); err != nil {
		errs = append(errs, err)
	}
	fwd.Close()
	klog.InfoS("Data plane down")
	return errors.Join(errs...)
}
