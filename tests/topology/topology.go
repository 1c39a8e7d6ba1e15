package topology

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"

	"github.com/edgelink/edgelink/tests/testutil"
)

// NATKind is the behaviour of a site's NAT router.
type NATKind int

const (
	// HolePunchable is MASQUERADE keeping source ports (endpoint-independent
	// mapping) with unsolicited inbound dropped: UDP hole punching works.
	HolePunchable NATKind = iota
	// Symmetric is MASQUERADE --random-fully: every new flow gets a random
	// source port, which defeats hole punching.
	Symmetric
)

func (k NATKind) String() string {
	switch k {
	case HolePunchable:
		return "HolePunchable"
	case Symmetric:
		return "Symmetric"
	}
	return fmt.Sprintf("NATKind(%d)", int(k))
}

// Spec describes a topology.
type Spec struct {
	Public []string   // names of public hosts (relays, cloud nodes), on the public segment
	Sites  []SiteSpec // NAT'd sites
}

// SiteSpec describes one NAT'd site.
type SiteSpec struct {
	Name  string   // site name; its router is Topology.Router(Name)
	NAT   NATKind  // the router's NAT behaviour
	Hosts []string // names of the hosts on the site LAN (edge nodes)
}

// Interface names inside the namespaces.
const (
	HostIface = "eth0"   // every host's (public or site) only interface
	WANIface  = "wan0"   // a router's public-side interface
	LANBridge = "br-lan" // a router's LAN bridge
)

// PublicPrefix is the public segment; Gateway is the internet namespace's
// address on it (default route of public hosts and routers, forwards nothing).
var (
	PublicPrefix = netip.MustParsePrefix("198.18.0.0/24")
	Gateway      = netip.MustParseAddr("198.18.0.1")
)

const (
	nsRunDir   = "/run/netns"
	nsPrefix   = "elt-"
	maxPublic  = 89  // .11 .. .99
	maxSites   = 150 // .101 .. .250 and 192.168.1..150
	maxPerSite = 200 // .11 .. .210
)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// Host is a network namespace in the topology: a public host, a site host
// or a site's NAT router.
type Host struct {
	Name      string     // name from the Spec (routers: "router-<site>")
	NetNS     string     // `ip netns` name
	NetNSPath string     // /run/netns/<NetNS>
	IP        netip.Addr // own address on eth0 (public or LAN-private); routers: WAN address
	PublicIP  netip.Addr // own address for public hosts and routers, the router's WAN address for site hosts
	Prefix    netip.Prefix
	Gateway   netip.Addr // default gateway
	Site      string     // "" for public hosts
	LANIP     netip.Addr // routers only: address on the LAN bridge

	router bool
	tp     *Topology
}

// Topology is a built network. All its namespaces are deleted at t.Cleanup.
type Topology struct {
	t       testing.TB
	id      string
	inet    *Host // the internet namespace (not a host, but the same shape)
	public  []*Host
	sites   []*site
	hosts   map[string]*Host
	routers map[string]*Host
	record  string

	mu      sync.Mutex
	created []string    // namespaces created so far, deleted at cleanup
	extra   []string    // NewNamespace's, also in the owner record
	closers []io.Closer // forwarders, closed at cleanup
}

type site struct {
	spec   SiteSpec
	router *Host
	hosts  []*Host
}

