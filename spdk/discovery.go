package spdk

import (
	"slices"

	"github.com/flashpath/flashpath/target/server"
)

// A listener added to the discovery subsystem alone, as SPDK operators add
// NVMe/TCP's port 8009, is a discovery-only listener of the configuration
// (server.Config.DiscoveryListeners): hosts reach the discovery controller
// there and the discovery log lists the I/O listeners, not it. An address
// that is already an I/O listener serves discovery anyway (every
// flashpath listener does), and is left to the I/O listeners' rules.

// discoveryListener adds or removes the discovery-only listener want
// (nvmf_subsystem_add_listener / _remove_listener on the discovery NQN);
// done is false when want is an I/O listener's address, for the caller's
// rules to handle.
func (s *Server) discoveryListener(add bool, want string) (done bool, e *Error) {
	isIO := func(cfg *server.Config) bool {
		return slices.ContainsFunc(cfg.Listeners, func(x string) bool { return server.SameListener(x, want) })
	}
	if isIO(s.srv.Applied()) {
		return false, nil // an I/O listener: the caller's rules
	}
	e = s.update("discovery listener "+want, func(cfg *server.Config) *Error {
		if isIO(cfg) {
			return nil // became one meanwhile (a reload): the caller's rules
		}
		i := slices.IndexFunc(cfg.DiscoveryListeners, func(x string) bool { return server.SameListener(x, want) })
		switch {
		case add && i >= 0:
			return errorf(CodeInvalidParams, "Invalid parameters: listener %s exists on the discovery subsystem", want)
		case add:
			cfg.DiscoveryListeners = append(cfg.DiscoveryListeners, want)
		case i < 0:
			return errorf(CodeInvalidParams, "Invalid parameters: the discovery subsystem does not listen on %s (nvmf_get_subsystems lists its addresses)", want)
		case s.fileDisc[cfg.DiscoveryListeners[i]]:
			return errorf(CodeInvalidParams, "Invalid parameters: discovery listener %s is in the configuration file (discovery_listeners): remove it there and restart", want)
		default:
			cfg.DiscoveryListeners = slices.Delete(slices.Clone(cfg.DiscoveryListeners), i, i+1)
		}
		done = true
		return nil
	})
	return done, e
}
