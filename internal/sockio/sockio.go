// Package sockio gathers what a queue sends and hands it to the kernel in
// one writev per flush, the way SPDK's socket layer queues a connection's
// PDUs and sends them together.
//
// Small pieces (headers, responses) are copied into a buffer of the
// writer's; large ones (a command's data) are referenced where they lie,
// so that data goes from the request's buffer into the socket once. Fewer,
// larger writes matter on the send side: a 128 KiB C2HData PDU written on
// its own leaves a short segment behind every write, and each write pays
// the transmit path's fixed cost (on loopback the receiver's too). Written
// four at a time, 128 KiB reads went from 2.5 to 3.2 GB/s on one core.
//
// SendFile puts a file's bytes between the gathered pieces with
// sendfile(2), from the page cache into the socket, for data a backend
// holds in a file: no copy through user memory at all.
//
// On Linux and macOS the writev is a raw system call that does not tell
// Go's scheduler it is in the kernel. A large write runs the whole
// transmit path inside the call, tens of microseconds, long enough for the
// runtime's monitor to take the processor away and start another thread,
// which on a busy core only adds switches and futex wake-ups (measured: a
// thousand futex calls and five thousand sysmon sleeps a second on the
// target's core during 128 KiB reads, all but gone with raw writes). The
// socket is non-blocking, so the call never sleeps; when the socket's
// buffer is full the writer waits in the netpoller like any write,
// deadlines included.
package sockio

import (
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// BuffersWriter is a connection that writes several pieces as one
// stream, better than a Write of each (tlspsk.Conn: records filled
// across the pieces); a Writer on one uses it to flush.
type BuffersWriter interface {
	WriteBuffers(parts [][]byte) (int64, error)
}

// Writer gathers pieces for one connection and writes them in order. It
// is not safe for concurrent use: its owner serializes calls (the
// connection's send lock).
type Writer struct {
	// Timeout bounds how long a flush waits for a peer that does not read
	// (0: no bound); the flush then fails with os.ErrDeadlineExceeded.
	// Writes that need no wait set no deadline.
	Timeout time.Duration

	c  net.Conn
	rc syscall.RawConn // nil: net.Buffers writes on c
	// nb is the net.Buffers a flush on c writes (it consumes it): a local
	// one would escape through WriteTo, one allocation per flush.
	nb net.Buffers

	slab  []byte   // copied pieces; len is what is used
	parts [][]byte // pending pieces in order: slab sections and references
	// tail says the last part is a slab section ending at len(slab), so
	// a copy can extend it.
	tail    bool
	pending int
	err     error // sticky, as bufio.Writer's: the first failed write

	// One writev: tryFn (bound once; a closure made per call would
	// allocate) writes iov and leaves n and errno.
	tryFn func(fd uintptr) bool
	iov   []iovec
	n     int
	errno syscall.Errno
	// One sendfile: sendFn (bound once, as tryFn) sends from sfFD at
	// sfOff, sfLeft bytes in all; the call advances sfOff.
	sendFn        func(fd uintptr) bool
	sfFD          int
	sfOff, sfLeft int64
	// again: a write found the socket full and no deadline is set yet;
	// deadline: one is set for this flush.
	again, deadline bool
	out             [][]byte // scratch for net.Buffers writes
}

// NewWriter returns a Writer on c that copies up to size bytes of small
// pieces between flushes. Where c is not a socket (a net.Pipe) or the
// platform has no raw writev, it writes through c.
func NewWriter(c net.Conn, size int) *Writer {
	w := &Writer{c: c, slab: make([]byte, 0, size)}
	w.tryFn, w.sendFn = w.writeOnce, w.sendOnce
	if !rawWritev {
		return w
	}
	if sc, ok := c.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			w.rc = rc
		}
	}
	return w
}

// Buffered returns the bytes waiting for Flush.
func (w *Writer) Buffered() int { return w.pending }

// Write copies p to be sent by the next Flush. When the copy buffer is
// full it flushes first; a p larger than the whole buffer is written at
// once.
func (w *Writer) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if len(p) > cap(w.slab)-len(w.slab) {
		if err := w.Flush(); err != nil {
			return 0, err
		}
		if len(p) > cap(w.slab) {
			w.WriteRef(p) // written before Write returns
			return len(p), w.Flush()
		}
	}
	start := len(w.slab)
	w.slab = append(w.slab, p...)
	if w.tail {
		last := &w.parts[len(w.parts)-1]
		*last = w.slab[start-len(*last) : len(w.slab)]
	} else {
		w.parts = append(w.parts, w.slab[start:])
		w.tail = true
	}
	w.pending += len(p)
	return len(p), nil
}

// Grow makes the copy buffer hold n bytes between flushes, for a
// connection that started with a small one. What is queued stays queued
// (in the old buffer, which the queued pieces keep alive).
func (w *Writer) Grow(n int) {
	if cap(w.slab) >= n {
		return
	}
	w.slab = make([]byte, 0, n)
	w.tail = false
}

// WriteRef queues p without copying it: p must stay as it is until the
// next Flush returns.
func (w *Writer) WriteRef(p []byte) {
	if len(p) == 0 {
		return
	}
	w.parts = append(w.parts, p)
	w.tail = false
	w.pending += len(p)
}

// Reset drops everything queued, for a connection that is failing.
func (w *Writer) Reset() {
	clear(w.parts)
	w.parts, w.slab, w.tail, w.pending = w.parts[:0], w.slab[:0], false, 0
}

