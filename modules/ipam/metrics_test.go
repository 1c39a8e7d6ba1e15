package ipam

import (
	"errors"
	"fmt"
	"testing"

	"github.com/edgelink/edgelink/pkg/ipam"
)

func TestCounts(t *testing.T) {
	var c Counts
	c.allocated()
	c.allocated()
	c.allocFailed(fmt.Errorf("pod a/b: %w", ipam.ErrPoolExhausted))
	c.allocFailed(fmt.Errorf("%w: no pool for a/b", ipam.ErrNoPool))
	c.allocFailed(errors.New("bolt: disk full"))
	c.released(true)
	c.released(false)
	c.releasedN(2)
	if c.Allocations.Load() != 2 || c.FailExhausted.Load() != 1 || c.FailNoPool.Load() != 1 || c.FailError.Load() != 1 ||
		c.FailBadRequest.Load() != 0 || c.Releases.Load() != 3 {
		t.Errorf("counts: allocations %d exhausted %d noPool %d error %d releases %d", c.Allocations.Load(), c.FailExhausted.Load(),
			c.FailNoPool.Load(), c.FailError.Load(), c.Releases.Load())
	}
	var none *Counts // handlers built without counts
	none.allocated()
	none.allocFailed(ipam.ErrNoPool)
	none.released(true)
}
