package metasync

import (
	"encoding/json"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/edgelink/edgelink/pkg/ipam"
	"github.com/edgelink/edgelink/pkg/metadata"
)

func podInfo(p *corev1.Pod) *metadata.PodInfo {
	info := &metadata.PodInfo{
		Namespace: p.Namespace, Name: p.Name, UID: string(p.UID),
		NodeName: p.Spec.NodeName, HostNetwork: p.Spec.HostNetwork, Phase: string(p.Status.Phase),
		Labels: p.Labels, Annotations: p.Annotations,
	}
	for _, ip := range p.Status.PodIPs {
		if a, err := netip.ParseAddr(ip.IP); err == nil {
			info.IPs = append(info.IPs, a)
		}
	}
	if len(info.IPs) == 0 && p.Status.PodIP != "" {
		if a, err := netip.ParseAddr(p.Status.PodIP); err == nil {
			info.IPs = append(info.IPs, a)
		}
	}
	return info
}

func nodeInfo(n *corev1.Node) *metadata.NodeInfo {
	info := &metadata.NodeInfo{Name: n.Name, UID: string(n.UID), Labels: n.Labels}
	cidrs := n.Spec.PodCIDRs
	if len(cidrs) == 0 && n.Spec.PodCIDR != "" {
		cidrs = []string{n.Spec.PodCIDR}
	}
	for _, c := range cidrs {
		if p, err := netip.ParsePrefix(c); err == nil {
			info.PodCIDRs = append(info.PodCIDRs, p)
		}
	}
	for _, a := range n.Status.Addresses {
		if ip, err := netip.ParseAddr(a.Address); err == nil {
			info.Addresses = append(info.Addresses, metadata.NodeAddress{Type: string(a.Type), Address: ip})
		}
	}
	return info
}

func namespaceInfo(n *corev1.Namespace) *metadata.NamespaceInfo {
	return &metadata.NamespaceInfo{Name: n.Name, Labels: n.Labels, Annotations: n.Annotations}
}

// poolInfo keeps what pkg/ipam parses of a SpiderIPPool (kind, metadata
// name, labels and EdgeLink's annotations (the block record), spec) and
// parses it into PoolInfo's typed form.
// Status (allocation counters SpiderPool's agent updates) and other
// annotations are dropped, so their churn is not a change here.
func poolInfo(u *unstructured.Unstructured) (*metadata.PoolInfo, error) {
	meta := map[string]any{"name": u.GetName(), "labels": u.GetLabels()}
	ours := map[string]string{}
	for _, k := range []string{ipam.AnnoBlocks, ipam.AnnoBlockOf} {
		if v, ok := u.GetAnnotations()[k]; ok {
			ours[k] = v
		}
	}
	if len(ours) > 0 {
		meta["annotations"] = ours
	}
	obj := map[string]any{
		"apiVersion": u.GetAPIVersion(),
		"kind":       u.GetKind(),
		"metadata":   meta,
		"spec":       u.Object["spec"],
	}
	data, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	return metadata.NewPoolInfo(u.GetName(), data), nil // parsed here, once
}

// The informers keep only what the agent reads, so 5,000 pods cost little.

func trimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID, ResourceVersion: p.ResourceVersion,
			Labels: p.Labels, Annotations: p.Annotations},
		Spec:   corev1.PodSpec{NodeName: p.Spec.NodeName, HostNetwork: p.Spec.HostNetwork},
		Status: corev1.PodStatus{Phase: p.Status.Phase, PodIP: p.Status.PodIP, PodIPs: p.Status.PodIPs},
	}, nil
}

func trimNode(obj any) (any, error) {
	n, ok := obj.(*corev1.Node)
	if !ok {
		return obj, nil
	}
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: n.Name, UID: n.UID, ResourceVersion: n.ResourceVersion, Labels: n.Labels},
		Spec:       corev1.NodeSpec{PodCIDR: n.Spec.PodCIDR, PodCIDRs: n.Spec.PodCIDRs},
		Status:     corev1.NodeStatus{Addresses: n.Status.Addresses},
	}, nil
}
