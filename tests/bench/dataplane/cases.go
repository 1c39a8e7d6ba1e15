package dataplane

import (
	"context"
	"fmt"
)

// Case is one pod-to-pod data path.
//
// Setup gets a fresh Env (namespaces up, pods addressed with default routes
// to their node, ip_forward on in the nodes, nothing routed between the pod
// CIDRs) and must make PodA reach PodB (and back) over its path before it
// returns; the benchmark then checks reachability with ping for up to 20 s.
// It returns the PIDs of the processes that carry the traffic (for the
// tunnel's CPU per GiB; none for kernel paths) and a cleanup that stops
// them (may be nil; env.T.Cleanup works too and runs before the namespaces
// are deleted). Processes started with env.Start are stopped at the end of
// the run anyway, and anything left inside the namespaces is killed.
type Case interface {
	Name() string // dotted-name part: "veth", "wireguard_go", "edgelink_direct", ...
	Setup(ctx context.Context, env *Env) (pids []int, cleanup func(), err error)
}

// Baselines every subject is compared with, measured in the same run.
const (
	BaselineVeth      = "veth"
	BaselineWireGuard = "wireguard_go"
	BaselineNebula    = "nebula"
)

var cases []Case

// Register adds a case; call it from an init function. Cases run in
// registration order, baselines first (file order: cases.go, then others).
func Register(c Case) { cases = append(cases, c) }

func init() {
	Register(vethCase{})
	Register(wireguardGoCase{})
	Register(nebulaCase{})
}

// vethCase is the kernel's routed path: each node routes the remote pod
// CIDR via the other node's underlay address. No tunnel, no encryption:
// the ceiling of this machine.
type vethCase struct{}

func (vethCase) Name() string { return BaselineVeth }

func (vethCase) Setup(ctx context.Context, env *Env) ([]int, func(), error) {
	for _, r := range []struct {
		node, cidr, via string
	}{
		{env.NodeA, env.PodCIDRB.String(), env.UnderlayB.String()},
		{env.NodeB, env.PodCIDRA.String(), env.UnderlayA.String()},
	} {
		if err := env.IP(ctx, "-n", r.node, "route", "add", r.cidr, "via", r.via, "dev", env.UnderlayDev); err != nil {
			return nil, nil, fmt.Errorf("veth route: %w", err)
		}
	}
	return nil, nil, nil
}
