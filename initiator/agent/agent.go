// Package agent is the initiator daemon (`flashpath initiator`): it keeps
// a GPU node's NVMe-oF subsystems connected through the Linux kernel host,
// so that their namespaces are block devices every process can use
// (cuFile reads files on them straight into GPU memory), and exports their
// state and I/O counters as Prometheus metrics.
//
// Like nvme-cli's connect-all and its autoconnect service, it reads the
// discovery logs of the configured discovery controllers and connects
// every subsystem listed (or those configured directly); unlike a one-shot
// connect-all it checks again every Interval: subsystems added on the
// target since, and controllers the kernel gave up on (ctrl_loss_tmo
// expired), are connected again. Transient losses are the kernel's to
// handle (reconnect_delay, ctrl_loss_tmo).
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/initiator/kernel"
	"github.com/flashpath/flashpath/nvmeof"
)

// Host is what the agent needs of the kernel host; *kernel.Host is one.
type Host interface {
	Connect(kernel.Params) (string, error)
	Disconnect(name string) error
	Controllers() ([]kernel.Controller, error)
	Stat(dev string) (kernel.BlockStat, error)
}

var _ Host = (*kernel.Host)(nil)

// DiscoverFunc reads a discovery log; initiator.Discover is one.
type DiscoverFunc func(ctx context.Context, addr string, opts initiator.Options) (nvmeof.DiscoveryLog, error)

// Agent keeps the configured subsystems connected.
type Agent struct {
	host     Host
	discover DiscoverFunc
	log      *slog.Logger

	mu      sync.Mutex
	cfg     *Config           // guarded by mu
	managed map[key]bool      // the subsystems of the last pass; guarded by mu
	last    Result            // guarded by mu
	source  map[key]string    // where each wanted subsystem came from; guarded by mu
	failing map[key]time.Time // connects failing since; guarded by mu

	passes, connects, connectErrors, discoveries, discoveryErrors atomic.Uint64
}

// New returns an agent for cfg (validated) on host; discover nil means
// initiator.Discover, log nil slog.Default().
func New(cfg *Config, host Host, discover DiscoverFunc, log *slog.Logger) *Agent {
	if discover == nil {
		discover = initiator.Discover
	}
	if log == nil {
		log = slog.Default()
	}
	return &Agent{host: host, discover: discover, log: log, cfg: cfg,
		managed: map[key]bool{}, source: map[key]string{}, failing: map[key]time.Time{}}
}

// SetConfig replaces the configuration (a reload); the next pass applies
// it. Subsystems no longer configured stay connected.
func (a *Agent) SetConfig(cfg *Config) {
	a.mu.Lock()
	a.cfg = cfg
	a.mu.Unlock()
}

// Config returns the configuration in use.
func (a *Agent) Config() *Config {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cfg
}

// key identifies a subsystem at an address, as the kernel refuses a
// second connection to it.
type key struct{ transport, traddr, trsvcid, nqn string }

func (k key) String() string {
	return fmt.Sprintf("%s at %s://%s:%s", k.nqn, k.transport, k.traddr, k.trsvcid)
}

func keyOf(p kernel.Params) key { return key{p.Transport, p.TrAddr, p.TrSvcID, p.NQN} }

func ctrlKey(c *kernel.Controller) key { return key{c.Transport, c.TrAddr, c.TrSvcID, c.SubNQN} }

// Result is one pass's outcome.
type Result struct {
	Wanted    int      // subsystems configured or discovered
	Connected []string // controllers connected by this pass ("nvme3")
	Already   int      // wanted subsystems already connected (or reconnecting)
	Errors    []error  // failed discoveries and connects
}

func (r Result) String() string {
	s := fmt.Sprintf("%d subsystems: %d connected now, %d already connected", r.Wanted, len(r.Connected), r.Already)
	if len(r.Errors) > 0 {
		s += fmt.Sprintf(", %d errors", len(r.Errors))
	}
	return s
}

// Last returns the latest pass's outcome.
func (a *Agent) Last() Result {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.last
}

