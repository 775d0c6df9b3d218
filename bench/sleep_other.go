//go:build !linux

package bench

import "time"

// sleepFor sleeps for d, cut short by stop within 10 ms.
func sleepFor(d time.Duration, stop func() bool) {
	end := time.Now().Add(d)
	for left := time.Until(end); left > 0 && !stop(); left = time.Until(end) {
		time.Sleep(min(left, 10*time.Millisecond))
	}
}

// warmSleep has nothing to measure here.
func warmSleep() {}