// New builds the topology described by spec and registers its teardown
// with t.Cleanup. It skips t unless running as root, and first removes
// leftovers of topologies whose test binary died.
func New(t testing.TB, spec Spec) *Topology {
	t.Helper()
	testutil.RequireRoot(t)
	for _, tool := range []string{"ip", "iptables-restore"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("topology needs %s in PATH: %v", tool, err)
		}
	}
	if err := validate(spec); err != nil {
		t.Fatalf("topology spec: %v", err)
	}
	if err := Sweep(); err != nil {
		t.Logf("topology: sweeping leftovers: %v", err)
	}

	tp := &Topology{t: t, id: randomID(), hosts: map[string]*Host{}, routers: map[string]*Host{}}
	pfx := nsPrefix + tp.id + "-"
	mk := func(name, nsName string) *Host {
		return &Host{Name: name, NetNS: nsName, NetNSPath: filepath.Join(nsRunDir, nsName), tp: tp}
	}
	tp.inet = mk("internet", pfx+"inet")
	tp.inet.IP, tp.inet.PublicIP, tp.inet.Prefix = Gateway, Gateway, PublicPrefix
	pub := PublicPrefix.Addr().As4()
	for i, name := range spec.Public {
		h := mk(name, pfx+"h-"+name)
		h.IP = netip.AddrFrom4([4]byte{pub[0], pub[1], pub[2], byte(11 + i)})
		h.PublicIP, h.Prefix, h.Gateway = h.IP, PublicPrefix, Gateway
		tp.public = append(tp.public, h)
		tp.hosts[name] = h
	}
	for i, ss := range spec.Sites {
		n := byte(i + 1)
		r := mk("router-"+ss.Name, pfx+"r-"+ss.Name)
		r.IP = netip.AddrFrom4([4]byte{pub[0], pub[1], pub[2], byte(101 + i)})
		r.PublicIP, r.Prefix, r.Gateway, r.Site, r.router = r.IP, PublicPrefix, Gateway, ss.Name, true
		r.LANIP = netip.AddrFrom4([4]byte{192, 168, n, 1})
		s := &site{spec: ss, router: r}
		for j, name := range ss.Hosts {
			h := mk(name, pfx+"h-"+name)
			h.IP = netip.AddrFrom4([4]byte{192, 168, n, byte(11 + j)})
			h.PublicIP, h.Prefix, h.Gateway, h.Site = r.IP, netip.PrefixFrom(r.LANIP, 24).Masked(), r.LANIP, ss.Name
			s.hosts = append(s.hosts, h)
			tp.hosts[name] = h
		}
		tp.sites = append(tp.sites, s)
		tp.routers[ss.Name] = r
	}

	// The owner record goes first, so a binary killed in the middle of New
	// still leaves something for the next Sweep.
	var err error
	tp.record, err = writeRecord(tp.id, tp.Namespaces())
	if err != nil {
		t.Fatalf("topology: owner record: %v", err)
	}
	t.Cleanup(tp.teardown)

	if err := tp.build(); err != nil {
		t.Fatalf("topology %s: %v", tp.id, err)
	}
	return tp
}

func validate(spec Spec) error {
	if len(spec.Public) > maxPublic {
		return fmt.Errorf("at most %d public hosts", maxPublic)
	}
	if len(spec.Sites) > maxSites {
		return fmt.Errorf("at most %d sites", maxSites)
	}
	seen := map[string]bool{}
	check := func(kind, name string) error {
		if !nameRE.MatchString(name) {
			return fmt.Errorf("%s name %q: want [A-Za-z0-9][A-Za-z0-9_.-]{0,62}", kind, name)
		}
		if seen[kind+"/"+name] {
			return fmt.Errorf("duplicate %s name %q", kind, name)
		}
		seen[kind+"/"+name] = true
		return nil
	}
	for _, name := range spec.Public {
		if err := check("host", name); err != nil {
			return err
		}
	}
	for _, s := range spec.Sites {
		if err := check("site", s.Name); err != nil {
			return err
		}
		if s.NAT != HolePunchable && s.NAT != Symmetric {
			return fmt.Errorf("site %q: unknown NAT kind %v", s.Name, s.NAT)
		}
		if len(s.Hosts) > maxPerSite {
			return fmt.Errorf("site %q: at most %d hosts", s.Name, maxPerSite)
		}
		for _, name := range s.Hosts {
			if err := check("host", name); err != nil {
				return err
			}
		}
	}
	return nil
}

