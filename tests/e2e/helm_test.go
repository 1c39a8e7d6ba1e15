package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/yaml"

	v1 "github.com/edgelink/edgelink/config/v1alpha1"
	"github.com/edgelink/edgelink/tests/cluster"
	"github.com/edgelink/edgelink/tests/testutil"
)

// The chart's tests run the real helm (built from the module proxy by
// tests/tools/build.sh) on build/helm/edgelink with the sample values a user
// would start from (ci/sample-values.yaml).

const helmNamespace = "edgelink-helm"

func chartDir() string { return filepath.Join(testutil.RepoRoot(), "build", "helm", "edgelink") }

func sampleValues() string { return filepath.Join(chartDir(), "ci", "sample-values.yaml") }

// helm runs helm with args and returns stdout, stderr and the error.
func helm(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(testutil.Tool(t, "helm"), args...)
	// keep helm away from the user's repositories, caches and kubeconfig
	home := t.TempDir()
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config",
		"HELM_DATA_HOME="+home+"/data", "KUBECONFIG="+home+"/none")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return out.String(), errb.String(), err
}

// renderChart runs helm template and decodes every manifest.
func renderChart(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	out, stderr, err := helm(t, append([]string{"template", "edgelink", chartDir(), "--namespace", helmNamespace}, args...)...)
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, stderr)
	}
	var objs []*unstructured.Unstructured
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096)
	for {
		var m map[string]any
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("helm template printed invalid YAML: %v\n%s", err, out)
		}
		if len(m) > 0 {
			objs = append(objs, &unstructured.Unstructured{Object: m})
		}
	}
	return objs
}

func find(objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	return nil
}

