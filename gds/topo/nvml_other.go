//go:build !linux || !cgo

package topo

import (
	"fmt"
	"runtime"

	"github.com/flashpath/flashpath/internal/platform"
)

// nvmlGPUs fails: go-nvml needs Linux and cgo.
func nvmlGPUs() ([]GPUInfo, error) {
	return nil, fmt.Errorf("NVML needs a Linux build with cgo (CGO_ENABLED=1), this one is %s/%s: %w",
		runtime.GOOS, runtime.GOARCH, platform.ErrNotSupported)
}
