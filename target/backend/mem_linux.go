package backend

import (
	"fmt"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Mem is a backend in anonymous memory, lost when the process exits. The
// mapping uses MAP_NORESERVE, so a large namespace ("mem:1TiB") costs only
// the pages that are written; WriteZeroes and Discard give whole pages back
// to the kernel with madvise(MADV_DONTNEED).
type Mem struct {
	b      []byte // the whole mapping, page-aligned, len(b) == size
	bs     int
	page   int64
	closed atomic.Bool
}

var (
	_ Backend   = (*Mem)(nil)
	_ MemSource = (*Mem)(nil)
)

// NewMem maps size bytes of anonymous memory with logical block size
// blockSize (512 or 4096; 0 means 512). size must be a positive multiple of
// the block size. Pages are committed only when first written.
func NewMem(size int64, blockSize int) (*Mem, error) {
	bs, err := checkGeometry("mem", size, blockSize)
	if err != nil {
		return nil, err
	}
	if int64(int(size)) != size {
		return nil, fmt.Errorf("mem: size %s does not fit in the address space", formatSize(size))
	}
	b, err := unix.Mmap(-1, 0, int(size), unix.PROT_READ|unix.PROT_WRITE,
		unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_NORESERVE)
	if err != nil {
		return nil, fmt.Errorf("mem: map %s of anonymous memory (lower the size, or check vm.overcommit_memory and ulimit -v): %w",
			formatSize(size), os.NewSyscallError("mmap", err))
	}
	return &Mem{b: b, bs: bs, page: int64(unix.Getpagesize())}, nil
}

// Bytes returns the backing memory, for transports that register it for
// RDMA. It is valid until Close.
func (m *Mem) Bytes() []byte { return m.b }

// Size returns the capacity in bytes.
func (m *Mem) Size() int64 { return int64(len(m.b)) }

// BlockSize returns the logical block size in bytes.
func (m *Mem) BlockSize() int { return m.bs }

// ReadAt copies the range at off into p.
func (m *Mem) ReadAt(p []byte, off int64) error {
	if err := m.check(off, int64(len(p))); err != nil {
		return err
	}
	copy(p, m.b[off:])
	return nil
}

// SendBytes returns the n bytes at off, for a transport to send from
// (MemSource).
func (m *Mem) SendBytes(off, n int64) ([]byte, bool) {
	if m.check(off, n) != nil {
		return nil, false
	}
	return m.b[off : off+n : off+n], true
}

// WriteAt copies p into the range at off. Memory has no volatile cache, so
// fua changes nothing.
func (m *Mem) WriteAt(p []byte, off int64, fua bool) error {
	if err := m.check(off, int64(len(p))); err != nil {
		return err
	}
	copy(m.b[off:], p)
	return nil
}

// Flush does nothing: there is no cache in front of memory.
func (m *Mem) Flush() error {
	if m.closed.Load() {
		return ErrClosed
	}
	return nil
}

// WriteZeroes zeros n bytes at off: whole pages are dropped with
// madvise(MADV_DONTNEED) (their memory is freed; reads fault in zero pages),
// the partial pages at the edges are cleared.
func (m *Mem) WriteZeroes(off, n int64) error {
	if err := m.check(off, n); err != nil {
		return err
	}
	end := off + n
	lo := (off + m.page - 1) &^ (m.page - 1) // first page boundary at or after off
	hi := end &^ (m.page - 1)                // last page boundary at or before end
	if lo >= hi {
		clear(m.b[off:end])
		return nil
	}
	clear(m.b[off:lo])
	clear(m.b[hi:end])
	if err := unix.Madvise(m.b[lo:hi], unix.MADV_DONTNEED); err != nil {
		// Cannot happen for a private anonymous mapping; zero by hand.
		clear(m.b[lo:hi])
	}
	return nil
}

// Discard deallocates n bytes at off; it is WriteZeroes, which frees whole
// pages.
func (m *Mem) Discard(off, n int64) error { return m.WriteZeroes(off, n) }

// VolatileWriteCache returns false: a write is as durable as memory gets
// when it returns.
func (m *Mem) VolatileWriteCache() bool { return false }

// Kind returns "mem".
func (m *Mem) Kind() string { return KindMem }

// Close unmaps the memory. It must not run concurrently with other methods;
// later calls return ErrClosed.
func (m *Mem) Close() error {
	if m.closed.Swap(true) {
		return ErrClosed
	}
	if err := unix.Munmap(m.b); err != nil {
		return fmt.Errorf("mem: unmap: %w", os.NewSyscallError("munmap", err))
	}
	return nil
}

func (m *Mem) check(off, n int64) error {
	if m.closed.Load() {
		return ErrClosed
	}
	return checkIO(off, n, int64(len(m.b)), m.bs)
}
