package tunnel

import (
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/membership"
	"github.com/edgelink/edgelink/pkg/p2p"
)

// testCA is a membership CA in a temporary directory.
type testCA struct {
	ca     *membership.CA
	caFile string
}

func newTestCA(t testing.TB, dir string) *testCA {
	t.Helper()
	ca, err := membership.InitCA(dir, "test", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{ca: ca, caFile: filepath.Join(dir, membership.CACertFile)}
}

// issue writes a certificate naming node and binding id into dir.
func (c *testCA) issue(t testing.TB, node string, id peer.ID, dir string) (cert, key string) {
	t.Helper()
	cert, key, err := c.ca.Issue(node, id, time.Hour, dir)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// memberConfig is an agent config for node whose identity and membership
// certificate (issued by a fresh CA) live in a temporary directory.
func memberConfig(t testing.TB, node string) *v1.AgentConfig {
	t.Helper()
	return memberConfigOf(t, node, newTestCA(t, filepath.Join(t.TempDir(), "ca")))
}

// memberConfigOf is memberConfig with a certificate from ca.
func memberConfigOf(t testing.TB, node string, ca *testCA) *v1.AgentConfig {
	t.Helper()
	dir := t.TempDir()
	c := v1.NewDefault()
	c.NodeName = node
	c.DataDir = filepath.Join(dir, "data")
	tn := &c.Modules.Tunnel
	tn.IdentityFile = filepath.Join(dir, "identity.key")
	_, id, err := p2p.LoadOrCreateIdentity(tn.IdentityFile)
	if err != nil {
		t.Fatal(err)
	}
	tn.CAFile = ca.caFile
	tn.CertFile, tn.KeyFile = ca.issue(t, node, id, filepath.Join(dir, "member"))
	return c
}

// newRunning starts what Run would for a node with no relays: a libp2p
// host on loopback (TCP), its reservation keeper and path manager,
// stopped at cleanup in Run's order.
func newRunning(t testing.TB, c *v1.AgentConfig, isRelay bool) *running {
	t.Helper()
	return newRunningWith(t, c, isRelay, nil)
}

// newRunningWith is newRunning keeping reservations on relays (and
// registering with them, as Run does).
func newRunningWith(t testing.TB, c *v1.AgentConfig, isRelay bool, relays []p2p.RelayTarget) *running {
	t.Helper()
	tn := c.Modules.Tunnel
	key, self, err := p2p.LoadOrCreateIdentity(tn.IdentityFile)
	if err != nil {
		t.Fatal(err)
	}
	creds, verifier, err := loadMembership(tn, c.NodeName, self)
	if err != nil {
		t.Fatal(err)
	}
	h, err := p2p.New(p2p.Config{Key: key, Credentials: creds, Verifier: verifier,
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	r := &running{h: h, isRelay: isRelay, observed: map[peer.ID][]ma.Multiaddr{},
		udpSeen: map[string]ma.Multiaddr{}, known: map[string]p2p.PeerRecord{}}
	r.keeper = h.KeepReservations(relays, r.register)
	r.paths = h.NewPathManager(r.keeper.Reserved, p2p.PathOptions{})
	t.Cleanup(func() {
		r.paths.Stop()
		r.keeper.Close()
		_ = h.Close()
		r.paths.Close()
	})
	return r
}

// addrsByNode is targets as node -> sorted address strings.
func addrsByNode(ts []p2p.Target) map[string][]string {
	out := map[string][]string{}
	for _, tg := range ts {
		as := []string{}
		for _, a := range tg.Addrs {
			as = append(as, a.String())
		}
		sort.Strings(as)
		out[tg.Node] = as
	}
	return out
}

// asAgent is c as the agent hands it to the modules: validated, its
// values parsed.
func asAgent(t testing.TB, c *v1.AgentConfig) *v1.Agent {
	t.Helper()
	a, err := v1.Validate(c)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
