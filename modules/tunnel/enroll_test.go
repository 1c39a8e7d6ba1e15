package tunnel

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/membership"
	"github.com/edgelink/edgelink/tests/unittest"
)

var csrResource = certv1.SchemeGroupVersion.WithResource("certificatesigningrequests")

// fakeSigner plays edgelink controller's part against client-go's fake
// clientset: it names each request as the API server would (the fake does
// not honour generateName), keeps what was asked, and answers a request
// when it is read the second time, so the enroller has to wait for it.
type fakeSigner struct {
	kube   *fake.Clientset
	answer func(*certv1.CertificateSigningRequest) // sets the status; nil: never answers

	mu      sync.Mutex
	created []*certv1.CertificateSigningRequest
	reads   map[string]int
}

func newFakeSigner(answer func(*certv1.CertificateSigningRequest)) *fakeSigner {
	s := &fakeSigner{kube: fake.NewClientset(), answer: answer, reads: map[string]int{}}
	s.kube.PrependReactor("create", "certificatesigningrequests", func(a k8stesting.Action) (bool, runtime.Object, error) {
		csr := a.(k8stesting.CreateAction).GetObject().(*certv1.CertificateSigningRequest)
		s.mu.Lock()
		defer s.mu.Unlock()
		csr.Name = fmt.Sprintf("%s%d", csr.GenerateName, len(s.created)+1)
		s.created = append(s.created, csr.DeepCopy())
		return false, nil, nil // the tracker stores it
	})
	s.kube.PrependReactor("get", "certificatesigningrequests", func(a k8stesting.Action) (bool, runtime.Object, error) {
		name := a.(k8stesting.GetAction).GetName()
		s.mu.Lock()
		s.reads[name]++
		second := s.reads[name] == 2
		s.mu.Unlock()
		if !second || s.answer == nil {
			return false, nil, nil
		}
		obj, err := s.kube.Tracker().Get(csrResource, "", name)
		if err != nil {
			return true, nil, err
		}
		csr := obj.(*certv1.CertificateSigningRequest).DeepCopy()
		s.answer(csr)
		if err := s.kube.Tracker().Update(csrResource, csr, ""); err != nil {
			return true, nil, err
		}
		return false, nil, nil // the tracker serves the answered request
	})
	return s
}

// requests is every CertificateSigningRequest created so far.
func (s *fakeSigner) requests() []*certv1.CertificateSigningRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.created)
}

// signAs signs each request as the controller does (membership.CheckRequest,
// then CA.SignRequest), for the node it asks for, or for node when set
// (a signer that got it wrong). A request it cannot check is marked Failed.
func signAs(ca *membership.CA, node string, lifetime time.Duration) func(*certv1.CertificateSigningRequest) {
	return func(csr *certv1.CertificateSigningRequest) {
		b, _ := pem.Decode(csr.Spec.Request)
		var asked string
		if b != nil {
			if r, err := x509.ParseCertificateRequest(b.Bytes); err == nil {
				asked = r.Subject.CommonName
			}
		}
		req, id, err := membership.CheckRequest(csr.Spec.Request, asked)
		if err == nil {
			if node == "" {
				node = asked
			}
			csr.Status.Certificate, err = ca.SignRequest(req, node, id, lifetime)
		}
		if err != nil {
			csr.Status.Conditions = append(csr.Status.Conditions, certv1.CertificateSigningRequestCondition{
				Type: certv1.CertificateFailed, Status: corev1.ConditionTrue, Reason: "TestSignerFailed", Message: err.Error()})
		}
	}
}

