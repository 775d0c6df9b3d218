package uring

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Offsets of the mmap regions (IORING_OFF_*).
const (
	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000
)

// io_uring_enter flags and SQ ring flags.
const (
	enterGetEvents = 1 << 0 // IORING_ENTER_GETEVENTS
	enterSQWakeup  = 1 << 1 // IORING_ENTER_SQ_WAKEUP
	sqNeedWakeup   = 1 << 0 // IORING_SQ_NEED_WAKEUP
)

// io_uring_register opcodes.
const (
	registerBuffers   = 0
	unregisterBuffers = 1
	registerFiles     = 2
	unregisterFiles   = 3
	registerEventFd   = 4
)

// sqringOffsets is struct io_sqring_offsets, 40 bytes.
type sqringOffsets struct {
	Head, Tail, RingMask, RingEntries, Flags, Dropped, Array, Resv1 uint32
	UserAddr                                                        uint64
}

// cqringOffsets is struct io_cqring_offsets, 40 bytes.
type cqringOffsets struct {
	Head, Tail, RingMask, RingEntries, Overflow, CQEs, Flags, Resv1 uint32
	UserAddr                                                        uint64
}

// params is struct io_uring_params, 120 bytes.
type params struct {
	SQEntries, CQEntries, Flags, SQThreadCPU, SQThreadIdle, Features, WQFd uint32
	Resv                                                                   [3]uint32
	SQOff                                                                  sqringOffsets
	CQOff                                                                  cqringOffsets
}

// Ring is one io_uring instance: its fd and the three shared mappings.
type Ring struct {
	fd       int
	flags    uint32
	features uint32

	sqMem, cqMem, sqeMem []byte
	singleMmap           bool // cqMem aliases sqMem (FeatSingleMmap)

	sqHead  *atomic.Uint32 // written by the kernel
	sqTail  *atomic.Uint32 // written by us (release)
	sqFlags *atomic.Uint32
	sqMask  uint32
	sqArray []uint32
	sqes    []SQE

	// sqeHead..sqeTail are prepared entries not yet published to sqTail.
	sqeHead, sqeTail uint32

	cqHead *atomic.Uint32 // written by us (release)
	cqTail *atomic.Uint32 // written by the kernel (acquire)
	cqMask uint32
	cqes   []CQE

	nbufs, nfiles int
}

func u32at(mem []byte, off uint32) *atomic.Uint32 {
	return (*atomic.Uint32)(unsafe.Pointer(&mem[off]))
}

