package tcppeer

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/flashpath/flashpath/nvmeof"
)

// Host is a hand-driven NVMe/TCP host connection: a test writes the
// bytes it wants, well-formed or not, and reads what the target answers.
// Its methods fail the test on errors it does not expect.
type Host struct {
	T  testing.TB
	NC net.Conn
	// Framing is what Init agreed (the controller's CPDA applies to the
	// PDUs this host sends).
	Framing
	cid uint16
}

// Dial connects to a target at addr (host:port). A deadline of 30 s on
// the connection is a safety net against a hung target, not a
// synchronisation device.
func Dial(t testing.TB, addr string) *Host {
	t.Helper()
	return DialFrom(t, addr, netip.Addr{})
}

// DialFrom is Dial from a local address (the zero Addr: any): over
// loopback, 127.0.0.2, .3 ... are other hosts to the target.
func DialFrom(t testing.TB, addr string, local netip.Addr) *Host {
	t.Helper()
	var d net.Dialer
	if local.IsValid() {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(local, 0))
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { nc.Close() })
	return &Host{T: t, NC: nc}
}

// Write sends b as it is.
func (h *Host) Write(b []byte) {
	h.T.Helper()
	if _, err := h.NC.Write(b); err != nil {
		h.T.Fatalf("write: %v", err)
	}
}

// ICReqBytes encodes an ICReq.
func ICReqBytes(req nvmeof.ICReq) []byte {
	b := make([]byte, nvmeof.ICReqSize)
	req.Encode(b)
	return b
}

// Init runs ICReq/ICResp asking for the given digests.
func (h *Host) Init(hdgst, ddgst bool) {
	h.T.Helper()
	var dg uint8
	if hdgst {
		dg |= nvmeof.DigestHeader
	}
	if ddgst {
		dg |= nvmeof.DigestData
	}
	h.Write(ICReqBytes(nvmeof.ICReq{Digest: dg}))
	hd, b := h.ReadPDU()
	if hd.Type != nvmeof.PDUICResp {
		h.T.Fatalf("got PDU type %#x, want ICResp", hd.Type)
	}
	resp, err := nvmeof.DecodeICResp(b)
	if err != nil {
		h.T.Fatal(err)
	}
	if resp.Digest != dg {
		h.T.Fatalf("ICResp digest %#x, asked %#x", resp.Digest, dg)
	}
	h.Framing = Framing{HDigest: hdgst, DDigest: ddgst, PDA: resp.CPDA}
}

// Capsule encodes a command; data, when set, goes in the capsule.
func (h *Host) Capsule(sqe nvmeof.SQE, data []byte) []byte {
	return h.PDU(CapsuleCmd(&sqe), data)
}

// H2CData encodes the last (or only) H2CData PDU of a transfer.
func (h *Host) H2CData(cid, ttag uint16, off uint32, data []byte) []byte {
	return h.PDU(DataHdr(nvmeof.PDUH2CData, nvmeof.FlagDataLast, nvmeof.DataPDU{CCCID: cid, TTag: ttag, Offset: off, Length: uint32(len(data))}), data)
}

// ReadPDU reads one whole PDU and returns its header and bytes.
func (h *Host) ReadPDU() (nvmeof.Header, []byte) {
	h.T.Helper()
	hd, b, err := ReadPDU(h.NC)
	if err != nil {
		h.T.Fatalf("read PDU: %v", err)
	}
	return hd, b
}

// TryReadPDU is ReadPDU returning the error.
func (h *Host) TryReadPDU() (nvmeof.Header, []byte, error) { return ReadPDU(h.NC) }

// NextCID returns a fresh command ID.
func (h *Host) NextCID() uint16 { h.cid++; return h.cid }

// ConnectAdmin sends Fabrics Connect for the admin queue with in-capsule
// data and returns the controller ID and the status.
func (h *Host) ConnectAdmin(subnqn, hostnqn string, hostID [16]byte, kato uint32) (uint16, nvmeof.Status) {
	h.T.Helper()
	return h.connect(0, 31, kato, nvmeof.ConnectData{HostID: hostID, CntlID: nvmeof.CntlIDDynamic, SubNQN: subnqn, HostNQN: hostnqn})
}

// ConnectIO sends Fabrics Connect for I/O queue qid of sqsize+1 entries
// joining controller cntlID.
func (h *Host) ConnectIO(qid, sqsize, cntlID uint16, subnqn, hostnqn string, hostID [16]byte) nvmeof.Status {
	h.T.Helper()
	_, st := h.connect(qid, sqsize, 0, nvmeof.ConnectData{HostID: hostID, CntlID: cntlID, SubNQN: subnqn, HostNQN: hostnqn})
	return st
}

