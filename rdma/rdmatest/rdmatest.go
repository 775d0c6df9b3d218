// Package rdmatest is an in-process RDMA provider for tests: connections,
// SENDs into posted receives, RDMA READ and WRITE between registered
// regions, flushes on disconnect, with the checks a real device makes
// (memory must be registered, remote keys and bounds, send and receive
// queue depths, receive buffers large enough) so that a transport that
// passes here does the same things right on a NIC.
package rdmatest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"syscall"
	"unsafe"

	"github.com/flashpath/flashpath/rdma"
)

// Fabric is a fake RDMA network with its registered memory. It implements
// rdma.Provider.
//
// Device memory (RegisterDMABuf, RegisterAddr) is host memory here, as in
// the fake libcuda: its address (the iova of a dma-buf) is where its bytes
// lie in this process, so the peer's RDMA READ and WRITE of it work.
type Fabric struct {
	mu        sync.Mutex
	listeners map[netip.AddrPort]*listener
	regions   []*region // sorted by start
	nextKey   uint32
	nextPort  uint16
	stats     Stats // guarded by mu
}

// Stats counts what the fabric did with device memory, so that a test can
// tell which registration path ran and that data moved to or from device
// memory directly.
type Stats struct {
	DMABufRegistrations int // successful RegisterDMABuf calls
	AddrRegistrations   int // successful RegisterAddr calls
	// DeviceWriteBytes and DeviceReadBytes are the bytes that RDMA WRITE
	// put into and RDMA READ took from device memory: the peer named a
	// device region's address and key.
	DeviceWriteBytes int64
	DeviceReadBytes  int64
}

// Stats returns the counts so far.
func (f *Fabric) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

var _ rdma.Provider = (*Fabric)(nil)

// New returns an empty fabric.
func New() *Fabric {
	return &Fabric{listeners: map[netip.AddrPort]*listener{}, nextKey: 0x1000, nextPort: 40000}
}

type region struct {
	f          *Fabric
	start, end uintptr
	key        uint32
	mem        []byte
	device     bool // registered with RegisterDMABuf or RegisterAddr
}

// Register implements rdma.Provider.
func (f *Fabric) Register(mem []byte) (rdma.Region, error) {
	if len(mem) == 0 {
		return nil, errors.New("rdmatest: register an empty region")
	}
	return f.add(mem, false)
}

// add registers mem, refusing overlaps as the verbs provider does.
func (f *Fabric) add(mem []byte, device bool) (*region, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := &region{f: f, start: uintptr(unsafe.Pointer(&mem[0])), mem: mem, device: device}
	r.end = r.start + uintptr(len(mem))
	if device {
		for _, o := range f.regions {
			if r.start < o.end && o.start < r.end {
				return nil, fmt.Errorf("rdmatest: register %d bytes at %#x: overlaps the region at %#x+%d", len(mem), r.start, o.start, o.end-o.start)
			}
		}
	}
	f.nextKey++
	r.key = f.nextKey
	i, _ := slices.BinarySearchFunc(f.regions, r.start, func(x *region, s uintptr) int { return cmpPtr(x.start, s) })
	f.regions = slices.Insert(f.regions, i, r)
	return r, nil
}

// RegisterDMABuf implements rdma.Provider. fd must be open and at least
// offset+length bytes long (fstat); the memory is the length bytes of this
// process at iova.
func (f *Fabric) RegisterDMABuf(fd int, offset uint64, length int, iova uint64) (rdma.Region, error) {
	if length <= 0 || iova == 0 {
		return nil, fmt.Errorf("rdmatest: register dma-buf fd %d, %d bytes at iova %#x: need a positive length and an address", fd, length, iova)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("rdmatest: register dma-buf fd %d: %w", fd, os.NewSyscallError("fstat", err))
	}
	if uint64(st.Size) < offset+uint64(length) {
		return nil, fmt.Errorf("rdmatest: register dma-buf fd %d: %d bytes at offset %d lie beyond its %d bytes", fd, length, offset, st.Size)
	}
	r, err := f.add(hostBytes(uintptr(iova), length), true)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.stats.DMABufRegistrations++
	f.mu.Unlock()
	return r, nil
}

// RegisterAddr implements rdma.Provider: the memory is the length bytes of
// this process at addr.
func (f *Fabric) RegisterAddr(addr uintptr, length int) (rdma.Region, error) {
	if length <= 0 || addr == 0 {
		return nil, fmt.Errorf("rdmatest: register %d bytes at %#x: need an address and a positive length", length, addr)
	}
	r, err := f.add(hostBytes(addr, length), true)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.stats.AddrRegistrations++
	f.mu.Unlock()
	return r, nil
}

