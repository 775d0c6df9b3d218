package server

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/flashpath/flashpath/internal/dhchap"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/backend"
)

// Reload applies a new configuration file to the running target, merging
// it with the changes made at run time (Update, the SPDK JSON-RPC): it
// applies what the file changed since the file last applied (by Start or
// the last Reload that succeeded), and keeps the rest as it runs. This is
// a three-way merge of the file last applied (base), the running
// configuration (Applied) and cfg:
//
//   - a subsystem (by NQN) added to the file is added, in the file's
//     version where one of that NQN was added at run time; one removed
//     from the file is removed; in one the file changed, the serial,
//     model and allow_any_host are the file's where the file changed
//     them, and namespaces (by NSID) and allowed hosts (by NQN) the file
//     added, changed or removed are the file's, the others as they run;
//   - what the file did not change stays as it runs, with the
//     subsystems, namespaces, hosts and listeners added or removed at
//     run time; so a reload with no change made at run time makes the
//     running configuration the file's, and one of the same file changes
//     nothing;
//   - namespaces the file leaves without an NSID are numbered as before
//     (the lowest free, in order), but skip the NSIDs of namespaces added
//     at run time to a subsystem of the file, and keep their NSIDs where
//     the file left the subsystem's namespaces as they were.
//
// The result is applied by difference with the running configuration:
// subsystems, namespaces and allowed hosts are added, removed or changed;
// everything else stays as it is, and connected hosts are told about
// namespace changes (Asynchronous Event, Changed Namespace List). A
// namespace whose backend, UUID or NGUID changed is removed and added
// again under the same NSID. Changes to the file's listeners, the metrics
// address, MaxH2CData or a subsystem's serial or model need a restart:
// they are logged and ignored.
//
// The backends of new namespaces, and the new backends of replaced ones,
// are opened first: if one fails to open, nothing changes. A replaced
// namespace whose new backend is the running one's (a change of UUID or
// NGUID only; a block device opens exclusively) is closed, then opened
// again; if that fails, the running namespace is put back as it was and
// the error returned with the rest applied. A reload that returns an
// error leaves the base of the next merge as it was, so the next reload
// tries the file's changes again.
func (s *Server) Reload(cfg *Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("reload: %w", err)
	}
	cfg.warnLooseKeys(s.log)
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	theirs := resolveFile(cfg, s.file, s.base, s.applied)
	if err := s.applyReload(planReload(s.applied, mergeReload(s.base, s.applied, theirs))); err != nil {
		return err
	}
	s.file, s.base = cloneConfig(cfg), fileBase(s.base, theirs)
	return nil
}

// reloadPlan is what Reload changes to go from the running configuration
// to a new one. planReload computes it without side effects; applyReload
// carries it out, in this order: log the changes that need a restart, open
// the new namespaces' backends, remove the subsystems that are gone, then
// go through the new configuration's subsystems.
type reloadPlan struct {
	// next is what runs once the plan is applied: the new configuration
	// with its NSIDs resolved and the changes that need a restart
	// reverted to the running values. applyReload drops from it what
	// fails to apply.
	next *Config
	// restart are the changes to the listeners, the metrics address and
	// max_h2c_data, which need a restart.
	restart []restartChange
	// removed are the NQNs of the running subsystems next lacks, in the
	// running order.
	removed []string
	// subsystems has one entry per subsystem of next, in its order.
	subsystems []subsystemPlan
}

// restartChange is a configuration change that needs a restart.
type restartChange struct {
	msg             string
	running, config any
}

// subsystemPlan is what changes in one subsystem of the new configuration.
type subsystemPlan struct {
	sc    *SubsystemConfig // in reloadPlan.next
	added bool             // not running: add it with all its namespaces
	// restart: the serial or model changed (reverted in sc), which needs
	// a restart.
	restart bool
	hosts   bool // the allowed hosts changed: set them from sc
	// changed are the running namespaces that are removed, or replaced
	// under the same NSID, in the running order.
	changed []namespaceChange
	// opened are the namespaces with NSIDs that are not running (every
	// namespace of an added subsystem), in sc's order: their backends open
	// before anything changes.
	opened []NamespaceConfig
}

