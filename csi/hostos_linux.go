package csi

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

func (h *HostOS) Mount(source, target, fstype string, readOnly bool, options []string) error {
	flags, data := mountFlags(options)
	if readOnly {
		flags |= syscall.MS_RDONLY
	}
	if fstype != "" {
		if err := syscall.Mount(source, target, fstype, flags, data); err != nil {
			return os.NewSyscallError("mount", fmt.Errorf("%s on %s (%s, %q): %w", source, target, fstype, data, err))
		}
		return nil
	}
	if err := syscall.Mount(source, target, "", syscall.MS_BIND, ""); err != nil {
		return os.NewSyscallError("mount", fmt.Errorf("bind %s on %s: %w", source, target, err))
	}
	if flags != 0 {
		// A bind mount takes its flags (read-only, nosuid...) on a remount.
		if err := syscall.Mount("", target, "", syscall.MS_BIND|syscall.MS_REMOUNT|flags, ""); err != nil {
			syscall.Unmount(target, 0)
			return os.NewSyscallError("mount", fmt.Errorf("remount %s with %v: %w", target, options, err))
		}
	}
	return nil
}

// mountOptionFlags are mount(8)'s generic options, as mount(2) flags;
// "rw" and "defaults" set none.
var mountOptionFlags = map[string]uintptr{
	"ro": unix.MS_RDONLY, "rw": 0, "defaults": 0, "": 0,
	"noatime": unix.MS_NOATIME, "nodiratime": unix.MS_NODIRATIME, "relatime": unix.MS_RELATIME,
	"strictatime": unix.MS_STRICTATIME, "lazytime": unix.MS_LAZYTIME,
	"nosuid": unix.MS_NOSUID, "nodev": unix.MS_NODEV, "noexec": unix.MS_NOEXEC,
	"sync": unix.MS_SYNCHRONOUS, "dirsync": unix.MS_DIRSYNC,
}

// mountFlags splits mount options as mount(8) does: the generic ones are
// mount(2) flags, the rest the file system's data ("discard",
// "stripe=4").
func mountFlags(options []string) (flags uintptr, data string) {
	var rest []string
	for _, o := range options {
		if f, ok := mountOptionFlags[o]; ok {
			flags |= f
		} else {
			rest = append(rest, o)
		}
	}
	return flags, strings.Join(rest, ",")
}

func (h *HostOS) Unmount(target string) error {
	on, err := h.Mounted(target)
	if err != nil || !on {
		return err
	}
	if err := syscall.Unmount(target, 0); err != nil && !errors.Is(err, syscall.EINVAL) {
		return os.NewSyscallError("umount", fmt.Errorf("%s: %w", target, err))
	}
	return nil
}

// Mounted looks for target among /proc/self/mountinfo's mount points.
func (h *HostOS) Mounted(target string) (bool, error) {
	abs, err := filepath.Abs(target)
	if err != nil {
		return false, err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMount(fields[4]) == abs {
			return true, nil
		}
	}
	return false, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a blank).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
