//go:build !linux || !cgo

package cuda

import (
	"fmt"
	"os"
	"runtime"
	"time"
	"unsafe"
)

// errNoBinding is what every call returns in a build without the binding.
var errNoBinding = fmt.Errorf("CUDA and cuFile need a Linux build with cgo (CGO_ENABLED=1 and a C compiler); this one is %s/%s: %w",
	runtime.GOOS, runtime.GOARCH, ErrNotSupported)

func resultName(Result) (name, msg string) { return "", "" }

func getenv(name string) string { return os.Getenv(name) }

// Init fails: this build has no CUDA binding.
func Init() error { return errNoBinding }

func DeviceCount() (int, error)                                           { return 0, errNoBinding }
func GetDevice(int) (Device, error)                                       { return 0, errNoBinding }
func (Device) Name() (string, error)                                      { return "", errNoBinding }
func (Device) TotalMem() (uint64, error)                                  { return 0, errNoBinding }
func (Device) Attribute(int) (int, error)                                 { return 0, errNoBinding }
func (Device) PCIBusID() (string, error)                                  { return "", errNoBinding }
func (Device) PrimaryCtxRetain() (Context, error)                         { return Context{}, errNoBinding }
func (Device) PrimaryCtxRelease() error                                   { return errNoBinding }
func (Context) SetCurrent() error                                         { return errNoBinding }
func MemAlloc(int64) (DevicePtr, error)                                   { return 0, errNoBinding }
func MemFree(DevicePtr) error                                             { return errNoBinding }
func MemHostAlloc(int64, uint) (unsafe.Pointer, error)                    { return nil, errNoBinding }
func MemFreeHost(unsafe.Pointer) error                                    { return errNoBinding }
func MemHostRegister(unsafe.Pointer, int64, uint) error                   { return errNoBinding }
func MemHostUnregister(unsafe.Pointer) error                              { return errNoBinding }
func MemcpyHtoD(DevicePtr, unsafe.Pointer, int64) error                   { return errNoBinding }
func MemcpyDtoH(unsafe.Pointer, DevicePtr, int64) error                   { return errNoBinding }
func MemsetD8(DevicePtr, byte, int64) error                               { return errNoBinding }
func StreamCreate(uint) (Stream, error)                                   { return Stream{}, errNoBinding }
func (Stream) Destroy() error                                             { return errNoBinding }
func (Stream) Synchronize() error                                         { return errNoBinding }
func EventCreate(uint) (Event, error)                                     { return Event{}, errNoBinding }
func (Event) Destroy() error                                              { return errNoBinding }
func (Event) Synchronize() error                                          { return errNoBinding }
func (Event) Wait() error                                                 { return errNoBinding }
func ExportDMABuf(DevicePtr, int64) (int, error)                          { return -1, errNoBinding }
func FakeLive() int64                                                     { return -1 }
func LoadCuFile() error                                                   { return errNoBinding }
func FileDriverOpen() error                                               { return errNoBinding }
func FileDriverClose() error                                              { return errNoBinding }
func FileDriverProperties() (DriverProps, error)                          { return DriverProps{}, errNoBinding }
func FileHandleRegister(int) (FileHandle, error)                          { return FileHandle{}, errNoBinding }
func (FileHandle) Deregister()                                            {}
func FileBufRegister(DevicePtr, int64) error                              { return errNoBinding }
func FileBufDeregister(DevicePtr) error                                   { return errNoBinding }
func FileRead(FileHandle, DevicePtr, int64, int64, int64) (int64, error)  { return 0, errNoBinding }
func FileWrite(FileHandle, DevicePtr, int64, int64, int64) (int64, error) { return 0, errNoBinding }
func HasBatchIO() bool                                                    { return false }
func NewBatch(int) (*Batch, error)                                        { return nil, errNoBinding }
func (*Batch) Cap() int                                                   { return 0 }
func (*Batch) Submit([]BatchIO) error                                     { return errNoBinding }
func (*Batch) Close()                                                     {}

func (*Batch) Status(_ int, _ time.Duration, out []BatchEvent) ([]BatchEvent, error) {
	return out, errNoBinding
}

func CopyHtoDAsyncRecord(DevicePtr, unsafe.Pointer, int64, Stream, Event) error { return errNoBinding }
func CopyDtoHAsyncRecord(unsafe.Pointer, DevicePtr, int64, Stream, Event) error { return errNoBinding }

func CopyHtoDAsyncRecordWait(DevicePtr, unsafe.Pointer, int64, Stream, Event, *Event) (err, waitErr error) {
	return errNoBinding, nil
}

// Context, Stream, Event, FileHandle and Batch have no values in this build.
type (
	Context    struct{}
	Stream     struct{}
	Event      struct{}
	FileHandle struct{}
	Batch      struct{}
)