// wanted builds the connect parameters of every configured and discovered
// subsystem; failed discoveries are returned as errors (their subsystems
// are left as they are).
func (a *Agent) wanted(ctx context.Context, cfg *Config) ([]kernel.Params, map[key]string, []error) {
	var out []kernel.Params
	src := map[key]string{}
	var errs []error
	add := func(p kernel.Params, from string) {
		k := keyOf(p)
		if _, dup := src[k]; dup {
			return
		}
		src[k] = from
		out = append(out, p)
	}
	hostOpts, nqn, id, err := hostOptions(cfg, a.log)
	if err != nil {
		return out, src, append(errs, err)
	}
	me := hostIdentity{nqn, id}
	for _, c := range cfg.Connect {
		tr, host, port, _ := splitAddress(c.Address, initiator.DefaultPort)
		add(params(me, tr, host, port, c.NQN, c.ConnectOptions.or(cfg.Defaults)), "connect "+c.Address)
	}
	for _, d := range cfg.Discovery {
		a.discoveries.Add(1)
		_, host, port, _ := splitAddress(d.Address, initiator.DefaultDiscoveryPort)
		dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		dl, err := a.discover(dctx, "tcp://"+net.JoinHostPort(host, port), hostOpts)
		cancel()
		if err != nil {
			a.discoveryErrors.Add(1)
			errs = append(errs, fmt.Errorf("discovery at %s: %w", d.Address, err))
			continue
		}
		only := map[string]bool{}
		for _, n := range d.Subsystems {
			only[n] = true
		}
		for _, e := range dl.Entries {
			if e.SubType != nvmeof.SubTypeNVM || (len(only) > 0 && !only[e.SubNQN]) {
				continue
			}
			var tr string
			switch e.TrType {
			case nvmeof.TrTypeTCP:
				tr = "tcp"
			case nvmeof.TrTypeRDMA:
				tr = "rdma"
			default:
				a.log.Debug("discovery entry skipped: transport not tcp or rdma", "subsys", e.SubNQN, "trtype", e.TrType)
				continue
			}
			add(params(me, tr, e.TrAddr, e.TrSvcID, e.SubNQN, d.ConnectOptions.or(cfg.Defaults)), "discovery "+d.Address)
		}
	}
	return out, src, errs
}

type hostIdentity struct{ nqn, id string }

// hostOptions are the host identity of the discovery client and of the
// kernel's connects: the configured one, else nvme-cli's files or one
// derived from the machine (the same for both).
func hostOptions(cfg *Config, log *slog.Logger) (o initiator.Options, nqn, hostID string, err error) {
	o = initiator.Options{HostNQN: cfg.HostNQN, Logger: log}
	if cfg.HostID != "" {
		if o.HostID, err = initiator.ParseHostID(cfg.HostID); err != nil {
			return o, "", "", fmt.Errorf("hostid: %w", err)
		}
	}
	nqn, hostID, err = o.HostIdentity()
	if err != nil {
		return o, "", "", fmt.Errorf("host identity: %w", err)
	}
	o.HostNQN = nqn
	return o, nqn, hostID, nil
}

func params(host hostIdentity, transport, traddr, trsvcid, nqn string, o ConnectOptions) kernel.Params {
	p := kernel.Params{Transport: transport, TrAddr: traddr, TrSvcID: trsvcid, NQN: nqn,
		HostNQN: host.nqn, HostID: host.id, NrIOQueues: o.NrIOQueues, QueueSize: o.QueueSize,
		KeepAliveTmo: o.KeepAliveTmo, ReconnectDelay: o.ReconnectDelay}
	if o.CtrlLossTmo != nil {
		p.CtrlLossTmo = *o.CtrlLossTmo
	}
	p.HdrDigest = o.HdrDigest != nil && *o.HdrDigest
	p.DataDigest = o.DataDigest != nil && *o.DataDigest
	return p
}

