// Package busypoll reads a socket the way a polled-mode storage stack
// does, in the manner of the kernel's busy-poll sockets (SO_BUSY_POLL):
// when there is nothing to read it keeps trying non-blocking reads for a
// bounded time before it parks in the netpoller. A request that arrives
// within that window is picked up at once instead of waiting for an idle
// CPU to be woken, which on a virtual machine costs tens of
// microseconds; a connection with nothing to do still idles after the
// window. The spinning goroutine yields between tries, so the other
// goroutines of the process (other connections on the same core) run.
package busypoll

import (
	"errors"
	"io"
	"net"
	"runtime"
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

	// Spins counts reads satisfied while spinning, Parks reads that
	// waited in the netpoller after the window; for tests and tuning.
	Spins, Parks uint64
}

// NewReader returns c itself when window is not positive or c is not a
// socket (a net.Pipe, say), else a Reader that busy-polls c for up to
// window, each time when says to (nil: always).
func NewReader(c net.Conn, window time.Duration, when func() bool) io.Reader {
	if window <= 0 {
		return c
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	return &Reader{c: c, rc: rc, window: window, when: when}
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
		runtime.Gosched()
	}
	r.Parks++
	return r.c.Read(p)
}

// try does one non-blocking read.
func (r *Reader) try(p []byte) (n int, err error) {
	err = errAgain
	cerr := r.rc.Read(func(fd uintptr) bool {
		m, e := readNonblock(int(fd), p)
		switch {
		case m > 0:
			n, err = m, nil
		case e == syscall.EAGAIN || e == syscall.EINTR:
		default:
			err = io.ErrUnexpectedEOF // EOF or an error: let the plain read say which
		}
		return true // never wait here
	})
	if cerr != nil {
		return 0, cerr
	}
	return n, err
}