// namespaceChange is a running namespace removed (new nil) or replaced.
type namespaceChange struct {
	old NamespaceConfig
	new *NamespaceConfig
}

// planReload compares the running configuration cur (NSIDs resolved) with
// a validated new one, cfg, and returns what Reload is to change. It
// changes neither.
func planReload(cur, cfg *Config) *reloadPlan {
	next := resolveNSIDs(cfg)
	p := &reloadPlan{next: next}
	if !slices.Equal(cur.Listeners, next.Listeners) {
		p.restart = append(p.restart, restartChange{"reload: listeners changed: restart to apply", cur.Listeners, next.Listeners})
		next.Listeners = cur.Listeners
	}
	if !slices.Equal(cur.DiscoveryListeners, next.DiscoveryListeners) {
		p.restart = append(p.restart, restartChange{"reload: discovery_listeners changed: restart to apply", cur.DiscoveryListeners, next.DiscoveryListeners})
		next.DiscoveryListeners = cur.DiscoveryListeners
	}
	if cur.RPCSocket != next.RPCSocket {
		p.restart = append(p.restart, restartChange{"reload: rpc_socket changed: restart to apply", cur.RPCSocket, next.RPCSocket})
		next.RPCSocket = cur.RPCSocket
	}
	if cur.Metrics != next.Metrics {
		p.restart = append(p.restart, restartChange{"reload: metrics address changed: restart to apply", cur.Metrics, next.Metrics})
		next.Metrics = cur.Metrics
	}
	if cur.MetricsMaxHosts != next.MetricsMaxHosts {
		p.restart = append(p.restart, restartChange{"reload: metrics_max_hosts changed: restart to apply", cur.MetricsMaxHosts, next.MetricsMaxHosts})
		next.MetricsMaxHosts = cur.MetricsMaxHosts
	}
	if cur.MaxH2CData != next.MaxH2CData {
		p.restart = append(p.restart, restartChange{"reload: max_h2c_data changed: restart to apply", cur.MaxH2CData, next.MaxH2CData})
		next.MaxH2CData = cur.MaxH2CData
	}
	if cur.BusyPollWindow() != next.BusyPollWindow() {
		p.restart = append(p.restart, restartChange{"reload: busy_poll changed: restart to apply", cur.BusyPollWindow(), next.BusyPollWindow()})
	}
	next.BusyPoll = cur.BusyPoll
	if cur.SendfileOn() != next.SendfileOn() {
		p.restart = append(p.restart, restartChange{"reload: sendfile changed: restart to apply", cur.SendfileOn(), next.SendfileOn()})
	}
	next.Sendfile = cur.Sendfile
	if cur.IOKeepAlive != next.IOKeepAlive {
		p.restart = append(p.restart, restartChange{"reload: io_keep_alive changed: restart to apply", cur.IOKeepAlive, next.IOKeepAlive})
	}
	next.IOKeepAlive = cur.IOKeepAlive
	if !slices.Equal(cur.DHCHAPHashes, next.DHCHAPHashes) || !slices.Equal(cur.DHCHAPDHGroups, next.DHCHAPDHGroups) {
		p.restart = append(p.restart, restartChange{"reload: dhchap_hashes or dhchap_dhgroups changed: restart to apply",
			[][]string{cur.DHCHAPHashes, cur.DHCHAPDHGroups}, [][]string{next.DHCHAPHashes, next.DHCHAPDHGroups}})
	}
	next.DHCHAPHashes, next.DHCHAPDHGroups = cur.DHCHAPHashes, cur.DHCHAPDHGroups
	curLim := []any{cur.BufferMemory, cur.MaxHostBuffer, cur.MaxConns, cur.MaxConnsPerHost, cur.ICTimeout, cur.ConnectTimeout, cur.SendTimeout}
	if nextLim := []any{next.BufferMemory, next.MaxHostBuffer, next.MaxConns, next.MaxConnsPerHost, next.ICTimeout, next.ConnectTimeout, next.SendTimeout}; !slices.Equal(curLim, nextLim) {
		p.restart = append(p.restart, restartChange{"reload: buffer or connection limits changed (buffer_memory, max_host_buffer, max_conns, max_conns_per_host, ic/connect/send_timeout): restart to apply", curLim, nextLim})
	}
	next.BufferMemory, next.MaxHostBuffer, next.MaxConns, next.MaxConnsPerHost = cur.BufferMemory, cur.MaxHostBuffer, cur.MaxConns, cur.MaxConnsPerHost
	next.ICTimeout, next.ConnectTimeout, next.SendTimeout = cur.ICTimeout, cur.ConnectTimeout, cur.SendTimeout
	for _, old := range cur.Subsystems {
		if findSubsys(next, old.NQN) == nil {
			p.removed = append(p.removed, old.NQN)
		}
	}
	for i := range next.Subsystems {
		sc := &next.Subsystems[i]
		old := findSubsys(cur, sc.NQN)
		sp := subsystemPlan{sc: sc, added: old == nil}
		for _, nc := range sc.Namespaces {
			if old == nil || findNS(old, nc.NSID) == nil {
				sp.opened = append(sp.opened, nc)
			}
		}
		if old != nil {
			if sc.Serial != old.Serial || sc.Model != old.Model || sc.MinCntlID != old.MinCntlID || sc.MaxCntlID != old.MaxCntlID {
				sp.restart = true
				sc.Serial, sc.Model, sc.MinCntlID, sc.MaxCntlID = old.Serial, old.Model, old.MinCntlID, old.MaxCntlID
			}
			oldAny, oldHosts, _ := hostsOf(*old)
			newAny, newHosts, _ := hostsOf(*sc)
			sp.hosts = oldAny != newAny || !slices.Equal(oldHosts, newHosts) || !slices.Equal(hostIdentities(*old), hostIdentities(*sc))
			for _, o := range old.Namespaces {
				n := findNS(sc, o.NSID)
				if n == nil || *n != o {
					sp.changed = append(sp.changed, namespaceChange{old: o, new: n})
				}
			}
		}
		p.subsystems = append(p.subsystems, sp)
	}
	return p
}

