// Package membership decides who belongs to the mesh. A node proves
// membership with a certificate from the cluster CA naming the node, and a
// signature by that certificate's key binding the node name to its libp2p
// peer ID. The CA is EdgeLink's own (`edgelink ca init` / `edgelink ca
// issue`) or KubeEdge's root CA (cloudcore's edge certificates name the
// node). No shared secret exists anywhere: a peer without a valid proof
// can neither reach pods nor use a relay.
//
// Proof wire format (JSON, at most MaxProofSize bytes):
//
//	{"v":1,"node":"edge-1","peer":"12D3KooW...","expires":1764200000,
//	 "chain":["<base64 DER leaf>","<base64 DER intermediate>"...],
//	 "sig":"<base64 signature>"}
//
// sig is the leaf key's signature (ECDSA/RSA over SHA-256, or Ed25519) of
// SigningInput(node, peer, expires). A proof is valid for ProofLifetime.
package membership

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Limits of a proof.
const (
	MaxProofSize  = 64 << 10
	ProofLifetime = 24 * time.Hour
	version       = 1
	// PeerURIPrefix marks the URI SAN an EdgeLink member certificate uses
	// to bind the libp2p peer ID too: "edgelink:peer:<peer ID>".
	PeerURIPrefix = "edgelink:peer:"
)

// ErrNotMember is wrapped by every verification failure.
var ErrNotMember = errors.New("not a mesh member")

type proofJSON struct {
	V       int      `json:"v"`
	Node    string   `json:"node"`
	Peer    string   `json:"peer"`
	Expires int64    `json:"expires"`
	Chain   [][]byte `json:"chain"`
	Sig     []byte   `json:"sig"`
}

// SigningInput is what a proof's signature covers.
func SigningInput(node string, id peer.ID, expires int64) []byte {
	return []byte("edgelink-membership-v1\n" + node + "\n" + id.String() + "\n" + strconv.FormatInt(expires, 10) + "\n")
}

// Credentials are a node's certificate chain and key.
type Credentials struct {
	Node  string
	Chain []*x509.Certificate
	Key   crypto.Signer
}

// LoadCredentials reads a PEM certificate (chain, leaf first) and its PEM
// private key. The node name is the leaf's common name, without the
// "system:node:" that starts it in KubeEdge's certificates.
func LoadCredentials(certFile, keyFile string) (*Credentials, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("membership certificate: %w", err)
	}
	chain, err := ParseChain(certPEM)
	if err != nil {
		return nil, fmt.Errorf("membership certificate %s %w", certFile, err)
	}
	key, err := loadKey(keyFile)
	if err != nil {
		return nil, err
	}
	if !publicKeysEqual(chain[0].PublicKey, key.Public()) {
		return nil, fmt.Errorf("membership key %s does not belong to certificate %s", keyFile, certFile)
	}
	node, _ := strings.CutPrefix(chain[0].Subject.CommonName, KubeEdgeNodePrefix)
	return &Credentials{Node: node, Chain: chain, Key: key}, nil
}

func loadKey(path string) (crypto.Signer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("membership key: %w", err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		return nil, fmt.Errorf("membership key %s is not PEM", path)
	}
	var k any
	switch b.Type {
	case "EC PRIVATE KEY":
		k, err = x509.ParseECPrivateKey(b.Bytes)
	case "RSA PRIVATE KEY":
		k, err = x509.ParsePKCS1PrivateKey(b.Bytes)
	default:
		k, err = x509.ParsePKCS8PrivateKey(b.Bytes)
	}
	if err != nil {
		return nil, fmt.Errorf("membership key %s: %w", path, err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("membership key %s: unsupported key type %T", path, k)
	}
	return s, nil
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}

// Proof makes this node's membership proof for peer ID self.
func (c *Credentials) Proof(self peer.ID, now time.Time) ([]byte, error) {
	expires := now.Add(ProofLifetime).Unix()
	sig, err := sign(c.Key, SigningInput(c.Node, self, expires))
	if err != nil {
		return nil, err
	}
	p := proofJSON{V: version, Node: c.Node, Peer: self.String(), Expires: expires, Sig: sig}
	for _, cert := range c.Chain {
		p.Chain = append(p.Chain, cert.Raw)
	}
	return json.Marshal(p)
}

func sign(key crypto.Signer, msg []byte) ([]byte, error) {
	if _, ok := key.(ed25519.PrivateKey); ok {
		return key.Sign(rand.Reader, msg, crypto.Hash(0))
	}
	sum := sha256.Sum256(msg)
	return key.Sign(rand.Reader, sum[:], crypto.SHA256)
}

func verifySig(pub crypto.PublicKey, msg, sig []byte) bool {
	sum := sha256.Sum256(msg)
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return ed25519.Verify(k, msg, sig)
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(k, sum[:], sig)
	case *rsa.PublicKey:
		return rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig) == nil
	}
	return false
}

