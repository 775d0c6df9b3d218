//go:build linux || darwin

package sockio

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

const rawWritev = true

// maxIovecs stays within every platform's IOV_MAX (1024 on Linux and
// macOS).
const maxIovecs = 1024

type iovec = unix.Iovec

func makeIovec(b []byte) iovec {
	v := unix.Iovec{Base: &b[0]}
	v.SetLen(len(b))
	return v
}

// writev is writev(2) as a raw system call: the scheduler is not told.
// The socket is non-blocking, so the call does not sleep.
func writev(fd uintptr, iov []iovec) (int, syscall.Errno) {
	n, _, e := unix.RawSyscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	return int(n), e
}
