// Package rogue runs a libp2p peer that is not a valid mesh member (no
// proof at all, or a certificate that must be refused) in a child process
// inside a test namespace, and reports what it managed to get from the
// mesh: a relay reservation, a discovery answer, a circuit to a member, a
// guarded stream on a direct connection. Every one must fail. A test
// binary's TestMain must call RunIfChild first.
package rogue

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/edgelink/edgelink/pkg/membership"
	"github.com/edgelink/edgelink/pkg/p2p"
)

const childEnv = "EDGELINK_ROGUE_PEER"

// Spec says who the rogue is and whom it attacks.
type Spec struct {
	// NoProof runs a plain libp2p host that never offers a proof.
	NoProof bool
	// Otherwise the rogue presents this certificate, claiming Node.
	Node, CertFile, KeyFile, CAFile, IdentityFile string

	Relay       string // relay TCP address, host:port
	RelayAddrs  []string
	Member      string   // a member's peer ID, reached through the relay
	Direct      string   // a member's peer ID reached directly...
	DirectAddrs []string // ...at these multiaddrs
}

// Result is what each attempt got: "" means it succeeded (a defect).
type Result struct {
	Reserve, Lookup, Circuit, Direct string
}

// RunIfChild runs the rogue and exits when this process is the child.
func RunIfChild() {
	if os.Getenv(childEnv) == "" {
		return
	}
	var s Spec
	if err := json.Unmarshal([]byte(os.Getenv(childEnv)), &s); err != nil {
		fmt.Fprintln(os.Stderr, "rogue spec:", err)
		os.Exit(2)
	}
	r, err := attack(s)
	if err != nil {
		fmt.Fprintln(os.Stderr, "rogue:", err)
		os.Exit(1)
	}
	_ = json.NewEncoder(os.Stdout).Encode(r)
	os.Exit(0)
}

// Run runs the rogue in netns and returns what it got.
func Run(t *testing.T, netns string, s Spec) Result {
	t.Helper()
	spec, _ := json.Marshal(s)
	cmd := exec.Command("ip", "netns", "exec", netns, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rogue peer: %v\n%s", err, stderr.String())
	}
	var r Result
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("rogue output %q: %v", out, err)
	}
	return r
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func attack(s Spec) (Result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var h host.Host
	if s.NoProof {
		var err error
		if h, err = libp2p.New(libp2p.ListenAddrStrings("/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1")); err != nil {
			return Result{}, err
		}
	} else {
		key, _, err := p2p.LoadOrCreateIdentity(s.IdentityFile)
		if err != nil {
			return Result{}, err
		}
		creds, err := membership.LoadCredentials(s.CertFile, s.KeyFile)
		if err != nil {
			return Result{}, err
		}
		creds.Node = s.Node // claim whatever the spec says
		v, err := membership.NewVerifier(s.CAFile)
		if err != nil {
			return Result{}, err
		}
		ph, err := p2p.New(p2p.Config{Key: key, Credentials: creds, Verifier: v, ListenAddrs: []string{"/ip4/0.0.0.0/tcp/0"}})
		if err != nil {
			return Result{}, err
		}
		h = ph.Host
	}
	defer h.Close()

	relayID, err := p2p.LearnPeerID(ctx, s.Relay)
	if err != nil {
		return Result{}, fmt.Errorf("the relay did not even answer TLS: %w", err)
	}
	relay := peer.AddrInfo{ID: relayID, Addrs: parse(s.RelayAddrs)}
	member, _ := peer.Decode(s.Member)
	direct, _ := peer.Decode(s.Direct)
	viaRelay := func(f func(context.Context) error) func() string {
		return func() string {
			actx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			if err := h.Connect(actx, relay); err != nil {
				return "connect: " + err.Error()
			}
			return errString(f(actx))
		}
	}
	attempts := []func() string{
		viaRelay(func(ctx context.Context) error {
			_, err := client.Reserve(ctx, h, relay)
			return err
		}),
		viaRelay(func(ctx context.Context) error {
			st, err := h.NewStream(ctx, relayID, p2p.DiscoveryProtocol)
			if err != nil {
				return err
			}
			defer st.Close()
			_ = st.SetDeadline(time.Now().Add(10 * time.Second))
			req := []byte(`{"op":"lookup"}`)
			if _, err := st.Write(append(binary.AppendUvarint(nil, uint64(len(req))), req...)); err != nil {
				return err
			}
			_, err = st.Read(make([]byte, 1))
			return err // nil: an answer came
		}),
		viaRelay(func(ctx context.Context) error {
			circuit := relay.Addrs[0].Encapsulate(ma.StringCast("/p2p/" + relayID.String() + "/p2p-circuit"))
			if err := h.Connect(ctx, peer.AddrInfo{ID: member, Addrs: []ma.Multiaddr{circuit}}); err != nil {
				return err
			}
			return probe(ctx, h, member)
		}),
		func() string {
			dctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			defer cancel()
			if err := h.Connect(dctx, peer.AddrInfo{ID: direct, Addrs: parse(s.DirectAddrs)}); err != nil {
				return err.Error()
			}
			return errString(probe(dctx, h, direct))
		},
	}
	// All at once: without a proof each waits out the members' proof
	// timeout.
	out := make([]string, len(attempts))
	var wg sync.WaitGroup
	for i, f := range attempts {
		wg.Add(1)
		go func() { defer wg.Done(); out[i] = f() }()
	}
	wg.Wait()
	return Result{Reserve: out[0], Lookup: out[1], Circuit: out[2], Direct: out[3]}, nil
}

// probe opens a guarded stream and waits for one echo.
func probe(ctx context.Context, h host.Host, p peer.ID) error {
	s, err := h.NewStream(ctx, p, p2p.ProbeProtocol)
	if err != nil {
		return err
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := s.Write(make([]byte, 8)); err != nil {
		return err
	}
	buf := make([]byte, 8)
	_, err = s.Read(buf)
	return err
}

func parse(ss []string) []ma.Multiaddr {
	var out []ma.Multiaddr
	for _, s := range ss {
		out = append(out, ma.StringCast(s))
	}
	return out
}
