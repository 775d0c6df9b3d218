package tcp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/flashpath/flashpath/internal/busypoll"
	"github.com/flashpath/flashpath/internal/sockio"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target"
)

const (
	bufSize = 64 << 10
	// smallBuf is what a connection reads and gathers through until it
	// is ready (connected and, where it must, authenticated): ICReq,
	// Connect and DH-HMAC-CHAP fit, and thousands of connections that
	// never get that far cost little memory.
	smallBuf = 4 << 10
	// Data at least this large is sent straight from the request buffer
	// (referenced by the writer, not copied); its slot is held until the
	// flush that sends it.
	directWrite = 16 << 10
	// Referenced data is flushed once this much is gathered, so that
	// large reads at depth go out several PDUs per writev without holding
	// back the first for long.
	flushAt = 512 << 10
	// Reads of buffered files at least this large are sent from the page
	// cache with sendfile(2) (target.Queue.SendFromFiles). Each costs two
	// system calls (its header, its data), where copied reads share one
	// writev per flushAt: measured on loopback at a fixed 2 GB/s, the
	// target's CPU per GB fell by 17-35% at 256 KiB and 25-55% at 1 MiB,
	// and did not move clearly at 128 KiB.
	sendfileMin = 256 << 10
	// Slots beyond the queue size, for the moment between a response being
	// sent and its slot being freed.
	slotSlack = target.AERLimit + 16
)

var _ target.QueueTransport = (*conn)(nil)
var _ target.OutstandingReporter = (*conn)(nil)

// conn is one NVMe/TCP connection: one queue pair.
type conn struct {
	l    *Listener
	nc   net.Conn
	br   *bufio.Reader
	q    *target.Queue
	log  *slog.Logger
	bufs *target.HostBuffers // the peer address's share of the buffer pool

	hdgst, ddgst bool
	ready        bool // the queue connected (and authenticated): recv goroutine only
	// ddgstBuf receives a data PDU's digest (recv goroutine only): a local
	// array would escape through io.ReadFull, one allocation per PDU.
	ddgstBuf [nvmeof.DigestSize]byte
	// rd is what br reads (the busy-poll reader); growBr says br is still
	// the small one, to be replaced by one of bufSize once it is empty.
	rd      io.Reader
	growBr  bool
	hpda    uint8
	inline  int
	maxPLen uint32

	rhdr    [nvmeof.MaxHLen + nvmeof.DigestSize]byte // receive header scratch, recv goroutine only
	rhdrLen int                                      // bytes of rhdr read for the current PDU
	discard []byte                                   // recv goroutine only: see scratch

	slotMu sync.Mutex
	slots  []target.Request // grown once, at Connect, by the recv goroutine
	free   []int            // guarded by slotMu
	// inCore marks slots handed to Queue.Execute and not yet completed:
	// their buffers may be under I/O (an asynchronous backend) until
	// Complete releases them. Guarded by slotMu.
	inCore []bool

	// flushReq wakes the flusher: a completion from another goroutine
	// (asynchronous I/O, an event) left the response in bw. One flush
	// then carries every response queued meanwhile.
	flushReq chan struct{}
	done     chan struct{} // closed when serve returns

	// Requests completed on other goroutines (an io_uring reaper, an
	// asynchronous event) wait here for the flusher, which sends them: a
	// reaper serving every connection of a namespace must never wait on
	// one host's socket.
	doneMu   sync.Mutex
	doneQ    []*target.Request // guarded by doneMu
	doneShut bool              // guarded by doneMu: the connection is gone; release instead
	doneWork []*target.Request // the flusher's batch, taken from doneQ

	sendMu   sync.Mutex
	bw       *sockio.Writer                                  // guarded by sendMu
	held     []*target.Request                               // guarded by sendMu: requests whose data bw references
	shdr     [64]byte                                        // guarded by sendMu
	sdig     [nvmeof.DigestSize]byte                         // guarded by sendMu
	dhdr     [nvmeof.DataHLen + nvmeof.DigestSize + 128]byte // guarded by sendMu: C2HData header and padding
	rsp      [nvmeof.CapsuleRspHLen + nvmeof.DigestSize]byte // guarded by sendMu
	sendErr  error                                           // guarded by sendMu
	shutdown bool                                            // guarded by sendMu

	closeOnce sync.Once
	gate      *target.ExecGate // the queue's: no socket close under a command in the core
	leave     func()           // leaves the listener's busy-poll group
}