// podSpec decodes a DaemonSet's pod spec.
func podSpec(t *testing.T, ds *unstructured.Unstructured) corev1.PodSpec {
	t.Helper()
	m, _, _ := unstructured.NestedMap(ds.Object, "spec", "template", "spec")
	b, _ := json.Marshal(m)
	var s corev1.PodSpec
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestHelmLint(t *testing.T) {
	for _, values := range []string{"", sampleValues()} {
		args := []string{"lint", "--strict", chartDir()}
		if values != "" {
			args = append(args, "--values", values)
		}
		out, stderr, err := helm(t, args...)
		if err != nil || !strings.Contains(out, "1 chart(s) linted, 0 chart(s) failed") {
			t.Errorf("helm %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr)
		}
	}
}

// The agent configs the chart renders pass the agent's own validation and
// say what the values say; the DaemonSets land on the right nodes with the
// privileges the agent needs and no more; the CNI init container's command
// installs a conflist that points at the agent's IPAM socket.
func TestHelmTemplate(t *testing.T) {
	var values struct {
		Agent struct {
			RelayNodes     []v1.RelayNode    `json:"relayNodes"`
			MeshCIDRConfig v1.MeshCIDRConfig `json:"meshCIDRConfig"`
			RoutableCIDRs  []string          `json:"routableCIDRs"`
		} `json:"agent"`
		Membership struct {
			ExistingSecret string `json:"existingSecret"`
		} `json:"membership"`
	}
	b, err := os.ReadFile(sampleValues())
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	objs := renderChart(t, "--values", sampleValues())
	var kinds []string
	for _, o := range objs {
		kinds = append(kinds, o.GetKind()+"/"+o.GetName())
	}
	t.Logf("rendered: %s", strings.Join(kinds, " "))

	cm := find(objs, "ConfigMap", "edgelink")
	if cm == nil {
		t.Fatalf("no ConfigMap edgelink among %v", kinds)
	}
	bin := testutil.Binaries(t)
	dir := t.TempDir()
	configs := map[string]*v1.AgentConfig{}
	for _, role := range []string{"edge", "cloud"} {
		data, _, _ := unstructured.NestedString(cm.Object, "data", role+".yaml")
		if data == "" {
			t.Fatalf("ConfigMap lacks %s.yaml", role)
		}
		path := filepath.Join(dir, role+".yaml")
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
		// As the agent will see it: nodeName from $NODE_NAME.
		cmd := exec.Command(filepath.Join(bin, "edgelink"), "config", "validate", path)
		cmd.Env = append(os.Environ(), "NODE_NAME="+role+"-node-1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("edgelink config validate %s.yaml: %v\n%s\n%s", role, err, out, data)
		}
		t.Setenv("NODE_NAME", role+"-node-1")
		c, _, err := v1.Load(path)
		if err != nil {
			t.Fatalf("%s.yaml: %v", role, err)
		}
		configs[role] = c.AgentConfig
		if c.NodeName != role+"-node-1" {
			t.Errorf("%s.yaml: nodeName %q, want it from $NODE_NAME", role, c.NodeName)
		}
		mc := c.Modules.EdgeCNI.MeshCIDRConfig
		if !slices.Equal(mc.CloudCIDR, values.Agent.MeshCIDRConfig.CloudCIDR) || !slices.Equal(mc.EdgeCIDR, values.Agent.MeshCIDRConfig.EdgeCIDR) {
			t.Errorf("%s.yaml: meshCIDRConfig %+v, values say %+v", role, mc, values.Agent.MeshCIDRConfig)
		}
		if !c.Modules.EdgeCNI.Enable {
			t.Errorf("%s.yaml: edgeCNI disabled although mesh CIDRs are set", role)
		}
		if !slices.EqualFunc(c.Modules.Tunnel.RelayNodes, values.Agent.RelayNodes, func(a, b v1.RelayNode) bool {
			return a.NodeName == b.NodeName && slices.Equal(a.AdvertiseAddress, b.AdvertiseAddress)
		}) {
			t.Errorf("%s.yaml: relayNodes %+v, values say %+v", role, c.Modules.Tunnel.RelayNodes, values.Agent.RelayNodes)
		}
		if !slices.Equal(c.Modules.Tunnel.RoutableCIDRs, values.Agent.RoutableCIDRs) {
			t.Errorf("%s.yaml: routableCIDRs %v, values say %v", role, c.Modules.Tunnel.RoutableCIDRs, values.Agent.RoutableCIDRs)
		}
		if !c.Modules.Tunnel.Enable || !c.Modules.MetaSync.Enable {
			t.Errorf("%s.yaml: tunnel %v, metaSync %v; want both on", role, c.Modules.Tunnel.Enable, c.Modules.MetaSync.Enable)
		}
	}
	if c := configs["edge"]; c.Modules.MetaSync.Source != v1.SourceMetaServer || !c.Modules.IPAM.Enable {
		t.Errorf("edge.yaml: source %s, ipam %v; want the metaServer and IPAM on", c.Modules.MetaSync.Source, c.Modules.IPAM.Enable)
	}
	if c := configs["cloud"]; c.Modules.MetaSync.Source != v1.SourceInCluster || c.Modules.IPAM.Enable {
		t.Errorf("cloud.yaml: source %s, ipam %v; want inCluster and IPAM off", c.Modules.MetaSync.Source, c.Modules.IPAM.Enable)
	}

	for role, wantOp := range map[string]corev1.NodeSelectorOperator{"edge": corev1.NodeSelectorOpExists, "cloud": corev1.NodeSelectorOpDoesNotExist} {
		ds := find(objs, "DaemonSet", "edgelink-"+role)
		if ds == nil {
			t.Fatalf("no DaemonSet edgelink-%s among %v", role, kinds)
		}
		s := podSpec(t, ds)
		if !s.HostNetwork {
			t.Errorf("%s: not on the host network", role)
		}
		var op corev1.NodeSelectorOperator
		if a := s.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
			for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
				for _, e := range term.MatchExpressions {
					if e.Key == "node-role.kubernetes.io/edge" {
						op = e.Operator
					}
				}
			}
		}
		if op != wantOp {
			t.Errorf("%s: node-role.kubernetes.io/edge affinity %q, want %q", role, op, wantOp)
		}
		if !slices.ContainsFunc(s.Tolerations, func(tl corev1.Toleration) bool { return tl.Operator == corev1.TolerationOpExists && tl.Key == "" }) {
			t.Errorf("%s: does not tolerate every taint: %+v", role, s.Tolerations)
		}
		for _, c := range append(slices.Clone(s.InitContainers), s.Containers...) {
			sc := c.SecurityContext
			if sc == nil || sc.Privileged == nil || *sc.Privileged || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
				t.Errorf("%s/%s: securityContext %+v; want unprivileged, dropping ALL", role, c.Name, sc)
				continue
			}
			want := []corev1.Capability{}
			if c.Name == "agent" {
				want = []corev1.Capability{"NET_ADMIN", "NET_RAW"}
			}
			if got := sc.Capabilities.Add; !slices.Equal(slices.Sorted(slices.Values(got)), want) {
				t.Errorf("%s/%s: adds capabilities %v, want %v", role, c.Name, got, want)
			}
		}
		agent := s.Containers[0]
		if agent.Resources.Requests.Cpu().IsZero() || agent.Resources.Limits.Memory().IsZero() {
			t.Errorf("%s: agent without resource requests/limits: %+v", role, agent.Resources)
		}
		// The hostPaths the agent and the CNI plugin on the host share.
		hostPaths := map[string]string{}
		for _, v := range s.Volumes {
			if v.HostPath != nil {
				hostPaths[v.Name] = v.HostPath.Path
			}
			if v.Secret != nil && v.Secret.SecretName != values.Membership.ExistingSecret {
				t.Errorf("%s: secret volume %q, want membership.existingSecret %q", role, v.Secret.SecretName, values.Membership.ExistingSecret)
			}
		}
		mounted := map[string]string{} // mountPath -> host path
		for _, m := range agent.VolumeMounts {
			if hp, ok := hostPaths[m.Name]; ok {
				mounted[m.MountPath] = hp
			}
		}
		c := configs[role]
		for what, p := range map[string]string{"/dev/net/tun": "/dev/net/tun", "statusSocket": filepath.Dir(c.StatusSocket),
			"dataDir": c.DataDir, "ipam socket": filepath.Dir(c.Modules.IPAM.SocketPath)} {
			if mounted[p] != p {
				t.Errorf("%s: %s %s is not the host's (mounts %v)", role, what, p, mounted)
			}
		}
		checkProbes(t, role, agent, c.StatusSocket)
	}
	runProbe(t, podSpec(t, find(objs, "DaemonSet", "edgelink-edge")).Containers[0], configs["edge"].StatusSocket)

	// Run the edge init container's `edgelink cni install` as written,
	// with its host directories redirected into a temporary root.
	s := podSpec(t, find(objs, "DaemonSet", "edgelink-edge"))
	i := slices.IndexFunc(s.InitContainers, func(c corev1.Container) bool { return slices.Contains(c.Command, "cni") })
	if i < 0 {
		t.Fatalf("edge DaemonSet has no init container running edgelink cni install: %+v", s.InitContainers)
	}
	cmdline := s.InitContainers[i].Command
	if !slices.Equal(cmdline[:3], []string{"edgelink", "cni", "install"}) {
		t.Fatalf("init container runs %v", cmdline)
	}
	root := t.TempDir()
	plugin := filepath.Join(bin, "edgelink-cni")
	r := strings.NewReplacer("/etc/edgelink/edgelink.yaml", filepath.Join(dir, "edge.yaml"), "/host/", root+"/")
	args := []string{"--plugin=" + plugin}
	for _, a := range cmdline[3:] {
		args = append(args, r.Replace(a))
	}
	cmd := exec.Command(filepath.Join(bin, "edgelink"), append([]string{"cni", "install"}, args...)...)
	cmd.Env = append(os.Environ(), "NODE_NAME=edge-node-1")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("init container command %v: %v\n%s", args, err, out)
	}
	var conf struct {
		Plugins []struct {
			Type string         `json:"type"`
			IPAM map[string]any `json:"ipam"`
		} `json:"plugins"`
	}
	b, err = os.ReadFile(filepath.Join(root, "cni", "net.d", "10-edgelink.conflist"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &conf); err != nil || len(conf.Plugins) != 1 {
		t.Fatalf("conflist: %v\n%s", err, b)
	}
	ipam := conf.Plugins[0].IPAM
	if ipam["ipam_unix_socket_path"] != configs["edge"].Modules.IPAM.SocketPath || ipam["type"] != "spiderpool" {
		t.Errorf("conflist IPAM %v, want spiderpool at the agent's socket %s", ipam, configs["edge"].Modules.IPAM.SocketPath)
	}
	if pools, _ := ipam["default_ipv4_ippool"].([]any); len(pools) != 1 || pools[0] != "edge-pool-v4" {
		t.Errorf("conflist default_ipv4_ippool %v, want [edge-pool-v4] from edge.cni.defaultIPv4IPPool", ipam["default_ipv4_ippool"])
	}
	if _, err := os.Stat(filepath.Join(root, "cni", "bin", "edgelink-cni")); err != nil {
		t.Errorf("edgelink-cni not installed: %v", err)
	}
}

