//go:build cgo

package cuda

/*
#include <stdlib.h>
#include "fp_cuda.h"
*/
import "C"

import (
	"fmt"
	"sync"
	"time"
	"unsafe"
)

func checkFile(op string, e C.fp_CUfileError_t) error {
	if e.err == 0 {
		return nil
	}
	return &FileError{Op: op, Code: int(e.err), Result: Result(e.cu_err)}
}

var (
	fileOnce sync.Once
	fileErr  error
)

// LoadCuFile opens libcufile once per process. It does not open the driver.
// cuFile reads its configuration from $CUFILE_ENV_PATH_JSON (default
// /etc/cufile.json) when the driver is opened; flashpath leaves it as set.
func LoadCuFile() error {
	if err := Init(); err != nil {
		return err
	}
	fileOnce.Do(func() {
		path := LibCuFilePath()
		cpath := C.CString(path)
		defer C.free(unsafe.Pointer(cpath))
		var buf [512]C.char
		if rc := C.fp_cufile_load(cpath, &buf[0], C.size_t(len(buf))); rc != 0 {
			fileErr = fmt.Errorf("load cuFile %s: %s (install GPUDirect Storage, e.g. the nvidia-cufile package, or set FLASHPATH_LIBCUFILE): %w",
				path, C.GoString(&buf[0]), ErrNotSupported)
		}
	})
	return fileErr
}

// FileDriverOpen is cuFileDriverOpen.
func FileDriverOpen() error {
	if err := LoadCuFile(); err != nil {
		return err
	}
	return checkFile("cuFileDriverOpen", C.fp_cuFileDriverOpen())
}

// FileDriverClose is cuFileDriverClose_v2 (or cuFileDriverClose).
func FileDriverClose() error { return checkFile("cuFileDriverClose", C.fp_cuFileDriverClose()) }

// FileDriverProperties is cuFileDriverGetProperties; the driver must be open.
func FileDriverProperties() (DriverProps, error) {
	// The struct has grown across releases: leave room past its end.
	var raw struct {
		p   C.fp_CUfileDrvProps_t
		pad [256]byte
	}
	if err := checkFile("cuFileDriverGetProperties", C.fp_cuFileDriverGetProperties(&raw.p)); err != nil {
		return DriverProps{}, err
	}
	p := &raw.p
	return DriverProps{
		NVFSMajor:           uint32(p.nvfs.major_version),
		NVFSMinor:           uint32(p.nvfs.minor_version),
		PollThreshSize:      uint64(p.nvfs.poll_thresh_size),
		MaxDirectIOSize:     uint64(p.nvfs.max_direct_io_size),
		StatusFlags:         uint32(p.nvfs.dstatusflags),
		ControlFlags:        uint32(p.nvfs.dcontrolflags),
		FeatureFlags:        uint32(p.fflags),
		MaxDeviceCacheSize:  uint32(p.max_device_cache_size),
		PerBufferCacheSize:  uint32(p.per_buffer_cache_size),
		MaxPinnedMemSize:    uint32(p.max_device_pinned_mem_size),
		MaxBatchIOSize:      uint32(p.max_batch_io_size),
		MaxBatchIOTimeoutMs: uint32(p.max_batch_io_timeout_msecs),
	}, nil
}

// FileHandle is a CUfileHandle_t.
type FileHandle struct{ p unsafe.Pointer }

// FileHandleRegister is cuFileHandleRegister for a Linux fd (opened with
// O_DIRECT for true GDS).
func FileHandleRegister(fd int) (FileHandle, error) {
	var d C.fp_CUfileDescr_t
	d._type = 1 // CU_FILE_HANDLE_TYPE_OPAQUE_FD
	*(*C.int)(unsafe.Pointer(&d.handle)) = C.int(fd)
	var h unsafe.Pointer
	err := checkFile("cuFileHandleRegister", C.fp_cuFileHandleRegister(&h, &d))
	return FileHandle{h}, err
}

// Deregister is cuFileHandleDeregister.
func (h FileHandle) Deregister() { C.fp_cuFileHandleDeregister(h.p) }

// FileBufRegister is cuFileBufRegister.
func FileBufRegister(p DevicePtr, n int64) error {
	return checkFile("cuFileBufRegister", C.fp_cuFileBufRegister(C.CUdeviceptr(p), C.size_t(n), 0))
}

// FileBufDeregister is cuFileBufDeregister.
func FileBufDeregister(p DevicePtr) error {
	return checkFile("cuFileBufDeregister", C.fp_cuFileBufDeregister(C.CUdeviceptr(p)))
}

// FileRead is cuFileRead: n bytes at file offset off into base+devOff.
func FileRead(h FileHandle, base DevicePtr, n int64, off, devOff int64) (int64, error) {
	return ioResult("cuFileRead", int64(C.fp_cuFileRead(h.p, C.CUdeviceptr(base), C.size_t(n), C.off_t(off), C.off_t(devOff))))
}

