package tcp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/backend"
)

const (
	testNQN   = "nqn.2026-11.io.flashpath:tcp-test"
	hostNQN   = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555"
	strangerN = "nqn.2014-08.org.nvmexpress:uuid:99999999-2222-3333-4444-555555555555"
)

var hostID = [16]byte{0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testTarget is a target with one subsystem (hostNQN allowed) holding a
// mem namespace, served on 127.0.0.1:0.
type testTarget struct {
	tgt *target.Target
	ss  *target.Subsystem
	ln  *Listener
}

func startTarget(t testing.TB, be backend.Backend) *testTarget {
	t.Helper()
	tgt := target.New(target.Options{Logger: quietLogger(), MaxQueueDepth: 128})
	ss, err := tgt.AddSubsystem(target.SubsystemConfig{NQN: testNQN, AllowedHosts: []string{hostNQN}})
	if err != nil {
		t.Fatal(err)
	}
	if be == nil {
		if be, err = backend.NewMem(16<<20, 512); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ss.AddNamespace(target.NamespaceConfig{NSID: 1, Backend: be}); err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(tgt, "127.0.0.1:0", Options{Logger: quietLogger(), ICTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tt := &testTarget{tgt: tgt, ss: ss, ln: ln}
	t.Cleanup(func() {
		ln.Close()
		tgt.Close()
	})
	return tt
}

func (tt *testTarget) addr() string { return tt.ln.Addr().String() }

func (tt *testTarget) connect(t testing.TB, opts initiator.Options) *initiator.Controller {
	t.Helper()
	if opts.HostNQN == "" {
		opts.HostNQN, opts.HostID = hostNQN, hostID
	}
	opts.Logger = quietLogger()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := initiator.Connect(ctx, initiator.Config{Addr: tt.addr(), SubNQN: testNQN, Options: opts, IOQueues: 2, QueueDepth: 32})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func namespace(t testing.TB, c *initiator.Controller) *initiator.Namespace {
	t.Helper()
	ns, err := c.Namespace(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

// roundTrip writes a pattern at off and reads it back.
func roundTrip(t testing.TB, ns *initiator.Namespace, off int64, n int, seed byte) {
	t.Helper()
	p := make([]byte, n)
	for i := range p {
		p[i] = seed ^ byte(i*13)
	}
	if _, err := ns.WriteAt(p, off); err != nil {
		t.Fatalf("write %d at %d: %v", n, off, err)
	}
	got := make([]byte, n)
	if _, err := ns.ReadAt(got, off); err != nil {
		t.Fatalf("read %d at %d: %v", n, off, err)
	}
	if !bytes.Equal(got, p) {
		t.Fatalf("read %d at %d: data differs from what was written", n, off)
	}
}

// rawConn is a hand-driven NVMe/TCP host connection for protocol tests.
type rawConn struct {
	t            testing.TB
	nc           net.Conn
	hdgst, ddgst bool
	cid          uint16
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	// A safety net against a hung target, not a synchronisation device.
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc}
}

func (c *rawConn) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func icreqBytes(req nvmeof.ICReq) []byte {
	b := make([]byte, nvmeof.ICReqSize)
	req.Encode(b)
	return b
}

// init runs ICReq/ICResp with the given digests.
func (c *rawConn) init(hdgst, ddgst bool) {
	c.t.Helper()
	var dg uint8
	if hdgst {
		dg |= nvmeof.DigestHeader
	}
	if ddgst {
		dg |= nvmeof.DigestData
	}
	c.write(icreqBytes(nvmeof.ICReq{Digest: dg}))
	h, b := c.readPDU()
	if h.Type != nvmeof.PDUICResp {
		c.t.Fatalf("got PDU type %#x, want ICResp", h.Type)
	}
	resp, err := nvmeof.DecodeICResp(b)
	if err != nil {
		c.t.Fatal(err)
	}
	if resp.Digest != dg {
		c.t.Fatalf("ICResp digest %#x, asked %#x", resp.Digest, dg)
	}
	c.hdgst, c.ddgst = hdgst, ddgst
}

// pdu builds a PDU with the connection's digests: header (CH + PSH, hlen
// bytes, type and flags set by the caller in psh[0:2]) and optional data.
func (c *rawConn) pdu(psh []byte, data []byte) []byte {
	hlen := len(psh)
	flags := psh[1]
	end := uint32(hlen)
	if c.hdgst {
		flags |= nvmeof.FlagHDGST
		end += nvmeof.DigestSize
	}
	var pdo uint32
	plen := end
	if len(data) > 0 {
		pdo = nvmeof.PadTo(uint32(hlen), c.hdgst, 0)
		plen = pdo + uint32(len(data))
		if c.ddgst {
			flags |= nvmeof.FlagDDGST
			plen += nvmeof.DigestSize
		}
	}
	b := make([]byte, plen)
	copy(b, psh)
	nvmeof.PutHeader(b, nvmeof.Header{Type: psh[0], Flags: flags, HLen: uint8(hlen), PDO: uint8(pdo), PLen: plen})
	if c.hdgst {
		nvmeof.PutDigest(b[hlen:], nvmeof.Digest(b[:hlen]))
	}
	if len(data) > 0 {
		copy(b[pdo:], data)
		if c.ddgst {
			nvmeof.PutDigest(b[pdo+uint32(len(data)):], nvmeof.Digest(data))
		}
	}
	return b
}

// capsule encodes a command; data, when set, goes in the capsule.
func (c *rawConn) capsule(sqe nvmeof.SQE, data []byte) []byte {
	psh := make([]byte, nvmeof.CapsuleCmdHLen)
	psh[0] = nvmeof.PDUCapsuleCmd
	copy(psh[nvmeof.CHSize:], sqe[:])
	return c.pdu(psh, data)
}

func (c *rawConn) h2cData(cid, ttag uint16, off uint32, data []byte) []byte {
	psh := make([]byte, nvmeof.DataHLen)
	psh[0] = nvmeof.PDUH2CData
	psh[1] = nvmeof.FlagDataLast
	d := nvmeof.DataPDU{CCCID: cid, TTag: ttag, Offset: off, Length: uint32(len(data))}
	d.Encode(psh)
	return c.pdu(psh, data)
}

// readPDU reads one whole PDU and returns its header and bytes.
func (c *rawConn) readPDU() (nvmeof.Header, []byte) {
	c.t.Helper()
	h, b, err := c.tryReadPDU()
	if err != nil {
		c.t.Fatalf("read PDU: %v", err)
	}
	return h, b
}

func (c *rawConn) tryReadPDU() (nvmeof.Header, []byte, error) {
	ch := make([]byte, nvmeof.CHSize)
	if _, err := io.ReadFull(c.nc, ch); err != nil {
		return nvmeof.Header{}, nil, err
	}
	h, _ := nvmeof.ParseHeader(ch)
	if h.PLen < nvmeof.CHSize || h.PLen > 4<<20 {
		return h, nil, errors.New("bad PLEN from target")
	}
	b := make([]byte, h.PLen)
	copy(b, ch)
	if _, err := io.ReadFull(c.nc, b[nvmeof.CHSize:]); err != nil {
		return h, nil, err
	}
	return h, b, nil
}

// nextCID returns a fresh command ID.
func (c *rawConn) nextCID() uint16 { c.cid++; return c.cid }

// connectAdmin sends Fabrics Connect for the admin queue with in-capsule
// data and returns the controller ID.
func (c *rawConn) connectAdmin(subnqn, host string, kato uint32) (uint16, nvmeof.Status) {
	c.t.Helper()
	var sqe nvmeof.SQE
	sqe.SetConnect(0, 31, kato)
	sqe.SetCID(c.nextCID())
	sqe.SGL().SetDataBlock(nvmeof.SGLInCapsule, 0, nvmeof.ConnectDataSize)
	data := make([]byte, nvmeof.ConnectDataSize)
	d := nvmeof.ConnectData{HostID: hostID, CntlID: nvmeof.CntlIDDynamic, SubNQN: subnqn, HostNQN: host}
	if err := d.Encode(data); err != nil {
		c.t.Fatal(err)
	}
	c.write(c.capsule(sqe, data))
	cqe := c.readRsp()
	return uint16(cqe.DW0()), cqe.Status()
}

// readRsp reads PDUs up to the next response capsule.
func (c *rawConn) readRsp() nvmeof.CQE {
	c.t.Helper()
	for range 1000 {
		h, b := c.readPDU()
		switch h.Type {
		case nvmeof.PDUCapsuleRsp:
			hl := nvmeof.CHSize
			return *nvmeof.CQEView(b[hl:])
		case nvmeof.PDUC2HTermReq:
			tr, _ := nvmeof.DecodeTermReq(b)
			c.t.Fatalf("target terminated the connection: FES %#x FEI %d", tr.FES, tr.FEI)
		}
	}
	c.t.Fatal("no response capsule in 1000 PDUs")
	return nvmeof.CQE{}
}

// expectTermReq reads PDUs until a C2HTermReq, checks its FES and that the
// target then closes the connection.
func (c *rawConn) expectTermReq(fes uint16) nvmeof.TermReq {
	c.t.Helper()
	for range 10000 {
		h, b, err := c.tryReadPDU()
		if err != nil {
			c.t.Fatalf("connection ended (%v) without a C2HTermReq (want FES %#x)", err, fes)
		}
		if h.Type != nvmeof.PDUC2HTermReq {
			continue
		}
		if h.HLen != nvmeof.TermReqHLen || h.PLen < nvmeof.TermReqHLen || h.PLen > nvmeof.TermReqHLen+nvmeof.TermReqMaxData {
			c.t.Errorf("C2HTermReq header %+v", h)
		}
		tr, err := nvmeof.DecodeTermReq(b)
		if err != nil {
			c.t.Fatal(err)
		}
		if tr.FES != fes {
			c.t.Errorf("C2HTermReq FES %#x FEI %d, want FES %#x", tr.FES, tr.FEI, fes)
		}
		c.expectEOF()
		return tr
	}
	c.t.Fatal("no C2HTermReq")
	return nvmeof.TermReq{}
}

// expectEOF checks that the target closes the connection (after any PDUs
// still in flight).
func (c *rawConn) expectEOF() {
	c.t.Helper()
	for range 10000 {
		_, _, err := c.tryReadPDU()
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err) {
			return
		}
		c.t.Fatalf("want the target to close the connection, got %v", err)
	}
	c.t.Fatal("connection still open")
}

func isReset(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && !oe.Timeout()
}
