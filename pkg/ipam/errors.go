package ipam

import (
	"errors"
	"fmt"
)

// Error classes. Messages name the pod, node, pool and field involved.
var (
	// ErrBadRequest: a required field is missing or a value is malformed.
	ErrBadRequest = errors.New("bad request")
	// ErrNoPool: no pool this node may use was found for the pod.
	ErrNoPool = errors.New("no pool")
	// ErrPoolExhausted: every candidate pool is full.
	ErrPoolExhausted = errors.New("pool exhausted")
)

func badRequest(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
}
