//go:build cgo

package cuda

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/flashpath/flashpath/gds/gdstest"
)

func TestMain(m *testing.M) {
	gdstest.Main(m)
}

func TestBatchLayout(t *testing.T) {
	p, e := cLayout()
	if p != unsafe.Sizeof(ioParams{}) || p != 64 {
		t.Fatalf("CUfileIOParams_t: C %d, Go %d, want 64", p, unsafe.Sizeof(ioParams{}))
	}
	if e != unsafe.Sizeof(ioEvent{}) || e != 24 {
		t.Fatalf("CUfileIOEvents_t: C %d, Go %d, want 24", e, unsafe.Sizeof(ioEvent{}))
	}
}

func TestMissingLibraryIsNotSupported(t *testing.T) {
	// A separate process state is needed for Init's once; check the loader
	// message path through cuFile instead, which has its own once.
	err := checkFile("cuFileDriverOpen", fileErrFor(FilePlatformNotSupported))
	if !errors.Is(err, ErrNotSupported) {
		t.Fatalf("%v does not wrap ErrNotSupported", err)
	}
	if err := (&Error{Op: "cuInit", Result: ErrorNoDevice}); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("%v does not wrap ErrNotSupported", err)
	}
}

func TestDriverBasics(t *testing.T) {
	if err := Init(); err != nil {
		t.Fatal(err)
	}
	n, err := DeviceCount()
	if err != nil || n != 1 {
		t.Fatalf("DeviceCount = %d, %v", n, err)
	}
	d, err := GetDevice(0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := GetDevice(3); err == nil {
		t.Fatal("GetDevice(3) succeeded on a one-device fake")
	}
	name, _ := d.Name()
	bus, _ := d.PCIBusID()
	mem, _ := d.TotalMem()
	if name != "Fake GPU" || bus != "0000:3B:00.0" || mem != 80<<30 {
		t.Fatalf("device: %q %q %d", name, bus, mem)
	}
	ctx, err := d.PrimaryCtxRetain()
	if err != nil {
		t.Fatal(err)
	}
	defer d.PrimaryCtxRelease()
	if err := ctx.SetCurrent(); err != nil {
		t.Fatal(err)
	}
	live := FakeLive()
	p, err := MemAlloc(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	h, err := MemHostAlloc(1<<20, MemHostAllocPortable)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := StreamCreate(StreamNonBlocking)
	e, _ := EventCreate(EventDisableTiming)
	hb := unsafe.Slice((*byte)(h), 1<<20)
	for i := range hb {
		hb[i] = byte(i)
	}
	if err := CopyHtoDAsyncRecord(p, h, 1<<20, s, e); err != nil {
		t.Fatal(err)
	}
	if err := e.Synchronize(); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 1<<20)
	if err := MemcpyDtoH(unsafe.Pointer(&out[0]), p, 1<<20); err != nil {
		t.Fatal(err)
	}
	for i := range out {
		if out[i] != byte(i) {
			t.Fatalf("byte %d = %d", i, out[i])
		}
	}
	e.Destroy()
	s.Destroy()
	MemFreeHost(h)
	MemFree(p)
	if FakeLive() != live {
		t.Fatalf("fake leaks: %d live, want %d", FakeLive(), live)
	}
}

func TestCuFile(t *testing.T) {
	if err := FileDriverOpen(); err != nil {
		t.Fatal(err)
	}
	defer FileDriverClose()
	props, err := FileDriverProperties()
	if err != nil {
		t.Fatal(err)
	}
	if props.NVFSMajor != 0 || props.ControlFlags&ControlAllowCompatMode == 0 {
		t.Fatalf("props: %+v", props)
	}
	path := filepath.Join(t.TempDir(), "f")
	data := make([]byte, 3*4096+100)
	for i := range data {
		data[i] = byte(i * 7)
	}
	os.WriteFile(path, data, 0o644)
	f, _ := os.Open(path)
	defer f.Close()
	h, err := FileHandleRegister(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Deregister()
	dev, _ := MemAlloc(int64(len(data)))
	defer MemFree(dev)
	n, err := FileRead(h, dev, int64(len(data)), 0, 0)
	if err != nil || n != int64(len(data)) {
		t.Fatalf("FileRead = %d, %v", n, err)
	}
	if got := readDev(t, dev, len(data)); string(got) != string(data) {
		t.Fatal("FileRead data mismatch")
	}
	if !HasBatchIO() {
		t.Fatal("fake exports the batch API")
	}
	b, err := NewBatch(4)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	MemsetD8(dev, 0, int64(len(data)))
	ios := []BatchIO{
		{Handle: h, Opcode: BatchRead, Base: dev, DevOff: 0, Off: 0, Size: 4096, Cookie: 1},
		{Handle: h, Opcode: BatchRead, Base: dev, DevOff: 4096, Off: 4096, Size: int64(len(data)) - 4096, Cookie: 2},
	}
	if err := b.Submit(ios); err != nil {
		t.Fatal(err)
	}
	evs, err := b.Status(2, time.Second, nil)
	if err != nil || len(evs) != 2 {
		t.Fatalf("Status = %v, %v", evs, err)
	}
	for _, e := range evs {
		if e.Status != StatusComplete || e.Ret != ios[e.Cookie-1].Size {
			t.Fatalf("event %+v", e)
		}
	}
	if got := readDev(t, dev, len(data)); string(got) != string(data) {
		t.Fatal("batch data mismatch")
	}
}

func readDev(t *testing.T, p DevicePtr, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if err := MemcpyDtoH(unsafe.Pointer(&b[0]), p, int64(n)); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFileErrorNames(t *testing.T) {
	err := checkFile("cuFileHandleRegister", fileErrFor(FileHandleNotRegistered))
	want := "cuFileHandleRegister: CU_FILE_HANDLE_NOT_REGISTERED: file descriptor is not registered"
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
	for code, name := range map[int]string{
		5001: "CU_FILE_DRIVER_NOT_INITIALIZED", 5007: "CU_FILE_PLATFORM_NOT_SUPPORTED", 5008: "CU_FILE_IO_NOT_SUPPORTED",
		5026: "CU_FILE_DRIVER_ALREADY_OPEN", 5034: "CU_FILE_IO_DISABLED", 5050: "CU_FILE_IO_MAX_ERROR",
	} {
		if got, _ := FileErrorName(code); got != name {
			t.Errorf("FileErrorName(%d) = %s, want %s", code, got, name)
		}
	}
	if got, text := FileErrorName(5021); got != "CUfileOpError 5021" || text != "unknown cufile error" {
		t.Errorf("FileErrorName(5021) = %s, %s", got, text)
	}
	for code, notSupported := range map[int]bool{
		FileDriverNotInitialized: true, FilePlatformNotSupported: true, FileIONotSupported: true,
		FileHandleNotRegistered: true, 5026: false, 5030: false,
	} {
		if got := errors.Is(checkFile("op", fileErrFor(code)), ErrNotSupported); got != notSupported {
			t.Errorf("code %d: Is(ErrNotSupported) = %v", code, got)
		}
	}
	if _, err := ioResult("cuFileRead", -5008); err == nil || err.Error() != "cuFileRead: CU_FILE_IO_NOT_SUPPORTED: GPUDirect Storage not supported on current file" {
		t.Errorf("ioResult(-5008) = %v", err)
	}
}

// TestHostRegister pins a mapped file's pages and copies from them: the
// fake enforces what the driver does (page alignment, no overlapping
// ranges) and what it cannot check on a GPU (no unregister while a queued
// copy still reads the range).
func TestHostRegister(t *testing.T) {
	if err := Init(); err != nil {
		t.Fatal(err)
	}
	d, _ := GetDevice(0)
	ctx, err := d.PrimaryCtxRetain()
	if err != nil {
		t.Fatal(err)
	}
	defer d.PrimaryCtxRelease()
	ctx.SetCurrent()
	if v, err := d.Attribute(AttrReadOnlyHostRegisterSupported); err != nil || v != 1 {
		t.Fatalf("read-only register attribute = %d, %v", v, err)
	}
	live := FakeLive()
	data := make([]byte, 3*4096)
	for i := range data {
		data[i] = byte(i * 3)
	}
	name := filepath.Join(t.TempDir(), "f")
	os.WriteFile(name, data, 0o644)
	f, _ := os.Open(name)
	defer f.Close()
	m, err := syscall.Mmap(int(f.Fd()), 0, len(data), syscall.PROT_READ, syscall.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(m)
	base := unsafe.Pointer(&m[0])
	if err := MemHostRegister(unsafe.Add(base, 100), 4096, MemHostRegisterReadOnly); err == nil {
		t.Fatal("unaligned range registered")
	}
	if err := MemHostRegister(base, 2*4096, MemHostRegisterReadOnly); err != nil {
		t.Fatal(err)
	}
	err = MemHostRegister(unsafe.Add(base, 4096), 2*4096, MemHostRegisterReadOnly)
	if !IsResult(err, ErrorHostMemoryAlreadyRegistered) {
		t.Fatalf("overlapping register: %v", err)
	}
	p, _ := MemAlloc(int64(len(data)))
	s, _ := StreamCreate(StreamNonBlocking)
	e, _ := EventCreate(EventDisableTiming)
	if err := CopyHtoDAsyncRecord(p, unsafe.Add(base, 10), 2*4096-10, s, e); err != nil {
		t.Fatal(err)
	}
	if err := MemHostUnregister(base); err == nil {
		t.Fatal("unregistered under a queued copy")
	}
	if err := e.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := MemHostUnregister(base); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 2*4096-10)
	MemcpyDtoH(unsafe.Pointer(&out[0]), p, int64(len(out)))
	if !bytes.Equal(out, data[10:2*4096]) {
		t.Fatal("copy from registered pages differs from the file")
	}
	if err := MemHostUnregister(base); err == nil {
		t.Fatal("unregistered twice")
	}
	e.Destroy()
	s.Destroy()
	MemFree(p)
	if FakeLive() != live {
		t.Fatalf("fake leaks: %d live, want %d", FakeLive(), live)
	}
}

// TestDMABufSupported: the device attribute says whether dma-buf export
// works, and export fails as not supported where it does not.
func TestDMABufSupported(t *testing.T) {
	if err := Init(); err != nil {
		t.Fatal(err)
	}
	d, _ := GetDevice(0)
	if ok, err := d.DMABufSupported(); err != nil || !ok {
		t.Fatalf("DMABufSupported = %v, %v; the fake exports dma-bufs", ok, err)
	}
	fd, err := ExportDMABuf(0x10000, 1<<16)
	if err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)

	t.Setenv("FAKECUDA_NO_DMABUF", "1")
	if ok, err := d.DMABufSupported(); err != nil || ok {
		t.Fatalf("DMABufSupported without dma-buf export = %v, %v; want false, nil", ok, err)
	}
	if _, err := ExportDMABuf(0x10000, 1<<16); !errors.Is(err, ErrNotSupported) {
		t.Fatalf("ExportDMABuf without dma-buf export: %v, want ErrNotSupported", err)
	}
}