// applyReload carries out p on the running target and records p.next as
// what runs. The caller holds s.reloadMu.
func (s *Server) applyReload(p *reloadPlan) error {
	for _, c := range p.restart {
		s.log.Warn(c.msg, "running", c.running, "config", c.config)
	}

	// Open the backends of namespaces with new NSIDs before changing
	// anything. Replaced namespaces open after the old backend closed (a
	// block device is opened exclusively).
	type nsKey struct {
		nqn  string
		nsid uint32
	}
	opened := map[nsKey]target.NamespaceConfig{}   // new NSIDs
	replaced := map[nsKey]target.NamespaceConfig{} // new backends of running NSIDs
	openFirst := func(m map[nsKey]target.NamespaceConfig, nqn string, nc NamespaceConfig) error {
		tc, err := openNamespace(nc)
		if err != nil {
			for _, m := range []map[nsKey]target.NamespaceConfig{opened, replaced} {
				for _, tc := range m {
					tc.Backend.Close()
				}
			}
			return fmt.Errorf("reload: subsystem %s namespace %d: %w (nothing changed)", nqn, nc.NSID, err)
		}
		m[nsKey{nqn, nc.NSID}] = tc
		return nil
	}
	for _, sp := range p.subsystems {
		for _, nc := range sp.opened {
			if err := openFirst(opened, sp.sc.NQN, nc); err != nil {
				return err
			}
		}
		for _, c := range sp.changed {
			if c.new != nil && c.new.Backend != c.old.Backend {
				if err := openFirst(replaced, sp.sc.NQN, *c.new); err != nil {
					return err
				}
			}
		}
	}

	var errs []error
	failed := map[nsKey]bool{}
	for _, nqn := range p.removed {
		if err := s.Target.RemoveSubsystem(nqn); err != nil {
			errs = append(errs, err)
		}
		s.log.Info("reload: subsystem removed", "subsys", nqn)
	}
	for _, sp := range p.subsystems {
		sc := sp.sc
		if sp.added {
			ss, err := s.Target.AddSubsystem(subsystemConfig(*sc))
			if err != nil {
				errs = append(errs, fmt.Errorf("reload: %w", err))
				for _, nc := range sc.Namespaces {
					opened[nsKey{sc.NQN, nc.NSID}].Backend.Close()
				}
				sc.NQN = "" // dropped below
				continue
			}
			s.log.Info("reload: subsystem added", "subsys", sc.NQN)
			for _, nc := range sc.Namespaces {
				if err := s.attach(ss, nc, opened[nsKey{sc.NQN, nc.NSID}]); err != nil {
					errs = append(errs, fmt.Errorf("reload: subsystem %s: %w", sc.NQN, err))
					failed[nsKey{sc.NQN, nc.NSID}] = true
				}
			}
			continue
		}
		ss := s.Target.Subsystem(sc.NQN)
		if sp.restart {
			s.log.Warn("reload: serial, model or controller ID range changed: restart to apply", "subsys", sc.NQN)
		}
		if sp.hosts {
			newAny, newHosts, keys := hostsOf(*sc)
			ss.SetHostsTLS(newAny, newHosts, keys, tlsKeysOf(*sc))
			s.log.Info("reload: allowed hosts changed", "subsys", sc.NQN, "allow_any_host", newAny, "allowed_hosts", newHosts)
		}
		for _, c := range sp.changed {
			o, n := c.old, c.new
			if err := ss.RemoveNamespace(o.NSID); err != nil {
				errs = append(errs, fmt.Errorf("reload: %w", err))
			}
			if n == nil {
				s.log.Info("reload: namespace removed", "subsys", sc.NQN, "nsid", o.NSID, "backend", o.Backend)
				continue
			}
			s.log.Info("reload: namespace replaced", "subsys", sc.NQN, "nsid", o.NSID, "old_backend", o.Backend, "backend", n.Backend)
			tc, ok := replaced[nsKey{sc.NQN, n.NSID}]
			var err error
			if !ok {
				tc, err = openNamespace(*n)
			}
			if err == nil {
				err = s.attach(ss, *n, tc)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("reload: subsystem %s namespace %d: %w", sc.NQN, n.NSID, err))
				// Put the running namespace back as it was.
				otc, oerr := openNamespace(o)
				if oerr == nil {
					oerr = s.attach(ss, o, otc)
				}
				if oerr != nil {
					errs = append(errs, fmt.Errorf("reload: subsystem %s namespace %d: restoring %s: %w", sc.NQN, o.NSID, o.Backend, oerr))
					failed[nsKey{sc.NQN, n.NSID}] = true
				} else {
					*n = o // what runs
					s.log.Warn("reload: namespace kept as it was", "subsys", sc.NQN, "nsid", o.NSID, "backend", o.Backend, "err", err)
				}
			}
		}
		for _, nc := range sp.opened {
			if err := s.attach(ss, nc, opened[nsKey{sc.NQN, nc.NSID}]); err != nil {
				errs = append(errs, fmt.Errorf("reload: subsystem %s: %w", sc.NQN, err))
				failed[nsKey{sc.NQN, nc.NSID}] = true
			}
		}
	}
	// Record what runs now, so the next reload compares with it.
	next := p.next
	next.Subsystems = slices.DeleteFunc(next.Subsystems, func(sc SubsystemConfig) bool { return sc.NQN == "" })
	for i := range next.Subsystems {
		sc := &next.Subsystems[i]
		sc.Namespaces = slices.DeleteFunc(sc.Namespaces, func(nc NamespaceConfig) bool { return failed[nsKey{sc.NQN, nc.NSID}] })
	}
	s.applied = next
	s.applyANA(next)
	return errors.Join(errs...)
}

