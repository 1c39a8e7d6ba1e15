// Package topology builds the simulated cloud-edge network that EdgeLink's
// tunnel, data-plane and end-to-end tests run on, entirely from network
// namespaces, veth pairs, bridges and iptables made by the test itself.
// Nothing is created in the host's network namespace and no link reaches the
// host's uplink, so no test traffic can leave the machine.
//
// # Shape
//
//	               "internet" namespace: bridge br0, 198.18.0.1/24
//	               (no uplink; 198.18.0.0/15 is the benchmarking range)
//	    ┌──────────────┬──────────┴───────┬────────────────────┐
//	public host    public host      router of site A      router of site B ...
//	eth0 .11       eth0 .12         wan0 .101             wan0 .102
//	                                MASQUERADE on wan0, unsolicited inbound dropped
//	                                br-lan 192.168.1.1/24
//	                                 ┌────────┴────────┐
//	                             site host         site host
//	                             eth0 192.168.1.11 eth0 192.168.1.12 (default via .1)
//
// Public hosts (relays, cloud nodes) get 198.18.0.11, .12, ... in spec order
// and routers 198.18.0.101, .102, ... in site order; site number n (1-based,
// spec order) gets the LAN 192.168.n.0/24 with the router at .1 and its hosts
// at .11, .12, .... Every namespace has loopback up; public hosts and routers
// route by default via 198.18.0.1 (the internet namespace, which forwards
// nothing), site hosts via their router. Host interfaces are called eth0
// (HostIface), a router's public interface wan0 (WANIface). Bridged frames
// bypass iptables (bridge-nf-call-* is turned off in the internet and router
// namespaces), so the bridges behave like plain switches.
//
// NAT kinds, per site router:
//
//	HolePunchable: -t nat -A POSTROUTING -o wan0 -j MASQUERADE
//	Symmetric:     -t nat -A POSTROUTING -o wan0 -j MASQUERADE --random-fully
//	both:          -A INPUT   -i wan0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
//	               -A INPUT   -i wan0 -m conntrack --ctstate NEW -j DROP
//	               -A FORWARD -i wan0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
//	               -A FORWARD -i wan0 -m conntrack --ctstate NEW -j DROP
//
// The INPUT drop matters for hole punching: without it a peer's early punch
// packet creates a conntrack entry on the router that makes MASQUERADE pick
// another source port for the outgoing punch, and every attempt fails.
// MASQUERADE without --random-fully keeps the source port when it is free,
// giving an endpoint-independent mapping; --random-fully picks a new port
// for every new flow (a "symmetric" NAT), which defeats hole punching.
//
// # Use
//
//	tp := topology.New(t, topology.Spec{
//		Public: []string{"relay-1", "cloud-1"},
//		Sites: []topology.SiteSpec{
//			{Name: "A", NAT: topology.HolePunchable, Hosts: []string{"a1", "a2"}},
//			{Name: "B", NAT: topology.Symmetric, Hosts: []string{"b1"}},
//		},
//	})
//	a1 := tp.Host("a1")
//	out, err := a1.Exec("ping", "-c1", tp.Host("relay-1").IP.String())
//	cmd := a1.Command(agentBinary, "--config", cfg) // a process in a1's namespace
//	ln, err := tp.Host("cloud-1").ListenUDP("0.0.0.0:3478") // a socket in cloud-1
//	restore := tp.CutUplink("A") // site A loses the public segment
//	restore()
//
// Faults: CutUplink(site) drops everything on the site router's WAN in both
// directions (established flows included). Block(a, b) drops traffic between
// the public-facing addresses of a and b: for a site host that is its
// router's WAN address, so the block covers every host of that site; for two
// hosts of one site it drops their LAN traffic instead. Both return an
// idempotent restore function. Call New, CutUplink and Block from the test's
// goroutine (they use t.Fatal).
//
// # Names, cleanup and leftovers
//
// Namespace names are "elt-<6 hex>-inet", "elt-<6 hex>-r-<site>" and
// "elt-<6 hex>-h-<host>", unique per topology, under /run/netns so `ip netns
// exec NAME ...` works. Link names are fixed and short, and every link lives
// inside a topology namespace, so parallel topologies (in one or several
// test binaries) never collide. t.Cleanup deletes the namespaces (their links
// vanish with them), also when the test fails. New first writes an owner
// record /run/edgelink-topology/<6 hex>.json (PID, process start time,
// namespace names); the next New in any process deletes the namespaces of
// records whose process is gone (a test binary killed by a timeout or
// SIGKILL) and the records themselves. Only names from such records that
// carry the "elt-" prefix are ever deleted.
//
// New skips the test unless it runs as root; it needs ip and
// iptables-restore (iptables-nft works inside namespaces) and ping for the
// Ping helper.
package topology