func newConn(l *Listener, nc net.Conn) *conn {
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c := &conn{
		l: l, nc: nc,
		bw:  sockio.NewWriter(nc, smallBuf),
		log: l.log.With("peer", nc.RemoteAddr().String()),
	}
	c.bw.Timeout = l.opts.SendTimeout
	if l.opts.TLS == TLSOff {
		// Polled while there is nothing to read, for up to BusyPoll, unless
		// another connection of the listener has input.
		rd, leave := busypoll.NewReader(&l.poll, nc, l.opts.BusyPoll, nil)
		c.rd, c.br, c.leave = rd, bufio.NewReaderSize(rd, smallBuf), leave
	} else {
		// startTLS sets up the reading.
		c.rd, c.leave = nc, func() {}
	}
	c.q = l.t.NewQueue(c, hostAddr(nc.LocalAddr()))
	c.gate = c.q.Gate()
	// The reader runs what one receive gave it, then flushes the
	// completions (flushIfIdle): one clock reading per batch for the
	// statistics.
	c.q.BatchClock()
	c.q.SetPort(l.port)
	c.q.SetAddrs(addrPort(nc.LocalAddr()), addrPort(nc.RemoteAddr()))
	c.bufs = l.t.HostBuffers(hostAddr(nc.RemoteAddr()))
	c.inline = c.q.InlineDataSize(target.InCapsuleData)
	// The largest PDU: a header, digests, alignment padding, and data.
	c.maxPLen = uint32(max(l.opts.MaxH2CData, target.AdminInlineData, target.InCapsuleData) + 256)
	c.slots = make([]target.Request, 1)
	c.free = []int{0}
	c.inCore = make([]bool, 1)
	c.flushReq = make(chan struct{}, 1)
	c.done = make(chan struct{})
	return c
}

// addrPort returns a socket address as a netip.AddrPort (not valid for
// an address that is not IP).
func addrPort(a net.Addr) netip.AddrPort {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

// Close is called by the core (controller deleted, keep-alive expired) and
// by the listener's shutdown. It never blocks on the connection's goroutine.
//
// The host must not see the connection end while a command it sent is
// still in the core (target.ExecGate): Close closes the socket only when
// none is; otherwise the completion of the last one closes it, and no
// other runs.
func (c *conn) Close(reason error) {
	c.closeOnce.Do(func() {
		if c.gate.Close() {
			c.nc.Close()
		}
		c.log.Info("closing connection", "reason", reason.Error())
	})
}

// serve runs the connection until it fails or is closed.
func (c *conn) serve() {
	go c.flusher()
	err := c.run()
	c.leave()
	c.Close(errOrEOF(err))
	c.gate.Wait() // for writes still in flight on the backend: the last one's Complete closes the socket
	// Its End woke Wait before that close: close it here too, so the
	// socket is closed when serve returns (a second Close does nothing).
	c.nc.Close()
	c.q.Closed()
	c.sendMu.Lock()
	c.shutdown = true
	c.bw.Reset()
	c.releaseHeld()
	c.sendMu.Unlock()
	c.doneMu.Lock()
	c.doneShut = true
	late := c.doneQ
	c.doneQ = nil
	c.doneMu.Unlock()
	for _, r := range late {
		c.releaseSlot(r)
	}
	close(c.done)
	c.slotMu.Lock()
	for i := range c.slots {
		// A slot in the core keeps its buffer: the backend may still be
		// reading into it, and its Complete (on another goroutine; its
		// Buf is not ours to read) returns it to the pool.
		if c.inCore[i] {
			continue
		}
		if b := c.slots[i].Buf; b != nil {
			c.bufs.Put(b)
			c.slots[i].Buf = nil
		}
	}
	c.slotMu.Unlock()
	c.bufs.Release() // buffers still in the core come back through it later
}

// flusher sends the requests completed on other goroutines, and what
// they left buffered.
func (c *conn) flusher() {
	for {
		select {
		case <-c.flushReq:
		case <-c.done:
			return
		}
		c.doneMu.Lock()
		c.doneWork, c.doneQ = c.doneQ, c.doneWork[:0]
		c.doneMu.Unlock()
		for i, r := range c.doneWork {
			c.complete(r)
			c.doneWork[i] = nil
		}
		c.sendMu.Lock()
		if !c.shutdown {
			c.flushLocked()
		}
		c.sendMu.Unlock()
	}
}

func errOrEOF(err error) error {
	if err == nil {
		return io.EOF
	}
	return err
}

func (c *conn) run() error {
	if c.l.opts.TLS != TLSOff {
		if err := c.startTLS(); err != nil {
			return err
		}
	}
	if err := c.initConnection(); err != nil {
		return c.fail(err)
	}
	if !c.l.opts.NoSendfile && c.l.opts.TLS == TLSOff && !c.ddgst && c.bw.CanSendFile() {
		// Large reads of buffered files go from the page cache into the
		// socket. Not with a data digest, which must read the data, nor
		// under TLS, which encrypts it in user space.
		c.q.SendFromFiles(sendfileMin)
	}
	if !c.ddgst {
		// Small reads of mem namespaces are copied from the namespace's
		// memory into the writer's buffer, not first into a data buffer
		// and from there. Not larger ones, which the writer would hand
		// to the kernel to copy: measured at 128 KiB from a 1 GiB
		// namespace, the kernel's copy out of cold memory cost the
		// target more CPU per GB (0.30-0.34 CPU-s/GB) than our copy into
		// a cache-warm buffer plus the kernel's from it (0.24-0.26). Not
		// with a data digest, computed before the data is written.
		c.q.SendFromMem(directWrite)
	}
	for {
		if err := c.flushIfIdle(); err != nil {
			return err
		}
		if c.growBr && c.br.Buffered() == 0 {
			c.br, c.growBr = bufio.NewReaderSize(c.rd, bufSize), false
		}
		if err := c.readPDU(); err != nil {
			return c.fail(err)
		}
	}
}

// fail turns a protocol error into a C2HTermReq and a log line; plain I/O
// errors (the host went away) end the connection quietly.
func (c *conn) fail(err error) error {
	var fe *nvmeof.FatalError
	if errors.As(err, &fe) {
		c.countProtocolError(fesKind(fe.FES))
		c.l.t.PeerWarn(c.log, "protocol error: terminating connection", "fes", fe.FES, "err", fe.Msg)
		c.sendMu.Lock()
		// The TermReq carries the offending PDU header (§3.6.2.9).
		var term [nvmeof.TermReqHLen + nvmeof.TermReqMaxData]byte
		n := nvmeof.EncodeTermReq(term[:], nvmeof.PDUC2HTermReq, nvmeof.TermReq{FES: fe.FES, FEI: fe.FEI}, c.rhdr[:c.rhdrLen])
		// A host that does not read gets a second for it, not the
		// send timeout: the connection ends anyway.
		c.bw.Timeout = time.Second
		c.bw.Write(term[:n])
		c.flushLocked()
		c.sendMu.Unlock()
		return err
	}
	var de errDataDigest
	if errors.As(err, &de) {
		// Like the Linux target: data the host sent is corrupt, so nothing on
		// this connection can be trusted any more; close it.
		c.countProtocolError(target.ProtoDataDigest)
		c.l.t.PeerWarn(c.log, "data digest error: closing connection", "err", err)
		return err
	}
	if errors.Is(err, os.ErrDeadlineExceeded) && !c.q.Ready() {
		c.l.t.PeerWarn(c.log, "no Connect (or no authentication) within the connect timeout: closing the connection", "timeout", c.l.opts.ConnectTimeout)
		return err
	}
	if !c.gate.Closing() && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
		c.log.Info("connection ended", "err", err)
	}
	return err
}

