package tcppeer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"syscall"
	"testing"

	"github.com/flashpath/flashpath/internal/dhchap"
	"github.com/flashpath/flashpath/internal/tlspsk"
	"github.com/flashpath/flashpath/nvmeof"
)

// Controller is a small NVMe/TCP controller for transcript-style tests of
// a host: one goroutine per connection, a memory namespace (NSID 1), and
// knobs for the transport parameters the host must honour. It checks what
// the host sends (digests, PDO alignment, R2T discipline) and fails the
// test with every violation it saw when the test ends.
type Controller struct {
	t  testing.TB
	ln net.Listener

	// Knobs, set before the first connection (NewController's mut).
	SubNQN    string
	Hosts     []string // allowed host NQNs; empty: any
	CPDA      uint8
	MaxH2C    uint32
	IOCCSZ    uint32
	MDTS      uint8
	R2TChunk  uint32 // bytes per R2T (0: the whole transfer)
	C2HChunk  uint32 // bytes per C2HData (0: the whole transfer)
	Success   bool   // use the SUCCESS flag instead of a response capsule
	BadDDGST  bool   // corrupt the data digest of C2HData PDUs
	KillFlush bool   // a Flush closes its connection instead of completing
	BS        int    // logical block size: 512 or 4096
	// Auth makes every queue authenticate with DH-HMAC-CHAP before
	// anything else, as SPDK's target does it: an Authentication Receive
	// returns just the message, with the SUCCESS flag, short of AL.
	Auth *dhchap.ControllerConfig
	// TLS makes every connection start with a TLS 1.3 handshake, whose
	// server finds the key of a PSK identity with it; the identities
	// chosen are listed by TLSIdentities.
	TLS    func(identity string) (tlspsk.Key, bool)
	Data   []byte // the namespace
	genctr uint64

	mu     sync.Mutex
	errs   []string     // guarded by mu
	cntlID uint16       // guarded by mu
	aer    []aerPending // guarded by mu: posted AERs
	events int          // guarded by mu: events waiting for an AER
	wg     sync.WaitGroup
	conns  []net.Conn // guarded by mu
	tlsIDs []string   // guarded by mu: identities of the TLS handshakes
}

type aerPending struct {
	fc  *ctrlConn
	cid uint16
}

// NewController listens on 127.0.0.1 with the knobs mut sets (mut may be
// nil) and serves until the test ends.
func NewController(t testing.TB, mut func(*Controller)) *Controller {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &Controller{
		t: t, ln: ln, SubNQN: "nqn.2024-01.io.flashpath:fake",
		MaxH2C: 16384, IOCCSZ: (8192 + 64) / 16, MDTS: 8, BS: 512,
		Data: make([]byte, 4<<20), genctr: 1,
	}
	if mut != nil {
		mut(f)
	}
	f.wg.Add(1)
	go f.serve()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, e := range f.errs {
			t.Errorf("fake target saw a host protocol violation: %s", e)
		}
	})
	return f
}

// Close stops accepting connections (those open stay until the test ends).
func (f *Controller) Close() { f.ln.Close() }

// TLSIdentities returns the PSK identities of the TLS handshakes that
// succeeded, in order.
func (f *Controller) TLSIdentities() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.tlsIDs)
}

// Addr is the controller's host:port.
func (f *Controller) Addr() string { return f.ln.Addr().String() }

func (f *Controller) violation(format string, args ...any) {
	f.mu.Lock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
	f.mu.Unlock()
}

func (f *Controller) serve() {
	defer f.wg.Done()
	for {
		nc, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.conns = append(f.conns, nc)
		f.mu.Unlock()
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer nc.Close()
			if f.TLS != nil {
				tc, err := tlspsk.Server(nc, &tlspsk.Config{Lookup: f.TLS})
				if err != nil {
					return // the host sees the failed handshake
				}
				f.mu.Lock()
				f.tlsIDs = append(f.tlsIDs, tc.Identity())
				f.mu.Unlock()
				nc = tc
			}
			// A host that fails the connection resets it: that is no violation.
			fc := &ctrlConn{f: f, nc: nc, br: bufio.NewReader(nc), pending: map[uint16]*ctrlWrite{}}
			// run returns only when the connection ends.
			if err := fc.run(); !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.ECONNRESET) {
				f.violation("%v", err)
			}
		}()
	}
}

