package membership

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// CA files in a CA directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// CA is EdgeLink's own cluster CA.
type CA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// InitCA creates a CA in dir (ca.crt 0644, ca.key 0600). It refuses to
// overwrite an existing CA: replacing it would expel every member.
func InitCA(dir, name string, validity time.Duration) (*CA, error) {
	if _, err := os.Stat(filepath.Join(dir, CAKeyFile)); err == nil {
		return nil, fmt.Errorf("a CA already exists in %s; remove it first if you really mean to replace it (every member certificate becomes invalid)", dir)
	}
	ca, err := NewCA(name, validity)
	if err != nil {
		return nil, err
	}
	certPEM, keyPEM := ca.PEM()
	if err := writeFile(filepath.Join(dir, CAKeyFile), keyPEM, 0o600); err != nil {
		return nil, err
	}
	if err := writeFile(filepath.Join(dir, CACertFile), certPEM, 0o644); err != nil {
		return nil, err
	}
	return ca, nil
}

// NewCA makes a CA in memory (`edgelink controller` keeps it in a Secret).
func NewCA(name string, validity time.Duration) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"EdgeLink"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(validity),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, _ := x509.ParseCertificate(der)
	return &CA{Cert: cert, Key: key}, nil
}

// PEM encodes the CA's certificate and key.
func (ca *CA) PEM() (certPEM, keyPEM []byte) {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Cert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: mustMarshalEC(ca.Key)})
}

// ParseCA decodes a CA that PEM encoded.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	chain, err := ParseChain(certPEM)
	if err != nil {
		return nil, fmt.Errorf("CA certificate %w", err)
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil || b.Type != "EC PRIVATE KEY" {
		return nil, errors.New("CA key is not a PEM EC private key")
	}
	key, err := x509.ParseECPrivateKey(b.Bytes)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	if !chain[0].IsCA || !publicKeysEqual(chain[0].PublicKey, key.Public()) {
		return nil, errors.New("CA certificate is not a CA, or not the key's")
	}
	return &CA{Cert: chain[0], Key: key}, nil
}

// LoadCA reads the CA in dir.
func LoadCA(dir string) (*CA, error) {
	creds, err := LoadCredentials(filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, err
	}
	key, ok := creds.Key.(*ecdsa.PrivateKey)
	if !ok || !creds.Chain[0].IsCA {
		return nil, fmt.Errorf("%s is not an EdgeLink CA", dir)
	}
	return &CA{Cert: creds.Chain[0], Key: key}, nil
}

// Issue makes a member certificate for node, bound to peer id (a URI SAN
// edgelink:peer:<id>), with a fresh key, and writes <out>/<node>.crt and
// <out>/<node>.key (0600). It returns the two paths.
func (ca *CA) Issue(node string, id peer.ID, validity time.Duration, out string) (string, string, error) {
	if node == "" {
		return "", "", errors.New("node name is required")
	}
	if err := id.Validate(); err != nil {
		return "", "", fmt.Errorf("peer ID %q: %w", id, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	der, err := ca.sign(node, id, &key.PublicKey, time.Now().Add(validity))
	if err != nil {
		return "", "", err
	}
	certPath, keyPath := filepath.Join(out, node+".crt"), filepath.Join(out, node+".key")
	if err := writePEM(keyPath, "EC PRIVATE KEY", mustMarshalEC(key), 0o600); err != nil {
		return "", "", err
	}
	if err := writePEM(certPath, "CERTIFICATE", der, 0o644); err != nil {
		return "", "", err
	}
	return certPath, keyPath, nil
}

// sign makes the member certificate of node bound to peer id for pub:
// a leaf (no CA), digitalSignature, client authentication,
// until notAfter or the CA's own end, whichever is first.
func (ca *CA) sign(node string, id peer.ID, pub crypto.PublicKey, notAfter time.Time) ([]byte, error) {
	u, _ := url.Parse(PeerURIPrefix + id.String())
	if notAfter.After(ca.Cert.NotAfter) {
		notAfter = ca.Cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: node, Organization: []string{"EdgeLink members"}},
		DNSNames:              []string{node},
		URIs:                  []*url.URL{u},
		NotBefore:             time.Now().Add(-5 * time.Minute),
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	return x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n
}

func mustMarshalEC(k *ecdsa.PrivateKey) []byte {
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		panic(err) // a P-256 key always marshals
	}
	return der
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	return writeFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode)
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
