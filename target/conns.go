package target

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

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
	n       int        // commands begun and not yet ended; guarded by mu
	parked  int        // guarded by mu: of those, reservation commands waiting in waitIdle of other gates
	ended   bool       // guarded by mu: Close or End has said to end it
	waiters int        // guarded by mu: goroutines in Wait or waitIdle
	idle    *sync.Cond // on mu, made by the first waiter
	// zeros and idles count the times n, and n less parked, dropped to 0
	// (guarded by mu): a waiter returns on the first, even if a command
	// begins before it runs again, so a busy queue cannot starve it.
	zeros, idles uint64
	closing      atomic.Bool
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

// AwaitsEvent reports whether r, a command of queue qid, is an
// Asynchronous Event Request: the core holds it until an event happens,
// and drops it with its controller, so nothing waits for its completion.
func AwaitsEvent(r *Request, qid uint16) bool {
	return qid == 0 && r.Cmd.Opcode() == nvmeof.AdminAsyncEvent
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
	r.gated = !AwaitsEvent(r, qid)
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
	g.n--
	g.counted()
	if g.n > 0 || !g.closing.Load() || g.ended {
		return false
	}
	g.ended = true
	return true
}

// counted notes n or parked changed, and wakes the waiters when either
// count reached 0. Called with mu held.
func (g *ExecGate) counted() {
	if g.n == 0 {
		g.zeros++
	}
	if g.n == g.parked {
		g.idles++
	}
	if g.waiters > 0 && g.n == g.parked {
		g.idle.Broadcast()
	}
}

// wait returns once *count moves on from what it was when called, or
// busy() is false. Called with mu held.
func (g *ExecGate) wait(count *uint64, busy func() bool) {
	if g.idle == nil {
		g.idle = sync.NewCond(&g.mu)
	}
	g.waiters++
	for at := *count; busy() && *count == at; {
		g.idle.Wait()
	}
	g.waiters--
}

// Wait returns once no command is in the core (at some moment since it
// was called). A transport calls it after Close, before tearing the
// connection down.
func (g *ExecGate) Wait() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.wait(&g.zeros, func() bool { return g.n > 0 })
}

// waitIdle returns once no command is in the core but reservation
// commands that themselves wait for other gates (park): two hosts that
// preempt each other with abort, on two namespaces at once, each wait for
// the other's writes, not for each other's waiting command.
func (g *ExecGate) waitIdle() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.wait(&g.idles, func() bool { return g.n > g.parked })
}

// park and unpark bracket a command of this gate's that waits in
// waitIdle of others.
func (g *ExecGate) park() {
	g.mu.Lock()
	g.parked++
	g.counted()
	g.mu.Unlock()
}

func (g *ExecGate) unpark() {
	g.mu.Lock()
	g.parked--
	g.mu.Unlock()
}

// waiting reports whether a Wait or waitIdle waits (for tests).
func (g *ExecGate) waiting() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.waiters > 0
}

// Closing reports whether Close or Fence was called.
func (g *ExecGate) Closing() bool { return g.closing.Load() }

// Fence marks the connection closing from outside its transport: the host
// closed it, and the transport's goroutine has not seen that yet. No
// command begins from here on; the transport ends the connection as
// usual, by its Close or the last End.
func (g *ExecGate) Fence() {
	g.mu.Lock()
	g.closing.Store(true)
	g.mu.Unlock()
}

// ioQueues returns the subsystem's I/O queues (ioqs) that pick chooses.
func (s *Subsystem) ioQueues(pick func(*Queue) bool) []*Queue {
	s.mu.Lock()
	defer s.mu.Unlock()
	var qs []*Queue
	for q := range s.ioqs {
		if pick(q) {
			qs = append(qs, q)
		}
	}
	return qs
}

// PeerCloseChecker is a QueueTransport that can tell, without reading,
// that the host closed its end of the connection (NVMe/TCP: a FIN or a
// reset in the socket), before the queue's goroutine sees it: busy in a
// command on a slow drive, or behind commands still buffered.
type PeerCloseChecker interface {
	PeerClosed() bool
}

// closingWarnAfter is how long a Connect waits for a host's closing
// queues before it says so in the log (it waits on).
var closingWarnAfter = 5 * time.Second

// waitClosing returns once the I/O queues of host that are closing have
// no command in the core: a host that reconnects after giving up on a
// connection (an I/O timeout, a reset) sends its writes again, and one
// still in flight from before must land first. A queue whose host closed
// it, though its goroutine has not seen that yet, is fenced first, so
// that commands it has yet to read from the socket (sent before the host
// gave up, and sent again now) never run.
func (s *Subsystem) waitClosing(host [16]byte, log *slog.Logger) {
	fenced := 0
	qs := s.ioQueues(func(q *Queue) bool {
		if q.ctrl.hostID != host {
			return false
		}
		if q.gate.Closing() {
			return true
		}
		if pc, ok := q.tr.(PeerCloseChecker); ok && pc.PeerClosed() {
			q.gate.Fence()
			fenced++
			return true
		}
		return false
	})
	if len(qs) == 0 {
		return
	}
	if fenced > 0 {
		log.Info("connect: the host closed earlier I/O connections the target had not yet seen end: what they still held unread will not run", "queues", fenced)
	}
	warn := time.AfterFunc(closingWarnAfter, func() {
		log.Warn("connect waits for commands of the host's earlier connections still running on the backend (a slow or hung drive)", "queues", len(qs))
	})
	defer warn.Stop()
	for _, q := range qs {
		q.gate.Wait()
	}
}
