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
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/initiator/kernel"
	// Discovery runs over the user-space host's transports.
	_ "github.com/flashpath/flashpath/initiator/rdma"
	_ "github.com/flashpath/flashpath/initiator/tcp"
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

// WatchFunc keeps a persistent connection to the discovery controller at
// addr until ctx ends, calling changed when the discovery log may have
// changed (a change notice, or a reconnect that may have missed one).
type WatchFunc func(ctx context.Context, addr string, opts initiator.Options, changed func())

// Agent keeps the configured subsystems connected.
type Agent struct {
	host     Host
	discover DiscoverFunc
	watch    WatchFunc
	log      *slog.Logger
	wake     chan struct{}              // a persistent discovery connection saw a change
	passed   func(why string, r Result) // OnPass

	mu      sync.Mutex
	cfg     *Config           // guarded by mu
	managed map[key]bool      // the subsystems of the last pass; guarded by mu
	paths   []key             // the subsystems the last pass wanted, in order; guarded by mu
	last    Result            // guarded by mu
	failing map[key]time.Time // connects failing since; guarded by mu

	passes, connects, connectErrors, discoveries, discoveryErrors atomic.Uint64
	// running: inside Run, where a failed connect is tried again (a lone
	// Reconcile, as --once makes, is not).
	running atomic.Bool
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
	a := &Agent{host: host, discover: discover, log: log, cfg: cfg, wake: make(chan struct{}, 1),
		managed: map[key]bool{}, failing: map[key]time.Time{}}
	a.watch = a.watchDiscovery
	return a
}

// OnPass sets a function Run calls after each of its passes, with why the
// pass ran ("start", "interval", "reload", "discovery log change", ...)
// and what it did. Set it before Run.
func (a *Agent) OnPass(f func(why string, r Result)) { a.passed = f }

// SetWatch replaces how persistent discovery connections are kept (tests).
func (a *Agent) SetWatch(w WatchFunc) { a.watch = w }

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
		HostNQN: host.nqn, HostID: host.id, NrIOQueues: o.NrIOQueues, QueueSize: o.QueueSize, NrPollQueues: o.NrPollQueues}
	// Whole seconds or Forever: Validate checked them.
	p.KeepAliveTmo, _ = o.KeepAliveTmo.Seconds()
	p.ReconnectDelay, _ = o.ReconnectDelay.Seconds()
	if o.CtrlLossTmo != nil {
		p.CtrlLossTmo, _ = o.CtrlLossTmo.Seconds()
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
		a.finish(res, want)
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
	a.finish(res, want)
	return res
}

func (a *Agent) finish(res Result, want []kernel.Params) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.last = res
	a.paths = make([]key, 0, len(want))
	for _, p := range want {
		a.managed[keyOf(p)] = true
		a.paths = append(a.paths, keyOf(p))
	}
}

// Path states, as the metrics report a wanted subsystem at its address.
const (
	PathConnected  = "connected"  // the kernel's controller is live
	PathConnecting = "connecting" // it is (re)connecting or resetting
	PathFailed     = "failed"     // no controller: the connect failed, or the kernel gave up
)

// PathState is a wanted subsystem at its address, and its state.
type PathState struct {
	NQN, Transport, TrAddr, TrSvcID string
	// Ctrl is the kernel's controller ("nvme3"), "" where there is none.
	Ctrl  string
	State string // PathConnected, PathConnecting or PathFailed
}