func newTestMemberCA(t *testing.T) *membership.CA {
	t.Helper()
	ca, err := membership.NewCA("test", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

// testEnroller is node's enroller, with a fresh peer ID and its files in a
// temporary directory, reading pending requests every 10 ms.
func testEnroller(t *testing.T, s *fakeSigner, node string) *enroller {
	t.Helper()
	dir := t.TempDir()
	return &enroller{csrs: s.kube.CertificatesV1().CertificateSigningRequests(), node: node, self: unittest.NewPeerID(t),
		certFile: filepath.Join(dir, "node.crt"), keyFile: filepath.Join(dir, "node.key"), poll: 10 * time.Millisecond}
}

func enrollCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// An agent without credentials asks for a member certificate for its node
// and peer ID (signer edgelink.io/member, digital signature and client
// auth), waits until the request is signed, and keeps the key (0600) and
// the certificate where the config says; the next start keeps them
// instead of asking again.
func TestEnrollGetsCertificate(t *testing.T) {
	s := newFakeSigner(signAs(newTestMemberCA(t), "", time.Hour))
	e := testEnroller(t, s, "cloud-1")

	creds, err := e.ensure(enrollCtx(t))
	if err != nil {
		t.Fatalf("ensure: %v", err)
	}
	reqs := s.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d requests created, want 1", len(reqs))
	}
	csr := reqs[0]
	if csr.GenerateName != "edgelink-cloud-1-" || csr.Spec.SignerName != membership.SignerName ||
		!slices.Equal(csr.Spec.Usages, []certv1.KeyUsage{certv1.UsageDigitalSignature, certv1.UsageClientAuth}) {
		t.Errorf("request: generateName %q, signer %q, usages %v", csr.GenerateName, csr.Spec.SignerName, csr.Spec.Usages)
	}
	req, id, err := membership.CheckRequest(csr.Spec.Request, "cloud-1")
	if err != nil || id != e.self || req.Subject.CommonName != "cloud-1" {
		t.Errorf("request for CN %q, peer %s (%v); want cloud-1, %s", req.Subject.CommonName, id, err, e.self)
	}
	s.mu.Lock()
	reads := s.reads[csr.Name]
	s.mu.Unlock()
	if reads < 2 {
		t.Errorf("request read %d times: the enroller did not wait for the signature", reads)
	}

	if fi, err := os.Stat(e.keyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, %v; want mode 0600", fi, err)
	}
	onDisk, err := membership.LoadCredentials(e.certFile, e.keyFile)
	if err != nil {
		t.Fatalf("written credentials: %v", err)
	}
	bound, _ := membership.BoundPeer(onDisk.Chain[0])
	if onDisk.Node != "cloud-1" || bound != e.self || !onDisk.Chain[0].Equal(creds.Chain[0]) {
		t.Errorf("on disk: node %q, peer %s; want cloud-1, %s, the certificate ensure returned", onDisk.Node, bound, e.self)
	}
	if !req.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(onDisk.Key.Public()) {
		t.Error("the key on disk is not the one the request was made with")
	}

	if _, err := e.ensure(enrollCtx(t)); err != nil || len(s.requests()) != 1 {
		t.Errorf("ensure with valid credentials: %v, %d requests; want them kept, no new request", err, len(s.requests()))
	}
}

// current keeps credentials only while they are this node's, bound to this
// peer ID and not due for renewal (two thirds into their lifetime).
func TestEnrollCurrent(t *testing.T) {
	ca := newTestMemberCA(t)
	e := testEnroller(t, newFakeSigner(nil), "cloud-1")
	now := time.Now()
	if _, ok := e.current(now); ok {
		t.Error("no credentials on disk: kept")
	}
	write := func(node string, id peer.ID, lifetime time.Duration) *x509.Certificate {
		t.Helper()
		key, err := membership.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		reqPEM, err := membership.NewRequest(key, node, id)
		if err != nil {
			t.Fatal(err)
		}
		req, _, err := membership.CheckRequest(reqPEM, node)
		if err != nil {
			t.Fatal(err)
		}
		certPEM, err := ca.SignRequest(req, node, id, lifetime)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(e.keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(e.certFile, certPEM, 0o644); err != nil {
			t.Fatal(err)
		}
		chain, err := membership.ParseChain(certPEM)
		if err != nil {
			t.Fatal(err)
		}
		return chain[0]
	}

	leaf := write("cloud-1", e.self, time.Hour)
	if c, ok := e.current(now); !ok || c.Node != "cloud-1" {
		t.Errorf("own valid credentials: %v, %v; want kept", c, ok)
	}
	due := renewAt(leaf)
	if want := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) * 2 / 3); !due.Equal(want) {
		t.Errorf("renewAt = %v, want two thirds into %v..%v", due, leaf.NotBefore, leaf.NotAfter)
	}
	if _, ok := e.current(due.Add(-time.Second)); !ok {
		t.Error("a second before renewal: not kept")
	}
	if _, ok := e.current(due); ok {
		t.Error("due for renewal: kept")
	}

	write("cloud-2", e.self, time.Hour)
	if _, ok := e.current(now); ok {
		t.Error("another node's certificate: kept")
	}
	write("cloud-1", unittest.NewPeerID(t), time.Hour)
	if _, ok := e.current(now); ok {
		t.Error("a certificate bound to another peer ID: kept")
	}
}

func TestRenewAtTwoThirds(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if got := renewAt(&x509.Certificate{NotBefore: t0, NotAfter: t0.Add(3 * time.Hour)}); !got.Equal(t0.Add(2 * time.Hour)) {
		t.Errorf("renewAt of a 3h certificate = %v, want 2h in", got)
	}
}