func (h *Host) connect(qid, sqsize uint16, kato uint32, cd nvmeof.ConnectData) (uint16, nvmeof.Status) {
	h.T.Helper()
	h.SendConnect(qid, sqsize, kato, cd)
	cqe := h.ReadRsp()
	return uint16(cqe.DW0()), cqe.Status()
}

// SendConnect sends Fabrics Connect for queue qid with in-capsule data,
// leaving its response unread.
func (h *Host) SendConnect(qid, sqsize uint16, kato uint32, cd nvmeof.ConnectData) {
	h.T.Helper()
	var sqe nvmeof.SQE
	sqe.SetConnect(qid, sqsize, kato)
	sqe.SetCID(h.NextCID())
	sqe.SGL().SetDataBlock(nvmeof.SGLInCapsule, 0, nvmeof.ConnectDataSize)
	data := make([]byte, nvmeof.ConnectDataSize)
	if err := cd.Encode(data); err != nil {
		h.T.Fatal(err)
	}
	h.Write(h.Capsule(sqe, data))
}

// ReadRsp reads PDUs up to the next response capsule.
func (h *Host) ReadRsp() nvmeof.CQE {
	h.T.Helper()
	for range 1000 {
		hd, b := h.ReadPDU()
		switch hd.Type {
		case nvmeof.PDUCapsuleRsp:
			return *nvmeof.CQEView(b[nvmeof.CHSize:])
		case nvmeof.PDUC2HTermReq:
			tr, _ := nvmeof.DecodeTermReq(b)
			h.T.Fatalf("target terminated the connection: FES %#x FEI %d", tr.FES, tr.FEI)
		}
	}
	h.T.Fatal("no response capsule in 1000 PDUs")
	return nvmeof.CQE{}
}

// ExpectTermReq reads PDUs until a C2HTermReq, checks its FES and that the
// target then closes the connection.
func (h *Host) ExpectTermReq(fes uint16) nvmeof.TermReq {
	h.T.Helper()
	for range 10000 {
		hd, b, err := h.TryReadPDU()
		if err != nil {
			h.T.Fatalf("connection ended (%v) without a C2HTermReq (want FES %#x)", err, fes)
		}
		if hd.Type != nvmeof.PDUC2HTermReq {
			continue
		}
		if hd.HLen != nvmeof.TermReqHLen || hd.PLen < nvmeof.TermReqHLen || hd.PLen > nvmeof.TermReqHLen+nvmeof.TermReqMaxData {
			h.T.Errorf("C2HTermReq header %+v", hd)
		}
		tr, err := nvmeof.DecodeTermReq(b)
		if err != nil {
			h.T.Fatal(err)
		}
		if tr.FES != fes {
			h.T.Errorf("C2HTermReq FES %#x FEI %d, want FES %#x", tr.FES, tr.FEI, fes)
		}
		h.ExpectEOF()
		return tr
	}
	h.T.Fatal("no C2HTermReq")
	return nvmeof.TermReq{}
}

// ExpectEOF checks that the target closes the connection (after any PDUs
// still in flight).
func (h *Host) ExpectEOF() {
	h.T.Helper()
	for range 10000 {
		_, _, err := h.TryReadPDU()
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			return
		}
		h.T.Fatalf("want the target to close the connection, got %v", err)
	}
	h.T.Fatal("connection still open")
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && !oe.Timeout()
}

// Session is a minimal host of one controller: an admin queue (enabled)
// and one I/O queue, enough to check that a target still serves while
// tests misbehave on other connections.
type Session struct {
	Admin, IO *Host
	CntlID    uint16
}

// Connect brings up a Session on the target at addr: ICReq with the
// given digests, Fabrics Connect, CC.EN, and I/O queue 1 of 32 entries.
func Connect(t testing.TB, addr string, hdgst, ddgst bool, subnqn, hostnqn string, hostID [16]byte) *Session {
	t.Helper()
	return ConnectFrom(t, addr, netip.Addr{}, hdgst, ddgst, subnqn, hostnqn, hostID)
}

// ConnectFrom is Connect with both connections from a local address (see DialFrom).
func ConnectFrom(t testing.TB, addr string, local netip.Addr, hdgst, ddgst bool, subnqn, hostnqn string, hostID [16]byte) *Session {
	t.Helper()
	s := &Session{Admin: DialFrom(t, addr, local), IO: DialFrom(t, addr, local)}
	s.Admin.Init(hdgst, ddgst)
	id, st := s.Admin.ConnectAdmin(subnqn, hostnqn, hostID, 0)
	if !st.OK() {
		t.Fatalf("connect admin queue: %v", st)
	}
	s.CntlID = id
	s.SetEnabled(true)
	s.IO.Init(hdgst, ddgst)
	if st := s.IO.ConnectIO(1, 31, id, subnqn, hostnqn, hostID); !st.OK() {
		t.Fatalf("connect I/O queue: %v", st)
	}
	return s
}

