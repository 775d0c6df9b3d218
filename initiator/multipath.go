package initiator

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flashpath/flashpath/nvmeof"
)

// Multipath is one namespace reached through several controllers of its
// subsystem (paths: targets or ports), as the Linux host's native
// multipath: I/O goes to a path whose ANA state is optimized (to the one
// with the fewest commands in flight, round robin among equals), to a
// non-optimized one when no path is optimized, and fails over to another
// path without an error to the caller when its path's connection is lost
// or the path turns inaccessible. A lost path reconnects in the
// background (Config.ReconnectDelay, CtrlLossTimeout) and takes I/O again
// once it is back and accessible.
//
// Its blocking methods are Namespace's and may be called from many
// goroutines. Asynchronous users (the bench) take a queue with Pick and
// report failures with PathFailed.
type Multipath struct {
	nsid   uint32
	paths  []*Path
	geo    *Namespace // the geometry every path agrees on
	rr     atomic.Uint32
	noPath time.Duration
	log    *slog.Logger

	mu      sync.Mutex
	changed chan struct{} // guarded by mu: closed and replaced on any path change
	done    chan struct{}
	wg      sync.WaitGroup
	closed  sync.Once
}

// Path is one controller of a Multipath.
type Path struct {
	m        *Multipath
	addr     string // as configured: set before the controller connects
	ctrl     *Controller
	ns       *Namespace
	ana      atomic.Uint32 // nvmeof.ANAState on this path's port
	inflight atomic.Int64
}

// PathInfo is a path's state, for output and metrics.
type PathInfo struct {
	Addr      string // the controller's address, tcp://HOST:PORT
	Connected bool
	ANA       nvmeof.ANAState
	InFlight  int64 // commands the Multipath has in flight on it
	Gone      error // why the path will not come back (ctrl-loss-tmo, Close)
}

// Usable reports whether the path takes I/O now.
func (i PathInfo) Usable() bool { return i.Connected && i.ANA.Accessible() && i.Gone == nil }

// State names the path's connection as nvme-cli's list-subsys does: live,
// connecting (down, reconnecting) or gone (it will not come back).
func (i PathInfo) State() string {
	switch {
	case i.Gone != nil:
		return "gone"
	case !i.Connected:
		return "connecting"
	}
	return "live"
}

// ConnectMultipath connects one controller per configuration (one per
// path; the same subsystem NQN on each) and opens namespace nsid through
// all of them. Paths that do not connect are left out with a log line;
// at least one must connect. The paths must lead to the same namespace:
// the same size and block size and, where the controllers report them,
// the same NGUID and EUI-64.
func ConnectMultipath(ctx context.Context, cfgs []Config, nsid uint32) (*Multipath, error) {
	if len(cfgs) == 0 {
		return nil, errors.New("multipath: no paths given")
	}
	m := &Multipath{nsid: nsid, changed: make(chan struct{}), done: make(chan struct{}),
		log: cfgs[0].Logger}
	if m.log == nil {
		m.log = slog.Default()
	}
	var errs []error
	for i := range cfgs {
		cfg := cfgs[i]
		if cfg.SubNQN != cfgs[0].SubNQN {
			m.closeAll()
			return nil, fmt.Errorf("multipath: path %s names subsystem %s, path %s names %s: every path must lead to the same subsystem",
				cfg.Addr, cfg.SubNQN, cfgs[0].Addr, cfgs[0].SubNQN)
		}
		m.noPath = max(m.noPath, cfg.CtrlLossTimeout)
		p := &Path{m: m, addr: cfg.Addr}
		user := cfg.Events
		cfg.Events = func(ev Event) {
			p.event(ev)
			if user != nil {
				user(ev)
			}
		}
		c, err := Connect(ctx, cfg)
		if err == nil {
			p.ctrl = c
			err = p.open(ctx, nsid)
			if err != nil {
				c.Close()
			}
		}
		if err != nil {
			m.log.Warn("multipath: path left out", "addr", cfg.Addr, "nsid", nsid, "err", err)
			errs = append(errs, fmt.Errorf("path %s: %w", cfg.Addr, err))
			continue
		}
		if len(m.paths) > 0 {
			if err := samePath(m.paths[0], p); err != nil {
				c.Close()
				m.closeAll()
				return nil, err
			}
		}
		m.paths = append(m.paths, p)
	}
	if len(m.paths) == 0 {
		return nil, fmt.Errorf("multipath: no path to namespace %d connected: %w", nsid, errors.Join(errs...))
	}
	if m.noPath <= 0 {
		m.noPath = 60 * time.Second
	}
	m.geo = m.paths[0].ns
	for _, p := range m.paths[1:] {
		if p.ns.maxXfer < m.geo.maxXfer {
			m.geo = p.ns
		}
	}
	for _, p := range m.paths {
		m.wg.Add(1)
		go p.watch()
	}
	return m, nil
}

