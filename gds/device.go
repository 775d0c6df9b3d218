package gds

import (
	"cmp"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/flashpath/flashpath/gds/internal/cuda"
	"github.com/flashpath/flashpath/internal/platform"
)

// ErrNotSupported is wrapped by every error that means the machine lacks
// the NVIDIA driver, a GPU, or cuFile, or that this build lacks the
// binding (no cgo, not Linux). Callers fall back; tests skip. It is
// platform.ErrNotSupported.
var ErrNotSupported = platform.ErrNotSupported

// DevicePtr is a device address (CUdeviceptr) in the device's primary
// context, the one the CUDA runtime uses: PyTorch and CuPy tensors in the
// same process are valid DevicePtrs and vice versa.
type DevicePtr uint64

// DeviceInfo describes one GPU as the CUDA driver sees it.
type DeviceInfo struct {
	Index    int    `json:"index"`
	Name     string `json:"name"`
	PCIBusID string `json:"pci_bus_id"` // lower case, domain:bus:device.function
	Memory   uint64 `json:"memory_bytes"`
}

func lowerASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// live counts open GPU resources (devices, buffers), for leak tests.
var live atomic.Int64

// Device is an open GPU: its primary context, retained until Close, and a
// pool of pinned staging buffers reused by transfers.
type Device struct {
	Info DeviceInfo
	dev  cuda.Device
	ctx  cuda.Context

	mu      sync.Mutex
	staging map[int64][]*HostBuffer // free pinned buffers by size; guarded by mu
	closed  bool                    // guarded by mu
}

// DeviceCount is the number of GPUs the CUDA driver sees (ordinals 0 to
// n-1). The error wraps ErrNotSupported where the driver does not load.
func DeviceCount() (int, error) { return cuda.DeviceCount() }

// OpenDevice retains GPU ordinal's primary context.
func OpenDevice(ordinal int) (*Device, error) {
	if err := cuda.Init(); err != nil {
		return nil, err
	}
	d, err := cuda.GetDevice(ordinal)
	if err != nil {
		return nil, err
	}
	ctx, err := d.PrimaryCtxRetain()
	if err != nil {
		return nil, fmt.Errorf("open GPU %d: %w", ordinal, err)
	}
	dev := &Device{dev: d, ctx: ctx, staging: map[int64][]*HostBuffer{}}
	dev.Info.Index = ordinal
	dev.Info.Name, _ = d.Name()
	bus, _ := d.PCIBusID()
	dev.Info.PCIBusID = lowerASCII(bus)
	dev.Info.Memory, _ = d.TotalMem()
	live.Add(1)
	return dev, nil
}

// Close frees the staging buffers and releases the primary context. Buffers
// allocated from the device must be closed first.
func (d *Device) Close() error {
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		return nil
	}
	d.closed = true
	var bufs []*HostBuffer
	for _, l := range d.staging {
		bufs = append(bufs, l...)
	}
	d.staging = nil
	d.mu.Unlock()
	for _, b := range bufs {
		b.Close()
	}
	live.Add(-1)
	return d.dev.PrimaryCtxRelease()
}

// Do runs f on an OS thread locked for the call with the device's context
// current.
func (d *Device) Do(f func() error) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := d.ctx.SetCurrent(); err != nil {
		return err
	}
	return f()
}

// bind locks the calling goroutine to its thread and makes the context
// current there; the caller unlocks when done with the thread.
func (d *Device) bind() error {
	runtime.LockOSThread()
	if err := d.ctx.SetCurrent(); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	return nil
}

// Buffer is GPU memory: an allocation of flashpath's (Alloc) or a range of
// someone else's (Wrap). A registered Buffer can later be exported as a
// dma-buf (ExportDMABuf) to register with an RDMA device.
type Buffer struct {
	dev   *Device
	ptr   DevicePtr
	size  int64
	owned bool
}

// Alloc allocates size bytes of device memory.
func (d *Device) Alloc(size int64) (*Buffer, error) {
	if size <= 0 {
		return nil, fmt.Errorf("alloc %d bytes: size must be positive", size)
	}
	var p cuda.DevicePtr
	err := d.Do(func() (err error) { p, err = cuda.MemAlloc(size); return err })
	if err != nil {
		return nil, fmt.Errorf("alloc %d bytes on GPU %d: %w", size, d.Info.Index, err)
	}
	live.Add(1)
	return &Buffer{dev: d, ptr: DevicePtr(p), size: size, owned: true}, nil
}

// Wrap describes size bytes of device memory at p that the caller owns
// (a PyTorch tensor, say); Close does not free it.
func (d *Device) Wrap(p DevicePtr, size int64) *Buffer {
	return &Buffer{dev: d, ptr: p, size: size}
}

// Ptr is the buffer's device address.
func (b *Buffer) Ptr() DevicePtr { return b.ptr }

// Size is the buffer's size in bytes.
func (b *Buffer) Size() int64 { return b.size }

