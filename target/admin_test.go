package target

import (
	"bytes"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flashpath/flashpath/internal/testutil"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target/backend"
)

func TestConnectAdminDynamicController(t *testing.T) {
	tgt := newTestTarget(t)
	addSubsys(t, tgt, testNQN)
	a := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	b := connectAdmin(t, tgt, testNQN, hostB, hostIDB, 0)
	ca, cb := a.q.Controller().ID(), b.q.Controller().ID()
	if ca == cb || ca == 0 || ca >= 0xFFF0 || cb == 0 || cb >= 0xFFF0 {
		t.Fatalf("controller IDs %d and %d: want two distinct IDs in 1..0xFFEF", ca, cb)
	}
	if tgt.Controllers() != 2 {
		t.Fatalf("Controllers() = %d, want 2", tgt.Controllers())
	}
	if a.q.ID() != 0 || a.q.Size() != 32 || !a.q.Connected() {
		t.Errorf("admin queue: id %d size %d connected %v", a.q.ID(), a.q.Size(), a.q.Connected())
	}
	// A second Connect on a connected queue is a sequence error.
	a.want(nvmeof.StatusCommandSequenceError, connectSQE(0, 31, 0), connectData(t, testNQN, hostA, hostIDA, nvmeof.CntlIDDynamic))
}

func TestCommandBeforeConnect(t *testing.T) {
	tgt := newTestTarget(t)
	p := newPeer(t, tgt)
	r := p.want(nvmeof.StatusCommandSequenceError, identifySQE(nvmeof.CNSController, 0), make([]byte, 4096))
	if !r.Status().DNR() {
		t.Errorf("status %v without DNR", r.Status())
	}
	p.want(nvmeof.StatusInvalidField, propGet(nvmeof.PropCAP, true), nil)
}

func TestPropertiesAndEnable(t *testing.T) {
	tgt := newTestTarget(t)
	addSubsys(t, tgt, testNQN)
	p := newPeer(t, tgt)
	p.ok(connectSQE(0, 31, 0), connectData(t, testNQN, hostA, hostIDA, nvmeof.CntlIDDynamic))

	r := p.ok(propGet(nvmeof.PropCAP, true), nil)
	cp := nvmeof.CAP(uint64(r.Rsp.DW1())<<32 | uint64(r.Rsp.DW0()))
	if cp.MQES() != 127 {
		t.Errorf("CAP.MQES %d, want 127 (MaxQueueDepth 128)", cp.MQES())
	}
	if cp.Timeout() == 0 {
		t.Errorf("CAP.TO is 0")
	}
	if uint64(cp)&(1<<37) == 0 {
		t.Errorf("CAP.CSS %#x lacks the NVM command set", uint64(cp))
	}
	p.want(nvmeof.StatusInvalidField, propGet(nvmeof.PropCAP, false), nil) // CAP is 8 bytes
	if r := p.ok(propGet(nvmeof.PropVS, false), nil); r.Rsp.DW0() != nvmeof.VS2_0 {
		t.Errorf("VS %#x", r.Rsp.DW0())
	}
	if r := p.ok(propGet(nvmeof.PropCSTS, false), nil); r.Rsp.DW0()&nvmeof.CSTSReady != 0 {
		t.Errorf("CSTS %#x ready before CC.EN", r.Rsp.DW0())
	}
	// Admin commands other than Keep Alive wait for CC.EN.
	p.want(nvmeof.StatusCommandSequenceError, identifySQE(nvmeof.CNSController, 0), make([]byte, 4096))
	p.ok(adminSQE(nvmeof.AdminKeepAlive), nil)

	cc := nvmeof.CCValue(true)
	p.ok(propSet(nvmeof.PropCC, uint64(cc)), nil)
	if r := p.ok(propGet(nvmeof.PropCSTS, false), nil); r.Rsp.DW0()&nvmeof.CSTSReady == 0 {
		t.Errorf("CSTS %#x not ready after CC.EN", r.Rsp.DW0())
	}
	if r := p.ok(propGet(nvmeof.PropCC, false), nil); r.Rsp.DW0() != cc {
		t.Errorf("CC %#x, wrote %#x", r.Rsp.DW0(), cc)
	}
	p.want(nvmeof.StatusInvalidField, propGet(0x4000, false), nil)
	p.want(nvmeof.StatusInvalidField, propSet(nvmeof.PropCSTS, 0), nil) // read-only

	// Normal shutdown: SHST complete.
	p.ok(propSet(nvmeof.PropCC, uint64(cc|nvmeof.CCShnNormal)), nil)
	if r := p.ok(propGet(nvmeof.PropCSTS, false), nil); r.Rsp.DW0()&nvmeof.CSTSShstMask != nvmeof.CSTSShstComplete {
		t.Errorf("CSTS %#x: shutdown not complete", r.Rsp.DW0())
	}
	// Disabling clears RDY.
	p.ok(propSet(nvmeof.PropCC, uint64(nvmeof.CCValue(false))), nil)
	if r := p.ok(propGet(nvmeof.PropCSTS, false), nil); r.Rsp.DW0()&nvmeof.CSTSReady != 0 {
		t.Errorf("CSTS %#x ready after CC.EN=0", r.Rsp.DW0())
	}
}

