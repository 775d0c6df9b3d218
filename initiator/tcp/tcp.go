// Package tcp is the NVMe/TCP transport of flashpath's host (NVMe/TCP
// Transport Specification 1.0), the counterpart of the Linux host's
// drivers/nvme/host/tcp.c: one TCP connection per queue pair, command
// capsules with in-capsule data up to the controller's IOCCSZ, larger
// writes sent as H2CData in answer to R2Ts, C2HData read straight into the
// request's buffer. Importing it registers the "tcp" transport with
// package initiator, which runs everything above the queue pair.
//
//	host                                   controller
//	 | CapsuleCmd (SQE [+ in-capsule data]) -> |
//	 | <- R2T (offset, length)                 |   writes beyond IOCCSZ
//	 | H2CData ... (<= MAXH2CDATA each)     -> |
//	 | <- C2HData ... [SUCCESS: no response]   |   reads
//	 | <- CapsuleRsp (CQE)                     |
package tcp

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/internal/busypoll"
	"github.com/flashpath/flashpath/nvmeof"
)

func init() { initiator.RegisterTransport(Transport{}) }

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

// Transport is NVMe/TCP.
type Transport struct{}

var _ initiator.Transport = Transport{}

// Name returns "tcp".
func (Transport) Name() string { return "tcp" }

// Register does nothing: NVMe/TCP copies every byte through the socket.
func (Transport) Register([]byte) (initiator.Registration, error) { return noRegistration{}, nil }

type noRegistration struct{}

// errDeviceMemory refuses device memory: the socket reads and writes host
// memory only. Made once: Prepare returns it without allocating.
var errDeviceMemory = fmt.Errorf("%w: NVMe/TCP moves data through host memory: use the staging path (read into a host buffer, then copy it to the device)",
	initiator.ErrNoDeviceMemory)

var _ initiator.DeviceRegistrar = Transport{}

// RegisterDevice refuses: NVMe/TCP cannot move data to or from device
// memory without a copy through host memory.
func (Transport) RegisterDevice(initiator.DeviceMemory) (initiator.Registration, error) {
	return nil, errDeviceMemory
}

func (noRegistration) Close() error { return nil }

// DialQueue opens the TCP connection of a queue and exchanges ICReq and
// ICResp (NVMe/TCP 1.0 §3.6.2.2).
func (Transport) DialQueue(ctx context.Context, p initiator.QueueParams) (initiator.Link, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", p.Addr)
	if err != nil {
		return nil, dialError(p.Addr, err)
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		if err := tc.SetNoDelay(true); err != nil {
			nc.Close()
			return nil, fmt.Errorf("set TCP_NODELAY: %w", err)
		}
	}
	if p.TLSKey != "" {
		if nc, err = startTLS(ctx, nc, p); err != nil {
			return nil, err
		}
	}
	return newLink(ctx, nc, p)
}

func dialError(addr string, err error) error {
	var hint string
	var op *net.OpError
	if errors.As(err, &op) && op.Op == "dial" {
		hint = ": is `flashpath target` running and listening on this address?"
	}
	return fmt.Errorf("connect %s: %w%s", addr, err, hint)
}

// link is one NVMe/TCP queue pair.
type link struct {
	qid   uint16
	nc    net.Conn
	br    *bufio.Reader // owned by the receive goroutine
	bw    *bufio.Writer // guarded by the queue's send lock
	hdgst bool
	ddgst bool
	tls   bool // nc is a TLS connection
	cpda  uint8
	// maxH2C is the controller's MAXH2CDATA.
	maxH2C uint32
	icd    int // in-capsule data limit for non-fabrics commands on I/O queues
	q      *initiator.Queue

	slots []slot

	r2tq    chan r2tWork // R2Ts for the send goroutine
	stopped chan struct{}
	wg      sync.WaitGroup // the send goroutine
	leave   func()         // leaves pollGroup, before the socket closes
}

