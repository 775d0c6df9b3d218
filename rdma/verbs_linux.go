//go:build linux && cgo

package rdma

// The verbs provider: libibverbs and librdmacm through the C shim in
// verbs.c, which opens both with dlopen (nothing links against rdma-core).
//
// Every connection manager event channel and completion channel is made
// non-blocking and waited on through Go's netpoller (a dup of its fd in an
// os.File): no goroutine blocks in C. Each listener and each connection has
// its own event channel; an accepted id is migrated off the listener's
// channel as soon as its request is read, so a connection outlives its
// listener.
//
// A connection's queue pair has two completion queues, one per work queue,
// on one completion channel: a failed completion's opcode is undefined, so
// the queue it came from is what tells a flushed receive from a flushed
// send.

/*
#cgo LDFLAGS: -ldl
#cgo noescape fp_post_send
#cgo nocallback fp_post_send
#cgo noescape fp_post_recv
#cgo nocallback fp_post_recv
#cgo noescape fp_poll
#cgo nocallback fp_poll
#cgo nocallback fp_get_cq_event
#include <errno.h>
#include <stdlib.h>
#include "verbs.h"
*/
import "C"

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ErrNotSupported is wrapped by the errors that mean this machine lacks
// rdma-core or an RDMA device at the address asked for: callers fall back,
// tests skip.
var ErrNotSupported = errors.New("RDMA unavailable")

// The libraries Verbs opens (variables for tests).
var (
	libibverbsName = "libibverbs.so.1"
	librdmacmName  = "librdmacm.so.1"
)

const (
	defaultDepth  = 128
	listenBacklog = 128
	// resolveStep bounds address and route resolution when the context
	// has no deadline; connectStep bounds the connection handshake.
	resolveStep = 2 * time.Second
	connectStep = 60 * time.Second
	maxPostWR   = C.FP_MAX_POST_WR
	maxPollWC   = C.FP_MAX_POLL_WC
	maxPrivate  = C.FP_MAX_PRIV
	noDeviceFix = "load soft-RoCE (rdma link add rxe0 type rxe netdev IFACE) or use an RDMA NIC's address"
)

// Completion statuses used by name (enum ibv_wc_status).
const (
	wcSuccess  = C.IBV_WC_SUCCESS
	wcFlushErr = C.IBV_WC_WR_FLUSH_ERR
)

var (
	verbsOnce sync.Once
	verbsProv *verbs
	verbsErr  error
)

// Verbs returns the process-wide provider backed by libibverbs and
// librdmacm, which it loads on the first call. Without rdma-core the error
// wraps ErrNotSupported and says what to install.
//
// Connections it makes also implement interface{ PeerPrivateData() []byte }:
// the private data of the peer's request (accepted connections) or of its
// accept reply (dialed ones). RoCE and InfiniBand pad private data with
// zeros to the connection manager message's fixed size, so it may be longer
// than what the peer sent; so may ConnRequest.PrivateData and
// RejectError.PrivateData.
func Verbs() (Provider, error) {
	verbsOnce.Do(func() {
		if err := loadLibs(libibverbsName, librdmacmName); err != nil {
			verbsErr = err
			return
		}
		verbsProv = &verbs{}
	})
	if verbsErr != nil {
		return nil, verbsErr
	}
	return verbsProv, nil
}

func loadLibs(ibverbs, rdmacm string) error {
	ci, cr := C.CString(ibverbs), C.CString(rdmacm)
	defer C.free(unsafe.Pointer(ci))
	defer C.free(unsafe.Pointer(cr))
	var buf [512]C.char
	if C.fp_load(ci, cr, &buf[0], C.size_t(len(buf))) != 0 {
		return fmt.Errorf("%w: %s (install rdma-core: apt-get install ibverbs-providers librdmacm1)",
			ErrNotSupported, C.GoString(&buf[0]))
	}
	return nil
}

// errnoErr turns a negative errno from the shim into an error naming op.
func errnoErr(op string, rc C.int) error {
	if rc >= 0 {
		rc = -C.EIO
	}
	return os.NewSyscallError(op, syscall.Errno(-rc))
}

// verbs is the provider. Devices appear as connection manager ids bind to
// them; each gets one protection domain for the life of the process, and
// every registered region is registered with every device's domain.
type verbs struct {
	mu      sync.Mutex
	devices []*device // guarded by mu; index is device.idx
	regions []*region // guarded by mu
}

var _ Provider = (*verbs)(nil)

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
		return nil, fmt.Errorf("rdma: connection manager id has no device: %w", ErrNotSupported)
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

// ------------------------------------------------------------ event channels

// pollable makes fd non-blocking and returns a close-on-exec duplicate of
// it in an os.File, which the netpoller watches. Closing the file wakes its
// waiters and leaves fd, which the library owns, open.
func pollable(fd C.int, name string) (*os.File, syscall.RawConn, error) {
	if err := unix.SetNonblock(int(fd), true); err != nil {
		return nil, nil, os.NewSyscallError("fcntl", err)
	}
	nfd, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, nil, os.NewSyscallError("fcntl", err)
	}
	f := os.NewFile(uintptr(nfd), name)
	raw, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, raw, nil
}

