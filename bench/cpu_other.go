//go:build !linux

package bench

import (
	"fmt"
	"time"
)

func threadCPU() (usr, sys time.Duration)              { return 0, 0 }
func threadRusage() (minf, majf, ctx uint64)           { return 0, 0, 0 }
func processCPU() (usr, sys time.Duration, ctx uint64) { return 0, 0, 0 }
func pidCPU(int) (usr, sys time.Duration, err error) {
	return 0, 0, fmt.Errorf("target CPU accounting needs Linux /proc: %w", ErrNotSupported)
}
func isTerminal(uintptr) bool { return false }

func pinThread(cpus []int) (func(), error) {
	return nil, fmt.Errorf("cpus_allowed: CPU affinity is Linux-only: %w", ErrNotSupported)
}