func randomID() string {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// ID is the topology's random suffix (part of every namespace name).
func (tp *Topology) ID() string { return tp.id }

// Host returns the public or site host called name; it fails the test when
// there is none.
func (tp *Topology) Host(name string) *Host {
	h := tp.hosts[name]
	if h == nil {
		tp.t.Fatalf("topology: no host %q", name)
	}
	return h
}

// Router returns the NAT router of site; it fails the test when there is
// no such site.
func (tp *Topology) Router(site string) *Host {
	r := tp.routers[site]
	if r == nil {
		tp.t.Fatalf("topology: no site %q", site)
	}
	return r
}

// Hosts returns the public hosts, then the site hosts, in spec order.
func (tp *Topology) Hosts() []*Host {
	out := append([]*Host(nil), tp.public...)
	for _, s := range tp.sites {
		out = append(out, s.hosts...)
	}
	return out
}

// Namespaces returns the `ip netns` names of every namespace of the
// topology: the internet namespace, routers and hosts.
func (tp *Topology) Namespaces() []string {
	out := []string{tp.inet.NetNS}
	for _, h := range tp.public {
		out = append(out, h.NetNS)
	}
	for _, s := range tp.sites {
		out = append(out, s.router.NetNS)
		for _, h := range s.hosts {
			out = append(out, h.NetNS)
		}
	}
	return out
}

func (tp *Topology) build() error {
	all := []*Host{tp.inet}
	all = append(all, tp.public...)
	for _, s := range tp.sites {
		all = append(all, s.router)
		all = append(all, s.hosts...)
	}
	for _, h := range all {
		if out, err := exec.Command("ip", "netns", "add", h.NetNS).CombinedOutput(); err != nil {
			return fmt.Errorf("ip netns add %s: %v: %s", h.NetNS, err, strings.TrimSpace(string(out)))
		}
		tp.mu.Lock()
		tp.created = append(tp.created, h.NetNS)
		tp.mu.Unlock()
	}

	// The internet: a bridge and one port per public host and router.
	if err := tp.inet.Do(func() error {
		if err := setupLoopbackAndSysctls(false); err != nil {
			return err
		}
		br, err := addBridge("br0", netip.PrefixFrom(Gateway, PublicPrefix.Bits()))
		if err != nil {
			return err
		}
		for i, h := range tp.public {
			if err := addVethInto(br, fmt.Sprintf("p%d", i), h, HostIface); err != nil {
				return err
			}
		}
		for i, s := range tp.sites {
			if err := addVethInto(br, fmt.Sprintf("r%d", i), s.router, WANIface); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return fmt.Errorf("internet namespace: %w", err)
	}

	for _, h := range tp.public {
		if err := h.Do(func() error { return setupHost(h, HostIface) }); err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
	}
	for _, s := range tp.sites {
		r := s.router
		if err := r.Do(func() error {
			if err := setupLoopbackAndSysctls(true); err != nil {
				return err
			}
			if err := setupAddrUpRoute(WANIface, netip.PrefixFrom(r.IP, PublicPrefix.Bits()), Gateway); err != nil {
				return err
			}
			br, err := addBridge(LANBridge, netip.PrefixFrom(r.LANIP, 24))
			if err != nil {
				return err
			}
			for i, h := range s.hosts {
				if err := addVethInto(br, fmt.Sprintf("l%d", i), h, HostIface); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			return fmt.Errorf("router of site %s: %w", s.spec.Name, err)
		}
		if err := iptablesRestore(r.NetNS, false, natRules(s.spec.NAT)); err != nil {
			return fmt.Errorf("router of site %s: %w", s.spec.Name, err)
		}
		for _, h := range s.hosts {
			if err := h.Do(func() error { return setupHost(h, HostIface) }); err != nil {
				return fmt.Errorf("host %s: %w", h.Name, err)
			}
		}
	}
	return nil
}

func natRules(kind NATKind) string {
	masq := "-A POSTROUTING -o " + WANIface + " -j MASQUERADE"
	if kind == Symmetric {
		masq += " --random-fully"
	}
	return strings.Join([]string{
		"*nat",
		masq,
		"COMMIT",
		"*filter",
		"-A INPUT -i " + WANIface + " -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
		"-A INPUT -i " + WANIface + " -m conntrack --ctstate NEW -j DROP",
		"-A FORWARD -i " + WANIface + " -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT",
		"-A FORWARD -i " + WANIface + " -m conntrack --ctstate NEW -j DROP",
		"COMMIT",
		"",
	}, "\n")
}

// iptablesRestore feeds rules to iptables-restore in namespace nsName; with
// noflush it only adds to (or deletes from) what is there.
func iptablesRestore(nsName string, noflush bool, rules string) error {
	args := []string{"netns", "exec", nsName, "iptables-restore", "-w"}
	if noflush {
		args = append(args, "--noflush")
	}
	cmd := exec.Command("ip", args...)
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("iptables-restore in %s: %v: %s\nrules:\n%s", nsName, err, strings.TrimSpace(string(out)), rules)
	}
	return nil
}

// setupLoopbackAndSysctls runs inside a namespace: loopback up, bridges
// without netfilter, and forwarding on for routers.
func setupLoopbackAndSysctls(forward bool) error {
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return err
	}
	if err := netlink.LinkSetUp(lo); err != nil {
		return fmt.Errorf("lo up: %w", err)
	}
	// Per-namespace since Linux 5.3 and 1 by default when br_netfilter is
	// loaded: bridged frames would then run through this namespace's
	// iptables and conntrack. A switch should not.
	for _, f := range []string{"bridge-nf-call-iptables", "bridge-nf-call-ip6tables", "bridge-nf-call-arptables"} {
		p := "/proc/sys/net/bridge/" + f
		if _, err := os.Stat(p); err == nil {
			if err := os.WriteFile(p, []byte("0"), 0o644); err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
		}
	}
	if forward {
		if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1"), 0o644); err != nil {
			return fmt.Errorf("ip_forward: %w", err)
		}
	}
	return nil
}

// addBridge runs inside a namespace: a bridge with addr, up.
func addBridge(name string, addr netip.Prefix) (netlink.Link, error) {
	br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name}}
	if err := netlink.LinkAdd(br); err != nil {
		return nil, fmt.Errorf("add bridge %s: %w", name, err)
	}
	if err := setupAddrUpRoute(name, addr, netip.Addr{}); err != nil {
		return nil, err
	}
	return netlink.LinkByName(name)
}

