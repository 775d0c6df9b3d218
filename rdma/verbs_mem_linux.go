//go:build linux && cgo

package rdma

// Memory registration: the devices the connection manager has brought up,
// each with one protection domain, and the regions registered with all of
// them.

/*
#include "verbs.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

type device struct {
	idx  int
	ctx  *C.struct_ibv_context
	pd   *C.struct_ibv_pd
	name string
	// From ibv_query_device.
	maxRdAtom, maxInitRdAtom, maxQPWR, maxCQE int

	mu  sync.RWMutex
	mrs []mrRange // sorted by start, not overlapping; guarded by mu
}

// mrRange is a region's registration on one device.
type mrRange struct {
	start, end uintptr
	lkey, rkey uint32
}

// lookup finds the registration covering [addr, addr+n). The caller holds
// d.mu for reading.
func (d *device) lookup(addr uintptr, n int) (mrRange, bool) {
	lo, hi := 0, len(d.mrs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if d.mrs[m].start <= addr {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo == 0 {
		return mrRange{}, false
	}
	r := d.mrs[lo-1]
	// addr past the region's end: not in it (r.end-addr would wrap).
	if n < 0 || addr >= r.end || uintptr(n) > r.end-addr {
		return mrRange{}, false
	}
	return r, true
}

func (d *device) insert(r mrRange) {
	d.mu.Lock()
	i, _ := slices.BinarySearchFunc(d.mrs, r.start, func(m mrRange, s uintptr) int {
		switch {
		case m.start < s:
			return -1
		case m.start > s:
			return 1
		}
		return 0
	})
	d.mrs = slices.Insert(d.mrs, i, r)
	d.mu.Unlock()
}

func (d *device) remove(start uintptr) {
	d.mu.Lock()
	d.mrs = slices.DeleteFunc(d.mrs, func(m mrRange) bool { return m.start == start })
	d.mu.Unlock()
}

// reg registers r with d: ibv_reg_mr of its addresses, or
// ibv_reg_dmabuf_mr of its dma-buf.
func (d *device) reg(r *region) (*C.struct_ibv_mr, error) {
	var mr *C.struct_ibv_mr
	n := r.end - r.start
	if r.dmabuf >= 0 {
		if rc := C.fp_reg_dmabuf_mr(d.pd, C.uint64_t(r.offset), C.size_t(n), C.uint64_t(r.start), C.int(r.dmabuf), &mr); rc != 0 {
			return nil, fmt.Errorf("rdma: register %d bytes of dma-buf fd %d (offset %d) at iova %#x on %s: %w "+
				"(the GPU driver must export dma-bufs the NIC driver accepts: open kernel modules, Linux >= 5.12; else RegisterAddr with nvidia-peermem)",
				n, r.dmabuf, r.offset, r.start, d.name, errnoErr("ibv_reg_dmabuf_mr", rc))
		}
		return mr, nil
	}
	if rc := C.fp_reg_mr(d.pd, C.uint64_t(r.start), C.size_t(n), &mr); rc != 0 {
		return nil, fmt.Errorf("rdma: register %d bytes at %#x on %s: %w", n, r.start, d.name, errnoErr("ibv_reg_mr", rc))
	}
	return mr, nil
}

func mrRangeOf(mr *C.struct_ibv_mr, start, end uintptr) mrRange {
	return mrRange{start: start, end: end, lkey: uint32(mr.lkey), rkey: uint32(mr.rkey)}
}

// device returns the device of an ibv_context the connection manager
// opened, setting it up on first sight: its protection domain, and every
// registered region registered there.
func (p *verbs) device(ctx *C.struct_ibv_context) (*device, error) {
	if ctx == nil {
		return nil, fmt.Errorf("rdma: connection manager id has no device: %w", errUnavailable)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range p.devices {
		if d.ctx == ctx {
			return d, nil
		}
	}
	d := &device{idx: len(p.devices), ctx: ctx, name: C.GoString(C.fp_device_name(ctx))}
	var rd, ini, qpwr, cqe C.int
	if rc := C.fp_device_caps(ctx, &rd, &ini, &qpwr, &cqe); rc != 0 {
		return nil, fmt.Errorf("rdma: query device %s: %w", d.name, errnoErr("ibv_query_device", rc))
	}
	d.maxRdAtom, d.maxInitRdAtom, d.maxQPWR, d.maxCQE = int(rd), int(ini), int(qpwr), int(cqe)
	if rc := C.fp_alloc_pd(ctx, &d.pd); rc != 0 {
		return nil, fmt.Errorf("rdma: device %s: %w", d.name, errnoErr("ibv_alloc_pd", rc))
	}
	mrs := make([]*C.struct_ibv_mr, 0, len(p.regions))
	for _, r := range p.regions {
		mr, err := d.reg(r)
		if err != nil {
			for _, mr := range mrs {
				C.fp_dereg_mr(mr)
			}
			C.fp_dealloc_pd(d.pd)
			return nil, err
		}
		mrs = append(mrs, mr)
	}
	for i, r := range p.regions {
		r.mrs = append(r.mrs, mrs[i])
		d.mrs = append(d.mrs, mrRangeOf(mrs[i], r.start, r.end))
	}
	slices.SortFunc(d.mrs, func(a, b mrRange) int {
		if a.start < b.start {
			return -1
		}
		return 1
	})
	p.devices = append(p.devices, d)
	return d, nil
}

// region is memory registered with every device.
type region struct {
	p          *verbs
	mem        []byte // keeps Go memory, if that is what was registered, alive
	start, end uintptr
	// A dma-buf region: the provider's duplicate of its fd (-1 for
	// memory registered by address) and the offset of start in it; start
	// and end are then iova.
	dmabuf int
	offset uint64
	mrs    []*C.struct_ibv_mr // by device index; guarded by p.mu
	closed bool               // guarded by p.mu
}

// Register registers mem with every device's protection domain, now and as
// devices appear, for local write and remote read and write. Regions may
// not overlap.
func (p *verbs) Register(mem []byte) (Region, error) {
	if len(mem) == 0 {
		return nil, errors.New("rdma: register: empty region")
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	return p.add(&region{p: p, mem: mem, start: start, end: start + uintptr(len(mem)), dmabuf: -1})
}

// RegisterAddr registers length bytes at addr as Register does mem: host
// memory outside the Go heap, or GPU memory that a peer memory client
// (nvidia-peermem) lets ibv_reg_mr pin.
func (p *verbs) RegisterAddr(addr uintptr, length int) (Region, error) {
	if length <= 0 || addr == 0 {
		return nil, fmt.Errorf("rdma: register %d bytes at %#x: need an address and a positive length", length, addr)
	}
	return p.add(&region{p: p, start: addr, end: addr + uintptr(length), dmabuf: -1})
}

// haveDMABuf reports whether libibverbs has ibv_reg_dmabuf_mr (a variable
// for tests).
var haveDMABuf = func() bool { return C.fp_have_reg_dmabuf_mr() != 0 }

// RegisterDMABuf registers length bytes at offset in the dma-buf fd with
// every device (ibv_reg_dmabuf_mr), now and as devices appear, for remote
// read and write at iova. It keeps a duplicate of fd until Close; the
// caller may close its own.
func (p *verbs) RegisterDMABuf(fd int, offset uint64, length int, iova uint64) (Region, error) {
	if !haveDMABuf() {
		return nil, fmt.Errorf("%w: ibv_reg_dmabuf_mr missing: rdma-core >= 34 needed (upgrade libibverbs, or register GPU memory by address with nvidia-peermem loaded)", errUnavailable)
	}
	if fd < 0 || length <= 0 || iova == 0 {
		return nil, fmt.Errorf("rdma: register dma-buf fd %d, %d bytes at iova %#x: need an open fd, a positive length and an address", fd, length, iova)
	}
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("rdma: register dma-buf fd %d: %w", fd, os.NewSyscallError("fcntl F_DUPFD_CLOEXEC", err))
	}
	r, err := p.add(&region{p: p, start: uintptr(iova), end: uintptr(iova) + uintptr(length), dmabuf: dup, offset: offset})
	if err != nil {
		unix.Close(dup)
	}
	return r, err
}

// add registers r with every device and keeps it for devices to come.
func (p *verbs) add(r *region) (Region, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, o := range p.regions {
		if r.start < o.end && o.start < r.end {
			return nil, fmt.Errorf("rdma: register %d bytes at %#x: overlaps the region at %#x+%d",
				r.end-r.start, r.start, o.start, o.end-o.start)
		}
	}
	for _, d := range p.devices {
		mr, err := d.reg(r)
		if err != nil {
			for _, mr := range r.mrs {
				C.fp_dereg_mr(mr)
			}
			return nil, err
		}
		r.mrs = append(r.mrs, mr)
	}
	for i, d := range p.devices {
		d.insert(mrRangeOf(r.mrs[i], r.start, r.end))
	}
	p.regions = append(p.regions, r)
	return r, nil
}

// Close deregisters the region from every device. Work requests must no
// longer use it.
func (r *region) Close() error {
	p := r.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	p.regions = slices.DeleteFunc(p.regions, func(o *region) bool { return o == r })
	var errs []error
	for i, mr := range r.mrs {
		d := p.devices[i]
		d.remove(r.start)
		if rc := C.fp_dereg_mr(mr); rc != 0 {
			errs = append(errs, fmt.Errorf("rdma: deregister %#x on %s: %w", r.start, d.name, errnoErr("ibv_dereg_mr", rc)))
		}
	}
	r.mrs = nil
	r.mem = nil
	if r.dmabuf >= 0 {
		unix.Close(r.dmabuf)
		r.dmabuf = -1
	}
	return errors.Join(errs...)
}
