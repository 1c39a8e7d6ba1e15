package v1alpha1

import (
	"fmt"
	"net/netip"
	"os"
	"strings"

	"sigs.k8s.io/yaml"
)

// Parse decodes a config file, applies defaults, drops duplicate CIDRs and
// validates. Unknown fields are errors (a typo must not silently fall back to
// a default). It returns the warnings Normalize produced even when the config
// is invalid.
func Parse(data []byte) (*AgentConfig, []string, error) {
	c := &AgentConfig{}
	if err := yaml.UnmarshalStrict(data, c); err != nil {
		return nil, nil, fmt.Errorf("decode config: %w", err)
	}
	SetDefaults(c)
	err := Validate(c)
	return c, Normalize(c), err
}

// Load reads and parses the config file at path (see Parse).
func Load(path string) (*AgentConfig, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	c, warnings, err := Parse(data)
	if err != nil {
		return c, warnings, fmt.Errorf("%s: %w", path, err)
	}
	return c, warnings, nil
}

// Marshal renders c as YAML.
func Marshal(c *AgentConfig) ([]byte, error) {
	return yaml.Marshal(c)
}

// MustPrefixes parses CIDR lists that Validate has accepted (it panics on
// one it would have refused).
func MustPrefixes(ss []string) []netip.Prefix {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		out = append(out, netip.MustParsePrefix(strings.TrimSpace(s)))
	}
	return out
}
