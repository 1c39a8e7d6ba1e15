package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/edgelink/edgelink/tests/testutil"
)

// setPath sets a dotted key ("modules.cloudHub.https.address") in a YAML
// document decoded to generic maps, creating missing maps on the way.
func setPath(m map[string]any, path string, v any) {
	keys := strings.Split(path, ".")
	for _, k := range keys[:len(keys)-1] {
		next, ok := m[k].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[k] = next
		}
		m = next
	}
	m[keys[len(keys)-1]] = v
}

func (cp *ControlPlane) cloudcoreConfigPath() string {
	return filepath.Join(cp.Dir, "cloud", "cloudcore.yaml")
}

// writeCloudcoreConfig edits `cloudcore --defaultconfig`: every address is
// the bridge IP with free ports, every path is under the run directory,
// dynamicController on (it serves the edges' metaServer list/watch),
// iptablesManager off (it would program the host's iptables).
func (cp *ControlPlane) writeCloudcoreConfig() error {
	def, err := exec.Command(cp.bins.cloudcore, "--defaultconfig").Output()
	if err != nil {
		return fmt.Errorf("cloudcore --defaultconfig: %w", err)
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(def, &cfg); err != nil {
		return fmt.Errorf("cloudcore --defaultconfig: %w", err)
	}
	d := filepath.Join(cp.Dir, "cloud")
	for _, sub := range []string{"ca", "certs", "run"} {
		if err := os.MkdirAll(filepath.Join(d, sub), 0o700); err != nil {
			return err
		}
	}
	ip := cp.BridgeIP.String()
	for k, v := range map[string]any{
		"kubeAPIConfig.kubeConfig":                    cp.Kubeconfig,
		"commonConfig.monitorServer.bindAddress":      fmt.Sprintf("%s:%d", ip, cp.monitorPort), // default 127.0.0.1:9091
		"modules.cloudHub.advertiseAddress":           []any{ip},                                // server cert SANs (G5)
		"modules.cloudHub.dnsNames":                   []any{"localhost"},
		"modules.cloudHub.https.address":              ip,
		"modules.cloudHub.https.port":                 cp.httpsPort,
		"modules.cloudHub.websocket.address":          ip,
		"modules.cloudHub.websocket.port":             cp.wsPort,
		"modules.cloudHub.quic.enable":                false,
		"modules.cloudHub.quic.address":               ip,
		"modules.cloudHub.quic.port":                  cp.quicPort,
		"modules.cloudHub.tlsCAFile":                  filepath.Join(d, "ca", "rootCA.crt"), // generated, kept in secret casecret
		"modules.cloudHub.tlsCAKeyFile":               filepath.Join(d, "ca", "rootCA.key"),
		"modules.cloudHub.tlsCertFile":                filepath.Join(d, "certs", "server.crt"), // secret cloudcoresecret
		"modules.cloudHub.tlsPrivateKeyFile":          filepath.Join(d, "certs", "server.key"),
		"modules.cloudHub.unixsocket.address":         "unix://" + filepath.Join(d, "run", "kubeedge.sock"),
		"modules.cloudStream.enable":                  false,
		"modules.cloudStream.tlsStreamCAFile":         filepath.Join(d, "ca", "streamCA.crt"),
		"modules.cloudStream.tlsStreamCertFile":       filepath.Join(d, "certs", "stream.crt"),
		"modules.cloudStream.tlsStreamPrivateKeyFile": filepath.Join(d, "certs", "stream.key"),
		"modules.cloudStream.tlsTunnelCAFile":         filepath.Join(d, "ca", "rootCA.crt"),
		"modules.cloudStream.tlsTunnelCertFile":       filepath.Join(d, "certs", "server.crt"),
		"modules.cloudStream.tlsTunnelPrivateKeyFile": filepath.Join(d, "certs", "server.key"),
		"modules.dynamicController.enable":            true,
		"modules.iptablesManager.enable":              false,
		"modules.router.enable":                       false, // default off; would listen on 0.0.0.0:9443
		"modules.router.address":                      ip,
	} {
		setPath(cfg, k, v)
	}
	if err := cp.authorizationConfig(cfg, false); err != nil {
		return err
	}
	if cp.opts.CloudcoreConfig != nil {
		cp.opts.CloudcoreConfig(cfg)
	}
	return writeYAML(cp.cloudcoreConfigPath(), cfg)
}

func writeYAML(path string, v any) error {
	b, err := yaml.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o600)
}