// A request the controller denies (or fails) ends enrollment with an
// error naming the request, the condition, its message and its reason;
// nothing is written.
func TestEnrollDenied(t *testing.T) {
	for _, cond := range []certv1.RequestConditionType{certv1.CertificateDenied, certv1.CertificateFailed} {
		t.Run(string(cond), func(t *testing.T) {
			s := newFakeSigner(func(csr *certv1.CertificateSigningRequest) {
				csr.Status.Conditions = append(csr.Status.Conditions, certv1.CertificateSigningRequestCondition{
					Type: cond, Status: corev1.ConditionTrue, Reason: "NotAMember", Message: `node "cloud-1" does not exist`})
			})
			e := testEnroller(t, s, "cloud-1")
			_, err := e.ensure(enrollCtx(t))
			want := fmt.Sprintf(`modules.tunnel.enroll: CertificateSigningRequest edgelink-cloud-1-1 %s: node "cloud-1" does not exist (NotAMember)`, cond)
			if err == nil || err.Error() != want {
				t.Errorf("err = %v, want %s", err, want)
			}
			for _, f := range []string{e.keyFile, e.certFile} {
				if _, err := os.Stat(f); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s after a refusal: %v; want nothing written", f, err)
				}
			}
		})
	}
}

// A certificate signed for another node than asked is refused, and
// nothing is written.
func TestEnrollRefusesCertificateForSomethingElse(t *testing.T) {
	s := newFakeSigner(signAs(newTestMemberCA(t), "cloud-2", time.Hour))
	e := testEnroller(t, s, "cloud-1")
	_, err := e.ensure(enrollCtx(t))
	if err == nil || !strings.Contains(err.Error(), `CertificateSigningRequest edgelink-cloud-1-1 was signed for something else than asked (common name "cloud-2")`) {
		t.Errorf("err = %v", err)
	}
	if _, err := os.Stat(e.keyFile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("key file: %v; want none", err)
	}
}

// While nobody signs, the enroller waits until its context ends and says so.
func TestEnrollWaitsUntilContextEnds(t *testing.T) {
	e := testEnroller(t, newFakeSigner(nil), "cloud-1")
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	if _, err := e.ensure(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the context's deadline", err)
	}
}

// keepRenewed asks for a new certificate once the one in use is due and
// hands it on; it returns when its context ends.
func TestEnrollKeepRenewed(t *testing.T) {
	// A certificate that lives 3 s is due at once: it starts 5 minutes in
	// the past (the CA's allowance for clock skew).
	s := newFakeSigner(signAs(newTestMemberCA(t), "", 3*time.Second))
	e := testEnroller(t, s, "cloud-1")
	first, err := e.ensure(enrollCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var got []*x509.Certificate
	e.keepRenewed(ctx, first, func(c *membership.Credentials) {
		got = append(got, c.Chain[0])
		cancel() // one renewal is enough
	})
	// A third request may be under way when the context ends (the next
	// certificate is due at once too); it is abandoned, not handed on.
	if len(got) != 1 || got[0].Equal(first.Chain[0]) || len(s.requests()) < 2 {
		t.Fatalf("renewals handed on: %d, requests %d; want one new certificate from a second request", len(got), len(s.requests()))
	}
	onDisk, err := membership.LoadCredentials(e.certFile, e.keyFile)
	if err != nil || !onDisk.Chain[0].Equal(got[0]) {
		t.Errorf("on disk after renewal: %v; want the renewed certificate", err)
	}
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Errorf("keepRenewed returned before its context ended: %v", ctx.Err())
	}
}

// newEnroller reaches the kube-apiserver through modules.metaSync's
// source; a source it cannot use is an error naming modules.tunnel.enroll
// and modules.metaSync.source.
func TestNewEnroller(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := unittest.Kubeconfig(t, "https://127.0.0.1:6443")
	c := v1.NewDefault()
	c.NodeName = "cloud-1"
	c.Modules.MetaSync.Source, c.Modules.MetaSync.Kubeconfig = v1.SourceKubeconfig, kubeconfig
	self := unittest.NewPeerID(t)
	e, err := newEnroller(c, self)
	if err != nil {
		t.Fatal(err)
	}
	if e.node != "cloud-1" || e.self != self || e.certFile != c.Modules.Tunnel.CertFile || e.keyFile != c.Modules.Tunnel.KeyFile {
		t.Errorf("enroller: %+v", e)
	}

	c.Modules.MetaSync.Source = v1.SourceInCluster
	if _, err := newEnroller(c, self); err == nil ||
		!strings.HasPrefix(err.Error(), "modules.tunnel.enroll: kube-apiserver (modules.metaSync.source inCluster): in-cluster config:") {
		t.Errorf("outside a cluster: %v", err)
	}
	c.Modules.MetaSync.Source, c.Modules.MetaSync.Kubeconfig = v1.SourceKubeconfig, filepath.Join(dir, "nope")
	if _, err := newEnroller(c, self); err == nil ||
		!strings.HasPrefix(err.Error(), "modules.tunnel.enroll: kube-apiserver (modules.metaSync.source kubeconfig): kubeconfig "+filepath.Join(dir, "nope")) {
		t.Errorf("missing kubeconfig: %v", err)
	}
}