// New sets up a ring with at least entries submission entries (rounded up
// to a power of two by the kernel). If the kernel refuses io_uring, the
// error wraps ErrNotSupported.
func New(entries uint32, p *Params) (*Ring, error) {
	var kp params
	if p != nil {
		kp.Flags = p.Flags
		kp.CQEntries = p.CQEntries
		kp.SQThreadCPU = p.SQThreadCPU
		kp.SQThreadIdle = p.SQThreadIdle
	}
	fd, _, errno := unix.Syscall(unix.SYS_IO_URING_SETUP, uintptr(entries), uintptr(unsafe.Pointer(&kp)), 0)
	if errno != 0 {
		err := os.NewSyscallError("io_uring_setup", errno)
		switch errno {
		case unix.ENOSYS, unix.EPERM, unix.EACCES:
			return nil, fmt.Errorf("io_uring unavailable: %w (needs Linux >= 5.6 with kernel.io_uring_disabled=0 and no seccomp filter blocking io_uring_setup, e.g. docker --security-opt seccomp=unconfined; or use ioengine=psync): %w", err, ErrNotSupported)
		}
		return nil, err
	}
	r := &Ring{fd: int(fd), flags: kp.Flags, features: kp.Features}
	if err := r.mapRings(&kp); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

func (r *Ring) mapRings(kp *params) error {
	sqSize := int(kp.SQOff.Array) + int(kp.SQEntries)*4
	cqSize := int(kp.CQOff.CQEs) + int(kp.CQEntries)*int(unsafe.Sizeof(CQE{}))
	single := kp.Features&FeatSingleMmap != 0
	if single {
		sqSize = max(sqSize, cqSize)
	}
	var err error
	r.sqMem, err = unix.Mmap(r.fd, offSQRing, sqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return os.NewSyscallError("mmap sq ring", err)
	}
	if single {
		r.singleMmap = true
		r.cqMem = r.sqMem
	} else {
		r.cqMem, err = unix.Mmap(r.fd, offCQRing, cqSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
		if err != nil {
			return os.NewSyscallError("mmap cq ring", err)
		}
	}
	sqeSize := int(kp.SQEntries) * int(unsafe.Sizeof(SQE{}))
	r.sqeMem, err = unix.Mmap(r.fd, offSQEs, sqeSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return os.NewSyscallError("mmap sqes", err)
	}

	so := &kp.SQOff
	r.sqHead = u32at(r.sqMem, so.Head)
	r.sqTail = u32at(r.sqMem, so.Tail)
	r.sqFlags = u32at(r.sqMem, so.Flags)
	r.sqMask = *(*uint32)(unsafe.Pointer(&r.sqMem[so.RingMask]))
	r.sqArray = unsafe.Slice((*uint32)(unsafe.Pointer(&r.sqMem[so.Array])), kp.SQEntries)
	r.sqes = unsafe.Slice((*SQE)(unsafe.Pointer(&r.sqeMem[0])), kp.SQEntries)
	// The SQ array is an indirection we do not need: slot i always holds SQE i.
	for i := range r.sqArray {
		r.sqArray[i] = uint32(i)
	}
	r.sqeHead = r.sqTail.Load()
	r.sqeTail = r.sqeHead

	co := &kp.CQOff
	r.cqHead = u32at(r.cqMem, co.Head)
	r.cqTail = u32at(r.cqMem, co.Tail)
	r.cqMask = *(*uint32)(unsafe.Pointer(&r.cqMem[co.RingMask]))
	r.cqes = unsafe.Slice((*CQE)(unsafe.Pointer(&r.cqMem[co.CQEs])), kp.CQEntries)
	return nil
}

// Close unmaps the rings and closes the ring fd, which also drops
// registered buffers and files. In-flight requests are cancelled by the
// kernel; their buffers must stay valid until Close returns.
func (r *Ring) Close() error {
	if r == nil || r.fd < 0 {
		return nil
	}
	if r.sqeMem != nil {
		_ = unix.Munmap(r.sqeMem)
	}
	if r.cqMem != nil && !r.singleMmap {
		_ = unix.Munmap(r.cqMem)
	}
	if r.sqMem != nil {
		_ = unix.Munmap(r.sqMem)
	}
	r.sqeMem, r.cqMem, r.sqMem, r.sqes, r.cqes, r.sqArray = nil, nil, nil, nil, nil, nil
	err := unix.Close(r.fd)
	r.fd = -1
	if err != nil {
		return os.NewSyscallError("close io_uring", err)
	}
	return nil
}

// Fd is the ring's file descriptor.
func (r *Ring) Fd() int { return r.fd }

// Features are the IORING_FEAT_* bits the kernel reported.
func (r *Ring) Features() uint32 { return r.features }

// SQEntries is the submission queue size.
func (r *Ring) SQEntries() int { return len(r.sqes) }

// CQEntries is the completion queue size.
func (r *Ring) CQEntries() int { return len(r.cqes) }

// SQSpace is how many SQEs can still be prepared before Submit.
func (r *Ring) SQSpace() int {
	return len(r.sqes) - int(r.sqeTail-r.sqHead.Load())
}

// Pending is the number of prepared SQEs not yet submitted.
func (r *Ring) Pending() int { return int(r.sqeTail - r.sqeHead) }

// NextSQE returns the next free submission entry, zeroed, or nil if the
// submission queue is full. The entry is submitted by the next Submit.
func (r *Ring) NextSQE() *SQE {
	if r.sqeTail-r.sqHead.Load() >= uint32(len(r.sqes)) {
		return nil
	}
	s := &r.sqes[r.sqeTail&r.sqMask]
	r.sqeTail++
	*s = SQE{}
	return s
}

// PrepRead queues a read of len(buf) bytes at off into buf. buf must stay
// valid and reachable until its completion is reaped: the kernel holds
// only its address. For O_DIRECT it must also be aligned (mmap'd memory is).
func (r *Ring) PrepRead(fd int32, buf []byte, off uint64, userData uint64) error {
	s := r.NextSQE()
	if s == nil {
		return ErrSQFull
	}
	s.prepRW(OpRead, fd, bufAddr(buf), uint32(len(buf)), off, userData)
	return nil
}

// PrepWrite queues a write of buf at off.
func (r *Ring) PrepWrite(fd int32, buf []byte, off uint64, userData uint64) error {
	return r.PrepWriteFlags(fd, buf, off, 0, userData)
}

// PrepWriteFlags queues a write of buf at off with pwritev2 flags
// (RWF_DSYNC makes it durable before it completes: NVMe FUA).
func (r *Ring) PrepWriteFlags(fd int32, buf []byte, off uint64, rwFlags uint32, userData uint64) error {
	s := r.NextSQE()
	if s == nil {
		return ErrSQFull
	}
	s.prepRW(OpWrite, fd, bufAddr(buf), uint32(len(buf)), off, userData)
	s.OpFlags = rwFlags
	return nil
}

// PrepReadFixed queues a read into buf, which must lie inside registered
// buffer bufIndex.
func (r *Ring) PrepReadFixed(fd int32, buf []byte, off uint64, bufIndex uint16, userData uint64) error {
	s := r.NextSQE()
	if s == nil {
		return ErrSQFull
	}
	s.prepRW(OpReadFixed, fd, bufAddr(buf), uint32(len(buf)), off, userData)
	s.BufIndex = bufIndex
	return nil
}

// PrepWriteFixed queues a write from buf, inside registered buffer bufIndex.
func (r *Ring) PrepWriteFixed(fd int32, buf []byte, off uint64, bufIndex uint16, userData uint64) error {
	s := r.NextSQE()
	if s == nil {
		return ErrSQFull
	}
	s.prepRW(OpWriteFixed, fd, bufAddr(buf), uint32(len(buf)), off, userData)
	s.BufIndex = bufIndex
	return nil
}

// PrepFsync queues an fsync (flags: 0 or FsyncDatasync).
func (r *Ring) PrepFsync(fd int32, flags uint32, userData uint64) error {
	s := r.NextSQE()
	if s == nil {
		return ErrSQFull
	}
	*s = SQE{Opcode: OpFsync, Fd: fd, OpFlags: flags, UserData: userData}
	return nil
}

// PrepNop queues a no-op, useful to measure the ring itself.
func (r *Ring) PrepNop(userData uint64) error {
	s := r.NextSQE()
	if s == nil {
		return ErrSQFull
	}
	*s = SQE{Opcode: OpNop, UserData: userData}
	return nil
}

// bufAddr returns the address of b for an SQE. It makes b escape, so that
// the compiler never places a buffer handed to the kernel on a goroutine
// stack (which moves and is reused while the I/O is in flight).
func bufAddr(b []byte) uintptr {
	if len(b) == 0 {
		return 0
	}
	p := &b[0]
	escape(p)
	return uintptr(unsafe.Pointer(p))
}

var escapeSink struct {
	on bool
	p  *byte
}

// escape is never taken at run time but the compiler cannot prove it.
func escape(p *byte) {
	if escapeSink.on {
		escapeSink.p = p
	}
}

// flush publishes prepared SQEs to the kernel and returns how many it has
// not consumed yet: those just published and any an earlier enter left
// (it may consume fewer than asked), as liburing counts them.
func (r *Ring) flush() uint32 {
	if r.sqeTail != r.sqeHead {
		r.sqeHead = r.sqeTail
		r.sqTail.Store(r.sqeTail) // release: SQE contents before the tail
	}
	return r.sqeTail - r.sqHead.Load()
}

// unpublish takes back the SQEs the kernel has not consumed after a failed
// enter, so that the caller may treat them as never submitted (a later
// enter would otherwise run them behind its back). Without an SQ thread
// the kernel reads the tail only inside io_uring_enter, which the caller
// serialises, so moving it back is safe.
func (r *Ring) unpublish() {
	if r.flags&SetupSQPoll != 0 {
		return
	}
	head := r.sqHead.Load()
	r.sqeTail, r.sqeHead = head, head
	r.sqTail.Store(head)
}

// Submit hands all prepared SQEs to the kernel with one system call and
// returns how many it consumed.
func (r *Ring) Submit() (int, error) { return r.SubmitAndWait(0) }

// SubmitAndWait submits prepared SQEs and waits until at least waitNr
// completions are available.
func (r *Ring) SubmitAndWait(waitNr uint32) (int, error) {
	n := r.flush()
	var flags uintptr
	if waitNr > 0 {
		flags |= enterGetEvents
	}
	if r.flags&SetupSQPoll != 0 {
		// The SQ thread consumes entries on its own; enter only to wake it
		// or to wait.
		if r.sqFlags.Load()&sqNeedWakeup != 0 {
			flags |= enterSQWakeup
		} else if waitNr == 0 {
			return int(n), nil
		}
	} else if n == 0 && waitNr == 0 {
		return 0, nil
	}
	for {
		ret, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(n), uintptr(waitNr), flags, 0, 0)
		switch errno {
		case 0:
			return int(ret), nil
		case unix.EINTR:
			continue
		default:
			// EAGAIN, EBUSY (the completion queue would overflow: reap),
			// or worse: what was not consumed is not submitted.
			r.unpublish()
			return 0, os.NewSyscallError("io_uring_enter", errno)
		}
	}
}

// WaitCQE blocks until at least one completion is available, without
// submitting. Use it after Submit when Reap found nothing.
func (r *Ring) WaitCQE() error {
	if r.cqHead.Load() != r.cqTail.Load() {
		return nil
	}
	n := r.flush()
	for {
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), uintptr(n), 1, enterGetEvents, 0, 0)
		if errno == unix.EINTR {
			n = 0
			continue
		}
		if errno != 0 {
			return os.NewSyscallError("io_uring_enter", errno)
		}
		return nil
	}
}

