package bench

import (
	"testing"
	"time"
)

// TestSleepAsFio: a stall sleeps as fio's usec_sleep: nanosleep for the
// time left less nanosleep's granularity (measured once, as fio's
// fio_time_init: the worst of ten 1 µs sleeps), spinning the rest, so
// that a 50 µs thinktime is 50 µs, not the 100 µs or more a nanosleep
// of 50 µs takes (the timer slack).
func TestSleepAsFio(t *testing.T) {
	const g = 60 * time.Microsecond
	for _, tc := range []struct{ left, nap time.Duration }{
		{50 * time.Microsecond, 0}, // under the granularity: spin it all
		{60 * time.Microsecond, 0}, // at it: spin
		{100 * time.Microsecond, 40 * time.Microsecond},
		{2 * time.Millisecond, 1940 * time.Microsecond},
		{time.Second, 10 * time.Millisecond}, // 10 ms at a time, for stop
	} {
		if got := sleepNap(tc.left, g); got != tc.nap {
			t.Errorf("%v left, granularity %v: nanosleep %v, want %v", tc.left, g, got, tc.nap)
		}
	}
	if g := sleepGranularity(); g <= 0 || g > time.Millisecond {
		t.Errorf("nanosleep's granularity %v, want above 0 and at most 1 ms", g)
	}
	// A stop cuts it short at once.
	sleepFor(time.Hour, func() bool { return true })
}
