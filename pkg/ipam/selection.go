package ipam

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
)

// candidates are the pools a request may use, per IP version, in order,
// and where the list came from (for error messages).
type candidates struct {
	v4, v6       []string
	source       string
	cleanGateway bool
}

// selectCandidates picks the pool lists as SpiderPool does, first match
// wins: the pod annotation ipam.spidernet.io/ippools (entry for this
// interface), the pod annotation ipam.spidernet.io/ippool, the namespace
// annotations ipam.spidernet.io/default-ipv4-ippool / -ipv6-ippool, the CNI
// config's default_ipv4_ippool / default_ipv6_ippool, then every pool with
// spec.default: true.
func selectCandidates(v *View, req *AddRequest) (candidates, error) {
	pod, podKnown := v.Pods[req.PodNamespace+"/"+req.PodName]
	if podKnown && pod.UID != "" && pod.UID != req.PodUID {
		podKnown = false // a pod of the same name that has been replaced
	}
	if podKnown {
		if anno, ok := pod.Annotations[AnnoPodIPPools]; ok {
			var items []struct {
				NIC          string   `json:"interface"`
				IPv4         []string `json:"ipv4"`
				IPv6         []string `json:"ipv6"`
				CleanGateway bool     `json:"cleangateway"`
			}
			if err := json.Unmarshal([]byte(anno), &items); err != nil {
				return candidates{}, badRequest("pod %s/%s annotation %s: %v", req.PodNamespace, req.PodName, AnnoPodIPPools, err)
			}
			for _, it := range items {
				if it.NIC == req.IfName {
					return candidates{v4: it.IPv4, v6: it.IPv6, cleanGateway: it.CleanGateway,
						source: fmt.Sprintf("pod annotation %s (interface %s)", AnnoPodIPPools, req.IfName)}, nil
				}
			}
			return candidates{}, badRequest("pod %s/%s annotation %s has no entry for interface %q", req.PodNamespace, req.PodName, AnnoPodIPPools, req.IfName)
		}
		if anno, ok := pod.Annotations[AnnoPodIPPool]; ok {
			var val struct {
				IPv4 []string `json:"ipv4"`
				IPv6 []string `json:"ipv6"`
			}
			if err := json.Unmarshal([]byte(anno), &val); err != nil {
				return candidates{}, badRequest("pod %s/%s annotation %s: %v", req.PodNamespace, req.PodName, AnnoPodIPPool, err)
			}
			return candidates{v4: val.IPv4, v6: val.IPv6, cleanGateway: req.CleanGateway,
				source: "pod annotation " + AnnoPodIPPool}, nil
		}
	}
	if ns, ok := v.Namespaces[req.PodNamespace]; ok {
		var c candidates
		for anno, dst := range map[string]*[]string{AnnoNSDefaultIPv4: &c.v4, AnnoNSDefaultIPv6: &c.v6} {
			if s, ok := ns.Annotations[anno]; ok {
				if err := json.Unmarshal([]byte(s), dst); err != nil {
					return candidates{}, badRequest("namespace %s annotation %s: %v", req.PodNamespace, anno, err)
				}
			}
		}
		if len(c.v4)+len(c.v6) > 0 {
			c.source = "namespace " + req.PodNamespace + " annotations"
			c.cleanGateway = req.CleanGateway
			return c, nil
		}
	}
	if len(req.DefaultIPv4Pools)+len(req.DefaultIPv6Pools) > 0 {
		return candidates{v4: req.DefaultIPv4Pools, v6: req.DefaultIPv6Pools, cleanGateway: req.CleanGateway,
			source: "CNI config default_ipv4_ippool/default_ipv6_ippool"}, nil
	}
	// Cluster default pools: only those this node may use, so that a node's
	// defaults are its own pools (an IPv6 default pool of another node must
	// not make IPv6 mandatory here).
	c := candidates{source: "pools with spec.default: true", cleanGateway: req.CleanGateway}
	for _, name := range v.PoolNames() {
		p := v.Pools[name]
		if !p.Default {
			continue
		}
		if _, why := usable(v, name, p.Version, req); why != "" {
			continue
		}
		if p.Version == 4 {
			c.v4 = append(c.v4, name)
		} else {
			c.v6 = append(c.v6, name)
		}
	}
	return c, nil
}

// usable returns the pools that serve req for the pool called name on
// this node: the pool itself when spec.nodeName pins it to this node
// alone, this node's blocks of it when it is shared (see blocks.go); or,
// when none may, why (for the "no pool" error).
func usable(v *View, name string, version int, req *AddRequest) ([]*Pool, string) {
	p, ok := v.Pools[name]
	if !ok {
		if err, bad := v.PoolErrors[name]; bad {
			return nil, "invalid: " + err.Error()
		}
		return nil, "no such pool"
	}
	switch {
	case p.Version != version:
		return nil, fmt.Sprintf("is an IPv%d pool", p.Version)
	case p.Disable:
		return nil, "is disabled (spec.disable)"
	}
	serve := []*Pool{p}
	switch {
	case !p.Shared():
		if p.nodeNames[0] != v.NodeName {
			return nil, fmt.Sprintf("is pinned to nodes %v", p.nodeNames)
		}
	case !p.MayServe(v.NodeName, v.NodeLabels):
		if len(p.nodeNames) > 0 {
			return nil, fmt.Sprintf("is pinned to nodes %v", p.nodeNames)
		}
		return nil, fmt.Sprintf("nodeAffinity %q does not match node labels", p.nodeSelector.String())
	default:
		serve = v.blocks[name]
		if len(serve) == 0 {
			return nil, "is shared and this node has no block of it yet: `edgelink controller` claims blocks " +
				"for edge nodes in a mesh segment; is it running, and does the Node have spec.podCIDR or the " +
				AnnoSegment + " annotation inside a cloudCIDR/edgeCIDR entry?"
		}
	}
	if len(p.nsNames) > 0 && !slices.Contains(p.nsNames, req.PodNamespace) {
		return nil, fmt.Sprintf("is limited to namespaces %v", p.nsNames)
	}
	if p.nsSelector != nil {
		ns := v.Namespaces[req.PodNamespace]
		if !p.nsSelector.Matches(labels.Set(ns.Labels)) {
			return nil, fmt.Sprintf("namespaceAffinity %q does not match namespace %s", p.nsSelector.String(), req.PodNamespace)
		}
	}
	if p.podSelector != nil {
		pod := v.Pods[req.PodNamespace+"/"+req.PodName]
		if !p.podSelector.Matches(labels.Set(pod.Labels)) {
			return nil, fmt.Sprintf("podAffinity %q does not match the pod", p.podSelector.String())
		}
	}
	return serve, ""
}

// describeSearch renders why no pool of a version served, e.g.
// `pool-a (is pinned to nodes [edge-2]), pool-b (no such pool)`.
func describeSearch(reasons []string) string {
	if len(reasons) == 0 {
		return "no pool named"
	}
	return strings.Join(reasons, ", ")
}