// Reconcile runs one pass: reads the discovery logs, lists the kernel's
// controllers and connects every wanted subsystem that has none.
func (a *Agent) Reconcile(ctx context.Context) Result {
	a.passes.Add(1)
	cfg := a.Config()
	want, src, errs := a.wanted(ctx, cfg)
	res := Result{Wanted: len(want), Errors: errs}
	for _, err := range errs {
		a.log.Warn("discovery failed: its subsystems are left as they are", "err", err)
	}
	ctrls, err := a.host.Controllers()
	if err != nil {
		res.Errors = append(res.Errors, err)
		a.log.Error("list the kernel's controllers", "err", err)
		a.finish(res, want, src)
		return res
	}
	have := map[key]string{}
	for i := range ctrls {
		c := &ctrls[i]
		// A controller being deleted will be gone; one in any other state
		// is the kernel's (live, or reconnecting within ctrl_loss_tmo).
		if c.Fabrics() && !strings.HasPrefix(c.State, "deleting") && c.State != "dead" {
			have[ctrlKey(c)] = c.Name
		}
	}
	for _, p := range want {
		k := keyOf(p)
		if name, ok := have[k]; ok {
			res.Already++
			a.clearFailing(k, name)
			continue
		}
		if ctx.Err() != nil {
			res.Errors = append(res.Errors, ctx.Err())
			break
		}
		name, err := a.host.Connect(p)
		if err != nil {
			a.connectErrors.Add(1)
			res.Errors = append(res.Errors, err)
			a.logFailure(k, src[k], err)
			continue
		}
		a.connects.Add(1)
		res.Connected = append(res.Connected, name)
		a.clearFailing(k, name)
		a.log.Info("connected", "ctrl", name, "subsys", p.NQN, "transport", p.Transport,
			"traddr", p.TrAddr, "trsvcid", p.TrSvcID, "from", src[k])
	}
	a.finish(res, want, src)
	return res
}

func (a *Agent) finish(res Result, want []kernel.Params, src map[key]string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.last = res
	for _, p := range want {
		a.managed[keyOf(p)] = true
	}
	a.source = src
}

// logFailure logs a failed connect once when it starts failing, then at
// debug level, so that a target down for an hour does not flood the log.
func (a *Agent) logFailure(k key, from string, err error) {
	a.mu.Lock()
	_, known := a.failing[k]
	if !known {
		a.failing[k] = time.Now()
	}
	a.mu.Unlock()
	lvl := slog.LevelWarn
	if known {
		lvl = slog.LevelDebug
	}
	a.log.Log(context.Background(), lvl, "connect failed: trying again every interval", "subsys", k.nqn,
		"transport", k.transport, "traddr", k.traddr, "trsvcid", k.trsvcid, "from", from, "err", err)
}

func (a *Agent) clearFailing(k key, name string) {
	a.mu.Lock()
	since, was := a.failing[k]
	delete(a.failing, k)
	a.mu.Unlock()
	if was {
		a.log.Info("connect works again", "subsys", k.nqn, "ctrl", name, "failed_for", time.Since(since).Round(time.Second))
	}
}

// Run makes a pass at once, calls ready with its result, then makes one
// every Interval and whenever kick receives, until ctx ends.
func (a *Agent) Run(ctx context.Context, kick <-chan struct{}, ready func(Result)) {
	res := a.Reconcile(ctx)
	a.log.Info("first pass done", "result", res.String())
	if ready != nil {
		ready(res)
	}
	for {
		t := time.NewTimer(time.Duration(a.Config().Interval))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-kick:
			t.Stop()
		case <-t.C:
		}
		res := a.Reconcile(ctx)
		if len(res.Connected) > 0 || len(res.Errors) > 0 {
			a.log.Info("pass done", "result", res.String())
		}
	}
}

// Stop disconnects the subsystems the agent manages when the configuration
// says disconnect_on_stop; otherwise it leaves them connected.
func (a *Agent) Stop() error {
	cfg := a.Config()
	if !cfg.DisconnectOnStop {
		return nil
	}
	ctrls, err := a.host.Controllers()
	if err != nil {
		return err
	}
	a.mu.Lock()
	managed := make(map[key]bool, len(a.managed))
	for k := range a.managed {
		managed[k] = true
	}
	a.mu.Unlock()
	var errs []error
	for i := range ctrls {
		c := &ctrls[i]
		if !c.Fabrics() || !managed[ctrlKey(c)] {
			continue
		}
		if err := a.host.Disconnect(c.Name); err != nil {
			errs = append(errs, err)
			continue
		}
		a.log.Info("disconnected", "ctrl", c.Name, "subsys", c.SubNQN)
	}
	return errors.Join(errs...)
}

// Managed lists the subsystems the agent has been asked to keep connected,
// sorted, as "NQN at tcp://ADDR:PORT".
func (a *Agent) Managed() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []string
	for k := range a.managed {
		out = append(out, k.String())
	}
	sort.Strings(out)
	return out
}