// WaitCompletion blocks until at least one completion is available. It
// submits nothing and touches no submission state, so one goroutine may
// wait and reap while others prepare and submit (under their own lock).
func (r *Ring) WaitCompletion() error {
	for r.cqHead.Load() == r.cqTail.Load() {
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_ENTER, uintptr(r.fd), 0, 1, enterGetEvents, 0, 0)
		if errno != 0 && errno != unix.EINTR {
			return os.NewSyscallError("io_uring_enter", errno)
		}
	}
	return nil
}

// Ready is the number of completions waiting to be reaped.
func (r *Ring) Ready() int { return int(r.cqTail.Load() - r.cqHead.Load()) }

// Reap copies up to len(dst) completions into dst, consumes them and
// returns how many. It never blocks and never allocates.
func (r *Ring) Reap(dst []CQE) int {
	head := r.cqHead.Load()
	tail := r.cqTail.Load() // acquire: CQE contents after the tail
	n := 0
	for head != tail && n < len(dst) {
		dst[n] = r.cqes[head&r.cqMask]
		head++
		n++
	}
	if n > 0 {
		r.cqHead.Store(head) // release: we are done with the entries
	}
	return n
}

// RegisterBuffers registers bufs as fixed buffers (IORING_REGISTER_BUFFERS);
// buffer i is then addressed by bufIndex i in PrepReadFixed/PrepWriteFixed.
// The kernel pins the pages; the memory must not be freed while registered.
func (r *Ring) RegisterBuffers(bufs [][]byte) error {
	if len(bufs) == 0 {
		return errors.New("register buffers: none given")
	}
	iov := make([]unix.Iovec, len(bufs))
	for i, b := range bufs {
		if len(b) == 0 {
			return fmt.Errorf("register buffers: buffer %d is empty", i)
		}
		iov[i].Base = &b[0]
		iov[i].SetLen(len(b))
	}
	if err := r.register(registerBuffers, unsafe.Pointer(&iov[0]), len(iov)); err != nil {
		return fmt.Errorf("register %d buffers: %w", len(bufs), err)
	}
	r.nbufs = len(bufs)
	return nil
}

