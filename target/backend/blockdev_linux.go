package backend

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// openError says why the file or block device (block) at path (st) did
// not open and, for a block device, what to do about it.
func openError(path string, st fs.FileInfo, block bool, err error) error {
	switch {
	case !block:
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("file %s: device is in use (mounted, or held by another program): unmount or release it: %w", path, err)
	case errors.Is(err, unix.EACCES):
		return fmt.Errorf("file %s: open: %w: the target's user may not read and write it (block devices are root:disk 0660: run the target in group disk)", path, err)
	case errors.Is(err, unix.EPERM):
		// Ownership and mode allow it, or the error would be EACCES: a
		// device cgroup (systemd's DeviceAllow=) refuses the device.
		also := ""
		if kind := blockKind(st); kind != "" {
			also = "; DeviceAllow=block-" + kind + " rw allows every " + kind + " device"
		}
		return fmt.Errorf("file %s: open: %w: a device cgroup refuses the device (under systemd: add DeviceAllow=%s rw with systemctl edit flashpath-target, then restart it%s)", path, err, path, also)
	}
	return fmt.Errorf("file %s: open: %w", path, err)
}

// blockKind is the name of the driver of the block device st, as
// DeviceAllow=block-NAME takes it, or "" where /proc/devices is out of
// reach (systemd's ProcSubset=pid hides it).
func blockKind(st fs.FileInfo) string {
	if st == nil {
		return ""
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	f, err := os.Open("/proc/devices")
	if err != nil {
		return ""
	}
	defer f.Close()
	name, _ := blockDriver(f, unix.Major(sys.Rdev))
	return name
}

// blockDriver reads /proc/devices (r) for the driver that registered the
// block major; systemd's DeviceAllow=block-NAME names the same.
func blockDriver(r io.Reader, major uint32) (string, bool) {
	sc := bufio.NewScanner(r)
	inBlock := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "":
			continue
		case strings.HasSuffix(line, "devices:"):
			inBlock = line == "Block devices:"
			continue
		case !inBlock:
			continue
		}
		num, name, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(num, 10, 32)
		if err == nil && uint32(n) == major {
			return strings.TrimSpace(name), true
		}
	}
	return "", false
}