// subsystemConfig turns a subsystem's configuration into the core's.
func subsystemConfig(sc SubsystemConfig) target.SubsystemConfig {
	anyHost, hosts, keys := hostsOf(sc)
	return target.SubsystemConfig{NQN: sc.NQN, Serial: sc.Serial, Model: sc.Model, AllowAnyHost: anyHost, AllowedHosts: hosts, Keys: keys, TLSKeys: tlsKeysOf(sc),
		MinCntlID: sc.MinCntlID, MaxCntlID: sc.MaxCntlID}
}

// tlsKeysOf returns the TLS PSKs of the hosts that have one.
func tlsKeysOf(sc SubsystemConfig) map[string]dhchap.PSK {
	var keys map[string]dhchap.PSK
	for _, h := range sc.AllowedHosts {
		if h.tls != nil {
			if keys == nil {
				keys = map[string]dhchap.PSK{}
			}
			keys[h.NQN] = *h.tls
		}
	}
	return keys
}

// hostsOf returns whether any host may connect, the sorted allow list and
// the DH-HMAC-CHAP keys of the hosts that must authenticate.
func hostsOf(sc SubsystemConfig) (bool, []string, map[string]target.HostKeys) {
	anyHost := len(sc.AllowedHosts) == 0
	if sc.AllowAnyHost != nil {
		anyHost = *sc.AllowAnyHost
	}
	var hosts []string
	var keys map[string]target.HostKeys
	for _, h := range sc.AllowedHosts {
		hosts = append(hosts, h.NQN)
		if h.keys != nil {
			if keys == nil {
				keys = map[string]target.HostKeys{}
			}
			keys[h.NQN] = *h.keys
		}
	}
	slices.Sort(hosts)
	return anyHost, slices.Compact(hosts), keys
}

