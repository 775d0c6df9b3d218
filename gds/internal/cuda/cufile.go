package cuda

import (
	"fmt"
	"os"
)

// FileError is a failed cuFile call: CUfileError_t.
type FileError struct {
	Op     string
	Code   int    // CUfileOpError
	Result Result // CUresult, where Code is CU_FILE_CUDA_DRIVER_ERROR
}

// CUfileOpError values (cufile.h, CUFILEOP_STATUS_ENTRIES: CUFILEOP_BASE_ERR
// 5000 + n). All of them are named in fileErrors.
const (
	FileSuccess                = 0
	FileDriverNotInitialized   = 5001 // CU_FILE_DRIVER_NOT_INITIALIZED
	FileDriverVersionMismatch  = 5004 // CU_FILE_DRIVER_VERSION_MISMATCH
	FileDriverVersionReadError = 5005 // CU_FILE_DRIVER_VERSION_READ_ERROR
	FilePlatformNotSupported   = 5007 // CU_FILE_PLATFORM_NOT_SUPPORTED
	FileIONotSupported         = 5008 // CU_FILE_IO_NOT_SUPPORTED
	FileDeviceNotSupported     = 5009 // CU_FILE_DEVICE_NOT_SUPPORTED
	FileNVFSDriverError        = 5010 // CU_FILE_NVFS_DRIVER_ERROR
	FileCUDADriverError        = 5011 // CU_FILE_CUDA_DRIVER_ERROR
	FileInvalidFileType        = 5018 // CU_FILE_INVALID_FILE_TYPE
	FileInvalidFileOpenFlag    = 5019 // CU_FILE_INVALID_FILE_OPEN_FLAG
	FileDIONotSet              = 5020 // CU_FILE_DIO_NOT_SET
	FileHandleNotRegistered    = 5027 // CU_FILE_HANDLE_NOT_REGISTERED
	FileInternalError          = 5030 // CU_FILE_INTERNAL_ERROR
	FileNVFSSetupError         = 5033 // CU_FILE_NVFS_SETUP_ERROR
	FileIODisabled             = 5034 // CU_FILE_IO_DISABLED
	FileBatchNoCompat          = 5049 // CU_FILE_BATCH_NOCOMPAT_ERROR
	fileBaseErr                = 5000 // CUFILEOP_BASE_ERR
)

