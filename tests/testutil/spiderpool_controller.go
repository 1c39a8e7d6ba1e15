package testutil

import (
	"context"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/edgelink/edgelink/pkg/ipam"
)

// SpiderpoolFinalizer is what SpiderPool's mutating webhook adds to every
// SpiderIPPool (pkg/constant.SpiderFinalizer); spiderpool-controller's
// IPPool controller removes it from a deleted pool with no allocated IPs.
const SpiderpoolFinalizer = "spiderpool.spidernet.io"

var spReservedIPGVR = ipam.PoolGVR.GroupVersion().WithResource("spiderreservedips")

// SpiderpoolController is SpiderPool's own controller (`spiderpool-controller
// daemon`, github.com/spidernet-io/spiderpool v0.9.3, built by
// tests/tools/build.sh) running on the host against a test kube-apiserver,
// with its admission webhook registered there: every create and update of
// a SpiderIPPool or SpiderReservedIP goes through SpiderPool's real
// mutation and validation (ippoolmanager.IPPoolWebhook,
// reservedipmanager.ReservedIPWebhook). Its IPPool controller (status
// counts, the finalizer of deleted pools), leader election (a Lease in
// kube-system) and IP GC run as in the chart's Deployment; metrics, gops,
// SpiderSubnet, coordinator and multus config are off.
//
// In t.Cleanup the webhook configurations are deleted first (a stale one
// would refuse every later write of a pool), then the process is stopped,
// then SpiderPool's finalizer is taken off the pools that still carry it
// (nothing would remove it once the controller is gone). Its log is
// printed when the test failed.
type SpiderpoolController struct {
	WebhookPort int    // the webhook's HTTPS port (all addresses; the apiserver calls 127.0.0.1)
	Config      string // its config file (the chart's spiderpool-conf ConfigMap)
	CertDir     string // tls.crt, tls.key (serving, for 127.0.0.1 and localhost), ca.crt
	CABundle    []byte // PEM of the CA that signed tls.crt (the webhooks' caBundle)
	// Webhooks names the MutatingWebhookConfiguration and the
	// ValidatingWebhookConfiguration registered for it.
	Webhooks string
	spiderpoolDaemon

	t      testing.TB
	kube   kubernetes.Interface
	dyn    dynamic.Interface
	podNam string
}

// The webhook paths are controller-runtime's for the v2beta1 kinds
// (charts/spiderpool/templates/tls.yaml registers the same). SpiderSubnet's
// is not registered: with enableSpiderSubnet false the controller serves
// no such path, and the chart's entry would refuse every SpiderSubnet
// write (none is made here).
var spiderpoolWebhookResources = []struct{ resource, kind string }{
	{"spiderippools", "spiderippool"},
	{"spiderreservedips", "spiderreservedip"},
}

var spcRuns int // names each start's identity and webhook configurations

