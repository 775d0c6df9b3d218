package server

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target"
)

// ANAStateConfig sets the Asymmetric Namespace Access state of one ANA
// group (or every group) of a subsystem on one listener; a group is
// optimized on every listener where nothing says otherwise. Hosts with
// multipath (Linux native multipath, flashpath's host) send I/O on the
// optimized paths, then the non-optimized ones, and fail over from an
// inaccessible one:
//
//	ana_states:
//	  - listener: tcp://10.0.0.1:4420
//	    state: inaccessible       # every group on this listener
//	  - listener: tcp://10.0.0.2:4420
//	    group: 2
//	    state: non-optimized
type ANAStateConfig struct {
	Listener string `json:"listener"`
	Group    uint32 `json:"group,omitempty"` // 0: every group
	// State: optimized, non-optimized, inaccessible, persistent-loss or
	// change (SPDK's non_optimized also reads).
	State string `json:"state"`
}

// validateANA checks a subsystem's ana_states and its namespaces'
// ana_group against cfg's listeners.
func (c *Config) validateANA(i int, sc *SubsystemConfig) []error {
	var errs []error
	for j, nc := range sc.Namespaces {
		if nc.ANAGroup > target.MaxANAGroups {
			errs = append(errs, fmt.Errorf("subsystems[%d].namespaces[%d].ana_group: %d: groups are 1 to %d (or leave it out for 1)", i, j, nc.ANAGroup, target.MaxANAGroups))
		}
	}
	for j, a := range sc.ANAStates {
		if _, err := nvmeof.ParseANAState(a.State); err != nil {
			errs = append(errs, fmt.Errorf("subsystems[%d].ana_states[%d].state: %w", i, j, err))
		}
		if a.Group > target.MaxANAGroups {
			errs = append(errs, fmt.Errorf("subsystems[%d].ana_states[%d].group: %d: groups are 1 to %d (0 or none: every group)", i, j, a.Group, target.MaxANAGroups))
		}
		if c.listenerOf(a.Listener) == "" {
			errs = append(errs, fmt.Errorf("subsystems[%d].ana_states[%d].listener: %q is not one of the listeners %v", i, j, a.Listener, c.Listeners))
		}
	}
	return errs
}

// listenerOf returns the listener of c at the address l names (the
// transport and address; ?tls options aside), or "".
func (c *Config) listenerOf(l string) string {
	if _, err := parseListener(l); err != nil {
		return ""
	}
	for _, x := range c.Listeners {
		if SameListener(x, l) {
			return x
		}
	}
	return ""
}

// portKey returns the target's port for the running listener l.
func (s *Server) portKey(l string) (target.PortKey, bool) {
	bound := s.ListenerAddr(l) // "tcp://127.0.0.1:4420"
	tr, addr, ok := strings.Cut(bound, "://")
	if !ok {
		return target.PortKey{}, false
	}
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return target.PortKey{}, false
	}
	k := target.PortKey{TrType: nvmeof.TrTypeTCP, Addr: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())}
	if tr == "rdma" {
		k.TrType = nvmeof.TrTypeRDMA
	}
	return k, true
}

// ANAStateOf is the state cfg gives group on listener l of subsystem
// nqn: that of the last ana_states entry naming both (or every group),
// else optimized.
func (c *Config) ANAStateOf(nqn, l string, group uint32) nvmeof.ANAState {
	st := nvmeof.ANAOptimized
	for _, sc := range c.Subsystems {
		if sc.NQN != nqn {
			continue
		}
		for _, a := range sc.ANAStates {
			if (a.Group == 0 || a.Group == group) && c.listenerOf(a.Listener) == l {
				if s, err := nvmeof.ParseANAState(a.State); err == nil {
					st = s
				}
			}
		}
	}
	return st
}

// applyANA makes the running target's ANA states what cfg says: on every
// listener, each group of each subsystem is in the state its last
// matching ana_states entry gives, else optimized. Only changes are
// applied, so hosts get notices for those alone.
func (s *Server) applyANA(cfg *Config) {
	for _, sc := range cfg.Subsystems {
		ss := s.Target.Subsystem(sc.NQN)
		if ss == nil {
			continue
		}
		for _, l := range cfg.Listeners {
			key, ok := s.portKey(l)
			if !ok {
				continue
			}
			// All of a listener's groups at once: one notice for them.
			groups := ss.SetANAStates(key, func(g uint32) nvmeof.ANAState { return cfg.ANAStateOf(sc.NQN, l, g) })
			changed := map[nvmeof.ANAState][]uint32{}
			for _, g := range groups {
				st := cfg.ANAStateOf(sc.NQN, l, g)
				changed[st] = append(changed[st], g)
			}
			for st, groups := range changed {
				s.log.Info("ANA state changed", "subsys", sc.NQN, "listener", l, "state", st.String(), "groups", groups)
			}
		}
	}
}
