package target

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/flashpath/flashpath/internal/dhchap"
	"github.com/flashpath/flashpath/nvmeof"
)

// Queue is the core's half of a queue pair. A transport creates one per
// connection with NewQueue and calls Execute from the goroutine that owns
// the connection.
type Queue struct {
	t     *Target
	tr    QueueTransport
	info  TransportInfo
	local netip.Addr
	log   *slog.Logger

	// Set by Connect; read-only afterwards.
	id             uint16
	size           int
	ctrl           *Controller
	connected      bool
	sqFlowDisabled bool
	// DH-HMAC-CHAP (auth.go), owned by the queue's goroutine.
	auth         *dhchap.Controller
	authRequired bool
	authFailures int
	authAttempts int // transactions started before the queue authenticated
	// tls is the PSK identity of a TLS connection (tls.go), set by the
	// transport before the first command; nil for a plain one.
	tls *TLSIdentity

	sqhd uint16 // owned by the queue's goroutine
	port uint16 // the port's ID (SetPort), set before the first command; 0: not said

	// localAP and peerAP are the connection's addresses (SetAddrs), set
	// before the first command. state and authInfo change when the
	// queue connects, authenticates and closes; control-plane reports
	// (stats.go) read them from other goroutines.
	localAP, peerAP netip.AddrPort
	state           atomic.Uint32 // QueueState
	entries         atomic.Uint32 // size, for reports
	authInfo        atomic.Pointer[AuthInfo]

	// fromFiles: the transport sends reads of at least this many bytes
	// from the file, on namespaces whose backend is a backend.FileSource
	// (SendFromFiles); 0: never.
	fromFiles int64
	fromMem   int64 // SendFromMem's max; 0: never

	// clk reads the clock for the I/O statistics once per batch where
	// the transport asks for it (BatchClock); owned by the queue's
	// goroutine.
	clk batchClock

	// gate counts the commands in the core (the transport's Begin and
	// End): a reservation preempted with abort waits for them.
	gate ExecGate
}

// Gate is the queue's ExecGate, which its transport runs every command
// through.
func (q *Queue) Gate() *ExecGate { return &q.gate }

// NewQueue returns a queue for a new connection. local is the address the
// host reached (for the discovery log of wildcard listeners).
func (t *Target) NewQueue(tr QueueTransport, local netip.Addr) *Queue {
	return t.NewQueueFor(tr, local, TransportInfo{TrType: nvmeof.TrTypeTCP, InlineData: InCapsuleData})
}

// NewQueueFor is NewQueue for a transport other than NVMe/TCP: info is
// what the controller the queue creates reports about it.
func (t *Target) NewQueueFor(tr QueueTransport, local netip.Addr, info TransportInfo) *Queue {
	return &Queue{t: t, tr: tr, info: info, local: local, log: t.log}
}

// SetPort tells the queue the port (AddPort's ID) its connection came in
// on, before its first command: on a DiscoveryOnly port it connects to
// the discovery controller only. Without it a queue may connect to any
// subsystem.
func (q *Queue) SetPort(id uint16) { q.port = id }

// SendFromFiles tells the queue, before its first command, that its
// transport sends a read's data from a file descriptor (Request.File):
// reads of min bytes or more on namespaces that can (buffered files,
// backend.FileSource) then leave their data in the page cache, and the
// transport sends it from there with sendfile(2), without the copy into
// a buffer and the copy from it into the socket. The transport runs such
// reads with ExecuteInPlace, before it takes a buffer.
func (q *Queue) SendFromFiles(min int) { q.fromFiles = int64(max(min, 1)) }

// SendFromMem tells the queue, before its first command, that its
// transport sends a read's Data once the command has completed, and
// holds nothing else to it: reads of less than max bytes of namespaces in
// memory (mem, backend.MemSource) then leave Data pointing at the
// namespace's memory, without the copy into a buffer. The transport runs
// reads with ExecuteInPlace, before it takes a buffer, and calls FileSent
// once the data is sent. Not where the transport reads the data twice (a
// data digest): a concurrent write could change it in between.
func (q *Queue) SendFromMem(max int) { q.fromMem = int64(max) }

// ID is the queue ID (0 for the admin queue); valid after Connect.
func (q *Queue) ID() uint16 { return q.id }

// Size is the number of entries the host asked for at Connect (0 before).
func (q *Queue) Size() int { return q.size }

// Connected reports whether the queue completed Connect.
func (q *Queue) Connected() bool { return q.connected }

// SQFlowControlDisabled reports whether the host disabled SQ flow control
// at Connect, which lets a transport skip response capsules after
// successful reads (NVMe/TCP C2HData SUCCESS flag).
func (q *Queue) SQFlowControlDisabled() bool { return q.sqFlowDisabled }