// slot is a command's NVMe/TCP state.
type slot struct {
	hdr    [hdrBufSize]byte
	h2c    [hdrBufSize]byte
	ddg    [nvmeof.DigestSize]byte
	wlen   uint32 // bytes of hdr to send
	inline bool   // the data goes in the capsule
	rcvd   uint32 // C2H bytes received (receive goroutine)
	sent   uint32 // bytes asked for by R2Ts (receive goroutine)
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

// pollGroup is every polled queue of the process: one stops polling
// when another has input.
var pollGroup busypoll.Group

// pollDepth is the most commands in flight with which the receive side
// busy-polls (QueueParams.BusyPoll).
const pollDepth = 4

// pollNow says whether the receive side busy-polls now: only while few
// commands are in flight. Those wait on one round trip each, where waking
// an idle CPU is most of it; a deeper queue's completions come in batches
// that pay for the wake-up, and polling would split them. Called on the
// receive goroutine, which set q.
func (l *link) pollNow() bool { return l.q != nil && l.q.InFlightCount() <= pollDepth }

// newLink runs the queue's connection setup over nc, connected to the
// controller: ICReq and ICResp. It closes nc on failure.
func newLink(ctx context.Context, nc net.Conn, p initiator.QueueParams) (*link, error) {
	l := &link{
		qid:     p.QID,
		nc:      nc,
		bw:      bufio.NewWriterSize(nc, writeBufSize),
		hdgst:   p.HDigest,
		ddgst:   p.DDigest,
		tls:     p.TLSKey != "",
		icd:     p.ICD,
		slots:   make([]slot, p.Depth),
		r2tq:    make(chan r2tWork, p.Depth),
		stopped: make(chan struct{}),
	}
	rd, leave := busypoll.NewReader(&pollGroup, nc, p.BusyPoll, l.pollNow)
	l.br, l.leave = bufio.NewReaderSize(rd, readBufSize), leave
	if err := l.initConnection(ctx); err != nil {
		l.leave()
		nc.Close()
		return nil, fmt.Errorf("initialize connection to %s: %w", p.Addr, err)
	}
	return l, nil
}

// initConnection sends an ICReq and checks the ICResp, like the Linux host's
// nvme_tcp_init_connection.
func (l *link) initConnection(ctx context.Context) error {
	if dl, ok := ctx.Deadline(); ok {
		l.nc.SetDeadline(dl)
		defer l.nc.SetDeadline(time.Time{})
	}
	var buf [nvmeof.ICReqSize]byte
	req := nvmeof.ICReq{PFV: 0, HPDA: 0, MaxR2T: 0}
	if l.hdgst {
		req.Digest |= nvmeof.DigestHeader
	}
	if l.ddgst {
		req.Digest |= nvmeof.DigestData
	}
	req.Encode(buf[:])
	if _, err := l.nc.Write(buf[:]); err != nil {
		return fmt.Errorf("send ICReq: %w", err)
	}
	if _, err := io.ReadFull(l.br, buf[:]); err != nil {
		if (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET)) && !l.tls {
			if buf[0] == 0x15 { // a TLS alert record
				return fmt.Errorf("read ICResp: the controller answered with a TLS alert: it requires TLS: give the host's PSK (--tls-key)")
			}
			return fmt.Errorf("read ICResp: the controller closed the connection: %w (if the target requires TLS, give the host's PSK: --tls-key)", err)
		}
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
	if got := resp.Digest&nvmeof.DigestHeader != 0; got != l.hdgst {
		return fmt.Errorf("ICResp: header digest %v, requested %v", got, l.hdgst)
	}
	if got := resp.Digest&nvmeof.DigestData != 0; got != l.ddgst {
		return fmt.Errorf("ICResp: data digest %v, requested %v", got, l.ddgst)
	}
	if resp.MaxData%4 != 0 {
		return fmt.Errorf("ICResp: MAXH2CDATA %d is not a multiple of 4", resp.MaxData)
	}
	l.cpda = resp.CPDA
	l.maxH2C = resp.MaxData
	return nil
}

// inline reports whether c's data goes in the command capsule.
func (l *link) inline(c *initiator.Command) bool {
	if !c.Out || len(c.Buf) == 0 {
		return false
	}
	limit := l.icd
	if c.Fabrics() || l.qid == 0 {
		limit = adminCCSZ
	}
	return len(c.Buf) <= limit
}

// Prepare builds the command capsule PDU's header in the slot.
func (l *link) Prepare(cid uint16, c *initiator.Command) error {
	if c.DevLen > 0 {
		return errDeviceMemory
	}
	s := &l.slots[cid]
	n := len(c.Buf)
	s.inline = l.inline(c)
	sqe := c.PutSQE(s.hdr[nvmeof.CHSize:], cid)
	if s.inline {
		// NVMe-oF 1.1 §2.3: offset 0 from the start of in-capsule data (ICDOFF 0).
		sqe.SGL().SetDataBlock(nvmeof.SGLInCapsule, 0, uint32(n))
	} else {
		sqe.SGL().SetDataBlock(nvmeof.SGLTransport, 0, uint32(n))
	}
	hlen := uint32(nvmeof.CapsuleCmdHLen)
	h := nvmeof.Header{Type: nvmeof.PDUCapsuleCmd, HLen: uint8(hlen), PLen: hlen}
	wlen := hlen
	if l.hdgst {
		h.Flags |= nvmeof.FlagHDGST
		h.PLen += nvmeof.DigestSize
		wlen += nvmeof.DigestSize
	}
	if s.inline {
		pdo := nvmeof.PadTo(hlen, l.hdgst, l.cpda)
		h.PDO = uint8(pdo)
		h.PLen = pdo + uint32(n)
		wlen = pdo
		if l.ddgst {
			h.Flags |= nvmeof.FlagDDGST
			h.PLen += nvmeof.DigestSize
			nvmeof.PutDigest(s.ddg[:], nvmeof.Digest(c.Buf))
		}
	}
	nvmeof.PutHeader(s.hdr[:], h)
	if l.hdgst {
		nvmeof.PutDigest(s.hdr[hlen:], nvmeof.Digest(s.hdr[:hlen]))
	}
	clear(s.hdr[hlen+digestLen(l.hdgst) : wlen]) // padding up to PDO
	s.wlen = wlen
	s.rcvd, s.sent = 0, 0
	return nil
}

// Send buffers the capsule, with its data when it goes in capsule.
func (l *link) Send(cid uint16, c *initiator.Command) error {
	s := &l.slots[cid]
	_, err := l.bw.Write(s.hdr[:s.wlen])
	if s.inline && err == nil {
		_, err = l.bw.Write(c.Buf)
		if l.ddgst && err == nil {
			_, err = l.bw.Write(s.ddg[:])
		}
	}
	return err
}

// Flush writes what Send buffered.
func (l *link) Flush() error { return l.bw.Flush() }

// Release does nothing: a slot holds no resource between commands.
func (l *link) Release(uint16) {}

// Stop closes the connection.
func (l *link) Stop() {
	close(l.stopped)
	l.leave()
	l.nc.Close()
}

// Close waits for the send goroutine.
func (l *link) Close() { l.wg.Wait() }

func digestLen(on bool) uint32 {
	if on {
		return nvmeof.DigestSize
	}
	return 0
}

// Receive starts the send goroutine, which answers R2Ts, and reads PDUs
// until the connection fails.
func (l *link) Receive(q *initiator.Queue) error {
	l.start(q)
	for {
		if err := l.recvPDU(); err != nil {
			return err
		}
	}
}

// start readies the receive side of q: the send goroutine that answers
// R2Ts (the receive side never blocks on the socket's send buffer).
func (l *link) start(q *initiator.Queue) {
	l.q = q
	l.wg.Add(1)
	go l.sendLoop()
}

var _ initiator.PollLink = (*link)(nil)

// Poll runs the receive side on the caller's goroutine
// (initiator.PollLink): it reads and handles PDUs, blocking for the
// socket, until ready says to stop, then handles the whole PDUs already
// buffered without reading the socket again.
func (l *link) Poll(q *initiator.Queue, ready func() bool) error {
	if l.q == nil {
		l.start(q)
	}
	for !ready() {
		if err := l.recvPDU(); err != nil {
			return err
		}
	}
	for l.pduBuffered() {
		if err := l.recvPDU(); err != nil {
			return err
		}
	}
	return nil
}

// pduBuffered reports whether the read buffer holds a whole PDU, which
// recvPDU then handles without reading the socket.
func (l *link) pduBuffered() bool {
	n := l.br.Buffered()
	if n < nvmeof.CHSize {
		return false
	}
	ch, _ := l.br.Peek(nvmeof.CHSize)
	h, _ := nvmeof.ParseHeader(ch)
	return uint64(h.PLen) <= uint64(n)
}

// recvPDU reads one PDU and acts on it.
func (l *link) recvPDU() error {
	ch, err := l.br.Peek(nvmeof.CHSize)
	if err != nil {
		return l.readError(err)
	}
	h, _ := nvmeof.ParseHeader(ch)
	lay, err := h.Check(l.hdgst, l.ddgst, maxRecvPLen)
	if err != nil {
		l.terminate(err, ch)
		return fmt.Errorf("queue %d: bad PDU from the controller: %w", l.qid, err)
	}
	hl := int(h.HLen)
	if lay.HDigest {
		hl += nvmeof.DigestSize
	}
	b, err := l.br.Peek(hl)
	if err != nil {
		return l.readError(err)
	}
	if lay.HDigest {
		if want, got := nvmeof.Digest(b[:h.HLen]), nvmeof.GetDigest(b[h.HLen:]); want != got {
			ferr := &nvmeof.FatalError{FES: nvmeof.FESHeaderDigest, Msg: fmt.Sprintf("header digest %#08x, computed %#08x", got, want)}
			l.terminate(ferr, b[:h.HLen])
			return fmt.Errorf("queue %d: PDU type %#x: %w", l.qid, h.Type, ferr)
		}
	}
	switch h.Type {
	case nvmeof.PDUCapsuleRsp:
		cqe := *nvmeof.CQEView(b[nvmeof.CHSize:])
		l.br.Discard(hl)
		return l.complete(&cqe)
	case nvmeof.PDUC2HData:
		dp, _ := nvmeof.DecodeDataPDU(b)
		l.br.Discard(hl)
		return l.c2hData(h, lay, dp, hl)
	case nvmeof.PDUR2T:
		dp, _ := nvmeof.DecodeDataPDU(b)
		l.br.Discard(hl)
		return l.r2t(dp)
	case nvmeof.PDUC2HTermReq:
		t, _ := nvmeof.DecodeTermReq(b)
		return fmt.Errorf("queue %d: controller terminated the connection: C2HTermReq FES %#x FEI %d", l.qid, t.FES, t.FEI)
	}
	ferr := &nvmeof.FatalError{FES: nvmeof.FESInvalidHeader, Msg: fmt.Sprintf("unexpected PDU type %#x from a controller", h.Type)}
	l.terminate(ferr, b[:h.HLen])
	return fmt.Errorf("queue %d: %w", l.qid, ferr)
}

func (l *link) readError(err error) error {
	if qerr := l.q.Err(); qerr != nil {
		return qerr
	}
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("queue %d: controller closed the connection", l.qid)
	}
	return fmt.Errorf("queue %d: receive: %w", l.qid, err)
}