// hostBytes is the memory at addr: "device memory" of the fake, which the
// caller keeps mapped while it is registered.
func hostBytes(addr uintptr, n int) []byte {
	// Through memory rather than a conversion of the uintptr value, which
	// vet rightly flags for Go memory: this is not Go memory.
	return unsafe.Slice(*(**byte)(unsafe.Pointer(&addr)), n)
}

func cmpPtr(a, b uintptr) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (r *region) Close() error {
	r.f.mu.Lock()
	defer r.f.mu.Unlock()
	i := slices.Index(r.f.regions, r)
	if i < 0 {
		return errors.New("rdmatest: region closed twice")
	}
	r.f.regions = slices.Delete(r.f.regions, i, i+1)
	return nil
}

// find returns the region holding [p, p+n). Called with f.mu held.
func (f *Fabric) find(p uintptr, n int) *region {
	for _, r := range f.regions {
		if p >= r.start && p+uintptr(n) <= r.end {
			return r
		}
	}
	return nil
}

// checkLocal reports whether b lies inside a registered region.
func (f *Fabric) checkLocal(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.find(uintptr(unsafe.Pointer(&b[0])), len(b)) == nil {
		return fmt.Errorf("rdmatest: local buffer %p+%d is not in a registered region", &b[0], len(b))
	}
	return nil
}

// remote returns the registered memory at addr/key, n bytes, for op.
func (f *Fabric) remote(op rdma.Op, addr uint64, key uint32, n int) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.find(uintptr(addr), n)
	if r == nil || r.key != key {
		return nil, fmt.Errorf("rdmatest: remote access error: %#x+%d key %#x", addr, n, key)
	}
	if r.device {
		if op == rdma.OpWrite {
			f.stats.DeviceWriteBytes += int64(n)
		} else {
			f.stats.DeviceReadBytes += int64(n)
		}
	}
	off := uintptr(addr) - r.start
	return r.mem[off : off+uintptr(n)], nil
}

// Listen implements rdma.Provider; port 0 picks one.
func (f *Fabric) Listen(addr netip.AddrPort) (rdma.Listener, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if addr.Port() == 0 {
		f.nextPort++
		addr = netip.AddrPortFrom(addr.Addr(), f.nextPort)
	}
	if _, ok := f.listeners[addr]; ok {
		return nil, fmt.Errorf("rdmatest: %s already in use", addr)
	}
	l := &listener{f: f, addr: addr, reqs: make(chan *connReq, 64), done: make(chan struct{})}
	f.listeners[addr] = l
	return l, nil
}

type listener struct {
	f         *Fabric
	addr      netip.AddrPort
	reqs      chan *connReq
	done      chan struct{}
	closeOnce sync.Once
}

func (l *listener) Addr() netip.AddrPort { return l.addr }

func (l *listener) Accept() (rdma.ConnRequest, error) {
	select {
	case r := <-l.reqs:
		return r, nil
	case <-l.done:
		return nil, rdma.ErrClosed
	}
}

func (l *listener) Close() error {
	l.closeOnce.Do(func() {
		l.f.mu.Lock()
		delete(l.f.listeners, l.addr)
		l.f.mu.Unlock()
		close(l.done)
	})
	return nil
}

type connReq struct {
	l      *listener
	priv   []byte
	remote netip.AddrPort
	client *Conn
	answer chan error // nil: accepted
	once   sync.Once
}

func (r *connReq) PrivateData() []byte    { return r.priv }
func (r *connReq) Local() netip.AddrPort  { return r.l.addr }
func (r *connReq) Remote() netip.AddrPort { return r.remote }

func (r *connReq) Accept(cfg rdma.ConnConfig, priv []byte, setup func(rdma.Conn) error) (rdma.Conn, error) {
	c := newConn(r.l.f, cfg, r.l.addr, r.remote)
	if setup != nil {
		if err := setup(c); err != nil {
			c.Close()
			r.Reject(nil)
			return nil, err
		}
	}
	c.peer, r.client.peer = r.client, c
	r.client.peerPriv = slices.Clone(priv)
	c.peerPriv = r.priv
	ok := false
	r.once.Do(func() { ok = true; r.answer <- nil })
	if !ok {
		c.Close()
		return nil, errors.New("rdmatest: request already answered")
	}
	return c, nil
}

func (r *connReq) Reject(priv []byte) error {
	r.once.Do(func() { r.answer <- &rdma.RejectError{Reason: 28, PrivateData: slices.Clone(priv)} })
	return nil
}

