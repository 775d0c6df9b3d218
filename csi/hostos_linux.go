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

// mountFlags splits mount options as mount(8) does: the generic ones are
// mount(2) flags, the rest the file system's data ("discard",
// "stripe=4").
func mountFlags(options []string) (flags uintptr, data string) {
	var rest []string
	for _, o := range options {
		switch o {
		case "ro":
			flags |= syscall.MS_RDONLY
		case "rw", "defaults", "":
		case "noatime":
			flags |= syscall.MS_NOATIME
		case "nodiratime":
			flags |= syscall.MS_NODIRATIME
		case "relatime":
			flags |= syscall.MS_RELATIME
		case "strictatime":
			flags |= syscall.MS_STRICTATIME
		case "lazytime":
			flags |= 1 << 25 // MS_LAZYTIME
		case "nosuid":
			flags |= syscall.MS_NOSUID
		case "nodev":
			flags |= syscall.MS_NODEV
		case "noexec":
			flags |= syscall.MS_NOEXEC
		case "sync":
			flags |= syscall.MS_SYNCHRONOUS
		case "dirsync":
			flags |= syscall.MS_DIRSYNC
		default:
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
