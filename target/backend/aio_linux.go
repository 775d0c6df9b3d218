package backend

import (
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/flashpath/flashpath/internal/uring"
	"golang.org/x/sys/unix"
)

// Asynchronous I/O for File: a few io_uring rings shared by every queue of
// the namespace. A queue's goroutine prepares and submits under its ring's
// lock and returns to the network at once; each ring's reaper goroutine
// waits for completions and hands them to their Completer. So one queue
// keeps as many reads and writes in flight on the drive as its host sends,
// where the synchronous path keeps one.
//
//	queue goroutines ──ReadAsync/WriteAsync──▶ ring[i] (SQ, locked)
//	                                              │ kernel
//	reaper[i] ◀── CQEs ───────────────────────────┘ ──▶ Completer.IODone

const (
	aioRingEntries = 128 // SQ entries per ring; I/O in flight per ring at most
	aioMaxRings    = 4
	aioExit        = ^uint64(0) // user_data of the NOP that stops a reaper
)

type aioSlot struct {
	done  Completer
	p     []byte
	off   int64
	write bool
	fua   bool
}

type aioRing struct {
	f        *File
	mu       sync.Mutex // the submission side and free
	ring     *uring.Ring
	efd      *os.File  // the ring's eventfd, in the netpoller
	free     []uint32  // free slot indices; guarded by mu
	slots    []aioSlot // by user_data; guarded by mu
	closed   bool      // guarded by mu
	inflight atomic.Int64
	exited   chan struct{}
}

type aioSet struct {
	once  sync.Once
	rings []*aioRing
	next  atomic.Uint32
	err   error // why there are no rings
}

// newAIORing makes a ring whose completions signal an eventfd that the
// reaper reads through Go's netpoller: waiting parks the goroutine, not a
// thread holding a scheduler slot (which, with few CPUs, delays every
// goroutine the completion wakes).
func newAIORing(f *File) (*aioRing, error) {
	r, err := uring.New(aioRingEntries, nil)
	if err != nil {
		return nil, err
	}
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		r.Close()
		return nil, os.NewSyscallError("eventfd", err)
	}
	if err := r.RegisterEventFd(efd); err != nil {
		unix.Close(efd)
		r.Close()
		return nil, err
	}
	a := &aioRing{f: f, ring: r, efd: os.NewFile(uintptr(efd), "io_uring-eventfd"),
		slots: make([]aioSlot, aioRingEntries), exited: make(chan struct{})}
	for i := aioRingEntries - 1; i >= 0; i-- {
		a.free = append(a.free, uint32(i))
	}
	return a, nil
}

// asyncRings returns the rings, setting them up on first use; none with
// SyncIO or where io_uring is refused.
func (f *File) asyncRings() []*aioRing {
	if f.syncIO {
		return nil
	}
	f.aio.once.Do(func() {
		n := min(runtime.GOMAXPROCS(0), aioMaxRings)
		for range n {
			a, err := newAIORing(f)
			if err != nil {
				f.aio.err = err
				break
			}
			f.aio.rings = append(f.aio.rings, a)
			go a.reap()
		}
	})
	return f.aio.rings
}

// AsyncIO reports whether reads and writes go through io_uring (false
// with the sync option, or where the kernel refuses io_uring).
func (f *File) AsyncIO() bool { return len(f.asyncRings()) > 0 }

// ReadAsync starts reading len(p) bytes at off into p and reports true, or
// reports false when it cannot (bad range, closed, unaligned buffer, no
// io_uring, every slot busy): the caller then uses ReadAt, which says why.
func (f *File) ReadAsync(p []byte, off int64, done Completer) bool {
	if f.check(off, int64(len(p))) != nil || !f.aligned(p) || len(p) == 0 {
		return false
	}
	return f.submitAsync(aioSlot{done: done, p: p, off: off})
}

// WriteAsync starts writing p at off (durably before completion with fua)
// and reports true, or reports false as ReadAsync does; also for fua
// where the kernel lacks RWF_DSYNC (WriteAt then syncs after the write).
func (f *File) WriteAsync(p []byte, off int64, fua bool, done Completer) bool {
	if f.checkWrite(off, int64(len(p))) != nil || !f.aligned(p) || len(p) == 0 || fua && f.noRWF.Load() {
		return false
	}
	return f.submitAsync(aioSlot{done: done, p: p, off: off, write: true, fua: fua})
}