// protocolError is a violation by the controller: the host sends an
// H2CTermReq and closes the connection.
func (l *link) protocolError(fes uint16, format string, args ...any) error {
	ferr := &nvmeof.FatalError{FES: fes, Msg: fmt.Sprintf(format, args...)}
	l.terminate(ferr, nil)
	return fmt.Errorf("queue %d: controller protocol violation: %w", l.qid, ferr)
}

// terminate sends an H2CTermReq (NVMe/TCP 1.0 §3.6.2.4) for a fatal error, best effort.
func (l *link) terminate(err error, offending []byte) {
	var ferr *nvmeof.FatalError
	if !errors.As(err, &ferr) {
		return
	}
	var b [nvmeof.TermReqHLen + nvmeof.TermReqMaxData]byte
	n := nvmeof.EncodeTermReq(b[:], nvmeof.PDUH2CTermReq, nvmeof.TermReq{FES: ferr.FES, FEI: ferr.FEI}, offending)
	if !l.q.LockSend() {
		return
	}
	defer l.q.UnlockSend()
	l.nc.SetWriteDeadline(time.Now().Add(time.Second))
	if _, err := l.bw.Write(b[:n]); err == nil {
		l.bw.Flush()
	}
}

func (l *link) complete(cqe *nvmeof.CQE) error {
	cid := cqe.CID()
	if l.q.InFlight(cid) == nil {
		return l.protocolError(nvmeof.FESInvalidHeader, "response capsule for command id %d, which is not in flight", cid)
	}
	l.q.Complete(cid, cqe.Status(), cqe.DW0(), cqe.DW1())
	return nil
}

