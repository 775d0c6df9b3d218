package sockio

import (
	"syscall"

	"golang.org/x/sys/unix"
)

const haveSendfile = true

// sendfileMax bounds one sendfile(2) call (Linux sends at most about 2 GiB
// per call anyway).
const sendfileMax = 1 << 30

// sendOnce does one sendfile(2) of what is left of the file span; false
// asks the netpoller to wait until the socket takes more. It is a plain
// (not raw) system call: on pages not yet in the page cache it reads the
// file, and may sleep.
func (w *Writer) sendOnce(fd uintptr) bool {
	for {
		n, err := unix.Sendfile(int(fd), w.sfFD, &w.sfOff, int(min(w.sfLeft, sendfileMax)))
		errno, _ := err.(syscall.Errno)
		switch {
		case err == nil:
			w.n = n
		case errno == syscall.EINTR:
			continue
		case errno == syscall.EAGAIN:
			if w.Timeout > 0 && !w.deadline {
				w.again = true
				return true // set the deadline first
			}
			return false
		default:
			w.errno = errno
		}
		return true
	}
}