// open opens the namespace on p's controller and reads its ANA state.
func (p *Path) open(ctx context.Context, nsid uint32) error {
	ns, err := p.ctrl.Namespace(ctx, nsid)
	if err != nil {
		return err
	}
	p.ns = ns
	st := nvmeof.ANAOptimized
	if p.ctrl.Identify().CMIC&nvmeof.CMICANA != 0 {
		if st, err = p.ctrl.ANAState(ctx, nsid); err != nil {
			return err
		}
	}
	// A notice that came during the bring-up is newer than what was read.
	p.ana.CompareAndSwap(0, uint32(st))
	return nil
}

// samePath checks that b leads to a's namespace.
func samePath(a, b *Path) error {
	ia, ib := a.ns.info, b.ns.info
	what := ""
	switch {
	case a.ns.size != b.ns.size || a.ns.blockSize != b.ns.blockSize:
		what = fmt.Sprintf("%d bytes in %d-byte blocks against %d in %d-byte blocks", a.ns.size, a.ns.blockSize, b.ns.size, b.ns.blockSize)
	case ia.NGUID != ib.NGUID:
		what = fmt.Sprintf("NGUID %x against %x", ia.NGUID, ib.NGUID)
	case ia.EUI64 != ib.EUI64:
		what = fmt.Sprintf("EUI-64 %x against %x", ia.EUI64, ib.EUI64)
	default:
		return nil
	}
	return fmt.Errorf("multipath: %s and %s do not lead to the same namespace %d (%s): export the same backing storage with the same identifiers on every path",
		a.addr, b.addr, a.ns.id, what)
}

// ID returns the NSID.
func (m *Multipath) ID() uint32 { return m.nsid }

// BlockSize returns the logical block size in bytes.
func (m *Multipath) BlockSize() int { return m.geo.blockSize }

// Size returns the capacity in bytes.
func (m *Multipath) Size() int64 { return m.geo.size }

// MaxTransfer returns the most bytes one command moves on every path.
func (m *Multipath) MaxTransfer() int { return m.geo.maxXfer }

// Paths returns the paths, in the order they were given.
func (m *Multipath) Paths() []*Path { return m.paths }

// States returns the state of every path, in the order they were given.
func (m *Multipath) States() []PathInfo {
	out := make([]PathInfo, len(m.paths))
	for i, p := range m.paths {
		out[i] = p.Info()
	}
	return out
}

// Controller returns the path's controller.
func (p *Path) Controller() *Controller { return p.ctrl }

// Namespace returns the namespace as the path's controller sees it.
func (p *Path) Namespace() *Namespace { return p.ns }

// Info returns the path's state.
func (p *Path) Info() PathInfo {
	return PathInfo{Addr: p.addr, Connected: p.session() != nil, ANA: nvmeof.ANAState(p.ana.Load()),
		InFlight: p.inflight.Load(), Gone: p.gone()}
}

// String names the path for logs: its address.
func (p *Path) String() string { return p.addr }

// session is the path's connected session, nil while it is down.
func (p *Path) session() *session {
	s := p.ctrl.up.Load()
	if s == nil {
		return nil
	}
	select {
	case <-s.failed:
		return nil
	default:
		return s
	}
}

// rank orders usable paths: optimized before non-optimized; 0 is not usable.
func (p *Path) rank() int {
	switch nvmeof.ANAState(p.ana.Load()) {
	case nvmeof.ANAOptimized:
		return 2
	case nvmeof.ANANonOptimized:
		return 1
	}
	return 0
}

// gone reports why the path will never take I/O again, or nil.
func (p *Path) gone() error {
	p.ctrl.mu.Lock()
	lost := p.ctrl.lost
	p.ctrl.mu.Unlock()
	if lost != nil {
		return lost
	}
	if !p.ctrl.reconnects() {
		s := p.ctrl.pub.Load()
		select {
		case <-s.failed:
			return fmt.Errorf("connection lost and reconnecting is off: %w", s.failErr)
		default:
		}
	}
	return nil
}

// InFlight counts commands an asynchronous user sent on the path (Pick's
// caller adds, its reaper subtracts), so the choice of path sees them.
func (p *Path) InFlight(delta int64) { p.inflight.Add(delta) }

// event takes the path's controller's asynchronous events: an ANA change
// notice carries the new log; after a reconnect the state is read again
// (notices sent while the path was down are lost). The first notices may
// come before Connect returns: only addr and the Multipath are used until
// a reconnect, which comes after.
func (p *Path) event(ev Event) {
	switch {
	case ev.ANAChanged() && ev.Err == nil && ev.ANA != nil:
		p.setANA(*ev.ANA)
	case ev.Reconnected:
		p.m.wg.Add(1)
		go func() {
			defer p.m.wg.Done()
			p.refreshANA()
		}()
	}
}