// UnregisterBuffers drops all registered buffers.
func (r *Ring) UnregisterBuffers() error {
	if err := r.register(unregisterBuffers, nil, 0); err != nil {
		return fmt.Errorf("unregister buffers: %w", err)
	}
	r.nbufs = 0
	return nil
}

// RegisterFiles registers fds (IORING_REGISTER_FILES); an SQE with
// SQEFixedFile then names file i by Fd = i.
func (r *Ring) RegisterFiles(fds []int32) error {
	if len(fds) == 0 {
		return errors.New("register files: none given")
	}
	if err := r.register(registerFiles, unsafe.Pointer(&fds[0]), len(fds)); err != nil {
		return fmt.Errorf("register %d files: %w", len(fds), err)
	}
	r.nfiles = len(fds)
	return nil
}

// UnregisterFiles drops all registered files.
func (r *Ring) UnregisterFiles() error {
	if err := r.register(unregisterFiles, nil, 0); err != nil {
		return fmt.Errorf("unregister files: %w", err)
	}
	r.nfiles = 0
	return nil
}

// RegisterEventFd has the kernel signal the eventfd efd whenever it posts
// a completion (IORING_REGISTER_EVENTFD): a goroutine can then wait for
// completions in Go's netpoller, reading efd, instead of in a blocking
// io_uring_enter that holds its thread and scheduler slot.
func (r *Ring) RegisterEventFd(efd int) error {
	fd := int32(efd)
	if err := r.register(registerEventFd, unsafe.Pointer(&fd), 1); err != nil {
		return fmt.Errorf("register eventfd: %w", err)
	}
	return nil
}

func (r *Ring) register(op uintptr, arg unsafe.Pointer, n int) error {
	for {
		_, _, errno := unix.Syscall6(unix.SYS_IO_URING_REGISTER, uintptr(r.fd), op, uintptr(arg), uintptr(n), 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			return os.NewSyscallError("io_uring_register", errno)
		}
		return nil
	}
}