type ctrlConn struct {
	f         *Controller
	nc        net.Conn
	br        *bufio.Reader
	wmu       sync.Mutex
	in, out   Framing // what the host sends (the controller's CPDA), what it receives
	qid       uint16
	discovery bool
	cc, csts  uint32
	pending   map[uint16]*ctrlWrite
	auth      *dhchap.Controller // with Controller.Auth, from Connect on
}

type ctrlWrite struct {
	sqe   nvmeof.SQE
	buf   []byte
	got   uint32 // bytes received
	asked uint32 // bytes solicited
	ttag  uint16
}

func (c *ctrlConn) run() error {
	var ic [nvmeof.ICReqSize]byte
	if _, err := io.ReadFull(c.br, ic[:]); err != nil {
		return err
	}
	req, err := nvmeof.DecodeICReq(ic[:])
	if err != nil {
		return fmt.Errorf("ICReq: %w", err)
	}
	hd, dd := req.Digest&nvmeof.DigestHeader != 0, req.Digest&nvmeof.DigestData != 0
	c.in = Framing{HDigest: hd, DDigest: dd, PDA: c.f.CPDA}
	c.out = Framing{HDigest: hd, DDigest: dd}
	resp := nvmeof.ICResp{CPDA: c.f.CPDA, Digest: req.Digest, MaxData: c.f.MaxH2C}
	resp.Encode(ic[:])
	if _, err := c.nc.Write(ic[:]); err != nil {
		return err
	}
	for {
		if err := c.pdu(); err != nil {
			return err
		}
	}
}

// pdu reads and handles one PDU from the host.
func (c *ctrlConn) pdu() error {
	h, pdu, data, err := c.in.ReadChecked(c.br)
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) {
			return err
		}
		return fmt.Errorf("host %w", err)
	}
	switch h.Type {
	case nvmeof.PDUCapsuleCmd:
		var sqe nvmeof.SQE
		copy(sqe[:], pdu[nvmeof.CHSize:])
		return c.command(&sqe, data)
	case nvmeof.PDUH2CData:
		dp, _ := nvmeof.DecodeDataPDU(pdu)
		w := c.pending[dp.CCCID]
		if w == nil || dp.TTag != w.ttag {
			return fmt.Errorf("H2CData for cid %d ttag %d not solicited", dp.CCCID, dp.TTag)
		}
		if dp.Offset != w.got || dp.Length != uint32(len(data)) || w.got+dp.Length > w.asked {
			return fmt.Errorf("H2CData cid %d offset %d length %d: received %d, solicited %d", dp.CCCID, dp.Offset, dp.Length, w.got, w.asked)
		}
		if dp.Length > c.f.MaxH2C {
			return fmt.Errorf("H2CData of %d bytes exceeds MAXH2CDATA %d", dp.Length, c.f.MaxH2C)
		}
		copy(w.buf[dp.Offset:], data)
		w.got += dp.Length
		last := h.Flags&nvmeof.FlagDataLast != 0
		if last != (w.got == w.asked) {
			return fmt.Errorf("H2CData cid %d: LAST_PDU %v after %d of %d solicited bytes", dp.CCCID, last, w.got, w.asked)
		}
		if w.got < w.asked {
			return nil
		}
		if w.got < uint32(len(w.buf)) {
			return c.solicit(dp.CCCID, w)
		}
		delete(c.pending, dp.CCCID)
		return c.execIO(&w.sqe, w.buf)
	case nvmeof.PDUH2CTermReq:
		return fmt.Errorf("host sent H2CTermReq: % x", pdu)
	}
	return fmt.Errorf("unexpected host PDU type %#x", h.Type)
}