// Flush writes everything queued, in order. Whatever happens, the writer
// is empty afterwards and its references are released; after an error
// every later call returns it.
func (w *Writer) Flush() error {
	if w.err != nil {
		w.Reset()
		return w.err
	}
	if w.pending == 0 {
		return nil
	}
	var err error
	if w.rc != nil {
		err = w.writeRaw(w.parts)
	} else {
		if w.Timeout > 0 {
			w.c.SetWriteDeadline(time.Now().Add(w.Timeout))
			defer w.c.SetWriteDeadline(time.Time{})
		}
		if bw, ok := w.c.(BuffersWriter); ok {
			// TLS: the pieces share records instead of one each.
			_, err = bw.WriteBuffers(w.parts)
		} else {
			w.out = append(w.out[:0], w.parts...)
			w.nb = w.out
			_, err = w.nb.WriteTo(w.c)
			w.nb = nil
			clear(w.out)
		}
	}
	w.Reset()
	w.err = err
	return err
}

// writeRaw writes parts with raw writev calls until all is written; it
// consumes parts (reslicing its elements).
func (w *Writer) writeRaw(parts [][]byte) error {
	defer clear(w.iov)
	defer w.endDeadline()
	for len(parts) > 0 {
		w.iov = w.iov[:0]
		for _, b := range parts {
			if len(w.iov) == maxIovecs {
				break
			}
			w.iov = append(w.iov, makeIovec(b))
		}
		n, err := w.step(w.tryFn)
		if errno, ok := err.(syscall.Errno); ok {
			return os.NewSyscallError("writev", errno)
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		for m := n; m > 0; {
			k := min(m, len(parts[0]))
			parts[0] = parts[0][k:]
			m -= k
			if len(parts[0]) == 0 {
				parts = parts[1:]
			}
		}
	}
	return nil
}

// step runs one non-blocking write (fn, which leaves n and errno)
// through the netpoller: it waits while the socket is full, for Timeout
// once the first wait set the deadline. It returns the bytes written, or
// the call's errno, or the poller's error (closed, deadline).
func (w *Writer) step(fn func(fd uintptr) bool) (int, error) {
	for {
		w.n, w.errno, w.again = 0, 0, false
		if err := w.rc.Write(fn); err != nil {
			return 0, err
		}
		if !w.again {
			break
		}
		// The peer is not keeping up: wait for it, for Timeout.
		w.c.SetWriteDeadline(time.Now().Add(w.Timeout))
		w.deadline = true
	}
	if w.errno != 0 {
		return 0, w.errno
	}
	return w.n, nil
}

// endDeadline clears the deadline a wait set.
func (w *Writer) endDeadline() {
	if w.deadline {
		w.c.SetWriteDeadline(time.Time{})
		w.deadline = false
	}
}

// CanSendFile reports whether SendFile works on this writer: a socket, on
// Linux.
func (w *Writer) CanSendFile() bool { return haveSendfile && w.rc != nil }

// FileError is SendFile failing to read the file, rather than to write
// to the socket.
type FileError struct{ Err error }

func (e *FileError) Error() string { return "sendfile: reading the file: " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// SendFile sends n bytes of the open file fd from offset off, after
// everything queued, with sendfile(2): from the page cache into the
// socket, without a copy through user memory. It returns the bytes sent,
// fewer than n only where the file ends first (the caller sends the
// rest). The writer's Timeout bounds the waits, as Flush's. An error is
// sticky, as Flush's: the peer may have got part of the data. A failure
// to read the file comes as a *FileError. Call it only where CanSendFile.
func (w *Writer) SendFile(fd int, off, n int64) (int64, error) {
	if err := w.Flush(); err != nil {
		return 0, err
	}
	defer w.endDeadline()
	w.sfFD, w.sfOff, w.sfLeft = fd, off, n
	for w.sfLeft > 0 {
		k, err := w.step(w.sendFn)
		if errno, ok := err.(syscall.Errno); ok {
			err = os.NewSyscallError("sendfile", errno)
			if !socketErrno(errno) {
				err = &FileError{err}
			}
		}
		if err != nil {
			w.err = err
			return n - w.sfLeft, err
		}
		if k == 0 {
			break // the end of the file
		}
		w.sfLeft -= int64(k)
	}
	return n - w.sfLeft, nil
}

// socketErrno tells the errors of the socket's side of a sendfile(2)
// from those of the file's.
func socketErrno(e syscall.Errno) bool {
	switch e {
	case syscall.EPIPE, syscall.ECONNRESET, syscall.ENOTCONN, syscall.ETIMEDOUT, syscall.ECONNABORTED,
		syscall.EHOSTUNREACH, syscall.ENETUNREACH, syscall.ENETDOWN, syscall.ENETRESET:
		return true
	}
	return false
}

// writeOnce does one non-blocking writev; false asks the netpoller to
// wait until the socket takes more.
func (w *Writer) writeOnce(fd uintptr) bool {
	for {
		n, errno := writev(fd, w.iov)
		if ok, retry := w.settle(n, errno); !retry {
			return ok
		}
	}
}

// settle records the outcome of one non-blocking call on the socket (n
// bytes written, or errno) and returns the netpoller callback's answer
// (false: wait until the socket takes more), or retry for EINTR.
func (w *Writer) settle(n int, errno syscall.Errno) (ok, retry bool) {
	switch errno {
	case 0:
		w.n = n
	case syscall.EINTR:
		return false, true
	case syscall.EAGAIN:
		if w.Timeout > 0 && !w.deadline {
			w.again = true
			return true, false // set the deadline first
		}
		return false, false
	default:
		w.errno = errno
	}
	return true, false
}
