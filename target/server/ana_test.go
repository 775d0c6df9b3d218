package server

import (
	"context"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/internal/testutil"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target"
)

// TestANAStates: ana_states in the configuration set the groups' states
// per listener at start, a reload changes them, and Update (the RPC's
// path) too; ana_group puts namespaces in groups; bad entries are refused
// by name.
func TestANAStates(t *testing.T) {
	pa, pb := testutil.FreePort(t), testutil.FreePort(t)
	la, lb := "tcp://127.0.0.1:"+pa, "tcp://127.0.0.1:"+pb
	const nqn = "nqn.2026-12.io.flashpath:ana"
	cfg := &Config{Listeners: []string{la, lb}, Subsystems: []SubsystemConfig{{NQN: nqn,
		Namespaces: []NamespaceConfig{{NSID: 1, Backend: "mem:1MiB"}, {NSID: 2, Backend: "mem:1MiB", ANAGroup: 2}},
		ANAStates:  []ANAStateConfig{{Listener: la, State: "inaccessible"}, {Listener: lb, Group: 2, State: "non_optimized"}}}}}
	srv, err := Start(cfg, Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown(context.Background())
	ss := srv.Target.Subsystem(nqn)
	ka := target.PortKey{TrType: nvmeof.TrTypeTCP, Addr: netip.MustParseAddrPort("127.0.0.1:" + pa)}
	kb := target.PortKey{TrType: nvmeof.TrTypeTCP, Addr: netip.MustParseAddrPort("127.0.0.1:" + pb)}
	check := func(when string, want map[target.PortKey][3]nvmeof.ANAState) {
		t.Helper()
		for k, w := range want {
			for g := uint32(1); g <= 2; g++ {
				if got := ss.ANAState(k, g); got != w[g] {
					t.Errorf("%s: %v group %d: %v, want %v", when, k, g, got, w[g])
				}
			}
		}
	}
	check("at start", map[target.PortKey][3]nvmeof.ANAState{
		ka: {0, nvmeof.ANAInaccessible, nvmeof.ANAInaccessible}, kb: {0, nvmeof.ANAOptimized, nvmeof.ANANonOptimized}})

	next := cloneConfig(cfg)
	next.Subsystems[0].ANAStates = []ANAStateConfig{{Listener: la, Group: 1, State: "optimized"}, {Listener: la, Group: 2, State: "change"}}
	if err := srv.Reload(next); err != nil {
		t.Fatal(err)
	}
	check("after a reload", map[target.PortKey][3]nvmeof.ANAState{
		ka: {0, nvmeof.ANAOptimized, nvmeof.ANAChange}, kb: {0, nvmeof.ANAOptimized, nvmeof.ANAOptimized}})

	if err := srv.Update(func(c *Config) error {
		c.Subsystems[0].ANAStates = append(c.Subsystems[0].ANAStates, ANAStateConfig{Listener: lb, Group: 1, State: "persistent-loss"})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	check("after Update", map[target.PortKey][3]nvmeof.ANAState{
		ka: {0, nvmeof.ANAOptimized, nvmeof.ANAChange}, kb: {0, nvmeof.ANAPersistentLoss, nvmeof.ANAOptimized}})

	for _, tc := range []struct {
		ana  []ANAStateConfig
		nsg  uint32
		want string
	}{
		{[]ANAStateConfig{{Listener: "tcp://127.0.0.1:1", State: "optimized"}}, 0, "ana_states[0].listener"},
		{[]ANAStateConfig{{Listener: la, State: "fast"}}, 0, "ana_states[0].state"},
		{[]ANAStateConfig{{Listener: la, Group: 33, State: "optimized"}}, 0, "ana_states[0].group"},
		{nil, 33, "namespaces[0].ana_group"},
	} {
		bad := &Config{Listeners: []string{la}, Subsystems: []SubsystemConfig{{NQN: nqn, ANAStates: tc.ana,
			Namespaces: []NamespaceConfig{{NSID: 1, Backend: "mem:1MiB", ANAGroup: tc.nsg}}}}}
		if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc, err, tc.want)
		}
	}
}
