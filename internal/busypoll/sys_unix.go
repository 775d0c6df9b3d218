//go:build unix

package busypoll

import (
	"syscall"

	"golang.org/x/sys/unix"
)

func readNonblock(fd int, p []byte) (int, error) { return syscall.Read(fd, p) }

type pollFd = unix.PollFd

func pollIn(fd int32) pollFd { return unix.PollFd{Fd: fd, Events: unix.POLLIN} }

// anyReadable reports whether any of fds has input (or an error or
// hang-up, which a read must see), without waiting.
func anyReadable(fds []pollFd) bool {
	n, err := unix.Poll(fds, 0)
	return err == nil && n > 0
}
