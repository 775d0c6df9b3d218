package initiator

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flashpath/flashpath/nvmeof"
)

// Sizes of the per-queue socket buffers. The reader must hold the largest
// PDU header (MaxHLen plus a digest); data larger than the buffer is read
// straight into the caller's memory.
const (
	readBufSize  = 64 << 10
	writeBufSize = 64 << 10
	// hdrBufSize holds a capsule or data PDU header, its digest and the
	// padding up to the largest PDO that CPDA allows (32 dwords).
	hdrBufSize = 128
	// adminCCSZ is the in-capsule data the admin queue accepts for fabrics
	// commands before Identify says otherwise (Linux NVME_TCP_ADMIN_CCSZ).
	adminCCSZ = 8192
	// maxRecvPLen bounds the PLEN of a received PDU: data PDUs carry at
	// most one command's data, which MDTS and NLB bound well below this.
	maxRecvPLen = 1 << 28
)

// Queue is one queue pair: over NVMe/TCP a TCP connection, over NVMe/RDMA
// an RDMA queue pair (rdma.go); a table of command slots, and one goroutine
// that owns the receive side. Submit may be
// called from many goroutines; up to Depth commands are in flight.
type Queue struct {
	qid     uint16
	rd      *rdmaLink // NVMe/RDMA; nil for NVMe/TCP
	nc      net.Conn
	br      *bufio.Reader // owned by the receive goroutine
	hdgst   bool
	ddgst   bool
	cpda    uint8
	maxH2C  uint32
	icd     int // in-capsule data limit for non-fabrics commands
	maxXfer int // 0: no limit
	timeout time.Duration
	log     *slog.Logger

	slots []slot
	free  chan uint16 // free command ids

	wmu     sync.Mutex
	bw      *bufio.Writer // guarded by wmu
	closed  bool          // guarded by wmu: no more submissions
	waiting atomic.Int32  // submitters between taking a slot and writing; the last flushes

	r2tq chan r2tWork // R2Ts for the send goroutine

	dead     chan struct{} // closed by fail
	onDead   func(error)   // told by fail, once (the controller's reconnect)
	failOnce sync.Once
	err      error // why the queue failed; written before dead closes
	wg       sync.WaitGroup
}

type slot struct {
	req   *Request     // in flight; written by the submitter under wmu, cleared by the receive goroutine
	start atomic.Int64 // submit time in ns, 0 when idle or exempt from the timeout
	hdr   [hdrBufSize]byte
	h2c   [hdrBufSize]byte
	ddg   [nvmeof.DigestSize]byte
	rcvd  uint32 // C2H bytes received (receive goroutine)
	sent  uint32 // bytes asked for by R2Ts (receive goroutine)
}

type r2tWork struct {
	cid    uint16
	ttag   uint16
	offset uint32
	length uint32
	// buf is the command's data, taken when the R2T arrived: the send
	// goroutine never reads the slot, which the receive goroutine empties
	// when the command completes (a controller that completes a write
	// before taking its data must not make the host read a freed slot).
	buf []byte
}

// ID returns the queue identifier (0 is the admin queue).
func (q *Queue) ID() uint16 { return q.qid }

// Depth returns the number of commands the queue can have in flight.
func (q *Queue) Depth() int { return len(q.slots) }

// MaxTransfer returns the largest Buf a request may carry (0: no limit).
func (q *Queue) MaxTransfer() int { return q.maxXfer }

// Err returns why the queue failed, or nil while it works.
func (q *Queue) Err() error {
	select {
	case <-q.dead:
		return q.err
	default:
		return nil
	}
}

// queueParams configure dialQueue.
type queueParams struct {
	addr    string
	qid     uint16
	depth   int
	hdgst   bool
	ddgst   bool
	timeout time.Duration
	log     *slog.Logger
	onDead  func(error) // called once when the queue fails
	cntlID  uint16      // NVMe/RDMA: the controller an I/O queue joins
}

