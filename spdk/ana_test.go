package spdk

import (
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/internal/testutil"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target"
)

// TestANARPC: nvmf_subsystem_listener_set_ana_state sets a group's state
// on one listener of the running target, nvmf_subsystem_get_listeners
// shows it, save_config writes it (and namespaces' anagrpid) and a target
// restored from that file runs the same states; removing the listener
// drops its states.
func TestANARPC(t *testing.T) {
	srv, rs := start(t, nil)
	c := dial(t, rs.Path())
	pa, pb := testutil.FreePort(t), testutil.FreePort(t)
	laA := obj{"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": pa}
	laB := obj{"trtype": "TCP", "adrfam": "IPv4", "traddr": "127.0.0.1", "trsvcid": pb}
	c.must("nvmf_create_transport", obj{"trtype": "TCP"})
	c.must("nvmf_create_subsystem", obj{"nqn": nqn1, "allow_any_host": true, "ana_reporting": true})
	c.must("bdev_malloc_create", obj{"name": "M1", "num_blocks": 256, "block_size": 512})
	c.must("bdev_malloc_create", obj{"name": "M2", "num_blocks": 256, "block_size": 512})
	c.must("nvmf_subsystem_add_ns", obj{"nqn": nqn1, "namespace": obj{"bdev_name": "M1"}})
	c.must("nvmf_subsystem_add_ns", obj{"nqn": nqn1, "namespace": obj{"bdev_name": "M2", "anagrpid": 2}})
	c.must("nvmf_subsystem_add_listener", obj{"nqn": nqn1, "listen_address": laA})
	c.must("nvmf_subsystem_add_listener", obj{"nqn": nqn1, "listen_address": laB, "ana_state": "non_optimized"})
	c.must("nvmf_subsystem_listener_set_ana_state", obj{"nqn": nqn1, "listen_address": laA, "ana_state": "inaccessible", "anagrpid": 2})

	keyA := target.PortKey{TrType: nvmeof.TrTypeTCP, Addr: netip.MustParseAddrPort("127.0.0.1:" + pa)}
	keyB := target.PortKey{TrType: nvmeof.TrTypeTCP, Addr: netip.MustParseAddrPort("127.0.0.1:" + pb)}
	ss := srv.Target.Subsystem(nqn1)
	for _, w := range []struct {
		k     target.PortKey
		g     uint32
		state nvmeof.ANAState
	}{{keyA, 1, nvmeof.ANAOptimized}, {keyA, 2, nvmeof.ANAInaccessible}, {keyB, 1, nvmeof.ANANonOptimized}, {keyB, 2, nvmeof.ANANonOptimized}} {
		if got := ss.ANAState(w.k, w.g); got != w.state {
			t.Errorf("%v group %d: %v, want %v", w.k, w.g, got, w.state)
		}
	}
	if n := ss.Namespace(2); n == nil {
		t.Fatal("namespace 2 missing")
	}
	got := string(c.must("nvmf_subsystem_get_listeners", obj{"nqn": nqn1}))
	if !strings.Contains(got, `"trsvcid":"`+pa+`"},"ana_states":[{"ana_group":1,"ana_state":"optimized"},{"ana_group":2,"ana_state":"inaccessible"}]`) {
		t.Errorf("nvmf_subsystem_get_listeners: %s", got)
	}
	for _, bad := range []obj{
		{"nqn": nqn1, "listen_address": laA, "ana_state": "slow"},
		{"nqn": nqn1, "listen_address": laA, "ana_state": "optimized", "anagrpid": 33},
		{"nqn": nqn1, "listen_address": obj{"trtype": "TCP", "traddr": "127.0.0.1", "trsvcid": "1"}, "ana_state": "optimized"},
	} {
		if _, e := c.call("nvmf_subsystem_listener_set_ana_state", bad); e == nil || e.Code != CodeInvalidParams {
			t.Errorf("%v: %v", bad, e)
		}
	}

	saved := saveConfig(t, rs.Path())
	doc := mustJSON(t, saved)
	for _, want := range []string{`"ana_reporting":true`, `"anagrpid":2`, `"method":"nvmf_subsystem_listener_set_ana_state","params":{"nqn":"` + nqn1 + `","listen_address":{"trtype":"TCP","adrfam":"IPv4","traddr":"127.0.0.1","trsvcid":"` + pa + `"},"ana_state":"inaccessible","anagrpid":2}`} {
		if !strings.Contains(doc, want) {
			t.Errorf("save_config lacks %s:\n%s", want, doc)
		}
	}
	rs.Close()
	srv.Shutdown(context.Background())
	srv2, rs2, err := startSaved(t, saved)
	if err != nil {
		t.Fatal(err)
	}
	if again := mustJSON(t, saveConfig(t, rs2.Path())); again != doc {
		t.Errorf("save_config after the restore:\n%s\nwant\n%s", again, doc)
	}
	if got := srv2.Target.Subsystem(nqn1).ANAState(keyA, 2); got != nvmeof.ANAInaccessible {
		t.Errorf("restored: group 2 on A is %v", got)
	}

	// The listener goes: its states go with it.
	c2 := dial(t, rs2.Path())
	c2.must("nvmf_subsystem_remove_listener", obj{"nqn": nqn1, "listen_address": laA})
	var subs []json.RawMessage
	json.Unmarshal(c2.must("nvmf_subsystem_get_listeners", obj{"nqn": nqn1}), &subs)
	if len(subs) != 1 || len(srv2.Applied().Subsystems[0].ANAStates) != 1 {
		t.Errorf("after removing listener A: %s, ana_states %+v", subs, srv2.Applied().Subsystems[0].ANAStates)
	}
}