// countProtocolError counts a connection ended for a protocol error, on the
// listener and on the target.
func (c *conn) countProtocolError(kind target.ProtocolErrorKind) {
	c.l.ProtocolErrors.Add(1)
	c.l.t.ProtocolError(kind)
}

// fesKind is the kind of a fatal error status (NVMe/TCP 1.0 §3.6.2.9).
func fesKind(fes uint16) target.ProtocolErrorKind {
	switch fes {
	case nvmeof.FESSequenceError:
		return target.ProtoPDUSequence
	case nvmeof.FESHeaderDigest:
		return target.ProtoHeaderDigest
	case nvmeof.FESDataOutOfRange:
		return target.ProtoDataOutOfRange
	case nvmeof.FESDataLimitExceeded:
		return target.ProtoDataLimit
	case nvmeof.FESUnsupportedParam:
		return target.ProtoUnsupportedParam
	}
	return target.ProtoInvalidPDU
}

func (c *conn) flushIfIdle() error {
	if n := c.br.Buffered(); n >= nvmeof.CHSize {
		// A whole PDU is waiting: handle it first and batch the responses.
		// Only a whole one: a host may wait for responses before it sends
		// the rest of a PDU.
		if ch, err := c.br.Peek(nvmeof.CHSize); err == nil {
			if h, _ := nvmeof.ParseHeader(ch); uint64(h.PLen) <= uint64(n) {
				return nil
			}
		}
	}
	c.q.EndBatch()
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	return c.flushLocked()
}

