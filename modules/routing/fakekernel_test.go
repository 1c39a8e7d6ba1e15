package routing

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"slices"
	"strings"
)

// fakeKernel is a Kernel in memory: links, addresses, routes, sysctls
// and iptables chains as the module left them. Every change is recorded
// as one line of text in ops (reads are answered, not recorded), in the
// words of ip(8), sysctl(8) and iptables(8).
type fakeKernel struct {
	links   map[string]*Link
	addrs   []LinkAddr
	routes  map[netip.Prefix]Route
	sysctls map[string]string
	ipt     [2]*fakeTables // IPv4, IPv6
	ops     []string
}

func newFakeKernel(tun string) *fakeKernel {
	k := &fakeKernel{
		links:   map[string]*Link{"eth0": {Name: "eth0", Type: "device", MTU: 1500, Up: true}},
		addrs:   []LinkAddr{{Link: "eth0", Prefix: netip.MustParsePrefix("192.168.1.11/24")}},
		routes:  map[netip.Prefix]Route{},
		sysctls: map[string]string{"net/ipv4/ip_forward": "0", "net/ipv6/conf/all/forwarding": "0"},
	}
	if tun != "" {
		k.links[tun] = &Link{Name: tun, Type: "tuntap", MTU: 1420}
		k.sysctls["net/ipv4/conf/"+tun+"/rp_filter"] = "1"
		k.sysctls["net/ipv4/conf/"+tun+"/send_redirects"] = "1"
	}
	for i, cmd := range []string{"iptables", "ip6tables"} {
		k.ipt[i] = &fakeTables{k: k, cmd: cmd, chains: map[string][]string{}}
		for _, tc := range [][2]string{{"nat", "POSTROUTING"}, {"mangle", "FORWARD"}, {"filter", "FORWARD"}} {
			k.ipt[i].chains[tc[0]+"/"+tc[1]] = []string{"-P " + tc[1] + " ACCEPT"}
		}
	}
	return k
}

var _ Kernel = (*fakeKernel)(nil)

func (k *fakeKernel) record(format string, args ...any) {
	k.ops = append(k.ops, fmt.Sprintf(format, args...))
}

// take returns the operations recorded since the last take.
func (k *fakeKernel) take() []string {
	ops := k.ops
	k.ops = nil
	return ops
}

var errNoLink = errors.New("Link not found")

func (k *fakeKernel) Link(name string) (*Link, error) {
	l, ok := k.links[name]
	if !ok {
		return nil, errNoLink
	}
	c := *l
	return &c, nil
}

func (k *fakeKernel) DeleteLink(name string) error {
	if _, ok := k.links[name]; !ok {
		return errNoLink
	}
	delete(k.links, name)
	k.record("ip link del %s", name)
	return nil
}

func (k *fakeKernel) SetLinkUp(name string) error {
	l, ok := k.links[name]
	if !ok {
		return errNoLink
	}
	l.Up = true
	k.record("ip link set %s up", name)
	return nil
}

func (k *fakeKernel) UnderlayMTU() int { return 1500 }

func (k *fakeKernel) Addrs() ([]LinkAddr, error) { return slices.Clone(k.addrs), nil }

func (k *fakeKernel) ReplaceAddr(link string, a netip.Addr) error {
	if _, ok := k.links[link]; !ok {
		return errNoLink
	}
	p := netip.PrefixFrom(a, a.BitLen())
	k.record("ip addr replace %s dev %s", p, link)
	if !slices.Contains(k.addrs, LinkAddr{link, p}) {
		k.addrs = append(k.addrs, LinkAddr{link, p})
	}
	return nil
}

func (k *fakeKernel) DeleteAddr(link string, p netip.Prefix) error {
	k.record("ip addr del %s dev %s", p, link)
	k.addrs = slices.DeleteFunc(k.addrs, func(a LinkAddr) bool { return a == LinkAddr{link, p} })
	return nil
}

// Routes lists the routes by destination, as netlink dumps a table.
func (k *fakeKernel) Routes() ([]Route, error) {
	out := make([]Route, 0, len(k.routes))
	for _, r := range k.routes {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Route) int { return comparePrefix(a.Dst, b.Dst) })
	return out, nil
}

