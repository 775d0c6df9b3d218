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
// changes to the listeners: new ones start before anything else changes,
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
	var added, removed []string
	for _, l := range next.Listeners {
		if !slices.Contains(cur.Listeners, l) {
			added = append(added, l)
		}
	}
	for _, l := range cur.Listeners {
		if !slices.Contains(next.Listeners, l) {
			removed = append(removed, l)
		}
	}
	for i, l := range added {
		if err := s.listen(next, l); err != nil {
			for _, l := range added[:i] {
				s.unlisten(context.Background(), l)
			}
			return fmt.Errorf("listener %s: %w (nothing changed)", l, err)
		}
		s.log.Info("listener added", "listener", l, "addr", s.ListenerAddr(l))
	}
	// The plan compares the subsystems; the listeners are done here.
	base := *cur
	base.Listeners = next.Listeners
	p := planReload(&base, next)
	err := s.applyReload(p)
	if err != nil && s.applied == cur {
		// Nothing applied (a backend did not open): take the new
		// listeners down again.
		for _, l := range added {
			s.unlisten(context.Background(), l)
		}
		return err
	}
	errs := []error{err}
	for _, l := range removed {
		if err := s.unlisten(context.Background(), l); err != nil {
			errs = append(errs, fmt.Errorf("listener %s: %w", l, err))
		}
		s.log.Info("listener removed", "listener", l)
	}
	return errors.Join(errs...)
}