// setANA takes the path's state from an ANA log page.
func (p *Path) setANA(l nvmeof.ANALog) {
	for _, g := range l.Groups {
		if slices.Contains(g.NSIDs, p.m.nsid) {
			if old := nvmeof.ANAState(p.ana.Swap(uint32(g.State))); old != g.State {
				p.m.log.Info("multipath: path state changed", "addr", p.addr, "nsid", p.m.nsid, "from", old, "to", g.State)
			}
			p.m.notify()
			return
		}
	}
}

// refreshANA reads the path's ANA state again; a path whose log cannot be
// read (or that no longer lists the namespace) is inaccessible.
func (p *Path) refreshANA() {
	if p.ctrl.Identify().CMIC&nvmeof.CMICANA == 0 {
		p.m.notify()
		return
	}
	ctx, cancel := p.ctrl.adminCtx(context.Background())
	defer cancel()
	l, err := p.ctrl.ANALog(ctx, false)
	if err == nil && slices.ContainsFunc(l.Groups, func(g nvmeof.ANAGroupDesc) bool { return slices.Contains(g.NSIDs, p.m.nsid) }) {
		p.setANA(l)
		return
	}
	p.m.log.Warn("multipath: ANA state unreadable: path set inaccessible", "addr", p.addr, "nsid", p.m.nsid, "err", err)
	p.ana.Store(uint32(nvmeof.ANAInaccessible))
	p.m.notify()
}

// watch wakes the Multipath's waiters each time the path's controller
// connects, loses its connection or is gone.
func (p *Path) watch() {
	defer p.m.wg.Done()
	for {
		_, changed := p.ctrl.Connected()
		p.m.notify()
		select {
		case <-changed:
		case <-p.m.done:
			return
		}
	}
}

// Changed returns a channel closed at the next change of any path's
// state (connected, lost, ANA state), for those who show or wait for it.
func (m *Multipath) Changed() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

// notify wakes everyone waiting for a usable path.
func (m *Multipath) notify() {
	m.mu.Lock()
	close(m.changed)
	m.changed = make(chan struct{})
	m.mu.Unlock()
}

// ErrNoPath is wrapped by the error of an operation that found no usable
// path to its namespace.
var ErrNoPath = errors.New("no usable path")

// Pick returns the path new I/O should go to and its connected I/O
// queues: among connected paths, optimized before non-optimized, the one
// with the fewest commands in flight, round robin among equals. When no
// path is usable it waits (bounded by ctx and by the paths' largest
// CtrlLossTimeout) for one to reconnect or turn accessible, and fails
// with ErrNoPath when every path is gone or the wait ends.
func (m *Multipath) Pick(ctx context.Context) (*Path, []*Queue, error) {
	p, s, err := m.pick(ctx)
	if err != nil {
		return nil, nil, err
	}
	return p, s.io, nil
}

func (m *Multipath) pick(ctx context.Context) (*Path, *session, error) {
	var deadline *time.Timer
	defer func() {
		if deadline != nil {
			deadline.Stop()
		}
	}()
	for {
		m.mu.Lock()
		changed := m.changed
		m.mu.Unlock()
		if p, s := m.best(); p != nil {
			return p, s, nil
		}
		var why []error
		for _, p := range m.paths {
			if err := p.gone(); err != nil {
				why = append(why, fmt.Errorf("%s: %w", p.addr, err))
			}
		}
		if len(why) == len(m.paths) {
			return nil, nil, fmt.Errorf("%w to namespace %d: every path is gone: %w", ErrNoPath, m.nsid, errors.Join(why...))
		}
		if deadline == nil {
			deadline = time.NewTimer(m.noPath)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("%w to namespace %d: %w (%s)", ErrNoPath, m.nsid, ctx.Err(), m.describe())
		case <-deadline.C:
			return nil, nil, fmt.Errorf("%w to namespace %d within %v (%s)", ErrNoPath, m.nsid, m.noPath, m.describe())
		case <-m.done:
			return nil, nil, fmt.Errorf("%w to namespace %d: %w", ErrNoPath, m.nsid, ErrClosed)
		}
	}
}

// best is the usable path of the highest rank with the fewest commands in
// flight, starting the scan at a rotating path so equals take turns.
func (m *Multipath) best() (*Path, *session) {
	n := len(m.paths)
	start := int(m.rr.Add(1))
	var best *Path
	var bs *session
	rank, load := 0, int64(0)
	for i := range n {
		p := m.paths[(start+i)%n]
		r := p.rank()
		if r == 0 || r < rank {
			continue
		}
		l := p.inflight.Load()
		if r == rank && l >= load {
			continue
		}
		s := p.session()
		if s == nil || len(s.io) == 0 {
			continue
		}
		best, bs, rank, load = p, s, r, l
	}
	return best, bs
}