func (f *File) submitAsync(s aioSlot) bool {
	rings := f.asyncRings()
	if len(rings) == 0 {
		return false
	}
	// Take the first ring nobody is submitting on, else wait for one.
	start := f.aio.next.Add(1)
	var a *aioRing
	for i := range uint32(len(rings)) {
		if r := rings[(start+i)%uint32(len(rings))]; r.mu.TryLock() {
			a = r
			break
		}
	}
	if a == nil {
		a = rings[start%uint32(len(rings))]
		a.mu.Lock()
	}
	defer a.mu.Unlock()
	if a.closed || len(a.free) == 0 {
		return false
	}
	i := a.free[len(a.free)-1]
	a.slots[i] = s
	var err error
	switch {
	case !s.write:
		err = a.ring.PrepRead(int32(f.fd), s.p, uint64(s.off), uint64(i))
	case s.fua:
		err = a.ring.PrepWriteFlags(int32(f.fd), s.p, uint64(s.off), unix.RWF_DSYNC, uint64(i))
	default:
		err = a.ring.PrepWrite(int32(f.fd), s.p, uint64(s.off), uint64(i))
	}
	if err == nil {
		a.inflight.Add(1)
		if _, err = a.ring.Submit(); err != nil {
			a.inflight.Add(-1)
		}
	}
	if err != nil {
		a.slots[i] = aioSlot{}
		return false
	}
	a.free = a.free[:len(a.free)-1]
	return true
}

// reap delivers completions until Close's NOP arrives and nothing is in
// flight.
func (a *aioRing) reap() {
	defer close(a.exited)
	var cqes [32]uring.CQE
	var count [8]byte
	exiting := false
	for {
		n := a.ring.Reap(cqes[:])
		if n == 0 {
			if exiting && a.inflight.Load() == 0 {
				return
			}
			// A completion posted after Reap looked has bumped the
			// counter: this read returns at once then.
			if _, err := a.efd.Read(count[:]); err != nil {
				// Cannot happen while the ring is open; wait in the
				// kernel instead.
				if a.ring.WaitCompletion() != nil {
					return
				}
			}
			continue
		}
		for _, c := range cqes[:n] {
			if c.UserData == aioExit {
				exiting = true
				continue
			}
			// The slot was written under mu before the submission; reading
			// it under mu too tells the race detector what the ring's
			// ordering already guarantees.
			i := uint32(c.UserData)
			a.mu.Lock()
			s := a.slots[i]
			a.slots[i] = aioSlot{}
			a.free = append(a.free, i)
			a.mu.Unlock()
			err := a.f.finishAsync(s, c.Res)
			a.inflight.Add(-1)
			s.done.IODone(err)
		}
		if exiting && a.inflight.Load() == 0 {
			return
		}
	}
}

// finishAsync turns a completion into the I/O's outcome, finishing short
// transfers and FUA writes the kernel could not flag synchronously.
func (f *File) finishAsync(s aioSlot, res int32) error {
	if res < 0 {
		errno := syscall.Errno(-res)
		if s.write && s.fua && (errno == unix.EOPNOTSUPP || errno == unix.EINVAL) {
			// RWF_DSYNC refused here: the synchronous path knows what to do.
			return f.pwrite(s.p, s.off, true)
		}
		op := "read"
		if s.write {
			op = "write"
		}
		return &os.PathError{Op: op, Path: f.path, Err: errno}
	}
	n := int(res)
	if !s.write {
		return f.readRest(s.p, s.off, n)
	}
	if n >= len(s.p) {
		return nil
	}
	if n == 0 {
		return &os.PathError{Op: "write", Path: f.path, Err: syscall.EIO}
	}
	return f.pwrite(s.p[n:], s.off+int64(n), s.fua)
}

// closeAsync waits for the I/O in flight and frees the rings.
func (f *File) closeAsync() {
	f.aio.once.Do(func() {}) // no set-up after this, and none half done
	for _, a := range f.aio.rings {
		a.mu.Lock()
		a.closed = true
		if a.ring.PrepNop(aioExit) == nil {
			a.ring.Submit()
		}
		a.mu.Unlock()
		<-a.exited
		a.ring.Close()
		a.efd.Close()
	}
}
