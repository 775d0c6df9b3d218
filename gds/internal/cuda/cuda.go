// Package cuda binds the few entry points of the CUDA driver API (libcuda.so.1)
// and of cuFile (libcufile.so.0) that flashpath needs. Both libraries are
// opened at run time with dlopen, so the package builds and its callers run
// on machines without CUDA, its headers or a GPU: there every call returns an
// error wrapping ErrNotSupported.
//
// The environment variables FLASHPATH_LIBCUDA and FLASHPATH_LIBCUFILE name
// other libraries to open (tests point them at fakes built from testdata).
//
// A CUDA context is bound to an OS thread: callers lock the goroutine to its
// thread (runtime.LockOSThread) and make the context current before calling
// anything that needs one.
//
// The binding needs Linux and cgo; other builds have stubs
// (cuda_other.go) whose every call returns an error wrapping
// ErrNotSupported that says so.
package cuda

import (
	"errors"
	"fmt"

	"github.com/flashpath/flashpath/internal/platform"
)

// ErrNotSupported is wrapped by every error that means "this machine or
// build lacks the library, driver or device": callers fall back, tests
// skip. It is platform.ErrNotSupported.
var ErrNotSupported = platform.ErrNotSupported

// Result is a CUresult, the status of a driver API call.
type Result int

// CUDA driver API results used by name (cuda.h, enum cudaError_enum).
const (
	Success           Result = 0
	ErrorNotReady     Result = 600
	ErrorNoDevice     Result = 100
	ErrorNotSupported Result = 801
	// ErrorHostMemoryAlreadyRegistered: cuMemHostRegister of a range that
	// overlaps a registered one.
	ErrorHostMemoryAlreadyRegistered Result = 712
)

// AttrReadOnlyHostRegisterSupported is
// CU_DEVICE_ATTRIBUTE_READ_ONLY_HOST_REGISTER_SUPPORTED (cuda.h).
const AttrReadOnlyHostRegisterSupported = 113

// AttrDMABufSupported is CU_DEVICE_ATTRIBUTE_DMA_BUF_SUPPORTED (cuda.h,
// CUDA 11.7): the device's memory can be exported as a dma-buf
// (cuMemGetHandleForAddressRange) for an RDMA NIC to register.
const AttrDMABufSupported = 124

// DMABufSupported reports whether d's memory can be exported as a dma-buf
// (AttrDMABufSupported). It is false, with no error, on drivers that do
// not know the attribute or cannot export (the proprietary kernel modules
// before open ones: GPU memory then reaches a NIC only through
// nvidia-peermem).
func (d Device) DMABufSupported() (bool, error) {
	v, err := d.Attribute(AttrDMABufSupported)
	if IsResult(err, errorInvalidValue) {
		return false, nil // a driver older than the attribute
	}
	if err != nil {
		return false, err
	}
	return v != 0, nil
}

// errorInvalidValue is CUDA_ERROR_INVALID_VALUE.
const errorInvalidValue Result = 1

// Error is a failed driver API call.
type Error struct {
	Op     string // the entry point, e.g. "cuMemAlloc"
	Result Result
}

func (e *Error) Error() string {
	name, msg := resultName(e.Result)
	if name == "" {
		name = fmt.Sprintf("CUresult %d", int(e.Result))
	}
	if msg != "" {
		return fmt.Sprintf("%s: %s (%s)", e.Op, name, msg)
	}
	return e.Op + ": " + name
}

// Unwrap makes CUDA_ERROR_NOT_SUPPORTED and CUDA_ERROR_NO_DEVICE match
// ErrNotSupported.
func (e *Error) Unwrap() error {
	if e.Result == ErrorNotSupported || e.Result == ErrorNoDevice {
		return ErrNotSupported
	}
	return nil
}

// IsResult reports whether err is a failed driver call that returned r.
func IsResult(err error, r Result) bool {
	var e *Error
	return errors.As(err, &e) && e.Result == r
}

// Default library names, as NVIDIA's driver and cuFile packages install them.
const (
	DefaultLibCUDA   = "libcuda.so.1"
	DefaultLibCuFile = "libcufile.so.0"
)

// LibCUDAPath is the library Init opens: $FLASHPATH_LIBCUDA or libcuda.so.1.
func LibCUDAPath() string {
	if p := getenv("FLASHPATH_LIBCUDA"); p != "" {
		return p
	}
	return DefaultLibCUDA
}

// Device is a CUdevice.
type Device int32

// DevicePtr is a CUdeviceptr.
type DevicePtr uint64

// cuMemHostAlloc flags (cuda.h).
const (
	MemHostAllocPortable      = 0x01
	MemHostAllocDeviceMap     = 0x02
	MemHostAllocWriteCombined = 0x04
)

// MemHostRegisterReadOnly is cuMemHostRegister's CU_MEMHOSTREGISTER_READ_ONLY
// flag: the range is read-only for the device, what a read-only mapping (a
// file mapped PROT_READ) needs.
const MemHostRegisterReadOnly = 0x08

// StreamNonBlocking is CU_STREAM_NON_BLOCKING.
const StreamNonBlocking = 0x1

// cuEventCreate flags (cuda.h).
const (
	EventBlockingSync  = 0x1
	EventDisableTiming = 0x2
)

// MemRangeHandleTypeDMABufFD is CU_MEM_RANGE_HANDLE_TYPE_DMA_BUF_FD.
const MemRangeHandleTypeDMABufFD = 1

// Getenv reads the C environment (see getenv).
func Getenv(name string) string { return getenv(name) }