// eventChannel is a connection manager event channel. One goroutine at a
// time reads it.
type eventChannel struct {
	ch       *C.struct_rdma_event_channel
	f        *os.File
	raw      syscall.RawConn
	stopOnce sync.Once
}

func newEventChannel() (*eventChannel, error) {
	e := &eventChannel{}
	if rc := C.fp_create_event_channel(&e.ch); rc != 0 {
		return nil, errnoErr("rdma_create_event_channel", rc)
	}
	var err error
	if e.f, e.raw, err = pollable(C.fp_event_channel_fd(e.ch), "rdma_cm"); err != nil {
		C.fp_destroy_event_channel(e.ch)
		return nil, err
	}
	return e, nil
}

// next waits for the next event (until the read deadline of e.f) and
// stores it in ev, acknowledged.
func (e *eventChannel) next(ev *C.struct_fp_cm_event) error {
	var rc C.int
	err := e.raw.Read(func(uintptr) bool {
		rc = C.fp_get_cm_event(e.ch, ev)
		return rc != -C.EAGAIN
	})
	if err != nil {
		return err
	}
	if rc != 0 {
		return errnoErr("rdma_get_cm_event", rc)
	}
	return nil
}

// await waits for an event of type want until deadline or ctx ends. A
// rejection is a *RejectError; error events are errors.
func (e *eventChannel) await(ctx context.Context, deadline time.Time, want C.int, ev *C.struct_fp_cm_event) error {
	e.f.SetReadDeadline(deadline)
	defer e.f.SetReadDeadline(time.Time{})
	if err := ctx.Err(); err != nil { // after SetReadDeadline: see Dial's AfterFunc
		return err
	}
	for {
		if err := e.next(ev); err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return cerr
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return fmt.Errorf("no %s event in time: %w", eventName(want), context.DeadlineExceeded)
			}
			return err
		}
		switch ev.event {
		case want:
			return nil
		case C.RDMA_CM_EVENT_REJECTED:
			return &RejectError{Reason: int(ev.status), PrivateData: privateData(ev)}
		case C.RDMA_CM_EVENT_ADDR_ERROR, C.RDMA_CM_EVENT_ROUTE_ERROR, C.RDMA_CM_EVENT_UNREACHABLE,
			C.RDMA_CM_EVENT_CONNECT_ERROR, C.RDMA_CM_EVENT_DEVICE_REMOVAL:
			err := fmt.Errorf("%s (status %d)", eventName(ev.event), int(ev.status))
			if ev.status < 0 {
				err = fmt.Errorf("%s: %w", eventName(ev.event), syscall.Errno(-ev.status))
			}
			return err
		}
		// Anything else (an address change) is not an answer: wait on.
	}
}

// stop wakes and ends next; the channel stays usable for librdmacm calls.
func (e *eventChannel) stop() {
	e.stopOnce.Do(func() { e.f.Close() })
}

// destroy stops e and destroys the channel; its ids must be gone.
func (e *eventChannel) destroy() {
	e.stop()
	C.fp_destroy_event_channel(e.ch)
}

func eventName(ev C.int) string { return C.GoString(C.fp_event_str(ev)) }

func privateData(ev *C.struct_fp_cm_event) []byte {
	if ev.priv_len == 0 {
		return nil
	}
	return C.GoBytes(unsafe.Pointer(&ev.priv[0]), C.int(ev.priv_len))
}

// ------------------------------------------------------------ addresses

func toFPAddr(ap netip.AddrPort) C.struct_fp_addr {
	var a C.struct_fp_addr
	ip := ap.Addr().Unmap()
	a.port = C.uint16_t(ap.Port())
	if ip.Is4() {
		a.family = C.AF_INET
		b := ip.As4()
		for i := range b {
			a.ip[i] = C.uint8_t(b[i])
		}
		return a
	}
	a.family = C.AF_INET6
	b := ip.As16()
	for i := range b {
		a.ip[i] = C.uint8_t(b[i])
	}
	if z := ip.Zone(); z != "" {
		if n, err := strconv.Atoi(z); err == nil {
			a.scope_id = C.uint32_t(n)
		} else if ifi, err := net.InterfaceByName(z); err == nil {
			a.scope_id = C.uint32_t(ifi.Index)
		}
	}
	return a
}