// dialQueue opens the TCP connection of a queue, exchanges ICReq/ICResp
// (NVMe/TCP 1.0 §3.6.2.2) and starts its goroutines. The queue accepts
// only fabrics commands in capsule until setLimits is called.
func dialQueue(ctx context.Context, p queueParams) (*Queue, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, dialError(p.addr, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		if err := tc.SetNoDelay(true); err != nil {
			nc.Close()
			return nil, fmt.Errorf("set TCP_NODELAY: %w", err)
		}
	}
	return newQueue(ctx, nc, p)
}

// newQueue runs the queue over nc, connected to the controller: ICReq and
// ICResp, then its goroutines. It closes nc on failure.
func newQueue(ctx context.Context, nc net.Conn, p queueParams) (*Queue, error) {
	q := newQueueState(p)
	q.nc = nc
	q.br = bufio.NewReaderSize(nc, readBufSize)
	q.bw = bufio.NewWriterSize(nc, writeBufSize)
	q.hdgst, q.ddgst = p.hdgst, p.ddgst
	q.r2tq = make(chan r2tWork, p.depth)
	if err := q.initConnection(ctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("initialize connection to %s: %w", p.addr, err)
	}
	q.wg.Add(3)
	go q.recvLoop()
	go q.sendLoop()
	go q.watchdog()
	return q, nil
}

// newQueueState is the transport-independent part of a new queue: its
// command slots, all free, and its failure signal.
func newQueueState(p queueParams) *Queue {
	q := &Queue{
		qid:     p.qid,
		timeout: p.timeout,
		log:     p.log.With("qid", p.qid),
		slots:   make([]slot, p.depth),
		free:    make(chan uint16, p.depth),
		dead:    make(chan struct{}),
		onDead:  p.onDead,
	}
	for i := range p.depth {
		q.free <- uint16(i)
	}
	return q
}

func dialError(addr string, err error) error {
	var hint string
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		hint = ": is `flashpath target` running and listening on this address?"
	}
	return fmt.Errorf("connect %s: %w%s", addr, err, hint)
}

// initConnection sends an ICReq and checks the ICResp, like the Linux host's
// nvme_tcp_init_connection.
func (q *Queue) initConnection(ctx context.Context) error {
	if dl, ok := ctx.Deadline(); ok {
		q.nc.SetDeadline(dl)
		defer q.nc.SetDeadline(time.Time{})
	}
	var buf [nvmeof.ICReqSize]byte
	req := nvmeof.ICReq{PFV: 0, HPDA: 0, MaxR2T: 0}
	if q.hdgst {
		req.Digest |= nvmeof.DigestHeader
	}
	if q.ddgst {
		req.Digest |= nvmeof.DigestData
	}
	req.Encode(buf[:])
	if _, err := q.nc.Write(buf[:]); err != nil {
		return fmt.Errorf("send ICReq: %w", err)
	}
	if _, err := io.ReadFull(q.br, buf[:]); err != nil {
		return fmt.Errorf("read ICResp: %w", err)
	}
	if buf[0] == nvmeof.PDUC2HTermReq {
		t, _ := nvmeof.DecodeTermReq(buf[:])
		return fmt.Errorf("controller refused the connection: C2HTermReq FES %#x FEI %d", t.FES, t.FEI)
	}
	resp, err := nvmeof.DecodeICResp(buf[:])
	if err != nil {
		return err
	}
	if got := resp.Digest&nvmeof.DigestHeader != 0; got != q.hdgst {
		return fmt.Errorf("ICResp: header digest %v, requested %v", got, q.hdgst)
	}
	if got := resp.Digest&nvmeof.DigestData != 0; got != q.ddgst {
		return fmt.Errorf("ICResp: data digest %v, requested %v", got, q.ddgst)
	}
	if resp.MaxData%4 != 0 {
		return fmt.Errorf("ICResp: MAXH2CDATA %d is not a multiple of 4", resp.MaxData)
	}
	q.cpda = resp.CPDA
	q.maxH2C = resp.MaxData
	return nil
}

// setLimits records what Identify Controller said: the in-capsule data
// limit of I/O queues and the maximum transfer size.
func (q *Queue) setLimits(icd, maxXfer int) {
	if q.rd != nil {
		icd = min(icd, q.rd.stride-nvmeof.SQESize) // what the capsule buffers hold
	}
	q.icd = icd
	q.maxXfer = maxXfer
}