// Paths returns the state of each subsystem the last pass wanted, from
// the kernel's controllers ctrls (Host.Controllers).
func (a *Agent) Paths(ctrls []kernel.Controller) []PathState {
	a.mu.Lock()
	paths := a.paths
	a.mu.Unlock()
	have := map[key]*kernel.Controller{}
	for i := range ctrls {
		c := &ctrls[i]
		if !c.Fabrics() || strings.HasPrefix(c.State, "deleting") || c.State == "dead" {
			continue
		}
		// A live controller wins over another on the same path.
		if old := have[ctrlKey(c)]; old == nil || old.State != "live" {
			have[ctrlKey(c)] = c
		}
	}
	out := make([]PathState, 0, len(paths))
	for _, k := range paths {
		p := PathState{NQN: k.nqn, Transport: k.transport, TrAddr: k.traddr, TrSvcID: k.trsvcid, State: PathFailed}
		if c := have[k]; c != nil {
			p.Ctrl = c.Name
			p.State = PathConnecting
			if c.State == "live" {
				p.State = PathConnected
			}
		}
		out = append(out, p)
	}
	return out
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
	msg := "connect failed"
	if a.running.Load() {
		msg += ": trying again every interval"
	}
	a.log.Log(context.Background(), lvl, msg, "subsys", k.nqn,
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
// every Interval, whenever kick receives, and whenever a persistent
// discovery connection reports a change, until ctx ends.
func (a *Agent) Run(ctx context.Context, kick <-chan struct{}, ready func(Result)) {
	a.running.Store(true)
	defer a.running.Store(false)
	w := &watchers{a: a, running: map[string]*watcher{}}
	defer w.stopAll()
	w.sync(ctx, a.Config())
	res := a.Reconcile(ctx)
	a.log.Info("first pass done", "result", res.String())
	if ready != nil {
		ready(res)
	}
	if a.passed != nil {
		a.passed("start", res)
	}
	for {
		t := time.NewTimer(time.Duration(a.Config().Interval))
		why := "interval"
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-kick:
			why = "kick"
		case <-a.wake:
			why = "discovery log change"
		case <-t.C:
		}
		t.Stop()
		w.sync(ctx, a.Config())
		res := a.Reconcile(ctx)
		if len(res.Connected) > 0 || len(res.Errors) > 0 {
			a.log.Info("pass done", "result", res.String(), "why", why)
		}
		if a.passed != nil {
			a.passed(why, res)
		}
	}
}

// changed wakes Run for a pass (at most one waits).
func (a *Agent) changed() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// watchers are the persistent discovery connections Run keeps, one per
// configured discovery address.
type watchers struct {
	a       *Agent
	running map[string]*watcher
}

type watcher struct {
	cancel context.CancelFunc
	done   chan struct{}
}

// sync starts a watcher for each persistent discovery entry of cfg and
// stops those no longer configured.
func (w *watchers) sync(ctx context.Context, cfg *Config) {
	want := map[string]bool{}
	var opts *initiator.Options // the host identity, read when a watcher starts
	for _, d := range cfg.Discovery {
		if !d.persistent() {
			continue
		}
		_, host, port, _ := splitAddress(d.Address, initiator.DefaultDiscoveryPort)
		addr := net.JoinHostPort(host, port)
		want[addr] = true
		if w.running[addr] != nil {
			continue
		}
		if opts == nil {
			o, _, _, err := hostOptions(cfg, w.a.log)
			if err != nil {
				return // Reconcile reports it
			}
			o.Logger = slog.New(quiet{w.a.log.Handler()})
			opts = &o
		}
		o := *opts
		wctx, cancel := context.WithCancel(ctx)
		x := &watcher{cancel: cancel, done: make(chan struct{})}
		w.running[addr] = x
		go func() {
			defer close(x.done)
			w.a.watch(wctx, addr, o, w.a.changed)
		}()
	}
	for addr, x := range w.running {
		if !want[addr] {
			x.cancel()
			<-x.done
			delete(w.running, addr)
		}
	}
}

func (w *watchers) stopAll() {
	for _, x := range w.running {
		x.cancel()
	}
	for _, x := range w.running {
		<-x.done
	}
}

// watchDiscovery is the WatchFunc of the daemon: a persistent discovery
// connection (initiator.ConnectDiscovery: keep-alive, reconnects every
// interval) whose change notices and reconnects call changed. Where the
// controller offers no change notices it gives up (the interval's passes
// remain); where it cannot connect it tries again every interval.
func (a *Agent) watchDiscovery(ctx context.Context, addr string, opts initiator.Options, changed func()) {
	for {
		every := time.Duration(a.Config().Interval)
		c, err := initiator.ConnectDiscovery(ctx, initiator.Config{Addr: addr, Options: opts,
			KATO: 30 * time.Second, ReconnectDelay: every, CtrlLossTimeout: forever,
			Events: func(ev initiator.Event) {
				if ev.DiscoveryChanged() || ev.Reconnected {
					changed()
				}
			}})
		if err == nil {
			if c.Identify().OAES&nvmeof.OAESDiscoveryChange == 0 {
				a.log.Info("the discovery controller sends no change notices: reading it every interval", "addr", addr)
				c.Close()
				return
			}
			a.log.Info("persistent discovery connection: changes are picked up as they happen", "addr", addr)
			// What changed between the last read and the notices being
			// enabled would go unnoticed: one more pass.
			changed()
			<-ctx.Done()
			cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			c.CloseContext(cctx)
			cancel()
			return
		}
		a.log.Debug("persistent discovery connection failed: trying again every interval", "addr", addr, "err", err)
		t := time.NewTimer(every)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// forever is a ctrl-loss timeout that does not run out.
const forever = 100 * 365 * 24 * time.Hour

// quiet passes on warnings and errors only: a persistent discovery
// connection to a target that is down logs each reconnect attempt, which
// the agent's own connect failures already say.
type quiet struct{ slog.Handler }

func (q quiet) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelError && q.Handler.Enabled(ctx, l)
}

func (q quiet) WithAttrs(as []slog.Attr) slog.Handler { return quiet{q.Handler.WithAttrs(as)} }
func (q quiet) WithGroup(n string) slog.Handler       { return quiet{q.Handler.WithGroup(n)} }

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