// Dial implements rdma.Provider.
func (f *Fabric) Dial(ctx context.Context, addr netip.AddrPort, cfg rdma.ConnConfig, priv []byte, setup func(rdma.Conn) error) (rdma.Conn, error) {
	f.mu.Lock()
	l := f.listeners[addr]
	f.nextPort++
	local := netip.AddrPortFrom(addr.Addr(), f.nextPort)
	f.mu.Unlock()
	if l == nil {
		return nil, fmt.Errorf("rdmatest: connect to %s: connection refused (no listener)", addr)
	}
	c := newConn(f, cfg, local, addr)
	if setup != nil {
		if err := setup(c); err != nil {
			c.Close()
			return nil, err
		}
	}
	req := &connReq{l: l, priv: slices.Clone(priv), remote: local, client: c, answer: make(chan error, 1)}
	select {
	case l.reqs <- req:
	case <-l.done:
		c.Close()
		return nil, fmt.Errorf("rdmatest: connect to %s: listener closed", addr)
	case <-ctx.Done():
		c.Close()
		return nil, ctx.Err()
	}
	select {
	case err := <-req.answer:
		if err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	case <-ctx.Done():
		req.Reject(nil)
		c.Close()
		return nil, ctx.Err()
	}
}

// Conn is one side of a fake reliable connection.
type Conn struct {
	f             *Fabric
	cfg           rdma.ConnConfig
	local, remote netip.AddrPort
	peer          *Conn
	peerPriv      []byte

	mu       sync.Mutex
	recvs    []recvWR // posted receives, in order
	sends    []rdma.WR
	sqUsed   int // send-queue slots held: posted and not yet retired by a signaled completion
	unsig    int // processed unsignaled requests not yet retired
	cq       []rdma.Completion
	down     bool // disconnected: everything flushes
	closed   bool
	wake     chan struct{} // worker: sends queued or state changed
	cqWake   chan struct{} // Poll: completions or state changed
	peerWake chan struct{} // worker: the peer posted a receive
	stopped  chan struct{}
}

type recvWR struct {
	id  uint64
	buf []byte
}

func newConn(f *Fabric, cfg rdma.ConnConfig, local, remote netip.AddrPort) *Conn {
	if cfg.SendDepth == 0 {
		cfg.SendDepth = 128
	}
	if cfg.RecvDepth == 0 {
		cfg.RecvDepth = 128
	}
	c := &Conn{f: f, cfg: cfg, local: local, remote: remote,
		wake: make(chan struct{}, 1), cqWake: make(chan struct{}, 1), peerWake: make(chan struct{}, 1),
		stopped: make(chan struct{})}
	go c.worker()
	return c
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// PeerPrivateData is the private data of the peer's request or reply.
func (c *Conn) PeerPrivateData() []byte { return c.peerPriv }

func (c *Conn) Local() netip.AddrPort  { return c.local }
func (c *Conn) Remote() netip.AddrPort { return c.remote }

// PostRecv implements rdma.Conn.
func (c *Conn) PostRecv(id uint64, buf []byte) error {
	if err := c.f.checkLocal(buf); err != nil {
		return err
	}
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return rdma.ErrClosed
	case len(c.recvs) >= c.cfg.RecvDepth:
		c.mu.Unlock()
		return fmt.Errorf("rdmatest: receive queue full (%d posted)", len(c.recvs))
	case c.down:
		c.cq = append(c.cq, rdma.Completion{ID: id, Op: rdma.OpRecv, Err: rdma.ErrFlushed})
		c.mu.Unlock()
		notify(c.cqWake)
		return nil
	}
	c.recvs = append(c.recvs, recvWR{id, buf})
	c.mu.Unlock()
	if p := c.peer; p != nil {
		notify(p.peerWake)
	}
	return nil
}

// Post implements rdma.Conn.
func (c *Conn) Post(wrs ...rdma.WR) error {
	for i := range wrs {
		if err := c.f.checkLocal(wrs[i].Local); err != nil {
			return err
		}
		switch wrs[i].Op {
		case rdma.OpSend, rdma.OpSendInv, rdma.OpRead, rdma.OpWrite:
		default:
			return fmt.Errorf("rdmatest: cannot post %v", wrs[i].Op)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return rdma.ErrClosed
	}
	if c.sqUsed+len(wrs) > c.cfg.SendDepth {
		return fmt.Errorf("rdmatest: send queue full (%d of %d in use, %d more)", c.sqUsed, c.cfg.SendDepth, len(wrs))
	}
	c.sqUsed += len(wrs)
	c.sends = append(c.sends, wrs...)
	notify(c.wake)
	return nil
}

// RemoteKey implements rdma.Conn.
func (c *Conn) RemoteKey(buf []byte) (uint64, uint32, error) {
	if len(buf) == 0 {
		return 0, 0, errors.New("rdmatest: empty buffer")
	}
	p := uintptr(unsafe.Pointer(&buf[0]))
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	r := c.f.find(p, len(buf))
	if r == nil {
		return 0, 0, rdma.ErrNotRegistered
	}
	return uint64(p), r.key, nil
}

// RemoteKeyAt implements rdma.Conn.
func (c *Conn) RemoteKeyAt(addr uint64, n int) (uint32, error) {
	if n <= 0 {
		return 0, errors.New("rdmatest: empty range")
	}
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	r := c.f.find(uintptr(addr), n)
	if r == nil {
		return 0, rdma.ErrNotRegistered
	}
	return r.key, nil
}

// Poll implements rdma.Conn.
func (c *Conn) Poll(out []rdma.Completion) (int, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return 0, rdma.ErrClosed
		}
		if len(c.cq) > 0 {
			n := copy(out, c.cq)
			c.cq = c.cq[:copy(c.cq, c.cq[n:])]
			c.mu.Unlock()
			return n, nil
		}
		c.mu.Unlock()
		<-c.cqWake
	}
}

