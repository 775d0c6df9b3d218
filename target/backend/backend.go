// Package backend implements the storage behind NVMe namespaces: what the
// target core reads and writes when a host sends Read, Write, Flush, Write
// Zeroes and Dataset Management commands. It is the user-space counterpart of
// the Linux target's io-cmd-bdev.c and io-cmd-file.c.
//
// Four kinds exist:
//
//	mem    anonymous memory (MAP_NORESERVE), lost on exit       NewMem
//	null   reads return zeros, writes are dropped               NewNull
//	file   a regular file, O_DIRECT where the filesystem allows  OpenFile
//	block  a block device, opened like a file                   OpenFile
//
// Parse turns a command-line spec such as "mem:1GiB" or "file:/srv/ns1:64GiB"
// into a Backend; ParseSize parses the sizes it uses. NewFaulty wraps any
// Backend with injectable failures for tests of the core.
//
// Errors are plain Go errors: the sentinels below, or errors that wrap the
// syscall errno (os.NewSyscallError, *os.PathError), so that errors.Is(err,
// unix.EIO) and similar work. The core maps them to NVMe status codes.
package backend

import (
	"errors"

	"github.com/flashpath/flashpath/internal/platform"
)

// Backend is the storage behind one NVMe namespace. All offsets and lengths are in bytes
// and are multiples of BlockSize(). Methods are called concurrently from many queues;
// they must not allocate on ReadAt/WriteAt (hot path).
type Backend interface {
	Size() int64    // capacity in bytes
	BlockSize() int // logical block size: 512 or 4096
	ReadAt(p []byte, off int64) error
	// WriteAt writes p at off. fua: the data is durable on stable media when it returns (NVMe Force Unit Access).
	WriteAt(p []byte, off int64, fua bool) error
	Flush() error                   // NVMe Flush: everything acknowledged so far is durable
	WriteZeroes(off, n int64) error // reads of the range return zeros afterwards
	Discard(off, n int64) error     // DSM deallocate; reads return zeros afterwards (we report DLFEAT=zeros)
	VolatileWriteCache() bool       // true when acknowledged writes can be lost on power loss until Flush (VWC in Identify Controller)
	Kind() string                   // "mem", "null", "file", "block"
	Close() error
}

// Async is implemented by backends that keep many I/Os in flight (file and
// block devices, through io_uring). ReadAsync and WriteAsync either start
// the I/O and report true, and then done.IODone is called exactly once,
// from another goroutine, when it has finished (p must stay untouched
// until then); or they report false and do nothing, and the caller uses
// ReadAt or WriteAt instead (which also report any error in the request).
// Neither allocates.
type Async interface {
	ReadAsync(p []byte, off int64, done Completer) bool
	WriteAsync(p []byte, off int64, fua bool, done Completer) bool
}

// FileSource is implemented by backends whose reads a transport may send
// straight from the kernel's page cache into its socket (sendfile(2))
// instead of reading them into a buffer first: files and block devices
// opened without O_DIRECT.
type FileSource interface {
	// SendSource returns the descriptor that holds n bytes at off, or ok
	// false where this read must go through ReadAt (I/O that bypasses the
	// page cache, a closed backend, a bad range, or after SendFailed).
	// Bytes past the end of the file read as zeros: a transport sends
	// zeros for what the file lacks. The descriptor stays open while the
	// namespace's I/O reference is held.
	SendSource(off, n int64) (fd int, ok bool)
	// SendFailed reports that reading the descriptor failed while sending
	// (a media error): later reads go through ReadAt, which reports such
	// errors as NVMe statuses.
	SendFailed(err error)
}

// MemSource is implemented by backends whose data lies in this process's
// memory (mem): a transport may send a read straight from there instead
// of from a copy.
type MemSource interface {
	// SendBytes returns the n bytes at off, or ok false (a bad range, a
	// closed backend). They stay mapped while the namespace's I/O
	// reference is held. A concurrent write to the range may change them
	// before they are sent, as it may tear a copy that overlaps it.
	SendBytes(off, n int64) (b []byte, ok bool)
}

// Completer receives the outcome of an asynchronous I/O: nil, or an error
// as ReadAt or WriteAt would have returned it.
type Completer interface {
	IODone(err error)
}

// Sentinel errors. The I/O methods return them unwrapped, so that the hot
// path does not allocate and the core can compare with errors.Is.
var (
	// ErrOutOfRange: the I/O reaches past Size(), or the offset is negative.
	// NVMe: LBA Out of Range.
	ErrOutOfRange = errors.New("backend: I/O beyond the end of the namespace")
	// ErrUnaligned: an offset or length is not a multiple of BlockSize().
	// The core should never send such an I/O; NVMe: Invalid Field in Command.
	ErrUnaligned = errors.New("backend: offset or length not a multiple of the block size")
	// ErrReadOnly: a write to a backend opened read-only. NVMe: Namespace is Write Protected.
	ErrReadOnly = errors.New("backend: namespace is read-only")
	// ErrClosed: the backend was used after Close.
	ErrClosed = errors.New("backend: use of closed backend")
	// ErrNotSupported: the backend kind does not exist on this platform
	// (platform.ErrNotSupported).
	ErrNotSupported = platform.ErrNotSupported
)

// Kind names returned by Backend.Kind.
const (
	KindMem   = "mem"
	KindNull  = "null"
	KindFile  = "file"
	KindBlock = "block"
)

// checkIO validates an I/O of n bytes at off against a backend of the given
// size and block size. It does not allocate.
func checkIO(off, n, size int64, bs int) error {
	if off < 0 || n < 0 || off > size || n > size-off {
		return ErrOutOfRange
	}
	if (off|n)&int64(bs-1) != 0 {
		return ErrUnaligned
	}
	return nil
}

// validBlockSize reports whether bs is a logical block size we serve.
func validBlockSize(bs int) bool { return bs == 512 || bs == 4096 }