// Close frees the allocation (if flashpath made it).
func (b *Buffer) Close() error {
	if !b.owned || b.ptr == 0 {
		return nil
	}
	p := b.ptr
	b.ptr = 0
	live.Add(-1)
	return b.dev.Do(func() error { return cuda.MemFree(cuda.DevicePtr(p)) })
}

// CopyToHost copies len(dst) bytes at offset off of the buffer into dst.
func (b *Buffer) CopyToHost(dst []byte, off int64) error {
	if off < 0 || off+int64(len(dst)) > b.size {
		return fmt.Errorf("copy to host: [%d,%d) outside buffer of %d bytes", off, off+int64(len(dst)), b.size)
	}
	if len(dst) == 0 {
		return nil
	}
	return b.dev.Do(func() error {
		return cuda.MemcpyDtoH(unsafe.Pointer(&dst[0]), cuda.DevicePtr(b.ptr)+cuda.DevicePtr(off), int64(len(dst)))
	})
}

// CopyFromHost copies src into the buffer at offset off.
func (b *Buffer) CopyFromHost(src []byte, off int64) error {
	if off < 0 || off+int64(len(src)) > b.size {
		return fmt.Errorf("copy from host: [%d,%d) outside buffer of %d bytes", off, off+int64(len(src)), b.size)
	}
	if len(src) == 0 {
		return nil
	}
	return b.dev.Do(func() error {
		return cuda.MemcpyHtoD(cuda.DevicePtr(b.ptr)+cuda.DevicePtr(off), unsafe.Pointer(&src[0]), int64(len(src)))
	})
}

// ExportDMABuf exports the buffer as a dma-buf fd
// (cuMemGetHandleForAddressRange) for an RDMA memory region; the caller
// closes the fd. The buffer's address and size must be page aligned.
func (b *Buffer) ExportDMABuf() (int, error) {
	var fd int
	err := b.dev.Do(func() (err error) { fd, err = cuda.ExportDMABuf(cuda.DevicePtr(b.ptr), b.size); return err })
	return fd, err
}

// HostBuffer is page-locked (pinned) host memory from cuMemHostAlloc.
type HostBuffer struct {
	dev *Device
	p   unsafe.Pointer
	b   []byte
}

// AllocHost allocates size bytes of pinned host memory.
func (d *Device) AllocHost(size int64) (*HostBuffer, error) {
	var p unsafe.Pointer
	err := d.Do(func() (err error) { p, err = cuda.MemHostAlloc(size, cuda.MemHostAllocPortable); return err })
	if err != nil {
		return nil, fmt.Errorf("alloc %d bytes of pinned memory: %w", size, err)
	}
	live.Add(1)
	return &HostBuffer{dev: d, p: p, b: unsafe.Slice((*byte)(p), size)}, nil
}

// Bytes is the buffer's memory; it must not be used after Close.
func (h *HostBuffer) Bytes() []byte { return h.b }

// Close frees the pinned memory.
func (h *HostBuffer) Close() error {
	if h.p == nil {
		return nil
	}
	p := h.p
	h.p, h.b = nil, nil
	live.Add(-1)
	return h.dev.Do(func() error { return cuda.MemFreeHost(p) })
}

// getStaging returns n pinned buffers of size bytes, reusing freed ones and
// allocating the rest in parallel (cuMemHostAlloc zeroes and pins its pages:
// tens of milliseconds per hundred MiB, spread over several threads).
func (d *Device) getStaging(n int, size int64) ([]*HostBuffer, error) {
	d.mu.Lock()
	free := d.staging[size]
	k := min(n, len(free))
	out := append(make([]*HostBuffer, 0, n), free[len(free)-k:]...)
	d.staging[size] = free[:len(free)-k]
	d.mu.Unlock()
	missing := n - len(out)
	if missing == 0 {
		return out, nil
	}
	fresh := make([]*HostBuffer, missing)
	errs := make([]error, missing)
	var wg sync.WaitGroup
	par := min(missing, max(runtime.NumCPU()/2, 1), 8)
	next := make(chan int, missing)
	for i := range missing {
		next <- i
	}
	close(next)
	for range par {
		wg.Go(func() {
			for i := range next {
				fresh[i], errs[i] = d.AllocHost(size)
			}
		})
	}
	wg.Wait()
	var first error
	for i, h := range fresh {
		if errs[i] != nil {
			first = cmp.Or(first, errs[i])
			continue
		}
		out = append(out, h)
	}
	if first != nil {
		d.putStaging(out)
		return nil, first
	}
	return out, nil
}

// StagingBytes is the pinned staging memory the device holds for reuse.
func (d *Device) StagingBytes() int64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	var n int64
	for size, l := range d.staging {
		n += size * int64(len(l))
	}
	return n
}

func (d *Device) putStaging(bufs []*HostBuffer) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		for _, b := range bufs {
			defer b.Close()
		}
		return
	}
	for _, b := range bufs {
		size := int64(len(b.b))
		d.staging[size] = append(d.staging[size], b)
	}
}
