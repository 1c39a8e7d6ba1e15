package v1alpha1

import (
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

// Parse decodes a config file, applies defaults, validates and drops
// duplicate CIDRs, and returns the config parsed. Unknown fields are errors
// (a typo must not silently fall back to a default). It returns the
// warnings Normalize produced even when the config is invalid.
func Parse(data []byte) (*Agent, []string, error) {
	c := &AgentConfig{}
	if err := yaml.UnmarshalStrict(data, c); err != nil {
		return nil, nil, fmt.Errorf("decode config: %w", err)
	}
	SetDefaults(c)
	a, err := Validate(c)
	return a, Normalize(c), err
}

// Load reads and parses the config file at path (see Parse).
func Load(path string) (*Agent, []string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read config: %w", err)
	}
	a, warnings, err := Parse(data)
	if err != nil {
		return nil, warnings, fmt.Errorf("%s: %w", path, err)
	}
	return a, warnings, nil
}

// Marshal renders c as YAML.
func Marshal(c *AgentConfig) ([]byte, error) {
	return yaml.Marshal(c)
}