// Submit sends r. It blocks while all Depth command slots are busy. It
// returns an error, and r is not delivered, when r is invalid or the queue
// has failed; otherwise r is delivered exactly once through OnDone or Done,
// with Err set if the connection failed meanwhile.
func (q *Queue) Submit(r *Request) error {
	if err := q.prepare(r); err != nil {
		return err
	}
	var cid uint16
	select {
	case cid = <-q.free:
	case <-q.dead:
		return q.err
	}
	return q.send(cid, r)
}

// SubmitBatch submits several requests and sends them with one flush (one
// write system call where they fit the send buffer), as a benchmark or a
// pipeline does when it refills its queue after reaping completions. It
// blocks while all slots are busy, like Submit. It returns how many were
// submitted: on an error, the requests before the failing one were
// submitted and will be delivered; the rest were not.
func (q *Queue) SubmitBatch(rs []*Request) (int, error) {
	// Holding a waiter keeps each send from flushing; the last one out flushes.
	q.waiting.Add(1)
	var err error
	n := 0
	for _, r := range rs {
		if len(q.free) == 0 && q.bw != nil {
			// About to wait for a slot: what is buffered must go out first,
			// or the completions that free slots might never come.
			q.wmu.Lock()
			if !q.closed {
				q.bw.Flush()
			}
			q.wmu.Unlock()
		}
		if err = q.Submit(r); err != nil {
			break
		}
		n++
	}
	if q.waiting.Add(-1) == 0 && q.bw != nil {
		q.wmu.Lock()
		if !q.closed {
			if ferr := q.bw.Flush(); ferr != nil {
				q.wmu.Unlock()
				q.fail(fmt.Errorf("queue %d: send commands: %w", q.qid, ferr))
				return n, err
			}
		}
		q.wmu.Unlock()
	}
	return n, err
}

// inline reports whether r's data goes in the command capsule.
func (q *Queue) inline(r *Request) bool {
	if !r.out || len(r.Buf) == 0 {
		return false
	}
	if q.rd != nil {
		return len(r.Buf) <= q.icd // 0 on the admin queue
	}
	limit := q.icd
	if r.sqe.Opcode() == nvmeof.OpFabrics || q.qid == 0 {
		limit = adminCCSZ
	}
	return len(r.Buf) <= limit
}

func (q *Queue) send(cid uint16, r *Request) error {
	if q.rd != nil {
		return q.rdmaSend(cid, r)
	}
	s := &q.slots[cid]
	n := len(r.Buf)
	inCapsule := q.inline(r)

	sqe := nvmeof.SQEView(s.hdr[nvmeof.CHSize:])
	*sqe = r.sqe
	sqe.SetCID(cid)
	sqe.SetFlags(sqe.Flags()&^0xC0 | nvmeof.FlagsSGL)
	switch {
	case inCapsule:
		// NVMe-oF 1.1 §2.3: offset 0 from the start of in-capsule data (ICDOFF 0).
		sqe.SGL().SetDataBlock(nvmeof.SGLInCapsule, 0, uint32(n))
	default:
		sqe.SGL().SetDataBlock(nvmeof.SGLTransport, 0, uint32(n))
	}
	hlen := uint32(nvmeof.CapsuleCmdHLen)
	h := nvmeof.Header{Type: nvmeof.PDUCapsuleCmd, HLen: uint8(hlen), PLen: hlen}
	wlen := hlen
	if q.hdgst {
		h.Flags |= nvmeof.FlagHDGST
		h.PLen += nvmeof.DigestSize
		wlen += nvmeof.DigestSize
	}
	if inCapsule {
		pdo := nvmeof.PadTo(hlen, q.hdgst, q.cpda)
		h.PDO = uint8(pdo)
		h.PLen = pdo + uint32(n)
		wlen = pdo
		if q.ddgst {
			h.Flags |= nvmeof.FlagDDGST
			h.PLen += nvmeof.DigestSize
			nvmeof.PutDigest(s.ddg[:], nvmeof.Digest(r.Buf))
		}
	}
	nvmeof.PutHeader(s.hdr[:], h)
	if q.hdgst {
		nvmeof.PutDigest(s.hdr[hlen:], nvmeof.Digest(s.hdr[:hlen]))
	}
	clear(s.hdr[hlen+digestLen(q.hdgst) : wlen]) // padding up to PDO
	s.rcvd, s.sent = 0, 0
	var start int64
	if !r.noTimeout {
		start = nowNano()
	}

	q.waiting.Add(1)
	q.wmu.Lock()
	if q.closed {
		q.waiting.Add(-1)
		q.wmu.Unlock()
		q.free <- cid
		return q.err
	}
	s.req = r
	s.start.Store(start)
	_, err := q.bw.Write(s.hdr[:wlen])
	if inCapsule && err == nil {
		_, err = q.bw.Write(r.Buf)
		if q.ddgst && err == nil {
			_, err = q.bw.Write(s.ddg[:])
		}
	}
	if q.waiting.Add(-1) == 0 && err == nil {
		err = q.bw.Flush()
	}
	q.wmu.Unlock()
	if err != nil {
		// r is registered: the receive goroutine delivers it with the error.
		q.fail(fmt.Errorf("queue %d: send command: %w", q.qid, err))
	}
	return nil
}