func (c *ctrlConn) solicit(cid uint16, w *ctrlWrite) error {
	n := uint32(len(w.buf)) - w.asked
	if c.f.R2TChunk > 0 {
		n = min(n, c.f.R2TChunk)
	}
	w.ttag++
	b := DataHdr(nvmeof.PDUR2T, 0, nvmeof.DataPDU{CCCID: cid, TTag: w.ttag, Offset: w.asked, Length: n})
	w.asked += n
	return c.send(b, nil)
}

// send writes a PDU: header, data, digests.
func (c *ctrlConn) send(hdr, data []byte) error {
	b := c.out.PDU(hdr, data)
	if c.f.BadDDGST && hdr[0] == nvmeof.PDUC2HData && c.out.DDigest && len(data) > 0 {
		b[len(b)-1] ^= 0xFF
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_, err := c.nc.Write(b)
	return err
}

func (c *ctrlConn) respond(cid uint16, st nvmeof.Status, dw0, dw1 uint32) error {
	b := CapsuleRsp(func(cqe *nvmeof.CQE) {
		cqe.SetCID(cid)
		cqe.SetDW0(dw0)
		cqe.SetDW1(dw1)
		cqe.SetSQID(c.qid)
		cqe.SetStatus(st)
	})
	return c.send(b, nil)
}

// sendData sends buf in C2HData PDUs, then the response.
func (c *ctrlConn) sendData(cid uint16, buf []byte) error { return c.sendDataAs(cid, buf, c.f.Success) }

// sendDataAs is sendData, with the SUCCESS flag standing in for the
// response when success is set.
func (c *ctrlConn) sendDataAs(cid uint16, buf []byte, success bool) error {
	chunk := uint32(len(buf))
	if c.f.C2HChunk > 0 {
		chunk = c.f.C2HChunk
	}
	for off := uint32(0); off < uint32(len(buf)); off += chunk {
		n := min(chunk, uint32(len(buf))-off)
		flags := uint8(0)
		if off+n == uint32(len(buf)) {
			flags |= nvmeof.FlagDataLast
			if success {
				flags |= nvmeof.FlagDataSuccess
			}
		}
		b := DataHdr(nvmeof.PDUC2HData, flags, nvmeof.DataPDU{CCCID: cid, Offset: off, Length: n})
		if err := c.send(b, buf[off:off+n]); err != nil {
			return err
		}
	}
	if success {
		return nil
	}
	return c.respond(cid, 0, 0, 0)
}

func (c *ctrlConn) command(sqe *nvmeof.SQE, data []byte) error {
	cid := sqe.CID()
	if sqe.PSDT() != nvmeof.PSDTSGLMptrBuf {
		return fmt.Errorf("cid %d: PSDT %d, want SGL", cid, sqe.PSDT())
	}
	sgl := sqe.SGL()
	if len(data) > 0 && (sgl.ID() != nvmeof.SGLInCapsule || sgl.Length() != uint32(len(data))) {
		return fmt.Errorf("cid %d: in-capsule data of %d bytes with SGL %#x length %d", cid, len(data), sgl.ID(), sgl.Length())
	}
	if len(data) == 0 && sgl.Length() > 0 && sgl.ID() != nvmeof.SGLTransport {
		return fmt.Errorf("cid %d: SGL %#x for transport data", cid, sgl.ID())
	}
	if sqe.Opcode() == nvmeof.OpFabrics {
		return c.fabrics(sqe, data)
	}
	if c.qid == 0 {
		return c.adminCmd(sqe, data)
	}
	switch sqe.Opcode() {
	case nvmeof.NVMWrite, nvmeof.NVMCompare, nvmeof.NVMDSM:
		if len(data) > 0 {
			if len(data) > int(c.f.IOCCSZ*16-64) {
				return fmt.Errorf("cid %d: %d bytes in capsule exceed IOCCSZ", cid, len(data))
			}
			return c.execIO(sqe, data)
		}
		w := &ctrlWrite{sqe: *sqe, buf: make([]byte, sgl.Length())}
		c.pending[cid] = w
		return c.solicit(cid, w)
	}
	return c.execIO(sqe, nil)
}

func (c *ctrlConn) fabrics(sqe *nvmeof.SQE, data []byte) error {
	cid := sqe.CID()
	switch sqe.FCType() {
	case nvmeof.FabricsConnect:
		cd, err := nvmeof.DecodeConnectData(data)
		if err != nil {
			return err
		}
		c.qid = sqe.QID()
		c.discovery = cd.SubNQN == nvmeof.DiscoveryNQN
		var atr uint32
		if c.f.Auth != nil && !c.discovery {
			c.auth, atr = dhchap.NewController(*c.f.Auth), nvmeof.ConnectAuthATR
		}
		if !c.discovery && cd.SubNQN != c.f.SubNQN {
			return c.respond(cid, nvmeof.StatusConnectInvalidParam, nvmeof.ConnectInvalidParam(true, nvmeof.ConnectDataOffSubNQN), 0)
		}
		if len(c.f.Hosts) > 0 && !c.discovery {
			ok := false
			for _, h := range c.f.Hosts {
				ok = ok || h == cd.HostNQN
			}
			if !ok {
				return c.respond(cid, nvmeof.StatusConnectInvalidHost|nvmeof.StatusDNR, 0, 0)
			}
		}
		c.f.mu.Lock()
		defer c.f.mu.Unlock()
		if c.qid == 0 {
			if cd.CntlID != nvmeof.CntlIDDynamic {
				return fmt.Errorf("admin connect with cntlid %#x", cd.CntlID)
			}
			c.f.cntlID++
			return c.respond(cid, 0, uint32(c.f.cntlID)|atr, 0)
		}
		if cd.CntlID != c.f.cntlID {
			return fmt.Errorf("I/O queue %d connect with cntlid %d, admin got %d", c.qid, cd.CntlID, c.f.cntlID)
		}
		return c.respond(cid, 0, uint32(cd.CntlID)|atr, 0)
	case nvmeof.FabricsAuthSend:
		if c.auth == nil {
			return c.respond(cid, nvmeof.StatusInvalidField|nvmeof.StatusDNR, 0, 0)
		}
		if c.auth.Send(data) {
			return fmt.Errorf("authentication: %v", c.auth.Err())
		}
		return c.respond(cid, 0, 0, 0)
	case nvmeof.FabricsAuthRecv:
		var msg []byte
		if c.auth != nil {
			msg = c.auth.Receive()
		}
		if msg == nil {
			return c.respond(cid, nvmeof.StatusCommandSequenceError|nvmeof.StatusDNR, 0, 0)
		}
		return c.sendDataAs(cid, msg, true)
	case nvmeof.FabricsPropertyGet:
		var v uint64
		switch sqe.PropOffset() {
		case nvmeof.PropCAP:
			v = uint64(nvmeof.MakeCAP(1023, 2))
		case nvmeof.PropVS:
			v = nvmeof.VS1_4
		case nvmeof.PropCC:
			v = uint64(c.cc)
		case nvmeof.PropCSTS:
			v = uint64(c.csts)
		}
		return c.respond(cid, 0, uint32(v), uint32(v>>32))
	case nvmeof.FabricsPropertySet:
		if sqe.PropOffset() == nvmeof.PropCC {
			c.cc = uint32(sqe.PropValue())
			c.csts = 0
			if c.cc&nvmeof.CCEnable != 0 {
				c.csts |= nvmeof.CSTSReady
			}
			if c.cc&nvmeof.CCShnMask != 0 {
				c.csts |= nvmeof.CSTSShstComplete
			}
		}
		return c.respond(cid, 0, 0, 0)
	}
	return c.respond(cid, nvmeof.StatusInvalidOpcode, 0, 0)
}

func (c *ctrlConn) adminCmd(sqe *nvmeof.SQE, data []byte) error {
	cid := sqe.CID()
	b := make([]byte, nvmeof.IdentifySize)
	switch sqe.Opcode() {
	case nvmeof.AdminIdentify:
		switch sqe.CNS() {
		case nvmeof.CNSController:
			id := nvmeof.IdentifyController{Model: "fake", Serial: "1", Firmware: "1.0", MDTS: c.f.MDTS,
				CntlID: c.f.cntlID, Version: nvmeof.VS1_4, OAES: nvmeof.OAESNamespaceAttr, CntrlType: nvmeof.CtrlTypeIO,
				KAS: 1, NN: 1, SQES: 0x66, CQES: 0x44, ONCS: nvmeof.ONCSCompare | nvmeof.ONCSDSM | nvmeof.ONCSWriteZeroes,
				SGLS: nvmeof.SGLSSupported, SubNQN: c.f.SubNQN, IOCCSZ: c.f.IOCCSZ, IORCSZ: 1, AERL: 3}
			if c.discovery {
				id.CntrlType = nvmeof.CtrlTypeDiscovery
				id.SubNQN = nvmeof.DiscoveryNQN
			}
			id.Encode(b)
		case nvmeof.CNSNamespace:
			if sqe.NSID() != 1 {
				return c.respond(cid, nvmeof.StatusInvalidNamespace|nvmeof.StatusDNR, 0, 0)
			}
			lbads := uint8(9)
			if c.f.BS == 4096 {
				lbads = 12
			}
			n := uint64(len(c.f.Data) / c.f.BS)
			ns := nvmeof.IdentifyNamespace{NSZE: n, NCAP: n, NUSE: n, DLFEAT: nvmeof.DLFEATZeroes}
			ns.LBAF[0].LBADS = lbads
			ns.Encode(b)
		case nvmeof.CNSActiveNSList:
			nvmeof.EncodeNSList(b, []uint32{1}, sqe.NSID())
		case nvmeof.CNSNSDescList:
			nvmeof.EncodeNSDescList(b, []nvmeof.NSDescriptor{{Type: nvmeof.NIDTUUID, ID: bytes.Repeat([]byte{7}, 16)}})
		default:
			return c.respond(cid, nvmeof.StatusInvalidField|nvmeof.StatusDNR, 0, 0)
		}
		return c.sendData(cid, b)
	case nvmeof.AdminSetFeatures:
		if sqe.FID() == nvmeof.FeatNumQueues {
			return c.respond(cid, 0, 7|7<<16, 0)
		}
		return c.respond(cid, 0, 0, 0)
	case nvmeof.AdminGetFeatures:
		return c.respond(cid, 0, 0, 0)
	case nvmeof.AdminKeepAlive:
		return c.respond(cid, 0, 0, 0)
	case nvmeof.AdminAsyncEvent:
		c.f.mu.Lock()
		c.f.aer = append(c.f.aer, aerPending{c, cid})
		c.f.mu.Unlock()
		c.f.fireAER()
		return nil
	case nvmeof.AdminGetLogPage:
		n := sqe.LogNumDwords() * 4
		off := sqe.LogOffset()
		var page []byte
		switch sqe.LID() {
		case nvmeof.LogDiscovery:
			entries := []nvmeof.DiscoveryEntry{{TrType: nvmeof.TrTypeTCP, AdrFam: nvmeof.AdrFamIPv4, SubType: nvmeof.SubTypeNVM,
				TReq: nvmeof.TReqSecureChannelNotRequired, PortID: 1, CntlID: 0xFFFF, ASQSZ: 32,
				TrSvcID: "4420", TrAddr: "127.0.0.1", SubNQN: c.f.SubNQN}}
			page = make([]byte, nvmeof.DiscoveryLogSize(len(entries)))
			nvmeof.EncodeDiscoveryLog(page, c.f.genctr, entries)
		case nvmeof.LogChangedNSList:
			page = make([]byte, nvmeof.ChangedNSListSize)
			nvmeof.EncodeChangedNSList(page, []uint32{1})
		default:
			page = make([]byte, 4096)
		}
		out := make([]byte, n)
		if off < uint64(len(page)) {
			copy(out, page[off:])
		}
		return c.sendData(cid, out)
	}
	return c.respond(cid, nvmeof.StatusInvalidOpcode|nvmeof.StatusDNR, 0, 0)
}

func (c *ctrlConn) execIO(sqe *nvmeof.SQE, data []byte) error {
	cid := sqe.CID()
	f := c.f
	bs := uint64(f.BS)
	off := sqe.SLBA() * bs
	n := (uint64(sqe.NLB()) + 1) * bs
	inRange := off+n <= uint64(len(f.Data))
	sglLen := uint64(sqe.SGL().Length())
	switch sqe.Opcode() {
	case nvmeof.NVMRead:
		if !inRange {
			return c.respond(cid, nvmeof.StatusLBAOutOfRange|nvmeof.StatusDNR, 0, 0)
		}
		if sglLen != n {
			return c.respond(cid, nvmeof.StatusDataSGLLengthInvalid|nvmeof.StatusDNR, 0, 0)
		}
		f.mu.Lock()
		buf := bytes.Clone(f.Data[off : off+n])
		f.mu.Unlock()
		return c.sendData(cid, buf)
	case nvmeof.NVMWrite, nvmeof.NVMCompare:
		if !inRange || uint64(len(data)) != n {
			return c.respond(cid, nvmeof.StatusLBAOutOfRange|nvmeof.StatusDNR, 0, 0)
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if sqe.Opcode() == nvmeof.NVMCompare {
			if !bytes.Equal(f.Data[off:off+n], data) {
				return c.respond(cid, nvmeof.StatusCompareFailure|nvmeof.StatusDNR, 0, 0)
			}
			return c.respond(cid, 0, 0, 0)
		}
		copy(f.Data[off:], data)
		return c.respond(cid, 0, 0, 0)
	case nvmeof.NVMWriteZeroes:
		if !inRange {
			return c.respond(cid, nvmeof.StatusLBAOutOfRange|nvmeof.StatusDNR, 0, 0)
		}
		f.mu.Lock()
		clear(f.Data[off : off+n])
		f.mu.Unlock()
		return c.respond(cid, 0, 0, 0)
	case nvmeof.NVMDSM:
		for i := 0; i < int(sqe.CDW(10)&0xFF)+1; i++ {
			r, err := nvmeof.DecodeDSMRange(data, i)
			if err != nil {
				return err
			}
			o, l := r.SLBA*bs, uint64(r.NLB)*bs
			if o+l > uint64(len(f.Data)) {
				return c.respond(cid, nvmeof.StatusLBAOutOfRange|nvmeof.StatusDNR, 0, 0)
			}
			f.mu.Lock()
			clear(f.Data[o : o+l])
			f.mu.Unlock()
		}
		return c.respond(cid, 0, 0, 0)
	case nvmeof.NVMFlush:
		if f.KillFlush {
			return net.ErrClosed // the connection ends here, as if the target crashed
		}
		return c.respond(cid, 0, 0, 0)
	}
	return c.respond(cid, nvmeof.StatusInvalidOpcode|nvmeof.StatusDNR, 0, 0)
}

// NSChanged queues a namespace attribute notice for the next AER.
func (f *Controller) NSChanged() {
	f.mu.Lock()
	f.events++
	f.mu.Unlock()
	f.fireAER()
}

// fireAER completes posted AERs while events wait.
func (f *Controller) fireAER() {
	f.mu.Lock()
	n := min(f.events, len(f.aer))
	aers := f.aer[:n]
	f.aer = f.aer[n:]
	f.events -= n
	f.mu.Unlock()
	for _, a := range aers {
		a.fc.respond(a.cid, 0, nvmeof.AsyncEventDW0(nvmeof.AEReasonNotice, nvmeof.AENoticeNSAttrChanged, nvmeof.LogChangedNSList), 0)
	}
}
