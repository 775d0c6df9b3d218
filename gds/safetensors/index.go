package safetensors

import (
	"encoding/json"
	"fmt"
	"sort"
)

// IndexFile is the conventional name of a sharded checkpoint's index.
const IndexFile = "model.safetensors.index.json"

// Index is a sharded checkpoint's index (Hugging Face's
// model.safetensors.index.json): which shard holds each tensor. Flashpath
// adds a "flashpath" member when it saves: where each shard lives, its
// size and the CRC-32C of every tensor, and that the save completed.
// Readers that know only weight_map (transformers, safetensors) ignore it.
type Index struct {
	Metadata  map[string]any    `json:"metadata,omitempty"`
	WeightMap map[string]string `json:"weight_map"`
	Flashpath *IndexExt         `json:"flashpath,omitempty"`
}

// IndexExt is flashpath's part of an index.
type IndexExt struct {
	Version int `json:"version"`
	// Complete is written last, true only once every shard is written
	// and flushed.
	Complete bool                  `json:"complete"`
	Shards   map[string]ShardEntry `json:"shards"`
}

// ShardEntry records where a shard lives and what it holds.
type ShardEntry struct {
	Location string `json:"location"` // a path (relative to the index's folder) or a namespace URL
	Size     int64  `json:"size"`     // bytes: header and data
	// CRC32C is the CRC-32C (Castagnoli) of each tensor's bytes.
	CRC32C map[string]uint32 `json:"crc32c,omitempty"`
}

// ParseIndex parses an index and checks that it names at least one shard.
func ParseIndex(b []byte) (*Index, error) {
	var idx Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("%w: index JSON: %v", ErrMalformed, err)
	}
	if len(idx.WeightMap) == 0 {
		return nil, fmt.Errorf("%w: index has no weight_map entries", ErrMalformed)
	}
	for t, s := range idx.WeightMap {
		if s == "" {
			return nil, fmt.Errorf("%w: index: tensor %q maps to an empty shard name", ErrMalformed, t)
		}
	}
	return &idx, nil
}

// Shards returns the shard names of the index, sorted.
func (idx *Index) Shards() []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range idx.WeightMap {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.Strings(out)
	return out
}
