package server

import (
	"slices"
)

// merge3 merges two versions of a keyed list edited from a common one, as
// a three-way merge of files merges lines: base is the common ancestor,
// ours and theirs the two versions. Theirs wins where it changed:
//
//   - an item theirs added or changed since base is theirs' version, or
//     both(base, ours, theirs) where both is not nil and ours has the
//     item too (a changed item only: one theirs added is theirs' even
//     where ours added the key too);
//   - an item theirs removed since base is gone, whatever ours did;
//   - every other item is as ours has it: kept, changed, removed or
//     added there. Where ours did not change it either, theirs' copy is
//     taken, so that merge3(base, base, theirs) is theirs.
//
// The result lists theirs' items in theirs' order, then the items only
// ours has, in ours' order. equal compares two items with the same key.
// merge3 is pure: it changes none of its arguments.
func merge3[T any, K comparable](base, ours, theirs []T, key func(T) K, equal func(a, b T) bool, both func(base, ours, theirs T) T) []T {
	index := func(list []T) map[K]T {
		m := make(map[K]T, len(list))
		for _, v := range list {
			if _, dup := m[key(v)]; !dup {
				m[key(v)] = v
			}
		}
		return m
	}
	inBase, inOurs, inTheirs := index(base), index(ours), index(theirs)
	var out []T
	if theirs != nil {
		out = make([]T, 0, len(theirs))
	}
	for _, t := range theirs {
		k := key(t)
		b, wasBase := inBase[k]
		o, isOurs := inOurs[k]
		switch {
		case !wasBase || !equal(b, t): // theirs added or changed it
			if wasBase && isOurs && both != nil {
				t = both(b, o, t)
			}
			out = append(out, t)
		case !isOurs: // ours removed it
		case equal(b, o): // nobody changed it
			out = append(out, t)
		default: // ours changed it
			out = append(out, o)
		}
	}
	seen := map[K]bool{}
	for _, o := range ours {
		k := key(o)
		_, wasBase := inBase[k]
		_, isTheirs := inTheirs[k]
		if !wasBase && !isTheirs && !seen[k] { // ours added it
			out = append(out, o)
			seen[k] = true
		}
	}
	return out
}

// equalKeyed reports whether a and b hold the same keys with equal items,
// in any order.
func equalKeyed[T any, K comparable](a, b []T, key func(T) K, equal func(a, b T) bool) bool {
	m := make(map[K]T, len(a))
	for _, v := range a {
		m[key(v)] = v
	}
	n := 0
	for _, v := range b {
		w, ok := m[key(v)]
		if !ok || !equal(v, w) {
			return false
		}
		n++
	}
	return n == len(a) && len(m) == len(a)
}

func nsKey(nc NamespaceConfig) uint32                 { return nc.NSID }
func equalNS(a, b NamespaceConfig) bool               { return a == b }
func hostKey(h HostConfig) string                     { return h.NQN }
func equalHost(a, b HostConfig) bool                  { return a.identity() == b.identity() }
func subsysKey(sc SubsystemConfig) string             { return sc.NQN }
func listenerKey(l string) string                     { return l }
func equalListener(a, b string) bool                  { return a == b }
func equalBoolPtr(a, b *bool) bool                    { return a == nil && b == nil || a != nil && b != nil && *a == *b }
func allowsAnyHost(sc SubsystemConfig) (anyHost bool) { anyHost, _, _ = hostsOf(sc); return anyHost }

// equalSubsystem compares two subsystems' configurations the way Reload
// does: namespaces by NSID, hosts by NQN and secrets, in any order.
func equalSubsystem(a, b SubsystemConfig) bool {
	return a.NQN == b.NQN && a.Serial == b.Serial && a.Model == b.Model && a.MinCntlID == b.MinCntlID && a.MaxCntlID == b.MaxCntlID &&
		equalBoolPtr(a.AllowAnyHost, b.AllowAnyHost) &&
		equalKeyed(a.AllowedHosts, b.AllowedHosts, hostKey, equalHost) &&
		equalKeyed(a.Namespaces, b.Namespaces, nsKey, equalNS) && slices.Equal(a.ANAStates, b.ANAStates)
}

