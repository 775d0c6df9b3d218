//go:build !linux

package bench

import (
	"errors"
	"fmt"
	"time"
)

func threadCPU() (usr, sys time.Duration)              { return 0, 0 }
func processCPU() (usr, sys time.Duration, ctx uint64) { return 0, 0, 0 }
func pidCPU(int) (usr, sys time.Duration, err error) {
	return 0, 0, errors.New("target CPU accounting needs Linux /proc")
}
func isTerminal(uintptr) bool { return false }

func pinThread(cpus []int) (func(), error) {
	return nil, fmt.Errorf("cpus_allowed: CPU affinity is Linux-only: %w", ErrNotSupported)
}
