//go:build cgo

package cuda

/*
#cgo LDFLAGS: -ldl
#include <stdlib.h>
#include "fp_cuda.h"
*/
import "C"

import (
	"fmt"
	"os"
	"sync"
	"unsafe"
)

var (
	cudaOnce sync.Once
	cudaErr  error
)

// resultName is cuGetErrorName and cuGetErrorString ("" where the driver
// is not loaded).
func resultName(r Result) (name, msg string) {
	return C.GoString(C.fp_cuGetErrorName(C.CUresult(r))), C.GoString(C.fp_cuGetErrorString(C.CUresult(r)))
}

func check(op string, r C.CUresult) error {
	if r == 0 {
		return nil
	}
	return &Error{Op: op, Result: Result(r)}
}

// Init opens libcuda and calls cuInit once per process; later calls return
// the first result.
func Init() error {
	cudaOnce.Do(func() {
		path := LibCUDAPath()
		cpath := C.CString(path)
		defer C.free(unsafe.Pointer(cpath))
		var buf [512]C.char
		if rc := C.fp_cuda_load(cpath, &buf[0], C.size_t(len(buf))); rc != 0 {
			cudaErr = fmt.Errorf("load CUDA driver %s: %s (install the NVIDIA driver or set FLASHPATH_LIBCUDA): %w",
				path, C.GoString(&buf[0]), ErrNotSupported)
			return
		}
		if err := check("cuInit", C.fp_cuInit(0)); err != nil {
			cudaErr = fmt.Errorf("init CUDA driver: %w", err)
		}
	})
	return cudaErr
}

// DeviceCount is cuDeviceGetCount.
func DeviceCount() (int, error) {
	if err := Init(); err != nil {
		return 0, err
	}
	var n C.int
	return int(n), check("cuDeviceGetCount", C.fp_cuDeviceGetCount(&n))
}

// GetDevice is cuDeviceGet.
func GetDevice(ordinal int) (Device, error) {
	if err := Init(); err != nil {
		return 0, err
	}
	var d C.CUdevice
	if err := check("cuDeviceGet", C.fp_cuDeviceGet(&d, C.int(ordinal))); err != nil {
		return 0, fmt.Errorf("device %d: %w", ordinal, err)
	}
	return Device(d), nil
}

// Name is cuDeviceGetName.
func (d Device) Name() (string, error) {
	var buf [256]C.char
	if err := check("cuDeviceGetName", C.fp_cuDeviceGetName(&buf[0], C.int(len(buf)), C.CUdevice(d))); err != nil {
		return "", err
	}
	return C.GoString(&buf[0]), nil
}

// TotalMem is cuDeviceTotalMem_v2.
func (d Device) TotalMem() (uint64, error) {
	var n C.size_t
	return uint64(n), check("cuDeviceTotalMem", C.fp_cuDeviceTotalMem(&n, C.CUdevice(d)))
}

// Attribute is cuDeviceGetAttribute.
func (d Device) Attribute(attr int) (int, error) {
	var v C.int
	return int(v), check("cuDeviceGetAttribute", C.fp_cuDeviceGetAttribute(&v, C.int(attr), C.CUdevice(d)))
}

// PCIBusID is cuDeviceGetPCIBusId, e.g. "0000:3B:00.0".
func (d Device) PCIBusID() (string, error) {
	var buf [64]C.char
	if err := check("cuDeviceGetPCIBusId", C.fp_cuDeviceGetPCIBusId(&buf[0], C.int(len(buf)), C.CUdevice(d))); err != nil {
		return "", err
	}
	return C.GoString(&buf[0]), nil
}

// Context is a CUcontext.
type Context struct{ p C.CUcontext }

// PrimaryCtxRetain is cuDevicePrimaryCtxRetain: the context the CUDA runtime
// (PyTorch, CuPy) uses too, so device pointers are shared with them.
func (d Device) PrimaryCtxRetain() (Context, error) {
	var c C.CUcontext
	err := check("cuDevicePrimaryCtxRetain", C.fp_cuDevicePrimaryCtxRetain(&c, C.CUdevice(d)))
	return Context{c}, err
}