// mergeSubsystem merges a subsystem that the file (theirs) changed and
// that runs (ours) field by field: serial, model and allow_any_host are
// the file's where it changed them, namespaces (by NSID) and allowed
// hosts (by NQN) are merged with merge3. Where the merged host list and
// allow_any_host disagree (any host allowed with a list, or a list that
// does not say what the file changed allow_any_host to), the file's
// allow_any_host and allowed_hosts are taken together.
func mergeSubsystem(base, ours, theirs SubsystemConfig) SubsystemConfig {
	m := ours
	if base.Serial != theirs.Serial {
		m.Serial = theirs.Serial
	}
	if base.Model != theirs.Model {
		m.Model = theirs.Model
	}
	if base.MinCntlID != theirs.MinCntlID || base.MaxCntlID != theirs.MaxCntlID {
		m.MinCntlID, m.MaxCntlID = theirs.MinCntlID, theirs.MaxCntlID
	}
	if !equalBoolPtr(base.AllowAnyHost, theirs.AllowAnyHost) {
		m.AllowAnyHost = theirs.AllowAnyHost
	}
	if !slices.Equal(base.ANAStates, theirs.ANAStates) {
		m.ANAStates = theirs.ANAStates
	}
	m.AllowedHosts = merge3(base.AllowedHosts, ours.AllowedHosts, theirs.AllowedHosts, hostKey, equalHost, nil)
	m.Namespaces = merge3(base.Namespaces, ours.Namespaces, theirs.Namespaces, nsKey, equalNS, nil)
	wantAny := allowsAnyHost(ours)
	if allowsAnyHost(base) != allowsAnyHost(theirs) {
		wantAny = allowsAnyHost(theirs)
	}
	if m.AllowAnyHost != nil && *m.AllowAnyHost && len(m.AllowedHosts) > 0 || allowsAnyHost(m) != wantAny {
		m.AllowAnyHost, m.AllowedHosts = theirs.AllowAnyHost, theirs.AllowedHosts
	}
	return m
}

// mergeReload is what a reload of the file theirs runs: the three-way
// merge of the file last applied (base), the running configuration (ours,
// with the changes made at run time through Update) and theirs, all with
// NSIDs resolved. Subsystems (by NQN) merge with merge3 and
// mergeSubsystem, the listeners with merge3; the other settings are
// theirs, for planReload to keep those that need a restart as they run.
// With ours equal to base the result is theirs. It changes none of its
// arguments.
func mergeReload(base, ours, theirs *Config) *Config {
	m := *theirs
	m.Listeners = merge3(base.Listeners, ours.Listeners, theirs.Listeners, listenerKey, equalListener, nil)
	if equalKeyed(m.Listeners, ours.Listeners, listenerKey, equalListener) {
		m.Listeners = slices.Clone(ours.Listeners) // the same, in the running order
	}
	m.Subsystems = merge3(base.Subsystems, ours.Subsystems, theirs.Subsystems, subsysKey, equalSubsystem, mergeSubsystem)
	return &m
}

// resolveFile is resolveNSIDs for a reloaded file, cfg, made to compare
// with base, the file last applied (prev as given, base with its NSIDs
// resolved), and not to take run-time additions' places in ours, the
// running configuration. The NSIDs left 0 in a subsystem of base are the
// lowest free, in order, as resolveNSIDs numbers them, except that:
//
//   - they skip the NSIDs of namespaces that run but base lacks (added
//     through Update): a namespace added to the file without an NSID is
//     added beside those, not in place of one;
//   - one that base numbered otherwise than resolveNSIDs would have (by
//     that skipping) keeps its NSID, by its place among those left 0,
//     while free; and where the file left the subsystem's namespaces as
//     they were, they keep base's NSIDs;
//
// so that a file that changes nothing numbers its namespaces as before,
// whatever changed at run time meanwhile. Other subsystems are numbered
// as resolveNSIDs does.
func resolveFile(cfg, prev, base, ours *Config) *Config {
	out := cloneConfig(cfg)
	for i := range out.Subsystems {
		sc := &out.Subsystems[i]
		b, p := findSubsys(base, sc.NQN), findSubsys(prev, sc.NQN)
		if b == nil {
			resolveSubsystemNSIDs(sc, nil, nil)
			continue
		}
		var pinned map[int]uint32
		if p != nil && len(p.Namespaces) == len(b.Namespaces) {
			if slices.Equal(p.Namespaces, sc.Namespaces) {
				sc.Namespaces = slices.Clone(b.Namespaces)
				continue
			}
			plain := SubsystemConfig{Namespaces: slices.Clone(p.Namespaces)}
			resolveSubsystemNSIDs(&plain, nil, nil)
			pinned = map[int]uint32{}
			auto := 0
			for j, nc := range p.Namespaces {
				if nc.NSID != 0 {
					continue
				}
				if id := b.Namespaces[j].NSID; id != plain.Namespaces[j].NSID {
					pinned[auto] = id
				}
				auto++
			}
		}
		skip := map[uint32]bool{}
		if o := findSubsys(ours, sc.NQN); o != nil {
			for _, nc := range o.Namespaces {
				if findNS(b, nc.NSID) == nil {
					skip[nc.NSID] = true
				}
			}
		}
		resolveSubsystemNSIDs(sc, skip, pinned)
	}
	return out
}

// fileBase is what Reload records as the base of the next merge once the
// file theirs (NSIDs resolved) applied: theirs, with the listeners of the
// file last applied, old, which a reload does not change: so that each
// reload of a file whose listeners changed warns again that they need a
// restart, as it did before.
func fileBase(old, theirs *Config) *Config {
	b := cloneConfig(theirs)
	b.Listeners = slices.Clone(old.Listeners)
	b.DiscoveryListeners = slices.Clone(old.DiscoveryListeners)
	return b
}