// hostIdentities lists the hosts with their secrets, sorted, so that a
// reload that changes only a key applies it.
func hostIdentities(sc SubsystemConfig) []string {
	var ids []string
	for _, h := range sc.AllowedHosts {
		ids = append(ids, h.identity())
	}
	slices.Sort(ids)
	return ids
}

// openNamespace opens a namespace's backend.
func openNamespace(nc NamespaceConfig) (target.NamespaceConfig, error) {
	be, err := backend.Parse(nc.Backend)
	if err != nil {
		return target.NamespaceConfig{}, err
	}
	tc := target.NamespaceConfig{NSID: nc.NSID, Backend: be, ANAGroup: nc.ANAGroup, PTPLFile: nc.PTPLFile}
	if nc.UUID != "" {
		tc.UUID, _ = parseHex16(nc.UUID) // validated
	}
	if nc.NGUID != "" {
		tc.NGUID, _ = parseHex16(nc.NGUID)
	}
	return tc, nil
}

// attach adds an opened namespace to a subsystem, closing the backend if
// that fails.
func (s *Server) attach(ss *target.Subsystem, nc NamespaceConfig, tc target.NamespaceConfig) error {
	ns, err := ss.AddNamespace(tc)
	if err != nil {
		tc.Backend.Close()
		return err
	}
	be := tc.Backend
	attrs := []any{"subsys", ss.NQN(), "nsid", ns.ID, "backend", nc.Backend,
		"kind", be.Kind(), "size", be.Size(), "block_size", be.BlockSize(), "volatile_write_cache", be.VolatileWriteCache()}
	if f, ok := be.(*backend.File); ok {
		// How I/O reaches the drive: the first thing to check when a file
		// or block namespace is slower than the device.
		io := "io_uring"
		if !f.AsyncIO() {
			io = "sync (pread/pwrite, one I/O in flight per queue)"
		}
		attrs = append(attrs, "direct", f.Direct(), "io", io)
	}
	s.log.Info("namespace added", attrs...)
	if f, ok := be.(*backend.File); ok {
		s.warnShared(ss, ns, f)
	}
	return nil
}

