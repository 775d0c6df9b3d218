//go:build !linux || !cgo

package gdstest

import (
	"fmt"
	"runtime"

	"github.com/flashpath/flashpath/internal/platform"
)

// errBinding says why the fakes cannot be loaded: gds/internal/cuda's binding
// needs Linux and cgo.
var errBinding = fmt.Errorf("the fake CUDA driver needs a Linux build with cgo (CGO_ENABLED=1), this one is %s/%s: %w",
	runtime.GOOS, runtime.GOARCH, platform.ErrNotSupported)

func allocDevice(uint64) int { return -3 }