// PrimaryCtxRelease is cuDevicePrimaryCtxRelease_v2.
func (d Device) PrimaryCtxRelease() error {
	return check("cuDevicePrimaryCtxRelease", C.fp_cuDevicePrimaryCtxRelease(C.CUdevice(d)))
}

// SetCurrent is cuCtxSetCurrent for the calling OS thread.
func (c Context) SetCurrent() error {
	return check("cuCtxSetCurrent", C.fp_cuCtxSetCurrent(c.p))
}

// MemAlloc is cuMemAlloc_v2.
func MemAlloc(n int64) (DevicePtr, error) {
	var p C.CUdeviceptr
	err := check("cuMemAlloc", C.fp_cuMemAlloc(&p, C.size_t(n)))
	return DevicePtr(p), err
}

// MemFree is cuMemFree_v2.
func MemFree(p DevicePtr) error { return check("cuMemFree", C.fp_cuMemFree(C.CUdeviceptr(p))) }

// MemHostAlloc is cuMemHostAlloc: page-locked host memory the GPU's copy
// engines can DMA from.
func MemHostAlloc(n int64, flags uint) (unsafe.Pointer, error) {
	var p unsafe.Pointer
	err := check("cuMemHostAlloc", C.fp_cuMemHostAlloc(&p, C.size_t(n), C.uint(flags)))
	return p, err
}

// MemFreeHost is cuMemFreeHost.
func MemFreeHost(p unsafe.Pointer) error { return check("cuMemFreeHost", C.fp_cuMemFreeHost(p)) }

// MemHostRegister is cuMemHostRegister_v2: it page-locks an existing host
// range (for mapped files: pins its page-cache pages) so the copy engines
// can DMA from it. The range must not overlap one already registered
// (ErrorHostMemoryAlreadyRegistered).
func MemHostRegister(p unsafe.Pointer, n int64, flags uint) error {
	return check("cuMemHostRegister", C.fp_cuMemHostRegister(p, C.size_t(n), C.uint(flags)))
}

// MemHostUnregister is cuMemHostUnregister; p is the start of a range
// given to MemHostRegister.
func MemHostUnregister(p unsafe.Pointer) error {
	return check("cuMemHostUnregister", C.fp_cuMemHostUnregister(p))
}

// MemcpyHtoD is cuMemcpyHtoD_v2 (synchronous).
func MemcpyHtoD(dst DevicePtr, src unsafe.Pointer, n int64) error {
	return check("cuMemcpyHtoD", C.fp_cuMemcpyHtoD(C.CUdeviceptr(dst), src, C.size_t(n)))
}

// MemcpyDtoH is cuMemcpyDtoH_v2 (synchronous).
func MemcpyDtoH(dst unsafe.Pointer, src DevicePtr, n int64) error {
	return check("cuMemcpyDtoH", C.fp_cuMemcpyDtoH(dst, C.CUdeviceptr(src), C.size_t(n)))
}

// MemsetD8 is cuMemsetD8_v2.
func MemsetD8(dst DevicePtr, v byte, n int64) error {
	return check("cuMemsetD8", C.fp_cuMemsetD8(C.CUdeviceptr(dst), C.uchar(v), C.size_t(n)))
}

// Stream is a CUstream.
type Stream struct{ p C.CUstream }

// StreamCreate is cuStreamCreate.
func StreamCreate(flags uint) (Stream, error) {
	var s C.CUstream
	err := check("cuStreamCreate", C.fp_cuStreamCreate(&s, C.uint(flags)))
	return Stream{s}, err
}

// Destroy is cuStreamDestroy_v2.
func (s Stream) Destroy() error { return check("cuStreamDestroy", C.fp_cuStreamDestroy(s.p)) }

// Synchronize is cuStreamSynchronize.
func (s Stream) Synchronize() error {
	return check("cuStreamSynchronize", C.fp_cuStreamSynchronize(s.p))
}

// Event is a CUevent.
type Event struct{ p C.CUevent }