func digestLen(on bool) uint32 {
	if on {
		return nvmeof.DigestSize
	}
	return 0
}

// fail records the first error and tears the connection down; the
// receive goroutine then delivers every request in flight with it.
func (q *Queue) fail(err error) {
	q.failOnce.Do(func() {
		q.err = err
		close(q.dead)
		if q.rd != nil {
			// Close, not just Disconnect: Poll returns at once whether or
			// not the device flushes what is posted; the poll goroutine
			// then delivers what was in flight and unmaps the buffers.
			q.rd.qp.Close()
		} else {
			q.nc.Close()
		}
		if q.onDead != nil {
			q.onDead(err)
		}
	})
}

// close shuts the queue down and waits for its goroutines.
func (q *Queue) close() {
	q.fail(ErrClosed)
	q.wg.Wait()
}

func (q *Queue) deliver(r *Request) {
	if r.OnDone != nil {
		r.OnDone(r)
	} else if r.Done != nil {
		r.Done <- r
	}
}

// recvLoop owns the receive side of the connection.
func (q *Queue) recvLoop() {
	defer q.wg.Done()
	q.ended(q.recv())
	q.drain(nil)
}

// ended fails the queue with err, the error its receive side ended with,
// and closes it to submissions.
func (q *Queue) ended(err error) {
	select {
	case <-q.dead:
	default:
		q.log.Debug("queue failed", "err", err)
	}
	q.fail(err)
	q.wmu.Lock()
	q.closed = true
	q.wmu.Unlock()
}

// drain delivers every request in flight with the queue's error, calling
// each (if set) with its command id first. Called once the queue is closed.
func (q *Queue) drain(each func(cid uint16)) {
	for i := range q.slots {
		s := &q.slots[i]
		if r := s.req; r != nil {
			if each != nil {
				each(uint16(i))
			}
			s.req = nil
			s.start.Store(0)
			r.Err = q.err
			q.deliver(r)
		}
	}
}

func nowNano() int64 { return time.Now().UnixNano() }