// Disconnect implements rdma.Conn: both sides flush.
func (c *Conn) Disconnect() error {
	c.goDown()
	if p := c.peer; p != nil {
		p.goDown()
	}
	return nil
}

func (c *Conn) goDown() {
	c.mu.Lock()
	if !c.down {
		c.down = true
		for _, r := range c.recvs {
			c.cq = append(c.cq, rdma.Completion{ID: r.id, Op: rdma.OpRecv, Err: rdma.ErrFlushed})
		}
		c.recvs = nil
	}
	c.mu.Unlock()
	notify(c.wake)
	notify(c.cqWake)
	notify(c.peerWake)
}

// Close implements rdma.Conn.
func (c *Conn) Close() error {
	c.Disconnect()
	c.mu.Lock()
	already := c.closed
	c.closed = true
	c.mu.Unlock()
	notify(c.wake)
	notify(c.cqWake)
	if !already {
		<-c.stopped
	}
	return nil
}

// Down reports whether the connection is down (disconnected by either side).
func (c *Conn) Down() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.down
}

// worker executes the send queue in order, as the device would.
func (c *Conn) worker() {
	defer close(c.stopped)
	for {
		c.mu.Lock()
		if c.closed && len(c.sends) == 0 {
			c.mu.Unlock()
			return
		}
		if len(c.sends) == 0 {
			c.mu.Unlock()
			<-c.wake
			continue
		}
		wr := c.sends[0]
		down := c.down || c.closed
		c.mu.Unlock()
		var err error
		if down {
			err = rdma.ErrFlushed
		} else {
			err = c.execute(wr)
			if errors.Is(err, errWait) {
				continue
			}
		}
		c.mu.Lock()
		c.sends = c.sends[:copy(c.sends, c.sends[1:])] // in place: no allocation in steady state
		signaled := wr.Signaled || err != nil
		if signaled {
			c.sqUsed -= c.unsig + 1
			c.unsig = 0
			c.cq = append(c.cq, rdma.Completion{ID: wr.ID, Op: wr.Op, Err: err})
		} else {
			c.unsig++
		}
		c.mu.Unlock()
		if signaled {
			notify(c.cqWake)
		}
		if err != nil && !errors.Is(err, rdma.ErrFlushed) {
			// A failed request puts the queue pair in error, as on a device.
			c.Disconnect()
		}
	}
}

var errWait = errors.New("wait for a receive")

// execute runs one work request against the peer.
func (c *Conn) execute(wr rdma.WR) error {
	p := c.peer
	if p == nil {
		return rdma.ErrFlushed
	}
	switch wr.Op {
	case rdma.OpRead, rdma.OpWrite:
		rem, err := c.f.remote(wr.Op, wr.RemoteAddr, wr.RKey, len(wr.Local))
		if err != nil {
			return err
		}
		if wr.Op == rdma.OpRead {
			copy(wr.Local, rem)
		} else {
			copy(rem, wr.Local)
		}
		return nil
	}
	p.mu.Lock()
	if p.down {
		p.mu.Unlock()
		return rdma.ErrFlushed
	}
	if len(p.recvs) == 0 {
		// Receiver not ready: a device retries (rnr_retry 7 = forever).
		// The peer posting a receive, or the connection going down (either
		// side: Disconnect takes both down), wakes us to look again.
		p.mu.Unlock()
		<-c.peerWake
		return errWait
	}
	r := p.recvs[0]
	p.recvs = p.recvs[:copy(p.recvs, p.recvs[1:])]
	comp := rdma.Completion{ID: r.id, Op: rdma.OpRecv, Len: len(wr.Local)}
	var err error
	if len(wr.Local) > len(r.buf) {
		comp.Err = fmt.Errorf("rdmatest: local length error: %d-byte SEND into a %d-byte receive", len(wr.Local), len(r.buf))
		err = errors.New("rdmatest: remote operation error (receive too small)")
	} else {
		copy(r.buf, wr.Local)
		if wr.Op == rdma.OpSendInv {
			comp.Invalidated, comp.InvKey = true, wr.RKey
		}
	}
	p.cq = append(p.cq, comp)
	p.mu.Unlock()
	notify(p.cqWake)
	return err
}
