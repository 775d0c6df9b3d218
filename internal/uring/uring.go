// Package uring is a minimal io_uring binding on raw system calls.
//
// It covers what a storage data path needs and nothing more: a ring with
// batched submission of READ, WRITE, READ_FIXED, WRITE_FIXED and FSYNC,
// registered buffers and files, and allocation-free reaping of completions.
// A Ring belongs to one goroutine at a time; it does no locking.
//
//	  user space                              kernel
//	+-------------+   SQE array (mmap)     +---------+
//	| NextSQE/Prep| ---> [sqe][sqe]...      |         |
//	| Submit      | -- SQ ring tail ------> | io_uring|
//	| Reap        | <-- CQ ring tail ------ |         |
//	+-------------+   CQE array (mmap)      +---------+
//
// Publishing the SQ tail and consuming the CQ head use sync/atomic, whose
// sequentially consistent operations are at least the release/acquire
// barriers that liburing's io_uring_smp_store_release and
// io_uring_smp_load_acquire provide.
package uring

import (
	"errors"
	"syscall"

	"github.com/flashpath/flashpath/internal/platform"
)

// ErrNotSupported is wrapped by errors returned when the kernel does not
// offer io_uring: an old kernel (ENOSYS), a seccomp profile or the
// kernel.io_uring_disabled sysctl (EPERM), or a non-Linux platform. It is
// platform.ErrNotSupported.
var ErrNotSupported = platform.ErrNotSupported

// ErrSQFull is returned when no submission entry is free: submit or reap first.
var ErrSQFull = errors.New("io_uring submission queue full")

// Opcodes (include/uapi/linux/io_uring.h, enum io_uring_op).
const (
	OpNop        uint8 = 0
	OpReadv      uint8 = 1
	OpWritev     uint8 = 2
	OpFsync      uint8 = 3
	OpReadFixed  uint8 = 4
	OpWriteFixed uint8 = 5
	OpRead       uint8 = 22
	OpWrite      uint8 = 23
)

// SQE flags (IOSQE_*).
const (
	SQEFixedFile uint8 = 1 << 0 // IOSQE_FIXED_FILE: Fd indexes the registered files
	SQEIODrain   uint8 = 1 << 1 // IOSQE_IO_DRAIN
	SQEIOLink    uint8 = 1 << 2 // IOSQE_IO_LINK
)

// FsyncDatasync is IORING_FSYNC_DATASYNC, for SQE.OpFlags of OpFsync.
const FsyncDatasync uint32 = 1 << 0

// Setup flags (IORING_SETUP_*), for Params.Flags.
const (
	SetupIOPoll       uint32 = 1 << 0
	SetupSQPoll       uint32 = 1 << 1
	SetupSQAff        uint32 = 1 << 2
	SetupCQSize       uint32 = 1 << 3
	SetupClamp        uint32 = 1 << 4
	SetupSubmitAll    uint32 = 1 << 7
	SetupCoopTaskrun  uint32 = 1 << 8
	SetupSingleIssuer uint32 = 1 << 12 // needs runtime.LockOSThread in Go
)

// Feature bits reported by the kernel (IORING_FEAT_*).
const (
	FeatSingleMmap uint32 = 1 << 0
	FeatNoDrop     uint32 = 1 << 1
	FeatNativeWork uint32 = 1 << 3 // 5.7+: all opcodes async-capable without io-wq tricks
)

// SQE is struct io_uring_sqe, 64 bytes. Only the fields of the opcodes
// this package prepares are named; the unions keep their first name.
type SQE struct {
	Opcode      uint8
	Flags       uint8
	IOPrio      uint16
	Fd          int32
	Off         uint64
	Addr        uint64
	Len         uint32
	OpFlags     uint32 // rw_flags, fsync_flags, ...
	UserData    uint64
	BufIndex    uint16
	Personality uint16
	SpliceFdIn  int32
	Addr3       uint64
	_           uint64
}

// CQE is struct io_uring_cqe, 16 bytes. Res is the result of the
// operation: bytes transferred, or a negated errno.
type CQE struct {
	UserData uint64
	Res      int32
	Flags    uint32
}

// Params configure a ring. The zero value asks for a plain interrupt-driven
// ring with a CQ twice the SQ size (the kernel default).
type Params struct {
	// Flags are IORING_SETUP_* bits. SetupSQPoll and SetupIOPoll are passed
	// through; the ring wakes an idle SQ thread when needed.
	Flags uint32
	// CQEntries, with SetupCQSize, sizes the completion queue.
	CQEntries uint32
	// SQThreadCPU and SQThreadIdle (milliseconds) tune SetupSQPoll.
	SQThreadCPU  uint32
	SQThreadIdle uint32
}

func (s *SQE) prepRW(op uint8, fd int32, addr uintptr, n uint32, off uint64, userData uint64) {
	*s = SQE{Opcode: op, Fd: fd, Addr: uint64(addr), Len: n, Off: off, UserData: userData}
}

// Err returns the CQE's failure as an error, or nil when Res >= 0.
func (c *CQE) Err() error {
	if c.Res >= 0 {
		return nil
	}
	return errnoErr(-c.Res)
}

func errnoErr(e int32) error { return syscall.Errno(e) }
