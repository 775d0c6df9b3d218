package bench

import (
	"time"

	"golang.org/x/sys/unix"
)

// sleepFor blocks the calling thread for d with nanosleep, as fio's
// usec_sleep: Go's timers may wake a millisecond late, which at a 100 µs
// thinktime or a 2 ms rate gap is the difference between fio's numbers
// and others. The job's goroutine is locked to its thread, which has
// nothing else to do meanwhile; stop cuts the sleep short within 10 ms.
func sleepFor(d time.Duration, stop func() bool) {
	end := time.Now().Add(d)
	for {
		left := time.Until(end)
		if left <= 0 || stop() {
			return
		}
		ts := unix.NsecToTimespec(int64(min(left, 10*time.Millisecond)))
		_ = unix.Nanosleep(&ts, nil) // EINTR: the loop sleeps what is left
	}
}
