package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/flashpath/flashpath/initiator/agent"
	"github.com/flashpath/flashpath/initiator/kernel"
	"github.com/flashpath/flashpath/internal/daemon"
	"github.com/flashpath/flashpath/internal/units"
)

func init() { register(newInitiatorCmd) }

// kernelHost is the kernel NVMe host the initiator drives (a fake tree in
// tests).
var kernelHost agent.Host = kernel.Default

// discoveryConf is nvme-cli's discovery.conf, used when no other source
// is given (a variable for tests).
var discoveryConf = agent.DefaultDiscoveryConf

type initiatorFlags struct {
	discoveryConf    string
	discover         []string
	connect          []string
	interval         units.Duration
	once             bool
	disconnectOnStop bool
	nrIOQueues       int
	nrPollQueues     int
	ctrlLossTmo      units.Duration
	reconnectDelay   units.Duration
	keepAliveTmo     units.Duration
	hostNQN, hostID  string
	daemonFlags
}

func newInitiatorCmd() *cobra.Command {
	var f initiatorFlags
	cmd := &cobra.Command{
		Use:   "initiator",
		Short: "Keep NVMe-oF subsystems connected through the Linux kernel host (daemon)",
		Long: `Connect NVMe-oF subsystems through the Linux kernel host, as nvme
connect-all does, and keep them connected: every --interval, on SIGHUP and
as soon as a discovery controller (held on a persistent connection) reports
a change, the discovery logs are read again, and subsystems added since or
controllers the kernel gave up on (ctrl_loss_tmo expired) are connected.
Their namespaces are block devices (/dev/nvmeXnY) that any process can use;
cuFile reads files on them straight into GPU memory. With nothing else
given it reads nvme-cli's /etc/nvme/discovery.conf.

It runs until SIGTERM or SIGINT (READY=1 to systemd after the first pass),
re-reads --config on SIGHUP, and leaves the subsystems connected when it
stops unless disconnect_on_stop is set. --once makes one pass and exits
(non-zero when a discovery or connect failed). --metrics serves the
controllers' state and the namespaces' I/O counters to Prometheus.`,
		Example: `  flashpath initiator --discover tcp://10.0.0.5 --once
  flashpath initiator --connect tcp://10.0.0.5:4420/nqn.2026-11.io.example:ssd --metrics 127.0.0.1:9421
  flashpath initiator --config /etc/flashpath/initiator.yaml`,
		Args: cobra.NoArgs,
		RunE: daemonRunE(&f.daemonFlags, f.toConfig, func(cmd *cobra.Command, cfg *agent.Config, log *slog.Logger, say notice, reload func() (*agent.Config, error)) error {
			return runInitiator(cmd, &f, cfg, log, say, reload)
		}),
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", "", "YAML or JSON configuration file (discovery, connect, defaults, interval, metrics)")
	fl.StringArrayVar(&f.discover, "discover", nil, "discovery controller tcp://HOST[:PORT] (port 8009 by default), repeatable: connect every subsystem it lists")
	fl.StringVar(&f.discoveryConf, "discovery-conf", "", "nvme-cli's discovery.conf to read discovery controllers from (used by default, at "+agent.DefaultDiscoveryConf+", when nothing else is given)")
	fl.StringArrayVar(&f.connect, "connect", nil, "subsystem tcp://HOST[:PORT]/NQN or rdma://HOST[:PORT]/NQN (port 4420 by default), repeatable")
	durationVar(fl, &f.interval, "interval", agent.DefaultInterval, "how often to read discovery again and connect what is missing (600, 600s, 10m)")
	fl.BoolVar(&f.once, "once", false, "one pass, then exit")
	fl.BoolVar(&f.disconnectOnStop, "disconnect-on-stop", false, "disconnect the subsystems on SIGTERM")
	fl.IntVar(&f.nrIOQueues, "nr-io-queues", 0, "I/O queues per controller (default: the kernel's, one per CPU)")
	fl.IntVar(&f.nrPollQueues, "nr-poll-queues", 0, "polled I/O queues per controller, for io_uring IOPOLL (fio's hipri)")
	durationVar(fl, &f.ctrlLossTmo, "ctrl-loss-tmo", 0, "how long the kernel keeps reconnecting a lost controller, in whole seconds (600, 600s, 10m); -1 forever (default: the kernel's, 600)")
	durationVar(fl, &f.reconnectDelay, "reconnect-delay", 0, "wait between the kernel's reconnect attempts, whole seconds (10, 10s) (default: the kernel's, 10)")
	durationVar(fl, &f.keepAliveTmo, "keep-alive-tmo", 0, "keep-alive timeout, whole seconds (5, 5s) (default: the kernel's)")
	fl.StringVar(&f.hostNQN, "hostnqn", "", "host NQN (default: /etc/nvme/hostnqn or one derived from the machine ID)")
	fl.StringVar(&f.hostID, "hostid", "", "host identifier UUID (default: /etc/nvme/hostid or the UUID of the host NQN)")
	f.daemonFlags.add(fl, "127.0.0.1:9421")
	return cmd
}

func (f *initiatorFlags) toConfig(cmd *cobra.Command) (*agent.Config, error) {
	fl := cmd.Flags()
	if f.config != "" {
		for _, name := range []string{"discover", "discovery-conf", "connect", "nr-io-queues", "nr-poll-queues", "ctrl-loss-tmo", "reconnect-delay", "keep-alive-tmo", "hostnqn", "hostid", "interval"} {
			if fl.Changed(name) {
				return nil, fmt.Errorf("--config cannot be combined with --%s: put it in the file", name)
			}
		}
		cfg, err := agent.Load(f.config)
		if err != nil {
			return nil, err
		}
		if f.metrics != "" {
			cfg.Metrics = f.metrics
		}
		cfg.DisconnectOnStop = cfg.DisconnectOnStop || f.disconnectOnStop
		return cfg, nil
	}
	for name, d := range map[string]units.Duration{"interval": f.interval, "reconnect-delay": f.reconnectDelay, "keep-alive-tmo": f.keepAliveTmo} {
		if err := notForever(name, d); err != nil {
			return nil, err
		}
	}
	for name, d := range map[string]units.Duration{"ctrl-loss-tmo": f.ctrlLossTmo, "reconnect-delay": f.reconnectDelay, "keep-alive-tmo": f.keepAliveTmo} {
		if _, err := d.Seconds(); err != nil {
			return nil, fmt.Errorf("--%s %w", name, err)
		}
	}
	cfg := &agent.Config{HostNQN: f.hostNQN, HostID: f.hostID, Interval: f.interval,
		Metrics: f.metrics, DisconnectOnStop: f.disconnectOnStop}
	cfg.Defaults = agent.ConnectOptions{NrIOQueues: f.nrIOQueues, NrPollQueues: f.nrPollQueues, ReconnectDelay: f.reconnectDelay, KeepAliveTmo: f.keepAliveTmo}
	if fl.Changed("ctrl-loss-tmo") {
		cfg.Defaults.CtrlLossTmo = new(f.ctrlLossTmo)
	}
	for _, d := range f.discover {
		cfg.Discovery = append(cfg.Discovery, agent.DiscoveryConfig{Address: d})
	}
	for _, c := range f.connect {
		addr, nqn, err := splitConnect(c)
		if err != nil {
			return nil, fmt.Errorf("--connect %q: %w", c, err)
		}
		cfg.Connect = append(cfg.Connect, agent.ConnectConfig{Address: addr, NQN: nqn})
	}
	conf := f.discoveryConf
	if conf == "" && len(cfg.Discovery) == 0 && len(cfg.Connect) == 0 {
		// As nvme connect-all without arguments.
		if _, err := os.Stat(discoveryConf); err == nil {
			conf = discoveryConf
		}
	}
	if conf != "" {
		if err := cfg.AddDiscoveryConf(conf); err != nil {
			return nil, err
		}
	}
	if err := cfg.Validate(); err != nil {
		if len(cfg.Discovery) == 0 && len(cfg.Connect) == 0 {
			return nil, errors.New("nothing to connect: give --discover tcp://HOST, --connect tcp://HOST:PORT/NQN, --config FILE or --discovery-conf FILE (" + agent.DefaultDiscoveryConf + " is read when present)")
		}
		return nil, err
	}
	return cfg, nil
}

// splitConnect splits "tcp://HOST[:PORT]/NQN".
func splitConnect(s string) (addr, nqn string, err error) {
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		scheme, rest = "tcp", s
	}
	hostPort, nqn, ok := strings.Cut(rest, "/")
	if !ok || nqn == "" {
		return "", "", errors.New("want tcp://HOST[:PORT]/NQN")
	}
	return scheme + "://" + hostPort, nqn, nil
}

