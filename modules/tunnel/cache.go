package tunnel

import (
	"bytes"
	"encoding/json"
	"os"
	"sort"

	"k8s.io/klog/v2"

	"github.com/edgelink/edgelink/pkg/atomicfile"
	"github.com/edgelink/edgelink/pkg/p2p"
)

// The peer cache (<dataDir>/tunnel/peers.json) keeps every member the
// node has learned, so that a restart while the relays are unreachable
// (an edge site whose uplink is down) still finds the peers on its LAN.
//
//	{"peers":[{"node":"edge-a2","peer":"12D3KooW...","addrs":[...],"seen":1764200000},...]}
type cacheFile struct {
	Peers []p2p.PeerRecord `json:"peers"`
}

func loadCache(path string) map[string]p2p.PeerRecord {
	out := map[string]p2p.PeerRecord{}
	data, err := os.ReadFile(path)
	if err != nil {
		if !os.IsNotExist(err) {
			klog.ErrorS(err, "Reading the peer cache failed; starting without it", "path", path)
		}
		return out
	}
	var f cacheFile
	if err := json.Unmarshal(data, &f); err != nil {
		klog.ErrorS(err, "The peer cache is corrupt; starting without it", "path", path)
		return out
	}
	for _, p := range f.Peers {
		if p.Node != "" && p.Peer != "" {
			out[p.Node] = p
		}
	}
	return out
}

func saveCache(path string, known map[string]p2p.PeerRecord) error {
	f := cacheFile{Peers: make([]p2p.PeerRecord, 0, len(known))}
	for _, p := range known {
		f.Peers = append(f.Peers, p)
	}
	sort.Slice(f.Peers, func(i, j int) bool { return f.Peers[i].Node < f.Peers[j].Node })
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return atomicfile.Write(path, bytes.NewReader(data), 0o644)
}