// StartSpiderpoolController starts spiderpool-controller with kubeconfig
// (an admin's), waits (at most 90s) until its readiness endpoint answers
// (webhook serving, a leader elected, GC ready), registers its webhooks
// with the kube-apiserver and returns once the apiserver calls them (a
// dry-run create of a pool comes back mutated).
func StartSpiderpoolController(t testing.TB, kubeconfig string) *SpiderpoolController {
	t.Helper()
	bin := Tool(t, "spiderpool-controller")
	rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	spcRuns++
	dir := t.TempDir()
	c := &SpiderpoolController{
		t:        t,
		Config:   filepath.Join(dir, "conf.yml"),
		CertDir:  filepath.Join(dir, "tls"),
		Webhooks: fmt.Sprintf("edgelink-test-spiderpool-controller-%d-%d", os.Getpid(), spcRuns),
		podNam:   fmt.Sprintf("spiderpool-controller-test-%d-%d", os.Getpid(), spcRuns),
	}
	if c.kube, err = kubernetes.NewForConfig(rc); err != nil {
		t.Fatal(err)
	}
	if c.dyn, err = dynamic.NewForConfig(rc); err != nil {
		t.Fatal(err)
	}
	// Agent and controller read one ConfigMap in an install.
	if err := os.WriteFile(c.Config, []byte(spiderpoolConf("/var/run/spidernet/spiderpool.sock")), 0o600); err != nil {
		t.Fatal(err)
	}
	if c.CABundle, err = writeWebhookCerts(c.CertDir); err != nil {
		t.Fatal(err)
	}
	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = freeLoopbackPort(); err != nil {
			t.Fatal(err)
		}
	}
	c.WebhookPort, c.HealthPort = ports[0], ports[1]
	// cmd/spiderpool-controller/cmd/config.go (envInfo); the chart's
	// Deployment sets the ports, log level, GC and feature switches.
	env := []string{
		"KUBECONFIG=" + kubeconfig,
		"SPIDERPOOL_LOG_LEVEL=info",
		// the leader election Lease (spiderpool-controller-leases) lives
		// in the controller's own namespace
		"SPIDERPOOL_POD_NAMESPACE=kube-system",
		"SPIDERPOOL_POD_NAME=" + c.podNam,
		// controller-runtime's webhook server: all addresses, the certs
		// of --tls-server-cert's directory (tls.crt, tls.key)
		"SPIDERPOOL_WEBHOOK_PORT=" + strconv.Itoa(c.WebhookPort),
		// its HTTP API (/v1/runtime/*): all addresses; only loopback is used
		"SPIDERPOOL_HEALTH_PORT=" + strconv.Itoa(c.HealthPort),
		// metrics off; the port is required all the same and never opened
		"SPIDERPOOL_ENABLED_METRIC=false",
		"SPIDERPOOL_ENABLED_DEBUG_METRIC=false",
		"SPIDERPOOL_METRIC_HTTP_PORT=" + strconv.Itoa(ports[2]),
		// empty: no gops listener
		"SPIDERPOOL_GOPS_LISTEN_PORT=",
		"SPIDERPOOL_GC_IP_ENABLED=true",
		"SPIDERPOOL_COORDINATOR_ENABLED=false",
		"SPIDERPOOL_MULTUS_CONFIG_ENABLED=false",
		// a Lease left by a killed predecessor expires sooner than the
		// default 15s
		"SPIDERPOOL_LEADER_DURATION=6",
		"SPIDERPOOL_LEADER_RENEW_DEADLINE=4",
		"SPIDERPOOL_LEADER_RETRY_PERIOD=1",
		"GOLANG_ENV_MAXPROCS=2",
	}
	// On SIGTERM it cancels its work (releasing the leader Lease) but does
	// not exit (cmd/spiderpool-controller/cmd/daemon.go WatchSignal): 2s
	// is enough for the Lease.
	args := []string{"daemon", "--config-path", c.Config,
		"--tls-server-cert", filepath.Join(c.CertDir, "tls.crt"),
		"--tls-server-key", filepath.Join(c.CertDir, "tls.key")}
	if err := c.start(bin, args, env, 2*time.Second); err != nil {
		t.Fatal(err)
	}
	// Registered before anything can fail: it also undoes a start that
	// failed half-way.
	t.Cleanup(func() {
		c.cleanup()
		if t.Failed() {
			t.Logf("spiderpool-controller log (tail):\n%s", tail(c.logs.String(), 150))
		}
	})
	t0 := time.Now()
	if err := c.waitReady(90*time.Second, nil); err != nil {
		t.Fatalf("spiderpool-controller: %v\n%s", err, tail(c.logs.String(), 80))
	}
	t.Logf("spiderpool-controller ready in %v (webhook :%d, health :%d)", time.Since(t0).Round(time.Millisecond), c.WebhookPort, c.HealthPort)
	if err := c.register(); err != nil {
		t.Fatalf("registering spiderpool-controller's webhooks: %v", err)
	}
	if err := c.waitCalled(30 * time.Second); err != nil {
		t.Fatalf("spiderpool-controller's webhook: %v\n%s", err, tail(c.logs.String(), 60))
	}
	t.Logf("spiderpool-controller's webhooks %s called by the kube-apiserver after %v", c.Webhooks, time.Since(t0).Round(time.Millisecond))
	return c
}

// writeWebhookCerts writes a test CA (ca.crt) and a serving certificate
// it signed for 127.0.0.1 and localhost (tls.crt, tls.key) into dir, and
// returns the CA's PEM.
func writeWebhookCerts(dir string) ([]byte, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ca, err := NewTestCA("edgelink-test spiderpool-controller CA")
	if err != nil {
		return nil, err
	}
	crt, key, err := ca.Issue(&x509.Certificate{
		Subject:     pkix.Name{CommonName: "spiderpool-controller"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:    []string{"localhost"},
	})
	if err != nil {
		return nil, err
	}
	for name, data := range map[string][]byte{"ca.crt": ca.PEM, "tls.crt": crt, "tls.key": key} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return nil, err
		}
	}
	return ca.PEM, nil
}

