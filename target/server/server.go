package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"syscall"

	"github.com/flashpath/flashpath/internal/daemon"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/rdma"
	"github.com/flashpath/flashpath/target/tcp"
)

// Server is a running target: the core, its listeners and the metrics endpoint.
type Server struct {
	Target *target.Target
	// Listeners and RDMA are the running listeners. Update adds and
	// removes them at run time: read them under ListenersLocked, or
	// before the first Update.
	Listeners []*tcp.Listener
	RDMA      []*rdma.Listener
	metrics   *daemon.Metrics
	log       *slog.Logger

	lnMu   sync.Mutex
	lnSpec map[string]string // listener config string → its bound address; guarded by lnMu

	reloadMu sync.Mutex
	applied  *Config // the configuration running, NSIDs resolved; guarded by reloadMu
	// file and base are the configuration file last applied, by Start or
	// a Reload that succeeded: as given, and with its NSIDs resolved (as
	// fileBase records it): the base of Reload's three-way merge. Update
	// leaves them. Guarded by reloadMu.
	file, base *Config
}

// Options for Start.
type Options struct {
	Logger      *slog.Logger
	FirmwareRev string
}

// listenError names the listener that failed and, where its port is
// taken, what to do; more is added to that advice.
func listenError(field string, err error, more string) error {
	if errors.Is(err, syscall.EADDRINUSE) {
		return fmt.Errorf("%s: %w: another process (a second target?) listens there: stop it, or choose another port%s", field, err, more)
	}
	return fmt.Errorf("%s: %w", field, err)
}

// Start builds the target from cfg and starts listening. On error,
// everything started so far is closed again.
func Start(cfg *Config, opts Options) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Server{log: opts.Logger}
	cfg.warnLooseKeys(s.log)
	hashes, groups, err := cfg.authOptions()
	if err != nil {
		return nil, err
	}
	mem, perHost, err := cfg.limits()
	if err != nil {
		return nil, err
	}
	s.Target = target.New(target.Options{Logger: opts.Logger, FirmwareRev: opts.FirmwareRev, IOKeepAlive: cfg.IOKeepAlive.Duration(),
		AuthHashes: hashes, AuthDHGroups: groups, BufferMemory: mem, MaxHostBuffer: perHost, MaxHostMetrics: cfg.MetricsMaxHosts})
	defer func() {
		if err != nil {
			s.Shutdown(context.Background())
		}
	}()
	applied := resolveNSIDs(cfg)
	for i, sc := range applied.Subsystems {
		ss, err := s.Target.AddSubsystem(subsystemConfig(sc))
		if err != nil {
			return nil, fmt.Errorf("subsystems[%d]: %w", i, err)
		}
		for j, nc := range sc.Namespaces {
			tc, err := openNamespace(nc)
			if err != nil {
				return nil, fmt.Errorf("subsystems[%d].namespaces[%d].backend: %w", i, j, err)
			}
			if err := s.attach(ss, nc, tc); err != nil {
				return nil, fmt.Errorf("subsystems[%d].namespaces[%d]: %w", i, j, err)
			}
		}
	}
	s.applied = applied
	s.file, s.base = cloneConfig(cfg), resolveNSIDs(cfg)
	for i, l := range cfg.Listeners {
		if err := s.listen(cfg, l); err != nil {
			return nil, listenError(fmt.Sprintf("listeners[%d]", i), err, "")
		}
	}
	for i, l := range cfg.DiscoveryListeners {
		spec, err := parseDiscoveryListener(l)
		if err == nil {
			err = s.listenSpec(cfg, l, spec, true)
		}
		if err != nil {
			return nil, listenError(fmt.Sprintf("discovery_listeners[%d]", i), err, ", or turn the discovery service off (--discovery-listen off)")
		}
	}
	s.applyANA(applied)
	if cfg.Metrics != "" {
		if err := s.serveMetrics(cfg.Metrics, cfg.Pprof); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return s, nil
}

