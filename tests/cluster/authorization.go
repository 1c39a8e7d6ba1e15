package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/edgelink/edgelink/tests/testutil"
)

// KubeEdge's requireAuthorization feature gate (Options.RequireAuthorization).
// What v1.20.0 does with it on, and what the harness adds for it:
//
//   - edgecore's metaServer serves HTTPS on 127.0.0.1:10550 and on
//     169.254.30.10:10550 (a dummy link edge-dummy0 it creates, here in the
//     node's namespace). It first fetches the kube-apiserver's CA through
//     cloudcore into /etc/kubeedge/pki/metaserver/ca.crt, then gets its
//     serving certificate from a kubernetes.io/kubelet-serving CSR, which
//     cloudcore's CSR approver approves and a signer must sign: the harness
//     runs kube-controller-manager with only its csrsigning controller,
//     signing with the cluster CA. That directory is fixed in edgecore, so
//     each edgecore gets its own /etc/kubeedge: a private mount namespace
//     with e.Dir/etc-kubeedge bound there (the mount point /etc/kubeedge is
//     created on the host if missing, and removed again when empty).
//   - it wants a ServiceAccount bearer token, which it checks itself with
//     modules.metaManager.metaServer.serviceAccountKeyFiles (the
//     kube-apiserver's --service-account-key-file) and
//     serviceAccountIssuers (the apiserver's --service-account-issuer),
//     and it authorizes each request by RBAC read through cloudcore
//     (cloudcore's policy controller runs with the gate).
const saIssuer = "https://kubernetes.default.svc"

// MetaServerCA is the CA file an authorized metaServer's certificate
// chains to (EdgeCore writes it before it serves HTTPS), as a path on the
// host; "" without Options.RequireAuthorization.
func (e *EdgeNode) MetaServerCA() string {
	if !e.cp.opts.RequireAuthorization {
		return ""
	}
	return filepath.Join(e.etcKubeEdge(), "pki", "metaserver", "ca.crt")
}

// etcKubeEdge is what this edgecore sees as /etc/kubeedge.
func (e *EdgeNode) etcKubeEdge() string { return filepath.Join(e.Dir, "etc-kubeedge") }

// edgecoreArgv is edgecore's command line in its namespace.
func (cp *ControlPlane) edgecoreArgv(e *EdgeNode) []string {
	argv := []string{"ip", "netns", "exec", e.NetNS, cp.bins.edgecore, "--config", e.config, "-v=" + fmt.Sprint(cp.opts.Verbosity)}
	if !cp.opts.RequireAuthorization {
		return argv
	}
	// unshare and sh exec, and so does ip netns exec: the PID is edgecore's.
	return append([]string{"unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
		`mount --bind "$1" /etc/kubeedge && shift && exec "$@"`, "sh", e.etcKubeEdge()}, argv...)
}

// prepareAuthorization makes /etc/kubeedge exist (as a mount point) and
// starts kube-controller-manager's CSR signer.
func (cp *ControlPlane) prepareAuthorization() error {
	if _, err := os.Stat("/etc/kubeedge"); os.IsNotExist(err) {
		if err := os.Mkdir("/etc/kubeedge", 0o755); err != nil {
			return err
		}
		cp.madeEtcKubeEdge = true
	}
	out, err := exec.Command(filepath.Join(testutil.RepoRoot(), "tests", "tools", "build.sh"), "kube-controller-manager").Output()
	if err != nil {
		return fmt.Errorf("tests/tools/build.sh kube-controller-manager: %v", err)
	}
	_, kcm, _ := strings.Cut(strings.TrimSpace(string(out)), "=")
	cp.kcm = &proc{name: "kube-controller-manager", log: cp.logPath("kube-controller-manager"), argv: func() []string {
		p := cp.pki
		return []string{kcm,
			"--kubeconfig=" + cp.Kubeconfig,
			"--controllers=csrsigning",
			"--cluster-signing-cert-file=" + p.CACert, "--cluster-signing-key-file=" + p.CAKey,
			"--leader-elect=false", "--secure-port=0", "--use-service-account-credentials=false",
		}
	}}
	return cp.kcm.start()
}

// closeAuthorization undoes prepareAuthorization.
func (cp *ControlPlane) closeAuthorization() {
	if cp.kcm != nil {
		cp.kcm.stop(5 * time.Second)
	}
	if cp.madeEtcKubeEdge {
		_ = os.Remove("/etc/kubeedge") // only if still empty
	}
}

