package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/pkg/membership"
	"github.com/edgelink/edgelink/pkg/p2p"
	"github.com/edgelink/edgelink/tests/cluster"
	"github.com/edgelink/edgelink/tests/testutil"
)

// Enrollment the Kubernetes way, against the real kube-apiserver (RBAC and
// Node authorization on) and the real binaries: `edgelink controller`
// creates the cluster CA in a Secret and publishes its certificate (and
// cloudcore's) in a ConfigMap; an agent on cloud node enroll-1, holding a
// ServiceAccount token bound to a pod on that node, makes its key, asks
// through a CertificateSigningRequest and gets a certificate that proves
// membership for its own peer ID; an agent claiming enroll-1 with a token
// bound to a pod on enroll-2 is denied, and says why.
func TestEnrollThroughCertificateSigningRequests(t *testing.T) {
	testutil.RequireRoot(t)
	cp := cluster.Shared(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const ns, sa = "edgelink-enroll", "edgelink"
	kube := cp.Client
	mustCreate := func(what string, err error) {
		t.Helper()
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatalf("%s: %v", what, err)
		}
	}
	_, err := kube.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{})
	mustCreate("namespace", err)
	_, err = kube.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: sa}}, metav1.CreateOptions{})
	mustCreate("service account", err)
	// What the chart's cloud agent role grants for enrollment and metadata.
	_, err = kube.RbacV1().ClusterRoles().Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "edgelink-enroll-agent"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"certificates.k8s.io"}, Resources: []string{"certificatesigningrequests"}, Verbs: []string{"create", "get"}},
			{APIGroups: []string{""}, Resources: []string{"pods", "nodes", "namespaces"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"spiderpool.spidernet.io"}, Resources: []string{"spiderippools"}, Verbs: []string{"get", "list", "watch"}},
		}}, metav1.CreateOptions{})
	mustCreate("cluster role", err)
	_, err = kube.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "edgelink-enroll-agent"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "edgelink-enroll-agent"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa, Namespace: ns}}}, metav1.CreateOptions{})
	mustCreate("cluster role binding", err)
	token := map[string]string{}
	for _, node := range []string{"enroll-1", "enroll-2"} {
		_, err = kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: node}}, metav1.CreateOptions{})
		mustCreate("node", err)
		pod := "agent-" + node
		_, err = kube.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: pod},
			Spec: corev1.PodSpec{NodeName: node, ServiceAccountName: sa, Containers: []corev1.Container{{Name: "agent", Image: "edgelink"}}}},
			metav1.CreateOptions{})
		mustCreate("pod", err)
		got, err := kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{
			BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("token bound to pod %s: %v", pod, err)
		}
		token[node] = got.Status.Token
	}

	// No meshCIDRConfig: the controller runs as a signer alone.
	ctl := testutil.StartController(t, cp.Kubeconfig, fmt.Sprintf(`apiVersion: %s
kind: EdgeLinkController
enrollment:
  enable: true
  namespace: %s
  agentServiceAccount: %s/%s
  certificateLifetime: 24h
`, v1.APIVersion, ns, ns, sa))
	var caPEM, kubeEdgeCA string
	eventually(t, "the CA ConfigMap", 30*time.Second, func() error {
		cm, err := kube.CoreV1().ConfigMaps(ns).Get(ctx, "edgelink-ca", metav1.GetOptions{})
		if err != nil {
			return err
		}
		caPEM, kubeEdgeCA = cm.Data["ca.crt"], cm.Data["kubeedge-ca.crt"]
		return nil
	})
	eventually(t, "the controller without segments saying it gives no blocks", 30*time.Second, func() error {
		if !strings.Contains(ctl.Log(), "block allocation off") {
			return errors.New("not in its log")
		}
		return nil
	})
	sec, err := kube.CoreV1().Secrets(ns).Get(ctx, "edgelink-ca", metav1.GetOptions{})
	if err != nil || len(sec.Data["ca.key"]) == 0 {
		t.Fatalf("CA Secret: %v", err)
	}
	if strings.Contains(caPEM, "PRIVATE") || !strings.Contains(caPEM, "BEGIN CERTIFICATE") {
		t.Fatalf("published CA is not a certificate alone:\n%s", caPEM)
	}
	if !strings.Contains(kubeEdgeCA, "BEGIN CERTIFICATE") {
		t.Errorf("cloudcore's CA certificate was not published (kubeedge-ca.crt = %q)", kubeEdgeCA)
	}

	agent := func(node, tok string) (*testutil.Agent, string) {
		dir := t.TempDir()
		kubeconfig := filepath.Join(dir, "kubeconfig")
		kc := clientcmdapi.NewConfig()
		kc.Clusters["c"] = &clientcmdapi.Cluster{Server: cp.APIServer, CertificateAuthorityData: cp.RestConfig.CAData}
		kc.AuthInfos["a"] = &clientcmdapi.AuthInfo{Token: tok}
		kc.Contexts["c"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "a"}
		kc.CurrentContext = "c"
		if err := clientcmd.WriteToFile(*kc, kubeconfig); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "ca.crt"), []byte(caPEM), 0o644); err != nil {
			t.Fatal(err)
		}
		c := v1.NewDefault()
		c.NodeName, c.DataDir = node, filepath.Join(dir, "data")
		c.Modules.MetaSync.Source, c.Modules.MetaSync.Kubeconfig = v1.SourceKubeconfig, kubeconfig
		c.Modules.IPAM.Enable, c.Modules.EdgeCNI.Enable = false, false
		tun := &c.Modules.Tunnel
		tun.Enroll, tun.ListenPort = true, freeTCPPort(t)
		tun.IdentityFile = filepath.Join(dir, "identity.key")
		tun.CAFile = filepath.Join(dir, "ca.crt")
		tun.CertFile, tun.KeyFile = filepath.Join(dir, "member", "node.crt"), filepath.Join(dir, "member", "node.key")
		v1.SetDefaults(c)
		return testutil.NewAgent(t, c, ""), dir
	}

	good, dir := agent("enroll-1", token["enroll-1"])
	good.Start("Tunnel up")
	if !strings.Contains(good.Log(), "Got a member certificate") {
		t.Fatalf("agent log does not show the enrollment:\n%s", good.Log())
	}
	// The key stayed on the node (0600), and the certificate proves
	// enroll-1's membership for this agent's own peer ID.
	fi, err := os.Stat(filepath.Join(dir, "member", "node.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("member key: %v, mode %v", err, fi.Mode())
	}
	creds, err := membership.LoadCredentials(filepath.Join(dir, "member", "node.crt"), filepath.Join(dir, "member", "node.key"))
	if err != nil {
		t.Fatal(err)
	}
	_, self, err := p2p.LoadOrCreateIdentity(filepath.Join(dir, "identity.key"))
	if err != nil {
		t.Fatal(err)
	}
	verifier, err := membership.NewVerifier(filepath.Join(dir, "ca.crt"), "")
	if err != nil {
		t.Fatal(err)
	}
	proof, err := creds.Proof(self, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if node, err := verifier.Verify(proof, self); err != nil || node != "enroll-1" {
		t.Fatalf("enrolled certificate proves %q: %v", node, err)
	}
	if life := creds.Chain[0].NotAfter.Sub(creds.Chain[0].NotBefore); life > 24*time.Hour+10*time.Minute {
		t.Errorf("certificate lives %s; the controller's lifetime is 24h", life)
	}
	// A restart keeps the certificate: no second request.
	good.Stop()
	good.Start("Tunnel up")
	if strings.Contains(good.Log(), "Asked for a member certificate") {
		t.Errorf("the restarted agent asked again although its certificate is valid:\n%s", good.Log())
	}
	good.Stop()

	// enroll-2's token cannot get enroll-1's certificate.
	rogue, rdir := agent("enroll-1", token["enroll-2"])
	err = rogue.Run(60 * time.Second)
	if err == nil || !strings.Contains(rogue.Log(), "Denied") || !strings.Contains(rogue.Log(), "CN=enroll-2") {
		t.Fatalf("an agent with a token bound to enroll-2 asking for enroll-1: exit %v\n%s", err, rogue.Log())
	}
	if _, err := os.Stat(filepath.Join(rdir, "member", "node.crt")); err == nil {
		t.Fatal("the refused agent has a certificate on disk")
	}
}

// freeTCPPort is a TCP (and, most likely, UDP) port nothing listens on.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
