package backend

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/bits"
	"os"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FileOptions configures OpenFile. The zero value opens an existing file or
// block device read-write at its current size, with O_DIRECT where possible.
type FileOptions struct {
	// Size is the namespace capacity in bytes, a multiple of the block size.
	// 0 means the current size of the file (rounded down to whole blocks;
	// up, with zeros past the end, when ReadOnly) or
	// device. A regular file that is missing is created, and one that is
	// shorter is extended (ftruncate) to Size; a longer file or device is
	// served up to Size and not shrunk.
	Size int64
	// BlockSize is the logical block size, 512 or 4096. 0 means the
	// device's logical block size (BLKSSZGET) for block devices and 512 for
	// regular files. It may not be smaller than a device's.
	BlockSize int
	// Buffered opens without O_DIRECT, through the page cache.
	Buffered bool
	// ReadOnly opens the file read-only; writes fail with ErrReadOnly.
	ReadOnly bool
	// SyncIO does reads and writes with pread/pwrite on the caller's
	// goroutine instead of io_uring (ReadAsync and WriteAsync decline).
	SyncIO bool
}

// File is a backend on a regular file or a block device. It opens with
// O_DIRECT unless the filesystem refuses it (see Direct), writes with
// Force Unit Access through pwritev2(RWF_DSYNC), and flushes with fdatasync.
type File struct {
	f        *os.File // owns fd
	fd       int
	path     string
	size     int64
	bs       int
	block    bool // a block device rather than a regular file
	direct   bool
	readOnly bool
	memAlign uintptr // O_DIRECT buffer alignment; a power of two

	noRWF     atomic.Bool  // pwritev2(RWF_DSYNC) unsupported: pwrite, then fdatasync
	noSend    atomic.Bool  // sending from the descriptor failed: reads go through ReadAt
	noCstat   atomic.Bool  // cachestat(2) failed (before Linux 6.5): SendSource does not ask it
	zeroStep  atomic.Int32 // first method to try in WriteZeroes (a zeroMethod)
	discStep  atomic.Int32 // first method to try in Discard (a zeroMethod)
	closed    atomic.Bool
	bounce    sync.Pool // *[]byte, bounceSize bytes aligned to bounceAlign
	bounceAln uintptr

	syncIO bool
	aio    aioSet // io_uring rings for ReadAsync and WriteAsync
}

var (
	_ Backend    = (*File)(nil)
	_ FileSource = (*File)(nil)
)

// bounceSize is the size of the aligned buffers that carry I/O whose buffer
// O_DIRECT cannot use; larger I/O goes through in several pieces.
const bounceSize = 128 << 10

// OpenFile opens the regular file or block device at path as a backend.
// See FileOptions for how size and block size are chosen.
func OpenFile(path string, opts FileOptions) (*File, error) {
	if opts.Size < 0 {
		return nil, fmt.Errorf("file %s: size %d: give a positive size, or 0 for the current size", path, opts.Size)
	}
	if opts.BlockSize != 0 && !validBlockSize(opts.BlockSize) {
		return nil, fmt.Errorf("file %s: block size %d: use 512 or 4096", path, opts.BlockSize)
	}
	st, err := os.Stat(path)
	exists := err == nil
	switch {
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("file %s: %w", path, err)
	case !exists && opts.ReadOnly:
		return nil, fmt.Errorf("file %s: does not exist, and a read-only backend cannot create it: give an existing file", path)
	case !exists && opts.Size == 0:
		return nil, fmt.Errorf("file %s: size missing and file does not exist: give a size, e.g. file:%s:1GiB", path, path)
	}
	block := exists && st.Mode()&fs.ModeDevice != 0 && st.Mode()&fs.ModeCharDevice == 0
	if exists && !block && !st.Mode().IsRegular() {
		return nil, fmt.Errorf("file %s: is a %v, not a regular file or block device: give a file or a block device", path, st.Mode().Type())
	}
	if !block { // a device's block size is known once it is open
		if err := checkSizeAligned(path, opts.Size, cmp.Or(opts.BlockSize, 512)); err != nil {
			return nil, err
		}
	}

	flags := os.O_RDWR | unix.O_CLOEXEC
	switch {
	case opts.ReadOnly:
		flags = os.O_RDONLY | unix.O_CLOEXEC
	case block:
		flags |= os.O_EXCL // for a block device: fail if mounted or claimed
	case !exists:
		flags |= os.O_CREATE
	}
	direct := !opts.Buffered
	var osf *os.File
	if direct {
		osf, err = os.OpenFile(path, flags|unix.O_DIRECT, 0o600)
		if errors.Is(err, unix.EINVAL) { // e.g. tmpfs before Linux 6.6
			direct = false
		}
	}
	if !direct {
		osf, err = os.OpenFile(path, flags, 0o600)
	}
	if err != nil {
		return nil, openError(path, st, block, err)
	}
	f := &File{f: osf, fd: int(osf.Fd()), path: path, block: block, direct: direct, readOnly: opts.ReadOnly, syncIO: opts.SyncIO}
	if err := f.setup(opts); err != nil {
		osf.Close()
		if !exists {
			os.Remove(path) // made by this call: leave nothing behind
		}
		return nil, err
	}
	f.bounceAln = max(f.memAlign, 4096)
	f.bounce.New = func() any {
		raw := make([]byte, bounceSize+int(f.bounceAln))
		skip := int(-uintptr(unsafe.Pointer(&raw[0])) & (f.bounceAln - 1))
		b := raw[skip : skip+bounceSize : skip+bounceSize]
		return &b
	}
	return f, nil
}