// InlineDataSize returns the in-capsule data the queue accepts.
func (q *Queue) InlineDataSize(ioInline int) int {
	if q.id == 0 {
		return AdminInlineData
	}
	return ioInline
}

// Transport returns what the queue was created with.
func (q *Queue) Transport() TransportInfo { return q.info }

// Controller returns the controller the queue belongs to, or nil before Connect.
func (q *Queue) Controller() *Controller { return q.ctrl }

// Closed tells the core the transport connection is gone. Losing the admin
// queue deletes the controller (and closes its other queues).
func (q *Queue) Closed() {
	q.EndBatch()
	c := q.ctrl
	if c == nil {
		return
	}
	q.state.Store(uint32(QueueDeactivating))
	if q.id == 0 {
		c.fatal(DeletedConnectionLost, errors.New("admin queue connection closed"))
		return
	}
	c.removeQueue(q)
	c.subsys.mu.Lock()
	delete(c.subsys.ioqs, q)
	c.subsys.mu.Unlock()
}

// Execute runs a command. The transport must have received all of a
// host-to-controller command's data into r.Data. Completion comes through
// the transport's Complete, usually before Execute returns.
func (q *Queue) Execute(r *Request) {
	q.begin(r)
	var st nvmeof.Status
	switch {
	case r.Cmd.Opcode() == nvmeof.OpFabrics:
		st = q.execFabrics(r)
	case !q.connected:
		st = nvmeof.StatusCommandSequenceError | nvmeof.StatusDNR
	case !q.authenticated():
		st = nvmeof.StatusAuthRequired | nvmeof.StatusDNR
	case q.id == 0:
		q.ctrl.subsys.adminCmds.Add(1)
		var held bool
		st, held = q.ctrl.execAdmin(q, r)
		if held {
			return // an Asynchronous Event Request, completed later
		}
	default:
		var held bool
		st, held = q.execIO(r)
		if held {
			return // a read or write in flight on the backend: IODone completes it
		}
	}
	q.finish(r, st)
}

// begin takes r off the submission queue: its response names it and the
// queue's new head.
func (q *Queue) begin(r *Request) {
	r.queue = q
	r.CloseAfter = nil
	r.Rsp.Reset()
	r.Rsp.SetCID(r.Cmd.CID())
	r.Rsp.SetSQID(q.id)
	if q.size > 0 {
		q.sqhd++
		if int(q.sqhd) >= q.size {
			q.sqhd = 0
		}
	}
	r.Rsp.SetSQHD(q.sqhd)
}

// Admit checks a command before its transport takes a data buffer for it
// (and, for a write, asks the host for the data): what the queue's state,
// the command and its namespace allow, so that a host cannot hold the
// buffer pool with commands that would fail anyway. It returns the status
// to fail the command with, or success. Execute checks all of it again.
func (q *Queue) Admit(r *Request) nvmeof.Status {
	op := r.Cmd.Opcode()
	dlen := uint64(r.Cmd.SGL().Length())
	if op == nvmeof.OpFabrics {
		// Connect carries its 1,024 bytes, authentication what TL or AL
		// says (4 KiB at most); the other fabrics commands carry none.
		switch ft := r.Cmd.FCType(); {
		case ft == nvmeof.FabricsAuthSend || ft == nvmeof.FabricsAuthRecv:
			return q.admitAuth(r, dlen)
		case ft == nvmeof.FabricsConnect && dlen == nvmeof.ConnectDataSize || dlen == 0:
			return nvmeof.StatusSuccess
		}
		return nvmeof.StatusDataSGLLengthInvalid | nvmeof.StatusDNR
	}
	if !q.connected {
		return nvmeof.StatusCommandSequenceError | nvmeof.StatusDNR
	}
	if !q.authenticated() {
		return nvmeof.StatusAuthRequired | nvmeof.StatusDNR
	}
	c := q.ctrl
	if q.id == 0 {
		if !c.adminOpcode(op) {
			return nvmeof.StatusInvalidOpcode | nvmeof.StatusDNR
		}
		return nvmeof.StatusSuccess
	}
	if !c.ready.Load() {
		return nvmeof.StatusCommandSequenceError | nvmeof.StatusDNR
	}
	switch op {
	case nvmeof.NVMRead, nvmeof.NVMWrite, nvmeof.NVMCompare, nvmeof.NVMDSM:
	case nvmeof.NVMResvRegister, nvmeof.NVMResvAcquire, nvmeof.NVMResvRelease, nvmeof.NVMResvReport:
		return admitResv(op, r.Cmd.CDW(10), dlen)
	default:
		return nvmeof.StatusInvalidOpcode | nvmeof.StatusDNR // carries no data
	}
	ns := c.subsys.ns.Load().get(r.Cmd.NSID())
	if ns == nil {
		return nvmeof.StatusInvalidNamespace | nvmeof.StatusDNR
	}
	if st := c.ana.state(ns.anaGroup); !st.Accessible() {
		return st.Status()
	}
	if op == nvmeof.NVMDSM {
		if nr := uint64(r.Cmd.CDW(10)&0xFF) + 1; dlen < nr*nvmeof.DSMRangeSize || dlen > 256*nvmeof.DSMRangeSize {
			return nvmeof.StatusDataSGLLengthInvalid | nvmeof.StatusDNR
		}
		return nvmeof.StatusSuccess
	}
	_, _, st := ns.dataRange(r, int64(dlen))
	return st
}