func fromFPAddr(a *C.struct_fp_addr) netip.AddrPort {
	var ip netip.Addr
	switch a.family {
	case C.AF_INET:
		ip = netip.AddrFrom4(*(*[4]byte)(unsafe.Pointer(&a.ip[0])))
	case C.AF_INET6:
		ip = netip.AddrFrom16(*(*[16]byte)(unsafe.Pointer(&a.ip[0])))
		if a.scope_id != 0 {
			ip = ip.WithZone(strconv.Itoa(int(a.scope_id)))
		}
	default:
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(ip, uint16(a.port))
}

func idAddrs(id *C.struct_rdma_cm_id) (local, remote netip.AddrPort) {
	var l, r C.struct_fp_addr
	C.fp_id_addrs(id, &l, &r)
	return fromFPAddr(&l), fromFPAddr(&r)
}

// deviceCount is the number of RDMA devices the connection manager sees.
func (p *verbs) deviceCount() int { return max(0, int(C.fp_rdma_device_count())) }

// ------------------------------------------------------------ listen

type listener struct {
	p      *verbs
	id     *C.struct_rdma_cm_id
	ev     *eventChannel
	addr   netip.AddrPort
	reqs   chan *connReq // closed when run returns
	runErr error         // why run returned; written before reqs is closed
	done   chan struct{} // closed by Close
	once   sync.Once
}

// noDevice is the error for an address no RDMA device serves.
func noDevice(op string, addr netip.AddrPort, cause error) error {
	if cause != nil {
		return fmt.Errorf("rdma: %s %v: %w: no RDMA device has address %v (%v); %s",
			op, addr, ErrNotSupported, addr.Addr(), cause, noDeviceFix)
	}
	return fmt.Errorf("rdma: %s %v: %w: no RDMA device has address %v; %s",
		op, addr, ErrNotSupported, addr.Addr(), noDeviceFix)
}

// isNoDevice reports whether a connection manager call failed because
// there is no RDMA device (for the address).
func isNoDevice(err error) bool {
	return errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENOENT) ||
		errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.ENXIO)
}

// Listen binds a connection manager id to addr and listens. The address
// must be on an RDMA device (or unspecified: all of them); port 0 picks a
// free port, which Addr reports.
func (p *verbs) Listen(addr netip.AddrPort) (Listener, error) {
	ev, err := newEventChannel()
	if err != nil {
		if isNoDevice(err) {
			return nil, noDevice("listen", addr, err)
		}
		return nil, fmt.Errorf("rdma: listen %v: %w", addr, err)
	}
	l := &listener{p: p, ev: ev, reqs: make(chan *connReq, 16), done: make(chan struct{})}
	if rc := C.fp_create_id(ev.ch, &l.id); rc != 0 {
		ev.destroy()
		return nil, fmt.Errorf("rdma: listen %v: %w", addr, errnoErr("rdma_create_id", rc))
	}
	fail := func(err error) (Listener, error) {
		C.fp_destroy_id(l.id)
		ev.destroy()
		return nil, err
	}
	a := toFPAddr(addr)
	if rc := C.fp_bind_addr(l.id, &a); rc != 0 {
		err := errnoErr("rdma_bind_addr", rc)
		if isNoDevice(err) {
			return fail(noDevice("listen", addr, err))
		}
		return fail(fmt.Errorf("rdma: listen %v: %w", addr, err))
	}
	if addr.Addr().IsUnspecified() {
		if p.deviceCount() == 0 {
			return fail(noDevice("listen", addr, errors.New("no RDMA devices")))
		}
	} else {
		ctx := C.fp_id_verbs(l.id)
		if ctx == nil {
			return fail(noDevice("listen", addr, nil))
		}
		if _, err := p.device(ctx); err != nil {
			return fail(fmt.Errorf("rdma: listen %v: %w", addr, err))
		}
	}
	if rc := C.fp_listen(l.id, listenBacklog); rc != 0 {
		return fail(fmt.Errorf("rdma: listen %v: %w", addr, errnoErr("rdma_listen", rc)))
	}
	l.addr, _ = idAddrs(l.id)
	go l.run()
	return l, nil
}

// run reads the listener's events: each connection request is migrated to
// an event channel of its own and queued for Accept.
func (l *listener) run() {
	defer close(l.reqs)
	var ev C.struct_fp_cm_event
	for {
		if err := l.ev.next(&ev); err != nil {
			l.runErr = err
			return
		}
		if ev.event != C.RDMA_CM_EVENT_CONNECT_REQUEST {
			continue // the listening id's own events (address change, device removal)
		}
		r, err := l.newRequest(&ev)
		if err != nil {
			C.fp_reject(ev.id, nil, 0)
			C.fp_destroy_id(ev.id)
			continue
		}
		select {
		case l.reqs <- r:
		case <-l.done:
			r.Reject(nil)
		}
	}
}

func (l *listener) newRequest(ev *C.struct_fp_cm_event) (*connReq, error) {
	ch, err := newEventChannel()
	if err != nil {
		return nil, err
	}
	if rc := C.fp_migrate_id(ev.id, ch.ch); rc != 0 {
		ch.destroy()
		return nil, errnoErr("rdma_migrate_id", rc)
	}
	r := &connReq{
		p:                  l.p,
		id:                 ev.id,
		ev:                 ch,
		priv:               privateData(ev),
		initiatorDepth:     int(ev.initiator_depth),
		responderResources: int(ev.responder_resources),
	}
	r.local, r.remote = idAddrs(ev.id)
	return r, nil
}

func (l *listener) Accept() (ConnRequest, error) {
	select {
	case <-l.done:
		return nil, ErrClosed
	default:
	}
	select {
	case r, ok := <-l.reqs:
		if ok {
			return r, nil
		}
		select {
		case <-l.done:
		default:
			return nil, fmt.Errorf("rdma: listener %v: %w", l.addr, l.runErr)
		}
	case <-l.done:
	}
	return nil, ErrClosed
}

func (l *listener) Addr() netip.AddrPort { return l.addr }

