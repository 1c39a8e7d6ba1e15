package controller

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	certv1 "k8s.io/api/certificates/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"github.com/edgelink/edgelink/pkg/membership"
)

// The Secret and ConfigMap the signer keeps (keys of their data).
const (
	// CASecretCert and CASecretKey: the cluster CA, in a Secret only the
	// controller reads (created on first start, never replaced).
	CASecretCert = "ca.crt"
	CASecretKey  = "ca.key"
	// CAConfigMapCert is the cluster CA's certificate, published for every
	// agent to trust; CAConfigMapKubeEdge is KubeEdge's root CA
	// certificate (cloudcore's casecret, certificate only), which cloud
	// agents need to check edge nodes' certificates.
	CAConfigMapCert     = "ca.crt"
	CAConfigMapKubeEdge = "kubeedge-ca.crt"
	// NodeNameExtra is the user-info extra that a ServiceAccount token
	// bound to a pod carries: the pod's node. The kube-apiserver copies the
	// requester's extras into the CertificateSigningRequest's spec.extra.
	NodeNameExtra = "authentication.kubernetes.io/node-name"
)

// Signer signs cloud nodes' member certificates through the Kubernetes
// CertificateSigningRequest API (signer membership.SignerName). It
// approves a request only when the agent's ServiceAccount asked, with a
// token bound to a pod on node N, for a certificate naming N; it denies
// every other request for its signer, saying why. Keys stay on the nodes.
type Signer struct {
	Kube kubernetes.Interface
	// Namespace holds CASecret and CAConfigMap.
	Namespace, CASecret, CAConfigMap string
	// AgentUser is the only requester approved:
	// system:serviceaccount:<namespace>:<name>.
	AgentUser string
	// Lifetime of a certificate (shorter if the request asks, never past
	// the CA's own end).
	Lifetime time.Duration
	// KubeEdgeCASecret is cloudcore's CA Secret (kubeedge/casecret),
	// whose certificate is published; the zero value publishes none.
	KubeEdgeCASecret types.NamespacedName
	// Resync is how often the CA ConfigMap is checked and every request
	// looked at again.
	Resync time.Duration

	ca *membership.CA
}

// Run keeps the CA, publishes its certificate, and handles requests until
// ctx ends.
func (s *Signer) Run(ctx context.Context) error {
	if s.Resync <= 0 {
		s.Resync = 30 * time.Second
	}
	ca, err := s.ensureCA(ctx)
	if err != nil {
		return err
	}
	s.ca = ca
	if err := s.publish(ctx); err != nil {
		return err
	}
	f := informers.NewSharedInformerFactoryWithOptions(s.Kube, s.Resync, informers.WithTweakListOptions(func(o *metav1.ListOptions) {
		o.FieldSelector = fields.OneTermEqualSelector("spec.signerName", membership.SignerName).String()
	}))
	inf := f.Certificates().V1().CertificateSigningRequests().Informer()
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
	defer q.ShutDown()
	enqueue := func(o any) {
		if c, ok := o.(*certv1.CertificateSigningRequest); ok {
			q.Add(c.Name)
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }}); err != nil {
		return err
	}
	f.Start(ctx.Done())
	defer f.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return ctx.Err()
	}
	klog.InfoS("Member certificate signer running", "signer", membership.SignerName, "agent", s.AgentUser,
		"lifetime", s.Lifetime, "caSecret", s.Namespace+"/"+s.CASecret, "caConfigMap", s.Namespace+"/"+s.CAConfigMap)
	go func() {
		t := time.NewTicker(s.Resync)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				q.ShutDown()
				return
			case <-t.C:
				if err := s.publish(ctx); err != nil && ctx.Err() == nil {
					klog.ErrorS(err, "Publishing the CA certificates failed; retrying")
				}
			}
		}
	}()
	for {
		name, quit := q.Get()
		if quit {
			return nil
		}
		obj, exists, err := inf.GetStore().GetByKey(name)
		if err == nil && exists {
			err = s.handle(ctx, obj.(*certv1.CertificateSigningRequest).DeepCopy())
		}
		if err != nil && ctx.Err() == nil {
			klog.ErrorS(err, "Handling a certificate request failed; retrying", "csr", name)
			q.AddRateLimited(name)
		} else {
			q.Forget(name)
		}
		q.Done(name)
	}
}