// fileErrors names every CUfileOpError with cufile.h's text for it.
var fileErrors = map[int][2]string{
	0:    {"CU_FILE_SUCCESS", "cufile success"},
	5001: {"CU_FILE_DRIVER_NOT_INITIALIZED", "nvidia-fs driver is not loaded; set allow_compat_mode to true in cufile.json to enable compatible mode"},
	5002: {"CU_FILE_DRIVER_INVALID_PROPS", "invalid property"},
	5003: {"CU_FILE_DRIVER_UNSUPPORTED_LIMIT", "property range error"},
	5004: {"CU_FILE_DRIVER_VERSION_MISMATCH", "nvidia-fs driver version mismatch"},
	5005: {"CU_FILE_DRIVER_VERSION_READ_ERROR", "nvidia-fs driver version read error"},
	5006: {"CU_FILE_DRIVER_CLOSING", "driver shutdown in progress"},
	5007: {"CU_FILE_PLATFORM_NOT_SUPPORTED", "GPUDirect Storage not supported on current platform"},
	5008: {"CU_FILE_IO_NOT_SUPPORTED", "GPUDirect Storage not supported on current file"},
	5009: {"CU_FILE_DEVICE_NOT_SUPPORTED", "GPUDirect Storage not supported on current GPU"},
	5010: {"CU_FILE_NVFS_DRIVER_ERROR", "nvidia-fs driver ioctl error"},
	5011: {"CU_FILE_CUDA_DRIVER_ERROR", "CUDA Driver API error"},
	5012: {"CU_FILE_CUDA_POINTER_INVALID", "invalid device pointer"},
	5013: {"CU_FILE_CUDA_MEMORY_TYPE_INVALID", "invalid pointer memory type"},
	5014: {"CU_FILE_CUDA_POINTER_RANGE_ERROR", "pointer range exceeds allocated address range"},
	5015: {"CU_FILE_CUDA_CONTEXT_MISMATCH", "cuda context mismatch"},
	5016: {"CU_FILE_INVALID_MAPPING_SIZE", "access beyond maximum pinned size"},
	5017: {"CU_FILE_INVALID_MAPPING_RANGE", "access beyond mapped size"},
	5018: {"CU_FILE_INVALID_FILE_TYPE", "unsupported file type"},
	5019: {"CU_FILE_INVALID_FILE_OPEN_FLAG", "unsupported file open flags"},
	5020: {"CU_FILE_DIO_NOT_SET", "fd direct IO not set"},
	5022: {"CU_FILE_INVALID_VALUE", "invalid arguments"},
	5023: {"CU_FILE_MEMORY_ALREADY_REGISTERED", "device pointer already registered"},
	5024: {"CU_FILE_MEMORY_NOT_REGISTERED", "device pointer lookup failure"},
	5025: {"CU_FILE_PERMISSION_DENIED", "driver or file access error"},
	5026: {"CU_FILE_DRIVER_ALREADY_OPEN", "driver is already open"},
	5027: {"CU_FILE_HANDLE_NOT_REGISTERED", "file descriptor is not registered"},
	5028: {"CU_FILE_HANDLE_ALREADY_REGISTERED", "file descriptor is already registered"},
	5029: {"CU_FILE_DEVICE_NOT_FOUND", "GPU device not found"},
	5030: {"CU_FILE_INTERNAL_ERROR", "internal error"},
	5031: {"CU_FILE_GETNEWFD_FAILED", "failed to obtain new file descriptor"},
	5033: {"CU_FILE_NVFS_SETUP_ERROR", "NVFS driver initialization error"},
	5034: {"CU_FILE_IO_DISABLED", "GPUDirect Storage disabled by config on current file"},
	5035: {"CU_FILE_BATCH_SUBMIT_FAILED", "failed to submit batch operation"},
	5036: {"CU_FILE_GPU_MEMORY_PINNING_FAILED", "failed to allocate pinned GPU memory"},
	5037: {"CU_FILE_BATCH_FULL", "queue full for batch operation"},
	5038: {"CU_FILE_ASYNC_NOT_SUPPORTED", "cuFile stream operation not supported"},
	5039: {"CU_FILE_INTERNAL_BATCH_SETUP_ERROR", "batch setup internal error - retry later"},
	5040: {"CU_FILE_INTERNAL_BATCH_SUBMIT_ERROR", "batch submit internal error - retry later"},
	5041: {"CU_FILE_INTERNAL_BATCH_GETSTATUS_ERROR", "batch get status internal error - retry later"},
	5042: {"CU_FILE_INTERNAL_BATCH_CANCEL_ERROR", "batch cancel internal error - retry later"},
	5043: {"CU_FILE_NOMEM_ERROR", "cufile no memory error - retry later"},
	5044: {"CU_FILE_IO_ERROR", "cufile io error"},
	5045: {"CU_FILE_INTERNAL_BUF_REGISTER_ERROR", "cufile buf registration error"},
	5046: {"CU_FILE_HASH_OPR_ERROR", "cufile hash operation error"},
	5047: {"CU_FILE_INVALID_CONTEXT_ERROR", "cufile invalid context error"},
	5048: {"CU_FILE_NVFS_INTERNAL_DRIVER_ERROR", "nvfs internal driver error"},
	5049: {"CU_FILE_BATCH_NOCOMPAT_ERROR", "compat mode off error"},
	5050: {"CU_FILE_IO_MAX_ERROR", "GPUDirect Storage max error"},
}

// FileErrorName returns cufile.h's name and text for a CUfileOpError, or
// "CUfileOpError N" and "unknown cufile error".
func FileErrorName(code int) (name, text string) {
	if e, ok := fileErrors[code]; ok {
		return e[0], e[1]
	}
	return fmt.Sprintf("CUfileOpError %d", code), "unknown cufile error"
}

func (e *FileError) Error() string {
	name, text := FileErrorName(e.Code)
	if e.Code == FileCUDADriverError {
		return fmt.Sprintf("%s: %s: %s (%v)", e.Op, name, text, (&Error{Op: "CUDA", Result: e.Result}).Error())
	}
	return fmt.Sprintf("%s: %s: %s", e.Op, name, text)
}

