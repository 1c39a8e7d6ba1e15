package cluster

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgelink/edgelink/tests/testutil"
)

// Scheduling: the control plane normally binds pods itself (spec.nodeName).
// For pods placed by a nodeSelector and for Deployments, StartScheduling
// adds kube-scheduler and a kube-controller-manager that runs the
// deployment, replicaset and node lifecycle controllers (both from the same
// Kubernetes module as the kube-apiserver). Neither serves HTTPS
// (--secure-port=0) or elects a leader; they use the admin kubeconfig.
//
// The node lifecycle controller lifts the node.kubernetes.io/not-ready
// NoSchedule taint that edged, like every kubelet, registers its Node with
// once the Node reports Ready, so workloads need no tolerations. It also
// taints Nodes that never report (the cloud nodes here have no kubelet)
// unreachable; the taint eviction controller, which would act on that
// NoExecute taint, does not run, so pods bound to those nodes stay.

// StartScheduling starts kube-scheduler and the workload controllers for
// the rest of t (calls while they run return at once). t's cleanup stops
// them: the control plane is shared, and the node lifecycle controller
// would go on rewriting the Nodes of every later test (taints,
// conditions), which those tests neither expect nor see in a real
// cluster's first minute.
func (cp *ControlPlane) StartScheduling(t testing.TB) error {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if cp.scheduler != nil {
		return nil
	}
	out, err := exec.Command(filepath.Join(testutil.RepoRoot(), "tests", "tools", "build.sh"), "kube-scheduler", "kube-controller-manager").Output()
	if err != nil {
		return fmt.Errorf("tests/tools/build.sh kube-scheduler kube-controller-manager: %v", err)
	}
	bins := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			bins[k] = v
		}
	}
	sched := &proc{name: "kube-scheduler", log: cp.logPath("kube-scheduler"), argv: func() []string {
		return []string{bins["kube-scheduler"], "--kubeconfig=" + cp.Kubeconfig, "--leader-elect=false", "--secure-port=0"}
	}}
	kcm := &proc{name: "kube-controller-manager-workloads", log: cp.logPath("kube-controller-manager-workloads"), argv: func() []string {
		return []string{bins["kube-controller-manager"], "--kubeconfig=" + cp.Kubeconfig,
			"--controllers=deployment-controller,replicaset-controller,node-lifecycle-controller",
			"--leader-elect=false", "--secure-port=0", "--use-service-account-credentials=false"}
	}}
	for _, p := range []*proc{sched, kcm} {
		if err := p.start(); err != nil {
			sched.stop(5 * time.Second)
			return err
		}
	}
	// Both exit at once on a bad flag; give them a moment to say so.
	time.Sleep(time.Second)
	for _, p := range []*proc{sched, kcm} {
		if !p.running() {
			sched.stop(5 * time.Second)
			kcm.stop(5 * time.Second)
			return fmt.Errorf("%s exited (%v):\n%s", p.name, p.exitErr(), p.tail(20))
		}
	}
	cp.scheduler, cp.workloads = sched, kcm
	t.Cleanup(cp.stopScheduling)
	return nil
}

func (cp *ControlPlane) stopScheduling() {
	cp.mu.Lock()
	sched, kcm := cp.scheduler, cp.workloads
	cp.scheduler, cp.workloads = nil, nil
	cp.mu.Unlock()
	for _, p := range []*proc{sched, kcm} {
		if p != nil {
			p.stop(5 * time.Second)
		}
	}
}
