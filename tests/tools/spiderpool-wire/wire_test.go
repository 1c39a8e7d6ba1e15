// The ipam module's wire types against SpiderPool's own generated models
// (api/v1/agent/models in spiderpool v0.9.3): what the spiderpool binary
// sends must decode into ours, and what we answer must decode and validate
// as the binary does (models.IpamAddResponse.Validate). This lives in the
// tools module so SpiderPool never enters the product's module graph.
package wire

import (
	"encoding/json"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/go-openapi/strfmt"
	"github.com/spidernet-io/spiderpool/api/v1/agent/models"

	ours "github.com/edgelink/edgelink/modules/ipam"
	"github.com/edgelink/edgelink/pkg/ipam"
)

// jsonFields lists a struct's JSON field names (recursively for nested
// structs reached through pointers or slices), as "Type.field".
func jsonFields(t reflect.Type, prefix string, out map[string]string) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct {
		return
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" || name == "-" {
			continue
		}
		out[prefix+name] = opts + " " + kind(f.Type)
		jsonFields(f.Type, prefix+name+".", out)
	}
}

func kind(t reflect.Type) string {
	s := ""
	for t.Kind() == reflect.Pointer {
		s += "*"
		t = t.Elem()
	}
	if t.Kind() == reflect.Slice {
		return s + "[]" + kind(t.Elem())
	}
	if t.Kind() == reflect.Struct {
		return s + "struct"
	}
	return s + t.Kind().String()
}

func TestWireTypesMatchSpiderpoolModels(t *testing.T) {
	pairs := []struct {
		name         string
		ours, theirs any
	}{
		{"IpamAddArgs", ours.IpamAddArgs{}, models.IpamAddArgs{}},
		{"IpamDelArgs", ours.IpamDelArgs{}, models.IpamDelArgs{}},
		{"IpamBatchDelArgs", ours.IpamBatchDelArgs{}, models.IpamBatchDelArgs{}},
		{"IpamAddResponse", ours.IpamAddResponse{}, models.IpamAddResponse{}},
	}
	for _, p := range pairs {
		a, b := map[string]string{}, map[string]string{}
		jsonFields(reflect.TypeOf(p.ours), "", a)
		jsonFields(reflect.TypeOf(p.theirs), "", b)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s differs from SpiderPool's model:\n ours   %v\n theirs %v", p.name, sorted(a), sorted(b))
		}
	}
}

func sorted(m map[string]string) []string {
	var s []string
	for k, v := range m {
		s = append(s, k+"("+strings.TrimSpace(v)+")")
	}
	sort.Strings(s)
	return s
}

// An answer built by the module validates as the spiderpool binary checks it.
func TestAddResponseValidatesAsSpiderpool(t *testing.T) {
	objs, err := ipam.DecodeObjects(strings.NewReader(`
kind: SpiderIPPool
metadata: {name: p4}
spec: {subnet: 10.244.0.0/16, ips: ["10.244.5.2"], gateway: 10.244.5.1, nodeName: [edge-1], default: true, routes: [{dst: 10.96.0.0/12, gw: 10.244.5.1}]}
---
kind: SpiderIPPool
metadata: {name: p6}
spec: {subnet: "fd00::/64", ips: ["fd00::2"], nodeName: [edge-1], default: true}
`), "edge-1")
	if err != nil {
		t.Fatal(err)
	}
	store, err := ipam.OpenStore(filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	lease, err := ipam.NewAllocator(store, ipam.NewView("edge-1", objs)).Allocate(&ipam.AddRequest{
		ContainerID: "c", IfName: "eth0", NetNS: "/x", PodNamespace: "d", PodName: "p", PodUID: "u"})
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(ours.AddResponse(lease))
	if err != nil {
		t.Fatal(err)
	}
	var theirs models.IpamAddResponse
	if err := json.Unmarshal(data, &theirs); err != nil {
		t.Fatalf("SpiderPool cannot decode %s: %v", data, err)
	}
	if err := theirs.Validate(strfmt.Default); err != nil {
		t.Fatalf("SpiderPool rejects %s: %v", data, err)
	}
	if len(theirs.Ips) != 2 || *theirs.Ips[1].Version != 6 || *theirs.Routes[0].IfName != "eth0" {
		t.Errorf("decoded %s", data)
	}
}