// ensureCA reads the CA Secret, creating it (a new CA) if absent.
func (s *Signer) ensureCA(ctx context.Context) (*membership.CA, error) {
	secrets := s.Kube.CoreV1().Secrets(s.Namespace)
	for range 3 {
		sec, err := secrets.Get(ctx, s.CASecret, metav1.GetOptions{})
		if err == nil {
			ca, err := membership.ParseCA(sec.Data[CASecretCert], sec.Data[CASecretKey])
			if err != nil {
				return nil, fmt.Errorf("CA Secret %s/%s (keys %s, %s): %w; remove it only if you mean to replace the CA (every member certificate becomes invalid)",
					s.Namespace, s.CASecret, CASecretCert, CASecretKey, err)
			}
			return ca, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("CA Secret %s/%s: %w", s.Namespace, s.CASecret, err)
		}
		ca, err := membership.NewCA("edgelink-cluster-ca", 10*365*24*time.Hour)
		if err != nil {
			return nil, err
		}
		crt, key := ca.PEM()
		_, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: s.CASecret, Namespace: s.Namespace,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "edgelink-controller"}},
			Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{CASecretCert: crt, CASecretKey: key},
		}, metav1.CreateOptions{})
		switch {
		case err == nil:
			klog.InfoS("Created the cluster CA", "secret", s.Namespace+"/"+s.CASecret, "notAfter", ca.Cert.NotAfter)
			return ca, nil
		case apierrors.IsAlreadyExists(err): // another replica was first: read theirs
			continue
		default:
			return nil, fmt.Errorf("creating CA Secret %s/%s: %w", s.Namespace, s.CASecret, err)
		}
	}
	return nil, fmt.Errorf("CA Secret %s/%s: created and gone again", s.Namespace, s.CASecret)
}

// publish writes the CA certificates agents trust into the ConfigMap.
func (s *Signer) publish(ctx context.Context) error {
	crt, _ := s.ca.PEM()
	data := map[string]string{CAConfigMapCert: string(crt)}
	if ke, err := s.kubeEdgeCA(ctx); err != nil {
		klog.ErrorS(err, "KubeEdge's CA certificate not published: cloud nodes cannot check edge nodes' certificates until it is", "secret", s.KubeEdgeCASecret)
	} else if ke != nil {
		data[CAConfigMapKubeEdge] = string(ke)
	}
	cms := s.Kube.CoreV1().ConfigMaps(s.Namespace)
	cm, err := cms.Get(ctx, s.CAConfigMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: s.CAConfigMap, Namespace: s.Namespace,
			Labels: map[string]string{"app.kubernetes.io/managed-by": "edgelink-controller"}}, Data: data}, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return fmt.Errorf("CA ConfigMap %s/%s: %w", s.Namespace, s.CAConfigMap, err)
	}
	if _, ok := data[CAConfigMapKubeEdge]; !ok && cm.Data[CAConfigMapKubeEdge] != "" {
		data[CAConfigMapKubeEdge] = cm.Data[CAConfigMapKubeEdge] // keep the one read before
	}
	if maps.Equal(cm.Data, data) {
		return nil
	}
	cm.Data = data
	_, err = cms.Update(ctx, cm, metav1.UpdateOptions{})
	return err
}

