package membership

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/edgelink/edgelink/tests/unittest"
)

type fixture struct {
	dir string
	ca  *CA
	v   *Verifier
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	ca, err := InitCA(filepath.Join(dir, "ca"), "test-ca", time.Hour*24*365)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(filepath.Join(dir, "ca", CACertFile), "")
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{dir: dir, ca: ca, v: v}
}

func (f *fixture) creds(t *testing.T, ca *CA, node string, id peer.ID, validity time.Duration) *Credentials {
	t.Helper()
	crt, key, err := ca.Issue(node, id, validity, filepath.Join(f.dir, "members"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := LoadCredentials(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestProofAccepted(t *testing.T) {
	f := newFixture(t)
	id := unittest.NewPeerID(t)
	proof, err := f.creds(t, f.ca, "edge-1", id, time.Hour).Proof(id, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	node, err := f.v.Verify(proof, id)
	if err != nil || node != "edge-1" {
		t.Fatalf("Verify = %q, %v", node, err)
	}
}

func TestProofRejected(t *testing.T) {
	f := newFixture(t)
	id, other := unittest.NewPeerID(t), unittest.NewPeerID(t)
	good := f.creds(t, f.ca, "edge-1", id, time.Hour)
	otherCA, err := InitCA(filepath.Join(f.dir, "other-ca"), "rogue", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		proof func() []byte
		by    peer.ID
		want  string
	}{
		{"none", func() []byte { return nil }, id, "not valid JSON"},
		{"garbage", func() []byte { return []byte("\x00\xff{") }, id, "not valid JSON"},
		{"wrong CA", func() []byte {
			p, _ := f.creds(t, otherCA, "edge-1", id, time.Hour).Proof(id, time.Now())
			return p
		}, id, `certificate of "edge-1" is not from the cluster CA`},
		{"expired certificate", func() []byte {
			c := f.creds(t, f.ca, "edge-1", id, time.Hour)
			f.v.Now = func() time.Time { return time.Now().Add(2 * time.Hour) }
			p, _ := c.Proof(id, time.Now().Add(2*time.Hour))
			return p
		}, id, `certificate of "edge-1" expired`},
		{"replayed by another peer", func() []byte { p, _ := good.Proof(id, time.Now()); return p }, other, "is for peer"},
		{"certificate bound to another peer", func() []byte { p, _ := good.Proof(other, time.Now()); return p }, other, "is bound to peer"},
		{"expired proof", func() []byte { p, _ := good.Proof(id, time.Now().Add(-48*time.Hour)); return p }, id, "proof expired"},
		{"other node name", func() []byte {
			c := *good
			c.Node = "edge-2"
			p, _ := c.Proof(id, time.Now())
			return p
		}, id, `certificate's common name is "edge-1", a proof for node "edge-2" needs "edge-2"`},
		{"proof valid for 100 years", func() []byte {
			p, _ := good.Proof(id, time.Now().Add(100*365*24*time.Hour))
			return p
		}, id, "expires too far in the future"},
		{"a certificate for xedge-1 claiming edge-1 (suffix)", func() []byte {
			c := *f.creds(t, f.ca, "xedge-1", id, time.Hour)
			c.Node = "edge-1"
			p, _ := c.Proof(id, time.Now())
			return p
		}, id, `certificate's common name is "xedge-1", a proof for node "edge-1" needs "edge-1"`},
		{"a certificate for edge-1 claiming edge-1x (prefix)", func() []byte {
			c := *good
			c.Node = "edge-1x"
			p, _ := c.Proof(id, time.Now())
			return p
		}, id, `certificate's common name is "edge-1", a proof for node "edge-1x" needs "edge-1x"`},
		{"oversized", func() []byte { return []byte(strings.Repeat(" ", MaxProofSize+1)) }, id, "exceeds"},
		{"a CA certificate as a member's", func() []byte {
			return f.rawProof(t, id, id, "edge-1", func(c *x509.Certificate) {
				c.IsCA, c.BasicConstraintsValid, c.KeyUsage = true, true, x509.KeyUsageCertSign|x509.KeyUsageDigitalSignature
			})
		}, id, "is a CA certificate"},
		{"key usage without digitalSignature", func() []byte {
			return f.rawProof(t, id, id, "edge-1", func(c *x509.Certificate) { c.KeyUsage = x509.KeyUsageKeyEncipherment })
		}, id, "digitalSignature"},
		{"server authentication only", func() []byte {
			return f.rawProof(t, id, id, "edge-1", func(c *x509.Certificate) { c.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} })
		}, id, "not for client authentication"},
		{"unbound certificate named like an EdgeLink one", func() []byte {
			return f.rawProof(t, id, "", "edge-1", nil)
		}, id, `a proof for node "edge-1" needs "system:node:edge-1"`},
		{"unbound certificate naming the node in a DNS name only", func() []byte {
			return f.rawProof(t, id, "", "cloudcore", func(c *x509.Certificate) { c.DNSNames = []string{"edge-1"} }, "edge-1")
		}, id, `common name is "cloudcore"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.v.Now = time.Now
			data := tt.proof()
			_, err := f.v.Verify(data, tt.by)
			if !errors.Is(err, ErrNotMember) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want ErrNotMember containing %q", err, tt.want)
			}
		})
	}
}

// A certificate in the shape cloudcore issues to edge nodes (common name
// system:node:<node>, client authentication, no peer binding) proves that
// node.
func TestKubeEdgeShapedProofAccepted(t *testing.T) {
	f := newFixture(t)
	id := unittest.NewPeerID(t)
	node, err := f.v.Verify(f.rawProof(t, id, "", KubeEdgeNodePrefix+"edge-1", nil, "edge-1"), id)
	if err != nil || node != "edge-1" {
		t.Fatalf("Verify = %q, %v; want edge-1", node, err)
	}
}

// rawProof signs, with f.ca, a certificate with common name cn, bound to
// bound (none if empty), client authentication and digitalSignature
// unless edit changes them, and returns a proof made with it for peer by,
// claiming node claim[0] (cn if absent).
func (f *fixture) rawProof(t *testing.T, by, bound peer.ID, cn string, edit func(*x509.Certificate), claim ...string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	if bound != "" {
		u, _ := url.Parse(PeerURIPrefix + bound.String())
		tmpl.URIs = []*url.URL{u}
	}
	if edit != nil {
		edit(tmpl)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, f.ca.Cert, &key.PublicKey, f.ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	node := cn
	if len(claim) > 0 {
		node = claim[0]
	}
	p, err := (&Credentials{Node: node, Chain: []*x509.Certificate{cert}, Key: key}).Proof(by, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestInitCARefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	if _, err := InitCA(dir, "a", time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := InitCA(dir, "b", time.Hour); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("err = %v", err)
	}
	if _, err := LoadCA(dir); err != nil {
		t.Errorf("LoadCA: %v", err)
	}
}

// FuzzVerify: proofs arrive from any peer that connects.
func FuzzVerify(f *testing.F) {
	fx := &fixture{}
	dir := f.TempDir()
	ca, _ := InitCA(filepath.Join(dir, "ca"), "fuzz", time.Hour)
	v, _ := NewVerifier(filepath.Join(dir, "ca", CACertFile), "")
	fx.dir, fx.ca, fx.v = dir, ca, v
	_, pub, _ := crypto.GenerateEd25519Key(rand.Reader)
	id, _ := peer.IDFromPublicKey(pub)
	crt, key, _ := ca.Issue("edge-1", id, time.Hour, dir)
	creds, _ := LoadCredentials(crt, key)
	good, _ := creds.Proof(id, time.Now())
	f.Add(good)
	f.Add([]byte(`{"v":1,"node":"x","peer":"y","expires":1,"chain":["AAAA"],"sig":"AA=="}`))
	f.Add([]byte(`{"v":1,"chain":[]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		node, err := v.Verify(data, id)
		if err == nil && node != "edge-1" {
			t.Fatalf("accepted a proof for %q", node)
		}
		if err != nil && !errors.Is(err, ErrNotMember) {
			t.Fatalf("error does not wrap ErrNotMember: %v", err)
		}
	})
}

func TestBoundPeer(t *testing.T) {
	a, b := unittest.NewPeerID(t), unittest.NewPeerID(t)
	uri := func(s string) *url.URL { u, _ := url.Parse(s); return u }
	for _, tc := range []struct {
		name string
		uris []*url.URL
		want peer.ID
		err  string
	}{
		{"none (KubeEdge)", nil, "", ""},
		{"other URIs", []*url.URL{uri("spiffe://x/y")}, "", ""},
		{"bound", []*url.URL{uri("spiffe://x/y"), uri(PeerURIPrefix + a.String())}, a, ""},
		{"twice the same", []*url.URL{uri(PeerURIPrefix + a.String()), uri(PeerURIPrefix + a.String())}, a, ""},
		{"two peers", []*url.URL{uri(PeerURIPrefix + a.String()), uri(PeerURIPrefix + b.String())}, "", "bound to two peers"},
		{"malformed", []*url.URL{uri(PeerURIPrefix + "nope")}, "", "not a peer ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := BoundPeer(&x509.Certificate{URIs: tc.uris})
			if got != tc.want || (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("BoundPeer = %q, %v; want %q, error containing %q", got, err, tc.want, tc.err)
			}
		})
	}
	// Issued certificates are bound to the peer they were issued for.
	dir := t.TempDir()
	ca, err := InitCA(filepath.Join(dir, "ca"), "test-ca", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	crt, _, err := ca.Issue("edge-1", a, time.Hour, dir)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(crt)
	chain, err := ParseChain(data)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := BoundPeer(chain[0]); got != a || err != nil {
		t.Errorf("issued certificate bound to %q (%v), want %s", got, err, a)
	}
	if _, err := ParseChain([]byte("not PEM")); err == nil {
		t.Error("ParseChain accepted non-PEM input")
	}
}
