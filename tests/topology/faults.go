package topology

import (
	"strings"
	"sync"
)

// filterEdit is a set of filter-table rules inserted into one namespace.
type filterEdit struct {
	netns string
	rules []string // rule specs without the -I/-D verb, e.g. "INPUT -i wan0 -j DROP"
}

func (e filterEdit) script(verb string) string {
	lines := []string{"*filter"}
	for _, r := range e.rules {
		lines = append(lines, verb+" "+r)
	}
	return strings.Join(append(lines, "COMMIT", ""), "\n")
}

// apply inserts the rules at the top of their chains and returns an
// idempotent function that deletes them again.
func (tp *Topology) apply(what string, edits []filterEdit) (restore func()) {
	tp.t.Helper()
	for i, e := range edits {
		if err := iptablesRestore(e.netns, true, e.script("-I")); err != nil {
			for _, done := range edits[:i] {
				_ = iptablesRestore(done.netns, true, done.script("-D"))
			}
			tp.t.Fatalf("topology %s: %s: %v", tp.id, what, err)
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			for _, e := range edits {
				if err := iptablesRestore(e.netns, true, e.script("-D")); err != nil {
					tp.t.Errorf("topology %s: undo %s: %v", tp.id, what, err)
				}
			}
		})
	}
}

// CutUplink drops everything between site and the public segment: every
// packet in or out of the router's WAN interface, established flows
// included (the LAN keeps working). restore undoes it; calling it again is
// harmless.
func (tp *Topology) CutUplink(site string) (restore func()) {
	tp.t.Helper()
	r := tp.Router(site)
	return tp.apply("cut uplink of site "+site, []filterEdit{{netns: r.NetNS, rules: []string{
		"INPUT -i " + WANIface + " -j DROP",
		"OUTPUT -o " + WANIface + " -j DROP",
		"FORWARD -i " + WANIface + " -j DROP",
		"FORWARD -o " + WANIface + " -j DROP",
	}}})
}

// Block drops traffic between the public-facing addresses of a and b (their
// PublicIP), for "direct path cut" tests: a relay or another peer still
// reaches both. A public host's side is blocked in its own namespace; a
// site host's side on its router, which blocks the whole site (every host
// behind that router shares the address). For two hosts of one site, Block
// drops their LAN traffic instead, in their own namespaces. Routers
// (Topology.Router) count as public-facing hosts. restore undoes it;
// calling it again is harmless.
func (tp *Topology) Block(a, b *Host) (restore func()) {
	tp.t.Helper()
	if a == nil || b == nil || a.tp != tp || b.tp != tp {
		tp.t.Fatalf("topology %s: Block: hosts of another topology (or nil)", tp.id)
	}
	if a == b {
		tp.t.Fatalf("topology %s: Block(%s, %[2]s): same host", tp.id, a.Name)
	}
	what := "block " + a.Name + " <-> " + b.Name
	if a.Site != "" && a.Site == b.Site && !a.router && !b.router {
		lan := func(self, peer *Host) filterEdit {
			return filterEdit{netns: self.NetNS, rules: []string{
				"INPUT -s " + peer.IP.String() + " -j DROP",
				"OUTPUT -d " + peer.IP.String() + " -j DROP",
			}}
		}
		return tp.apply(what, []filterEdit{lan(a, b), lan(b, a)})
	}
	if a.PublicIP == b.PublicIP {
		tp.t.Fatalf("topology %s: %s: both sides have public address %s", tp.id, what, a.PublicIP)
	}
	side := func(self, peer *Host) filterEdit {
		p := peer.PublicIP.String()
		if self.Site == "" {
			return filterEdit{netns: self.NetNS, rules: []string{
				"INPUT -s " + p + " -j DROP",
				"OUTPUT -d " + p + " -j DROP",
			}}
		}
		return filterEdit{netns: tp.Router(self.Site).NetNS, rules: []string{
			"INPUT -i " + WANIface + " -s " + p + " -j DROP",
			"OUTPUT -o " + WANIface + " -d " + p + " -j DROP",
			"FORWARD -i " + WANIface + " -s " + p + " -j DROP",
			"FORWARD -o " + WANIface + " -d " + p + " -j DROP",
		}}
	}
	return tp.apply(what, []filterEdit{side(a, b), side(b, a)})
}
