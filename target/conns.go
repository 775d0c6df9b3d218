package target

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/flashpath/flashpath/nvmeof"
)

// Conns is the set of a transport listener's connections: it runs each
// connection's goroutine and, on shutdown, closes them all and waits for
// the goroutines. The zero value is ready to use.
type Conns[C interface {
	comparable
	Close(reason error)
}] struct {
	mu     sync.Mutex
	conns  map[C]struct{} // guarded by mu
	closed bool           // guarded by mu
	wg     sync.WaitGroup
}

// Go runs serve for c on a new goroutine, tracked until it returns. After
// Shutdown it closes c and runs serve on the caller's goroutine instead
// (serve must then return promptly), and reports false.
func (s *Conns[C]) Go(c C, serve func()) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close(errors.New("listener shutting down"))
		serve()
		return false
	}
	if s.conns == nil {
		s.conns = map[C]struct{}{}
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		serve()
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
	}()
	return true
}

// Track counts a goroutine of the listener's own (its accept loop) that
// Shutdown waits for: call done when it returns.
func (s *Conns[C]) Track() (done func()) {
	s.wg.Add(1)
	return s.wg.Done
}

// Shutdown runs stop (close the listening socket) once, closes every
// connection, runs closed (forget the port: hosts still connected would
// otherwise hear of it just before their connections go), and waits for
// the connection goroutines and the tracked ones until ctx is done. It
// reports stop's error, or ctx's; later calls do nothing and return nil.
func (s *Conns[C]) Shutdown(ctx context.Context, stop func() error, closed func()) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	err := stop()
	for c := range s.conns {
		c.Close(errors.New("listener shutting down"))
	}
	s.mu.Unlock()
	if closed != nil {
		closed()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return err
}

// ConnLimits caps a listener's connections in total (Max) and per host
// address (PerAddr); transports Admit each new connection and Leave when
// it is gone. Set the limits before the first Admit.
type ConnLimits struct {
	Max, PerAddr int

	mu      sync.Mutex
	open    int                // guarded by mu
	perAddr map[netip.Addr]int // guarded by mu
}

// Admit counts a new connection from addr, or says which limit it is over
// (and counts nothing).
func (l *ConnLimits) Admit(addr netip.Addr) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.open >= l.Max:
		return fmt.Sprintf("%d connections open, the listener's limit", l.open)
	case l.perAddr[addr] >= l.PerAddr:
		return fmt.Sprintf("%d connections open from %s, the limit per host address", l.perAddr[addr], addr)
	}
	if l.perAddr == nil {
		l.perAddr = map[netip.Addr]int{}
	}
	l.open++
	l.perAddr[addr]++
	return ""
}

// Leave uncounts a connection Admit counted.
func (l *ConnLimits) Leave(addr netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.perAddr[addr]--; l.perAddr[addr] <= 0 {
		delete(l.perAddr, addr)
	}
}

// ExecGate keeps a transport's connection from ending while a command the
// host sent is in the core: running, or in flight on an asynchronous
// backend (io_uring) after Execute returned. A host that sees its
// connection end retries what it had in flight on another path; a write
// that ran or landed here after that retry would put older data back. So
// the connection ends only once no such command is in the core, and runs
// none once it is closing. An Asynchronous Event Request, which the core
// holds until an event happens, does not count. The zero value is ready
// to use.
//
// Exactly one of Close and End reports that the caller ends the
// connection, once.
type ExecGate struct {
	mu      sync.Mutex
	n       int           // commands begun and not yet ended; guarded by mu
	ended   bool          // guarded by mu: Close or End has said to end it
	drained chan struct{} // guarded by mu: closed when n drops to 0 (Wait)
	closing atomic.Bool
}

// Close marks the connection closing and reports whether the caller ends
// it now; if a command is in the core (perhaps the caller's own: a send
// that failed inside it), the End that finishes the last one says so.
func (g *ExecGate) Close() (endNow bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closing.Store(true)
	if g.n > 0 || g.ended {
		return false
	}
	g.ended = true
	return true
}

// Begin hands r, a command of queue qid, to the core; false: the
// connection is closing, so the transport runs nothing and leaves the
// end to Close or End.
func (g *ExecGate) Begin(r *Request, qid uint16) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing.Load() {
		return false
	}
	r.gated = qid != 0 || r.Cmd.Opcode() != nvmeof.AdminAsyncEvent
	if r.gated {
		g.n++
	}
	return true
}

// End follows the core's completion of r (Transport.Complete, on any
// goroutine); true: the connection was closed while r was the last
// command in the core, so the caller ends it now.
func (g *ExecGate) End(r *Request) (endNow bool) {
	if !r.gated {
		return false
	}
	r.gated = false
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.n--; g.n > 0 {
		return false
	}
	if g.drained != nil {
		close(g.drained)
		g.drained = nil
	}
	if !g.closing.Load() || g.ended {
		return false
	}
	g.ended = true
	return true
}

// Wait returns once no command is in the core. A transport calls it after
// Close, before tearing the connection down.
func (g *ExecGate) Wait() {
	g.mu.Lock()
	if g.n == 0 {
		g.mu.Unlock()
		return
	}
	if g.drained == nil {
		g.drained = make(chan struct{})
	}
	ch := g.drained
	g.mu.Unlock()
	<-ch
}

// waiting reports whether a Wait waits (for tests).
func (g *ExecGate) waiting() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.drained != nil
}

// Closing reports whether Close was called.
func (g *ExecGate) Closing() bool { return g.closing.Load() }