// authorizationConfig is the gate in cloudcore's or edgecore's config.
// cloudcore hands edgecores the kube-apiserver's CA by reading its
// kubeconfig's certificate-authority file (client.GetK8sCA): with the CA
// only inline (certificate-authority-data, as in cp.Kubeconfig) it sends
// nothing, edgecore writes an empty ca.crt and crashes on it, so cloudcore
// gets a kubeconfig that names the CA file.
func (cp *ControlPlane) authorizationConfig(cfg map[string]any, edge bool) error {
	if !cp.opts.RequireAuthorization {
		return nil
	}
	cfg["featureGates"] = map[string]any{"requireAuthorization": true}
	if !edge {
		kc := filepath.Join(cp.Dir, "cloud", "cloudcore.kubeconfig")
		p := cp.pki
		if err := clientcmd.WriteToFile(clientcmdapi.Config{
			Clusters:       map[string]*clientcmdapi.Cluster{"edgelink": {Server: cp.APIServer, CertificateAuthority: p.CACert}},
			AuthInfos:      map[string]*clientcmdapi.AuthInfo{"admin": {ClientCertificateData: p.adminPEM, ClientKeyData: p.adminKey}},
			Contexts:       map[string]*clientcmdapi.Context{"edgelink": {Cluster: "edgelink", AuthInfo: "admin"}},
			CurrentContext: "edgelink",
		}, kc); err != nil {
			return err
		}
		setPath(cfg, "kubeAPIConfig.kubeConfig", kc)
	}
	if edge {
		setPath(cfg, "modules.metaManager.metaServer.serviceAccountKeyFiles", []any{cp.pki.SAPub})
		setPath(cfg, "modules.metaManager.metaServer.serviceAccountIssuers", []any{saIssuer})
	}
	return nil
}

// metaServerReady probes an authorized metaServer: it answers HTTPS with a
// certificate from its CA (401 without a token is an answer).
func (e *EdgeNode) metaServerReady(ctx context.Context) error {
	ca, err := os.ReadFile(e.MetaServerCA())
	if err != nil {
		return fmt.Errorf("metaServer CA not written yet: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return fmt.Errorf("metaServer CA %s: no certificate", e.MetaServerCA())
	}
	c := &http.Client{Transport: &http.Transport{DialContext: NetNSDialer(e.NetNSPath), TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.MetaServer+"/api/v1/nodes/"+e.Name, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// ServiceAccountToken returns a token of ServiceAccount ns/name from the
// TokenRequest API (valid for an hour), creating the namespace and the
// account if needed.
func (cp *ControlPlane) ServiceAccountToken(ctx context.Context, ns, name string) (string, error) {
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
	if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, nsObj, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}
	if _, err := cp.Client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	exp := int64(3600)
	tr, err := cp.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	return tr.Status.Token, nil
}

// ensureDummy gives edgecore the link it binds 169.254.30.10 to: it
// creates edge-dummy0 of type dummy itself, which kernels without the
// dummy driver refuse ("operation not supported"), and takes any link of
// that name that exists. So the harness makes it first, a dummy where the
// kernel has the driver, else a bridge (with no ports: nothing is
// forwarded). It lives in the node's namespace and goes with it.
func (e *EdgeNode) ensureDummy() error {
	if exec.Command("ip", "netns", "exec", e.NetNS, "ip", "link", "show", "edge-dummy0").Run() == nil {
		return nil
	}
	if exec.Command("ip", "netns", "exec", e.NetNS, "ip", "link", "add", "edge-dummy0", "type", "dummy").Run() != nil {
		if out, err := exec.Command("ip", "netns", "exec", e.NetNS, "ip", "link", "add", "edge-dummy0", "type", "bridge").CombinedOutput(); err != nil {
			return fmt.Errorf("edge-dummy0 in %s: %v: %s", e.NetNS, err, out)
		}
	}
	if out, err := exec.Command("ip", "netns", "exec", e.NetNS, "ip", "link", "set", "edge-dummy0", "up").CombinedOutput(); err != nil {
		return fmt.Errorf("edge-dummy0 up in %s: %v: %s", e.NetNS, err, out)
	}
	return nil
}