// Verifier checks proofs against the cluster CA, read from a file that
// Reload reads again when it changed (a rotated CA).
//
// With a KubeEdge CA file as well, each kind of certificate has its own
// root: EdgeLink's (bound to a peer ID, common name N) must chain to the
// cluster CA file, KubeEdge's (common name system:node:N) to the KubeEdge
// CA file. Without one, the cluster CA file vouches for both kinds.
type Verifier struct {
	Now func() time.Time

	cluster, kubeEdge *caFile // kubeEdge is nil: cluster vouches for both
}

// caFile is a CA bundle read from a file, read again when it changed.
type caFile struct {
	path  string
	roots atomic.Pointer[x509.CertPool]
	stamp atomic.Pointer[fileStamp] // of the file read last
}

type fileStamp struct {
	mod  time.Time
	size int64
}

// NewVerifier trusts the PEM CA certificates in caFile and, for the
// certificates cloudcore issues to edge nodes, those in kubeEdgeCAFile
// (empty: caFile's for both).
func NewVerifier(caFile, kubeEdgeCAFile string) (*Verifier, error) {
	v := &Verifier{Now: time.Now, cluster: newCAFile(caFile)}
	if kubeEdgeCAFile != "" {
		v.kubeEdge = newCAFile(kubeEdgeCAFile)
	}
	if _, err := v.Reload(); err != nil {
		return nil, err
	}
	return v, nil
}

func newCAFile(path string) *caFile { return &caFile{path: path} }

// Reload reads the CA files again if a size or modification time
// changed, and reports whether one did. A file that cannot be read or
// holds no certificate keeps the CA read before (and is an error).
func (v *Verifier) Reload() (bool, error) {
	changed, err := v.cluster.reload()
	if err != nil || v.kubeEdge == nil {
		return changed, err
	}
	ke, err := v.kubeEdge.reload()
	return changed || ke, err
}

