package gds

import (
	"errors"
	"fmt"
	"os"
	"unsafe"

	"github.com/flashpath/flashpath/gds/internal/cuda"
	"golang.org/x/sys/unix"
)

// pageSize is the host page: the unit the mmap reader pins.
var pageSize = int64(os.Getpagesize())

// The mmap reader (ReaderMmap) gives the GPU's copy engines the page
// cache itself: the file is mapped read-only, a chunk's pages are pinned
// where they lie with cuMemHostRegister(READ_ONLY) and copied to the GPU
// with no CPU copy, and unpinned when the copy has completed (the worker's
// event for that slot):
//
//	page cache ──pin (cuMemHostRegister)──▶ HtoDAsync(stream w) ──▶ GPU ──▶ unpin
//
// The CPU never touches the mapping (a file truncated under it fails the
// pin, it cannot SIGBUS the process). Chunks start on the page grid, so the
// chunks of one request never share a page; pages that another request in
// flight has pinned (overlapping requests) or that lie past the file's size
// at open go through the staging buffers with pread instead.

// mapForPinning maps the file read-only for the mmap reader; an empty file
// maps to nil (every chunk is then read, and ends, through pread).
func mapForPinning(dev *Device, f fileIO, direct bool) ([]byte, error) {
	if direct {
		return nil, errors.New("mmap reader: it pins the page cache's pages and cannot read with O_DIRECT (use --direct off or auto)")
	}
	fd, ok := f.(fdIO)
	if !ok {
		return nil, fmt.Errorf("mmap reader: the file is not an fd: %w", ErrNotSupported)
	}
	if v, err := dev.dev.Attribute(cuda.AttrReadOnlyHostRegisterSupported); err != nil || v == 0 {
		return nil, fmt.Errorf("mmap reader: GPU %d or its driver cannot pin read-only host memory "+
			"(CU_DEVICE_ATTRIBUTE_READ_ONLY_HOST_REGISTER_SUPPORTED is 0; use --reader pread): %w", dev.Info.Index, ErrNotSupported)
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(fd), &st); err != nil {
		return nil, os.NewSyscallError("fstat", err)
	}
	if st.Size == 0 {
		return nil, nil
	}
	m, err := unix.Mmap(int(fd), 0, int(st.Size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap reader: %w", os.NewSyscallError("mmap", err))
	}
	return m, nil
}

func unmap(m []byte) {
	if m != nil {
		unix.Munmap(m)
	}
}

// pin pins the pages that hold chunk c's wanted bytes, records their start
// in *slot for unpin, and returns the address to copy from. A chunk it
// does not pin goes through worker w's staging buffer and is copied before
// pin returns: then the address is nil.
func (b *bounce) pin(w int, c chunk, slot *unsafe.Pointer, s cuda.Stream, ev cuda.Event) (unsafe.Pointer, error) {
	lo, hi := c.fileOff+c.skip, c.fileOff+c.skip+c.n
	if hi > int64(len(b.mapped)) {
		return nil, b.copyStaged(w, c, s, ev) // the file has grown, or ends short
	}
	plo := lo / pageSize * pageSize
	phi := (hi + pageSize - 1) / pageSize * pageSize // within the mapping's last page
	base := unsafe.Pointer(unsafe.SliceData(b.mapped))
	p := unsafe.Add(base, plo)
	err := cuda.MemHostRegister(p, phi-plo, cuda.MemHostRegisterReadOnly)
	if err == nil {
		*slot = p
		return unsafe.Add(base, lo), nil
	}
	if cuda.IsResult(err, cuda.ErrorHostMemoryAlreadyRegistered) {
		return nil, b.copyStaged(w, c, s, ev) // another request in flight pinned some of these pages
	}
	return nil, fmt.Errorf("pin %d bytes of the page cache at file offset %d: %w", phi-plo, plo, err)
}

// unpin unpins the pages *slot holds, if any; their copy must be complete.
func unpin(slot *unsafe.Pointer) error {
	p := *slot
	if p == nil {
		return nil
	}
	*slot = nil
	if err := cuda.MemHostUnregister(p); err != nil {
		return fmt.Errorf("unpin page cache: %w", err)
	}
	return nil
}

// copyStaged moves chunk c's wanted bytes the pread way through worker
// w's staging buffer, a buffer at a time, each copy complete before the
// buffer is refilled.
func (b *bounce) copyStaged(w int, c chunk, s cuda.Stream, ev cuda.Event) error {
	b.staged.Add(1)
	buf, err := b.stagingBuf(w, 0)
	if err != nil {
		return err
	}
	off, end, dev := c.fileOff+c.skip, c.fileOff+c.skip+c.n, c.dev
	for off < end {
		n := min(end-off, int64(len(buf.b)))
		if err := b.read(buf.b[:n], chunk{fileOff: off, n: n}); err != nil {
			return err
		}
		if err := cuda.CopyHtoDAsyncRecord(cuda.DevicePtr(dev), unsafe.Pointer(&buf.b[0]), n, s, ev); err != nil {
			return err
		}
		if err := ev.Wait(); err != nil {
			return err
		}
		off, dev = off+n, dev+DevicePtr(n)
	}
	return nil
}
