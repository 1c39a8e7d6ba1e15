package v1alpha1

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// leafPaths walks the config types and returns every field's YAML path with
// its value in v ("" for fields of list elements, which have no default).
func leafPaths(prefix string, v reflect.Value, out map[string]string) {
	t := v.Type()
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		path := name
		if prefix != "" {
			path = prefix + "." + name
		}
		fv := v.Field(i)
		switch {
		case f.Type.Kind() == reflect.Struct:
			leafPaths(path, fv, out)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			out[path] = fmt.Sprint(fv.Interface())
			leafPaths(path+"[]", reflect.New(f.Type.Elem()).Elem(), out)
		default:
			out[path] = fmt.Sprint(fv.Interface())
		}
	}
}

var refRow = regexp.MustCompile("^\\| `([^`]+)` \\| [^|]+ \\| ([^|]+) \\|")

// docs/config-reference.md names exactly the fields the types have, and the
// defaults it quotes are the ones the code produces: the agent's tables,
// then, after the heading naming EdgeLinkController, the controller's.
func TestReferenceMatchesTypes(t *testing.T) {
	t.Setenv("NODE_NAME", "")     // nodeName's default is environment-dependent
	t.Setenv("POD_NAMESPACE", "") // so is the controller's lease namespace
	agent, ctl := map[string]string{}, map[string]string{}
	leafPaths("", reflect.ValueOf(*NewDefault()), agent)
	leafPaths("", reflect.ValueOf(*DefaultControllerConfig()), ctl)

	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "config-reference.md"))
	if err != nil {
		t.Fatal(err)
	}
	defaults, section := agent, "agent"
	documented := map[string]map[string]bool{"agent": {}, "controller": {}}
	for _, line := range strings.Split(string(doc), "\n") {
		if strings.HasPrefix(line, "# ") && strings.Contains(line, ControllerKind) {
			defaults, section = ctl, "controller"
		}
		m := refRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		path, def := m[1], strings.TrimSpace(m[2])
		documented[section][path] = true
		want, ok := defaults[path]
		if !ok {
			t.Errorf("docs (%s) name %q, which the config types do not have", section, path)
			continue
		}
		if !strings.HasPrefix(def, "`") || path == "nodeName" {
			continue // prose default ("none", "$NODE_NAME ...")
		}
		lit := strings.Trim(def, "`")
		if lit == `""` {
			lit = ""
		}
		if want != lit {
			t.Errorf("docs (%s) give %s default %q, the code %q", section, path, lit, want)
		}
	}
	for name, defs := range map[string]map[string]string{"agent": agent, "controller": ctl} {
		var missing []string
		for p := range defs {
			if !documented[name][p] {
				missing = append(missing, p)
			}
		}
		sort.Strings(missing)
		if len(missing) > 0 {
			t.Errorf("%s fields missing from docs/config-reference.md: %v", name, missing)
		}
	}
}

// The example files in config/examples validate.
func TestExamplesValidate(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "examples", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no examples found")
	}
	for _, f := range files {
		if _, warnings, err := Load(f); err != nil || len(warnings) > 0 {
			t.Errorf("%s: %v %v", f, err, warnings)
		}
	}
}

// FuzzParse: any bytes give a config or an error, never a panic, and an
// accepted config passes Validate again after Normalize, with the same
// parsed values (the parsed CIDR lists leave out what Normalize drops).
func FuzzParse(f *testing.F) {
	f.Add([]byte("nodeName: edge-1\nmodules:\n  edgeCNI:\n    enable: true\n    meshCIDRConfig:\n      edgeCIDR: [10.244.5.0/24, 10.244.5.0/24]\n"))
	f.Add([]byte("modules: {tunnel: {relayNodes: [{nodeName: r, advertiseAddress: [1.2.3.4]}]}}"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		t.Setenv("NODE_NAME", "fuzz")
		c, _, err := Parse(data)
		if err != nil {
			return
		}
		again, err := Validate(c.AgentConfig)
		if err != nil {
			t.Fatalf("accepted config fails re-validation: %v", err)
		}
		if !reflect.DeepEqual(again.Parsed, c.Parsed) {
			t.Fatalf("parsed values differ after Normalize: %+v, then %+v", c.Parsed, again.Parsed)
		}
	})
}
