package membership

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgelink/edgelink/tests/unittest"
)

// A request NewRequest makes passes CheckRequest, and the certificate
// SignRequest makes for it proves the node with a key that never left it.
func TestRequestSignedProvesMembership(t *testing.T) {
	f := newFixture(t)
	id := unittest.NewPeerID(t)
	key, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	reqPEM, err := NewRequest(key, "cloud-1", id)
	if err != nil {
		t.Fatal(err)
	}
	req, bound, err := CheckRequest(reqPEM, "cloud-1")
	if err != nil || bound != id {
		t.Fatalf("CheckRequest = %s, %v; want %s", bound, err, id)
	}
	certPEM, err := f.ca.SignRequest(req, "cloud-1", bound, 7*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := ParseChain(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	if life := time.Until(chain[0].NotAfter); life < 7*24*time.Hour-time.Minute || life > 7*24*time.Hour {
		t.Errorf("certificate lives %s, want 168h", life)
	}
	proof, err := (&Credentials{Node: "cloud-1", Chain: chain, Key: key}).Proof(id, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if node, err := f.v.Verify(proof, id); err != nil || node != "cloud-1" {
		t.Fatalf("Verify = %q, %v", node, err)
	}
	// Bound to the peer in the request: another peer cannot use it.
	other := unittest.NewPeerID(t)
	proof, _ = (&Credentials{Node: "cloud-1", Chain: chain, Key: key}).Proof(other, time.Now())
	if _, err := f.v.Verify(proof, other); err == nil || !strings.Contains(err.Error(), "bound to peer") {
		t.Fatalf("Verify by another peer = %v; want bound-to-peer refusal", err)
	}
}

// A certificate never outlives the CA that signed it.
func TestSignRequestStopsAtTheCAsEnd(t *testing.T) {
	ca, err := NewCA("short", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id := unittest.NewPeerID(t)
	key, _ := NewKey()
	reqPEM, _ := NewRequest(key, "n", id)
	req, _, err := CheckRequest(reqPEM, "n")
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.SignRequest(req, "n", id, 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	chain, _ := ParseChain(certPEM)
	if chain[0].NotAfter.After(ca.Cert.NotAfter) {
		t.Fatalf("certificate ends %s, after its CA (%s)", chain[0].NotAfter, ca.Cert.NotAfter)
	}
}

// CheckRequest refuses every request that is not exactly a member's, and
// says why.
func TestCheckRequestRefuses(t *testing.T) {
	id := unittest.NewPeerID(t)
	ec, _ := NewKey()
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	peerURI, _ := url.Parse(PeerURIPrefix + id.String())
	otherURI, _ := url.Parse("spiffe://cluster/ns/x")
	raw := func(key crypto.Signer, tmpl x509.CertificateRequest) []byte {
		der, err := x509.CreateCertificateRequest(rand.Reader, &tmpl, key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}
	good := raw(ec, x509.CertificateRequest{Subject: pkix.Name{CommonName: "cloud-1"}, URIs: []*url.URL{peerURI}})
	tampered := []byte(strings.Replace(string(good), string(good[70:74]), "AAAA", 1))
	tests := []struct {
		name, want string
		req        []byte
		node       string
	}{
		{"not PEM", "not a PEM CERTIFICATE REQUEST", []byte("hello"), "cloud-1"},
		{"a certificate", "not a PEM CERTIFICATE REQUEST", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), "cloud-1"},
		{"two blocks", "more than one PEM block", append(append([]byte{}, good...), good...), "cloud-1"},
		{"tampered", "spec.request", tampered, "cloud-1"},
		{"another node", `want "CN=cloud-2"`, good, "cloud-2"},
		{"organization", "nothing else", raw(ec, x509.CertificateRequest{Subject: pkix.Name{CommonName: "cloud-1", Organization: []string{"system:masters"}}, URIs: []*url.URL{peerURI}}), "cloud-1"},
		{"DNS name", "DNS, IP or e-mail", raw(ec, x509.CertificateRequest{Subject: pkix.Name{CommonName: "cloud-1"}, URIs: []*url.URL{peerURI}, DNSNames: []string{"cloudcore"}}), "cloud-1"},
		{"IP", "DNS, IP or e-mail", raw(ec, x509.CertificateRequest{Subject: pkix.Name{CommonName: "cloud-1"}, URIs: []*url.URL{peerURI}, IPAddresses: []net.IP{net.IPv4(10, 0, 0, 1)}}), "cloud-1"},
		{"no peer", "0 URI names", raw(ec, x509.CertificateRequest{Subject: pkix.Name{CommonName: "cloud-1"}}), "cloud-1"},
		{"two URIs", "2 URI names", raw(ec, x509.CertificateRequest{Subject: pkix.Name{CommonName: "cloud-1"}, URIs: []*url.URL{peerURI, otherURI}}), "cloud-1"},
		{"other URI", "is not edgelink:peer:", raw(ec, x509.CertificateRequest{Subject: pkix.Name{CommonName: "cloud-1"}, URIs: []*url.URL{otherURI}}), "cloud-1"},
		{"P-384", "want P-256", raw(p384, x509.CertificateRequest{Subject: pkix.Name{CommonName: "cloud-1"}, URIs: []*url.URL{peerURI}}), "cloud-1"},
		{"RSA", "want ECDSA P-256 or Ed25519", raw(rsaKey, x509.CertificateRequest{Subject: pkix.Name{CommonName: "cloud-1"}, URIs: []*url.URL{peerURI}}), "cloud-1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := CheckRequest(tt.req, tt.node)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckRequest = %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

// The CA's PEM form round-trips (the controller keeps it in a Secret).
func TestCAPEMRoundTrip(t *testing.T) {
	ca, err := NewCA("c", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	crt, key := ca.PEM()
	back, err := ParseCA(crt, key)
	if err != nil || !back.Cert.Equal(ca.Cert) {
		t.Fatalf("ParseCA = %v", err)
	}
	other, _ := NewCA("d", time.Hour)
	_, otherKey := other.PEM()
	if _, err := ParseCA(crt, otherKey); err == nil {
		t.Fatal("ParseCA took another CA's key")
	}
}

// With a KubeEdge CA file, each kind of certificate is vouched for by its
// own CA only: a peer-bound (EdgeLink) certificate signed by KubeEdge's CA
// is refused, and so is a system:node: certificate signed by EdgeLink's.
func TestVerifierBindsEachKindToItsCA(t *testing.T) {
	f := newFixture(t)
	ke, err := InitCA(filepath.Join(f.dir, "kubeedge"), "kubeedge", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(filepath.Join(f.dir, "ca", CACertFile), filepath.Join(f.dir, "kubeedge", CACertFile))
	if err != nil {
		t.Fatal(err)
	}
	id := unittest.NewPeerID(t)
	byKE := &fixture{dir: f.dir, ca: ke}
	check := func(name string, proof []byte, want string) {
		t.Helper()
		_, err := v.Verify(proof, id)
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: refused: %v", name, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: Verify = %v; want %q", name, err, want)
		}
	}
	check("EdgeLink certificate from the cluster CA", f.rawProof(t, id, id, "cloud-1", nil), "")
	check("KubeEdge certificate from KubeEdge's CA", byKE.rawProof(t, id, "", KubeEdgeNodePrefix+"edge-1", nil, "edge-1"), "")
	check("EdgeLink certificate from KubeEdge's CA", byKE.rawProof(t, id, id, "cloud-1", nil), "not from the cluster CA")
	check("KubeEdge certificate from the cluster CA", f.rawProof(t, id, "", KubeEdgeNodePrefix+"edge-1", nil, "edge-1"), "not from KubeEdge's CA")

	// Both files are read again when they change.
	if err := os.WriteFile(filepath.Join(f.dir, "kubeedge", CACertFile), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Reload(); err == nil || !strings.Contains(err.Error(), "kubeedge") {
		t.Errorf("Reload of a broken KubeEdge CA = %v; want an error naming its file", err)
	}
	check("KubeEdge certificate after a failed reload", byKE.rawProof(t, id, "", KubeEdgeNodePrefix+"edge-1", nil, "edge-1"), "")
}

// CheckRequest takes whatever a CertificateSigningRequest's spec.request
// holds: it never panics, and what it accepts is a request for the node.
func FuzzCheckRequest(f *testing.F) {
	key, _ := NewKey()
	good, err := NewRequest(key, "cloud-1", unittest.NewPeerID(f))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		req, id, err := CheckRequest(data, "cloud-1")
		if err != nil {
			return
		}
		if req.Subject.CommonName != "cloud-1" || id.Validate() != nil {
			t.Fatalf("accepted a request for %q bound to %q", req.Subject.CommonName, id)
		}
	})
}