// register creates the chart's webhook configurations for the pool kinds
// (failurePolicy Fail, as the chart), pointing at 127.0.0.1.
func (c *SpiderpoolController) register() error {
	fail := admissionv1.Fail
	none := admissionv1.SideEffectClassNone
	rule := func(resource string) []admissionv1.RuleWithOperations {
		return []admissionv1.RuleWithOperations{{
			Operations: []admissionv1.OperationType{admissionv1.Create, admissionv1.Update},
			Rule: admissionv1.Rule{
				APIGroups:   []string{"spiderpool.spidernet.io"},
				APIVersions: []string{"v2beta1"},
				Resources:   []string{resource},
			},
		}}
	}
	cc := func(path string) admissionv1.WebhookClientConfig {
		url := fmt.Sprintf("https://127.0.0.1:%d%s", c.WebhookPort, path)
		return admissionv1.WebhookClientConfig{URL: &url, CABundle: c.CABundle}
	}
	mut := &admissionv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: c.Webhooks}}
	val := &admissionv1.ValidatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: c.Webhooks}}
	for _, r := range spiderpoolWebhookResources {
		mut.Webhooks = append(mut.Webhooks, admissionv1.MutatingWebhook{
			Name:                    r.kind + ".spiderpool.spidernet.io",
			ClientConfig:            cc("/mutate-spiderpool-spidernet-io-v2beta1-" + r.kind),
			Rules:                   rule(r.resource),
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
		})
		val.Webhooks = append(val.Webhooks, admissionv1.ValidatingWebhook{
			Name:                    r.kind + ".spiderpool.spidernet.io",
			ClientConfig:            cc("/validate-spiderpool-spidernet-io-v2beta1-" + r.kind),
			Rules:                   rule(r.resource),
			FailurePolicy:           &fail,
			SideEffects:             &none,
			AdmissionReviewVersions: []string{"v1"},
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ar := c.kube.AdmissionregistrationV1()
	if _, err := ar.MutatingWebhookConfigurations().Create(ctx, mut, metav1.CreateOptions{}); err != nil {
		return err
	}
	_, err := ar.ValidatingWebhookConfigurations().Create(ctx, val, metav1.CreateOptions{})
	return err
}

// waitCalled dry-runs the create of a pool until the answer shows
// SpiderPool's mutation (spec.ipVersion filled, its finalizer added): the
// apiserver's webhook configuration cache has caught up.
func (c *SpiderpoolController) waitCalled(timeout time.Duration) error {
	probe := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "spiderpool.spidernet.io/v2beta1", "kind": "SpiderIPPool",
		"metadata": map[string]any{"name": c.Webhooks + "-probe"},
		// TEST-NET-1: no test uses it
		"spec": map[string]any{"subnet": "192.0.2.0/24", "ips": []any{"192.0.2.10"}},
	}}
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		got, err := c.dyn.Resource(ipam.PoolGVR).Create(ctx, probe.DeepCopy(), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		cancel()
		if err == nil {
			v, _, _ := unstructured.NestedInt64(got.Object, "spec", "ipVersion")
			if v == 4 && slices.Contains(got.GetFinalizers(), SpiderpoolFinalizer) {
				return nil
			}
			last = fmt.Errorf("dry-run pool not mutated yet (ipVersion %d, finalizers %v)", v, got.GetFinalizers())
		} else {
			last = err
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("not called after %s: %v", timeout, last)
}

// cleanup deletes the webhook configurations, lets the still running
// controller finalize the pools deleted meanwhile (at most 10s), stops it,
// and takes SpiderPool's finalizer off every pool left with it.
func (c *SpiderpoolController) cleanup() {
	t := c.t
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ar := c.kube.AdmissionregistrationV1()
	if err := ar.MutatingWebhookConfigurations().Delete(ctx, c.Webhooks, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("delete MutatingWebhookConfiguration %s: %v", c.Webhooks, err)
	}
	if err := ar.ValidatingWebhookConfigurations().Delete(ctx, c.Webhooks, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		t.Errorf("delete ValidatingWebhookConfiguration %s: %v", c.Webhooks, err)
	}
	terminating := func() []string {
		var out []string
		list, err := c.dyn.Resource(ipam.PoolGVR).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil
		}
		for _, p := range list.Items {
			if p.GetDeletionTimestamp() != nil && slices.Contains(p.GetFinalizers(), SpiderpoolFinalizer) {
				out = append(out, p.GetName())
			}
		}
		return out
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && c.running(); time.Sleep(200 * time.Millisecond) {
		if len(terminating()) == 0 {
			break
		}
	}
	c.Stop()
	for _, gvr := range []schema.GroupVersionResource{ipam.PoolGVR, spReservedIPGVR} {
		list, err := c.dyn.Resource(gvr).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Logf("list %s: %v", gvr.Resource, err)
			continue
		}
		for _, p := range list.Items {
			fin := p.GetFinalizers()
			if !slices.Contains(fin, SpiderpoolFinalizer) {
				continue
			}
			p.SetFinalizers(slices.DeleteFunc(slices.Clone(fin), func(s string) bool { return s == SpiderpoolFinalizer }))
			if _, err := c.dyn.Resource(gvr).Update(ctx, &p, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
				t.Errorf("remove finalizer %s of %s %s: %v", SpiderpoolFinalizer, gvr.Resource, p.GetName(), err)
				continue
			}
			t.Logf("spiderpool-controller gone: removed finalizer %s of %s %s (deleting: %v)", SpiderpoolFinalizer, gvr.Resource, p.GetName(), p.GetDeletionTimestamp() != nil)
		}
	}
}
