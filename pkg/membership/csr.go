package membership

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Enrollment through the Kubernetes CertificateSigningRequest API: a cloud
// node's agent makes its key, sends a request (NewRequest) as a
// CertificateSigningRequest with spec.signerName SignerName, and
// `edgelink controller` checks it (CheckRequest, plus who asked: see
// pkg/controller/signer.go) and signs it (SignRequest). The key never
// leaves the node.
//
// The request (PKCS#10, PEM "CERTIFICATE REQUEST"): subject common name =
// the node name and nothing else; exactly one URI SAN
// "edgelink:peer:<libp2p peer ID>"; no DNS, IP or e-mail SAN; an ECDSA
// P-256 or Ed25519 key. The certificate signed for it is the one
// `edgelink ca issue` makes: common name the node, the URI SAN, key usage
// digitalSignature, extended key usage client authentication.

// SignerName is the CertificateSigningRequest signer that `edgelink
// controller` serves.
const SignerName = "edgelink.io/member"

// NewKey makes a member key (ECDSA P-256).
func NewKey() (*ecdsa.PrivateKey, error) {
	return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
}

// NewRequest makes the PEM certificate request of node, bound to peer id,
// signed by key.
func NewRequest(key crypto.Signer, node string, id peer.ID) ([]byte, error) {
	if err := id.Validate(); err != nil {
		return nil, fmt.Errorf("peer ID %q: %w", id, err)
	}
	u, err := url.Parse(PeerURIPrefix + id.String())
	if err != nil {
		return nil, err
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: node},
		URIs:    []*url.URL{u},
	}, key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}), nil
}

// CheckRequest parses a PEM certificate request and returns it with the
// peer ID it binds, refusing anything but the request NewRequest makes for
// node: each refusal says what is wrong.
func CheckRequest(reqPEM []byte, node string) (*x509.CertificateRequest, peer.ID, error) {
	b, rest := pem.Decode(reqPEM)
	if b == nil || b.Type != "CERTIFICATE REQUEST" {
		return nil, "", errors.New("spec.request is not a PEM CERTIFICATE REQUEST")
	}
	if len(rest) > 0 {
		if b2, _ := pem.Decode(rest); b2 != nil {
			return nil, "", errors.New("spec.request holds more than one PEM block")
		}
	}
	req, err := x509.ParseCertificateRequest(b.Bytes)
	if err != nil {
		return nil, "", fmt.Errorf("spec.request: %w", err)
	}
	if err := req.CheckSignature(); err != nil {
		return nil, "", fmt.Errorf("spec.request is not signed by its key: %w", err)
	}
	switch k := req.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, "", fmt.Errorf("key is ECDSA on %s; want P-256", k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return nil, "", fmt.Errorf("key is %T; want ECDSA P-256 or Ed25519", req.PublicKey)
	}
	want := pkix.Name{CommonName: node}
	if req.Subject.String() != want.String() {
		return nil, "", fmt.Errorf("subject is %q; want %q (the node name, nothing else)", req.Subject.String(), want.String())
	}
	if len(req.DNSNames)+len(req.IPAddresses)+len(req.EmailAddresses) > 0 {
		return nil, "", errors.New("request carries DNS, IP or e-mail names; a member certificate has none")
	}
	if len(req.URIs) != 1 {
		return nil, "", fmt.Errorf("request carries %d URI names; want one, %s<peer ID>", len(req.URIs), PeerURIPrefix)
	}
	id, err := BoundPeer(&x509.Certificate{URIs: req.URIs})
	if err != nil {
		return nil, "", err
	}
	if id == "" {
		return nil, "", fmt.Errorf("URI name %q is not %s<peer ID>", req.URIs[0], PeerURIPrefix)
	}
	return req, id, nil
}

// SignRequest signs a request CheckRequest accepted for node and peer id:
// the PEM member certificate, valid for lifetime (at most until the CA
// itself expires).
func (ca *CA) SignRequest(req *x509.CertificateRequest, node string, id peer.ID, lifetime time.Duration) ([]byte, error) {
	der, err := ca.sign(node, id, req.PublicKey, time.Now().Add(lifetime))
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}