// checkProbes: the agent container has startup, readiness and liveness
// probes, each running `edgelink status` on the status socket its config
// names, and liveness gives a slow agent at least a minute.
func checkProbes(t *testing.T, role string, agent corev1.Container, socket string) {
	t.Helper()
	want := []string{"edgelink", "status", "--socket", socket, "-o", "json"}
	for name, p := range map[string]*corev1.Probe{"startupProbe": agent.StartupProbe, "readinessProbe": agent.ReadinessProbe, "livenessProbe": agent.LivenessProbe} {
		switch {
		case p == nil || p.Exec == nil:
			t.Errorf("%s: agent has no exec %s: %+v", role, name, p)
		case !slices.Equal(p.Exec.Command, want):
			t.Errorf("%s: %s runs %q, want %q", role, name, p.Exec.Command, want)
		case p.TimeoutSeconds < 5 || p.PeriodSeconds < 1 || p.FailureThreshold < 1:
			t.Errorf("%s: %s timeout %ds, period %ds, threshold %d: too tight", role, name, p.TimeoutSeconds, p.PeriodSeconds, p.FailureThreshold)
		}
	}
	if l := agent.LivenessProbe; l != nil && l.PeriodSeconds*l.FailureThreshold < 60 {
		t.Errorf("%s: liveness restarts the agent after %ds without an answer; give it at least 60s", role, l.PeriodSeconds*l.FailureThreshold)
	}
	if s := agent.StartupProbe; s != nil && s.PeriodSeconds*s.FailureThreshold < 60 {
		t.Errorf("%s: startup probe gives the agent only %ds to start", role, s.PeriodSeconds*s.FailureThreshold)
	}
}

