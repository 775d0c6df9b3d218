//go:build linux && cgo

package rdma

// Connections: a queue pair with its completion queues and channel,
// posting work requests and polling completions, one cgo call a batch.

/*
#cgo noescape fp_post_send
#cgo nocallback fp_post_send
#cgo noescape fp_post_recv
#cgo nocallback fp_post_recv
#cgo noescape fp_poll
#cgo nocallback fp_poll
#cgo nocallback fp_get_cq_event
#include <errno.h>
#include "verbs.h"
*/
import "C"

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"
)

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

// Down reports whether the connection manager said the connection went.
func (c *conn) Down() bool { return c.down.Load() }

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

func (c *conn) RemoteKeyAt(addr uint64, n int) (uint32, error) {
	if n <= 0 {
		return 0, errors.New("rdma: remote key of an empty range")
	}
	c.dev.mu.RLock()
	r, ok := c.dev.lookup(uintptr(addr), n)
	c.dev.mu.RUnlock()
	if !ok {
		return 0, ErrNotRegistered
	}
	return r.rkey, nil
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