func identifyCtrl(t *testing.T, p *peer) nvmeof.IdentifyController {
	t.Helper()
	r := p.ok(identifySQE(nvmeof.CNSController, 0), make([]byte, 4096))
	id, err := nvmeof.DecodeIdentifyController(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestIdentifyController(t *testing.T) {
	for _, tc := range []struct {
		name    string
		backend func(t *testing.T) backend.Backend
		vwc     bool
	}{
		{"mem", func(t *testing.T) backend.Backend {
			be, err := backend.NewMem(1<<20, 512)
			if err != nil {
				t.Fatal(err)
			}
			return be
		}, false},
		{"file", func(t *testing.T) backend.Backend {
			be, err := backend.OpenFile(t.TempDir()+"/ns", backend.FileOptions{Size: 1 << 20, BlockSize: 512})
			testutil.SkipIfNotSupported(t, err)
			return be
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tgt := newTestTarget(t)
			ss, err := tgt.AddSubsystem(SubsystemConfig{NQN: testNQN, Serial: "SN0123", Model: "flashpath-test", AllowAnyHost: true})
			if err != nil {
				t.Fatal(err)
			}
			be := tc.backend(t)
			if be.VolatileWriteCache() != tc.vwc {
				t.Fatalf("%s backend: VolatileWriteCache %v, test expects %v", be.Kind(), be.VolatileWriteCache(), tc.vwc)
			}
			addNS(t, ss, 1, be)
			p := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
			id := identifyCtrl(t, p)
			if id.Serial != "SN0123" || id.Model != "flashpath-test" {
				t.Errorf("serial %q model %q", id.Serial, id.Model)
			}
			if id.CntlID != p.q.Controller().ID() {
				t.Errorf("CNTLID %d, controller %d", id.CntlID, p.q.Controller().ID())
			}
			if id.MDTS != MaxTransferShift || id.MaxTransfer() != MaxTransfer {
				t.Errorf("MDTS %d (%d bytes), want %d", id.MDTS, id.MaxTransfer(), MaxTransferShift)
			}
			if id.IOCCSZ != (64+InCapsuleData)/16 || id.IORCSZ != 1 {
				t.Errorf("IOCCSZ %d IORCSZ %d", id.IOCCSZ, id.IORCSZ)
			}
			if id.SGLS&nvmeof.SGLSSupported == 0 || id.SGLS&nvmeof.SGLSKeyed != 0 {
				t.Errorf("SGLS %#x: want supported, not keyed (TCP)", id.SGLS)
			}
			if id.CntrlType != nvmeof.CtrlTypeIO {
				t.Errorf("CNTRLTYPE %d", id.CntrlType)
			}
			if id.SubNQN != testNQN {
				t.Errorf("SUBNQN %q", id.SubNQN)
			}
			if got := id.VWC&nvmeof.VWCPresent != 0; got != tc.vwc {
				t.Errorf("VWC %#x: present %v, backend has a volatile cache: %v", id.VWC, got, tc.vwc)
			}
			if id.SQES != 0x66 || id.CQES != 0x44 || id.NN != MaxNSID || id.AERL != AERLimit-1 {
				t.Errorf("SQES %#x CQES %#x NN %d AERL %d", id.SQES, id.CQES, id.NN, id.AERL)
			}
			if id.OAES&nvmeof.OAESNamespaceAttr == 0 {
				t.Errorf("OAES %#x lacks namespace attribute notices", id.OAES)
			}
			// Get Features VWC agrees with Identify.
			r := p.ok(getFeatSQE(nvmeof.FeatVolatileWC), nil)
			if got := r.Rsp.DW0()&1 != 0; got != tc.vwc {
				t.Errorf("Get Features VWC %d, want %v", r.Rsp.DW0(), tc.vwc)
			}
		})
	}
}

func TestIdentifySerialDefault(t *testing.T) {
	tgt := newTestTarget(t)
	addSubsys(t, tgt, testNQN)
	p := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	id := identifyCtrl(t, p)
	if id.Serial == "" || len(id.Serial) > 20 || strings.Trim(id.Serial, " ") != id.Serial {
		t.Errorf("default serial %q", id.Serial)
	}
	if id.Model != "flashpath" {
		t.Errorf("default model %q", id.Model)
	}
}

func TestIdentifyNamespace(t *testing.T) {
	ids := func(t *testing.T) (nvmeof.IdentifyNamespace, []nvmeof.NSDescriptor) {
		tgt := newTestTarget(t)
		ss := addSubsys(t, tgt, testNQN)
		addMemNS(t, ss, 1, 1<<20, 512)
		addMemNS(t, ss, 7, 8<<20, 4096)
		p := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
		r := p.ok(identifySQE(nvmeof.CNSNamespace, 7), make([]byte, 4096))
		ns, err := nvmeof.DecodeIdentifyNamespace(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		r = p.ok(identifySQE(nvmeof.CNSNSDescList, 7), make([]byte, 4096))
		descs, err := nvmeof.DecodeNSDescList(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		// NSID 1 has 512-byte blocks.
		r = p.ok(identifySQE(nvmeof.CNSNamespace, 1), make([]byte, 4096))
		ns1, _ := nvmeof.DecodeIdentifyNamespace(r.Data)
		if ns1.BlockSize() != 512 || ns1.NSZE != 2048 {
			t.Errorf("NSID 1: block size %d NSZE %d", ns1.BlockSize(), ns1.NSZE)
		}
		if ns1.NGUID == ns.NGUID {
			t.Errorf("NSIDs 1 and 7 share NGUID %x", ns.NGUID)
		}
		// An inactive NSID returns zeros; NSID 0 is invalid.
		r = p.ok(identifySQE(nvmeof.CNSNamespace, 3), bytes.Repeat([]byte{0xEE}, 4096))
		if !bytes.Equal(r.Data, make([]byte, 4096)) {
			t.Errorf("inactive NSID: data not zero")
		}
		p.want(nvmeof.StatusInvalidNamespace, identifySQE(nvmeof.CNSNamespace, 0), make([]byte, 4096))
		p.want(nvmeof.StatusInvalidNamespace, identifySQE(nvmeof.CNSNSDescList, 3), make([]byte, 4096))
		return ns, descs
	}
	ns, descs := ids(t)
	if ns.NSZE != 2048 || ns.NCAP != 2048 || ns.BlockSize() != 4096 || ns.FormatIndex() != 0 {
		t.Errorf("NSZE %d NCAP %d block size %d format %d", ns.NSZE, ns.NCAP, ns.BlockSize(), ns.FormatIndex())
	}
	if ns.DLFEAT&7 != 1 {
		t.Errorf("DLFEAT %#x: deallocated blocks should read zeros", ns.DLFEAT)
	}
	if ns.NGUID == ([16]byte{}) {
		t.Error("NGUID is zero")
	}
	var uuid, nguid []byte
	for _, d := range descs {
		switch d.Type {
		case nvmeof.NIDTUUID:
			uuid = d.ID
		case nvmeof.NIDTNGUID:
			nguid = d.ID
		}
	}
	if len(uuid) != 16 || len(nguid) != 16 || !bytes.Equal(nguid, ns.NGUID[:]) {
		t.Fatalf("descriptors %v: want a UUID and the NGUID %x", descs, ns.NGUID)
	}
	// A second target with the same NQN and NSID reports the same identifiers.
	ns2, descs2 := ids(t)
	if ns2.NGUID != ns.NGUID || ns2.EUI64 != ns.EUI64 {
		t.Errorf("NGUID/EUI64 changed across targets: %x/%x vs %x/%x", ns.NGUID, ns.EUI64, ns2.NGUID, ns2.EUI64)
	}
	for _, d := range descs2 {
		if d.Type == nvmeof.NIDTUUID && !bytes.Equal(d.ID, uuid) {
			t.Errorf("UUID changed across targets: %x vs %x", uuid, d.ID)
		}
	}
}

func TestActiveNamespaceList(t *testing.T) {
	tgt := newTestTarget(t)
	ss := addSubsys(t, tgt, testNQN)
	for _, id := range []uint32{9, 2, 5} {
		addMemNS(t, ss, id, 1<<20, 512)
	}
	p := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	list := func(after uint32) []uint32 {
		r := p.ok(identifySQE(nvmeof.CNSActiveNSList, after), make([]byte, 4096))
		ids, err := nvmeof.DecodeNSList(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		return ids
	}
	if got := list(0); !slices.Equal(got, []uint32{2, 5, 9}) {
		t.Errorf("active list %v", got)
	}
	if got := list(5); !slices.Equal(got, []uint32{9}) {
		t.Errorf("active list after 5: %v", got)
	}
	p.want(nvmeof.StatusInvalidNamespace, identifySQE(nvmeof.CNSActiveNSList, 0xFFFFFFFE), make([]byte, 4096))
	if err := ss.RemoveNamespace(5); err != nil {
		t.Fatal(err)
	}
	if got := list(0); !slices.Equal(got, []uint32{2, 9}) {
		t.Errorf("active list after removing 5: %v", got)
	}
}

func TestIdentifyShortBuffer(t *testing.T) {
	tgt := newTestTarget(t)
	addSubsys(t, tgt, testNQN)
	p := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	p.want(nvmeof.StatusDataSGLLengthInvalid, identifySQE(nvmeof.CNSController, 0), make([]byte, 512))
	p.want(nvmeof.StatusInvalidField, identifySQE(0x55, 0), make([]byte, 4096))
}

func readLog(t *testing.T, p *peer, lid uint8, nsid uint32, n uint32) []byte {
	t.Helper()
	r := p.ok(logSQE(lid, nsid, n, 0), make([]byte, n))
	return r.Data
}

func TestErrorLog(t *testing.T) {
	tgt := newTestTarget(t)
	ss := addSubsys(t, tgt, testNQN)
	addMemNS(t, ss, 1, 1<<20, 512)
	a := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	io := connectIO(t, tgt, testNQN, hostA, hostIDA, a.q.Controller().ID(), 1)

	page := readLog(t, a, nvmeof.LogError, 0, 64*nvmeof.ErrorLogEntrySize)
	if e, _ := nvmeof.DecodeErrorLogEntry(page); e.ErrorCount != 0 {
		t.Fatalf("fresh error log has entry %+v", e)
	}
	r := io.want(nvmeof.StatusLBAOutOfRange, rwSQE(nvmeof.NVMRead, 1, 4096, 1), make([]byte, 512))
	page = readLog(t, a, nvmeof.LogError, 0, 64*nvmeof.ErrorLogEntrySize)
	e, err := nvmeof.DecodeErrorLogEntry(page)
	if err != nil {
		t.Fatal(err)
	}
	if e.ErrorCount != 1 || e.SQID != 1 || e.CID != r.Cmd.CID() || e.Status.Code() != nvmeof.StatusLBAOutOfRange || e.NSID != 1 || e.LBA != 4096 {
		t.Errorf("error log entry %+v, want count 1 sqid 1 cid %d LBA out of range nsid 1 lba 4096", e, r.Cmd.CID())
	}
	// A failing admin command is logged too, newest first.
	a.want(nvmeof.StatusInvalidOpcode, adminSQE(0xC0), nil)
	page = readLog(t, a, nvmeof.LogError, 0, 2*nvmeof.ErrorLogEntrySize)
	e0, _ := nvmeof.DecodeErrorLogEntry(page)
	e1, _ := nvmeof.DecodeErrorLogEntry(page[nvmeof.ErrorLogEntrySize:])
	if e0.ErrorCount != 2 || e0.SQID != 0 || e1.ErrorCount != 1 {
		t.Errorf("entries %+v, %+v: want the admin error (count 2) first", e0, e1)
	}
	// SMART counts the entries.
	s, _ := nvmeof.DecodeSMARTLog(readLog(t, a, nvmeof.LogSMART, 0xFFFFFFFF, nvmeof.SMARTLogSize))
	if s.NumErrLogEntries != 2 {
		t.Errorf("SMART error log entries %d, want 2", s.NumErrLogEntries)
	}
}

func TestSMARTCountsIO(t *testing.T) {
	tgt := newTestTarget(t)
	ss := addSubsys(t, tgt, testNQN)
	addMemNS(t, ss, 1, 4<<20, 512)
	addMemNS(t, ss, 2, 4<<20, 512)
	a := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	io := connectIO(t, tgt, testNQN, hostA, hostIDA, a.q.Controller().ID(), 1)
	buf := make([]byte, 64<<10)
	for i := range 3 {
		io.ok(rwSQE(nvmeof.NVMWrite, 1, uint64(i*128), 128), buf)
	}
	for range 2 {
		io.ok(rwSQE(nvmeof.NVMRead, 2, 0, 128), buf)
	}
	s, err := nvmeof.DecodeSMARTLog(readLog(t, a, nvmeof.LogSMART, 0xFFFFFFFF, nvmeof.SMARTLogSize))
	if err != nil {
		t.Fatal(err)
	}
	// 3 × 64 KiB = 384 units of 512 bytes: 1 data unit (rounded up).
	if s.HostWrites != 3 || s.HostReads != 2 || s.DataUnitsWritten != 1 || s.DataUnitsRead != 1 {
		t.Errorf("SMART %+v: want 3 writes, 2 reads, 1 data unit each", s)
	}
	if s.AvailableSpare < s.SpareThreshold || s.CriticalWarning != 0 || s.TemperatureK == 0 {
		t.Errorf("SMART health %+v", s)
	}
}

func TestFirmwareAndEffectsLogs(t *testing.T) {
	tgt := New(Options{Logger: quietLogger(), FirmwareRev: "7.3"})
	t.Cleanup(func() { tgt.Close() })
	addSubsys(t, tgt, testNQN)
	a := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	active, revs, err := nvmeof.DecodeFirmwareSlotLog(readLog(t, a, nvmeof.LogFirmwareSlot, 0xFFFFFFFF, nvmeof.FirmwareSlotLogSize))
	if err != nil {
		t.Fatal(err)
	}
	if active&7 != 1 || revs[0] != "7.3" {
		t.Errorf("firmware slot log: active %#x revs %q", active, revs)
	}
	if id := identifyCtrl(t, a); id.Firmware != "7.3" || id.LPA&nvmeof.LPACommandEffects == 0 {
		t.Errorf("identify FR %q LPA %#x", id.Firmware, id.LPA)
	}
	adm, io, err := nvmeof.DecodeCommandEffects(readLog(t, a, nvmeof.LogCommandEffects, 0, nvmeof.CommandEffectsLogSize))
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range []uint8{nvmeof.AdminIdentify, nvmeof.AdminGetLogPage, nvmeof.AdminKeepAlive, nvmeof.AdminAsyncEvent} {
		if adm[op]&nvmeof.CSECSUPP == 0 {
			t.Errorf("admin opcode %#x not marked supported", op)
		}
	}
	for _, op := range []uint8{nvmeof.NVMRead, nvmeof.NVMWrite, nvmeof.NVMFlush, nvmeof.NVMDSM, nvmeof.NVMWriteZeroes, nvmeof.NVMCompare} {
		if io[op]&nvmeof.CSECSUPP == 0 {
			t.Errorf("I/O opcode %#x not marked supported", op)
		}
	}
	if io[nvmeof.NVMWrite]&nvmeof.CSELBCC == 0 || io[nvmeof.NVMRead]&nvmeof.CSELBCC != 0 {
		t.Errorf("LBCC: write %#x read %#x", io[nvmeof.NVMWrite], io[nvmeof.NVMRead])
	}
	a.want(nvmeof.StatusInvalidLogPage, logSQE(0x42, 0, 512, 0), make([]byte, 512))
	a.want(nvmeof.StatusInvalidLogPage, logSQE(nvmeof.LogDiscovery, 0, 1024, 0), make([]byte, 1024))
	// Offsets: past the end is invalid; within the page returns its tail.
	a.want(nvmeof.StatusInvalidField, logSQE(nvmeof.LogFirmwareSlot, 0, 4, 1<<20), make([]byte, 4))
	r := a.ok(logSQE(nvmeof.LogFirmwareSlot, 0, 8, 8), make([]byte, 8))
	if string(bytes.TrimRight(r.Data, "\x00 ")) != "7.3" {
		t.Errorf("firmware slot 1 at offset 8: %q", r.Data)
	}
}

func TestFeatures(t *testing.T) {
	tgt := New(Options{Logger: quietLogger(), MaxQueues: 8})
	t.Cleanup(func() { tgt.Close() })
	addSubsys(t, tgt, testNQN)
	a := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)

	// Number of Queues: 0-based counts, capped at MaxQueues.
	r := a.ok(setFeatSQE(nvmeof.FeatNumQueues, 3|3<<16), nil)
	if r.Rsp.DW0() != 3|3<<16 {
		t.Errorf("number of queues granted %#x, want 3|3<<16", r.Rsp.DW0())
	}
	r = a.ok(setFeatSQE(nvmeof.FeatNumQueues, 100|100<<16), nil)
	if r.Rsp.DW0() != 7|7<<16 {
		t.Errorf("number of queues granted %#x, want 7|7<<16 (MaxQueues 8)", r.Rsp.DW0())
	}
	if r := a.ok(getFeatSQE(nvmeof.FeatNumQueues), nil); r.Rsp.DW0() != 7|7<<16 {
		t.Errorf("get number of queues %#x", r.Rsp.DW0())
	}
	a.want(nvmeof.StatusInvalidField, setFeatSQE(nvmeof.FeatNumQueues, 0xFFFF), nil)
	// I/O queues beyond the grant are refused.
	a.ok(setFeatSQE(nvmeof.FeatNumQueues, 1|1<<16), nil)
	cntlid := a.q.Controller().ID()
	connectIO(t, tgt, testNQN, hostA, hostIDA, cntlid, 2)
	p := newPeer(t, tgt)
	r = p.want(nvmeof.StatusConnectInvalidParam, connectSQE(3, 15, 0), connectData(t, testNQN, hostA, hostIDA, cntlid))
	if r.Rsp.DW0() != nvmeof.ConnectInvalidParam(false, 42) {
		t.Errorf("QID 3 of 2: DW0 %#x, want IPO 42 (QID) in the SQE", r.Rsp.DW0())
	}

	// Keep-alive timer: milliseconds.
	a.ok(setFeatSQE(nvmeof.FeatKeepAlive, 30000), nil)
	if r := a.ok(getFeatSQE(nvmeof.FeatKeepAlive), nil); r.Rsp.DW0() != 30000 {
		t.Errorf("KATO %d, want 30000", r.Rsp.DW0())
	}
	a.ok(setFeatSQE(nvmeof.FeatKeepAlive, 0), nil)

	// Volatile write cache: a mem namespace has none.
	if r := a.ok(getFeatSQE(nvmeof.FeatVolatileWC), nil); r.Rsp.DW0() != 0 {
		t.Errorf("VWC %d with no volatile cache", r.Rsp.DW0())
	}
	// Async event configuration round-trips.
	a.ok(setFeatSQE(nvmeof.FeatAsyncEvent, nvmeof.OAESNamespaceAttr), nil)
	if r := a.ok(getFeatSQE(nvmeof.FeatAsyncEvent), nil); r.Rsp.DW0() != nvmeof.OAESNamespaceAttr {
		t.Errorf("async event config %#x", r.Rsp.DW0())
	}
	// Saving is not supported; unknown features are invalid.
	sv := setFeatSQE(nvmeof.FeatKeepAlive, 1000)
	sv.SetCDW(10, sv.CDW(10)|1<<31)
	a.want(nvmeof.StatusFeatureNotSaveable, sv, nil)
	a.want(nvmeof.StatusInvalidField, setFeatSQE(0x70, 0), nil)
	a.want(nvmeof.StatusInvalidField, getFeatSQE(0x70), nil)
	// The Host Identifier is the one given at Connect.
	r = a.ok(getFeatSQE(nvmeof.FeatHostID), make([]byte, 16))
	if !bytes.Equal(r.Data, hostIDA[:]) {
		t.Errorf("host ID %x, want %x", r.Data, hostIDA)
	}
}

func TestVolatileWriteCacheFeature(t *testing.T) {
	tgt := newTestTarget(t)
	ss := addSubsys(t, tgt, testNQN)
	be, err := backend.OpenFile(t.TempDir()+"/ns", backend.FileOptions{Size: 1 << 20, BlockSize: 512})
	testutil.SkipIfNotSupported(t, err)
	f := backend.NewFaulty(be)
	addNS(t, ss, 1, f)
	a := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	if r := a.ok(getFeatSQE(nvmeof.FeatVolatileWC), nil); r.Rsp.DW0() != 1 {
		t.Fatalf("VWC %d on a file backend, want 1", r.Rsp.DW0())
	}
	// The host turns the cache off: every write must then reach stable
	// media, so Write Zeroes is followed by a flush.
	a.ok(setFeatSQE(nvmeof.FeatVolatileWC, 0), nil)
	if r := a.ok(getFeatSQE(nvmeof.FeatVolatileWC), nil); r.Rsp.DW0() != 0 {
		t.Fatalf("VWC %d after disabling", r.Rsp.DW0())
	}
	io := connectIO(t, tgt, testNQN, hostA, hostIDA, a.q.Controller().ID(), 1)
	flushes := f.Calls(backend.OpFlush)
	io.ok(rwSQE(nvmeof.NVMWriteZeroes, 1, 0, 8), nil)
	if f.Calls(backend.OpFlush) != flushes+1 {
		t.Errorf("write zeroes with the cache disabled did not flush")
	}
}

func TestKeepAliveCommandKeepsController(t *testing.T) {
	tgt := newTestTarget(t)
	addSubsys(t, tgt, testNQN)
	// A long KATO: Keep Alive succeeds and the controller stays.
	a := connectAdmin(t, tgt, testNQN, hostA, hostIDA, uint32((time.Hour).Milliseconds()))
	for range 3 {
		a.ok(adminSQE(nvmeof.AdminKeepAlive), nil)
	}
	if tgt.Controllers() != 1 || a.tr.isClosed() {
		t.Fatal("controller gone after keep-alives")
	}
}

// TestAdminQueueDepthLimit: an admin queue is at most MaxAdminQueueDepth
// entries, on a discovery controller too (the security issue found a
// discovery admin SQ of 1,023 accepted).
func TestAdminQueueDepthLimit(t *testing.T) {
	tgt := newTestTarget(t)
	addSubsys(t, tgt, testNQN)
	for _, nqn := range []string{testNQN, nvmeof.DiscoveryNQN} {
		p := newPeer(t, tgt)
		p.want(nvmeof.StatusConnectInvalidParam, connectSQE(0, MaxAdminQueueDepth, 0), connectData(t, nqn, hostA, hostIDA, nvmeof.CntlIDDynamic))
		p = newPeer(t, tgt)
		p.ok(connectSQE(0, MaxAdminQueueDepth-1, 0), connectData(t, nqn, hostA, hostIDA, nvmeof.CntlIDDynamic))
	}
}

// TestReadOnlyNamespaceWriteProtected: a namespace opened read-only
// (`file:PATH?ro`) says so in Identify Namespace (NSATTR bit 0), so that
// the Linux host marks the disk read-only instead of failing writes.
func TestReadOnlyNamespaceWriteProtected(t *testing.T) {
	path := t.TempDir() + "/ro.img"
	if err := os.WriteFile(path, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	tgt := newTestTarget(t)
	ss := addSubsys(t, tgt, testNQN)
	ro, err := backend.OpenFile(path, backend.FileOptions{ReadOnly: true, SyncIO: true})
	testutil.SkipIfNotSupported(t, err)
	addNS(t, ss, 1, ro)
	addMemNS(t, ss, 2, 1<<20, 512)
	p := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	for nsid, want := range map[uint32]uint8{1: nvmeof.NSATTRWriteProtected, 2: 0} {
		r := p.ok(identifySQE(nvmeof.CNSNamespace, nsid), make([]byte, 4096))
		id, err := nvmeof.DecodeIdentifyNamespace(r.Data)
		if err != nil {
			t.Fatal(err)
		}
		if id.NSATTR != want {
			t.Errorf("NSID %d: NSATTR %#x, want %#x", nsid, id.NSATTR, want)
		}
	}
}

// TestDefaultKeepAlive: a discovery controller whose host asks for no
// keep-alive gets DiscoveryKeepAlive, as on the Linux target; an I/O
// controller gets Options.IOKeepAlive (none unless set).
func TestDefaultKeepAlive(t *testing.T) {
	for _, tc := range []struct {
		name string
		io   time.Duration
		nqn  string
		want time.Duration
	}{
		{"discovery", 0, nvmeof.DiscoveryNQN, DiscoveryKeepAlive},
		{"I/O, none configured", 0, testNQN, 0},
		{"I/O, configured", 30 * time.Second, testNQN, 30 * time.Second},
	} {
		tgt := New(Options{Logger: quietLogger(), IOKeepAlive: tc.io})
		t.Cleanup(func() { tgt.Close() })
		addSubsys(t, tgt, testNQN)
		p := connectAdmin(t, tgt, tc.nqn, hostA, hostIDA, 0)
		r := p.ok(getFeatSQE(nvmeof.FeatKeepAlive), nil)
		if got := time.Duration(r.Rsp.DW0()) * time.Millisecond; got != tc.want {
			t.Errorf("%s: KATO %v, want %v", tc.name, got, tc.want)
		}
	}
}