// runProbe runs the agent container's liveness command, as written but on
// a real agent's socket in a temporary directory: it must exit 0 while
// the agent answers and fail once the agent is gone.
func runProbe(t *testing.T, agent corev1.Container, socket string) {
	t.Helper()
	if agent.LivenessProbe == nil || agent.LivenessProbe.Exec == nil {
		return // reported by checkProbes
	}
	c := v1.NewDefault()
	c.NodeName = "probe-node"
	c.DataDir = t.TempDir()
	c.StatusSocket = filepath.Join(t.TempDir(), "agent.sock")
	c.Modules.MetaSync.Enable, c.Modules.IPAM.Enable, c.Modules.EdgeCNI.Enable, c.Modules.Tunnel.Enable = false, false, false, false
	a := testutil.NewAgent(t, c, "")
	probe := func() error {
		cmdline := slices.Clone(agent.LivenessProbe.Exec.Command)
		for i, arg := range cmdline {
			if arg == socket {
				cmdline[i] = c.StatusSocket
			}
		}
		cmd := exec.Command(filepath.Join(testutil.Binaries(t), cmdline[0]), cmdline[1:]...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %w\n%s", cmdline, err, out)
		}
		return nil
	}
	a.Start("Agent running")
	if err := probe(); err != nil {
		t.Errorf("probe fails on a running agent: %v", err)
	}
	a.Stop()
	if err := probe(); err == nil {
		t.Errorf("probe passes with no agent on %s", c.StatusSocket)
	} else {
		t.Logf("probe %q: passes on a running agent; without one: %v", agent.LivenessProbe.Exec.Command, err)
	}
}

// Values that cannot work stop rendering with a message naming the value.
func TestHelmRefusesBadValues(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no membership secret, no segments", nil, "without membership.existingSecret, cloud nodes get their certificates from the controller"},
		{"no membership secret, no controller", append([]string{"--set", "controller.enabled=false"}, edgeMeshDocFlags...), "needs controller.enabled"},
		{"EdgeMesh PSK", []string{"--set", "membership.existingSecret=s", "--set", "agent.psk=secret"}, "agent.psk: EdgeLink has no pre-shared key"},
		{"relay without address", []string{"--set", "membership.existingSecret=s", "--set", "agent.relayNodes[0].nodeName=r1"}, "advertiseAddress"},
		{"misspelt key", []string{"--set", "membership.existingSecret=s", "--set", "agent.meshCidrConfig.edgeCIDR={10.244.5.0/24}"}, "meshCidrConfig"},
		{"not a CIDR", []string{"--set", "membership.existingSecret=s", "--set", "agent.meshCIDRConfig.edgeCIDR={10.244.5.0}"}, "edgeCIDR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := helm(t, append([]string{"template", "edgelink", chartDir()}, tc.args...)...)
			if err == nil || !strings.Contains(stderr, tc.want) {
				t.Errorf("helm template %v: err %v, stderr %q; want a failure naming %q", tc.args, err, stderr, tc.want)
			}
		})
	}
	// Edge nodes alone on KubeEdge's certificates need no Secret.
	objs := renderChart(t, "--set", "membership.kubeEdgeCerts=true", "--set", "cloud.enabled=false")
	if ds := find(objs, "DaemonSet", "edgelink-edge"); ds == nil || find(objs, "DaemonSet", "edgelink-cloud") != nil {
		t.Errorf("edge-only KubeEdge-certificate install rendered %d objects, want the edge DaemonSet only", len(objs))
	} else {
		for _, v := range podSpec(t, ds).Volumes {
			if v.Secret != nil {
				t.Errorf("edge DaemonSet on KubeEdge certificates mounts secret %q", v.Secret.SecretName)
			}
		}
	}
}

