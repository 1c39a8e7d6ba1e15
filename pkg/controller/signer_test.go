package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/edgelink/edgelink/pkg/membership"
	"github.com/edgelink/edgelink/tests/unittest"
)

const agentUser = "system:serviceaccount:edgelink:edgelink"

// memberCSR is the request an agent on node makes, as the API server
// stores it (username and extra from the requester's token).
func memberCSR(t *testing.T, name, node, user, boundNode string) *certv1.CertificateSigningRequest {
	t.Helper()
	key, err := membership.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	req, err := membership.NewRequest(key, node, unittest.NewPeerID(t))
	if err != nil {
		t.Fatal(err)
	}
	csr := &certv1.CertificateSigningRequest{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: certv1.CertificateSigningRequestSpec{Request: req, SignerName: membership.SignerName,
			Usages: []certv1.KeyUsage{certv1.UsageDigitalSignature, certv1.UsageClientAuth}, Username: user},
	}
	if boundNode != "" {
		csr.Spec.Extra = map[string]certv1.ExtraValue{NodeNameExtra: {boundNode}}
	}
	return csr
}

func TestCheckMemberRequest(t *testing.T) {
	node, _, _, err := CheckMemberRequest(memberCSR(t, "a", "cloud-1", agentUser, "cloud-1"), agentUser)
	if err != nil || node != "cloud-1" {
		t.Fatalf("the agent's own request: %q, %v", node, err)
	}
	tests := []struct {
		name, want string
		csr        func() *certv1.CertificateSigningRequest
	}{
		{"another node's certificate", `want "CN=cloud-1"`, func() *certv1.CertificateSigningRequest {
			return memberCSR(t, "x", "cloud-2", agentUser, "cloud-1")
		}},
		{"another requester", `requested by "system:serviceaccount:default:default"`, func() *certv1.CertificateSigningRequest {
			return memberCSR(t, "x", "cloud-1", "system:serviceaccount:default:default", "cloud-1")
		}},
		{"a token bound to no node", "not bound to one node", func() *certv1.CertificateSigningRequest {
			return memberCSR(t, "x", "cloud-1", agentUser, "")
		}},
		{"two nodes", "not bound to one node", func() *certv1.CertificateSigningRequest {
			c := memberCSR(t, "x", "cloud-1", agentUser, "cloud-1")
			c.Spec.Extra[NodeNameExtra] = certv1.ExtraValue{"cloud-1", "cloud-2"}
			return c
		}},
		{"server auth too", "usages", func() *certv1.CertificateSigningRequest {
			c := memberCSR(t, "x", "cloud-1", agentUser, "cloud-1")
			c.Spec.Usages = append(c.Spec.Usages, certv1.UsageServerAuth)
			return c
		}},
		{"no client auth", "usages", func() *certv1.CertificateSigningRequest {
			c := memberCSR(t, "x", "cloud-1", agentUser, "cloud-1")
			c.Spec.Usages = []certv1.KeyUsage{certv1.UsageDigitalSignature}
			return c
		}},
		{"another signer", "signer", func() *certv1.CertificateSigningRequest {
			c := memberCSR(t, "x", "cloud-1", agentUser, "cloud-1")
			c.Spec.SignerName = "kubernetes.io/kube-apiserver-client"
			return c
		}},
		{"garbage request", "not a PEM", func() *certv1.CertificateSigningRequest {
			c := memberCSR(t, "x", "cloud-1", agentUser, "cloud-1")
			c.Spec.Request = []byte("garbage")
			return c
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, _, err := CheckMemberRequest(tt.csr(), agentUser); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("CheckMemberRequest = %v; want an error containing %q", err, tt.want)
			}
		})
	}
}

// The signer's decisions against a fake API (the real one is in
// tests/e2e/enroll_test.go): a CA made once and kept, the agent's request
// approved and signed for the lifetime asked (at most the signer's), a
// request for a node that does not exist denied with the reason.
func TestSignerHandles(t *testing.T) {
	ctx := context.Background()
	kube := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "cloud-1"}})
	s := &Signer{Kube: kube, Namespace: "edgelink", CASecret: "edgelink-ca", CAConfigMap: "edgelink-ca",
		AgentUser: agentUser, Lifetime: 7 * 24 * time.Hour}
	ca, err := s.ensureCA(ctx)
	if err != nil {
		t.Fatal(err)
	}
	again, err := (&Signer{Kube: kube, Namespace: "edgelink", CASecret: "edgelink-ca"}).ensureCA(ctx)
	if err != nil || !again.Cert.Equal(ca.Cert) {
		t.Fatalf("a second start made another CA (%v)", err)
	}
	s.ca = ca
	if err := s.publish(ctx); err != nil {
		t.Fatal(err)
	}
	cm, err := kube.CoreV1().ConfigMaps("edgelink").Get(ctx, "edgelink-ca", metav1.GetOptions{})
	if err != nil || !strings.Contains(cm.Data[CAConfigMapCert], "BEGIN CERTIFICATE") || strings.Contains(cm.Data[CAConfigMapCert], "PRIVATE KEY") {
		t.Fatalf("CA ConfigMap = %v, %v", cm.Data, err)
	}

	csrs := kube.CertificatesV1().CertificateSigningRequests()
	good := memberCSR(t, "good", "cloud-1", agentUser, "cloud-1")
	day := int32(86400)
	good.Spec.ExpirationSeconds = &day
	ghost := memberCSR(t, "ghost", "cloud-9", agentUser, "cloud-9")
	for _, c := range []*certv1.CertificateSigningRequest{good, ghost} {
		if _, err := csrs.Create(ctx, c, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if err := s.handle(ctx, c.DeepCopy()); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := csrs.Get(ctx, "good", metav1.GetOptions{})
	if !hasCondition(got, certv1.CertificateApproved) || len(got.Status.Certificate) == 0 {
		t.Fatalf("the agent's request: conditions %v, certificate %d bytes", got.Status.Conditions, len(got.Status.Certificate))
	}
	chain, err := membership.ParseChain(got.Status.Certificate)
	if err != nil {
		t.Fatal(err)
	}
	if life := chain[0].NotAfter.Sub(chain[0].NotBefore); life > 24*time.Hour+10*time.Minute {
		t.Errorf("certificate lives %s; the request asked for 24h", life)
	}
	if chain[0].Subject.CommonName != "cloud-1" || chain[0].CheckSignatureFrom(ca.Cert) != nil {
		t.Errorf("certificate %q not signed by the cluster CA for cloud-1", chain[0].Subject.CommonName)
	}
	got, _ = csrs.Get(ctx, "ghost", metav1.GetOptions{})
	if !hasCondition(got, certv1.CertificateDenied) || len(got.Status.Certificate) != 0 ||
		!strings.Contains(got.Status.Conditions[0].Message, `node "cloud-9" does not exist`) {
		t.Fatalf("request for a missing node: %+v", got.Status)
	}
	// Handled requests are left alone.
	if err := s.handle(ctx, got); err != nil || len(got.Status.Conditions) != 1 {
		t.Fatalf("handling a denied request again: %v, %v", err, got.Status.Conditions)
	}
}
