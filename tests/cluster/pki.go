package cluster

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"net"
	"os"
	"path/filepath"

	"github.com/edgelink/edgelink/tests/testutil"
)

// pki holds the paths of one run's certificates and keys (all PEM).
type pki struct {
	CACert, CAKey             string
	ServerCert, ServerKey     string // kube-apiserver serving cert
	AdminCert, AdminKey       string // O=system:masters client cert
	SAKey, SAPub              string // service-account signing key pair
	caPEM, adminPEM, adminKey []byte
}

// newPKI generates a fresh CA, the kube-apiserver serving certificate, an
// admin client certificate and a service-account key pair under dir.
// ECDSA P-256 keeps generation in the milliseconds (RSA-2048 only for the
// service-account key, which kube-apiserver signs tokens with as RS256).
func newPKI(dir string) (*pki, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	p := &pki{
		CACert: filepath.Join(dir, "ca.crt"), CAKey: filepath.Join(dir, "ca.key"),
		ServerCert: filepath.Join(dir, "apiserver.crt"), ServerKey: filepath.Join(dir, "apiserver.key"),
		AdminCert: filepath.Join(dir, "admin.crt"), AdminKey: filepath.Join(dir, "admin.key"),
		SAKey: filepath.Join(dir, "sa.key"), SAPub: filepath.Join(dir, "sa.pub"),
	}
	ca, err := testutil.NewTestCA("edgelink-test-ca")
	if err != nil {
		return nil, err
	}
	p.caPEM = ca.PEM
	if err := writeFiles(p.CACert, ca.PEM, p.CAKey, ca.KeyPEM); err != nil {
		return nil, err
	}
	leaf := func(certPath, keyPath string, tmpl *x509.Certificate) ([]byte, []byte, error) {
		crt, key, err := ca.Issue(tmpl)
		if err != nil {
			return nil, nil, err
		}
		return crt, key, writeFiles(certPath, crt, keyPath, key)
	}
	if _, _, err := leaf(p.ServerCert, p.ServerKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(10, 96, 0, 1)},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"},
	}); err != nil {
		return nil, err
	}
	p.adminPEM, p.adminKey, err = leaf(p.AdminCert, p.AdminKey, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kubernetes-admin", Organization: []string{"system:masters"}},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return nil, err
	}

	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(p.SAKey, testutil.PEMBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(saKey)), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(p.SAPub, testutil.PEMBlock("PUBLIC KEY", saPub), 0o644); err != nil {
		return nil, err
	}
	return p, nil
}

// writeFiles writes a certificate (readable) and its key (0600).
func writeFiles(certPath string, cert []byte, keyPath string, key []byte) error {
	if err := os.WriteFile(certPath, cert, 0o644); err != nil {
		return err
	}
	return os.WriteFile(keyPath, key, 0o600)
}
