package bench

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// sleepGranularity is how late nanosleep wakes at most, measured once
// as fio's fio_time_init measures it: the longest of ten sleeps of 1 µs
// (about the timer slack, 50 µs, plus the wake-up); at most 1 ms, so
// that a measurement the scheduler disturbed does not make every sleep
// spin long.
var sleepGranularity = sync.OnceValue(func() time.Duration {
	var g time.Duration
	for range 10 {
		ts := unix.NsecToTimespec(int64(time.Microsecond))
		t0 := time.Now()
		_ = unix.Nanosleep(&ts, nil)
		g = max(g, time.Since(t0))
	}
	return min(g, time.Millisecond)
})

// warmSleep measures sleepGranularity before a job that stalls starts
// (fio measures it at start-up), so that its first stall is not longer.
func warmSleep() { sleepGranularity() }

// sleepFor blocks the calling thread for d as fio's usec_sleep does:
// nanosleep for all but the granularity nanosleep overshoots by, then
// spin what is left (all of d when it is that short). A bare nanosleep
// wakes some 50-60 µs late, which at a 50 µs thinktime costs a third or
// more of the IOPS fio gets; Go's timers may wake a millisecond late.
// Stop cuts the sleep short within 10 ms.
func sleepFor(d time.Duration, stop func() bool) {
	end := time.Now().Add(d)
	g := sleepGranularity()
	for {
		left := time.Until(end)
		if left <= 0 || stop() {
			return
		}
		nap := sleepNap(left, g)
		if nap == 0 {
			for time.Now().Before(end) {
			}
			return
		}
		ts := unix.NsecToTimespec(int64(nap))
		_ = unix.Nanosleep(&ts, nil) // EINTR: the loop sleeps what is left
	}
}

// sleepNap is how long sleepFor's next nanosleep is with left to go and
// nanosleep's granularity g: what fio's usec_sleep asks for, left less
// g, at most 10 ms at a time; 0 when left is within g: spin the rest.
func sleepNap(left, g time.Duration) time.Duration {
	if left <= g {
		return 0
	}
	return min(left-g, 10*time.Millisecond)
}