// setup finds the size, block size and O_DIRECT alignment of the open file.
func (f *File) setup(opts FileOptions) error {
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return fmt.Errorf("file %s: %w", f.path, os.NewSyscallError("fstat", err))
	}
	if f.block {
		devSize, err := unix.IoctlGetUint64(f.fd, unix.BLKGETSIZE64)
		if err != nil {
			return fmt.Errorf("file %s: get device size: %w", f.path, os.NewSyscallError("ioctl BLKGETSIZE64", err))
		}
		lbs, err := unix.IoctlGetInt(f.fd, unix.BLKSSZGET)
		if err != nil {
			return fmt.Errorf("file %s: get logical block size: %w", f.path, os.NewSyscallError("ioctl BLKSSZGET", err))
		}
		f.bs = opts.BlockSize
		if f.bs == 0 {
			f.bs = lbs
		}
		if !validBlockSize(f.bs) || f.bs < lbs {
			return fmt.Errorf("file %s: the device has %d-byte logical blocks and block size %d was asked: use a block size of 512 or 4096, not below the device's",
				f.path, lbs, f.bs)
		}
		f.memAlign = uintptr(lbs)
		f.size = int64(devSize) / int64(f.bs) * int64(f.bs)
		if opts.Size > f.size {
			return fmt.Errorf("file %s: size %s asked, but the device holds %s: give a smaller size or none",
				f.path, formatSize(opts.Size), formatSize(int64(devSize)))
		}
	} else {
		f.bs = opts.BlockSize
		if f.bs == 0 {
			f.bs = 512
		}
		f.memAlign = uintptr(f.bs)
		f.size = st.Size / int64(f.bs) * int64(f.bs)
		if f.readOnly {
			// A file exported read-only (a checkpoint shard, say) is served
			// byte for byte: its last partial block too, zero-filled past
			// the end of the file, as reads past EOF are.
			f.size = (st.Size + int64(f.bs) - 1) / int64(f.bs) * int64(f.bs)
		}
		if opts.Size == 0 && f.size == 0 {
			return fmt.Errorf("file %s: the file holds no whole %d-byte block: give a size, e.g. file:%s:1GiB", f.path, f.bs, f.path)
		}
		if opts.Size > st.Size && !f.readOnly {
			if err := unix.Ftruncate(f.fd, opts.Size); err != nil {
				return fmt.Errorf("file %s: extend to %s (is the filesystem full?): %w", f.path, formatSize(opts.Size), os.NewSyscallError("ftruncate", err))
			}
		}
	}
	if opts.Size != 0 {
		if err := checkSizeAligned(f.path, opts.Size, f.bs); err != nil {
			return err
		}
		f.size = opts.Size
	}
	if f.direct {
		f.checkDirect()
	}
	return nil
}