// recv reads PDUs until the connection fails.
func (q *Queue) recv() error {
	for {
		ch, err := q.br.Peek(nvmeof.CHSize)
		if err != nil {
			return q.readError(err)
		}
		h, _ := nvmeof.ParseHeader(ch)
		lay, err := h.Check(q.hdgst, q.ddgst, maxRecvPLen)
		if err != nil {
			q.terminate(err, ch)
			return fmt.Errorf("queue %d: bad PDU from the controller: %w", q.qid, err)
		}
		hl := int(h.HLen)
		if lay.HDigest {
			hl += nvmeof.DigestSize
		}
		b, err := q.br.Peek(hl)
		if err != nil {
			return q.readError(err)
		}
		if lay.HDigest {
			if want, got := nvmeof.Digest(b[:h.HLen]), nvmeof.GetDigest(b[h.HLen:]); want != got {
				ferr := &nvmeof.FatalError{FES: nvmeof.FESHeaderDigest, Msg: fmt.Sprintf("header digest %#08x, computed %#08x", got, want)}
				q.terminate(ferr, b[:h.HLen])
				return fmt.Errorf("queue %d: PDU type %#x: %w", q.qid, h.Type, ferr)
			}
		}
		switch h.Type {
		case nvmeof.PDUCapsuleRsp:
			cqe := *nvmeof.CQEView(b[nvmeof.CHSize:])
			q.br.Discard(hl)
			if err := q.complete(&cqe); err != nil {
				return err
			}
		case nvmeof.PDUC2HData:
			dp, _ := nvmeof.DecodeDataPDU(b)
			q.br.Discard(hl)
			if err := q.c2hData(h, lay, dp, hl); err != nil {
				return err
			}
		case nvmeof.PDUR2T:
			dp, _ := nvmeof.DecodeDataPDU(b)
			q.br.Discard(hl)
			if err := q.r2t(dp); err != nil {
				return err
			}
		case nvmeof.PDUC2HTermReq:
			t, _ := nvmeof.DecodeTermReq(b)
			return fmt.Errorf("queue %d: controller terminated the connection: C2HTermReq FES %#x FEI %d", q.qid, t.FES, t.FEI)
		default:
			ferr := &nvmeof.FatalError{FES: nvmeof.FESInvalidHeader, Msg: fmt.Sprintf("unexpected PDU type %#x from a controller", h.Type)}
			q.terminate(ferr, b[:h.HLen])
			return fmt.Errorf("queue %d: %w", q.qid, ferr)
		}
	}
}

func (q *Queue) readError(err error) error {
	select {
	case <-q.dead:
		return q.err
	default:
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("queue %d: controller closed the connection", q.qid)
	}
	return fmt.Errorf("queue %d: receive: %w", q.qid, err)
}

// protocolError is a violation by the controller: the host sends an
// H2CTermReq and closes the connection.
func (q *Queue) protocolError(fes uint16, format string, args ...any) error {
	ferr := &nvmeof.FatalError{FES: fes, Msg: fmt.Sprintf(format, args...)}
	q.terminate(ferr, nil)
	return fmt.Errorf("queue %d: controller protocol violation: %w", q.qid, ferr)
}

// terminate sends an H2CTermReq (NVMe/TCP 1.0 §3.6.2.4) for a fatal error, best effort.
func (q *Queue) terminate(err error, offending []byte) {
	var ferr *nvmeof.FatalError
	if !errors.As(err, &ferr) {
		return
	}
	var b [nvmeof.TermReqHLen + nvmeof.TermReqMaxData]byte
	n := nvmeof.EncodeTermReq(b[:], nvmeof.PDUH2CTermReq, nvmeof.TermReq{FES: ferr.FES, FEI: ferr.FEI}, offending)
	q.wmu.Lock()
	defer q.wmu.Unlock()
	if q.closed {
		return
	}
	q.nc.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := q.bw.Write(b[:n]); err == nil {
		q.bw.Flush()
	}
}

// slotFor returns the slot of an in-flight command id, or nil.
func (q *Queue) slotFor(cid uint16) *slot {
	if int(cid) >= len(q.slots) || q.slots[cid].req == nil {
		return nil
	}
	return &q.slots[cid]
}

func (q *Queue) complete(cqe *nvmeof.CQE) error {
	cid := cqe.CID()
	s := q.slotFor(cid)
	if s == nil {
		return q.protocolError(nvmeof.FESInvalidHeader, "response capsule for command id %d, which is not in flight", cid)
	}
	q.finish(cid, s, cqe.Status(), cqe.DW0(), cqe.DW1())
	return nil
}

func (q *Queue) finish(cid uint16, s *slot, st nvmeof.Status, dw0, dw1 uint32) {
	r := s.req
	r.Status, r.DW0, r.dw1, r.Err = st, dw0, dw1, nil
	s.start.Store(0)
	s.req = nil
	q.free <- cid
	q.deliver(r)
}