func (c *conn) initConnection() error {
	c.nc.SetReadDeadline(time.Now().Add(c.l.opts.ICTimeout))
	b := c.rhdr[:nvmeof.ICReqSize]
	if _, err := io.ReadFull(c.br, b); err != nil {
		return fmt.Errorf("read ICReq: %w", err)
	}
	c.rhdrLen = nvmeof.ICReqSize
	c.nc.SetReadDeadline(time.Time{})
	req, err := nvmeof.DecodeICReq(b)
	if err != nil {
		return err
	}
	c.hdgst = req.Digest&nvmeof.DigestHeader != 0
	c.ddgst = req.Digest&nvmeof.DigestData != 0
	c.hpda = req.HPDA
	resp := nvmeof.ICResp{Digest: req.Digest, MaxData: uint32(c.l.opts.MaxH2CData)}
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	var out [nvmeof.ICRespSize]byte
	resp.Encode(out[:])
	if _, err := c.bw.Write(out[:]); err != nil {
		return err
	}
	// Connect (and authentication, where the host must authenticate)
	// must follow within ConnectTimeout; execute clears the deadline once
	// the queue is ready.
	c.nc.SetReadDeadline(time.Now().Add(c.l.opts.ConnectTimeout))
	return c.bw.Flush()
}

// readPDU reads and dispatches one PDU.
func (c *conn) readPDU() error {
	ch := c.rhdr[:nvmeof.CHSize]
	c.rhdrLen = 0
	if _, err := io.ReadFull(c.br, ch); err != nil {
		return err
	}
	c.rhdrLen = nvmeof.CHSize
	h, _ := nvmeof.ParseHeader(ch)
	lay, err := h.Check(c.hdgst, c.ddgst, c.maxPLen)
	if err != nil {
		return err
	}
	// The target's ICResp says CPDA 0: data starts on a 4-byte boundary,
	// and no alignment puts it beyond MaxPDO.
	if lay.DataLen > 0 && (lay.DataOff > nvmeof.MaxPDO || lay.DataOff%4 != 0) {
		return &nvmeof.FatalError{FES: nvmeof.FESInvalidHeader, FEI: 3, Msg: fmt.Sprintf("PDO %d: want a multiple of 4 (CPDA 0) up to %d", lay.DataOff, nvmeof.MaxPDO)}
	}
	hlen := int(h.HLen)
	if lay.HDigest {
		hlen += nvmeof.DigestSize
	}
	if _, err := io.ReadFull(c.br, c.rhdr[nvmeof.CHSize:hlen]); err != nil {
		return err
	}
	c.rhdrLen = int(h.HLen)
	if lay.HDigest {
		want := nvmeof.GetDigest(c.rhdr[h.HLen:])
		if got := nvmeof.Digest(c.rhdr[:h.HLen]); got != want {
			return &nvmeof.FatalError{FES: nvmeof.FESHeaderDigest, Msg: fmt.Sprintf("header digest %#x, computed %#x", want, got)}
		}
	}
	switch h.Type {
	case nvmeof.PDUCapsuleCmd:
		return c.handleCapsule(h, lay, hlen)
	case nvmeof.PDUH2CData:
		return c.handleH2CData(h, lay, hlen)
	case nvmeof.PDUH2CTermReq:
		t, _ := nvmeof.DecodeTermReq(c.rhdr[:])
		c.l.t.PeerWarn(c.log, "host terminated the connection", "fes", t.FES, "fei", t.FEI)
		return io.EOF
	}
	return &nvmeof.FatalError{FES: nvmeof.FESInvalidHeader, Msg: fmt.Sprintf("unexpected PDU type %#x from a host", h.Type)}
}

