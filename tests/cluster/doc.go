// Package cluster runs a real KubeEdge control plane for EdgeLink's
// end-to-end tests: etcd 3.5, kube-apiserver v1.37, cloudcore v1.20 and
// any number of edgecore v1.20 edge nodes, each edge in its own network
// namespace. Normally there is no kubelet, scheduler or controller-manager:
// pods are bound with spec.nodeName and their status is written by the test
// (SetPodIP), which is all the edge's metaServer needs to serve them.
// AddEdgeNodeWithPods makes an edge node whose edged runs the pods the API
// server binds to it (its own containerd, edgelink-cni, spiderpool; see
// edged.go), RunPod creates and waits for such a pod, and StartScheduling
// adds kube-scheduler and the deployment and replicaset controllers.
//
// The tests must run as root (network namespaces, links); without root
// Start and Shared skip the test. The binaries come from
// tests/tools/build.sh, which caches them; a cold build of all four takes
// about 8 minutes on 2 cores, so build them before `go test` if its
// timeout is short:
//
//	tests/tools/build.sh etcd kube-apiserver cloudcore edgecore
//
// # One control plane per test
//
//	cp := cluster.Start(t, cluster.Options{}) // torn down in t.Cleanup
//	e := cp.AddEdgeNode(t, "edge-1")          // Node + netns + edgecore
//	cp.CreatePod(t, "default", "web", "edge-1", map[string]string{"app": "web"}, nil)
//	cp.SetPodIP(t, "default", "web", "10.244.1.10")
//	body, err := e.Get(ctx, "/api/v1/pods")  // the edge's metaServer, from inside e.NetNS
//
// cp.Client, cp.Dynamic, cp.RestConfig and cp.Kubeconfig give admin access
// to kube-apiserver. e.RestConfig() is a client-go config for the edge's
// metaServer that dials from inside the node's namespace, so typed clients
// and informers in the test process see what a pod on that edge sees (the
// metaServer has no discovery, JSON only). NetNSDialer, NetNSHTTPClient and
// HTTPGet do the same for any address in any namespace.
//
// Outages: cp.StopCloudcore/StartCloudcore, cp.StopAPIServer/StartAPIServer
// and e.Stop/e.Start stop and start one process by PID (SIGTERM, then
// SIGKILL after a grace period) and wait until it serves again.
// With cloudcore stopped the metaServer answers from edgecore's local cache
// (the first request waits about 10 s for the cloud to time out); after
// StartCloudcore the edges reconnect by themselves within about 20 s.
//
// # One control plane per test binary
//
// Starting takes a few seconds (plus a random 0-9 s sleep in cloudcore),
// so packages with many tests share one:
//
//	func TestMain(m *testing.M) { os.Exit(cluster.Main(m)) }
//
//	func TestX(t *testing.T) {
//		cp := cluster.Shared(t) // started by the first test that asks
//		e := cp.AddEdgeNode(t, "x-edge") // removed again when TestX ends
//		...
//	}
//
// Main tears the shared control plane down after all tests. Tests that
// share it must use distinct node and object names (or clean up: the
// objects from CreatePod and AddEdgeNode are removed in t.Cleanup) and
// must leave cloudcore and the apiserver running.
//
// # Network
//
// The cloud-edge link is a bridge on the host ("elbr<sfx>") with a /24 from
// 198.18.0.0/15 (benchmarking space, never routed off the machine); the
// bridge address is cloudcore's, and each edge node is a namespace
// ("el<sfx>-<node>") whose eth0 is a veth ("elv<sfx><n>") on the bridge,
// addressed .10, .11, ... Nothing is connected to the host's uplink and the
// namespaces have no default route. <sfx> is random per control plane, the
// /24 is chosen under a host-wide lock among those not in use, and all
// other ports are picked free at start, so control planes of parallel test
// binaries never collide. etcd and kube-apiserver listen on 127.0.0.1 only.
//
// # Files and clean-up
//
// Each control plane has a run directory (cp.Dir, under $TMPDIR) with the
// PKI (generated in Go), configs, etcd data, per-edge certificates and
// sqlite caches, and logs/<process>.log. When a test fails, the last 40
// lines of every log are t.Logged. Close (called by Start's cleanup and by
// Main) stops every process, deletes namespaces, links and the run
// directory; EDGELINK_CLUSTER_KEEP=1 keeps the directory. Children die
// with the test binary (PR_SET_PDEATHSIG) even when it is killed, and the
// next Start anywhere on the host removes the network and run directory
// of control planes whose test binary is gone (owner records in
// /run/edgelink-cluster).
//
// # Configuration
//
// cloudcore: `cloudcore --defaultconfig` with dynamicController on,
// iptablesManager off, cloudHub websocket/https on the bridge address with
// free ports, the monitor server on the bridge address, quic, cloudStream
// and router off, all paths in the run directory. edgecore:
// `edgecore --defaultconfig` with edged, deviceTwin, eventBus, serviceBus
// and edgeStream off, metaServer on, edgeHub pointed at cloudcore; its
// config is written anew at every start with a fresh join token while the
// node has no certificate yet (edgecore blanks the token in its config
// after bootstrap, and cloudcore regenerates it at every start).
// Options.CloudcoreConfig and Options.EdgecoreConfig can edit both
// further.
package cluster
