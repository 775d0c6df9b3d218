// Package busypoll reads a socket the way a polled-mode storage stack
// does, in the manner of the kernel's busy-poll sockets (SO_BUSY_POLL):
// when there is nothing to read it keeps trying non-blocking reads for a
// bounded time before it parks in the netpoller. A request that arrives
// within that window is picked up at once instead of waiting for an idle
// CPU to be woken, which on a virtual machine costs tens of
// microseconds; a connection with nothing to do still idles after the
// window. The spinning goroutine yields between tries, so the other
// runnable goroutines of the process run; and the readers of one Group
// (the connections of one listener) stop polling as soon as another of
// them has input, so that Go's scheduler, which looks for network input
// only when it has nothing runnable, gets to serve it.
package busypoll

import (
	"errors"
	"io"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Reader is an io.Reader over a connection that busy-polls for up to its
// window before a read blocks.
type Reader struct {
	c      net.Conn
	rc     syscall.RawConn
	window time.Duration
	when   func() bool
	group  *Group // set at creation
	fd     int32
	left   sync.Once
	pfds   []pollFd // scratch: the group's other sockets

	// One non-blocking read: tryFn (bound once: a closure made per try
	// would allocate) reads into buf and leaves n and err.
	tryFn func(fd uintptr) bool
	buf   []byte
	n     int
	err   error

	// Spins counts reads satisfied while spinning, Parks reads that
	// waited in the netpoller, Yields the polls another connection of the
	// group ended; for tests and tuning.
	Spins, Parks, Yields uint64
}

// NewReader returns c itself when window is not positive or c is not a
// socket (a net.Pipe, say), else a Reader that busy-polls c for up to
// window, each time when says to (nil: always). A reader of a group g
// (nil: none) joins it and stops polling when another member has input;
// leave takes it out again (Reader.Leave; a no-op for c itself): call
// it, from any goroutine, before c closes.
func NewReader(g *Group, c net.Conn, window time.Duration, when func() bool) (rd io.Reader, leave func()) {
	plain := func() {}
	if window <= 0 {
		return c, plain
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c, plain
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c, plain
	}
	r := &Reader{c: c, rc: rc, window: window, when: when, fd: -1}
	r.tryFn = r.readOnce
	if g != nil {
		rc.Control(func(fd uintptr) { r.fd = int32(fd) })
		if r.fd >= 0 {
			r.group = g
			g.join(r.fd)
		}
	}
	return r, r.Leave
}

// Leave takes the reader's connection out of its group, once; call it,
// from any goroutine, before the connection closes (its descriptor can
// then be another connection's).
func (r *Reader) Leave() {
	if r.group != nil {
		r.left.Do(func() { r.group.leave(r.fd) })
	}
}

// Group is a set of connections served together (a listener's): while
// one of them polls, the others' input ends the polling.
type Group struct {
	mu  sync.Mutex
	fds atomic.Pointer[[]int32] // copy on write
}

func (g *Group) join(fd int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	var cur []int32
	if p := g.fds.Load(); p != nil {
		cur = *p
	}
	next := append(slices.Clone(cur), fd)
	g.fds.Store(&next)
}

func (g *Group) leave(fd int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.fds.Load()
	if p == nil {
		return
	}
	next := slices.DeleteFunc(slices.Clone(*p), func(f int32) bool { return f == fd })
	g.fds.Store(&next)
}

// othersReady reports whether another connection of r's group has input.
func (r *Reader) othersReady() bool {
	if r.group == nil {
		return false
	}
	p := r.group.fds.Load()
	if p == nil || len(*p) < 2 {
		return false
	}
	r.pfds = r.pfds[:0]
	for _, fd := range *p {
		if fd != r.fd {
			r.pfds = append(r.pfds, pollIn(fd))
		}
	}
	return anyReadable(r.pfds)
}

// errAgain says a non-blocking read found nothing.
var errAgain = errors.New("busypoll: nothing to read")

// Read reads what is there; with nothing there it polls for up to the
// window, then waits as a plain read would (deadlines apply there).
func (r *Reader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if r.when != nil && !r.when() {
		return r.c.Read(p)
	}
	var start time.Time
	for i := 0; ; i++ {
		n, err := r.try(p)
		if err == nil {
			r.Spins++
			return n, nil
		}
		if err != errAgain {
			break // closed, reset, EOF: the plain read reports it
		}
		if i == 0 {
			start = time.Now()
		} else if i&7 == 0 && time.Since(start) >= r.window {
			break
		}
		if r.othersReady() {
			r.Yields++
			break // park: the scheduler then serves the other connection
		}
		runtime.Gosched()
	}
	r.Parks++
	return r.c.Read(p)
}

// try does one non-blocking read. It does not allocate.
func (r *Reader) try(p []byte) (int, error) {
	r.buf, r.n, r.err = p, 0, errAgain
	cerr := r.rc.Read(r.tryFn)
	r.buf = nil
	if cerr != nil {
		return 0, cerr
	}
	return r.n, r.err
}

func (r *Reader) readOnce(fd uintptr) bool {
	m, e := readNonblock(int(fd), r.buf)
	switch {
	case m > 0:
		r.n, r.err = m, nil
	case e == syscall.EAGAIN || e == syscall.EINTR:
	default:
		r.err = io.ErrUnexpectedEOF // EOF or an error: let the plain read say which
	}
	return true // never wait here
}