// c2hData reads a C2HData PDU's data straight into the command's buffer
// (NVMe/TCP 1.0 §3.6.2.8). hl bytes of header have been consumed.
func (q *Queue) c2hData(h nvmeof.Header, lay nvmeof.Layout, dp nvmeof.DataPDU, hl int) error {
	s := q.slotFor(dp.CCCID)
	if s == nil {
		return q.protocolError(nvmeof.FESInvalidHeader, "C2HData for command id %d, which is not in flight", dp.CCCID)
	}
	r := s.req
	if r.out {
		return q.protocolError(nvmeof.FESInvalidHeader, "C2HData for command id %d, which moves data to the controller", dp.CCCID)
	}
	if dp.Length != lay.DataLen {
		return q.protocolError(nvmeof.FESInvalidHeader, "C2HData DATAL %d, but the PDU carries %d bytes", dp.Length, lay.DataLen)
	}
	end := uint64(dp.Offset) + uint64(dp.Length)
	if end > uint64(len(r.Buf)) {
		return q.protocolError(nvmeof.FESDataOutOfRange, "C2HData for command id %d: bytes %d..%d beyond its %d-byte buffer", dp.CCCID, dp.Offset, end, len(r.Buf))
	}
	if pad := int(lay.DataOff) - hl; pad > 0 {
		if _, err := q.br.Discard(pad); err != nil {
			return q.readError(err)
		}
	}
	dst := r.Buf[dp.Offset:end]
	if _, err := io.ReadFull(q.br, dst); err != nil {
		return q.readError(err)
	}
	if lay.DDigest {
		d, err := q.br.Peek(nvmeof.DigestSize)
		if err != nil {
			return q.readError(err)
		}
		got := nvmeof.GetDigest(d)
		q.br.Discard(nvmeof.DigestSize)
		if want := nvmeof.Digest(dst); want != got {
			return fmt.Errorf("queue %d: C2HData for command id %d: data digest %#08x, computed %#08x: the data was corrupted in transit", q.qid, dp.CCCID, got, want)
		}
	}
	s.rcvd += dp.Length
	if h.Flags&nvmeof.FlagDataSuccess != 0 {
		if h.Flags&nvmeof.FlagDataLast == 0 {
			return q.protocolError(nvmeof.FESInvalidHeader, "C2HData with SUCCESS but without LAST_PDU")
		}
		if s.rcvd != uint32(len(r.Buf)) {
			return q.protocolError(nvmeof.FESInvalidHeader, "C2HData SUCCESS for command id %d after %d of %d bytes", dp.CCCID, s.rcvd, len(r.Buf))
		}
		// §3.6.2.8: no response capsule follows.
		q.finish(dp.CCCID, s, nvmeof.StatusSuccess, 0, 0)
	}
	return nil
}

// r2t checks an R2T and hands it to the send goroutine (the receive side
// never blocks on the socket's send buffer).
func (q *Queue) r2t(dp nvmeof.DataPDU) error {
	s := q.slotFor(dp.CCCID)
	if s == nil {
		return q.protocolError(nvmeof.FESInvalidHeader, "R2T for command id %d, which is not in flight", dp.CCCID)
	}
	r := s.req
	if !r.out || q.inline(r) {
		return q.protocolError(nvmeof.FESInvalidHeader, "R2T for command id %d, which has no data to solicit", dp.CCCID)
	}
	end := uint64(dp.Offset) + uint64(dp.Length)
	if dp.Length == 0 || end > uint64(len(r.Buf)) {
		return q.protocolError(nvmeof.FESDataOutOfRange, "R2T for command id %d: bytes %d..%d of a %d-byte transfer", dp.CCCID, dp.Offset, end, len(r.Buf))
	}
	if dp.Offset < s.sent {
		return q.protocolError(nvmeof.FESInvalidHeader, "R2T for command id %d at offset %d, below the %d bytes already solicited", dp.CCCID, dp.Offset, s.sent)
	}
	s.sent = uint32(end)
	select {
	case q.r2tq <- r2tWork{cid: dp.CCCID, ttag: dp.TTag, offset: dp.Offset, length: dp.Length, buf: r.Buf}:
		return nil
	case <-q.dead:
		return q.err
	}
}

