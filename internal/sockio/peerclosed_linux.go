package sockio

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// PeerClosed reports whether the peer of nc has closed its end (a FIN or
// a reset has arrived), without reading: a goroutine busy elsewhere, or
// with data still buffered before the end, has not seen it yet. It polls
// the socket for POLLRDHUP, POLLHUP or POLLERR and never blocks, so it
// may run beside the connection's reader. nc is the socket itself (under
// TLS, the connection TLS runs on); false where it is not a socket (a
// pipe in tests).
func PeerClosed(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var ev int16
	rc.Control(func(fd uintptr) {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
		if n, err := unix.Poll(fds, 0); err == nil && n == 1 {
			ev = fds[0].Revents
		}
	})
	return ev&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR) != 0
}
