package gds

import "golang.org/x/sys/unix"

// The few file calls that differ between Linux and other systems.

func fdatasync(fd int) error { return unix.Fdatasync(fd) }

func fadviseDontNeed(fd int) error { return unix.Fadvise(fd, 0, 0, unix.FADV_DONTNEED) }

// openDirect opens name O_DIRECT (bypassing the page cache) and O_CLOEXEC.
func openDirect(name string, flags int) (int, error) {
	return unix.Open(name, flags|unix.O_DIRECT|unix.O_CLOEXEC, 0)
}
