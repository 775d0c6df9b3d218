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
	var flags uintptr
	if fstype == "" {
		flags = syscall.MS_BIND
	}
	if err := syscall.Mount(source, target, fstype, flags, strings.Join(options, ",")); err != nil {
		return os.NewSyscallError("mount", fmt.Errorf("%s on %s: %w", source, target, err))
	}
	if readOnly {
		// A bind mount takes MS_RDONLY only on a remount.
		if err := syscall.Mount("", target, "", flags|syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			syscall.Unmount(target, 0)
			return os.NewSyscallError("mount", fmt.Errorf("read-only %s: %w", target, err))
		}
	}
	return nil
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
