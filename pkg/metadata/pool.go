package metadata

import (
	"encoding/json"
	"fmt"

	"github.com/edgelink/edgelink/pkg/ipam"
)

// NewPoolInfo is where a SpiderIPPool of the picture is parsed, once: it
// decodes object (the JSON metasync keeps of the pool) and fills the
// typed form from pkg/ipam.ParsePool. metasync calls it for every pool it
// receives, and Load for every pool of a snapshot file (which stores the
// JSON only). An unusable pool is kept, with Err saying why.
func NewPoolInfo(name string, object json.RawMessage) *PoolInfo {
	info := &PoolInfo{Name: name, Object: object}
	var sp ipam.SpiderIPPool
	if err := json.Unmarshal(object, &sp); err != nil {
		info.Err = fmt.Errorf("SpiderIPPool %q: undecodable: %w", name, err)
		return info
	}
	info.Spider = &sp
	pool, err := ipam.ParsePool(&sp)
	if err != nil {
		info.Err = err
		return info
	}
	info.Pool = pool
	info.Version, info.Subnet, info.Gateway = pool.Version, pool.Subnet, pool.Gateway
	info.Prefixes = pool.Prefixes()
	info.Node = pool.PinnedNode()
	info.BlockOf, info.Blocks = pool.BlockOf(), pool.Claims()
	info.Disabled = pool.Disable
	return info
}