// Close stops listening and rejects the requests not yet accepted.
// Connections accepted from l are not affected.
func (l *listener) Close() error {
	l.once.Do(func() {
		close(l.done)
		l.ev.stop()
		for r := range l.reqs { // until run returns
			r.Reject(nil)
		}
		C.fp_destroy_id(l.id)
		l.ev.destroy()
	})
	return nil
}

// connReq owns a requested id, already on an event channel of its own,
// until Accept hands both to a connection or Reject destroys them.
type connReq struct {
	p                                  *verbs
	id                                 *C.struct_rdma_cm_id
	ev                                 *eventChannel
	priv                               []byte
	initiatorDepth, responderResources int
	local, remote                      netip.AddrPort

	mu       sync.Mutex
	answered bool // guarded by mu
}

func (r *connReq) PrivateData() []byte    { return r.priv }
func (r *connReq) Local() netip.AddrPort  { return r.local }
func (r *connReq) Remote() netip.AddrPort { return r.remote }

func (r *connReq) answer() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.answered {
		return errors.New("rdma: connection request already answered")
	}
	r.answered = true
	return nil
}

// drop refuses the request with priv and destroys the id and its channel.
func (r *connReq) drop(priv []byte) error {
	var err error
	if rc := C.fp_reject(r.id, bytesPtr(priv), C.uint8_t(len(priv))); rc != 0 {
		err = fmt.Errorf("rdma: reject %v: %w", r.remote, errnoErr("rdma_reject", rc))
	}
	C.fp_destroy_id(r.id)
	r.ev.destroy()
	return err
}

func (r *connReq) Reject(priv []byte) error {
	if len(priv) > maxPrivate {
		return fmt.Errorf("rdma: reject: %d bytes of private data, at most %d", len(priv), maxPrivate)
	}
	if err := r.answer(); err != nil {
		return err
	}
	return r.drop(priv)
}

// Accept creates the queue pair, runs setup and accepts. Responder
// resources are what the device and the peer's initiator depth allow;
// initiator depth what the device, the peer's responder resources and
// cfg.ReadDepth allow.
func (r *connReq) Accept(cfg ConnConfig, priv []byte, setup func(Conn) error) (Conn, error) {
	if len(priv) > maxPrivate {
		return nil, fmt.Errorf("rdma: accept: %d bytes of private data, at most %d", len(priv), maxPrivate)
	}
	if err := r.answer(); err != nil {
		return nil, err
	}
	dev, err := r.p.device(C.fp_id_verbs(r.id))
	if err != nil {
		r.drop(nil)
		return nil, err
	}
	c, err := newConn(r.p, dev, r.id, r.ev, cfg)
	if err != nil {
		r.drop(nil)
		return nil, err
	}
	c.local, c.remote, c.peerPriv = r.local, r.remote, r.priv
	fail := func(err error) (Conn, error) {
		if !c.closing.Load() { // setup may have closed c, and the id with it
			C.fp_reject(r.id, nil, 0)
		}
		c.Close()
		return nil, err
	}
	if setup != nil {
		if err := setup(c); err != nil {
			return fail(err)
		}
	}
	// The connection manager reports the request's values from this side's
	// point of view (the IB CM swaps them: the event's initiator_depth is
	// the peer's responder resources), so they bound ours directly, as
	// nvmet-rdma uses them. The Linux host asks for no RDMA READs
	// (initiator depth 0): swapping them here leaves a target unable to
	// READ its data.
	resp := min(dev.maxRdAtom, r.responderResources, 255)
	init := min(dev.maxInitRdAtom, r.initiatorDepth, 255)
	if cfg.ReadDepth > 0 {
		init = min(init, cfg.ReadDepth)
	}
	if rc := C.fp_accept(r.id, bytesPtr(priv), C.uint8_t(len(priv)), C.uint8_t(resp), C.uint8_t(init)); rc != 0 {
		return fail(fmt.Errorf("rdma: accept %v: %w", r.remote, errnoErr("rdma_accept", rc)))
	}
	c.startEvents()
	return c, nil
}

func bytesPtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(unsafe.SliceData(b))
}

// ------------------------------------------------------------ dial