// listen starts the listener l of cfg.
func (s *Server) listen(cfg *Config, l string) error {
	spec, err := parseListener(l)
	if err != nil {
		return err
	}
	return s.listenSpec(cfg, l, spec, false)
}

// listenSpec starts the listener l, parsed as spec; discovery makes it a
// discovery-only NVMe/TCP listener (Config.DiscoveryListeners).
func (s *Server) listenSpec(cfg *Config, l string, spec listenerSpec, discovery bool) error {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	if s.lnSpec == nil {
		s.lnSpec = map[string]string{}
	}
	if spec.trtype == "rdma" {
		ln, err := rdma.Listen(s.Target, spec.addr, rdma.Options{Logger: s.log, MaxConns: cfg.MaxConns, MaxConnsPerAddr: cfg.MaxConnsPerHost})
		if err != nil {
			return err
		}
		s.RDMA = append(s.RDMA, ln)
		s.lnSpec[l] = "rdma://" + ln.Addr().String()
		return nil
	}
	ln, err := tcp.Listen(s.Target, spec.addr, tcp.Options{MaxH2CData: cfg.MaxH2CData, BusyPoll: cfg.BusyPollWindow(), NoSendfile: !cfg.SendfileOn(), Logger: s.log,
		MaxConns: cfg.MaxConns, MaxConnsPerAddr: cfg.MaxConnsPerHost, TLS: spec.tls, DiscoveryOnly: discovery,
		ICTimeout: cfg.ICTimeout.Duration(), ConnectTimeout: cfg.ConnectTimeout.Duration(), SendTimeout: cfg.SendTimeout.Duration()})
	if err != nil {
		return err
	}
	s.Listeners = append(s.Listeners, ln)
	s.lnSpec[l] = "tcp://" + ln.Addr().String()
	return nil
}

// unlisten stops the listener l (a configuration string that listen
// started), closing its connections.
func (s *Server) unlisten(ctx context.Context, l string) error {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	bound, ok := s.lnSpec[l]
	if !ok {
		return nil
	}
	delete(s.lnSpec, l)
	for i, ln := range s.Listeners {
		if "tcp://"+ln.Addr().String() == bound {
			s.Listeners = slices.Delete(s.Listeners, i, i+1)
			return ln.Shutdown(ctx)
		}
	}
	for i, ln := range s.RDMA {
		if "rdma://"+ln.Addr().String() == bound {
			s.RDMA = slices.Delete(s.RDMA, i, i+1)
			return ln.Shutdown(ctx)
		}
	}
	return nil
}

// ListenersLocked calls f with the running listeners, which Update does
// not change meanwhile.
func (s *Server) ListenersLocked(f func(tcp []*tcp.Listener, rdma []*rdma.Listener)) {
	s.lnMu.Lock()
	defer s.lnMu.Unlock()
	f(s.Listeners, s.RDMA)
}

func (s *Server) serveMetrics(addr string, profiles bool) error {
	m, err := daemon.ServeMetrics(addr, profiles, s.log, newCollector(s))
	if err != nil {
		return err
	}
	s.metrics = m
	return nil
}

// MetricsAddr returns the metrics endpoint's address, or nil.
func (s *Server) MetricsAddr() net.Addr {
	if s.metrics == nil {
		return nil
	}
	return s.metrics.Addr()
}

// Shutdown stops the listeners (closing every connection), flushes and
// closes every namespace, and stops the metrics endpoint.
func (s *Server) Shutdown(ctx context.Context) error {
	var errs []error
	s.lnMu.Lock()
	for _, ln := range s.Listeners {
		errs = append(errs, ln.Shutdown(ctx))
	}
	for _, ln := range s.RDMA {
		errs = append(errs, ln.Shutdown(ctx))
	}
	s.Listeners, s.RDMA, s.lnSpec = nil, nil, nil
	s.lnMu.Unlock()
	if s.Target != nil {
		errs = append(errs, s.Target.Close())
	}
	if s.metrics != nil {
		errs = append(errs, s.metrics.Shutdown(ctx))
	}
	return errors.Join(errs...)
}
