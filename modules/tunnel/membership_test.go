package tunnel

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/tests/unittest"
)

// The node's own membership is checked before the tunnel starts, with an
// error that names what to fix: unreadable certificate or key, a CA file
// that is missing, and a certificate other members would refuse (another
// CA, another peer ID, another node). A KubeEdge-shaped certificate
// (common name system:node:<node>, no peer binding) is the node's; one
// that names the node only in a DNS name is not.
func TestLoadMembership(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t, dir+"/ca")
	other := newTestCA(t, dir+"/other-ca")
	self := unittest.NewPeerID(t)
	good, goodKey := ca.issue(t, "edge-a1", self, dir+"/good")
	wrongPeer, wrongPeerKey := ca.issue(t, "edge-a1", unittest.NewPeerID(t), dir+"/wrong-peer")
	foreign, foreignKey := other.issue(t, "edge-a1", self, dir+"/foreign")
	otherNode, otherNodeKey := ca.issue(t, "edge-b9", self, dir+"/other-node")
	tests := []struct {
		name     string
		tn       v1.Tunnel
		node     string
		wantErr  []string // none: success
		wantNode string
	}{
		{name: "valid", tn: v1.Tunnel{CertFile: good, KeyFile: goodKey, CAFile: ca.caFile}, node: "edge-a1", wantNode: "edge-a1"},
		{name: "missing certificate", tn: v1.Tunnel{CertFile: dir + "/none.crt", KeyFile: goodKey, CAFile: ca.caFile}, node: "edge-a1",
			wantErr: []string{"modules.tunnel.certFile/keyFile", "none.crt"}},
		{name: "key of another certificate", tn: v1.Tunnel{CertFile: good, KeyFile: wrongPeerKey, CAFile: ca.caFile}, node: "edge-a1",
			wantErr: []string{"modules.tunnel.certFile/keyFile", "does not belong"}},
		{name: "missing CA", tn: v1.Tunnel{CertFile: good, KeyFile: goodKey, CAFile: dir + "/none-ca.crt"}, node: "edge-a1",
			wantErr: []string{"modules.tunnel.caFile", "none-ca.crt"}},
		{name: "certificate of another peer ID", tn: v1.Tunnel{CertFile: wrongPeer, KeyFile: wrongPeerKey, CAFile: ca.caFile}, node: "edge-a1",
			wantErr: []string{"would be refused by other members", wrongPeer, "bound to peer"}},
		{name: "certificate from another CA", tn: v1.Tunnel{CertFile: foreign, KeyFile: foreignKey, CAFile: ca.caFile}, node: "edge-a1",
			wantErr: []string{"would be refused by other members", "not from the cluster CA"}},
		{name: "certificate of another node", tn: v1.Tunnel{CertFile: otherNode, KeyFile: otherNodeKey, CAFile: ca.caFile}, node: "edge-a1",
			wantErr: []string{"would be refused by other members", "edge-b9"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			creds, ver, err := loadMembership(tt.tn, tt.node, self)
			if len(tt.wantErr) == 0 {
				if err != nil || creds == nil || ver == nil {
					t.Fatalf("loadMembership: %v", err)
				}
				if creds.Node != tt.wantNode {
					t.Errorf("credentials for %q, want %q", creds.Node, tt.wantNode)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}

	// KubeEdge's shape: the proof is for the node the common name names,
	// and other members verify it as that node.
	crt, key := issueRaw(t, ca, "system:node:edge-a1", nil, dir+"/kubeedge")
	creds, ver, err := loadMembership(v1.Tunnel{CertFile: crt, KeyFile: key, CAFile: ca.caFile}, "edge-a1", self)
	if err != nil {
		t.Fatalf("KubeEdge-shaped certificate: %v", err)
	}
	proof, err := creds.Proof(self, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if n, err := ver.Verify(proof, self); err != nil || n != "edge-a1" {
		t.Errorf("members see the KubeEdge-shaped certificate's proof as %q (%v), want edge-a1", n, err)
	}

	// A DNS name counts for nothing: any certificate under KubeEdge's root
	// CA may carry one.
	crt, key = issueRaw(t, ca, "edge-a1.site-a.example", []string{"edge-a1"}, dir+"/dns-only")
	if _, _, err := loadMembership(v1.Tunnel{CertFile: crt, KeyFile: key, CAFile: ca.caFile}, "edge-a1", self); err == nil ||
		!strings.Contains(err.Error(), "would be refused by other members") || !strings.Contains(err.Error(), "edge-a1.site-a.example") {
		t.Errorf("a certificate naming the node only in a DNS name: %v, want a refusal naming its common name", err)
	}
}

// issueRaw writes a member certificate with the given common name and
// DNS names (no peer binding), signed by ca, and its key.
func issueRaw(t *testing.T, ca *testCA, cn string, dns []string, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		DNSNames: dns, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.ca.Cert, &k.PublicKey, ca.ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "node.crt"), filepath.Join(dir, "node.key")
	if err := os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, key
}
