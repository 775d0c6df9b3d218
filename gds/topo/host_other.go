//go:build !linux

package topo

import (
	"fmt"
	"runtime"

	"github.com/flashpath/flashpath/internal/platform"
)

// RDMA devices, their net devices and routes come from Linux's netlink
// and sysfs: none elsewhere.

func rdmaDevices() []string { return nil }

func netDevsOf(string) []NetDev { return nil }

func routeDev(ip string) (string, error) {
	return "", fmt.Errorf("route to %s: netlink needs Linux, this is %s: %w", ip, runtime.GOOS, platform.ErrNotSupported)
}

func rdmaDeviceOf(string) string { return "" }
