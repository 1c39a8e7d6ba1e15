package tunnel

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	certclient "k8s.io/client-go/kubernetes/typed/certificates/v1"
	"k8s.io/klog/v2"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/atomicfile"
	"github.com/edgelink/edgelink/pkg/kubeclient"
	"github.com/edgelink/edgelink/pkg/membership"
	"github.com/edgelink/edgelink/pkg/version"
)

// enroller gets this node's member certificate from edgelink controller
// through the CertificateSigningRequest API (modules.tunnel.enroll; the
// request's format is in pkg/membership/csr.go, the controller's checks in
// pkg/controller/signer.go) and renews it at two thirds of its lifetime.
// Each request has a new key, made here and written only to keyFile.
type enroller struct {
	csrs              certclient.CertificateSigningRequestInterface
	node              string
	self              peer.ID
	certFile, keyFile string
	poll              time.Duration // how often a pending request is read
}

// newEnroller reaches the kube-apiserver the way modules.metaSync does
// (inCluster or kubeconfig; validation refuses the metaServer).
func newEnroller(c *v1.AgentConfig, self peer.ID) (*enroller, error) {
	m := c.Modules.MetaSync
	rc, err := kubeclient.RESTConfig(m)
	if err != nil {
		return nil, fmt.Errorf("modules.tunnel.enroll: kube-apiserver (modules.metaSync.source %s): %w", m.Source, err)
	}
	rc.UserAgent = "edgelink-agent/" + version.Version
	kube, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	t := c.Modules.Tunnel
	return &enroller{csrs: kube.CertificatesV1().CertificateSigningRequests(), node: c.NodeName, self: self,
		certFile: t.CertFile, keyFile: t.KeyFile, poll: time.Second}, nil
}

// renewAt is when a certificate is due for renewal: two thirds into its
// lifetime.
func renewAt(c *x509.Certificate) time.Time {
	return c.NotBefore.Add(c.NotAfter.Sub(c.NotBefore) * 2 / 3)
}

// current returns the credentials on disk when they are this node's,
// bound to this peer ID and not yet due for renewal.
func (e *enroller) current(now time.Time) (*membership.Credentials, bool) {
	creds, err := membership.LoadCredentials(e.certFile, e.keyFile)
	if err != nil {
		return nil, false
	}
	leaf := creds.Chain[0]
	bound, err := membership.BoundPeer(leaf)
	if err != nil || bound != e.self || creds.Node != e.node || !now.Before(renewAt(leaf)) {
		return nil, false
	}
	return creds, true
}

// ensure returns valid credentials, enrolling first when those on disk
// are missing, someone else's or due.
func (e *enroller) ensure(ctx context.Context) (*membership.Credentials, error) {
	if c, ok := e.current(time.Now()); ok {
		return c, nil
	}
	return e.enroll(ctx)
}

// enroll asks for a certificate with a new key and waits for it.
func (e *enroller) enroll(ctx context.Context) (*membership.Credentials, error) {
	key, err := membership.NewKey()
	if err != nil {
		return nil, err
	}
	req, err := membership.NewRequest(key, e.node, e.self)
	if err != nil {
		return nil, err
	}
	csr, err := e.csrs.Create(ctx, &certv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "edgelink-" + e.node + "-"},
		Spec: certv1.CertificateSigningRequestSpec{Request: req, SignerName: membership.SignerName,
			Usages: []certv1.KeyUsage{certv1.UsageDigitalSignature, certv1.UsageClientAuth}},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("modules.tunnel.enroll: creating a CertificateSigningRequest (signer %s): %w", membership.SignerName, err)
	}
	klog.InfoS("Asked for a member certificate", "csr", csr.Name, "signer", membership.SignerName, "node", e.node, "peer", e.self)
	certPEM, err := e.wait(ctx, csr.Name)
	if err != nil {
		return nil, err
	}
	chain, err := membership.ParseChain(certPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate in CertificateSigningRequest %s %w", csr.Name, err)
	}
	if bound, _ := membership.BoundPeer(chain[0]); bound != e.self || chain[0].Subject.CommonName != e.node ||
		!key.PublicKey.Equal(chain[0].PublicKey) {
		return nil, fmt.Errorf("CertificateSigningRequest %s was signed for something else than asked (common name %q)", csr.Name, chain[0].Subject.CommonName)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	// The key first: a crash between the two leaves a certificate that is
	// not the key's, which the next start replaces.
	if err := atomicfile.WriteBytes(e.keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("modules.tunnel.keyFile: %w", err)
	}
	if err := atomicfile.WriteBytes(e.certFile, certPEM, 0o644); err != nil {
		return nil, fmt.Errorf("modules.tunnel.certFile: %w", err)
	}
	klog.InfoS("Got a member certificate", "csr", csr.Name, "notAfter", chain[0].NotAfter, "renewAt", renewAt(chain[0]))
	return membership.LoadCredentials(e.certFile, e.keyFile)
}

// wait reads the request until it is signed, denied or failed.
func (e *enroller) wait(ctx context.Context, name string) ([]byte, error) {
	t := time.NewTicker(e.poll)
	defer t.Stop()
	logged := time.Now()
	for {
		csr, err := e.csrs.Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			if len(csr.Status.Certificate) > 0 {
				return csr.Status.Certificate, nil
			}
			for _, c := range csr.Status.Conditions {
				if (c.Type == certv1.CertificateDenied || c.Type == certv1.CertificateFailed) && c.Status == corev1.ConditionTrue {
					return nil, fmt.Errorf("modules.tunnel.enroll: CertificateSigningRequest %s %s: %s (%s)", name, c.Type, c.Message, c.Reason)
				}
			}
		}
		if time.Since(logged) > 30*time.Second {
			logged = time.Now()
			klog.InfoS("Still waiting for edgelink controller to sign the member certificate request", "csr", name, "signer", membership.SignerName, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
	}
}

// keepRenewed renews the certificate when due and hands each new one to
// set, until ctx ends; a failed renewal is retried every minute.
func (e *enroller) keepRenewed(ctx context.Context, creds *membership.Credentials, set func(*membership.Credentials)) {
	for {
		wait := time.Until(renewAt(creds.Chain[0]))
		select {
		case <-ctx.Done():
			return
		case <-time.After(max(wait, 0)):
		}
		next, err := e.enroll(ctx)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				return
			}
			klog.ErrorS(err, "Renewing the member certificate failed; retrying in a minute", "notAfter", creds.Chain[0].NotAfter)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Minute):
			}
			continue
		}
		creds = next
		set(creds)
	}
}