// RefusesFile reports whether the code means cuFile would not take this
// file (filesystem, open flags, config), as opposed to a broken driver.
func (e *FileError) RefusesFile() bool {
	switch e.Code {
	case FileIONotSupported, FileInvalidFileType, FileInvalidFileOpenFlag, FileDIONotSet,
		FileHandleNotRegistered, FileIODisabled:
		return true
	}
	return false
}

// Unwrap makes the cuFile codes that mean "not on this platform" (or not
// for this file) match ErrNotSupported.
func (e *FileError) Unwrap() error {
	switch e.Code {
	case FileDriverNotInitialized, FileDriverVersionMismatch, FileDriverVersionReadError,
		FilePlatformNotSupported, FileDeviceNotSupported, FileNVFSDriverError, FileNVFSSetupError, FileBatchNoCompat:
		return ErrNotSupported
	}
	if e.RefusesFile() {
		return ErrNotSupported
	}
	return nil
}

// LibCuFilePath is the library OpenCuFile loads: $FLASHPATH_LIBCUFILE or libcufile.so.0.
func LibCuFilePath() string {
	if p := getenv("FLASHPATH_LIBCUFILE"); p != "" {
		return p
	}
	return DefaultLibCuFile
}

// DriverProps is the part of CUfileDrvProps_t flashpath reports.
type DriverProps struct {
	NVFSMajor, NVFSMinor uint32 // nvidia-fs version; 0.0 when it is not loaded
	PollThreshSize       uint64
	MaxDirectIOSize      uint64
	StatusFlags          uint32 // CUfileDriverStatusFlags bits
	ControlFlags         uint32 // CUfileDriverControlFlags bits
	FeatureFlags         uint32
	MaxDeviceCacheSize   uint32
	PerBufferCacheSize   uint32
	MaxPinnedMemSize     uint32
	MaxBatchIOSize       uint32
	MaxBatchIOTimeoutMs  uint32
}

// CUfileDriverControlFlags and CUfileFeatureFlags bits (cufile.h).
const (
	ControlUsePollMode     = 1 << 0
	ControlAllowCompatMode = 1 << 1
	FeatureBatchIO         = 1 << 1
)

// ioResult converts cuFileRead/Write's ssize_t: bytes done, or -errno, or
// -CUfileOpError.
func ioResult(op string, n int64) (int64, error) {
	if n >= 0 {
		return n, nil
	}
	if n > -fileBaseErr {
		return 0, os.NewSyscallError(op, errnoErr(int(-n)))
	}
	return 0, &FileError{Op: op, Code: int(-n)}
}

// Batch opcodes and statuses (cufile.h CUfileOpcode_t, CUfileStatus_t).
const (
	BatchRead  = 0
	BatchWrite = 1

	StatusWaiting  = 0x01
	StatusPending  = 0x02
	StatusInvalid  = 0x04
	StatusCanceled = 0x08
	StatusComplete = 0x10
	StatusTimeout  = 0x20
	StatusFailed   = 0x40
)

// BatchIO is one entry of a cuFile batch.
type BatchIO struct {
	Handle FileHandle
	Opcode int
	Base   DevicePtr
	DevOff int64
	Off    int64
	Size   int64
	Cookie uint64
}

// BatchEvent is a completed batch entry (CUfileIOEvents_t).
type BatchEvent struct {
	Cookie uint64
	Status int
	Ret    int64 // bytes, or a negative error
}

// Result is the entry's outcome: bytes moved, or why it failed.
func (e BatchEvent) Result() (int64, error) {
	switch e.Status {
	case StatusComplete:
		return ioResult("cuFileBatchIO", e.Ret)
	case StatusFailed:
		if e.Ret < 0 {
			return ioResult("cuFileBatchIO", e.Ret)
		}
		return 0, fmt.Errorf("cuFileBatchIO: entry failed")
	case StatusCanceled:
		return 0, fmt.Errorf("cuFileBatchIO: entry canceled")
	case StatusTimeout:
		return 0, fmt.Errorf("cuFileBatchIO: entry timed out")
	}
	return 0, fmt.Errorf("cuFileBatchIO: entry ended with status 0x%x", e.Status)
}
