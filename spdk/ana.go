package spdk

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/server"
)

// ANA (Asymmetric Namespace Access): flashpath always reports it, so
// ana_reporting is accepted and changes nothing; a namespace's anagrpid is
// its ana_group, and nvmf_subsystem_listener_set_ana_state writes the
// subsystem's ana_states (server.ANAStateConfig), which the target applies
// with ANA change notices to the hosts on that listener.

// spdkANAState is SPDK's name of an ANA state ("non_optimized").
func spdkANAState(st nvmeof.ANAState) string { return strings.ReplaceAll(st.String(), "-", "_") }

// parseANAState reads SPDK's ana_state parameter.
func parseANAState(s string) (nvmeof.ANAState, *Error) {
	st, err := nvmeof.ParseANAState(s)
	if err != nil {
		return 0, errorf(CodeInvalidParams, "Invalid parameters: ana_state %q: want optimized, non_optimized, inaccessible, persistent_loss or change", s)
	}
	return st, nil
}

func checkANAGroup(g uint32) *Error {
	if g > target.MaxANAGroups {
		return errorf(CodeInvalidParams, "Invalid parameters: anagrpid %d: flashpath has ANA groups 1 to %d", g, target.MaxANAGroups)
	}
	return nil
}

// setANA records state st for group g (0: every group) of sc on listener
// l, replacing what an earlier entry said for it; optimized for every
// group leaves no entry, as that is the default.
func setANA(sc *server.SubsystemConfig, l string, g uint32, st nvmeof.ANAState) {
	sc.ANAStates = slices.DeleteFunc(slices.Clone(sc.ANAStates), func(a server.ANAStateConfig) bool {
		return server.SameListener(a.Listener, l) && (g == 0 || a.Group == g)
	})
	if g != 0 || st != nvmeof.ANAOptimized {
		sc.ANAStates = append(sc.ANAStates, server.ANAStateConfig{Listener: l, Group: g, State: st.String()})
	}
}

// pruneANA drops the ana_states entries of listeners cfg no longer has.
func pruneANA(cfg *server.Config) {
	for i := range cfg.Subsystems {
		sc := &cfg.Subsystems[i]
		sc.ANAStates = slices.DeleteFunc(slices.Clone(sc.ANAStates), func(a server.ANAStateConfig) bool {
			return !slices.ContainsFunc(cfg.Listeners, func(l string) bool { return server.SameListener(l, a.Listener) })
		})
	}
}

// nvmf_subsystem_listener_set_ana_state.
func (s *Server) setANAState(params json.RawMessage) (any, *Error) {
	var p struct {
		NQN           string        `json:"nqn"`
		ListenAddress listenAddress `json:"listen_address"`
		ANAState      string        `json:"ana_state"`
		ANAGrpID      uint32        `json:"anagrpid"`
		tgtName
	}
	if e := decodeParams(params, &p); e != nil {
		return nil, e
	}
	st, e := parseANAState(p.ANAState)
	if e != nil {
		return nil, e
	}
	if e := checkANAGroup(p.ANAGrpID); e != nil {
		return nil, e
	}
	want, e := listenerOf(p.ListenAddress, false)
	if e != nil {
		return nil, e
	}
	e = s.update("set ANA state", func(cfg *server.Config) *Error {
		sc, e := subsys(cfg, p.NQN)
		if e != nil {
			return e
		}
		i := slices.IndexFunc(cfg.Listeners, func(l string) bool { return server.SameListener(l, want) && s.listensOn(l, p.NQN) })
		if i < 0 {
			return errorf(CodeInvalidParams, "Invalid parameters: %s does not listen on %s (nvmf_subsystem_get_listeners lists them)", p.NQN, want)
		}
		setANA(sc, cfg.Listeners[i], p.ANAGrpID, st)
		return nil
	})
	if e != nil {
		return nil, e
	}
	return true, nil
}

// anaGroupsOf lists group 1 and every group a namespace of sc is in or
// an entry names, ascending: what nvmf_subsystem_get_listeners shows.
func anaGroupsOf(sc *server.SubsystemConfig) []uint32 {
	groups := []uint32{1}
	for _, nc := range sc.Namespaces {
		groups = append(groups, max(nc.ANAGroup, 1))
	}
	for _, a := range sc.ANAStates {
		if a.Group != 0 {
			groups = append(groups, a.Group)
		}
	}
	slices.Sort(groups)
	return slices.Compact(groups)
}

// anaEntries are the nvmf_subsystem_listener_set_ana_state requests that
// rebuild sc's ana_states (save_config).
func anaEntries(sc *server.SubsystemConfig) []configEntry {
	type setANAParams struct {
		NQN           string        `json:"nqn"`
		ListenAddress listenAddress `json:"listen_address"`
		ANAState      string        `json:"ana_state"`
		ANAGrpID      uint32        `json:"anagrpid,omitempty"`
	}
	var out []configEntry
	for _, a := range sc.ANAStates {
		st, err := nvmeof.ParseANAState(a.State)
		if err != nil {
			continue // validated
		}
		out = append(out, entry("nvmf_subsystem_listener_set_ana_state", setANAParams{sc.NQN, listenAddressOf(a.Listener), spdkANAState(st), a.Group}))
	}
	return out
}