// Dial resolves addr's address and route (each step bounded by ctx's
// deadline, or 2 s), creates the queue pair, runs setup, connects and waits
// for the peer's answer (bounded by ctx, or 60 s).
func (p *verbs) Dial(ctx context.Context, addr netip.AddrPort, cfg ConnConfig, priv []byte, setup func(Conn) error) (Conn, error) {
	if len(priv) > maxPrivate {
		return nil, fmt.Errorf("rdma: dial %v: %d bytes of private data, at most %d", addr, len(priv), maxPrivate)
	}
	ev, err := newEventChannel()
	if err != nil {
		if isNoDevice(err) {
			return nil, fmt.Errorf("rdma: dial %v: %w: no RDMA device (%v); %s", addr, ErrNotSupported, err, noDeviceFix)
		}
		return nil, fmt.Errorf("rdma: dial %v: %w", addr, err)
	}
	var id *C.struct_rdma_cm_id
	if rc := C.fp_create_id(ev.ch, &id); rc != 0 {
		ev.destroy()
		return nil, fmt.Errorf("rdma: dial %v: %w", addr, errnoErr("rdma_create_id", rc))
	}
	var c *conn
	fail := func(err error) (Conn, error) {
		if c != nil {
			c.Close()
		} else {
			C.fp_destroy_id(id)
			ev.destroy()
		}
		return nil, fmt.Errorf("rdma: dial %v: %w", addr, err)
	}
	// The end of ctx wakes the event waits (await checks ctx after setting
	// its deadline, so none is lost) until disarmed: then the connection's
	// event goroutine owns the channel.
	var wakeMu sync.Mutex
	armed := true
	stopWake := context.AfterFunc(ctx, func() {
		wakeMu.Lock()
		defer wakeMu.Unlock()
		if armed {
			ev.f.SetReadDeadline(time.Unix(1, 0))
		}
	})
	disarm := func() {
		stopWake()
		wakeMu.Lock()
		armed = false
		wakeMu.Unlock()
	}
	defer disarm()
	step := func(d time.Duration) time.Time {
		if dl, ok := ctx.Deadline(); ok {
			return dl
		}
		return time.Now().Add(d)
	}
	ms := func(dl time.Time) C.int {
		return C.int(max(1, min(time.Until(dl).Milliseconds(), 1<<30)))
	}

	var cev C.struct_fp_cm_event
	dl := step(resolveStep)
	dst := toFPAddr(addr)
	if rc := C.fp_resolve_addr(id, &dst, ms(dl)); rc != 0 {
		return fail(noDeviceHint(errnoErr("rdma_resolve_addr", rc)))
	}
	if err := ev.await(ctx, dl, C.RDMA_CM_EVENT_ADDR_RESOLVED, &cev); err != nil {
		return fail(noDeviceHint(err))
	}
	dl = step(resolveStep)
	if rc := C.fp_resolve_route(id, ms(dl)); rc != 0 {
		return fail(noDeviceHint(errnoErr("rdma_resolve_route", rc)))
	}
	if err := ev.await(ctx, dl, C.RDMA_CM_EVENT_ROUTE_RESOLVED, &cev); err != nil {
		return fail(noDeviceHint(err))
	}
	dev, err := p.device(C.fp_id_verbs(id))
	if err != nil {
		return fail(err)
	}
	if c, err = newConn(p, dev, id, ev, cfg); err != nil {
		return fail(err)
	}
	if setup != nil {
		if err := setup(c); err != nil {
			return fail(err)
		}
	}
	resp := min(dev.maxRdAtom, 255)
	init := min(dev.maxInitRdAtom, 255)
	if cfg.ReadDepth > 0 {
		init = min(init, cfg.ReadDepth)
	}
	if rc := C.fp_connect(id, bytesPtr(priv), C.uint8_t(len(priv)), C.uint8_t(resp), C.uint8_t(init)); rc != 0 {
		return fail(errnoErr("rdma_connect", rc))
	}
	if err := ev.await(ctx, step(connectStep), C.RDMA_CM_EVENT_ESTABLISHED, &cev); err != nil {
		return fail(err)
	}
	c.peerPriv = privateData(&cev)
	c.local, c.remote = idAddrs(id)
	disarm()
	ev.f.SetReadDeadline(time.Time{})
	c.startEvents()
	return c, nil
}

// noDeviceHint adds what to do to an error that means no RDMA device
// serves the address.
func noDeviceHint(err error) error {
	if isNoDevice(err) {
		return fmt.Errorf("%w: %w; %s", ErrNotSupported, err, noDeviceFix)
	}
	return err
}

// ------------------------------------------------------------ connections

// postWR mirrors struct fp_wr, pollWC struct fp_wc (verbs.h).
type postWR struct {
	id, addr, remoteAddr uint64
	len, lkey, rkey      uint32
	opcode, signaled     uint8
}

type pollWC struct {
	id                          uint64
	byteLen, invRkey, vendorErr uint32
	status, opcode, withInv     uint8
	recv                        uint8
}

// The mirrors must match the C structs: a difference is a negative or
// out-of-range constant index, which does not compile.
var (
	_ = [1]struct{}{}[unsafe.Sizeof(postWR{})-unsafe.Sizeof(C.struct_fp_wr{})]
	_ = [1]struct{}{}[unsafe.Offsetof(postWR{}.remoteAddr)-unsafe.Offsetof(C.struct_fp_wr{}.remote_addr)]
	_ = [1]struct{}{}[unsafe.Offsetof(postWR{}.len)-unsafe.Offsetof(C.struct_fp_wr{}.len)]
	_ = [1]struct{}{}[unsafe.Offsetof(postWR{}.rkey)-unsafe.Offsetof(C.struct_fp_wr{}.rkey)]
	_ = [1]struct{}{}[unsafe.Offsetof(postWR{}.signaled)-unsafe.Offsetof(C.struct_fp_wr{}.signaled)]
	_ = [1]struct{}{}[unsafe.Sizeof(pollWC{})-unsafe.Sizeof(C.struct_fp_wc{})]
	_ = [1]struct{}{}[unsafe.Offsetof(pollWC{}.byteLen)-unsafe.Offsetof(C.struct_fp_wc{}.byte_len)]
	_ = [1]struct{}{}[unsafe.Offsetof(pollWC{}.vendorErr)-unsafe.Offsetof(C.struct_fp_wc{}.vendor_err)]
	_ = [1]struct{}{}[unsafe.Offsetof(pollWC{}.status)-unsafe.Offsetof(C.struct_fp_wc{}.status)]
	_ = [1]struct{}{}[unsafe.Offsetof(pollWC{}.recv)-unsafe.Offsetof(C.struct_fp_wc{}.recv)]
)