// kubeEdgeCA reads the certificate (never the key) of cloudcore's CA from
// its Secret: nil when none is configured or cloudcore has not made it yet.
func (s *Signer) kubeEdgeCA(ctx context.Context) ([]byte, error) {
	if s.KubeEdgeCASecret == (types.NamespacedName{}) {
		return nil, nil
	}
	sec, err := s.Kube.CoreV1().Secrets(s.KubeEdgeCASecret.Namespace).Get(ctx, s.KubeEdgeCASecret.Name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	// cloudcore keeps the certificate DER-encoded under "cadata".
	raw := sec.Data["cadata"]
	if b, _ := pem.Decode(raw); b != nil {
		raw = b.Bytes
	}
	c, err := x509.ParseCertificate(raw)
	if err != nil || !c.IsCA {
		return nil, fmt.Errorf("secret %s key cadata holds no CA certificate", s.KubeEdgeCASecret)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), nil
}

// handle approves and signs, or denies, one request for our signer.
func (s *Signer) handle(ctx context.Context, csr *certv1.CertificateSigningRequest) error {
	if len(csr.Status.Certificate) > 0 || hasCondition(csr, certv1.CertificateDenied) || hasCondition(csr, certv1.CertificateFailed) {
		return nil
	}
	node, id, req, err := CheckMemberRequest(csr, s.AgentUser)
	if err == nil {
		if _, gerr := s.Kube.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{}); apierrors.IsNotFound(gerr) {
			err = fmt.Errorf("node %q does not exist", node)
		} else if gerr != nil {
			return gerr
		}
	}
	csrs := s.Kube.CertificatesV1().CertificateSigningRequests()
	if err != nil {
		klog.InfoS("Denied a member certificate request", "csr", csr.Name, "requester", csr.Spec.Username, "reason", err)
		csr.Status.Conditions = append(csr.Status.Conditions, certv1.CertificateSigningRequestCondition{
			Type: certv1.CertificateDenied, Status: corev1.ConditionTrue, Reason: "EdgeLinkRefused", Message: err.Error(),
			LastUpdateTime: metav1.Now()})
		_, err = csrs.UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{})
		return err
	}
	if !hasCondition(csr, certv1.CertificateApproved) {
		csr.Status.Conditions = append(csr.Status.Conditions, certv1.CertificateSigningRequestCondition{
			Type: certv1.CertificateApproved, Status: corev1.ConditionTrue, Reason: "EdgeLinkNodeAgent",
			Message: fmt.Sprintf("the EdgeLink agent on node %s asked for its own member certificate", node), LastUpdateTime: metav1.Now()})
		if csr, err = csrs.UpdateApproval(ctx, csr.Name, csr, metav1.UpdateOptions{}); err != nil {
			return err
		}
	}
	lifetime := s.Lifetime
	if e := csr.Spec.ExpirationSeconds; e != nil && time.Duration(*e)*time.Second < lifetime {
		lifetime = time.Duration(*e) * time.Second
	}
	certPEM, err := s.ca.SignRequest(req, node, id, lifetime)
	if err != nil {
		return err
	}
	csr.Status.Certificate = certPEM
	if _, err := csrs.UpdateStatus(ctx, csr, metav1.UpdateOptions{}); err != nil {
		return err
	}
	klog.InfoS("Signed a member certificate", "csr", csr.Name, "node", node, "peer", id, "lifetime", lifetime)
	return nil
}

func hasCondition(csr *certv1.CertificateSigningRequest, t certv1.RequestConditionType) bool {
	for _, c := range csr.Status.Conditions {
		if c.Type == t && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// The usages a member certificate request must ask for, no more, no less.
var memberUsages = []certv1.KeyUsage{certv1.UsageDigitalSignature, certv1.UsageClientAuth}

// CheckMemberRequest decides whether csr is a member certificate request
// the agent on a node made for itself: requested by agentUser with a
// token bound to a pod on node N (NodeNameExtra), for a certificate naming
// exactly N (membership.CheckRequest), with the member usages. It returns
// N, the peer ID to bind and the parsed request, or why not.
func CheckMemberRequest(csr *certv1.CertificateSigningRequest, agentUser string) (string, peer.ID, *x509.CertificateRequest, error) {
	if csr.Spec.SignerName != membership.SignerName {
		return "", "", nil, fmt.Errorf("signer %q is not %q", csr.Spec.SignerName, membership.SignerName)
	}
	if csr.Spec.Username != agentUser {
		return "", "", nil, fmt.Errorf("requested by %q; only the EdgeLink agent (%s) may ask for member certificates", csr.Spec.Username, agentUser)
	}
	nodes := csr.Spec.Extra[NodeNameExtra]
	if len(nodes) != 1 || nodes[0] == "" {
		return "", "", nil, fmt.Errorf("the requester's token is not bound to one node (extra %s: %v); use the agent pod's own ServiceAccount token", NodeNameExtra, []string(nodes))
	}
	node := nodes[0]
	usages := slices.Clone(csr.Spec.Usages)
	slices.Sort(usages)
	want := slices.Clone(memberUsages)
	slices.Sort(want)
	if !slices.Equal(slices.Compact(usages), want) {
		return "", "", nil, fmt.Errorf("usages %v; a member certificate has exactly %v", csr.Spec.Usages, memberUsages)
	}
	req, id, err := membership.CheckRequest(csr.Spec.Request, node)
	if err != nil {
		return "", "", nil, fmt.Errorf("request from the agent on node %s: %w", node, err)
	}
	return node, id, req, nil
}