// finish sets r's status, logs an error and hands r back to the transport.
func (q *Queue) finish(r *Request, st nvmeof.Status) {
	r.SetStatus(st)
	if !st.OK() && q.ctrl != nil {
		q.ctrl.recordError(q.id, r, st)
	}
	q.tr.Complete(r)
}

func (q *Queue) execFabrics(r *Request) nvmeof.Status {
	switch r.Cmd.FCType() {
	case nvmeof.FabricsConnect:
		return q.connect(r)
	case nvmeof.FabricsPropertyGet, nvmeof.FabricsPropertySet:
		if !q.connected || q.id != 0 {
			return nvmeof.StatusInvalidField | nvmeof.StatusDNR
		}
		if !q.authenticated() {
			return nvmeof.StatusAuthRequired | nvmeof.StatusDNR
		}
		return q.ctrl.property(r)
	case nvmeof.FabricsAuthSend, nvmeof.FabricsAuthRecv:
		return q.execAuth(r)
	case nvmeof.FabricsDisconnect:
		if !q.connected {
			return nvmeof.StatusCommandSequenceError | nvmeof.StatusDNR
		}
		// The transport closes the connection after sending the response.
		return nvmeof.StatusSuccess
	}
	return nvmeof.StatusInvalidOpcode | nvmeof.StatusDNR
}

