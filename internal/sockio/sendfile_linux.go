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
		if ok, retry := w.settle(n, errno); !retry {
			return ok
		}
	}
}
