//go:build tools

// Package tools pins gremlins, the mutation tester `make mutate` runs
// (tests/mutate.sh).
package tools

import (
	_ "github.com/go-gremlins/gremlins/cmd/gremlins"
)
