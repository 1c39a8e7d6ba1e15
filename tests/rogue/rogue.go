// Package rogue runs a hostile libp2p peer in a child process inside a
// test namespace and reports what it managed to get from the mesh.
//
// A non-member (no proof at all, or a certificate that must be refused)
// tries a relay reservation, a discovery answer, a circuit to a member and
// a guarded stream on a direct connection: every one must fail.
//
// A hostile member (Spec.Hostile: a valid certificate) tries what a member
// could abuse: many idle packet streams to one node (each used to cost it
// megabytes), probe streams it writes to but never reads the echoes of
// (Spec.Stall), a flood of spoofed packets on as many streams as it can
// open, discovery registrations naming targets of its choosing for every
// node to dial, and relay circuits to invented peer IDs (these two only
// with Spec.Relay). It says on stderr when each phase starts ("phase hold",
// "phase stall", "phase flood", "phase done"): RunPhases hands that on,
// for a benchmark that measures the attacked node per phase.
//
// A test binary's TestMain must call RunIfChild first.
package rogue

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/edgelink/edgelink/pkg/dataplane"
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

	// Hostile makes the rogue a member that abuses what members may use;
	// it holds its packet streams to Direct for Hold, then (with Stall)
	// holds probe streams whose echoes it never reads for Stall, then
	// floods Direct for Flood with spoofed packets on as many streams as
	// it gets. Without Relay it attacks Direct only.
	Hostile bool
	Hold    time.Duration
	Stall   time.Duration
	Flood   time.Duration
	// Bogus are addresses it registers at the relay's directory besides
	// its own (targets for other nodes to dial).
	Bogus []string
}

// Result is what each attempt got: "" means it succeeded (a defect).
type Result struct {
	Reserve, Lookup, Circuit, Direct string

	// Hostile member: how many of its 32 packet streams Direct accepted,
	// which Bogus addresses the directory handed out about it, and how
	// long 20 circuits to invented peer IDs took to fail.
	PacketStreams int
	// StalledStreams is how many of its 32 stalled probe streams Direct
	// accepted; Stalled, the bytes it wrote on them before Direct stopped
	// reading.
	StalledStreams int
	Stalled        int64
	Registered     string // space-separated
	Invented       time.Duration
	// Flooded is how many bytes of frames Direct took during the flood.
	Flooded int64
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
	return RunPhases(t, netns, s, nil)
}

// RunPhases is Run that calls phase (when not nil) as a hostile rogue
// starts each phase: "hold", "stall", "flood", "done" (after the last
// attack on Direct; relay attempts may follow). phase runs on another
// goroutine, and returns before RunPhases does.
func RunPhases(t testing.TB, netns string, s Spec, phase func(string)) Result {
	t.Helper()
	spec, _ := json.Marshal(s)
	cmd := exec.Command("ip", "netns", "exec", netns, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+string(spec))
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = pw
	var stderr strings.Builder
	scanned := make(chan struct{})
	go func() { // routineScanStderr: ends when the child's stderr closes
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			if p, ok := strings.CutPrefix(line, "phase "); ok {
				if phase != nil {
					phase(p)
				}
				continue
			}
			stderr.WriteString(line + "\n")
		}
	}()
	out, err := cmd.Output()
	pw.Close()
	<-scanned
	pr.Close()
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
		v, err := membership.NewVerifier(s.CAFile, "")
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

	direct, _ := peer.Decode(s.Direct)
	if s.Hostile && s.Relay == "" {
		return hostile(ctx, h, s, peer.AddrInfo{}, peer.AddrInfo{ID: direct})
	}
	relayID, err := p2p.LearnPeerID(ctx, s.Relay)
	if err != nil {
		return Result{}, fmt.Errorf("the relay did not even answer TLS: %w", err)
	}
	relay := peer.AddrInfo{ID: relayID, Addrs: parse(s.RelayAddrs)}
	member, _ := peer.Decode(s.Member)
	if s.Hostile {
		return hostile(ctx, h, s, relay, peer.AddrInfo{ID: direct})
	}
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

