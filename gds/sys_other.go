//go:build !linux

package gds

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// fdatasync is fsync, which also writes the metadata fdatasync may skip.
func fdatasync(fd int) error { return unix.Fsync(fd) }

func fadviseDontNeed(int) error {
	return fmt.Errorf("posix_fadvise DONTNEED needs Linux, this is %s: %w", runtime.GOOS, ErrNotSupported)
}

func openDirect(name string, _ int) (int, error) {
	return -1, fmt.Errorf("open %s O_DIRECT: needs Linux, this is %s: %w", name, runtime.GOOS, ErrNotSupported)
}