// The rendered manifests pass the real kube-apiserver's validation
// (server-side dry run, unknown fields refused), and that check has teeth:
// a misspelt field is refused.
func TestHelmDryRunApply(t *testing.T) {
	cp := cluster.Shared(t)
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: helmNamespace}}
	if _, err := cp.Client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cp.Client.CoreV1().Namespaces().Delete(context.Background(), helmNamespace, metav1.DeleteOptions{})
	})
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(cp.Client.Discovery()))
	dryRun := func(o *unstructured.Unstructured) error {
		m, err := mapper.RESTMapping(o.GroupVersionKind().GroupKind(), o.GroupVersionKind().Version)
		if err != nil {
			return err
		}
		opts := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}, FieldValidation: metav1.FieldValidationStrict}
		if m.Scope.Name() == "namespace" {
			_, err = cp.Dynamic.Resource(m.Resource).Namespace(o.GetNamespace()).Create(ctx, o, opts)
		} else {
			_, err = cp.Dynamic.Resource(m.Resource).Create(ctx, o, opts)
		}
		return err
	}

	for _, values := range [][]string{
		{"--values", sampleValues()},
		{"--set", "membership.kubeEdgeCerts=true", "--set", "cloud.enabled=false"},
		append([]string{"--set", "membership.existingSecret=s"}, edgeMeshDocFlags...), // the controller, its RBAC
		edgeMeshDocFlags, // enrollment: the signer's RBAC, the CA ConfigMap volumes, the Role on cloudcore's CA Secret
	} {
		objs := renderChart(t, values...)
		if len(objs) < 6 && values[0] == "--values" {
			t.Errorf("only %d objects rendered from the sample values", len(objs))
		}
		for _, o := range objs {
			if err := dryRun(o); err != nil {
				t.Errorf("%v: dry-run create %s %s/%s: %v", values, o.GetKind(), o.GetNamespace(), o.GetName(), err)
			} else {
				t.Logf("%v: %s %s accepted", values, o.GetKind(), o.GetName())
			}
		}
		// Dry run means nothing was created.
		if _, err := cp.Client.AppsV1().DaemonSets(helmNamespace).Get(ctx, "edgelink-edge", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("dry run created the DaemonSet (get: %v)", err)
		}
	}

	// NOTES.txt (which helm template does not render; a dry-run install
	// against the control plane does) warns that edge nodes mounting the
	// membership Secret can read every node's key, unless edge nodes use
	// KubeEdge's certificates.
	const secretWarning = "WARNING: edge agents mount the membership Secret"
	for _, tc := range []struct {
		values []string
		warn   bool
	}{
		{[]string{"--values", sampleValues()}, true},
		{[]string{"--values", sampleValues(), "--set", "membership.kubeEdgeCerts=true"}, false},
		{[]string{"--values", sampleValues(), "--set", "edge.enabled=false"}, false},
	} {
		out, stderr, err := helm(t, append([]string{"install", "edgelink", chartDir(), "--namespace", helmNamespace,
			"--dry-run=server", "--kubeconfig", cp.Kubeconfig}, tc.values...)...)
		if err != nil {
			t.Fatalf("helm install --dry-run %v: %v\n%s", tc.values, err, stderr)
		}
		_, notes, _ := strings.Cut(out, "\nNOTES:\n")
		if got := strings.Contains(notes, secretWarning); got != tc.warn {
			t.Errorf("%v: NOTES warn about the membership Secret: %v, want %v:\n%s", tc.values, got, tc.warn, notes)
		}
		if tc.warn && !strings.Contains(notes, "membership.kubeEdgeCerts=true") {
			t.Errorf("%v: the warning does not say what to set:\n%s", tc.values, notes)
		}
	}

	// Without CIDRs NOTES.txt says the feature is off; with them, names
	// the block controller.
	for _, tc := range []struct {
		values []string
		want   string
	}{
		{[]string{"--set", "membership.existingSecret=s"}, "The pod network feature is OFF"},
		{append([]string{"--set", "membership.existingSecret=s"}, edgeMeshDocFlags...), "Block controller:  deployment/edgelink-controller"},
	} {
		out, stderr, err := helm(t, append([]string{"install", "edgelink", chartDir(), "--namespace", helmNamespace,
			"--dry-run=server", "--kubeconfig", cp.Kubeconfig}, tc.values...)...)
		if err != nil {
			t.Fatalf("helm install --dry-run %v: %v\n%s", tc.values, err, stderr)
		}
		if _, notes, _ := strings.Cut(out, "\nNOTES:\n"); !strings.Contains(notes, tc.want) {
			t.Errorf("%v: NOTES lack %q:\n%s", tc.values, tc.want, notes)
		}
	}

	ds := find(renderChart(t, "--values", sampleValues()), "DaemonSet", "edgelink-edge")
	containers, _, _ := unstructured.NestedSlice(ds.Object, "spec", "template", "spec", "containers")
	containers[0].(map[string]any)["securityContext"].(map[string]any)["privilegd"] = true
	if err := unstructured.SetNestedSlice(ds.Object, containers, "spec", "template", "spec", "containers"); err != nil {
		t.Fatal(err)
	}
	if err := dryRun(ds); err == nil || !strings.Contains(err.Error(), "privilegd") {
		t.Errorf("a misspelt field passed the dry run (err %v)", err)
	}
}