// hostile is a member's abuse: see the package comment. relay is empty
// without Spec.Relay.
func hostile(ctx context.Context, h host.Host, s Spec, relay, direct peer.AddrInfo) (Result, error) {
	var r Result
	if relay.ID != "" {
		if err := h.Connect(ctx, relay); err != nil {
			return r, fmt.Errorf("connect to the relay: %w", err)
		}
	}
	direct.Addrs = parse(s.DirectAddrs)
	if err := h.Connect(ctx, direct); err != nil {
		return r, fmt.Errorf("connect to %s: %w", direct.ID, err)
	}
	time.Sleep(time.Second) // both memberships proven

	// 32 packet streams, held idle: the victim's side closes its write
	// half of the ones it took (EOF here), and resets the others.
	fmt.Fprintln(os.Stderr, "phase hold")
	var streams []network.Stream
	for range 32 {
		st, err := h.NewStream(ctx, direct.ID, p2p.PacketsProtocol)
		if err != nil {
			continue
		}
		streams = append(streams, st)
	}
	for _, st := range streams {
		_ = st.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := st.Read(make([]byte, 1)); errors.Is(err, io.EOF) {
			r.PacketStreams++
		}
	}
	fmt.Fprintf(os.Stderr, "holding %d packet streams\n", len(streams))
	time.Sleep(s.Hold)
	for _, st := range streams {
		_ = st.Reset()
	}
	if s.Stall > 0 {
		fmt.Fprintln(os.Stderr, "phase stall")
		r.StalledStreams, r.Stalled = stall(ctx, h, direct.ID, s.Stall)
	}
	fmt.Fprintln(os.Stderr, "phase flood")
	r.Flooded = flood(ctx, h, direct.ID, s.Flood)
	fmt.Fprintf(os.Stderr, "flooded %d MiB\n", r.Flooded>>20)
	fmt.Fprintln(os.Stderr, "phase done")
	if relay.ID == "" {
		return r, nil
	}

	// Registrations naming other targets, then what the directory says.
	own := h.Addrs()
	var reg []string
	for _, a := range own {
		reg = append(reg, a.String())
	}
	if _, err := discover(ctx, h, relay.ID, map[string]any{"op": "register", "addrs": append(reg, s.Bogus...)}); err != nil {
		return r, fmt.Errorf("register: %w", err)
	}
	ans, err := discover(ctx, h, relay.ID, map[string]any{"op": "lookup", "nodes": []string{s.Node}})
	if err != nil {
		return r, fmt.Errorf("lookup: %w", err)
	}
	var resp struct {
		Peers []p2p.PeerRecord `json:"peers"`
	}
	if err := json.Unmarshal(ans, &resp); err != nil {
		return r, err
	}
	for _, p := range resp.Peers {
		for _, a := range p.Addrs {
			if slices.Contains(s.Bogus, a) {
				r.Registered = strings.TrimSpace(r.Registered + " " + a)
			}
		}
	}

	// Circuits to invented peers, one after the other.
	start := time.Now()
	for range 20 {
		priv, _, _ := crypto.GenerateEd25519Key(rand.Reader)
		id, _ := peer.IDFromPrivateKey(priv)
		circuit := relay.Addrs[0].Encapsulate(ma.StringCast("/p2p/" + relay.ID.String() + "/p2p-circuit"))
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		_ = h.Connect(cctx, peer.AddrInfo{ID: id, Addrs: []ma.Multiaddr{circuit}})
		cancel()
	}
	r.Invented = time.Since(start)
	return r, nil
}

// stall opens 32 probe streams to p and writes probes on each without
// ever reading an echo, until a write has not gone through for a second
// (p stopped reading: its echoes filled our window, so its handler waits
// to write, and our probes fill its window); it holds them for d, then
// resets them. It returns how many streams p accepted (writes went through
// until p stopped reading, rather than being reset) and the bytes written
// on all of them.
func stall(ctx context.Context, h host.Host, p peer.ID, d time.Duration) (accepted int, written int64) {
	var streams []network.Stream
	for range 32 {
		st, err := h.NewStream(ctx, p, p2p.ProbeProtocol)
		if err != nil {
			continue
		}
		streams = append(streams, st)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	chunk := make([]byte, 32<<10) // 4096 probes a write
	for _, st := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var n int64
			var err error
			for i := 0; i < 1024 && err == nil; i++ { // at most 32 MiB
				_ = st.SetWriteDeadline(time.Now().Add(time.Second))
				var w int
				w, err = st.Write(chunk)
				n += int64(w)
			}
			var ne net.Error
			mu.Lock()
			defer mu.Unlock()
			if errors.As(err, &ne) && ne.Timeout() { // held, not reset
				accepted++
			}
			written += n
		}()
	}
	wg.Wait()
	fmt.Fprintf(os.Stderr, "stalled %d probe streams after %d KiB\n", accepted, written>>10)
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
	for _, st := range streams {
		_ = st.Reset()
	}
	return accepted, written
}

// flood writes frames of spoofed packets (sources no node has) to p on 8
// packet streams at once, reopening each that the victim closes, for d;
// it returns the bytes written.
func flood(ctx context.Context, h host.Host, p peer.ID, d time.Duration) int64 {
	var batch []byte
	for i := range 64 {
		pkt := make([]byte, 1400)
		pkt[0], pkt[9] = 0x45, 17 // IPv4, UDP
		binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
		copy(pkt[12:], []byte{10, 99, byte(i), 1}) // nobody's source
		copy(pkt[16:], []byte{10, 244, 0, 1})
		batch = dataplane.AppendFrame(batch, pkt)
	}
	var sent atomic.Int64
	end := time.Now().Add(d)
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for opens := 0; opens < 100 && time.Now().Before(end); opens++ {
				st, err := h.NewStream(ctx, p, p2p.PacketsProtocol)
				if err != nil {
					time.Sleep(50 * time.Millisecond)
					continue
				}
				_ = st.SetWriteDeadline(end)
				for time.Now().Before(end) {
					n, err := st.Write(batch)
					sent.Add(int64(n))
					if err != nil {
						break
					}
				}
				_ = st.Reset()
			}
		}()
	}
	wg.Wait()
	return sent.Load()
}

// discover sends one discovery request to the relay and returns the answer.
func discover(ctx context.Context, h host.Host, relay peer.ID, req any) ([]byte, error) {
	st, err := h.NewStream(ctx, relay, p2p.DiscoveryProtocol)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	_ = st.SetDeadline(time.Now().Add(10 * time.Second))
	b, _ := json.Marshal(req)
	if _, err := st.Write(append(binary.AppendUvarint(nil, uint64(len(b))), b...)); err != nil {
		return nil, err
	}
	br := bufio.NewReader(st)
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, err
	}
	out := make([]byte, n)
	_, err = io.ReadFull(br, out)
	return out, err
}
