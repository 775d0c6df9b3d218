package server

import (
	"slices"
	"testing"
)

func TestResolveNSIDs(t *testing.T) {
	cfg := &Config{
		Listeners: []string{"tcp://127.0.0.1:0"},
		Subsystems: []SubsystemConfig{{NQN: "nqn.2026-11.io.flashpath:reload", Namespaces: []NamespaceConfig{
			{Backend: "mem:1MiB"}, {NSID: 1, Backend: "mem:2MiB"}, {Backend: "mem:3MiB"}}}},
	}
	got := resolveNSIDs(cfg)
	var ids []uint32
	for _, nc := range got.Subsystems[0].Namespaces {
		ids = append(ids, nc.NSID)
	}
	if !slices.Equal(ids, []uint32{2, 1, 3}) {
		t.Fatalf("NSIDs %v, want [2 1 3]", ids)
	}
	if cfg.Subsystems[0].Namespaces[0].NSID != 0 {
		t.Fatal("resolveNSIDs changed its argument")
	}
}