// opRing remembers the posted send requests in order: send completions
// come in posting order, and a signaled completion also retires the
// unsignaled requests before it. It gives completions their Op (a failed
// completion's opcode is undefined, and SEND with invalidate completes as
// SEND).
type opRing struct {
	ids     []uint64
	ops     []Op
	head, n int
}

func newOpRing(n int) opRing { return opRing{ids: make([]uint64, n), ops: make([]Op, n)} }

func (r *opRing) free() int { return len(r.ids) - r.n }

func (r *opRing) push(id uint64, op Op) {
	i := (r.head + r.n) % len(r.ids)
	r.ids[i], r.ops[i] = id, op
	r.n++
}

// unpush forgets the k requests pushed last (not posted after all).
func (r *opRing) unpush(k int) { r.n -= k }

// retire pops requests up to the first with id and returns its Op; 0 when
// there is none.
func (r *opRing) retire(id uint64) Op {
	for r.n > 0 {
		i := r.head
		r.head = (r.head + 1) % len(r.ids)
		r.n--
		if r.ids[i] == id {
			return r.ops[i]
		}
	}
	return 0
}

// conn is a connected RC queue pair with a send and a receive CQ on one
// completion channel. It owns its connection manager id and event channel.
type conn struct {
	p             *verbs
	dev           *device
	id            *C.struct_rdma_cm_id
	ev            *eventChannel
	qp            *C.struct_ibv_qp
	comp          *C.struct_ibv_comp_channel
	scq, rcq      *C.struct_ibv_cq
	compFile      *os.File
	compRaw       syscall.RawConn
	local, remote netip.AddrPort
	peerPriv      []byte

	// mu is held for reading around every C call on the queue pair and
	// CQs, for writing by Close before it destroys them.
	mu        sync.RWMutex
	closed    bool // guarded by mu
	closing   atomic.Bool
	down      atomic.Bool // the connection manager reported the connection gone
	closeOnce sync.Once
	evDone    chan struct{} // closed when runEvents returns; nil before it starts

	postMu sync.Mutex
	wrs    [maxPostWR]postWR // guarded by postMu
	sent   opRing            // guarded by postMu

	// Poll's, one caller at a time.
	wcs       [maxPollWC]pollWC
	recvFirst bool
	waitFn    func(uintptr) bool // c.compReadable, made once
	waitRC    C.int
}

var _ Conn = (*conn)(nil)

// newConn creates the completion channel, CQs and queue pair on id. On
// error it has destroyed what it made (not id nor ev).
func newConn(p *verbs, dev *device, id *C.struct_rdma_cm_id, ev *eventChannel, cfg ConnConfig) (*conn, error) {
	send, recv := cfg.SendDepth, cfg.RecvDepth
	if send == 0 {
		send = defaultDepth
	}
	if recv == 0 {
		recv = defaultDepth
	}
	if send < 0 || send > dev.maxQPWR || send > dev.maxCQE {
		return nil, fmt.Errorf("rdma: ConnConfig.SendDepth %d: %s allows 1 to %d", send, dev.name, min(dev.maxQPWR, dev.maxCQE))
	}
	if recv < 0 || recv > dev.maxQPWR || recv > dev.maxCQE {
		return nil, fmt.Errorf("rdma: ConnConfig.RecvDepth %d: %s allows 1 to %d", recv, dev.name, min(dev.maxQPWR, dev.maxCQE))
	}
	c := &conn{p: p, dev: dev, id: id, ev: ev}
	c.waitFn = c.compReadable
	if rc := C.fp_create_comp_channel(dev.ctx, &c.comp); rc != 0 {
		return nil, fmt.Errorf("rdma: %s: %w", dev.name, errnoErr("ibv_create_comp_channel", rc))
	}
	var err error
	if c.compFile, c.compRaw, err = pollable(c.comp.fd, "ibv_comp_channel"); err != nil {
		c.destroyVerbs()
		return nil, err
	}
	if rc := C.fp_create_cq(dev.ctx, C.int(send), c.comp, &c.scq); rc != 0 {
		c.destroyVerbs()
		return nil, fmt.Errorf("rdma: send CQ of %d on %s: %w", send, dev.name, errnoErr("ibv_create_cq", rc))
	}
	if rc := C.fp_create_cq(dev.ctx, C.int(recv), c.comp, &c.rcq); rc != 0 {
		c.destroyVerbs()
		return nil, fmt.Errorf("rdma: receive CQ of %d on %s: %w", recv, dev.name, errnoErr("ibv_create_cq", rc))
	}
	var ms, mr C.uint32_t
	if rc := C.fp_create_qp(id, dev.pd, c.scq, c.rcq, C.uint32_t(send), C.uint32_t(recv), &ms, &mr); rc != 0 {
		c.destroyVerbs()
		return nil, fmt.Errorf("rdma: queue pair (%d send, %d receive) on %s: %w", send, recv, dev.name, errnoErr("rdma_create_qp", rc))
	}
	c.qp = id.qp
	c.sent = newOpRing(int(ms))
	return c, nil
}