// describe lists each path's state for an error.
func (m *Multipath) describe() string {
	var b []byte
	for i, p := range m.paths {
		if i > 0 {
			b = append(b, ", "...)
		}
		in := p.Info()
		b = fmt.Appendf(b, "%s %s %s", in.Addr, in.State(), in.ANA)
	}
	return string(b)
}

// PathFailed tells the Multipath that I/O on p failed with err: a path
// related status makes it read p's ANA state again (a path that turned
// inaccessible takes no more I/O until a notice says otherwise); a lost
// connection needs no report (the path is down until it reconnects). It
// returns whether the I/O should be sent again on another path.
func (m *Multipath) PathFailed(p *Path, err error) bool {
	if IsPathError(err) {
		m.log.Warn("multipath: path refused I/O: failing over", "addr", p.addr, "nsid", m.nsid, "err", err)
		p.refreshANA()
		return true
	}
	return false
}

// maxFailovers bounds how often one operation moves to another path.
func (m *Multipath) maxFailovers() int { return (MaxRetries + 1) * len(m.paths) }

// run runs f on the best path and, each time a path fails under it (lost
// connection, path related status), on the next best one.
func (m *Multipath) run(op string, c ioCall) error {
	off := c.off
	var last error
	for try := 0; try <= m.maxFailovers(); try++ {
		p, s, err := m.pick(context.Background())
		if err != nil {
			if last != nil {
				return fmt.Errorf("%s at %d: %w (after %w)", op, off, err, last)
			}
			return fmt.Errorf("%s at %d: %w", op, off, err)
		}
		p.inflight.Add(1)
		lost, err := c.on(p.ns, s)
		p.inflight.Add(-1)
		switch {
		case err == nil:
			return nil
		case lost:
			m.log.Warn("multipath: connection lost under I/O: failing over", "addr", p.addr, "nsid", m.nsid, "op", op, "err", err)
		case !m.PathFailed(p, err):
			return err
		}
		last = err
	}
	return fmt.Errorf("%w (failed over %d times)", last, m.maxFailovers())
}

func (m *Multipath) geometry() *Namespace { return m.geo }

// ReadAt reads len(p) bytes at off; both must be multiples of the block size.
func (m *Multipath) ReadAt(p []byte, off int64) (int, error) {
	if err := doIO(m, OpRead, p, 0, off, len(p), false, false); err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteAt writes p at off; both must be multiples of the block size.
func (m *Multipath) WriteAt(p []byte, off int64) (int, error) {
	if err := doIO(m, OpWrite, p, 0, off, len(p), false, false); err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteAtFUA writes p at off with Force Unit Access.
func (m *Multipath) WriteAtFUA(p []byte, off int64) (int, error) {
	if err := doIO(m, OpWrite, p, 0, off, len(p), true, false); err != nil {
		return 0, err
	}
	return len(p), nil
}

// ReadDevice reads length bytes at off into device memory at addr,
// registered with the transport through any path's controller
// (Controller.RegisterDevice: registrations are the transport's, and
// every path of a Multipath runs on the same one). See
// Namespace.ReadDevice.
func (m *Multipath) ReadDevice(addr uint64, length int, off int64) error {
	return deviceIO(m, OpRead, addr, length, off)
}

// WriteDevice writes length bytes of registered device memory at addr at
// off. See Namespace.WriteDevice.
func (m *Multipath) WriteDevice(addr uint64, length int, off int64) error {
	return deviceIO(m, OpWrite, addr, length, off)
}

// Compare compares p with the data at off (see Namespace.Compare).
func (m *Multipath) Compare(p []byte, off int64) error {
	return doIO(m, OpCompare, p, 0, off, len(p), false, false)
}

// WriteZeroes zeroes length bytes at off.
func (m *Multipath) WriteZeroes(off int64, length int64) error {
	if length > int64(int(^uint(0)>>1)) {
		return fmt.Errorf("write zeroes: length %d too large", length)
	}
	return doIO(m, OpWriteZeroes, nil, 0, off, int(length), false, false)
}

// Flush makes every completed write durable. It goes to one path: the
// paths share the namespace's storage, so one Flush covers writes
// completed on any of them.
func (m *Multipath) Flush() error { return flushIO(m) }

// Deallocate deallocates (trims) length bytes at off.
func (m *Multipath) Deallocate(off int64, length int64) error { return deallocateIO(m, off, length) }

// Close disconnects every path.
func (m *Multipath) Close() error {
	var err error
	m.closed.Do(func() {
		close(m.done)
		err = m.closeAll()
		m.wg.Wait()
	})
	return err
}

func (m *Multipath) closeAll() error {
	var errs []error
	for _, p := range m.paths {
		errs = append(errs, p.ctrl.Close())
	}
	return errors.Join(errs...)
}
