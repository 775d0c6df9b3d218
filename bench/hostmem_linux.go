package bench

import (
	"os"

	"golang.org/x/sys/unix"
)

func mapAnon(size int) ([]byte, error) {
	b, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE|unix.MAP_POPULATE)
	if err != nil {
		return nil, os.NewSyscallError("mmap", err)
	}
	return b, nil
}

func unmapAnon(b []byte) error { return os.NewSyscallError("munmap", unix.Munmap(b)) }
