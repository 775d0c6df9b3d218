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
	"slices"
	"sync"
	"unsafe"
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
	if n < 0 || uintptr(n) > r.end-addr {
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

func (d *device) reg(start, end uintptr) (*C.struct_ibv_mr, error) {
	var mr *C.struct_ibv_mr
	if rc := C.fp_reg_mr(d.pd, C.uint64_t(start), C.size_t(end-start), &mr); rc != 0 {
		return nil, fmt.Errorf("rdma: register %d bytes at %#x on %s: %w", end-start, start, d.name, errnoErr("ibv_reg_mr", rc))
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
		mr, err := d.reg(r.start, r.end)
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
	mrs        []*C.struct_ibv_mr // by device index; guarded by p.mu
	closed     bool               // guarded by p.mu
}

// Register registers mem with every device's protection domain, now and as
// devices appear, for local write and remote read and write. Regions may
// not overlap.
func (p *verbs) Register(mem []byte) (Region, error) {
	if len(mem) == 0 {
		return nil, errors.New("rdma: register: empty region")
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(mem)))
	r := &region{p: p, mem: mem, start: start, end: start + uintptr(len(mem))}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, o := range p.regions {
		if r.start < o.end && o.start < r.end {
			return nil, fmt.Errorf("rdma: register %d bytes at %#x: overlaps the region at %#x+%d",
				len(mem), r.start, o.start, o.end-o.start)
		}
	}
	for _, d := range p.devices {
		mr, err := d.reg(r.start, r.end)
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
	return errors.Join(errs...)
}
