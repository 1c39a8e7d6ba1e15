package dataplane

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgelink/edgelink/tests/testutil"
)

const (
	nebulaDev  = "nebula1" // in each node's namespace, so one name serves both
	nebulaPort = 4242
	nebulaMTU  = wgMTU // the same inner MTU as the wireguard-go case
)

// nebulaOverlay holds the Nebula addresses of node A and B (the mesh's own
// network; pod CIDRs ride on it as "unsafe networks").
var nebulaOverlay = [2]string{"10.250.0.1/24", "10.250.0.2/24"}

// nebulaCase is Nebula (github.com/slackhq/nebula, built by
// tests/tools/build.sh) on both nodes: the second userspace mesh the
// subjects are held against. The harness makes a CA and one certificate per
// node with nebula-cert; each node's certificate names its overlay address
// and its pod CIDR as an unsafe network, each node routes the remote pod
// CIDR via the peer's overlay address (tun.unsafe_routes), and finds the
// peer at its underlay address (static_host_map; no lighthouse, no hole
// punching). The firewall passes everything, as the other cases do.
type nebulaCase struct{}

func (nebulaCase) Name() string { return BaselineNebula }

func (nebulaCase) Setup(ctx context.Context, env *Env) ([]int, func(), error) {
	bin := testutil.Tool(env.T, "nebula")
	certBin := testutil.Tool(env.T, "nebula-cert")
	dir := filepath.Join(env.WorkDir, "nebula")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	ca := filepath.Join(dir, "ca")
	if err := nebulaCert(ctx, certBin, "ca", "-name", "edgelink-bench", "-duration", "1h",
		"-out-crt", ca+".crt", "-out-key", ca+".key"); err != nil {
		return nil, nil, err
	}
	ends := []struct {
		side, node, overlay, peerOverlay string
		podCIDR, remote, peerUnderlay    string
	}{
		{"a", env.NodeA, nebulaOverlay[0], nebulaOverlay[1], env.PodCIDRA.String(), env.PodCIDRB.String(), env.UnderlayB.String()},
		{"b", env.NodeB, nebulaOverlay[1], nebulaOverlay[0], env.PodCIDRB.String(), env.PodCIDRA.String(), env.UnderlayA.String()},
	}
	var procs []*Proc
	stop := func() { StopAll(procs, 3*time.Second) }
	var pids []int
	for _, end := range ends {
		host := filepath.Join(dir, end.side)
		if err := nebulaCert(ctx, certBin, "sign", "-ca-crt", ca+".crt", "-ca-key", ca+".key",
			"-name", end.side, "-networks", end.overlay, "-unsafe-networks", end.podCIDR,
			"-out-crt", host+".crt", "-out-key", host+".key"); err != nil {
			stop()
			return nil, nil, err
		}
		cfg := filepath.Join(dir, end.side+".yaml")
		peerIP, _, _ := strings.Cut(end.peerOverlay, "/")
		yaml := fmt.Sprintf(`pki:
  ca: %s.crt
  cert: %s.crt
  key: %s.key
static_host_map:
  %q: [%q]
lighthouse:
  am_lighthouse: false
  hosts: []
listen:
  host: 0.0.0.0
  port: %d
punchy:
  punch: false
tun:
  dev: %s
  mtu: %d
  unsafe_routes:
    - route: %s
      via: %s
logging:
  level: warning
firewall:
  outbound:
    - {port: any, proto: any, host: any, local_cidr: 0.0.0.0/0}
  inbound:
    - {port: any, proto: any, host: any, local_cidr: 0.0.0.0/0}
`, ca, host, host, peerIP, net.JoinHostPort(end.peerUnderlay, fmt.Sprint(nebulaPort)), nebulaPort,
			nebulaDev, nebulaMTU, end.remote, peerIP)
		if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
			stop()
			return nil, nil, err
		}
		p, err := env.Start(end.node, nil, bin, "-config", cfg)
		if err != nil {
			stop()
			return nil, nil, err
		}
		procs = append(procs, p)
		pids = append(pids, p.PID())
		side := end.side
		env.T.Cleanup(func() {
			if env.T.Failed() {
				env.T.Logf("nebula on node %s:\n%s", side, p.Log())
			}
		})
		if err := waitRoute(ctx, env, p, end.node, end.remote); err != nil {
			stop()
			return nil, nil, fmt.Errorf("nebula on %s: %w", end.node, err)
		}
	}
	return pids, stop, nil
}

func nebulaCert(ctx context.Context, bin string, args ...string) error {
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("nebula-cert %s: %v: %s", args[0], err, out)
	}
	return nil
}

// waitRoute waits until nebula has its TUN up with the route of the remote
// pod CIDR in it (it installs the unsafe route itself), or has exited.
func waitRoute(ctx context.Context, env *Env, p *Proc, node, cidr string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		out, _ := exec.CommandContext(ctx, "ip", "-n", node, "route", "show", cidr, "dev", nebulaDev).Output()
		if strings.Contains(string(out), cidr) {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("exited: %s", p.Log())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no route of %s into %s after 10 s: %s", cidr, nebulaDev, p.Log())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
