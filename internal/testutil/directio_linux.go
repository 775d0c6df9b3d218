package testutil

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"

	"github.com/flashpath/flashpath/internal/platform"
)

// DirectIO reports whether files in dir open O_DIRECT: nil, an error
// wrapping platform.ErrNotSupported where the file system refuses direct
// I/O (EINVAL: tmpfs before Linux 6.6), or any other error of the probe.
func DirectIO(dir string) error {
	name := filepath.Join(dir, ".directio-probe")
	fd, err := unix.Open(name, unix.O_CREAT|unix.O_RDWR|unix.O_DIRECT|unix.O_CLOEXEC, 0o600)
	if errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("O_DIRECT in %s: the file system refuses direct I/O (tmpfs?): %w", dir, platform.ErrNotSupported)
	}
	if err != nil {
		return fmt.Errorf("O_DIRECT probe: %w", os.NewSyscallError("open", err))
	}
	unix.Close(fd)
	return os.Remove(name)
}