// FileWrite is cuFileWrite.
func FileWrite(h FileHandle, base DevicePtr, n int64, off, devOff int64) (int64, error) {
	return ioResult("cuFileWrite", int64(C.fp_cuFileWrite(h.p, C.CUdeviceptr(base), C.size_t(n), C.off_t(off), C.off_t(devOff))))
}

// HasBatchIO reports whether libcufile exports the batch API (cuFile 1.6+).
func HasBatchIO() bool { return has("cuFileBatchIOSetUp") }

// ioParams mirrors CUfileIOParams_t on LP64 (size asserted in tests).
type ioParams struct {
	mode   int32
	_      int32
	base   uint64
	off    int64
	devOff int64
	size   uint64
	fh     unsafe.Pointer
	opcode int32
	_      int32
	cookie uint64
}

// ioEvent mirrors CUfileIOEvents_t on LP64.
type ioEvent struct {
	cookie uint64
	status int32
	_      int32
	ret    int64
}

// Batch is a CUfileBatchHandle_t with its parameter and event arrays,
// allocated once in C memory (cuFile keeps the pointers until completion).
type Batch struct {
	h      unsafe.Pointer
	params []ioParams
	events []ioEvent
	cmem   [2]unsafe.Pointer
}

// NewBatch is cuFileBatchIOSetUp for up to max entries.
func NewBatch(max int) (*Batch, error) {
	if !HasBatchIO() {
		return nil, fmt.Errorf("cuFile batch API missing in %s: %w", LibCuFilePath(), ErrNotSupported)
	}
	var h unsafe.Pointer
	if err := checkFile("cuFileBatchIOSetUp", C.fp_cuFileBatchIOSetUp(&h, C.uint(max))); err != nil {
		return nil, err
	}
	b := &Batch{h: h}
	b.cmem[0] = C.calloc(C.size_t(max), C.size_t(unsafe.Sizeof(ioParams{})))
	b.cmem[1] = C.calloc(C.size_t(max), C.size_t(unsafe.Sizeof(ioEvent{})))
	b.params = unsafe.Slice((*ioParams)(b.cmem[0]), max)
	b.events = unsafe.Slice((*ioEvent)(b.cmem[1]), max)
	return b, nil
}

// Cap is the most entries one Submit takes.
func (b *Batch) Cap() int { return len(b.params) }

// Submit is cuFileBatchIOSubmit: one crossing for the whole batch.
func (b *Batch) Submit(ios []BatchIO) error {
	if len(ios) > len(b.params) {
		return fmt.Errorf("cuFile batch: %d entries, set up for %d", len(ios), len(b.params))
	}
	for i, io := range ios {
		b.params[i] = ioParams{mode: 1, base: uint64(io.Base), off: io.Off, devOff: io.DevOff, size: uint64(io.Size),
			fh: io.Handle.p, opcode: int32(io.Opcode), cookie: io.Cookie}
	}
	return checkFile("cuFileBatchIOSubmit",
		C.fp_cuFileBatchIOSubmit(b.h, C.uint(len(ios)), (*C.fp_CUfileIOParams_t)(b.cmem[0]), 0))
}

// Status is cuFileBatchIOGetStatus: waits up to timeout for at least min
// completions and appends them to out.
func (b *Batch) Status(min int, timeout time.Duration, out []BatchEvent) ([]BatchEvent, error) {
	nr := C.uint(len(b.events))
	ts := C.struct_timespec{tv_sec: C.time_t(timeout / time.Second), tv_nsec: C.long(timeout % time.Second)}
	err := checkFile("cuFileBatchIOGetStatus",
		C.fp_cuFileBatchIOGetStatus(b.h, C.uint(min), &nr, (*C.fp_CUfileIOEvents_t)(b.cmem[1]), &ts))
	if err != nil {
		return out, err
	}
	for i := 0; i < int(nr) && i < len(b.events); i++ {
		e := &b.events[i]
		out = append(out, BatchEvent{Cookie: e.cookie, Status: int(e.status), Ret: e.ret})
	}
	return out, nil
}

// Close is cuFileBatchIODestroy.
func (b *Batch) Close() {
	if b.h == nil {
		return
	}
	C.fp_cuFileBatchIODestroy(b.h)
	C.free(b.cmem[0])
	C.free(b.cmem[1])
	b.h, b.params, b.events = nil, nil, nil
}

// cLayout returns the C sizes of the batch structs, for tests.
func cLayout() (params, events uintptr) {
	return uintptr(C.fp_sizeof_io_params()), uintptr(C.fp_sizeof_io_events())
}

// fileErrFor builds a CUfileError_t, for tests.
func fileErrFor(code int) C.fp_CUfileError_t { return C.fp_CUfileError_t{err: C.int(code)} }