// sendLoop answers R2Ts with H2CData PDUs of at most MAXH2CDATA bytes.
func (q *Queue) sendLoop() {
	defer q.wg.Done()
	var ddg [nvmeof.DigestSize]byte
	for {
		select {
		case w := <-q.r2tq:
			if err := q.sendH2C(w, &ddg); err != nil {
				q.fail(fmt.Errorf("queue %d: send H2CData: %w", q.qid, err))
				return
			}
		case <-q.dead:
			return
		}
	}
}

func (q *Queue) sendH2C(w r2tWork, ddg *[nvmeof.DigestSize]byte) error {
	data := w.buf[w.offset : w.offset+w.length]
	hdr := q.slots[w.cid].h2c[:]
	pdo := nvmeof.PadTo(nvmeof.DataHLen, q.hdgst, q.cpda)
	q.wmu.Lock()
	defer q.wmu.Unlock()
	if q.closed {
		return q.err
	}
	for off := uint32(0); off < w.length; {
		n := min(w.length-off, q.maxH2C)
		h := nvmeof.Header{Type: nvmeof.PDUH2CData, HLen: nvmeof.DataHLen, PDO: uint8(pdo), PLen: pdo + n}
		if q.hdgst {
			h.Flags |= nvmeof.FlagHDGST
		}
		if q.ddgst {
			h.Flags |= nvmeof.FlagDDGST
			h.PLen += nvmeof.DigestSize
		}
		if off+n == w.length {
			h.Flags |= nvmeof.FlagDataLast
		}
		nvmeof.PutHeader(hdr, h)
		dp := nvmeof.DataPDU{CCCID: w.cid, TTag: w.ttag, Offset: w.offset + off, Length: n}
		dp.Encode(hdr)
		if q.hdgst {
			nvmeof.PutDigest(hdr[nvmeof.DataHLen:], nvmeof.Digest(hdr[:nvmeof.DataHLen]))
		}
		clear(hdr[nvmeof.DataHLen+digestLen(q.hdgst) : pdo])
		chunk := data[off : off+n]
		if _, err := q.bw.Write(hdr[:pdo]); err != nil {
			return err
		}
		if _, err := q.bw.Write(chunk); err != nil {
			return err
		}
		if q.ddgst {
			nvmeof.PutDigest(ddg[:], nvmeof.Digest(chunk))
			if _, err := q.bw.Write(ddg[:]); err != nil {
				return err
			}
		}
		off += n
	}
	if q.waiting.Load() == 0 {
		return q.bw.Flush()
	}
	return nil
}

// watchdog fails the queue when a command stays in flight longer than the
// I/O timeout, like the Linux host's timeout handler that starts error
// recovery.
func (q *Queue) watchdog() {
	defer q.wg.Done()
	if q.timeout <= 0 {
		<-q.dead
		return
	}
	t := time.NewTicker(max(q.timeout/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-q.dead:
			return
		case now := <-t.C:
			limit := now.Add(-q.timeout).UnixNano()
			for i := range q.slots {
				if st := q.slots[i].start.Load(); st != 0 && st < limit {
					q.fail(fmt.Errorf("queue %d: command id %d timed out after %v: the controller stopped answering; reconnect", q.qid, i, q.timeout))
					return
				}
			}
		}
	}
}

// exec runs the command sqe and waits for it. buf is its data; out says
// which way it flows. A non-success status is a *nvmeof.StatusError, and
// the request is returned with it.
func (q *Queue) exec(ctx context.Context, name string, sqe *nvmeof.SQE, buf []byte, out bool) (*Request, error) {
	done := make(chan *Request, 1)
	r := &Request{sqe: *sqe, raw: true, out: out, Buf: buf, Done: done}
	if err := q.Submit(r); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return nil, fmt.Errorf("%s: %w", name, ctx.Err())
	}
	if r.Err != nil {
		return nil, fmt.Errorf("%s: %w", name, r.Err)
	}
	if !r.Status.OK() {
		return r, &nvmeof.StatusError{Op: name, Status: r.Status}
	}
	return r, nil
}