// warnShared logs when namespace ns's file or device is also another
// namespace's: the target does not coordinate writes through the two (or
// their caches), so hosts that write both corrupt each other's data.
func (s *Server) warnShared(ss *target.Subsystem, ns *target.Namespace, f *backend.File) {
	fi, err := os.Stat(f.Path())
	if err != nil {
		return
	}
	for _, oss := range s.Target.Subsystems() {
		for _, ons := range oss.Namespaces() {
			of, ok := ons.Backend.(*backend.File)
			if !ok || ons == ns {
				continue
			}
			if ofi, err := os.Stat(of.Path()); err == nil && os.SameFile(fi, ofi) {
				s.log.Warn("the same file is exported as two namespaces: writes through one are not coordinated with the other; export it once, or read-only (?ro) in both",
					"subsys", ss.NQN(), "nsid", ns.ID, "path", f.Path(), "also_subsys", oss.NQN(), "also_nsid", ons.ID)
			}
		}
	}
}

// resolveNSIDs returns a deep copy of cfg in which every namespace has its
// NSID: those left 0 get the lowest IDs no other namespace of the subsystem
// names, in order. Reload matches namespaces by NSID.
func resolveNSIDs(cfg *Config) *Config {
	out := cloneConfig(cfg)
	for i := range out.Subsystems {
		resolveSubsystemNSIDs(&out.Subsystems[i], nil, nil)
	}
	return out
}

// resolveSubsystemNSIDs gives the namespaces of sc with NSID 0 IDs that
// neither another namespace of sc nor skip names: the one at index i
// among them pinned[i] if that is free, the others the lowest free, in
// order.
func resolveSubsystemNSIDs(sc *SubsystemConfig, skip map[uint32]bool, pinned map[int]uint32) {
	used := map[uint32]bool{}
	for id := range skip {
		used[id] = true
	}
	for _, nc := range sc.Namespaces {
		used[nc.NSID] = true
	}
	var auto []*NamespaceConfig
	for j := range sc.Namespaces {
		if sc.Namespaces[j].NSID == 0 {
			auto = append(auto, &sc.Namespaces[j])
		}
	}
	for i, nc := range auto {
		if id, ok := pinned[i]; ok && !used[id] {
			nc.NSID = id
			used[id] = true
		}
	}
	next := uint32(1)
	for _, nc := range auto {
		if nc.NSID != 0 {
			continue
		}
		for used[next] {
			next++
		}
		nc.NSID = next
		used[next] = true
	}
}

// cloneConfig returns a copy of cfg that shares none of the lists Reload
// and Update change.
func cloneConfig(cfg *Config) *Config {
	out := *cfg
	out.Listeners = slices.Clone(cfg.Listeners)
	out.DiscoveryListeners = slices.Clone(cfg.DiscoveryListeners)
	out.Subsystems = slices.Clone(cfg.Subsystems)
	for i := range out.Subsystems {
		sc := &out.Subsystems[i]
		sc.AllowedHosts = slices.Clone(sc.AllowedHosts)
		sc.Namespaces = slices.Clone(sc.Namespaces)
	}
	return &out
}

func findSubsys(cfg *Config, nqn string) *SubsystemConfig {
	for i := range cfg.Subsystems {
		if cfg.Subsystems[i].NQN == nqn {
			return &cfg.Subsystems[i]
		}
	}
	return nil
}

func findNS(sc *SubsystemConfig, nsid uint32) *NamespaceConfig {
	for i := range sc.Namespaces {
		if sc.Namespaces[i].NSID == nsid {
			return &sc.Namespaces[i]
		}
	}
	return nil
}
