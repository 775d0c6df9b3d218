package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/flashpath/flashpath/internal/daemon"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/rdma"
	"github.com/flashpath/flashpath/target/tcp"
)

// Server is a running target: the core, its listeners and the metrics endpoint.
type Server struct {
	Target    *target.Target
	Listeners []*tcp.Listener
	RDMA      []*rdma.Listener
	metrics   *daemon.Metrics
	log       *slog.Logger

	reloadMu sync.Mutex
	applied  *Config // the configuration running, NSIDs resolved; guarded by reloadMu
}

// Options for Start.
type Options struct {
	Logger      *slog.Logger
	FirmwareRev string
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
	hashes, groups, err := cfg.authOptions()
	if err != nil {
		return nil, err
	}
	mem, perHost, err := cfg.limits()
	if err != nil {
		return nil, err
	}
	s.Target = target.New(target.Options{Logger: opts.Logger, FirmwareRev: opts.FirmwareRev, IOKeepAlive: cfg.IOKeepAlive.Duration(),
		AuthHashes: hashes, AuthDHGroups: groups, BufferMemory: mem, MaxHostBuffer: perHost})
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
	for i, l := range cfg.Listeners {
		spec, _ := parseListener(l)
		trtype, addr := spec.trtype, spec.addr
		if trtype == "rdma" {
			ln, err := rdma.Listen(s.Target, addr, rdma.Options{Logger: opts.Logger, MaxConns: cfg.MaxConns, MaxConnsPerAddr: cfg.MaxConnsPerHost})
			if err != nil {
				return nil, fmt.Errorf("listeners[%d]: %w", i, err)
			}
			s.RDMA = append(s.RDMA, ln)
			continue
		}
		ln, err := tcp.Listen(s.Target, addr, tcp.Options{MaxH2CData: cfg.MaxH2CData, BusyPoll: cfg.BusyPollWindow(), Logger: opts.Logger,
			MaxConns: cfg.MaxConns, MaxConnsPerAddr: cfg.MaxConnsPerHost, TLS: spec.tls,
			ICTimeout: cfg.ICTimeout.Duration(), ConnectTimeout: cfg.ConnectTimeout.Duration(), SendTimeout: cfg.SendTimeout.Duration()})
		if err != nil {
			return nil, fmt.Errorf("listeners[%d]: %w", i, err)
		}
		s.Listeners = append(s.Listeners, ln)
	}
	if cfg.Metrics != "" {
		if err := s.serveMetrics(cfg.Metrics, cfg.Pprof); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return s, nil
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
	for _, ln := range s.Listeners {
		errs = append(errs, ln.Shutdown(ctx))
	}
	for _, ln := range s.RDMA {
		errs = append(errs, ln.Shutdown(ctx))
	}
	if s.Target != nil {
		errs = append(errs, s.Target.Close())
	}
	if s.metrics != nil {
		errs = append(errs, s.metrics.Shutdown(ctx))
	}
	return errors.Join(errs...)
}