// c2hData reads a C2HData PDU's data straight into the command's buffer
// (NVMe/TCP 1.0 §3.6.2.8). hl bytes of header have been consumed.
func (l *link) c2hData(h nvmeof.Header, lay nvmeof.Layout, dp nvmeof.DataPDU, hl int) error {
	c := l.q.InFlight(dp.CCCID)
	if c == nil {
		return l.protocolError(nvmeof.FESInvalidHeader, "C2HData for command id %d, which is not in flight", dp.CCCID)
	}
	s := &l.slots[dp.CCCID]
	if c.Out {
		return l.protocolError(nvmeof.FESInvalidHeader, "C2HData for command id %d, which moves data to the controller", dp.CCCID)
	}
	if dp.Length != lay.DataLen {
		return l.protocolError(nvmeof.FESInvalidHeader, "C2HData DATAL %d, but the PDU carries %d bytes", dp.Length, lay.DataLen)
	}
	end := uint64(dp.Offset) + uint64(dp.Length)
	if end > uint64(len(c.Buf)) {
		return l.protocolError(nvmeof.FESDataOutOfRange, "C2HData for command id %d: bytes %d..%d beyond its %d-byte buffer", dp.CCCID, dp.Offset, end, len(c.Buf))
	}
	if pad := int(lay.DataOff) - hl; pad > 0 {
		if _, err := l.br.Discard(pad); err != nil {
			return l.readError(err)
		}
	}
	dst := c.Buf[dp.Offset:end]
	if _, err := io.ReadFull(l.br, dst); err != nil {
		return l.readError(err)
	}
	if lay.DDigest {
		d, err := l.br.Peek(nvmeof.DigestSize)
		if err != nil {
			return l.readError(err)
		}
		got := nvmeof.GetDigest(d)
		l.br.Discard(nvmeof.DigestSize)
		if want := nvmeof.Digest(dst); want != got {
			return fmt.Errorf("queue %d: C2HData for command id %d: data digest %#08x, computed %#08x: the data was corrupted in transit", l.qid, dp.CCCID, got, want)
		}
	}
	s.rcvd += dp.Length
	if h.Flags&nvmeof.FlagDataSuccess != 0 {
		if h.Flags&nvmeof.FlagDataLast == 0 {
			return l.protocolError(nvmeof.FESInvalidHeader, "C2HData with SUCCESS but without LAST_PDU")
		}
		if s.rcvd != uint32(len(c.Buf)) && !c.ShortTransferOK() {
			return l.protocolError(nvmeof.FESInvalidHeader, "C2HData SUCCESS for command id %d after %d of %d bytes", dp.CCCID, s.rcvd, len(c.Buf))
		}
		// §3.6.2.8: no response capsule follows.
		l.q.Complete(dp.CCCID, nvmeof.StatusSuccess, 0, 0)
	}
	return nil
}