// addVethInto runs inside a namespace: a veth pair whose local end (name)
// is a port of bridge br and whose peer (peerName) lives in h's namespace.
func addVethInto(br netlink.Link, name string, h *Host, peerName string) error {
	target, err := ns.GetNS(h.NetNSPath)
	if err != nil {
		return err
	}
	defer target.Close()
	v := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: name, MasterIndex: br.Attrs().Index},
		PeerName:      peerName,
		PeerNamespace: netlink.NsFd(int(target.Fd())),
	}
	if err := netlink.LinkAdd(v); err != nil {
		return fmt.Errorf("add veth %s (peer %s in %s): %w", name, peerName, h.NetNS, err)
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	return netlink.LinkSetUp(l)
}

// setupHost runs inside a host's namespace.
func setupHost(h *Host, iface string) error {
	if err := setupLoopbackAndSysctls(false); err != nil {
		return err
	}
	return setupAddrUpRoute(iface, netip.PrefixFrom(h.IP, h.Prefix.Bits()), h.Gateway)
}

// setupAddrUpRoute runs inside a namespace: address on link, link up, and a
// default route via gw when gw is valid.
func setupAddrUpRoute(link string, addr netip.Prefix, gw netip.Addr) error {
	l, err := netlink.LinkByName(link)
	if err != nil {
		return fmt.Errorf("link %s: %w", link, err)
	}
	ipn := &net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), 32)}
	if err := netlink.AddrAdd(l, &netlink.Addr{IPNet: ipn}); err != nil {
		return fmt.Errorf("address %s on %s: %w", addr, link, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return fmt.Errorf("%s up: %w", link, err)
	}
	if gw.IsValid() {
		rt := &netlink.Route{LinkIndex: l.Attrs().Index, Gw: gw.AsSlice()}
		if err := netlink.RouteAdd(rt); err != nil {
			return fmt.Errorf("default via %s dev %s: %w", gw, link, err)
		}
	}
	return nil
}

// teardown deletes every namespace this topology created, then its owner
// record.
func (tp *Topology) teardown() {
	tp.mu.Lock()
	created, closers := tp.created, tp.closers
	tp.created, tp.closers = nil, nil
	tp.mu.Unlock()
	for _, c := range closers {
		c.Close()
	}
	var failed []string
	for i := len(created) - 1; i >= 0; i-- {
		if err := deleteNetNS(created[i]); err != nil {
			failed = append(failed, err.Error())
		}
	}
	if len(failed) > 0 {
		// Keep the record: a later Sweep retries once this process is gone.
		tp.t.Errorf("topology %s teardown: %s", tp.id, strings.Join(failed, "; "))
		return
	}
	if err := os.Remove(tp.record); err != nil && !os.IsNotExist(err) {
		tp.t.Errorf("topology %s: remove owner record: %v", tp.id, err)
	}
}

// NewNamespace creates an extra, empty namespace "elt-<id>-x-<name>" with
// loopback up (a pod's, say), owned by the topology like its hosts: in the
// owner record, so a killed test binary's next Sweep removes it, and
// deleted at teardown. It returns the `ip netns` name and its path.
// DeleteNamespace removes it earlier.
func (tp *Topology) NewNamespace(name string) (nsName, path string, err error) {
	if !nameRE.MatchString(name) {
		return "", "", fmt.Errorf("namespace name %q: want [A-Za-z0-9][A-Za-z0-9_.-]{0,62}", name)
	}
	nsName = nsPrefix + tp.id + "-x-" + name
	tp.mu.Lock()
	defer tp.mu.Unlock()
	tp.extra = append(tp.extra, nsName)
	// Record first: a binary killed right after `ip netns add` leaves
	// nothing the next Sweep does not know.
	if _, err := writeRecord(tp.id, append(tp.Namespaces(), tp.extra...)); err != nil {
		return "", "", fmt.Errorf("topology: owner record: %w", err)
	}
	if out, err := exec.Command("ip", "netns", "add", nsName).CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("ip netns add %s: %v: %s", nsName, err, strings.TrimSpace(string(out)))
	}
	tp.created = append(tp.created, nsName)
	if out, err := exec.Command("ip", "-n", nsName, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("%s: lo up: %v: %s", nsName, err, strings.TrimSpace(string(out)))
	}
	return nsName, filepath.Join(nsRunDir, nsName), nil
}

// DeleteNamespace deletes a namespace made by NewNamespace (its links go
// with it).
func (tp *Topology) DeleteNamespace(nsName string) error {
	if !strings.HasPrefix(nsName, nsPrefix+tp.id+"-x-") {
		return fmt.Errorf("%s is not an extra namespace of topology %s", nsName, tp.id)
	}
	return deleteNetNS(nsName)
}