// skipPad discards the bytes between the header and PDO.
func (c *conn) skipPad(hlen int, lay nvmeof.Layout) error {
	n := int(lay.DataOff) - hlen
	if n <= 0 {
		return nil
	}
	// PDO may lie up to 255-hlen bytes past the header: more than pad holds.
	_, err := c.br.Discard(n)
	if errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// scratch returns n bytes of the connection's discard buffer (in-capsule
// data of a command failed before it ran), made on first use.
func (c *conn) scratch(n int) []byte {
	if len(c.discard) < n {
		c.discard = make([]byte, max(n, c.inline))
	}
	return c.discard[:n]
}

// readData reads a PDU's data into dst (len(dst) == lay.DataLen) and checks its digest.
func (c *conn) readData(dst []byte, lay nvmeof.Layout) error {
	if _, err := io.ReadFull(c.br, dst); err != nil {
		return err
	}
	if !lay.DDigest {
		return nil
	}
	if _, err := io.ReadFull(c.br, c.ddgstBuf[:]); err != nil {
		return err
	}
	if want, got := nvmeof.GetDigest(c.ddgstBuf[:]), nvmeof.Digest(dst); want != got {
		return errDataDigest{want, got}
	}
	return nil
}

type errDataDigest struct{ want, got uint32 }

func (e errDataDigest) Error() string {
	return fmt.Sprintf("data digest %#x, computed %#x", e.want, e.got)
}

func (c *conn) allocSlot() (*target.Request, error) {
	c.slotMu.Lock()
	defer c.slotMu.Unlock()
	if len(c.free) == 0 {
		return nil, &nvmeof.FatalError{FES: nvmeof.FESSequenceError, Msg: fmt.Sprintf("more than %d commands outstanding", len(c.slots))}
	}
	i := c.free[len(c.free)-1]
	c.free = c.free[:len(c.free)-1]
	r := &c.slots[i]
	r.Slot = i
	return r, nil
}

// Outstanding is the number of the queue's commands in its slots: from
// their capsule's arrival to their response's send
// (target.OutstandingReporter).
func (c *conn) Outstanding() int {
	c.slotMu.Lock()
	defer c.slotMu.Unlock()
	return len(c.slots) - len(c.free)
}

func (c *conn) releaseSlot(r *target.Request) {
	r.FileSent(nil) // a read dropped before its data went out
	if r.Buf != nil {
		c.bufs.Put(r.Buf)
		r.Buf = nil
	}
	r.Data = nil
	r.Pending = false
	c.slotMu.Lock()
	c.inCore[r.Slot] = false
	c.free = append(c.free, r.Slot)
	c.slotMu.Unlock()
}

// growSlots sizes the slot table once the queue size is known. Only the
// recv goroutine calls it, right after Connect, with no command in flight.
func (c *conn) growSlots() {
	n := c.q.Size() + slotSlack
	c.slotMu.Lock()
	defer c.slotMu.Unlock()
	if len(c.slots) >= n || len(c.free) != len(c.slots) {
		return
	}
	c.slots = make([]target.Request, n)
	c.inCore = make([]bool, n)
	c.free = make([]int, 0, n)
	for i := n - 1; i >= 0; i-- {
		c.free = append(c.free, i)
	}
	c.inline = c.q.InlineDataSize(target.InCapsuleData)
}

func (c *conn) getBuf(r *target.Request, n int) error {
	b, err := c.bufs.Get(n)
	if err != nil {
		return err
	}
	r.Buf = b
	r.Data = b.B
	return nil
}

func (c *conn) handleCapsule(h nvmeof.Header, lay nvmeof.Layout, hlen int) error {
	r, err := c.allocSlot()
	if err != nil {
		return err
	}
	copy(r.Cmd[:], c.rhdr[nvmeof.CHSize:nvmeof.CapsuleCmdHLen])
	r.Deferred, r.Received, r.Pending = false, 0, false
	sgl := r.Cmd.SGL()
	dlen := sgl.Length()
	dir := r.Direction()

	if lay.DataLen > 0 {
		// In-capsule data.
		if int(lay.DataLen) > c.inline {
			return &nvmeof.FatalError{FES: nvmeof.FESDataLimitExceeded, FEI: 4, Msg: fmt.Sprintf("%d bytes of in-capsule data, limit %d", lay.DataLen, c.inline)}
		}
		if err := c.skipPad(hlen, lay); err != nil {
			return err
		}
		if err := c.getBuf(r, int(lay.DataLen)); err != nil {
			if c.q.Connected() && c.q.ID() != 0 {
				// The data is on the wire: take it off and fail the
				// command, keeping the connection.
				c.l.t.NoBuffer(c.log, err)
				if err := c.readData(c.scratch(int(lay.DataLen)), lay); err != nil {
					return err
				}
				return c.completeError(r, nvmeof.StatusInternalError)
			}
			// Connect and admin commands always get memory: an exhausted
			// pool must not keep a new host from connecting (at most an
			// admin queue's worth of 8 KiB per connection).
			r.Data = make([]byte, lay.DataLen)
		}
		if err := c.readData(r.Data, lay); err != nil {
			return err
		}
		off := sgl.Address()
		switch {
		case sgl.ID() != nvmeof.SGLInCapsule || dir != target.DirH2C:
			return c.completeError(r, nvmeof.StatusSGLTypeInvalid|nvmeof.StatusDNR)
		case off > uint64(lay.DataLen) || uint64(dlen) > uint64(lay.DataLen)-off:
			return c.completeError(r, nvmeof.StatusSGLOffsetInvalid|nvmeof.StatusDNR)
		}
		r.Data = r.Data[off : off+uint64(dlen)]
		return c.execute(r)
	}
	if dlen == 0 || dir == target.DirNone {
		return c.execute(r)
	}
	switch {
	case sgl.ID() != nvmeof.SGLTransport:
		return c.completeError(r, nvmeof.StatusSGLTypeInvalid|nvmeof.StatusDNR)
	case dlen > target.MaxTransfer:
		return c.completeError(r, nvmeof.StatusDataSGLLengthInvalid|nvmeof.StatusDNR)
	case dir == target.DirBidi:
		return c.completeError(r, nvmeof.StatusInvalidField|nvmeof.StatusDNR)
	}
	// Nothing is taken for a command that would fail: a host cannot hold
	// the pool with writes it has no right to, or that nothing runs.
	if st := c.q.Admit(r); !st.OK() {
		return c.completeError(r, st)
	}
	if dir == target.DirC2H && c.q.ExecuteInPlace(r) {
		// Completed, without a buffer: its data goes from the page
		// cache (sendFile) or from the namespace's memory.
		return nil
	}
	if err := c.getBuf(r, int(dlen)); err != nil {
		c.l.t.NoBuffer(c.log, err)
		return c.completeError(r, nvmeof.StatusInternalError)
	}
	if dir == target.DirC2H {
		return c.execute(r)
	}
	// Host to controller beyond the capsule: ask for it with one R2T.
	r.Pending = true
	r.TTag = uint16(r.Slot)
	return c.sendR2T(r, 0, dlen)
}

func (c *conn) handleH2CData(h nvmeof.Header, lay nvmeof.Layout, hlen int) error {
	d, _ := nvmeof.DecodeDataPDU(c.rhdr[:])
	if int(d.TTag) >= len(c.slots) {
		return &nvmeof.FatalError{FES: nvmeof.FESInvalidHeader, FEI: 10, Msg: fmt.Sprintf("H2CData for unknown transfer tag %d", d.TTag)}
	}
	r := &c.slots[d.TTag]
	switch {
	case !r.Pending || r.Cmd.CID() != d.CCCID:
		return &nvmeof.FatalError{FES: nvmeof.FESInvalidHeader, FEI: 8, Msg: fmt.Sprintf("H2CData for command %d, tag %d, that awaits no data", d.CCCID, d.TTag)}
	case d.Length != lay.DataLen || d.Length == 0:
		return &nvmeof.FatalError{FES: nvmeof.FESInvalidHeader, FEI: 16, Msg: fmt.Sprintf("H2CData DATAL %d but PDU carries %d", d.Length, lay.DataLen)}
	case d.Length > uint32(c.l.opts.MaxH2CData):
		return &nvmeof.FatalError{FES: nvmeof.FESDataLimitExceeded, FEI: 16, Msg: fmt.Sprintf("H2CData of %d bytes exceeds MAXH2CDATA %d", d.Length, c.l.opts.MaxH2CData)}
	case d.Offset != r.Received || uint64(d.Offset)+uint64(d.Length) > uint64(len(r.Data)):
		return &nvmeof.FatalError{FES: nvmeof.FESDataOutOfRange, FEI: 12, Msg: fmt.Sprintf("H2CData at %d+%d, expected offset %d of %d", d.Offset, d.Length, r.Received, len(r.Data))}
	}
	if err := c.skipPad(hlen, lay); err != nil {
		return err
	}
	if err := c.readData(r.Data[d.Offset:d.Offset+d.Length], lay); err != nil {
		return err
	}
	r.Received += d.Length
	if r.Received < uint32(len(r.Data)) {
		return nil
	}
	r.Pending = false
	return c.execute(r)
}

func (c *conn) execute(r *target.Request) error {
	if !c.gate.Begin(r, c.q.ID()) {
		return net.ErrClosed // Close, or the last command's completion, ends it
	}
	wasReady := c.ready
	c.slotMu.Lock()
	c.inCore[r.Slot] = true
	c.slotMu.Unlock()
	c.q.Execute(r)
	if c.gate.Closing() {
		return net.ErrClosed
	}
	if !wasReady && !c.q.Ready() && c.q.Connected() {
		// Authenticating: ConnectTimeout bounds each wait for the host's
		// next step (a DH exchange on a slow host takes seconds), and the
		// core bounds the number of steps.
		c.nc.SetReadDeadline(time.Now().Add(c.l.opts.ConnectTimeout))
	}
	if !wasReady && c.q.Ready() {
		c.ready, c.growBr = true, true
		c.sendMu.Lock()
		c.bw.Grow(bufSize)
		c.sendMu.Unlock()
		c.nc.SetReadDeadline(time.Time{})
		c.growSlots()
	}
	return nil
}

// completeError completes a command the transport itself rejects.
func (c *conn) completeError(r *target.Request, st nvmeof.Status) error {
	r.Rsp.Reset()
	r.Rsp.SetCID(r.Cmd.CID())
	r.Rsp.SetSQID(c.q.ID())
	r.SetStatus(st)
	if r.Buf != nil {
		c.bufs.Put(r.Buf)
		r.Buf, r.Data = nil, nil
	}
	c.Complete(r)
	return nil
}

func (c *conn) sendR2T(r *target.Request, off, n uint32) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	b := c.putHeader(nvmeof.PDUR2T, 0, nvmeof.R2THLen, 0, 0)
	d := nvmeof.DataPDU{CCCID: r.Cmd.CID(), TTag: r.TTag, Offset: off, Length: n}
	d.Encode(b)
	c.writeHeader(b, nvmeof.R2THLen)
	// The host answers an R2T only once it has it: send now.
	return c.flushLocked()
}

