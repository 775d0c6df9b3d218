package target

import (
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"

	"github.com/flashpath/flashpath/nvmeof"
)

// Asymmetric Namespace Access (NVMe Base 2.0 §8.1). Every namespace
// belongs to an ANA group (NamespaceConfig.ANAGroup, default 1); each
// subsystem keeps, per port, the state of each group there: optimized
// unless set otherwise (Subsystem.SetANAState). A controller reports the
// states of the port its host connected through, in the ANA log page and
// Identify, and answers I/O to a namespace whose group is not accessible
// there with the path related status the host's multipath fails over on.

const (
	// MaxANAGroups is ANAGRPMAX and NANAGRPID: groups 1 to 32.
	MaxANAGroups = 32
	// ANATransitionTime is ANATT, in seconds: how long a group may stay
	// in the change state.
	ANATransitionTime = 10
)

// PortKey names a port for its ANA states: its transport and the address
// it listens on (PortInfo.TrType and Addr).
type PortKey struct {
	TrType uint8
	Addr   netip.AddrPort
}

func (k PortKey) String() string { return fmt.Sprintf("%v %s", nvmeof.TrType(k.TrType), k.Addr) }

// anaPort holds one port's group states for a subsystem: 0 means
// optimized (never set). The I/O path reads it without a lock.
type anaPort struct {
	states [MaxANAGroups + 1]atomic.Uint32
}

func (p *anaPort) state(group uint32) nvmeof.ANAState {
	if v := p.states[group].Load(); v != 0 {
		return nvmeof.ANAState(v)
	}
	return nvmeof.ANAOptimized
}

// anaPortLocked returns the states of port k, made on first use. The
// caller holds s.mu.
func (s *Subsystem) anaPortLocked(k PortKey) *anaPort {
	if s.ana == nil {
		s.ana = map[PortKey]*anaPort{}
	}
	p := s.ana[k]
	if p == nil {
		p = &anaPort{}
		s.ana[k] = p
	}
	return p
}

// SetANAState sets the state of ANA group group (0: every group) on the
// port k. Controllers connected through that port get an ANA change
// notice; their hosts read the new states from the ANA log page.
func (s *Subsystem) SetANAState(k PortKey, group uint32, st nvmeof.ANAState) error {
	if !st.Valid() {
		return fmt.Errorf("ANA state %#x is not one of NVMe's", uint8(st))
	}
	if group != 0 {
		if err := nvmeof.CheckANAGroupID(group, MaxANAGroups); err != nil {
			return err
		}
	}
	s.SetANAStates(k, func(g uint32) nvmeof.ANAState {
		if group == 0 || g == group {
			return st
		}
		return 0 // unchanged
	})
	return nil
}

// SetANAStates sets, on port k, each group g to want(g) (0: leave it),
// with one ANA change notice to the controllers reached through k for
// all the changes. It returns the groups that changed.
func (s *Subsystem) SetANAStates(k PortKey, want func(group uint32) nvmeof.ANAState) []uint32 {
	s.mu.Lock()
	p := s.anaPortLocked(k)
	var groups []uint32
	for g := uint32(1); g <= MaxANAGroups; g++ {
		if st := want(g); st.Valid() && p.state(g) != st {
			p.states[g].Store(uint32(st))
			s.anaChanges++
			s.anaGroupChanges[g] = s.anaChanges
			groups = append(groups, g)
		}
	}
	changed := len(groups) > 0
	var notify []*Controller
	if changed {
		for c := range s.ctrls {
			if c.ana == p {
				notify = append(notify, c)
			}
		}
	}
	s.mu.Unlock()
	if changed {
		s.t.log.Debug("ANA states changed", "subsys", s.cfg.NQN, "port", k.String(), "groups", groups, "controllers", len(notify))
	}
	for _, c := range notify {
		c.anaChanged()
	}
	return groups
}

// ANAState returns the state of group on port k.
func (s *Subsystem) ANAState(k PortKey, group uint32) nvmeof.ANAState {
	if group == 0 || group > MaxANAGroups {
		return nvmeof.ANAInaccessible
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.ana[k]; p != nil {
		return p.state(group)
	}
	return nvmeof.ANAOptimized
}

// portKey returns the key of port id (PortKey{} for a queue that named
// none).
func (t *Target) portKey(id uint16) PortKey {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, p := range t.ports {
		if p.ID == id {
			return PortKey{p.TrType, p.Addr}
		}
	}
	return PortKey{}
}

// anaLog builds the ANA log page c's host sees: group 1 and every group
// that has a namespace or a state set on c's port, with their namespaces
// unless rgo (groups only).
func (c *Controller) anaLog(rgo bool) []byte {
	s := c.subsys
	byGroup := map[uint32][]uint32{1: nil}
	tb := s.ns.Load()
	if tb != nil {
		for _, id := range tb.ids {
			g := tb.byID[id].anaGroup
			byGroup[g] = append(byGroup[g], id)
		}
	}
	s.mu.Lock()
	l := nvmeof.ANALog{ChangeCount: s.anaChanges}
	for g := uint32(1); g <= MaxANAGroups; g++ {
		if c.ana.states[g].Load() != 0 {
			if _, ok := byGroup[g]; !ok {
				byGroup[g] = nil
			}
		}
	}
	groups := make([]uint32, 0, len(byGroup))
	for g := range byGroup {
		groups = append(groups, g)
	}
	slices.Sort(groups)
	for _, g := range groups {
		l.Groups = append(l.Groups, nvmeof.ANAGroupDesc{GroupID: g, ChangeCount: s.anaGroupChanges[g], State: c.ana.state(g), NSIDs: byGroup[g]})
	}
	s.mu.Unlock()
	return l.AppendEncode(nil, rgo)
}

// anaChanged raises the ANA change notice.
func (c *Controller) anaChanged() {
	c.notice(nvmeof.OAESANAChange, aenANAChange)
}
