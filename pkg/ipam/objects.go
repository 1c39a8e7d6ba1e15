package ipam

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

// Annotations SpiderPool reads to pick pools (constant names as in
// spiderpool v0.9.3 pkg/constant).
const (
	AnnoPodIPPool     = "ipam.spidernet.io/ippool"
	AnnoPodIPPools    = "ipam.spidernet.io/ippools"
	AnnoNSDefaultIPv4 = "ipam.spidernet.io/default-ipv4-ippool"
	AnnoNSDefaultIPv6 = "ipam.spidernet.io/default-ipv6-ippool"
)

// Meta is what allocation needs of a Pod, Node or Namespace.
type Meta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	UID         string            `json:"uid,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Objects is the input of a View: the cluster objects IPAM reads. They come
// from the pool file and, once metasync runs, from the cloud channel.
type Objects struct {
	Pools []SpiderIPPool `json:"pools,omitempty"`
	// Parsed holds, by name, what ParsePool already made of pools of
	// Pools (the metadata snapshot carries them parsed once, by
	// metasync); NewView parses only the others. Never stored.
	Parsed     map[string]Parsed `json:"-"`
	Node       *Meta             `json:"node,omitempty"`
	Namespaces []Meta            `json:"namespaces,omitempty"`
	Pods       []Meta            `json:"pods,omitempty"`
}

// Parsed is the outcome of ParsePool for one SpiderIPPool: the pool, or
// why it is invalid.
type Parsed struct {
	Pool *Pool
	Err  error
}

// View is an immutable snapshot the allocator reads without locks. Build
// a new one with NewView to change anything.
type View struct {
	NodeName   string
	NodeLabels labels.Set
	Pools      map[string]*Pool
	// PoolErrors holds pools that failed validation, by name, so "no pool"
	// errors can say why a named pool was not usable.
	PoolErrors map[string]error
	Namespaces map[string]Meta
	Pods       map[string]Meta // by namespace/name

	// blocks are this node's blocks of each shared pool, by the shared
	// pool's name, sorted by name.
	blocks map[string][]*Pool
}

// NewView validates objs for node nodeName. Invalid pools are kept out and
// reported in PoolErrors, not fatal: one bad pool must not stop the rest.
func NewView(nodeName string, objs *Objects) *View {
	v := &View{
		NodeName:   nodeName,
		Pools:      map[string]*Pool{},
		PoolErrors: map[string]error{},
		Namespaces: map[string]Meta{},
		Pods:       map[string]Meta{},
	}
	if objs == nil {
		return v
	}
	if objs.Node != nil {
		v.NodeLabels = labels.Set(objs.Node.Labels)
	}
	for i := range objs.Pools {
		r, ok := objs.Parsed[objs.Pools[i].Name]
		if !ok {
			r.Pool, r.Err = ParsePool(&objs.Pools[i])
		}
		p, err := r.Pool, r.Err
		if err == nil && p == nil {
			err = fmt.Errorf("SpiderIPPool %q: not parsed", objs.Pools[i].Name)
		}
		if err != nil {
			v.PoolErrors[objs.Pools[i].Name] = err
			continue
		}
		v.Pools[p.Name] = p
	}
	v.blocks = map[string][]*Pool{}
	for _, name := range v.PoolNames() {
		p := v.Pools[name]
		if p.blockOf != "" && !p.Shared() && p.nodeNames[0] == nodeName && !p.Disable {
			v.blocks[p.blockOf] = append(v.blocks[p.blockOf], p)
		}
	}
	for _, ns := range objs.Namespaces {
		v.Namespaces[ns.Name] = ns
	}
	for _, p := range objs.Pods {
		v.Pods[p.Namespace+"/"+p.Name] = p
	}
	return v
}

// PoolNames lists the valid pools, sorted.
func (v *View) PoolNames() []string {
	names := make([]string, 0, len(v.Pools))
	for n := range v.Pools {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// LoadObjectsFile reads a pool file: Kubernetes objects as YAML documents
// separated by "---" or as JSON, optionally wrapped in a List. Kinds read:
// SpiderIPPool, Node (this node's labels; the one named nodeName), Namespace
// and Pod (for SpiderPool's annotations). Other kinds are an error, so a
// misplaced file is noticed.
func LoadObjectsFile(path, nodeName string) (*Objects, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("pool file: %w", err)
	}
	defer f.Close()
	objs, err := DecodeObjects(f, nodeName)
	if err != nil {
		return nil, fmt.Errorf("pool file %s: %w", path, err)
	}
	return objs, nil
}

type object struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Items             []json.RawMessage `json:"items"`
}

// DecodeObjects decodes a YAML or JSON stream of objects (see LoadObjectsFile).
func DecodeObjects(r io.Reader, nodeName string) (*Objects, error) {
	objs := &Objects{}
	dec := utilyaml.NewYAMLOrJSONDecoder(bufio.NewReader(r), 4096)
	for doc := 1; ; doc++ {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return objs, nil
			}
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if len(bytes.TrimSpace(raw)) == 0 || string(raw) == "null" {
			continue
		}
		if err := addObject(objs, raw, nodeName, fmt.Sprintf("document %d", doc)); err != nil {
			return nil, err
		}
	}
}

func addObject(objs *Objects, raw json.RawMessage, nodeName, where string) error {
	var o object
	if err := json.Unmarshal(raw, &o); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	meta := Meta{Name: o.Name, Namespace: o.Namespace, UID: string(o.UID), Labels: o.Labels, Annotations: o.Annotations}
	switch o.Kind {
	case "List", "SpiderIPPoolList", "PodList", "NodeList", "NamespaceList":
		for i, item := range o.Items {
			if err := addObject(objs, item, nodeName, fmt.Sprintf("%s item %d", where, i)); err != nil {
				return err
			}
		}
	case "SpiderIPPool":
		var p SpiderIPPool
		if err := json.Unmarshal(raw, &p); err != nil {
			return fmt.Errorf("%s: SpiderIPPool %q: %w", where, o.Name, err)
		}
		objs.Pools = append(objs.Pools, p)
	case "Node":
		if o.Name == nodeName {
			objs.Node = &meta
		}
	case "Namespace":
		objs.Namespaces = append(objs.Namespaces, meta)
	case "Pod":
		objs.Pods = append(objs.Pods, meta)
	default:
		return fmt.Errorf("%s: kind %q: a pool file holds SpiderIPPool, Node, Namespace and Pod objects", where, o.Kind)
	}
	return nil
}
