//go:build !linux || !cgo

package nvmlgpus

import (
	"fmt"
	"runtime"

	"github.com/flashpath/flashpath/gds/topo"
	"github.com/flashpath/flashpath/internal/platform"
)

// List fails: go-nvml needs Linux and cgo.
func List() ([]topo.GPUInfo, error) {
	return nil, fmt.Errorf("NVML needs a Linux build with cgo (CGO_ENABLED=1), this one is %s/%s: %w",
		runtime.GOOS, runtime.GOARCH, platform.ErrNotSupported)
}