// edgeMeshDocFlags are the EdgeMesh CNI document's `helm install` flags,
// exactly as its step 2 gives them (the shell removes the quotes).
var edgeMeshDocFlags = []string{
	"--set", "agent.relayNodes[0].nodeName=k8s-master,agent.relayNodes[0].advertiseAddress={1.1.1.1}",
	"--set", "agent.cloudCIDR={10.244.1.0/24,10.244.1.0/24},agent.edgeCIDR={10.244.5.0/24,10.244.6.0/24}",
}

// validateConfigs writes each config of a rendered ConfigMap and runs the
// real binary's validation on it, as the agent and the controller will.
func validateRendered(t *testing.T, objs []*unstructured.Unstructured) map[string]string {
	t.Helper()
	bin := testutil.Binaries(t)
	dir := t.TempDir()
	out := map[string]string{}
	for _, o := range objs {
		if o.GetKind() != "ConfigMap" {
			continue
		}
		data, _, _ := unstructured.NestedStringMap(o.Object, "data")
		for name, text := range data {
			out[name] = text
			path := filepath.Join(dir, name)
			if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
			if name == "controller.yaml" {
				if _, err := v1.LoadController(path); err != nil {
					t.Errorf("rendered controller config does not validate: %v\n%s", err, text)
				}
				continue
			}
			cmd := exec.Command(filepath.Join(bin, "edgelink"), "config", "validate", path)
			cmd.Env = append(os.Environ(), "NODE_NAME=node-1")
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("rendered %s does not validate: %v\n%s", name, err, b)
			}
		}
	}
	return out
}

// The EdgeMesh document's Helm command carries over: its flat
// agent.cloudCIDR/agent.edgeCIDR spelling renders the same agent configs
// as agent.meshCIDRConfig.*, every config validates, and the block
// controller runs with the same segments. (Membership still needs a
// Secret here; enrollment without one is the trust work's.)
func TestHelmEdgeMeshCommand(t *testing.T) {
	flat := renderChart(t, append([]string{"--set", "membership.existingSecret=s"}, edgeMeshDocFlags...)...)
	cfgs := validateRendered(t, flat)
	for _, name := range []string{"edge.yaml", "cloud.yaml", "controller.yaml"} {
		if !strings.Contains(cfgs[name], "10.244.5.0/24") || !strings.Contains(cfgs[name], "10.244.1.0/24") {
			t.Errorf("%s lacks the document's CIDRs:\n%s", name, cfgs[name])
		}
	}
	var edge v1.AgentConfig
	if err := yaml.Unmarshal([]byte(cfgs["edge.yaml"]), &edge); err != nil {
		t.Fatal(err)
	}
	if !edge.Modules.IPAM.Enable || !edge.Modules.EdgeCNI.Enable {
		t.Errorf("edge agent: ipam %v, edgeCNI %v; want both on with CIDRs set", edge.Modules.IPAM.Enable, edge.Modules.EdgeCNI.Enable)
	}
	if d := find(flat, "Deployment", "edgelink-controller"); d == nil {
		t.Error("no controller Deployment with CIDRs set")
	}
	nested := renderChart(t, "--set", "membership.existingSecret=s",
		"--set", "agent.relayNodes[0].nodeName=k8s-master,agent.relayNodes[0].advertiseAddress={1.1.1.1}",
		"--set", "agent.meshCIDRConfig.cloudCIDR={10.244.1.0/24,10.244.1.0/24},agent.meshCIDRConfig.edgeCIDR={10.244.5.0/24,10.244.6.0/24}")
	if got := validateRendered(t, nested); got["edge.yaml"] != cfgs["edge.yaml"] || got["controller.yaml"] != cfgs["controller.yaml"] {
		t.Errorf("the two spellings render differently:\nflat:\n%s\nnested:\n%s", cfgs["edge.yaml"], got["edge.yaml"])
	}
	// Both spellings with different values: an error naming both.
	_, stderr, err := helm(t, "template", "edgelink", chartDir(), "--set", "membership.existingSecret=s",
		"--set", "agent.edgeCIDR={10.244.5.0/24}", "--set", "agent.meshCIDRConfig.edgeCIDR={10.244.6.0/24}")
	if err == nil || !strings.Contains(stderr, "agent.edgeCIDR") || !strings.Contains(stderr, "agent.meshCIDRConfig.edgeCIDR") {
		t.Errorf("conflicting spellings: err %v, stderr %q; want an error naming both", err, stderr)
	}
}

