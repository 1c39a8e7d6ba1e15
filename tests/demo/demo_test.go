// Package demo is `make demo`: the simulated cloud-edge cluster of
// tests/simcluster brought up, shown working, and torn down. It is a Go
// test so that every namespace, process and file it makes is cleaned up
// by the same machinery as the end-to-end tests, also on Ctrl-C.
package demo

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgelink/edgelink/tests/cluster"
	"github.com/edgelink/edgelink/tests/simcluster"
	"github.com/edgelink/edgelink/tests/testutil"
)

func say(format string, args ...any) { fmt.Printf(format+"\n", args...) }

// failures collects what did not work; the demo fails, loudly, when one did.
type failures struct {
	t    *testing.T
	list []string
}

func (f *failures) add(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	f.list = append(f.list, msg)
	say("    FAILED: %s", msg)
	f.t.Error(msg)
}

// report prints the verdict last, where a reader of the demo looks.
func (f *failures) report() {
	if len(f.list) == 0 {
		say("\n==> demo OK: every ping answered, every status and transfer worked")
		return
	}
	say("\n==> DEMO FAILED: %d problem(s):", len(f.list))
	for _, m := range f.list {
		say("    - %s", m)
	}
}

// TestDemo runs only when EDGELINK_DEMO=1 (make demo sets it).
func TestDemo(t *testing.T) {
	if os.Getenv("EDGELINK_DEMO") != "1" {
		t.Skip("the demo runs through `make demo` (EDGELINK_DEMO=1)")
	}
	// Ctrl-C at any point ends the demo at the next step, through the
	// normal teardown (the default would kill the process and leave the
	// cluster for the next run's sweep).
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	interrupted := func() bool {
		select {
		case <-sig:
			say("\n==> interrupted: tearing down")
			return true
		default:
			return false
		}
	}
	fails := &failures{t: t}
	defer fails.report()
	start := time.Now()
	say("==> bringing up the cluster: etcd, kube-apiserver, cloudcore; 2 relays, 2 cloud nodes, sites A (2 nodes), C, B (symmetric NAT); an edgecore and an agent per node; c1 runs edged with its own containerd")
	c := simcluster.NewWith(t, simcluster.Default, simcluster.Options{Edged: []string{"c1"}})
	pods := map[string]*simcluster.Pod{}
	for _, n := range c.PodNodes() {
		pods[n.Name] = n.AddPod(t, "")
	}
	say("    up in %s", time.Since(start).Round(time.Second))
	if interrupted() {
		return
	}
	say("\n==> pods (cloud: bridge + host-local; edge: edgelink-cni + spiderpool from their blocks of the one cluster pool)")
	for _, n := range c.PodNodes() {
		say("    %-8s %-7s %s", n.Name, n.Kind, pods[n.Name].IP)
	}

	say("\n==> a pod the API server created and edged started (c1: containerd -> edgelink-cni -> spiderpool -> the agent's IPAM)")
	apiPod := c.Node("c1").RunAPIPod(t, "c1-api-web")
	say("    %s/%s on %s: status.podIP %s (from the kube-apiserver), image %s", apiPod.Namespace, apiPod.Name, apiPod.Spec.NodeName, apiPod.Status.PodIP, apiPod.Spec.Containers[0].Image)
	for _, from := range []string{"cloud-1", "a1"} {
		url := fmt.Sprintf("http://%s/", net.JoinHostPort(apiPod.Status.PodIP, fmt.Sprint(cluster.PodServerPort)))
		var body string
		var err error
		deadline := time.Now().Add(60 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			var code int
			var b []byte
			code, b, err = cluster.HTTPGet(ctx, pods[from].NS.Path(), url)
			cancel()
			if err == nil && code != 200 {
				err = fmt.Errorf("HTTP %d", code)
			}
			body = strings.TrimSpace(string(b))
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if err != nil {
			fails.add("GET %s from the pod on %s: %v", url, from, err)
			continue
		}
		say("    GET %s from the pod on %-8s -> %q (the address the pod has)", url, from, body)
		if body != apiPod.Status.PodIP {
			fails.add("the pod at %s says it has %s", apiPod.Status.PodIP, body)
		}
		if out, err := pods[from].Exec("ping", "-c1", "-W2", apiPod.Status.PodIP); err != nil {
			fails.add("ping %s from the pod on %s: %v %s", apiPod.Status.PodIP, from, err, out)
		} else {
			say("    ping %s from the pod on %-8s ok", apiPod.Status.PodIP, from)
		}
	}
	if interrupted() {
		return
	}

	say("\n==> pinging across segments (first answer may take a few seconds: paths are being set up)")
	pairs := [][2]string{{"cloud-1", "a1"}, {"cloud-2", "b1"}, {"a1", "a2"}, {"a1", "c1"}, {"a2", "b1"}, {"b1", "c1"}, {"c1", "cloud-2"}}
	for _, pr := range pairs {
		from, to := pods[pr[0]], pods[pr[1]]
		var out string
		var err error
		deadline := time.Now().Add(60 * time.Second)
		for {
			out, err = from.Exec("ping", "-c1", "-W1", to.IP.String())
			if err == nil || time.Now().After(deadline) {
				break
			}
		}
		rtt := "no answer"
		if i := strings.Index(out, "time="); err == nil && i >= 0 {
			rtt = strings.Fields(out[i+5:])[0] + " ms"
		}
		say("    %-8s -> %-8s %-12s %s", pr[0], pr[1], to.IP, rtt)
		if err != nil {
			fails.add("ping %s -> %s (%s): no answer within 60s", pr[0], pr[1], to.IP)
		}
	}

	if interrupted() {
		return
	}
	say("\n==> status per node (edgelink status)")
	for _, n := range c.Nodes() {
		say("--- %s", n.Name)
		out, err := exec.Command("ip", "netns", "exec", n.Host.NetNS, filepath.Join(testutil.Binaries(t), "edgelink"), "status", "--socket", n.Agent.Config.StatusSocket).CombinedOutput()
		if err != nil {
			fails.add("edgelink status on %s: %v", n.Name, err)
		}
		say("%s", strings.TrimRight(string(out), "\n"))
	}

	say("\n==> throughput: 64 MiB TCP from a pod on cloud-1 to a pod on a1, and a1 to c1 (hole-punched)")
	for _, pr := range [][2]string{{"cloud-1", "a1"}, {"a1", "c1"}} {
		took, err := simcluster.Transfer(pods[pr[0]], pods[pr[1]], 64<<20)
		if err != nil {
			fails.add("transfer %s -> %s: %v", pr[0], pr[1], err)
			continue
		}
		say("    %s -> %s: %.2f Gbit/s (content checked)", pr[0], pr[1], float64(64<<20)*8/took.Seconds()/1e9)
	}

	if os.Getenv("KEEP") == "1" {
		say("\n==> KEEP=1: the cluster stays up until you press Ctrl-C. Try:")
		for _, n := range c.Nodes() {
			say("    ip netns exec %s %s status --socket %s", n.Host.NetNS, filepath.Join(testutil.Binaries(t), "edgelink"), n.Agent.Config.StatusSocket)
		}
		for _, n := range c.PodNodes() {
			say("    ip netns exec %s ping %s    # a pod on %s", filepath.Base(pods[n.Name].NS.Path()), pods["a1"].IP, n.Name)
		}
		say("    kubeconfig: %s", c.CP.Kubeconfig)
		<-sig
	}
	say("\n==> tearing down")
}