// runInitiator runs the agent until SIGTERM or SIGINT (one pass with --once).
func runInitiator(cmd *cobra.Command, f *initiatorFlags, cfg *agent.Config, log *slog.Logger, say notice, reload func() (*agent.Config, error)) error {
	a := agent.New(cfg, kernelHost, nil, log)
	if f.once {
		res := a.Reconcile(cmd.Context())
		if !say.json { // with JSON logs the agent's "connected" records say it
			for _, name := range res.Connected {
				fmt.Fprintf(say.out, "connected %s\n", name)
			}
		}
		say.say(res.String()+"\n", "pass done", "result", res.String())
		return errors.Join(res.Errors...)
	}
	sig := daemon.CatchSignals()
	var metrics *daemon.Metrics
	if cfg.Metrics != "" {
		m, err := daemon.ServeMetrics(cfg.Metrics, f.pprof, log, agent.NewCollector(a))
		if err != nil {
			sig.Stop()
			return fmt.Errorf("metrics: %w", err)
		}
		metrics = m
	}
	kick := make(chan struct{})
	hup := func(ctx context.Context) {
		if reload == nil {
			log.Info("SIGHUP: no --config to re-read: checking the connections now")
		} else if next, err := reload(); err != nil {
			log.Error("reload failed: keeping the running configuration", "err", err)
			return
		} else {
			a.SetConfig(next)
			log.Info("SIGHUP: configuration reloaded")
		}
		select {
		case kick <- struct{}{}:
		case <-ctx.Done():
		}
	}
	sig.Run(cmd.Context(), log, hup, func(ctx context.Context) {
		a.Run(ctx, kick, func(res agent.Result) {
			if err := daemon.Notify("READY=1\nSTATUS=" + res.String()); err != nil {
				log.Warn("sd_notify failed", "err", err)
			}
		})
	})
	err := a.Stop()
	if metrics != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err = errors.Join(err, metrics.Shutdown(sctx))
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}