// destroyVerbs destroys the queue pair, CQs and completion channel.
func (c *conn) destroyVerbs() {
	if c.qp != nil {
		C.fp_destroy_qp(c.id)
		c.qp = nil
	}
	if c.scq != nil {
		C.fp_destroy_cq(c.scq)
		c.scq = nil
	}
	if c.rcq != nil {
		C.fp_destroy_cq(c.rcq)
		c.rcq = nil
	}
	if c.compFile != nil {
		c.compFile.Close()
	}
	if c.comp != nil {
		C.fp_destroy_comp_channel(c.comp)
		c.comp = nil
	}
}

// destroy frees everything; nothing may use c any more.
func (c *conn) destroy() {
	c.destroyVerbs()
	C.fp_destroy_id(c.id)
	c.ev.destroy()
}

func (c *conn) startEvents() {
	c.evDone = make(chan struct{})
	go c.runEvents()
}

// runEvents follows the connection manager's events until Close. When the
// connection goes (the peer disconnected, an error, the device left) it
// disconnects the id, which moves the queue pair to the error state: every
// outstanding request completes flushed.
func (c *conn) runEvents() {
	defer close(c.evDone)
	var ev C.struct_fp_cm_event
	for {
		if err := c.ev.next(&ev); err != nil {
			return
		}
		switch ev.event {
		case C.RDMA_CM_EVENT_DISCONNECTED, C.RDMA_CM_EVENT_DEVICE_REMOVAL, C.RDMA_CM_EVENT_REJECTED,
			C.RDMA_CM_EVENT_UNREACHABLE, C.RDMA_CM_EVENT_CONNECT_ERROR:
			c.down.Store(true)
			C.fp_disconnect(c.id)
		}
	}
}

// PeerPrivateData is the private data of the peer's connection request
// (accepted connections) or accept reply (dialed ones).
func (c *conn) PeerPrivateData() []byte { return c.peerPriv }

func (c *conn) Local() netip.AddrPort  { return c.local }
func (c *conn) Remote() netip.AddrPort { return c.remote }

func wrOpcode(op Op) (uint8, bool) {
	switch op {
	case OpSend:
		return C.IBV_WR_SEND, true
	case OpSendInv:
		return C.IBV_WR_SEND_WITH_INV, true
	case OpRead:
		return C.IBV_WR_RDMA_READ, true
	case OpWrite:
		return C.IBV_WR_RDMA_WRITE, true
	}
	return 0, false
}

func bufAddr(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

func errNotRegistered(what string, b []byte) error {
	return fmt.Errorf("rdma: %s: buffer %#x+%d is not inside one registered region", what, bufAddr(b), len(b))
}

// fill translates wrs (at most maxPostWR) into c.wrs. The caller holds
// c.postMu.
func (c *conn) fill(wrs []WR) error {
	d := c.dev
	d.mu.RLock()
	defer d.mu.RUnlock()
	for i := range wrs {
		w, cw := &wrs[i], &c.wrs[i]
		op, ok := wrOpcode(w.Op)
		if !ok {
			return fmt.Errorf("rdma: post: work request %d: op %v cannot be posted", i, w.Op)
		}
		*cw = postWR{id: w.ID, opcode: op, remoteAddr: w.RemoteAddr, rkey: w.RKey}
		if w.Signaled {
			cw.signaled = 1
		}
		if n := len(w.Local); n > 0 {
			addr := bufAddr(w.Local)
			r, ok := d.lookup(addr, n)
			if !ok || n > 1<<31 {
				return errNotRegistered("post "+w.Op.String(), w.Local)
			}
			cw.addr, cw.len, cw.lkey = uint64(addr), uint32(n), r.lkey
		}
	}
	return nil
}

// Post posts wrs as one chain per 16 requests.
func (c *conn) Post(wrs ...WR) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return ErrClosed
	}
	c.postMu.Lock()
	defer c.postMu.Unlock()
	for len(wrs) > 0 {
		n := min(len(wrs), maxPostWR)
		if err := c.fill(wrs[:n]); err != nil {
			return err
		}
		if c.sent.free() < n {
			return fmt.Errorf("rdma: post: send queue full (%d requests not yet retired by a signaled completion)", c.sent.n)
		}
		for i := range n {
			c.sent.push(wrs[i].ID, wrs[i].Op)
		}
		var posted C.int
		if rc := C.fp_post_send(c.qp, (*C.struct_fp_wr)(unsafe.Pointer(&c.wrs[0])), C.int(n), &posted); rc != 0 {
			c.sent.unpush(n - int(posted))
			return fmt.Errorf("rdma: post %v (request %d of %d): %w", wrs[posted].Op, posted, n, errnoErr("ibv_post_send", rc))
		}
		wrs = wrs[n:]
	}
	return nil
}