// putHeader starts a PDU header in shdr and returns it.
func (c *conn) putHeader(typ, flags uint8, hlen int, pdo uint32, plen uint32) []byte {
	if c.hdgst {
		flags |= nvmeof.FlagHDGST
	}
	if plen == 0 {
		plen = uint32(hlen)
		if c.hdgst {
			plen += nvmeof.DigestSize
		}
	}
	b := c.shdr[:hlen]
	clear(b)
	nvmeof.PutHeader(b, nvmeof.Header{Type: typ, Flags: flags, HLen: uint8(hlen), PDO: uint8(pdo), PLen: plen})
	return b
}

// writeHeader appends a finished header and its digest to the writer.
func (c *conn) writeHeader(b []byte, hlen int) {
	c.bw.Write(b[:hlen])
	if c.hdgst {
		nvmeof.PutDigest(c.sdig[:], nvmeof.Digest(b[:hlen]))
		c.bw.Write(c.sdig[:])
	}
}

// flushLocked sends what bw gathered and frees the slots whose data it
// referenced. After a send error bw only drops what was gathered (its
// error is sticky); the first one closes the connection (which wakes its
// reader).
func (c *conn) flushLocked() error {
	c.sendFailed(c.bw.Flush())
	c.releaseHeld()
	return c.sendErr
}