// checkSizeAligned refuses a size (0: none given) that is not a whole
// number of blocks.
func checkSizeAligned(path string, size int64, bs int) error {
	if size%int64(bs) != 0 {
		return fmt.Errorf("file %s: size %d is not a multiple of the block size %d: round it, e.g. to %d",
			path, size, bs, size/int64(bs)*int64(bs))
	}
	return nil
}

// checkDirect asks the kernel (statx STATX_DIOALIGN, Linux 6.1+) which
// alignment O_DIRECT needs here. If it needs a larger offset alignment than
// the block size, or none is possible, O_DIRECT is turned off.
func (f *File) checkDirect() {
	var stx unix.Statx_t
	err := unix.Statx(f.fd, "", unix.AT_EMPTY_PATH, unix.STATX_DIOALIGN, &stx)
	if err != nil || stx.Mask&unix.STATX_DIOALIGN == 0 {
		return // unknown: keep the block size as the alignment
	}
	if stx.Dio_offset_align != 0 && int(stx.Dio_offset_align) <= f.bs && bits.OnesCount32(stx.Dio_mem_align) == 1 {
		f.memAlign = max(uintptr(stx.Dio_mem_align), 1)
		return
	}
	fl, err := unix.FcntlInt(uintptr(f.fd), unix.F_GETFL, 0)
	if err == nil {
		_, err = unix.FcntlInt(uintptr(f.fd), unix.F_SETFL, fl&^unix.O_DIRECT)
	}
	if err == nil {
		f.direct = false
	}
}

// Direct reports whether I/O bypasses the page cache (O_DIRECT). It is
// false when FileOptions.Buffered was set or the filesystem refused
// O_DIRECT (for example tmpfs before Linux 6.6).
func (f *File) Direct() bool { return f.direct }

// ReadOnly reports whether the backend was opened read-only.
func (f *File) ReadOnly() bool { return f.readOnly }

// Path returns the file or device path the backend was opened with.
func (f *File) Path() string { return f.path }

// Size returns the capacity in bytes.
func (f *File) Size() int64 { return f.size }

// BlockSize returns the logical block size in bytes.
func (f *File) BlockSize() int { return f.bs }

// Kind returns "block" for a block device and "file" for a regular file.
func (f *File) Kind() string {
	if f.block {
		return KindBlock
	}
	return KindFile
}

// VolatileWriteCache returns true: the page cache or the drive's cache may
// hold acknowledged writes until Flush.
func (f *File) VolatileWriteCache() bool { return true }

func (f *File) check(off, n int64) error {
	if f.closed.Load() {
		return ErrClosed
	}
	return checkIO(off, n, f.size, f.bs)
}

func (f *File) checkWrite(off, n int64) error {
	if err := f.check(off, n); err != nil {
		return err
	}
	if f.readOnly {
		return ErrReadOnly
	}
	return nil
}

// aligned reports whether p can be handed to the kernel as is.
func (f *File) aligned(p []byte) bool {
	return !f.direct || uintptr(unsafe.Pointer(unsafe.SliceData(p)))&(f.memAlign-1) == 0
}

// ReadAt reads len(p) bytes at off. Blocks past the end of a file that is
// shorter than Size read as zeros.
func (f *File) ReadAt(p []byte, off int64) error {
	if err := f.check(off, int64(len(p))); err != nil {
		return err
	}
	if f.aligned(p) {
		return f.pread(p, off)
	}
	bp := f.bounce.Get().(*[]byte)
	defer f.bounce.Put(bp)
	for len(p) > 0 {
		b := (*bp)[:min(len(p), bounceSize)]
		if err := f.pread(b, off); err != nil {
			return err
		}
		copy(p, b)
		p = p[len(b):]
		off += int64(len(b))
	}
	return nil
}

func (f *File) pread(p []byte, off int64) error {
	for {
		n, err := unix.Pread(f.fd, p, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "read", Path: f.path, Err: err}
		}
		return f.readRest(p, off, n)
	}
}

// readRest continues a read of p at off of which n bytes arrived: a short
// read of whole blocks goes on, anything else is the end of the file and
// the rest reads as zeros.
func (f *File) readRest(p []byte, off int64, n int) error {
	switch {
	case n >= len(p):
		return nil
	case n == 0 || n%f.bs != 0:
		clear(p[n:])
		return nil
	}
	return f.pread(p[n:], off+int64(n))
}

