package bench

import (
	"unsafe"

	"github.com/flashpath/flashpath/internal/bufpool"
)

const pageSize = 4096

// HostMemory is page-aligned host memory carved into equal I/O buffers,
// suitable for O_DIRECT and for registration with the kernel. Engines that
// use plain host memory return its Bufs from Engine.Buffers and Close it.
type HostMemory struct {
	mem  []byte
	Bufs []Buffer
}

// AllocHost maps n buffers of size bytes, each starting on a page boundary.
// The memory is filled with a non-compressible pattern, as fio does.
func AllocHost(n, size int) (*HostMemory, error) {
	stride := (size + pageSize - 1) &^ (pageSize - 1)
	mem, err := bufpool.Map(n * stride)
	if err != nil {
		return nil, err
	}
	x := uint64(0x9e3779b97f4a7c15)
	for i := 0; i+8 <= len(mem); i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		*(*uint64)(unsafe.Pointer(&mem[i])) = x
	}
	m := &HostMemory{mem: mem, Bufs: make([]Buffer, n)}
	for i := range n {
		b := mem[i*stride : i*stride+size : i*stride+size]
		m.Bufs[i] = Buffer{Bytes: b, Addr: uintptr(unsafe.Pointer(&b[0])), Len: size, Index: i}
	}
	return m, nil
}

// Mem is the whole mapping behind Bufs (to register it with a NIC once).
func (m *HostMemory) Mem() []byte { return m.mem }

// Close unmaps the memory; no buffer may be in use.
func (m *HostMemory) Close() error {
	if m == nil || m.mem == nil {
		return nil
	}
	err := bufpool.Unmap(m.mem)
	m.mem, m.Bufs = nil, nil
	return err
}
