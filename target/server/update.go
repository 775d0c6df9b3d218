package server

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/flashpath/flashpath/target/rdma"
	"github.com/flashpath/flashpath/target/tcp"
)

// Applied returns a copy of the configuration running: what Start or the
// last Reload or Update applied, every namespace with its NSID.
func (s *Server) Applied() *Config {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	return resolveNSIDs(s.applied)
}

// ListenerAddr returns the address the listener l of the running
// configuration is bound to ("tcp://127.0.0.1:4420"), or "" if it does
// not run.
func (s *Server) ListenerAddr(l string) string {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	return s.lnSpec[l]
}

// Port is a running listener.
type Port struct {
	Trtype string // "tcp" or "rdma"
	Addr   string // the bound address, "127.0.0.1:4420"
	TLS    bool   // an NVMe/TCP listener that takes TLS
	// Discovery: a discovery-only listener (Config.DiscoveryListeners).
	Discovery bool
}

// Ports lists the running listeners.
func (s *Server) Ports() []Port {
	var out []Port
	s.ListenersLocked(func(tl []*tcp.Listener, rl []*rdma.Listener) {
		for _, ln := range tl {
			out = append(out, Port{"tcp", ln.Addr().String(), ln.TLS() != tcp.TLSOff, ln.DiscoveryOnly()})
		}
		for _, ln := range rl {
			out = append(out, Port{"rdma", ln.Addr().String(), false, false})
		}
	})
	return out
}

// Update changes the running configuration the way Reload applies a file:
// change edits a copy of the configuration running, which is validated,
// planned and applied like a reloaded file, so connected hosts get the
// same namespace-change notices. Unlike Reload, Update also applies
// changes to the listeners and the discovery-only listeners: new ones start before anything else changes,
// removed ones stop (closing their connections) once the rest applied.
//
// If change returns an error, the copy does not validate, a listener
// does not start or a new namespace's backend does not open, nothing
// changes and the error is returned. The SPDK JSON-RPC (package spdk)
// makes its changes through Update.
func (s *Server) Update(change func(cfg *Config) error) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	next := resolveNSIDs(s.applied)
	if err := change(next); err != nil {
		return err
	}
	if err := next.Validate(); err != nil {
		return err
	}
	cur := s.applied
	// Listeners, and discovery-only ones, that start and stop.
	type ln struct {
		l         string
		discovery bool
	}
	var added, removed []ln
	diff := func(from, to []string, discovery bool, out *[]ln) {
		for _, l := range to {
			if !slices.Contains(from, l) {
				*out = append(*out, ln{l, discovery})
			}
		}
	}
	diff(cur.Listeners, next.Listeners, false, &added)
	diff(cur.DiscoveryListeners, next.DiscoveryListeners, true, &added)
	diff(next.Listeners, cur.Listeners, false, &removed)
	diff(next.DiscoveryListeners, cur.DiscoveryListeners, true, &removed)
	start := func(x ln) error {
		if !x.discovery {
			return s.listen(next, x.l)
		}
		spec, err := parseDiscoveryListener(x.l)
		if err != nil {
			return err
		}
		return s.listenSpec(next, x.l, spec, true)
	}
	for i, x := range added {
		if err := start(x); err != nil {
			for _, x := range added[:i] {
				s.unlisten(context.Background(), x.l)
			}
			return fmt.Errorf("listener %s: %w (nothing changed)", x.l, err)
		}
		s.log.Info("listener added", "listener", x.l, "addr", s.ListenerAddr(x.l), "discovery_only", x.discovery)
	}
	// The plan compares the subsystems; the listeners are done here.
	base := *cur
	base.Listeners, base.DiscoveryListeners = next.Listeners, next.DiscoveryListeners
	p := planReload(&base, next)
	err := s.applyReload(p)
	if err != nil && s.applied == cur {
		// Nothing applied (a backend did not open): take the new
		// listeners down again.
		for _, x := range added {
			s.unlisten(context.Background(), x.l)
		}
		return err
	}
	errs := []error{err}
	for _, x := range removed {
		if err := s.unlisten(context.Background(), x.l); err != nil {
			errs = append(errs, fmt.Errorf("listener %s: %w", x.l, err))
		}
		s.log.Info("listener removed", "listener", x.l, "discovery_only", x.discovery)
	}
	return errors.Join(errs...)
}
