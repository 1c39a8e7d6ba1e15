package metadata

import "net/netip"

// NodeOfIP is the node a pod IP lives on according to the picture: the
// pod with that IP, else the node whose pod CIDR holds it (the longest);
// "" when none does. Not for the packet path (a scan of the nodes).
func (s *Snapshot) NodeOfIP(a netip.Addr) string {
	if p := s.PodsByIP[a]; p != nil && p.NodeName != "" {
		return p.NodeName
	}
	best, bits := "", -1
	for name, n := range s.Nodes {
		for _, c := range n.PodCIDRs {
			if c.Contains(a) && c.Bits() > bits {
				best, bits = name, c.Bits()
			}
		}
	}
	return best
}