func (q *Queue) connect(r *Request) nvmeof.Status {
	t := q.t
	fail := func(st nvmeof.Status, inData bool, off uint16, format string, args ...any) nvmeof.Status {
		t.Stats.ConnectErrors.Add(1)
		if st.Code() == nvmeof.StatusConnectInvalidParam.Code() || st.Code() == nvmeof.StatusConnectInvalidHost.Code() {
			r.Rsp.SetDW0(nvmeof.ConnectInvalidParam(inData, off))
		}
		q.log.Warn("connect refused", "reason", fmt.Sprintf(format, args...), "status", st.String())
		return st | nvmeof.StatusDNR
	}
	if q.connected {
		return fail(nvmeof.StatusCommandSequenceError, false, 0, "queue already connected")
	}
	if r.Cmd.RecFmt() != 0 {
		return fail(nvmeof.StatusConnectIncompatible, false, 40, "record format %d", r.Cmd.RecFmt())
	}
	if len(r.Data) < nvmeof.ConnectDataSize {
		return fail(nvmeof.StatusDataSGLLengthInvalid, false, 0, "connect data %d bytes", len(r.Data))
	}
	d, err := nvmeof.DecodeConnectData(r.Data)
	if err != nil {
		return fail(nvmeof.StatusConnectInvalidParam, true, nvmeof.ConnectDataOffSubNQN, "%v", err)
	}
	qid, sqsize := r.Cmd.QID(), r.Cmd.SQSize()
	log := q.log.With("subsys", d.SubNQN, "host", d.HostNQN, "qid", qid)
	q.log = log
	if id := q.tls; id != nil {
		// The PSK proved who the host is: it must be who it says.
		if d.HostNQN != id.HostNQN {
			return fail(nvmeof.StatusConnectInvalidHost, true, nvmeof.ConnectDataOffHostNQN, "host NQN %q is not the %q of the TLS PSK identity: a host must connect with its own key", d.HostNQN, id.HostNQN)
		}
		if d.SubNQN != id.SubNQN {
			return fail(nvmeof.StatusConnectInvalidHost, true, nvmeof.ConnectDataOffSubNQN, "subsystem %q is not the %q of the TLS PSK identity: the host must use the key made for this subsystem", d.SubNQN, id.SubNQN)
		}
	}
	if d.SubNQN != nvmeof.DiscoveryNQN && t.discoveryOnly(q.port) {
		return fail(nvmeof.StatusConnectInvalidParam, true, nvmeof.ConnectDataOffSubNQN, "subsystem %q: this port serves discovery only: connect to a port the discovery log lists", d.SubNQN)
	}
	s := t.Subsystem(d.SubNQN)
	if s == nil {
		return fail(nvmeof.StatusConnectInvalidParam, true, nvmeof.ConnectDataOffSubNQN, "subsystem %q not found", d.SubNQN)
	}
	allowed, keys := s.hostAccess(d.HostNQN)
	if !allowed {
		return fail(nvmeof.StatusConnectInvalidHost, true, nvmeof.ConnectDataOffHostNQN, "host %q not allowed on %s", d.HostNQN, d.SubNQN)
	}
	if q.tls != nil {
		// As the Linux target: TLS authenticated the host.
		keys = nil
	} else if _, ok := s.hostTLS(d.HostNQN); ok && !s.discovery {
		return fail(nvmeof.StatusConnectInvalidHost, true, nvmeof.ConnectDataOffHostNQN, "host %q has a tls_key on %s, so it must connect over TLS (nvme connect --tls), on a listener with tls=required or tls=optional", d.HostNQN, d.SubNQN)
	}
	if sqsize == 0 || int(sqsize) >= t.opts.MaxQueueDepth {
		return fail(nvmeof.StatusConnectInvalidParam, false, 44, "SQSIZE %d outside 1..%d", sqsize, t.opts.MaxQueueDepth-1)
	}
	if qid == 0 && int(sqsize) >= MaxAdminQueueDepth {
		return fail(nvmeof.StatusConnectInvalidParam, false, 44, "admin SQSIZE %d outside 1..%d", sqsize, MaxAdminQueueDepth-1)
	}
	if qid == 0 {
		if d.CntlID != nvmeof.CntlIDDynamic {
			return fail(nvmeof.StatusConnectInvalidParam, true, nvmeof.ConnectDataOffCntlID, "CNTLID %#x: only the dynamic controller model (0xFFFF) is supported", d.CntlID)
		}
		// The host's earlier connections may still have writes in the core
		// (a hung drive the host gave up on): a write it sends again on
		// the new controller must not be overtaken by the old one.
		s.waitClosing(d.HostID, log)
		c, err := newController(t, s, q, d, time.Duration(r.Cmd.KATO())*time.Millisecond)
		if err != nil {
			return fail(nvmeof.StatusConnectCtrlBusy, false, 0, "%v", err)
		}
		q.ctrl = c
		q.log = log.With("ctrl", c.id)
	} else {
		c := t.controller(d.CntlID)
		if c == nil || c.subsys != s || c.hostNQN != d.HostNQN || c.hostID != d.HostID {
			return fail(nvmeof.StatusConnectInvalidParam, true, nvmeof.ConnectDataOffCntlID, "no controller %d of this host on %s", d.CntlID, d.SubNQN)
		}
		if err := c.addQueue(q, qid); err != nil {
			return fail(nvmeof.StatusConnectInvalidParam, false, 42, "%v", err)
		}
		// ioqs' readers (waitHosts, waitClosing) look at q.ctrl under
		// s.mu: it is set before q is there.
		s.mu.Lock()
		q.ctrl = c
		s.ioqs[q] = struct{}{}
		s.mu.Unlock()
		q.log = log.With("ctrl", c.id)
	}
	q.id = qid
	q.size = int(sqsize) + 1
	q.sqhd = 0
	q.sqFlowDisabled = r.Cmd.CAttr()&nvmeof.CAttrDisableSQFlow != 0
	q.connected = true
	q.startAuth(d.SubNQN, d.HostNQN, keys)
	if q.authRequired && qid == 0 {
		q.ctrl.pauseKeepAlive()
	}
	// Counted before the state changes: QueueTotals reads the counts
	// after the states.
	if qid == 0 {
		t.Stats.AdminQueues.Add(1)
	} else {
		t.Stats.IOQueues.Add(1)
	}
	q.ctrl.host.queues.Add(1)
	q.entries.Store(uint32(q.size))
	if q.authRequired {
		q.state.Store(uint32(QueueAuthenticating))
	} else {
		q.state.Store(uint32(QueueEnabled))
	}
	r.Rsp.SetSQID(qid)
	r.Rsp.SetSQHD(0)
	dw0 := uint32(q.ctrl.id)
	if q.authRequired {
		dw0 |= nvmeof.ConnectAuthATR
	}
	r.Rsp.SetDW0(dw0)
	t.Stats.Connects.Add(1)
	if qid == 0 {
		q.log.Info("admin queue connected", "sqsize", q.size, "kato", time.Duration(r.Cmd.KATO())*time.Millisecond, "authenticate", q.authRequired, "tls", q.tls != nil)
	} else {
		q.log.Debug("I/O queue connected", "sqsize", q.size, "sq_flow_control", !q.sqFlowDisabled)
	}
	return nvmeof.StatusSuccess
}