// r2t checks an R2T and hands it to the send goroutine (the receive side
// never blocks on the socket's send buffer).
func (l *link) r2t(dp nvmeof.DataPDU) error {
	c := l.q.InFlight(dp.CCCID)
	if c == nil {
		return l.protocolError(nvmeof.FESInvalidHeader, "R2T for command id %d, which is not in flight", dp.CCCID)
	}
	s := &l.slots[dp.CCCID]
	if !c.Out || s.inline {
		return l.protocolError(nvmeof.FESInvalidHeader, "R2T for command id %d, which has no data to solicit", dp.CCCID)
	}
	end := uint64(dp.Offset) + uint64(dp.Length)
	if dp.Length == 0 || end > uint64(len(c.Buf)) {
		return l.protocolError(nvmeof.FESDataOutOfRange, "R2T for command id %d: bytes %d..%d of a %d-byte transfer", dp.CCCID, dp.Offset, end, len(c.Buf))
	}
	if dp.Offset < s.sent {
		return l.protocolError(nvmeof.FESInvalidHeader, "R2T for command id %d at offset %d, below the %d bytes already solicited", dp.CCCID, dp.Offset, s.sent)
	}
	s.sent = uint32(end)
	select {
	case l.r2tq <- r2tWork{cid: dp.CCCID, ttag: dp.TTag, offset: dp.Offset, length: dp.Length, buf: c.Buf}:
		return nil
	case <-l.stopped:
		return l.q.Err()
	}
}