func (k *fakeKernel) ReplaceRoute(r Route) error {
	if r.Dev != "" {
		if _, ok := k.links[r.Dev]; !ok {
			return errNoLink
		}
	}
	k.record("ip route replace %s proto 77", r)
	k.routes[r.Dst] = r
	return nil
}

func (k *fakeKernel) DeleteRoute(r Route) error {
	k.record("ip route del %s proto 77", r)
	delete(k.routes, r.Dst)
	return nil
}

func (k *fakeKernel) Sysctl(key string) (string, error) {
	v, ok := k.sysctls[key]
	if !ok {
		return "", fs.ErrNotExist
	}
	return v + "\n", nil
}

func (k *fakeKernel) SetSysctl(key, value string) error {
	if _, ok := k.sysctls[key]; !ok {
		return fs.ErrNotExist
	}
	k.record("sysctl -w %s=%s", strings.ReplaceAll(key, "/", "."), value)
	k.sysctls[key] = value
	return nil
}

func (k *fakeKernel) IPTables(v6 bool) (IPTables, error) {
	if v6 {
		return k.ipt[1], nil
	}
	return k.ipt[0], nil
}

// fakeTables is one family's iptables: each chain as its `-S` lines.
type fakeTables struct {
	k      *fakeKernel
	cmd    string
	chains map[string][]string // "table/chain" -> -N or -P line, then -A lines
}

var _ IPTables = (*fakeTables)(nil)

func (t *fakeTables) record(table, args string) { t.k.record("%s -t %s %s", t.cmd, table, args) }

func quoteRule(rule []string) string {
	out := make([]string, len(rule))
	for i, r := range rule {
		if strings.Contains(r, " ") {
			r = `"` + r + `"`
		}
		out[i] = r
	}
	return strings.Join(out, " ")
}

func (t *fakeTables) ChainExists(table, chain string) (bool, error) {
	_, ok := t.chains[table+"/"+chain]
	return ok, nil
}

func (t *fakeTables) List(table, chain string) ([]string, error) {
	c, ok := t.chains[table+"/"+chain]
	if !ok {
		return nil, fmt.Errorf("%s: no chain %s in table %s", t.cmd, chain, table)
	}
	return slices.Clone(c), nil
}

func (t *fakeTables) Exists(table, chain string, rule ...string) (bool, error) {
	return slices.Contains(t.chains[table+"/"+chain], "-A "+chain+" "+quoteRule(rule)), nil
}

func (t *fakeTables) NewChain(table, chain string) error {
	if _, ok := t.chains[table+"/"+chain]; ok {
		return fmt.Errorf("%s: chain %s exists", t.cmd, chain)
	}
	t.record(table, "-N "+chain)
	t.chains[table+"/"+chain] = []string{"-N " + chain}
	return nil
}

func (t *fakeTables) ClearChain(table, chain string) error {
	t.record(table, "-F "+chain)
	c := t.chains[table+"/"+chain]
	if len(c) == 0 {
		c = []string{"-N " + chain}
	}
	t.chains[table+"/"+chain] = c[:1]
	return nil
}

func (t *fakeTables) ClearAndDeleteChain(table, chain string) error {
	t.record(table, "-F "+chain)
	t.record(table, "-X "+chain)
	delete(t.chains, table+"/"+chain)
	return nil
}

func (t *fakeTables) Append(table, chain string, rule ...string) error {
	line := "-A " + chain + " " + quoteRule(rule)
	t.record(table, line)
	t.chains[table+"/"+chain] = append(t.chains[table+"/"+chain], line)
	return nil
}

func (t *fakeTables) Insert(table, chain string, pos int, rule ...string) error {
	t.record(table, fmt.Sprintf("-I %s %d %s", chain, pos, quoteRule(rule)))
	c := t.chains[table+"/"+chain]
	t.chains[table+"/"+chain] = slices.Insert(c, pos, "-A "+chain+" "+quoteRule(rule))
	return nil
}

func (t *fakeTables) Delete(table, chain string, rule ...string) error {
	line := "-A " + chain + " " + quoteRule(rule)
	c := t.chains[table+"/"+chain]
	i := slices.Index(c, line)
	if i < 0 {
		return fmt.Errorf("%s: bad rule (does a matching rule exist in that chain?)", t.cmd)
	}
	t.record(table, "-D "+chain+" "+quoteRule(rule))
	t.chains[table+"/"+chain] = slices.Delete(c, i, i+1)
	return nil
}