// EventCreate is cuEventCreate.
func EventCreate(flags uint) (Event, error) {
	var e C.CUevent
	err := check("cuEventCreate", C.fp_cuEventCreate(&e, C.uint(flags)))
	return Event{e}, err
}

// Destroy is cuEventDestroy_v2.
func (e Event) Destroy() error { return check("cuEventDestroy", C.fp_cuEventDestroy(e.p)) }

// Synchronize is cuEventSynchronize.
func (e Event) Synchronize() error { return check("cuEventSynchronize", C.fp_cuEventSynchronize(e.p)) }

// CopyHtoDAsyncRecord queues cuMemcpyHtoDAsync_v2 on s and records e after
// it, in one cgo crossing. src must be page-locked for the copy to be
// asynchronous.
func CopyHtoDAsyncRecord(dst DevicePtr, src unsafe.Pointer, n int64, s Stream, e Event) error {
	return check("cuMemcpyHtoDAsync", C.fp_h2d_async_record(C.CUdeviceptr(dst), src, C.size_t(n), s.p, e.p))
}

// CopyHtoDAsyncRecordWait queues cuMemcpyHtoDAsync_v2 on s, records e after
// it, and then, if wait is not nil, waits for *wait (cuEventQuery, then
// cuEventSynchronize): one cgo crossing per chunk of a pipeline that refills
// the buffer behind wait next. waitErr is wait's result.
func CopyHtoDAsyncRecordWait(dst DevicePtr, src unsafe.Pointer, n int64, s Stream, e Event, wait *Event) (err, waitErr error) {
	var w C.CUevent
	if wait != nil {
		w = wait.p
	}
	v := uint64(C.fp_h2d_record_wait(C.CUdeviceptr(dst), src, C.size_t(n), s.p, e.p, w))
	return check("cuMemcpyHtoDAsync", C.CUresult(uint32(v))), check("cuEventSynchronize", C.CUresult(uint32(v>>32)))
}

// Wait completes e: cuEventQuery, then cuEventSynchronize if not yet done.
func (e Event) Wait() error { return check("cuEventSynchronize", C.fp_event_wait(e.p)) }

// CopyDtoHAsyncRecord queues cuMemcpyDtoHAsync_v2 on s and records e after it.
func CopyDtoHAsyncRecord(dst unsafe.Pointer, src DevicePtr, n int64, s Stream, e Event) error {
	return check("cuMemcpyDtoHAsync", C.fp_d2h_async_record(dst, C.CUdeviceptr(src), C.size_t(n), s.p, e.p))
}

// ExportDMABuf is cuMemGetHandleForAddressRange with a dma-buf fd handle:
// the fd can be registered with an RDMA device (ibv_reg_dmabuf_mr). ptr and
// n must be aligned to the host page size.
func ExportDMABuf(ptr DevicePtr, n int64) (int, error) {
	if !has("cuMemGetHandleForAddressRange") {
		return -1, fmt.Errorf("export dma-buf: cuMemGetHandleForAddressRange missing (CUDA 11.7+ driver needed): %w", ErrNotSupported)
	}
	var fd C.int
	err := check("cuMemGetHandleForAddressRange",
		C.fp_cuMemGetHandleForAddressRange(unsafe.Pointer(&fd), C.CUdeviceptr(ptr), C.size_t(n), MemRangeHandleTypeDMABufFD, 0))
	if err != nil {
		return -1, err
	}
	return int(fd), nil
}

func has(sym string) bool {
	cs := C.CString(sym)
	defer C.free(unsafe.Pointer(cs))
	return C.fp_cuda_has(cs) != 0
}

// FakeLive returns the number of live allocations, streams and events in the
// test fake (testdata/fakecuda.c), or -1 with a real driver.
func FakeLive() int64 { return int64(C.fp_fake_live()) }

// getenv reads the C environment: in a c-shared library loaded by Python,
// variables set after process start are visible there, not in os.Getenv.
func getenv(name string) string {
	cs := C.CString(name)
	defer C.free(unsafe.Pointer(cs))
	if v := C.getenv(cs); v != nil {
		return C.GoString(v)
	}
	return os.Getenv(name)
}