func (f *caFile) reload() (bool, error) {
	fi, err := os.Stat(f.path)
	if err != nil {
		return false, fmt.Errorf("membership CA: %w", err)
	}
	stamp := &fileStamp{mod: fi.ModTime(), size: fi.Size()}
	if old := f.stamp.Load(); old != nil && *old == *stamp {
		return false, nil
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		return false, fmt.Errorf("membership CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return false, fmt.Errorf("membership CA %s holds no PEM certificate", f.path)
	}
	f.roots.Store(pool)
	f.stamp.Store(stamp)
	return true, nil
}

// roots is the pool that vouches for a certificate of this kind.
func (v *Verifier) roots(bound bool) *x509.CertPool {
	if bound || v.kubeEdge == nil {
		return v.cluster.roots.Load()
	}
	return v.kubeEdge.roots.Load()
}

// Member is what a valid proof establishes: the node, until Expires (the
// earliest of the proof's expiry and its certificates').
type Member struct {
	Node    string
	Expires time.Time
}

// Verify checks a proof presented by remote and returns the node name it
// proves. Every failure wraps ErrNotMember and says why.
func (v *Verifier) Verify(data []byte, remote peer.ID) (string, error) {
	m, err := v.Check(data, remote)
	return m.Node, err
}

// Check is Verify, with how long the membership holds.
func (v *Verifier) Check(data []byte, remote peer.ID) (Member, error) {
	fail := func(format string, args ...any) (Member, error) {
		return Member{}, fmt.Errorf("%w: %s", ErrNotMember, fmt.Sprintf(format, args...))
	}
	if len(data) > MaxProofSize {
		return fail("proof of %d bytes exceeds %d", len(data), MaxProofSize)
	}
	var p proofJSON
	if err := json.Unmarshal(data, &p); err != nil {
		return fail("proof is not valid JSON: %v", err)
	}
	if p.V != version {
		return fail("proof version %d, want %d", p.V, version)
	}
	if p.Peer != remote.String() {
		return fail("proof is for peer %q, presented by %s", p.Peer, remote)
	}
	now := v.Now()
	if p.Expires < now.Unix() {
		return fail("proof expired at %s", time.Unix(p.Expires, 0).UTC().Format(time.RFC3339))
	}
	if p.Expires > now.Add(ProofLifetime+time.Hour).Unix() {
		return fail("proof expires too far in the future")
	}
	if len(p.Chain) == 0 || len(p.Chain) > 8 {
		return fail("proof carries %d certificates", len(p.Chain))
	}
	var certs []*x509.Certificate
	for i, der := range p.Chain {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return fail("certificate %d: %v", i, err)
		}
		certs = append(certs, c)
	}
	leaf := certs[0]
	if err := checkLeaf(leaf); err != nil {
		return fail("certificate of %q: %v", leaf.Subject.CommonName, err)
	}
	bound, err := BoundPeer(leaf)
	if err != nil {
		return fail("certificate of %q: %v", p.Node, err)
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{Roots: v.roots(bound != ""), Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	if err != nil {
		var inv x509.CertificateInvalidError
		if errors.As(err, &inv) && inv.Reason == x509.Expired {
			return fail("certificate of %q expired at %s", leaf.Subject.CommonName, leaf.NotAfter.UTC().Format(time.RFC3339))
		}
		if errors.As(err, &inv) && inv.Reason == x509.IncompatibleUsage {
			return fail("certificate of %q is not for client authentication (its extended key usage)", leaf.Subject.CommonName)
		}
		which := "the cluster CA"
		if bound == "" && v.kubeEdge != nil {
			which = "KubeEdge's CA"
		}
		return fail("certificate of %q is not from %s: %v", leaf.Subject.CommonName, which, err)
	}
	if want := NodeCommonName(p.Node, bound != ""); p.Node == "" || leaf.Subject.CommonName != want {
		return fail("certificate's common name is %q, a proof for node %q needs %q", leaf.Subject.CommonName, p.Node, want)
	}
	if bound != "" && bound != remote {
		return fail("certificate of %q is bound to peer %s, presented by %s", p.Node, bound, remote)
	}
	if !verifySig(leaf.PublicKey, SigningInput(p.Node, remote, p.Expires), p.Sig) {
		return fail("signature does not verify with the certificate of %q", p.Node)
	}
	expires := time.Unix(p.Expires, 0)
	for _, c := range chains[0] {
		if c.NotAfter.Before(expires) {
			expires = c.NotAfter
		}
	}
	return Member{Node: p.Node, Expires: expires}, nil
}

// BoundPeer returns the libp2p peer ID cert is bound to by its URI SAN
// "edgelink:peer:<id>" (certificates from `edgelink ca issue`), or "" when
// it binds none (KubeEdge's certificates). A malformed peer ID, or URIs
// binding different peers, is an error.
func BoundPeer(cert *x509.Certificate) (peer.ID, error) {
	var bound peer.ID
	for _, u := range cert.URIs {
		s, ok := strings.CutPrefix(u.String(), PeerURIPrefix)
		if !ok {
			continue
		}
		id, err := peer.Decode(s)
		if err != nil {
			return "", fmt.Errorf("URI SAN %q: not a peer ID: %w", u, err)
		}
		if bound != "" && id != bound {
			return "", fmt.Errorf("bound to two peers, %s and %s", bound, id)
		}
		bound = id
	}
	return bound, nil
}

// ParseChain parses the certificates of a PEM certificate file's content
// (a chain, leaf first); other PEM blocks are skipped.
func ParseChain(certPEM []byte) ([]*x509.Certificate, error) {
	var chain []*x509.Certificate
	for rest := certPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("holds a bad certificate: %w", err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, errors.New("holds no PEM certificate")
	}
	return chain, nil
}

// KubeEdgeNodePrefix starts the common name of the certificates cloudcore
// issues to edge nodes ("system:node:<node>").
const KubeEdgeNodePrefix = "system:node:"

// NodeCommonName is the one common name that makes a certificate node's:
// the node name itself in EdgeLink's certificates (bound to a peer ID by
// their URI SAN), "system:node:<node>" in the ones cloudcore issues to
// edge nodes (bound to nothing). DNS names never count: other certificates
// under KubeEdge's root CA (cloudcore's own, say) carry names an attacker
// could pick.
func NodeCommonName(node string, bound bool) string {
	if bound {
		return node
	}
	return KubeEdgeNodePrefix + node
}

// checkLeaf refuses a certificate that may not stand for a node: a CA
// certificate, or one whose key usage does not allow signatures (the proof
// is a signature). The extended key usage (client authentication) is
// checked with the chain.
func checkLeaf(c *x509.Certificate) error {
	if c.BasicConstraintsValid && c.IsCA {
		return errors.New("is a CA certificate, not a member's")
	}
	if c.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return errors.New("key usage does not include digitalSignature")
	}
	return nil
}