// sendFailed records a send error, the first of which closes the
// connection.
func (c *conn) sendFailed(err error) {
	if err == nil || c.sendErr != nil {
		return
	}
	c.sendErr = err
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.l.t.PeerWarn(c.log, "host is not reading its responses: closing the connection", "send_timeout", c.l.opts.SendTimeout)
	}
	c.Close(err)
}

// releaseHeld frees the slots of requests whose data has been sent.
func (c *conn) releaseHeld() {
	for i, r := range c.held {
		c.releaseSlot(r)
		c.held[i] = nil
	}
	c.held = c.held[:0]
}

// Complete sends a command's data and response and frees its slot (once
// the data is written, when the writer references it). A request the
// core completes on another goroutine (Deferred) goes to the flusher.
func (c *conn) Complete(r *target.Request) {
	if c.gate.End(r) {
		// Closed while r was the last command in the core: its response
		// goes nowhere, and the host retries it elsewhere after the end.
		c.nc.Close()
	}
	if r.Deferred {
		c.doneMu.Lock()
		if !c.doneShut {
			c.doneQ = append(c.doneQ, r)
			c.doneMu.Unlock()
			select {
			case c.flushReq <- struct{}{}:
			default: // the flusher is due already
			}
			return
		}
		c.doneMu.Unlock()
		c.releaseSlot(r)
		return
	}
	c.complete(r)
}

// complete sends r on the calling goroutine, the connection's own.
func (c *conn) complete(r *target.Request) {
	// r may be freed by the flush below: read what is needed first.
	disconnect := r.Cmd.Opcode() == nvmeof.OpFabrics && r.Cmd.FCType() == nvmeof.FabricsDisconnect && r.Status().OK()
	reason := r.CloseAfter
	if disconnect {
		reason = errors.New("host disconnected")
	}
	held := false
	c.sendMu.Lock()
	if !c.shutdown && c.sendErr == nil {
		if held = c.sendLocked(r); held {
			c.held = append(c.held, r)
			if c.bw.Buffered() >= flushAt {
				c.flushLocked()
			}
		}
	}
	c.sendMu.Unlock()
	if !held {
		c.releaseSlot(r)
	}
	if reason != nil {
		c.sendMu.Lock()
		c.flushLocked()
		c.sendMu.Unlock()
		c.Close(reason)
	}
}

