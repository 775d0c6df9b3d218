package rdma

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/flashpath/flashpath/internal/bufpool"
	"github.com/flashpath/flashpath/nvmeof"
	fprdma "github.com/flashpath/flashpath/rdma"
	"github.com/flashpath/flashpath/target"
)

// Work request IDs: the low bits say what finished, the rest which slot or
// receive buffer.
const (
	tagRecv = iota
	tagRead
	tagSend
	tagWrite
	tagBits = 2
)

func wrID(tag, i int) uint64 { return uint64(i)<<tagBits | uint64(tag) }

// adminDepth is the admin queue's size the Linux host asks for (NVME_AQ_DEPTH).
const adminDepth = 32

var _ target.QueueTransport = (*conn)(nil)
var _ target.OutstandingReporter = (*conn)(nil)

// slot is a request and its RDMA state.
type slot struct {
	target.Request
	recv       int // receive buffer holding the command, -1 once reposted
	remoteAddr uint64
	rkey       uint32
	invalidate bool
	inCore     bool // between Execute and Complete; guarded by slotMu
	// wrs holds the slot's work requests while they are posted: a
	// variadic slice built at the call would escape through the
	// interface and allocate per command.
	wrs [2]fprdma.WR
}

// conn is one NVMe/RDMA queue pair.
type conn struct {
	l     *Listener
	qp    fprdma.Conn
	q     *target.Queue
	log   *slog.Logger
	bufs  *target.HostBuffers // the peer address's share of the buffer pool
	peer  netip.Addr          // counted in the listener's connection limits
	qid   uint16
	depth int // receive buffers: the host's send queue size

	mem    []byte        // receive buffers, then one 16-byte response per slot
	region fprdma.Region // mem, registered
	stride int           // bytes per receive buffer

	slotMu  sync.Mutex
	slots   []slot
	free    []int // guarded by slotMu
	waiting []int // receive buffers whose command awaits a free slot (poll goroutine only)

	// sendMu: Complete (any goroutine) posts under the read lock; teardown
	// takes the write lock once, so no post follows the queue pair's end.
	sendMu   sync.RWMutex
	shutdown bool // guarded by sendMu
	torn     bool // teardown done; guarded by slotMu

	closeOnce sync.Once
	gate      *target.ExecGate // the queue's: no disconnect under a command in the core
}