func (c *conn) PostRecv(id uint64, buf []byte) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return ErrClosed
	}
	var addr uintptr
	var lkey uint32
	if n := len(buf); n > 0 {
		addr = bufAddr(buf)
		c.dev.mu.RLock()
		r, ok := c.dev.lookup(addr, n)
		c.dev.mu.RUnlock()
		if !ok || n > 1<<31 {
			return errNotRegistered("post receive", buf)
		}
		lkey = r.lkey
	}
	if rc := C.fp_post_recv(c.qp, C.uint64_t(id), C.uint64_t(addr), C.uint32_t(len(buf)), C.uint32_t(lkey)); rc != 0 {
		return fmt.Errorf("rdma: post receive: %w", errnoErr("ibv_post_recv", rc))
	}
	return nil
}

func (c *conn) RemoteKey(buf []byte) (uint64, uint32, error) {
	if len(buf) == 0 {
		return 0, 0, errors.New("rdma: remote key of an empty buffer")
	}
	addr := bufAddr(buf)
	c.dev.mu.RLock()
	r, ok := c.dev.lookup(addr, len(buf))
	c.dev.mu.RUnlock()
	if !ok {
		return 0, 0, ErrNotRegistered
	}
	return uint64(addr), r.rkey, nil
}

// Poll returns completions, waiting for the completion channel when there
// are none.
func (c *conn) Poll(out []Completion) (int, error) {
	if len(out) == 0 {
		return 0, nil
	}
	n := min(len(out), maxPollWC)
	for {
		c.mu.RLock()
		if c.closed {
			c.mu.RUnlock()
			return 0, ErrClosed
		}
		c.recvFirst = !c.recvFirst
		got := C.fp_poll(c.scq, c.rcq, (*C.struct_fp_wc)(unsafe.Pointer(&c.wcs[0])), C.int(n), boolInt(c.recvFirst), 1)
		c.mu.RUnlock()
		if got < 0 {
			return 0, fmt.Errorf("rdma: poll: %w", errnoErr("ibv_poll_cq", got))
		}
		if got > 0 {
			c.complete(c.wcs[:got], out)
			return int(got), nil
		}
		if c.closing.Load() {
			return 0, ErrClosed
		}
		// Both CQs are armed: wait for the channel.
		if err := c.compRaw.Read(c.waitFn); err != nil {
			if c.closing.Load() {
				return 0, ErrClosed
			}
			return 0, fmt.Errorf("rdma: wait for completions: %w", err)
		}
		if c.waitRC != 0 {
			return 0, fmt.Errorf("rdma: wait for completions: %w", errnoErr("ibv_get_cq_event", c.waitRC))
		}
	}
}

// compReadable takes one event off the completion channel (acknowledged);
// false when there is none yet.
func (c *conn) compReadable(uintptr) bool {
	c.waitRC = C.fp_get_cq_event(c.comp)
	return c.waitRC != -C.EAGAIN
}

func boolInt(b bool) C.int {
	if b {
		return 1
	}
	return 0
}

// complete turns polled work completions into Completions.
func (c *conn) complete(wcs []pollWC, out []Completion) {
	locked := false
	for i := range wcs {
		w := &wcs[i]
		cp := Completion{ID: w.id}
		if w.recv != 0 {
			cp.Op = OpRecv
			if w.status == wcSuccess {
				cp.Len = int(w.byteLen)
				if w.withInv != 0 {
					cp.Invalidated, cp.InvKey = true, w.invRkey
				}
			}
		} else {
			if !locked {
				c.postMu.Lock()
				locked = true
			}
			cp.Op = c.sent.retire(w.id)
			if cp.Op == 0 && w.status == wcSuccess {
				cp.Op = wcOp(w.opcode)
			}
		}
		cp.Err = wcErr(w, cp.Op)
		out[i] = cp
	}
	if locked {
		c.postMu.Unlock()
	}
}

func wcOp(opcode uint8) Op {
	switch opcode {
	case C.IBV_WC_SEND:
		return OpSend
	case C.IBV_WC_RDMA_READ:
		return OpRead
	case C.IBV_WC_RDMA_WRITE:
		return OpWrite
	}
	return 0
}

func wcErr(w *pollWC, op Op) error {
	switch w.status {
	case wcSuccess:
		return nil
	case wcFlushErr:
		return ErrFlushed
	}
	return fmt.Errorf("rdma: %v work request %d: %s (status %d, vendor error %#x)",
		op, w.id, C.GoString(C.fp_wc_status_str(C.int(w.status))), w.status, w.vendorErr)
}

// Disconnect moves the queue pair to the error state and tells the peer.
func (c *conn) Disconnect() error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return ErrClosed
	}
	if rc := C.fp_disconnect(c.id); rc != 0 && !c.down.Load() && rc != -C.EINVAL {
		return fmt.Errorf("rdma: disconnect %v: %w", c.remote, errnoErr("rdma_disconnect", rc))
	}
	return nil
}

// Close disconnects, wakes Poll with ErrClosed and destroys the queue pair,
// CQs, id and event channel.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		C.fp_disconnect(c.id) // errors: not connected, or already gone
		c.compFile.Close()    // wakes Poll
		c.ev.stop()           // ends runEvents
		if c.evDone != nil {
			<-c.evDone
		}
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.destroy()
	})
	return nil
}
