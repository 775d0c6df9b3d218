//go:build !linux

package csi

import (
	"fmt"

	"github.com/flashpath/flashpath/internal/platform"
)

func (h *HostOS) Mount(source, target, fstype string, readOnly bool, options []string) error {
	return fmt.Errorf("mount %s: Linux only: %w", target, platform.ErrNotSupported)
}

func (h *HostOS) Unmount(target string) error {
	return fmt.Errorf("unmount %s: Linux only: %w", target, platform.ErrNotSupported)
}

func (h *HostOS) Mounted(target string) (bool, error) {
	return false, fmt.Errorf("mount table: Linux only: %w", platform.ErrNotSupported)
}