// SendSource hands reads of a file opened without O_DIRECT to a
// transport's sendfile(2), straight from the page cache, where the cache
// holds the whole range: sendfile would read missing pages on the
// connection's goroutine, one read at a time, where io_uring keeps many
// in flight (and fills the cache for the next time).
func (f *File) SendSource(off, n int64) (int, bool) {
	if f.direct || f.noSend.Load() || f.check(off, n) != nil || !f.cached(off, n) {
		return 0, false
	}
	return f.fd, true
}

// cached reports whether the page cache holds every page of n bytes at
// off (cachestat(2)). Where the kernel cannot tell (before Linux 6.5),
// it says yes, and stops asking.
func (f *File) cached(off, n int64) bool {
	if f.noCstat.Load() {
		return true
	}
	ps := int64(pageSize)
	r := unix.CachestatRange{Off: uint64(off), Len: uint64(n)}
	var st unix.Cachestat_t
	if err := unix.Cachestat(uint(f.fd), &r, &st, 0); err != nil {
		f.noCstat.Store(true)
		return true
	}
	return int64(st.Cache) >= (off+n+ps-1)/ps-off/ps
}

var pageSize = os.Getpagesize()

// SendFailed makes later reads go through ReadAt.
func (f *File) SendFailed(error) { f.noSend.Store(true) }

// WriteAt writes p at off. With fua it returns once the data is on stable
// media (pwritev2 with RWF_DSYNC, or pwrite and fdatasync where the kernel
// lacks it).
func (f *File) WriteAt(p []byte, off int64, fua bool) error {
	if err := f.checkWrite(off, int64(len(p))); err != nil {
		return err
	}
	if f.aligned(p) {
		return f.pwrite(p, off, fua)
	}
	bp := f.bounce.Get().(*[]byte)
	defer f.bounce.Put(bp)
	for len(p) > 0 {
		b := (*bp)[:min(len(p), bounceSize)]
		copy(b, p)
		if err := f.pwrite(b, off, fua); err != nil {
			return err
		}
		p = p[len(b):]
		off += int64(len(b))
	}
	return nil
}

func (f *File) pwrite(p []byte, off int64, fua bool) error {
	owed := false // an fdatasync is owed for fua
	for len(p) > 0 {
		var n int
		var err error
		if fua && !f.noRWF.Load() {
			n, err = pwritev2(f.fd, p, off, unix.RWF_DSYNC)
			if err == unix.EOPNOTSUPP || err == unix.ENOSYS {
				f.noRWF.Store(true)
				continue
			}
		} else {
			n, err = unix.Pwrite(f.fd, p, off)
			owed = owed || fua
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "write", Path: f.path, Err: err}
		}
		if n == 0 {
			return &os.PathError{Op: "write", Path: f.path, Err: io.ErrShortWrite}
		}
		p = p[n:]
		off += int64(n)
	}
	if owed {
		return f.fdatasync()
	}
	return nil
}

// pwritev2 is unix.Pwritev2 for a single buffer, without its allocation.
func pwritev2(fd int, p []byte, off int64, flags int) (int, error) {
	iov := unix.Iovec{Base: unsafe.SliceData(p)}
	iov.SetLen(len(p))
	lo, hi := uintptr(off), uintptr(uint64(off)>>(bits.UintSize-1)>>1)
	n, _, e := unix.Syscall6(unix.SYS_PWRITEV2, uintptr(fd), uintptr(unsafe.Pointer(&iov)), 1, lo, hi, uintptr(flags))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func (f *File) fdatasync() error {
	for {
		err := unix.Fdatasync(f.fd)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "fdatasync", Path: f.path, Err: err}
		}
		return nil
	}
}

// Flush makes every acknowledged write durable (fdatasync, which also
// flushes the drive's cache).
func (f *File) Flush() error {
	if f.closed.Load() {
		return ErrClosed
	}
	if f.readOnly {
		return nil
	}
	return f.fdatasync()
}

// Ways to zero a range, in the order they are tried.
const (
	zeroFallocZero  = iota // fallocate(FALLOC_FL_ZERO_RANGE|FALLOC_FL_KEEP_SIZE)
	zeroFallocPunch        // fallocate(FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE); on a block device: write zeroes, unmapping allowed
	zeroIoctl              // ioctl(BLKZEROOUT) on a block device
	zeroWrite              // write zeros
)