// No CIDR at all: the feature is off, as the document promises. Edge
// nodes keep their CNI: no conflist or plugin binaries are installed (no
// init containers, no CNI host paths), the agents' IPAM and edgeCNI are
// off, and no controller runs.
func TestHelmNoCIDRFeatureOff(t *testing.T) {
	objs := renderChart(t, "--set", "membership.existingSecret=s",
		"--set", "agent.relayNodes[0].nodeName=k8s-master,agent.relayNodes[0].advertiseAddress={1.1.1.1}")
	cfgs := validateRendered(t, objs)
	for _, name := range []string{"edge.yaml", "cloud.yaml"} {
		var c v1.AgentConfig
		if err := yaml.Unmarshal([]byte(cfgs[name]), &c); err != nil {
			t.Fatal(err)
		}
		if c.Modules.IPAM.Enable || c.Modules.EdgeCNI.Enable {
			t.Errorf("%s: ipam %v, edgeCNI %v without CIDRs; want both off", name, c.Modules.IPAM.Enable, c.Modules.EdgeCNI.Enable)
		}
	}
	ds := find(objs, "DaemonSet", "edgelink-edge")
	if ds == nil {
		t.Fatal("no edge DaemonSet")
	}
	s := podSpec(t, ds)
	if len(s.InitContainers) != 0 {
		t.Errorf("edge DaemonSet installs CNI pieces without CIDRs: %d init containers", len(s.InitContainers))
	}
	for _, v := range s.Volumes {
		if v.HostPath != nil && (strings.Contains(v.HostPath.Path, "/cni/") || strings.HasSuffix(v.HostPath.Path, "/cni/bin") || strings.HasSuffix(v.HostPath.Path, "net.d")) {
			t.Errorf("edge DaemonSet mounts CNI host path %s without CIDRs", v.HostPath.Path)
		}
	}
	for _, o := range objs {
		if strings.Contains(o.GetName(), "controller") {
			t.Errorf("%s %s rendered without CIDRs", o.GetKind(), o.GetName())
		}
	}
}

// edge.metaServer.requireAuthorization: edge agents dial the metaServer
// over https with EdgeCore's metaServer CA (the host's directory, mounted
// at the path the config names) and a projected token of the chart's
// ServiceAccount (mounted where the config's tokenFile points), which the
// read-only ClusterRole is bound to, also without cloud agents; no API
// token is mounted. Off (the default), edge pods get neither.
func TestHelmMetaServerAuthorization(t *testing.T) {
	for _, cloud := range []bool{true, false} {
		t.Run(fmt.Sprintf("cloud.enabled=%v", cloud), func(t *testing.T) {
			objs := renderChart(t, "--values", sampleValues(), "--set", "edge.metaServer.requireAuthorization=true",
				"--set", "edge.metaServer.tokenAudience=edgelink-metaserver", "--set", fmt.Sprintf("cloud.enabled=%v", cloud))
			cfgs := validateRendered(t, objs)
			var c v1.AgentConfig
			if err := yaml.Unmarshal([]byte(cfgs["edge.yaml"]), &c); err != nil {
				t.Fatal(err)
			}
			m := c.Modules.MetaSync
			if m.MetaServer != "https://127.0.0.1:10550" || m.CAFile != "/etc/kubeedge/pki/metaserver/ca.crt" || m.TokenFile == "" {
				t.Fatalf("edge.yaml metaSync %+v; want https://127.0.0.1:10550, EdgeCore's metaServer CA and a token file", m)
			}
			s := podSpec(t, find(objs, "DaemonSet", "edgelink-edge"))
			if s.ServiceAccountName != "edgelink" || s.AutomountServiceAccountToken == nil || *s.AutomountServiceAccountToken {
				t.Errorf("edge pod: serviceAccountName %q, automount %v; want the chart's account and no API token", s.ServiceAccountName, s.AutomountServiceAccountToken)
			}
			vols := map[string]corev1.Volume{}
			for _, v := range s.Volumes {
				vols[v.Name] = v
			}
			var caMounted, tokenMounted bool
			for _, vm := range s.Containers[0].VolumeMounts {
				v := vols[vm.Name]
				switch {
				case v.HostPath != nil && v.HostPath.Path == filepath.Dir(m.CAFile) && vm.MountPath == filepath.Dir(m.CAFile) && vm.ReadOnly:
					caMounted = true
				case v.Projected != nil && vm.MountPath == filepath.Dir(m.TokenFile):
					for _, src := range v.Projected.Sources {
						if st := src.ServiceAccountToken; st != nil && st.Path == filepath.Base(m.TokenFile) && st.Audience == "edgelink-metaserver" &&
							st.ExpirationSeconds != nil && *st.ExpirationSeconds >= 600 {
							tokenMounted = true
						}
					}
				}
			}
			if !caMounted || !tokenMounted {
				t.Errorf("agent mounts: CA %v, token %v; volumes %+v, mounts %+v", caMounted, tokenMounted, s.Volumes, s.Containers[0].VolumeMounts)
			}
			if find(objs, "ServiceAccount", "edgelink") == nil || find(objs, "ClusterRole", "edgelink") == nil {
				t.Fatal("no ServiceAccount or ClusterRole edgelink for the edge agents' token")
			}
			crb := find(objs, "ClusterRoleBinding", "edgelink")
			subjects, _, _ := unstructured.NestedSlice(crb.Object, "subjects")
			if len(subjects) != 1 || subjects[0].(map[string]any)["name"] != "edgelink" {
				t.Errorf("ClusterRoleBinding subjects %v", subjects)
			}
		})
	}

	objs := renderChart(t, "--values", sampleValues())
	var c v1.AgentConfig
	if err := yaml.Unmarshal([]byte(validateRendered(t, objs)["edge.yaml"]), &c); err != nil {
		t.Fatal(err)
	}
	s := podSpec(t, find(objs, "DaemonSet", "edgelink-edge"))
	if c.Modules.MetaSync.TokenFile != "" || c.Modules.MetaSync.CAFile != "" || s.ServiceAccountName != "" {
		t.Errorf("default: metaSync %+v, edge serviceAccountName %q; want plain http and no account", c.Modules.MetaSync, s.ServiceAccountName)
	}
}