// connect validates a connection request and accepts it.
func (l *Listener) connect(req fprdma.ConnRequest) (*conn, error) {
	reject := func(sts uint16, format string, args ...any) (*conn, error) {
		l.Rejected.Add(1)
		var b [nvmeof.RDMACMRejSize]byte
		nvmeof.EncodeRDMACMRej(b[:], sts)
		req.Reject(b[:])
		return nil, fmt.Errorf("rejected (%s): "+format, append([]any{nvmeof.RDMACMStatusText(sts)}, args...)...)
	}
	cm, err := nvmeof.DecodeRDMACMReq(req.PrivateData())
	if err != nil {
		return reject(nvmeof.RDMACMInvalidLen, "%v", err)
	}
	if cm.RecFmt != nvmeof.RDMARecFmt10 {
		return reject(nvmeof.RDMACMInvalidRecFmt, "record format %d", cm.RecFmt)
	}
	depth := int(cm.HSQSize) + 1
	maxDepth := l.t.MaxQueueDepth()
	if cm.QID == 0 {
		maxDepth = adminDepth
	}
	if depth < 2 || depth > maxDepth {
		return reject(nvmeof.RDMACMInvalidHSQSize, "host send queue size %d outside 2..%d", depth, maxDepth)
	}
	if cm.HRQSize == 0 {
		return reject(nvmeof.RDMACMInvalidHRQSize, "host receive queue size 0")
	}
	c := &conn{l: l, qid: cm.QID, depth: depth,
		log: l.log.With("peer", req.Remote().String(), "qid", cm.QID)}
	// A receive is reposted before its response is sent, so the host may
	// send the next command while the last response's SEND is still
	// outstanding: twice the slots keeps every received command a slot.
	nslots := 2*depth + target.AERLimit
	c.stride = nvmeof.SQESize + max(l.opts.InlineData, target.AdminInlineData)
	c.stride = (c.stride + 63) &^ 63
	size := depth*c.stride + nslots*nvmeof.CQESize
	if c.mem, err = bufpool.Map(size); err != nil {
		return reject(nvmeof.RDMACMNoResources, "map %d bytes of queue buffers: %v", size, err)
	}
	mappedQueues.Add(1)
	if c.region, err = l.prov.Register(c.mem); err != nil {
		c.unmap()
		return reject(nvmeof.RDMACMNoResources, "register queue buffers: %v", err)
	}
	c.slots = make([]slot, nslots)
	c.free = make([]int, 0, nslots)
	for i := nslots - 1; i >= 0; i-- {
		c.slots[i].recv = -1
		c.free = append(c.free, i)
	}
	c.q = l.t.NewQueueFor(c, req.Local().Addr().Unmap(), target.TransportInfo{
		TrType: nvmeof.TrTypeRDMA, InlineData: l.opts.InlineData, KeyedSGL: true,
	})
	c.q.SetAddrs(req.Local(), req.Remote())
	c.gate = c.q.Gate()
	var rep [nvmeof.RDMACMRepSize]byte
	nvmeof.RDMACMRep{RecFmt: nvmeof.RDMARecFmt10, CRQSize: uint16(depth)}.Encode(rep[:])
	cfg := fprdma.ConnConfig{
		RecvDepth: depth,
		// Each slot has at most two requests queued: RDMA WRITE + SEND, or READ.
		SendDepth: 2*nslots + 1,
	}
	c.qp, err = req.Accept(cfg, rep[:], func(qp fprdma.Conn) error {
		for i := range depth {
			if err := qp.PostRecv(wrID(tagRecv, i), c.recvBuf(i)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		c.region.Close()
		c.unmap()
		return reject(nvmeof.RDMACMNoResources, "accept: %v", err)
	}
	c.bufs = l.t.HostBuffers(req.Remote().Addr().Unmap())
	c.log.Debug("connected", "depth", depth, "hrqsize", cm.HRQSize)
	return c, nil
}

func (c *conn) recvBuf(i int) []byte { return c.mem[i*c.stride : (i+1)*c.stride] }

func (c *conn) rspBuf(s int) []byte {
	off := c.depth*c.stride + s*nvmeof.CQESize
	return c.mem[off : off+nvmeof.CQESize]
}

// Close is called by the core (controller deleted, keep-alive expired) and
// by the listener's shutdown. It only starts the disconnect: outstanding
// work flushes and the poll goroutine tears the connection down.
func (c *conn) Close(reason error) {
	c.closeOnce.Do(func() {
		// The host must not see the connection end while a command it
		// sent is still in the core (target.ExecGate): the completion of
		// the last one disconnects then.
		if c.gate.Close() {
			c.qp.Disconnect()
		}
		c.log.Info("closing connection", "reason", reason.Error())
	})
}

// serve polls the completion queue until the connection ends, then tears
// it down.
func (c *conn) serve() {
	err := c.run() // never nil: run returns only when polling or a completion fails
	if !c.gate.Closing() && !errors.Is(err, fprdma.ErrFlushed) && !errors.Is(err, fprdma.ErrClosed) {
		c.log.Warn("connection failed", "err", err)
	}
	c.gate.Close() // closing from here on (what it reports: the teardown below ends it anyway)
	c.gate.Wait()  // for writes still in flight on the backend: the host sees the end after them
	c.q.Closed()
	c.sendMu.Lock()
	c.shutdown = true
	c.sendMu.Unlock()
	// After Close the device touches none of the buffers again.
	c.qp.Close()
	c.region.Close()
	c.slotMu.Lock()
	c.torn = true
	for i := range c.slots {
		s := &c.slots[i]
		if s.inCore && target.AwaitsEvent(&s.Request, c.qid) {
			// The controller went with its admin queue (Closed above) and
			// dropped its outstanding Asynchronous Event Requests: they
			// never complete, so nothing holds these slots any more.
			s.inCore = false
		}
		// A slot in the core keeps its buffer: the backend may still be
		// reading into it; its Complete returns it to the pool.
		if !s.inCore {
			c.putBuf(s)
		}
	}
	c.unmapIfIdleLocked()
	c.slotMu.Unlock()
	c.bufs.Release() // buffers still in the core come back through it later
	c.l.limits.Leave(c.peer)
}

// unmapIfIdleLocked unmaps the queue's buffers once the connection is torn
// down and no request in the core may still use in-capsule data in them.
// Called with slotMu held.
func (c *conn) unmapIfIdleLocked() {
	if !c.torn || c.mem == nil {
		return
	}
	for i := range c.slots {
		if c.slots[i].inCore {
			return
		}
	}
	c.unmap()
}

// unmap releases the queue's buffers.
func (c *conn) unmap() {
	bufpool.Unmap(c.mem)
	c.mem = nil
	mappedQueues.Add(-1)
}

// mappedQueues counts the queues whose buffers are mapped (tests check
// that teardown unmaps them all).
var mappedQueues atomic.Int64

func (c *conn) run() error {
	var comps [32]fprdma.Completion
	for {
		n, err := c.qp.Poll(comps[:])
		if err != nil {
			return err
		}
		for i := range comps[:n] {
			if err := c.handle(&comps[i]); err != nil {
				return err
			}
		}
	}
}

func (c *conn) handle(wc *fprdma.Completion) error {
	tag, i := int(wc.ID&(1<<tagBits-1)), int(wc.ID>>tagBits)
	if wc.Err != nil {
		if errors.Is(wc.Err, fprdma.ErrFlushed) {
			return wc.Err
		}
		return fmt.Errorf("%v of %s failed: %w", wc.Op, tagName(tag), wc.Err)
	}
	switch tag {
	case tagRecv:
		if i >= c.depth {
			return fmt.Errorf("receive completion for buffer %d of %d", i, c.depth)
		}
		return c.received(i, wc.Len)
	case tagRead:
		s := &c.slots[i]
		return c.execute(s)
	case tagSend:
		c.releaseSlot(&c.slots[i])
		if len(c.waiting) > 0 {
			return c.drainWaiting()
		}
		return nil
	}
	return fmt.Errorf("completion with unknown tag %d", tag)
}

func tagName(tag int) string {
	switch tag {
	case tagRecv:
		return "command receive"
	case tagRead:
		return "host data read"
	case tagSend:
		return "response send"
	case tagWrite:
		return "data write"
	}
	return "?"
}

// protocolError ends the connection for a malformed capsule: NVMe/RDMA has
// no termination message, so the queue pair is disconnected.
func (c *conn) protocolError(kind target.ProtocolErrorKind, format string, args ...any) error {
	c.l.ProtocolErrors.Add(1)
	c.l.t.ProtocolError(kind)
	err := fmt.Errorf(format, args...)
	c.l.t.PeerWarn(c.log, "protocol error: disconnecting", "err", err)
	return err
}

// received handles the command that landed in receive buffer i.
func (c *conn) received(i, n int) error {
	if n < nvmeof.SQESize {
		return c.protocolError(target.ProtoInvalidPDU, "%d-byte command capsule, need %d", n, nvmeof.SQESize)
	}
	si, ok := c.takeSlot()
	if !ok {
		// Every slot awaits its response's SEND completion: take the
		// command when one finishes.
		if len(c.waiting) >= c.depth {
			return c.protocolError(target.ProtoPDUSequence, "more than %d commands outstanding", c.depth)
		}
		c.waiting = append(c.waiting, i|n<<20)
		return nil
	}
	return c.start(si, i, n)
}

// takeSlot takes a free request slot; false when there is none.
func (c *conn) takeSlot() (int, bool) {
	c.slotMu.Lock()
	defer c.slotMu.Unlock()
	if len(c.free) == 0 {
		return 0, false
	}
	si := c.free[len(c.free)-1]
	c.free = c.free[:len(c.free)-1]
	return si, true
}

func (c *conn) drainWaiting() error {
	for len(c.waiting) > 0 {
		si, ok := c.takeSlot()
		if !ok {
			return nil
		}
		w := c.waiting[0]
		c.waiting = c.waiting[1:]
		if err := c.start(si, w&(1<<20-1), w>>20); err != nil {
			return err
		}
	}
	return nil
}

// start runs the capsule in receive buffer ri (n bytes) in slot si.
func (c *conn) start(si, ri, n int) error {
	s := &c.slots[si]
	r := &s.Request
	buf := c.recvBuf(ri)
	copy(r.Cmd[:], buf[:nvmeof.SQESize])
	r.Slot, r.Deferred, r.Data, r.Buf = si, false, nil, nil
	s.recv, s.invalidate = ri, false
	data := buf[nvmeof.SQESize:n]
	sgl := r.Cmd.SGL()
	dlen := sgl.Length()
	dir := r.Direction()
	if dlen == 0 || dir == target.DirNone {
		return c.execute(s)
	}
	switch sgl.ID() {
	case nvmeof.SGLInCapsule:
		off, limit := sgl.Address(), c.q.InlineDataSize(c.l.opts.InlineData)
		switch {
		case dir != target.DirH2C:
			return c.completeError(s, nvmeof.StatusSGLTypeInvalid|nvmeof.StatusDNR)
		case len(data) > limit:
			return c.protocolError(target.ProtoDataLimit, "%d bytes of in-capsule data, limit %d", len(data), limit)
		case off > uint64(len(data)) || uint64(dlen) > uint64(len(data))-off:
			return c.completeError(s, nvmeof.StatusSGLOffsetInvalid|nvmeof.StatusDNR)
		}
		// The data stays where it landed; the receive is reposted only
		// when the command completes.
		r.Data = data[off : off+uint64(dlen)]
		return c.execute(s)
	case nvmeof.SGLKeyed, nvmeof.SGLKeyedInvalidate:
	default:
		return c.completeError(s, nvmeof.StatusSGLTypeInvalid|nvmeof.StatusDNR)
	}
	switch {
	case dlen > target.MaxTransfer:
		return c.completeError(s, nvmeof.StatusDataSGLLengthInvalid|nvmeof.StatusDNR)
	case dir == target.DirBidi:
		return c.completeError(s, nvmeof.StatusInvalidField|nvmeof.StatusDNR)
	}
	s.remoteAddr, s.rkey = sgl.Address(), sgl.Key()
	s.invalidate = sgl.ID() == nvmeof.SGLKeyedInvalidate
	if st := c.q.Admit(r); !st.OK() {
		return c.completeError(s, st) // no buffer for a command that would fail
	}
	b, err := c.bufs.Get(int(dlen))
	if err != nil {
		c.l.t.NoBuffer(c.log, err)
		return c.completeError(s, nvmeof.StatusInternalError)
	}
	r.Buf, r.Data = b, b.B
	if dir == target.DirC2H {
		return c.execute(s)
	}
	// Host to controller: fetch the data, run the command when it is here.
	s.wrs[0] = fprdma.WR{ID: wrID(tagRead, si), Op: fprdma.OpRead, Local: r.Data,
		RemoteAddr: s.remoteAddr, RKey: s.rkey, Signaled: true}
	return c.qp.Post(s.wrs[:1]...)
}

func (c *conn) execute(s *slot) error {
	if !c.gate.Begin(&s.Request, c.qid) {
		return fprdma.ErrClosed // Close, or the last command's completion, ends it
	}
	c.slotMu.Lock()
	s.inCore = true
	c.slotMu.Unlock()
	c.q.Execute(&s.Request)
	return nil
}

// completeError completes a command the transport itself rejects.
func (c *conn) completeError(s *slot, st nvmeof.Status) error {
	r := &s.Request
	r.Rsp.Reset()
	r.Rsp.SetCID(r.Cmd.CID())
	r.Rsp.SetSQID(c.q.ID())
	r.SetStatus(st)
	c.putBuf(s)
	c.Complete(r)
	return nil
}

// Complete reposts the command's receive buffer and sends the data (RDMA
// WRITE) and the response. Any goroutine may call it.
func (c *conn) Complete(r *target.Request) {
	if c.gate.End(r) {
		// Closed while r was the last command in the core: disconnect
		// once its response is posted.
		defer c.qp.Disconnect()
	}
	if r.CloseAfter != nil {
		defer c.Close(r.CloseAfter)
	}
	s := &c.slots[r.Slot]
	c.sendMu.RLock()
	if c.shutdown {
		c.sendMu.RUnlock()
		c.slotMu.Lock()
		s.inCore = false
		c.putBuf(s)
		c.unmapIfIdleLocked()
		c.slotMu.Unlock()
		return
	}
	// Out of the core before the post: the SEND may complete, and the slot
	// be reused, before Post returns. Teardown cannot intervene while the
	// read lock is held.
	c.slotMu.Lock()
	s.inCore = false
	c.slotMu.Unlock()
	err := c.send(s)
	c.sendMu.RUnlock()
	if err != nil {
		// The queue pair is going down; its teardown frees the slot.
		if !c.gate.Closing() {
			c.log.Warn("posting the response failed: disconnecting", "err", err)
			c.Close(err)
		}
	}
}

func (c *conn) send(s *slot) error {
	r := &s.Request
	if s.recv >= 0 {
		if err := c.qp.PostRecv(wrID(tagRecv, s.recv), c.recvBuf(s.recv)); err != nil {
			return err
		}
		s.recv = -1
	}
	rsp := c.rspBuf(r.Slot)
	copy(rsp, r.Rsp[:])
	op, key := fprdma.OpSend, uint32(0)
	if s.invalidate {
		// The host registered its buffer for this command only: invalidate
		// its key with the response and save the host that work.
		op, key = fprdma.OpSendInv, s.rkey
	}
	sendWR := fprdma.WR{ID: wrID(tagSend, r.Slot), Op: op, Local: rsp, RKey: key, Signaled: true}
	if r.Status().OK() && r.Direction() == target.DirC2H && len(r.Data) > 0 && r.Buf != nil {
		s.wrs[0] = fprdma.WR{ID: wrID(tagWrite, r.Slot), Op: fprdma.OpWrite, Local: r.Data,
			RemoteAddr: s.remoteAddr, RKey: s.rkey}
		s.wrs[1] = sendWR
		return c.qp.Post(s.wrs[:2]...)
	}
	s.wrs[0] = sendWR
	return c.qp.Post(s.wrs[:1]...)
}

func (c *conn) putBuf(s *slot) {
	if s.Buf != nil {
		c.bufs.Put(s.Buf)
		s.Buf = nil
	}
	s.Data = nil
}

// Outstanding is the number of the queue's commands in its slots: from
// their capsule's arrival to their response's send completion
// (target.OutstandingReporter).
func (c *conn) Outstanding() int {
	c.slotMu.Lock()
	defer c.slotMu.Unlock()
	return len(c.slots) - len(c.free)
}

func (c *conn) releaseSlot(s *slot) {
	c.putBuf(s)
	c.slotMu.Lock()
	s.inCore = false
	c.free = append(c.free, s.Slot)
	c.slotMu.Unlock()
}

// PeerClosed reports whether the host's queue pair went down, though the
// poll goroutine may not have seen it yet (target.PeerCloseChecker).
func (c *conn) PeerClosed() bool { return c.qp.Down() }
