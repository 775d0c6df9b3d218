package bufpool

import (
	"os"

	"golang.org/x/sys/unix"
)

// Map returns size bytes, rounded up to whole pages, of anonymous
// page-aligned memory that the Go heap never moves: what a NIC or the
// kernel may keep the address of (register it once, then hand any part of
// it to the hardware without a copy). The pool's slabs, RDMA queue
// buffers and the bench's job buffers come from here. Unmap returns it.
func Map(size int) ([]byte, error) {
	page := unix.Getpagesize()
	size = (size + page - 1) &^ (page - 1)
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANON)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	return b, nil
}

// Unmap returns memory from Map; nothing may use it any more (unregister
// it first).
func Unmap(b []byte) error { return os.NewSyscallError("munmap", unix.Munmap(b)) }