// SetEnabled sets CC.EN (Property Set on the admin queue): true enables
// the controller, false resets it.
func (s *Session) SetEnabled(en bool) {
	t := s.Admin.T
	t.Helper()
	var sqe nvmeof.SQE
	sqe.SetPropertySet(nvmeof.PropCC, false, uint64(nvmeof.CCValue(en)))
	sqe.SetCID(s.Admin.NextCID())
	sqe.SetFlags(nvmeof.FlagsSGL)
	s.Admin.Write(s.Admin.Capsule(sqe, nil))
	if cqe := s.Admin.ReadRsp(); !cqe.Status().OK() {
		t.Fatalf("set CC.EN=%v: %v", en, cqe.Status())
	}
}

// RoundTrip writes n bytes of a pattern made from seed at byte offset off
// of namespace 1 (512-byte blocks), its data solicited by R2T, reads them
// back and checks them.
func (s *Session) RoundTrip(off int64, n int, seed byte) {
	t := s.IO.T
	t.Helper()
	p := make([]byte, n)
	for i := range p {
		p[i] = seed ^ byte(i*13)
	}
	if st := s.Write(off, p, false); !st.OK() {
		t.Fatalf("write %d at %d: %v", n, off, st)
	}
	got, st := s.Read(off, n)
	if !st.OK() {
		t.Fatalf("read %d at %d: %v", n, off, st)
	}
	if !bytes.Equal(got, p) {
		t.Fatalf("read %d at %d: data differs from what was written", n, off)
	}
}

// IOCommand is a read or write of n bytes at byte offset off of
// namespace 1 (512-byte blocks), its data described by a transport SGL.
func IOCommand(op uint8, cid uint16, off int64, n int) nvmeof.SQE {
	var sqe nvmeof.SQE
	sqe.SetOpcode(op)
	sqe.SetCID(cid)
	sqe.SetNSID(1)
	sqe.SetFlags(nvmeof.FlagsSGL)
	sqe.SetRW(uint64(off/512), uint32(n/512))
	sqe.SGL().SetDataBlock(nvmeof.SGLTransport, 0, uint32(n))
	return sqe
}

// Write writes p at byte offset off of namespace 1, sending its data in
// answer to the target's R2Ts, and returns the status.
func (s *Session) Write(off int64, p []byte, fua bool) nvmeof.Status {
	h := s.IO
	h.T.Helper()
	cid := h.NextCID()
	sqe := IOCommand(nvmeof.NVMWrite, cid, off, len(p))
	sqe.SetFUA(fua)
	h.Write(h.Capsule(sqe, nil))
	for range 1000 {
		hd, b := h.ReadPDU()
		switch hd.Type {
		case nvmeof.PDUR2T:
			r2t, _ := nvmeof.DecodeDataPDU(b)
			if r2t.CCCID != cid || uint64(r2t.Offset)+uint64(r2t.Length) > uint64(len(p)) {
				h.T.Fatalf("R2T %+v for a %d-byte write of cid %d", r2t, len(p), cid)
			}
			h.Write(h.H2CData(cid, r2t.TTag, r2t.Offset, p[r2t.Offset:r2t.Offset+r2t.Length]))
		case nvmeof.PDUCapsuleRsp:
			return nvmeof.CQEView(b[nvmeof.CHSize:]).Status()
		default:
			h.T.Fatalf("write: PDU type %#x from the target", hd.Type)
		}
	}
	h.T.Fatal("write: no response in 1000 PDUs")
	return 0
}

// Read reads n bytes at byte offset off of namespace 1.
func (s *Session) Read(off int64, n int) ([]byte, nvmeof.Status) {
	h := s.IO
	h.T.Helper()
	cid := h.NextCID()
	h.Write(h.Capsule(IOCommand(nvmeof.NVMRead, cid, off, n), nil))
	got := make([]byte, n)
	for range 1000 {
		hd, b := h.ReadPDU()
		switch hd.Type {
		case nvmeof.PDUC2HData:
			dp, _ := nvmeof.DecodeDataPDU(b)
			end := uint64(dp.Offset) + uint64(dp.Length)
			if dp.CCCID != cid || end > uint64(n) || uint32(len(b)) < uint32(hd.PDO)+dp.Length {
				h.T.Fatalf("C2HData %+v for a %d-byte read of cid %d", dp, n, cid)
			}
			copy(got[dp.Offset:end], b[hd.PDO:])
			if hd.Flags&nvmeof.FlagDataSuccess != 0 {
				return got, nvmeof.StatusSuccess
			}
		case nvmeof.PDUCapsuleRsp:
			return got, nvmeof.CQEView(b[nvmeof.CHSize:]).Status()
		default:
			h.T.Fatalf("read: PDU type %#x from the target", hd.Type)
		}
	}
	h.T.Fatal("read: no response in 1000 PDUs")
	return nil, 0
}