// sendLocked queues r's data and response on bw; true means bw references
// r.Data, so r's slot must wait for the flush.
func (c *conn) sendLocked(r *target.Request) bool {
	if !r.Status().OK() || r.Direction() != target.DirC2H || len(r.Data) == 0 && r.File.N == 0 {
		n := c.encodeRsp(r, c.rsp[:])
		c.bw.Write(c.rsp[:n])
		return false
	}
	// C2HData; with SQ flow control disabled its SUCCESS flag stands in for
	// the response capsule (NVMe/TCP §3.6.2.8).
	success := c.q.SQFlowControlDisabled()
	h := c.encodeC2HHeader(r, success)
	if c.ddgst {
		nvmeof.PutDigest(c.sdig[:], nvmeof.Digest(r.Data))
	}
	nrsp := 0
	if !success {
		nrsp = c.encodeRsp(r, c.rsp[:])
	}
	c.bw.Write(c.dhdr[:h])
	if r.File.N > 0 {
		c.sendFile(r)
		c.bw.Write(c.rsp[:nrsp])
		return false
	}
	held := len(r.Data) >= directWrite
	if held {
		c.bw.WriteRef(r.Data)
	} else {
		c.bw.Write(r.Data)
	}
	if c.ddgst {
		c.bw.Write(c.sdig[:])
	}
	c.bw.Write(c.rsp[:nrsp])
	return held
}

// zeros is what a read sent from a file carries past the file's end.
var zeros [64 << 10]byte

// sendFile sends a read's data from its namespace's file (r.File): with
// sendfile(2), after what bw gathered, then zeros for what lies past the
// file's end. A failure to read the file ends the connection (the header
// promised the data) and turns the namespace's reads to copies, so that
// the host's retry gets the error as a status.
func (c *conn) sendFile(r *target.Request) {
	f := r.File
	n, err := c.bw.SendFile(f.FD, f.Off, f.N)
	if err != nil {
		c.sendFileFailed(r, err)
		return
	}
	r.FileSent(nil)
	for n < f.N {
		k := min(f.N-n, int64(len(zeros)))
		c.bw.WriteRef(zeros[:k])
		n += k
	}
}

// sendFileFailed ends a read whose sendfile failed (off the hot path: the
// error's target escapes).
func (c *conn) sendFileFailed(r *target.Request, err error) {
	var fe *sockio.FileError
	if errors.As(err, &fe) {
		f := r.File
		c.log.Error("reading a namespace's file for sendfile failed: closing the connection; its reads go through copies from now on",
			"nsid", r.Cmd.NSID(), "offset", f.Off, "length", f.N, "err", fe.Err)
		r.FileSent(err)
	} else {
		r.FileSent(nil)
	}
	c.sendFailed(err)
}

// encodeRsp writes a response capsule PDU for r into b and returns its length.
func (c *conn) encodeRsp(r *target.Request, b []byte) int {
	h := nvmeof.Header{Type: nvmeof.PDUCapsuleRsp, HLen: nvmeof.CapsuleRspHLen, PLen: nvmeof.CapsuleRspHLen}
	if c.hdgst {
		h.Flags |= nvmeof.FlagHDGST
		h.PLen += nvmeof.DigestSize
	}
	nvmeof.PutHeader(b, h)
	copy(b[nvmeof.CHSize:], r.Rsp[:])
	if c.hdgst {
		nvmeof.PutDigest(b[nvmeof.CapsuleRspHLen:], nvmeof.Digest(b[:nvmeof.CapsuleRspHLen]))
	}
	return int(h.PLen)
}

// encodeC2HHeader writes the header (with its digest and padding up to
// PDO) of a C2HData PDU carrying all of r's data into dhdr, and returns
// its length.
func (c *conn) encodeC2HHeader(r *target.Request, success bool) int {
	n := uint32(len(r.Data)) + uint32(r.File.N) // one of them is 0
	pdo := nvmeof.PadTo(nvmeof.DataHLen, c.hdgst, c.hpda)
	h := nvmeof.Header{Type: nvmeof.PDUC2HData, Flags: nvmeof.FlagDataLast, HLen: nvmeof.DataHLen, PDO: uint8(pdo), PLen: pdo + n}
	if success {
		h.Flags |= nvmeof.FlagDataSuccess
	}
	if c.hdgst {
		h.Flags |= nvmeof.FlagHDGST
	}
	if c.ddgst {
		h.Flags |= nvmeof.FlagDDGST
		h.PLen += nvmeof.DigestSize
	}
	b := c.dhdr[:pdo]
	clear(b)
	nvmeof.PutHeader(b, h)
	d := nvmeof.DataPDU{CCCID: r.Cmd.CID(), Length: n}
	d.Encode(b)
	if c.hdgst {
		nvmeof.PutDigest(b[nvmeof.DataHLen:], nvmeof.Digest(b[:nvmeof.DataHLen]))
	}
	return int(pdo)
}

// PeerClosed reports whether the host has closed the connection, though
// the reader may not have seen it yet (target.PeerCloseChecker).
func (c *conn) PeerClosed() bool { return sockio.PeerClosed(c.nc) }