// TestDiscoveryListenerRPC: a listener added to the discovery subsystem
// alone is a discovery-only listener (the discovery log does not list it
// as an I/O port), nvmf_get_subsystems shows it under discovery, and it
// is removed the same way; save_config writes it.
func TestDiscoveryListenerRPC(t *testing.T) {
	srv, rs := start(t, nil)
	c := dial(t, rs.Path())
	p := testutil.FreePort(t)
	la := obj{"trtype": "TCP", "traddr": "127.0.0.1", "trsvcid": p}
	c.must("nvmf_create_transport", obj{"trtype": "TCP"})
	c.must("nvmf_subsystem_add_listener", obj{"nqn": "discovery", "listen_address": la})
	if _, e := c.call("nvmf_subsystem_add_listener", obj{"nqn": "discovery", "listen_address": la}); e == nil {
		t.Error("the same discovery listener added twice")
	}
	if got := srv.Applied(); len(got.DiscoveryListeners) != 1 || len(got.Listeners) != 0 {
		t.Fatalf("listeners %v, discovery listeners %v", got.Listeners, got.DiscoveryListeners)
	}
	only := false
	for _, port := range srv.Target.Ports() {
		only = only || port.DiscoveryOnly && port.Addr.Port() != 0 && strings.HasSuffix(port.Addr.String(), ":"+p)
	}
	if !only {
		t.Errorf("no discovery-only port on %s: %+v", p, srv.Target.Ports())
	}
	var subs []subsystemInfo
	json.Unmarshal(c.must("nvmf_get_subsystems", nil), &subs)
	if len(subs) != 1 || len(subs[0].ListenAddresses) != 1 || subs[0].ListenAddresses[0].Trsvcid != p {
		t.Errorf("nvmf_get_subsystems: %+v", subs)
	}
	if doc := mustJSON(t, saveConfig(t, rs.Path())); !strings.Contains(doc, `"nqn":"nqn.2014-08.org.nvmexpress.discovery","listen_address":{"trtype":"TCP","adrfam":"IPv4","traddr":"127.0.0.1","trsvcid":"`+p+`"}`) {
		t.Errorf("save_config: %s", doc)
	}
	c.must("nvmf_subsystem_remove_listener", obj{"nqn": "discovery", "listen_address": la})
	if got := srv.Applied(); len(got.DiscoveryListeners) != 0 || len(srv.Target.Ports()) != 0 {
		t.Errorf("after removal: %v, ports %+v", got.DiscoveryListeners, srv.Target.Ports())
	}
}

// TestCntlIDRangeRPC: nvmf_create_subsystem's min_cntlid and max_cntlid
// (disjoint ranges on targets that serve one subsystem for multipath)
// reach the core, show in nvmf_get_subsystems and save_config; a range
// that is empty or reaches past 65519 is refused.
func TestCntlIDRangeRPC(t *testing.T) {
	srv, rs := start(t, nil)
	c := dial(t, rs.Path())
	c.must("nvmf_create_subsystem", obj{"nqn": nqn1, "allow_any_host": true, "min_cntlid": 100, "max_cntlid": 199})
	if lo, hi := srv.Target.Subsystem(nqn1).Config().CntlIDRange(); lo != 100 || hi != 199 {
		t.Errorf("the core's range: %d-%d, want 100-199", lo, hi)
	}
	if got := string(c.must("nvmf_get_subsystems", obj{"nqn": nqn1})); !strings.Contains(got, `"min_cntlid":100,"max_cntlid":199`) {
		t.Errorf("nvmf_get_subsystems: %s", got)
	}
	if got := string(c.must("framework_get_config", obj{"name": "nvmf"})); !strings.Contains(got, `"min_cntlid":100,"max_cntlid":199`) {
		t.Errorf("framework_get_config (save_config) lacks the range: %s", got)
	}
	for _, bad := range []obj{
		{"nqn": nqn1 + "x", "min_cntlid": 200, "max_cntlid": 100},
		{"nqn": nqn1 + "y", "max_cntlid": 65520},
	} {
		if _, e := c.call("nvmf_create_subsystem", bad); e == nil || e.Code != CodeInvalidParams || !strings.Contains(e.Message, "Invalid cntlid range") {
			t.Errorf("nvmf_create_subsystem %v: %+v", bad, e)
		}
	}
}