// sendLoop answers R2Ts with H2CData PDUs of at most MAXH2CDATA bytes.
func (l *link) sendLoop() {
	defer l.wg.Done()
	var ddg [nvmeof.DigestSize]byte
	for {
		select {
		case w := <-l.r2tq:
			if err := l.sendH2C(w, &ddg); err != nil {
				l.q.Fail(fmt.Errorf("queue %d: send H2CData: %w", l.qid, err))
				return
			}
		case <-l.stopped:
			return
		}
	}
}

func (l *link) sendH2C(w r2tWork, ddg *[nvmeof.DigestSize]byte) error {
	data := w.buf[w.offset : w.offset+w.length]
	hdr := l.slots[w.cid].h2c[:]
	pdo := nvmeof.PadTo(nvmeof.DataHLen, l.hdgst, l.cpda)
	if !l.q.LockSend() {
		return l.q.Err()
	}
	defer l.q.UnlockSend()
	for off := uint32(0); off < w.length; {
		n := min(w.length-off, l.maxH2C)
		h := nvmeof.Header{Type: nvmeof.PDUH2CData, HLen: nvmeof.DataHLen, PDO: uint8(pdo), PLen: pdo + n}
		if l.hdgst {
			h.Flags |= nvmeof.FlagHDGST
		}
		if l.ddgst {
			h.Flags |= nvmeof.FlagDDGST
			h.PLen += nvmeof.DigestSize
		}
		if off+n == w.length {
			h.Flags |= nvmeof.FlagDataLast
		}
		nvmeof.PutHeader(hdr, h)
		dp := nvmeof.DataPDU{CCCID: w.cid, TTag: w.ttag, Offset: w.offset + off, Length: n}
		dp.Encode(hdr)
		if l.hdgst {
			nvmeof.PutDigest(hdr[nvmeof.DataHLen:], nvmeof.Digest(hdr[:nvmeof.DataHLen]))
		}
		clear(hdr[nvmeof.DataHLen+digestLen(l.hdgst) : pdo])
		chunk := data[off : off+n]
		if _, err := l.bw.Write(hdr[:pdo]); err != nil {
			return err
		}
		if _, err := l.bw.Write(chunk); err != nil {
			return err
		}
		if l.ddgst {
			nvmeof.PutDigest(ddg[:], nvmeof.Digest(chunk))
			if _, err := l.bw.Write(ddg[:]); err != nil {
				return err
			}
		}
		off += n
	}
	if !l.q.Batching() {
		return l.bw.Flush()
	}
	return nil
}
