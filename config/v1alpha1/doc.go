// Package v1alpha1 holds the versioned configuration of the EdgeLink agent:
// the types of the YAML file read by `edgelink agent --config`, their
// defaults, and validation.
//
// The layout follows EdgeCore's: every beehive module has a section under
// `modules` with an `enable` switch. Validation reports every problem at once,
// each with its field path and offending value, so an operator fixes a file in
// one pass. Validation also hands back the config with its durations, CIDRs
// and namespace/name pairs parsed (Agent, Controller; parsed.go): the agent
// and the controller are built from those, so no caller parses a config
// string again. docs/config-reference.md documents every field; a test keeps
// it in step with these types.
//
// This package imports nothing else of EdgeLink's.
package v1alpha1