// token reads the current edge join token. cloudcore regenerates secret
// kubeedge/tokensecret at every start (G6), so each new edgecore reads it.
func (cp *ControlPlane) token(ctx context.Context) (string, error) {
	s, err := cp.Client.CoreV1().Secrets("kubeedge").Get(ctx, "tokensecret", metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	tok := strings.TrimSpace(string(s.Data["tokendata"]))
	if tok == "" {
		return "", errors.New("secret kubeedge/tokensecret has no tokendata")
	}
	return tok, nil
}

// edgecoreConfig returns edgecore's configuration for node e: edits of
// `edgecore --defaultconfig` (edged, deviceTwin and eventBus off,
// metaServer on, edgeHub pointed at the bridge, paths in e.Dir). token is
// set only for a first bootstrap (no certificates yet).
func (cp *ControlPlane) edgecoreConfig(e *EdgeNode, token string) (map[string]any, error) {
	cp.mu.Lock()
	def := cp.edgeDefCfg
	cp.mu.Unlock()
	if def == nil {
		out, err := exec.Command(cp.bins.edgecore, "--defaultconfig").Output()
		if err != nil {
			return nil, fmt.Errorf("edgecore --defaultconfig: %w", err)
		}
		def = out
		cp.mu.Lock()
		cp.edgeDefCfg = out
		cp.mu.Unlock()
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(def, &cfg); err != nil {
		return nil, fmt.Errorf("edgecore --defaultconfig: %w", err)
	}
	d := e.Dir
	ip := e.cloudHost
	ca, crt, key := filepath.Join(d, "ca", "rootCA.crt"), filepath.Join(d, "certs", "server.crt"), filepath.Join(d, "certs", "server.key")
	for k, v := range map[string]any{
		"database.dataSource":                              filepath.Join(d, "edgecore.db"),
		"modules.edged.enable":                             false,  // no container runtime (AddEdgeNodeWithPods: edgedConfig)
		"modules.edged.hostnameOverride":                   e.Name, // the node name edgeHub uses
		"modules.edged.rootDirectory":                      filepath.Join(d, "kubelet"),
		"modules.deviceTwin.enable":                        false, // would use /etc/kubeedge/dmi.sock
		"modules.deviceTwin.dmiSockPath":                   filepath.Join(d, "dmi.sock"),
		"modules.eventBus.enable":                          false, // needs an MQTT broker
		"modules.serviceBus.enable":                        false,
		"modules.edgeStream.enable":                        false,
		"modules.edgeHub.httpServer":                       fmt.Sprintf("https://%s:%d", ip, cp.httpsPort),
		"modules.edgeHub.websocket.server":                 fmt.Sprintf("%s:%d", ip, cp.wsPort),
		"modules.edgeHub.quic.enable":                      false,
		"modules.edgeHub.quic.server":                      fmt.Sprintf("%s:%d", ip, cp.quicPort),
		"modules.edgeHub.token":                            token,
		"modules.edgeHub.tlsCaFile":                        ca,  // fetched from cloudcore with the token
		"modules.edgeHub.tlsCertFile":                      crt, // signed by cloudcore
		"modules.edgeHub.tlsPrivateKeyFile":                key,
		"modules.edgeStream.tlsTunnelCAFile":               ca,
		"modules.edgeStream.tlsTunnelCertFile":             crt,
		"modules.edgeStream.tlsTunnelPrivateKeyFile":       key,
		"modules.metaManager.metaServer.enable":            true, // http://127.0.0.1:10550 in the node's netns
		"modules.metaManager.metaServer.tlsCaFile":         ca,
		"modules.metaManager.metaServer.tlsCertFile":       crt,
		"modules.metaManager.metaServer.tlsPrivateKeyFile": key,
	} {
		setPath(cfg, k, v)
	}
	if err := cp.authorizationConfig(cfg, true); err != nil {
		return nil, err
	}
	if e.edged != nil {
		e.edgedConfig(cfg)
	}
	if cp.opts.EdgecoreConfig != nil {
		cp.opts.EdgecoreConfig(e.Name, cfg)
	}
	return cfg, nil
}

// Module directories of the tools modules, found once per test binary.
var (
	modDirMu sync.Mutex
	modDirs  = map[string]string{}
)

// moduleDir returns the module-cache directory of module as required by
// the tools module in tests/tools/<toolsDir>, downloading it if needed.
func moduleDir(toolsDir, module string) (string, error) {
	modDirMu.Lock()
	defer modDirMu.Unlock()
	if d, ok := modDirs[module]; ok {
		return d, nil
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(goBin, "mod", "download", "-json", module)
	cmd.Dir = filepath.Join(testutil.RepoRoot(), "tests", "tools", toolsDir)
	cmd.Env = append(os.Environ(), "GONOSUMDB=github.com/kubeedge,github.com/spidernet-io,k8s.io,sigs.k8s.io", "GOFLAGS=-mod=mod")
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %s", err, ee.Stderr)
		}
		return "", fmt.Errorf("go mod download %s (in tests/tools/%s): %w", module, toolsDir, err)
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out, &info); err != nil {
		return "", err
	}
	if info.Dir == "" {
		return "", fmt.Errorf("go mod download %s: no Dir (%s)", module, info.Error)
	}
	modDirs[module] = info.Dir
	return info.Dir, nil
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// crdFiles lists KubeEdge's CRDs (build/crds of the kubeedge module that
// cloudcore is built from) and SpiderPool's own (spiderpool.spidernet.io_*
// in its chart).
func crdFiles() ([]string, error) {
	ke, err := moduleDir("kubeedge", "github.com/kubeedge/kubeedge")
	if err != nil {
		return nil, err
	}
	sp, err := moduleDir("spiderpool", "github.com/spidernet-io/spiderpool")
	if err != nil {
		return nil, err
	}
	var files []string
	err = filepath.WalkDir(filepath.Join(ke, "build", "crds"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".yaml") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	spFiles, err := filepath.Glob(filepath.Join(sp, "charts", "spiderpool", "crds", "spiderpool.spidernet.io_*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(spFiles) == 0 {
		return nil, fmt.Errorf("no SpiderPool CRDs in %s/charts/spiderpool/crds", sp)
	}
	sort.Strings(files)
	return append(files, spFiles...), nil
}

// installCRDs applies the CRDs server-side (the large ones exceed the
// last-applied annotation of client-side apply), waits until each is
// Established, and creates namespace kubeedge.
func (cp *ControlPlane) installCRDs() error {
	files, err := crdFiles()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var names []string
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(fh, 64<<10)
		for {
			var obj unstructured.Unstructured
			if err := dec.Decode(&obj.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				fh.Close()
				return fmt.Errorf("%s: %w", f, err)
			}
			if obj.GetKind() != "CustomResourceDefinition" {
				continue
			}
			_, err := cp.Dynamic.Resource(crdGVR).Apply(ctx, obj.GetName(), &obj, metav1.ApplyOptions{FieldManager: "edgelink-test-cluster", Force: true})
			if err != nil {
				fh.Close()
				return fmt.Errorf("apply %s from %s: %w", obj.GetName(), f, err)
			}
			names = append(names, obj.GetName())
		}
		fh.Close()
	}
	for _, n := range names {
		for {
			obj, err := cp.Dynamic.Resource(crdGVR).Get(ctx, n, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if crdEstablished(obj) {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("CRD %s not established", n)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	_, err = cp.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kubeedge"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return err
	}
	return nil
}

func crdEstablished(obj *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}
