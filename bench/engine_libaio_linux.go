package bench

import (
	"errors"
	"os"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// libaioEngine is fio's libaio engine on the kernel's native AIO, with
// the system calls libaio wraps: Queue fills an iocb, Commit hands the
// batch to io_submit, GetEvents reaps with io_getevents. As with fio,
// I/O is asynchronous only with direct=1; buffered I/O is done inside
// io_submit.
type libaioEngine struct {
	files fileSet
	mem   *HostMemory
	ctx   uintptr // aio_context_t
	iocbs []aioIocb
	// queued are the iocbs staged since the last Commit (pointers into
	// iocbs, as io_submit takes them); done are I/Os that completed in
	// Queue (trims: the kernel's AIO has no discard).
	queued []*aioIocb
	done   []*IO
	slots  []*IO // by slot index
	events []aioEvent
}

// aioIocb is struct iocb (linux/aio_abi.h), little-endian; the fields
// the bench leaves zero (aio_key, aio_rw_flags, aio_reqprio,
// aio_reserved2, aio_flags, aio_resfd) are blank.
type aioIocb struct {
	data   uint64
	_      [2]uint32
	opcode uint16
	_      int16
	fd     uint32
	buf    uint64
	nbytes uint64
	offset int64
	_      [2]uint64
}

// aioEvent is struct io_event (obj and res2 unused).
type aioEvent struct {
	data uint64
	_    uint64
	res  int64
	_    int64
}

const (
	iocbCmdPread  = 0
	iocbCmdPwrite = 1
)

func init() {
	// fio's libaio is an engine of its own here, not io_uring under
	// another name: users compare the two.
	RegisterEngine("libaio", newLibaio, "userspace_reap")
	RegisterBoolOptions("libaio", "userspace_reap")
}

func newLibaio(cfg *EngineConfig) (Engine, error) {
	if _, err := optBool(cfg.Options, "userspace_reap", false); err != nil {
		return nil, err
	}
	e := &libaioEngine{}
	if _, _, errno := unix.Syscall(unix.SYS_IO_SETUP, uintptr(cfg.IODepth), uintptr(unsafe.Pointer(&e.ctx)), 0); errno != 0 {
		err := os.NewSyscallError("io_setup", errno)
		if errno == unix.ENOSYS {
			return nil, errors.Join(err, ErrNotSupported)
		}
		return nil, err
	}
	var err error
	if e.files, err = openFiles(cfg); err != nil {
		e.Close()
		return nil, err
	}
	e.iocbs = make([]aioIocb, cfg.IODepth)
	e.queued = make([]*aioIocb, 0, cfg.IODepth)
	e.done = make([]*IO, 0, cfg.IODepth)
	e.slots = make([]*IO, cfg.IODepth)
	e.events = make([]aioEvent, cfg.IODepth)
	return e, nil
}

func (e *libaioEngine) Size() int64       { return e.files.size() }
func (e *libaioEngine) Sync(d bool) error { return e.files.Sync(d) }
func (e *libaioEngine) Invalidate() error { return e.files.Invalidate() }
func (e *libaioEngine) Files() int        { return len(e.files) }

func (e *libaioEngine) Buffers(n, size int) ([]Buffer, error) {
	m, err := AllocHost(n, size)
	if err != nil {
		return nil, err
	}
	e.mem = m
	return m.Bufs, nil
}

func (e *libaioEngine) Queue(io *IO) error {
	f := e.files[io.File]
	if io.Op == OpTrim {
		io.Res, io.Err = f.trim(io.Offset, io.Len)
		e.done = append(e.done, io)
		return nil
	}
	cb := &e.iocbs[io.Index]
	*cb = aioIocb{data: uint64(io.Index), fd: uint32(f.fd), buf: uint64(io.Buf.Addr),
		nbytes: uint64(io.Len), offset: io.Offset, opcode: iocbCmdPread}
	if io.Op == OpWrite {
		cb.opcode = iocbCmdPwrite
	}
	e.slots[io.Index] = io
	e.queued = append(e.queued, cb)
	return nil
}

// Commit submits the staged iocbs, as fio's fio_libaio_commit: until
// all are taken, reaping completions when the kernel has no room.
func (e *libaioEngine) Commit() error {
	for len(e.queued) > 0 {
		n, _, errno := unix.Syscall(unix.SYS_IO_SUBMIT, e.ctx, uintptr(len(e.queued)), uintptr(unsafe.Pointer(&e.queued[0])))
		switch errno {
		case 0:
			e.queued = e.queued[:copy(e.queued, e.queued[n:])]
		case unix.EINTR:
		case unix.EAGAIN:
			// The kernel's queue is full: reap what is done and retry.
			if err := e.reapInto(1); err != nil {
				return err
			}
		default:
			return os.NewSyscallError("io_submit", errno)
		}
	}
	return nil
}

// reapInto waits for at least min events and parks their I/Os on done.
func (e *libaioEngine) reapInto(min int) error {
	evs, err := e.getevents(min, cap(e.done)-len(e.done))
	if err != nil {
		return err
	}
	for i := range evs {
		e.done = append(e.done, e.complete(&evs[i]))
	}
	return nil
}

func (e *libaioEngine) getevents(min, max int) ([]aioEvent, error) {
	if max == 0 {
		return nil, nil
	}
	for {
		n, _, errno := unix.Syscall6(unix.SYS_IO_GETEVENTS, e.ctx, uintptr(min), uintptr(max),
			uintptr(unsafe.Pointer(&e.events[0])), 0, 0)
		switch errno {
		case 0:
			return e.events[:n], nil
		case unix.EINTR:
			continue
		}
		return nil, os.NewSyscallError("io_getevents", errno)
	}
}

func (e *libaioEngine) complete(ev *aioEvent) *IO {
	io := e.slots[ev.data]
	if ev.res < 0 {
		io.Res, io.Err = 0, syscall.Errno(-ev.res)
	} else {
		io.Res, io.Err = int(ev.res), nil
	}
	return io
}

func (e *libaioEngine) GetEvents(min int, events []*IO) ([]*IO, error) {
	for len(e.done) > 0 && len(events) < cap(events) {
		events = append(events, e.done[0])
		e.done = e.done[:copy(e.done, e.done[1:])]
		min--
	}
	room := cap(events) - len(events)
	if room == 0 || (min <= 0 && room == 0) {
		return events, nil
	}
	evs, err := e.getevents(max(min, 0), room)
	if err != nil {
		return events, err
	}
	for i := range evs {
		events = append(events, e.complete(&evs[i]))
	}
	return events, nil
}

func (e *libaioEngine) Close() error {
	var errs []error
	if e.ctx != 0 {
		if _, _, errno := unix.Syscall(unix.SYS_IO_DESTROY, e.ctx, 0, 0); errno != 0 {
			errs = append(errs, os.NewSyscallError("io_destroy", errno))
		}
		e.ctx = 0
	}
	if e.mem != nil {
		errs = append(errs, e.mem.Close())
	}
	if e.files != nil {
		errs = append(errs, e.files.Close())
	}
	return errors.Join(errs...)
}

// The kernel's layouts: 64-byte iocbs, 32-byte events.
var (
	_ [64 - unsafe.Sizeof(aioIocb{})]byte
	_ [unsafe.Sizeof(aioIocb{}) - 64]byte
	_ [32 - unsafe.Sizeof(aioEvent{})]byte
	_ [unsafe.Sizeof(aioEvent{}) - 32]byte
)
