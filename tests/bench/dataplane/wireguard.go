package dataplane

import (
	"bufio"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/edgelink/edgelink/tests/testutil"
)

const (
	wgSocketDir   = "/var/run/wireguard" // wireguard-go's UAPI sockets (fixed)
	wgIfacePrefix = "eldp"               // eldp<pid><a|b><seq>: unique, <= 15 chars
	wgPort        = 51820
	wgMTU         = 1420
)

// wireguardGoCase is userspace WireGuard (wireguard-go, built by
// tests/tools/build.sh) on both nodes: a TUN per node, the peer's endpoint
// on the underlay, allowed IPs = the remote pod CIDR, and a route of the
// remote pod CIDR into the TUN. The baseline an encrypted userspace tunnel
// is held against.
type wireguardGoCase struct{}

func (wireguardGoCase) Name() string { return BaselineWireGuard }

func (wireguardGoCase) Setup(ctx context.Context, env *Env) ([]int, func(), error) {
	bin := testutil.Tool(env.T, "wireguard-go")
	privA, pubA, err := wgKey()
	if err != nil {
		return nil, nil, err
	}
	privB, pubB, err := wgKey()
	if err != nil {
		return nil, nil, err
	}
	// wireguard-go creates the socket directory; remove it at the end if
	// this benchmark made it and it is empty.
	if _, err := os.Stat(wgSocketDir); os.IsNotExist(err) {
		env.T.Cleanup(func() { _ = os.Remove(wgSocketDir) })
	}
	seq := env.ID[strings.LastIndexByte(env.ID, '-')+1:]
	if len(seq) > 3 {
		seq = seq[len(seq)-3:]
	}
	ends := []struct {
		side, node    string
		priv, peerPub []byte
		peerEndpoint  string
		remote        string // the peer's pod CIDR
	}{
		{"a", env.NodeA, privA, pubB, net.JoinHostPort(env.UnderlayB.String(), fmt.Sprint(wgPort)), env.PodCIDRB.String()},
		{"b", env.NodeB, privB, pubA, net.JoinHostPort(env.UnderlayA.String(), fmt.Sprint(wgPort)), env.PodCIDRA.String()},
	}
	var procs []*Proc
	stop := func() { StopAll(procs, 3*time.Second) }
	var pids []int
	for _, end := range ends {
		iface := fmt.Sprintf("%s%d%s%s", wgIfacePrefix, os.Getpid(), end.side, seq)
		sock := filepath.Join(wgSocketDir, iface+".sock")
		env.T.Cleanup(func() { _ = os.Remove(sock) }) // left behind if it was killed
		p, err := env.Start(end.node, []string{"WG_PROCESS_FOREGROUND=1"}, bin, "-f", iface)
		if err != nil {
			stop()
			return nil, nil, err
		}
		procs = append(procs, p)
		pids = append(pids, p.PID())
		if err := waitSocket(ctx, p, sock); err != nil {
			stop()
			return nil, nil, err
		}
		uapi := fmt.Sprintf("set=1\nprivate_key=%x\nlisten_port=%d\nreplace_peers=true\npublic_key=%x\nendpoint=%s\nreplace_allowed_ips=true\nallowed_ip=%s\n\n",
			end.priv, wgPort, end.peerPub, end.peerEndpoint, end.remote)
		if err := wgSet(ctx, sock, uapi); err != nil {
			stop()
			return nil, nil, fmt.Errorf("%s: %w", iface, err)
		}
		for _, args := range [][]string{
			{"-n", end.node, "link", "set", iface, "mtu", fmt.Sprint(wgMTU), "up"},
			{"-n", end.node, "route", "add", end.remote, "dev", iface},
		} {
			if err := env.IP(ctx, args...); err != nil {
				stop()
				return nil, nil, err
			}
		}
	}
	return pids, stop, nil
}

// wgKey makes a Curve25519 private key (32 random bytes, clamped as
// WireGuard does) and its public key.
func wgKey() (priv, pub []byte, err error) {
	priv = make([]byte, 32)
	if _, err := rand.Read(priv); err != nil {
		return nil, nil, err
	}
	priv[0] &= 248
	priv[31] = priv[31]&127 | 64
	k, err := ecdh.X25519().NewPrivateKey(priv)
	if err != nil {
		return nil, nil, err
	}
	return priv, k.PublicKey().Bytes(), nil
}

func waitSocket(ctx context.Context, p *Proc, sock string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for {
		if _, err := os.Stat(sock); err == nil {
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("wireguard-go exited before serving %s: %s", sock, p.Log())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wireguard-go did not serve %s: %v: %s", sock, ctx.Err(), p.Log())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// wgSet sends one UAPI request and checks its "errno=0" answer.
func wgSet(ctx context.Context, sock, req string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(req)); err != nil {
		return err
	}
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			break
		}
		if v, ok := strings.CutPrefix(line, "errno="); ok {
			if v != "0" {
				return fmt.Errorf("uapi set: errno=%s", v)
			}
			return nil
		}
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return fmt.Errorf("uapi set: no errno in answer")
}