// The EdgeMesh document's Helm command, with no Secret at all, gives a
// mesh whose members enroll: the controller keeps the CA and signs through
// the CertificateSigningRequest API for the cloud agents' ServiceAccount
// only; cloud agents enroll and trust the published CAs, each kind of
// certificate to its own; edge agents use cloudcore's certificates; no pod
// mounts a Secret. (The signing itself runs for real in
// TestEnrollThroughCertificateSigningRequests.)
func TestHelmEdgeMeshCommandEnrolls(t *testing.T) {
	objs := renderChart(t, edgeMeshDocFlags...)
	cfgs := validateRendered(t, objs)
	var cloud, edge v1.AgentConfig
	for name, c := range map[string]*v1.AgentConfig{"cloud.yaml": &cloud, "edge.yaml": &edge} {
		if err := yaml.Unmarshal([]byte(cfgs[name]), c); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	if ct := cloud.Modules.Tunnel; !ct.Enroll || ct.CAFile != "/etc/edgelink/ca/ca.crt" || ct.KubeEdgeCAFile != "/etc/edgelink/ca/kubeedge-ca.crt" ||
		!strings.HasPrefix(ct.KeyFile, "/var/lib/edgelink/") {
		t.Errorf("cloud tunnel = %+v; want enroll with the published CAs and the key in the data dir", ct)
	}
	if et := edge.Modules.Tunnel; et.Enroll || et.CertFile != "/etc/kubeedge/certs/server.crt" || et.CAFile != "/etc/edgelink/ca/ca.crt" ||
		et.KubeEdgeCAFile != "/etc/kubeedge/ca/rootCA.crt" {
		t.Errorf("edge tunnel = %+v; want cloudcore's certificate, the cluster CA for cloud nodes and KubeEdge's for edge nodes", et)
	}
	if !strings.Contains(cfgs["controller.yaml"], "agentServiceAccount: "+helmNamespace+"/edgelink") ||
		!strings.Contains(cfgs["controller.yaml"], "caSecret: edgelink-ca") {
		t.Errorf("controller config lacks enrollment:\n%s", cfgs["controller.yaml"])
	}
	var signs, kubeEdgeRole bool
	for _, o := range objs {
		if v, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "volumes"); len(v) > 0 {
			for _, vol := range v {
				if _, ok := vol.(map[string]any)["secret"]; ok {
					t.Errorf("%s %s mounts a Secret: %v", o.GetKind(), o.GetName(), vol)
				}
			}
		}
		rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
		for _, r := range rules {
			s := fmt.Sprint(r)
			if o.GetName() == "edgelink-controller" && strings.Contains(s, "signers") && strings.Contains(s, "edgelink.io/member") {
				signs = true
			}
			if o.GetKind() == "Role" && o.GetNamespace() == "kubeedge" && strings.Contains(s, "casecret") {
				kubeEdgeRole = true
			}
		}
	}
	if !signs || !kubeEdgeRole {
		t.Errorf("RBAC: controller may sign for edgelink.io/member %v, may read kubeedge/casecret %v", signs, kubeEdgeRole)
	}
}