// WriteZeroes zeros n bytes at off, keeping them allocated where the
// filesystem can: fallocate(FALLOC_FL_ZERO_RANGE), else punching a hole,
// else writing zeros. On a block device: ioctl(BLKZEROOUT), else writing
// zeros.
func (f *File) WriteZeroes(off, n int64) error {
	if err := f.checkWrite(off, n); err != nil {
		return err
	}
	if f.block {
		return f.zero(&f.zeroStep, off, n, zeroIoctl, zeroWrite)
	}
	return f.zero(&f.zeroStep, off, n, zeroFallocZero, zeroFallocPunch, zeroWrite)
}

// Discard deallocates n bytes at off; they read as zeros afterwards. On a
// regular file it punches a hole (else zeros the range as WriteZeroes
// does). On a block device it uses fallocate(FALLOC_FL_PUNCH_HOLE), which
// the kernel turns into a Write Zeroes that may unmap and so guarantees
// zeros, unlike BLKDISCARD; else ioctl(BLKZEROOUT), else writing zeros.
func (f *File) Discard(off, n int64) error {
	if err := f.checkWrite(off, n); err != nil {
		return err
	}
	if f.block {
		return f.zero(&f.discStep, off, n, zeroFallocPunch, zeroIoctl, zeroWrite)
	}
	return f.zero(&f.discStep, off, n, zeroFallocPunch, zeroFallocZero, zeroWrite)
}

// zero tries each method in turn, skipping those found unsupported before
// (step records the first one worth trying).
func (f *File) zero(step *atomic.Int32, off, n int64, methods ...int) error {
	if n == 0 {
		return nil
	}
	for i, m := range methods {
		if int32(i) < step.Load() && m != zeroWrite {
			continue
		}
		var err error
		switch m {
		case zeroFallocZero:
			err = fallocate(f.fd, unix.FALLOC_FL_ZERO_RANGE|unix.FALLOC_FL_KEEP_SIZE, off, n)
			err = wrapSyscall(err, "fallocate", f.path)
		case zeroFallocPunch:
			err = fallocate(f.fd, unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, off, n)
			err = wrapSyscall(err, "fallocate", f.path)
		case zeroIoctl:
			r := [2]uint64{uint64(off), uint64(n)}
			_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(f.fd), unix.BLKZEROOUT, uintptr(unsafe.Pointer(&r)))
			if e != 0 {
				err = wrapSyscall(e, "ioctl BLKZEROOUT", f.path)
			}
		case zeroWrite:
			return f.writeZeros(off, n)
		}
		if !unsupported(err) {
			return err
		}
		step.CompareAndSwap(int32(i), int32(i+1))
	}
	return nil
}

func fallocate(fd int, mode uint32, off, n int64) error {
	for {
		err := unix.Fallocate(fd, mode, off, n)
		if err != unix.EINTR {
			return err
		}
	}
}

func wrapSyscall(err error, op, path string) error {
	if err == nil {
		return nil
	}
	return &os.PathError{Op: op, Path: path, Err: err}
}

// unsupported reports whether err says that a zeroing method does not
// exist here, so that the next one should be tried.
func unsupported(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) ||
		errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOTTY)
}

// zeroChunk is a block of zeros, aligned for O_DIRECT, that writeZeros
// writes from. It is never written to.
var zeroChunk = sync.OnceValue(func() []byte {
	const align = 64 << 10
	raw := make([]byte, bounceSize+align)
	skip := int(-uintptr(unsafe.Pointer(&raw[0])) & (align - 1))
	return raw[skip : skip+bounceSize : skip+bounceSize]
})

func (f *File) writeZeros(off, n int64) error {
	z := zeroChunk()
	for n > 0 {
		c := min(n, int64(len(z)))
		if err := f.WriteAt(z[:c], off, false); err != nil {
			return err
		}
		off += c
		n -= c
	}
	return nil
}

// Close closes the file. It must not run concurrently with other methods;
// later calls return ErrClosed.
func (f *File) Close() error {
	if f.closed.Swap(true) {
		return ErrClosed
	}
	f.closeAsync()
	if err := f.f.Close(); err != nil {
		return fmt.Errorf("file %s: close: %w", f.path, err)
	}
	return nil
}
