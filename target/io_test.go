package target

import (
	"bytes"
	"fmt"
	"syscall"
	"testing"

	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target/backend"
)

func TestConnectRefused(t *testing.T) {
	tgt := newTestTarget(t)
	addSubsys(t, tgt, testNQN, hostA) // only hostA
	addSubsys(t, tgt, otherNQN)
	a := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	cntlid := a.q.Controller().ID()
	b := connectAdmin(t, tgt, otherNQN, hostB, hostIDB, 0)

	for _, tc := range []struct {
		name   string
		sqe    nvmeof.SQE
		data   []byte
		status nvmeof.Status
		dw0    uint32
	}{
		{"host not allowed", connectSQE(0, 31, 0), connectData(t, testNQN, hostB, hostIDB, nvmeof.CntlIDDynamic),
			nvmeof.StatusConnectInvalidHost, nvmeof.ConnectInvalidParam(true, nvmeof.ConnectDataOffHostNQN)},
		{"unknown subsystem", connectSQE(0, 31, 0), connectData(t, "nqn.2026-11.io.flashpath:nope", hostA, hostIDA, nvmeof.CntlIDDynamic),
			nvmeof.StatusConnectInvalidParam, nvmeof.ConnectInvalidParam(true, nvmeof.ConnectDataOffSubNQN)},
		{"static controller ID", connectSQE(0, 31, 0), connectData(t, testNQN, hostA, hostIDA, 1),
			nvmeof.StatusConnectInvalidParam, nvmeof.ConnectInvalidParam(true, nvmeof.ConnectDataOffCntlID)},
		{"I/O queue, wrong CNTLID", connectSQE(1, 31, 0), connectData(t, testNQN, hostA, hostIDA, cntlid+100),
			nvmeof.StatusConnectInvalidParam, nvmeof.ConnectInvalidParam(true, nvmeof.ConnectDataOffCntlID)},
		{"I/O queue, another host's controller", connectSQE(1, 31, 0), connectData(t, otherNQN, hostA, hostIDA, b.q.Controller().ID()),
			nvmeof.StatusConnectInvalidParam, nvmeof.ConnectInvalidParam(true, nvmeof.ConnectDataOffCntlID)},
		{"I/O queue, wrong host ID", connectSQE(1, 31, 0), connectData(t, testNQN, hostA, hostIDB, cntlid),
			nvmeof.StatusConnectInvalidParam, nvmeof.ConnectInvalidParam(true, nvmeof.ConnectDataOffCntlID)},
		{"I/O queue, controller on another subsystem", connectSQE(1, 31, 0), connectData(t, otherNQN, hostA, hostIDA, cntlid),
			nvmeof.StatusConnectInvalidParam, nvmeof.ConnectInvalidParam(true, nvmeof.ConnectDataOffCntlID)},
		{"SQSIZE 0", connectSQE(0, 0, 0), connectData(t, testNQN, hostA, hostIDA, nvmeof.CntlIDDynamic),
			nvmeof.StatusConnectInvalidParam, nvmeof.ConnectInvalidParam(false, 44)},
		{"SQSIZE beyond MQES", connectSQE(1, 128, 0), connectData(t, testNQN, hostA, hostIDA, cntlid),
			nvmeof.StatusConnectInvalidParam, nvmeof.ConnectInvalidParam(false, 44)},
		{"short data", connectSQE(0, 31, 0), make([]byte, 512), nvmeof.StatusDataSGLLengthInvalid, 0},
		{"NQN not terminated", connectSQE(0, 31, 0), bytes.Repeat([]byte{'n'}, 1024),
			nvmeof.StatusConnectInvalidParam, nvmeof.ConnectInvalidParam(true, nvmeof.ConnectDataOffSubNQN)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newPeer(t, tgt)
			before := tgt.Stats.ConnectErrors.Load()
			r := p.want(tc.status, tc.sqe, tc.data)
			if !r.Status().DNR() {
				t.Errorf("status %v without DNR", r.Status())
			}
			if tc.dw0 != 0 && r.Rsp.DW0() != tc.dw0 {
				t.Errorf("DW0 %#x, want %#x (IATTR %d IPO %d)", r.Rsp.DW0(), tc.dw0, tc.dw0>>16, uint16(tc.dw0))
			}
			if p.q.Connected() || p.q.Controller() != nil {
				t.Error("refused queue is connected")
			}
			if tgt.Stats.ConnectErrors.Load() != before+1 {
				t.Error("ConnectErrors not counted")
			}
		})
	}
	// Sanity: the statuses the host sees are the spec's codes.
	if s := nvmeof.StatusConnectInvalidHost; s.SCT() != 1 || s.SC() != 0x84 {
		t.Errorf("Connect Invalid Host is sct %d sc %#x", s.SCT(), s.SC())
	}
	if tgt.Controllers() != 2 {
		t.Errorf("Controllers() = %d after refusals, want 2", tgt.Controllers())
	}
}

func TestConnectIOQueueBeforeEnable(t *testing.T) {
	tgt := newTestTarget(t)
	addSubsys(t, tgt, testNQN)
	p := newPeer(t, tgt)
	r := p.ok(connectSQE(0, 31, 0), connectData(t, testNQN, hostA, hostIDA, nvmeof.CntlIDDynamic))
	cntlid := uint16(r.Rsp.DW0())
	io := newPeer(t, tgt)
	io.want(nvmeof.StatusConnectInvalidParam, connectSQE(1, 31, 0), connectData(t, testNQN, hostA, hostIDA, cntlid))
	// Twice the same QID.
	p.ok(propSet(nvmeof.PropCC, uint64(nvmeof.CCValue(true))), nil)
	connectIO(t, tgt, testNQN, hostA, hostIDA, cntlid, 1)
	newPeer(t, tgt).want(nvmeof.StatusConnectInvalidParam, connectSQE(1, 31, 0), connectData(t, testNQN, hostA, hostIDA, cntlid))
}

// ioSetup returns an I/O queue on a fresh target with namespace 1 on be.
func ioSetup(t *testing.T, be backend.Backend) (admin, io *peer) {
	t.Helper()
	tgt := newTestTarget(t)
	ss := addSubsys(t, tgt, testNQN)
	addNS(t, ss, 1, be)
	admin = connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	io = connectIO(t, tgt, testNQN, hostA, hostIDA, admin.q.Controller().ID(), 1)
	return admin, io
}

func memBackend(t *testing.T, size int64, bs int) backend.Backend {
	t.Helper()
	be, err := backend.NewMem(size, bs)
	if err != nil {
		t.Fatal(err)
	}
	return be
}

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7)
	}
	return b
}

func TestIOReadWrite(t *testing.T) {
	for _, bs := range []int{512, 4096} {
		t.Run(fmt.Sprint(bs), func(t *testing.T) {
			_, io := ioSetup(t, memBackend(t, 1<<20, bs))
			nblocks := uint64(1<<20) / uint64(bs)
			data := pattern(4*bs, 3)
			io.ok(rwSQE(nvmeof.NVMWrite, 1, 10, 4), data)
			got := make([]byte, 4*bs)
			io.ok(rwSQE(nvmeof.NVMRead, 1, 10, 4), got)
			if !bytes.Equal(got, data) {
				t.Fatal("read back differs from what was written")
			}
			// The last block is in range, one past it is not.
			io.ok(rwSQE(nvmeof.NVMWrite, 1, nblocks-1, 1), data[:bs])
			for _, tc := range []struct {
				slba uint64
				nlb  uint32
			}{{nblocks, 1}, {nblocks - 1, 2}, {1 << 63, 1}, {0xFFFFFFFFFFFFFFFF, 2}} {
				io.want(nvmeof.StatusLBAOutOfRange, rwSQE(nvmeof.NVMRead, 1, tc.slba, tc.nlb), make([]byte, int(tc.nlb)*bs))
				io.want(nvmeof.StatusLBAOutOfRange, rwSQE(nvmeof.NVMWrite, 1, tc.slba, tc.nlb), make([]byte, int(tc.nlb)*bs))
			}
			// The data length must match NLB.
			io.want(nvmeof.StatusDataSGLLengthInvalid, rwSQE(nvmeof.NVMRead, 1, 0, 2), make([]byte, bs))
			// Unknown namespace, unknown opcode.
			io.want(nvmeof.StatusInvalidNamespace, rwSQE(nvmeof.NVMRead, 2, 0, 1), make([]byte, bs))
			io.want(nvmeof.StatusInvalidNamespace, rwSQE(nvmeof.NVMRead, 0, 0, 1), make([]byte, bs))
			io.want(nvmeof.StatusInvalidOpcode, rwSQE(0x7E, 1, 0, 1), nil)
			// Flush of one namespace and of all (NSID FFFFFFFFh).
			io.ok(rwSQE(nvmeof.NVMFlush, 1, 0, 1), nil)
			io.ok(rwSQE(nvmeof.NVMFlush, 0xFFFFFFFF, 0, 1), nil)
		})
	}
}

func TestIOCompare(t *testing.T) {
	_, io := ioSetup(t, memBackend(t, 1<<20, 512))
	data := pattern(1024, 9)
	io.ok(rwSQE(nvmeof.NVMWrite, 1, 0, 2), data)
	io.ok(rwSQE(nvmeof.NVMCompare, 1, 0, 2), bytes.Clone(data))
	bad := bytes.Clone(data)
	bad[700] ^= 1
	io.want(nvmeof.StatusCompareFailure, rwSQE(nvmeof.NVMCompare, 1, 0, 2), bad)
	io.want(nvmeof.StatusLBAOutOfRange, rwSQE(nvmeof.NVMCompare, 1, 2048, 1), make([]byte, 512))
}

func TestIOWriteZeroesAndDeallocate(t *testing.T) {
	for _, deac := range []bool{false, true} {
		t.Run(fmt.Sprintf("deac=%v", deac), func(t *testing.T) {
			f := backend.NewFaulty(memBackend(t, 1<<20, 512))
			_, io := ioSetup(t, f)
			io.ok(rwSQE(nvmeof.NVMWrite, 1, 0, 8), pattern(4096, 1))
			sqe := rwSQE(nvmeof.NVMWriteZeroes, 1, 2, 4)
			if deac {
				sqe.SetCDW(12, sqe.CDW(12)|nvmeof.CDW12Deac)
			}
			io.ok(sqe, nil)
			got := make([]byte, 4096)
			io.ok(rwSQE(nvmeof.NVMRead, 1, 0, 8), got)
			want := pattern(4096, 1)
			clear(want[1024:3072])
			if !bytes.Equal(got, want) {
				t.Error("blocks 2..5 not zero, or others changed")
			}
			if deac && f.Calls(backend.OpDiscard) != 1 || !deac && f.Calls(backend.OpWriteZeroes) != 1 {
				t.Errorf("discard calls %d, write zeroes calls %d", f.Calls(backend.OpDiscard), f.Calls(backend.OpWriteZeroes))
			}
			io.want(nvmeof.StatusLBAOutOfRange, rwSQE(nvmeof.NVMWriteZeroes, 1, 2047, 2), nil)
		})
	}
}

func TestIODatasetManagement(t *testing.T) {
	f := backend.NewFaulty(memBackend(t, 1<<20, 512))
	_, io := ioSetup(t, f)
	io.ok(rwSQE(nvmeof.NVMWrite, 1, 0, 16), pattern(8192, 5))
	sqe, ranges := dsmSQE(1, []nvmeof.DSMRange{{SLBA: 1, NLB: 2}, {SLBA: 8, NLB: 0}, {SLBA: 10, NLB: 3}})
	io.ok(sqe, ranges)
	got := make([]byte, 8192)
	io.ok(rwSQE(nvmeof.NVMRead, 1, 0, 16), got)
	want := pattern(8192, 5)
	clear(want[512:1536])
	clear(want[5120:6656])
	if !bytes.Equal(got, want) {
		t.Error("deallocated ranges do not read zero, or others changed")
	}
	if n := f.Calls(backend.OpDiscard); n != 2 {
		t.Errorf("%d discards, want 2 (empty range skipped)", n)
	}
	// One bad range fails the command before any range is discarded.
	sqe, ranges = dsmSQE(1, []nvmeof.DSMRange{{SLBA: 0, NLB: 1}, {SLBA: 2047, NLB: 2}})
	io.want(nvmeof.StatusLBAOutOfRange, sqe, ranges)
	if n := f.Calls(backend.OpDiscard); n != 2 {
		t.Errorf("a failed DSM discarded something: %d discards", n)
	}
	// Too little data for NR ranges.
	sqe, ranges = dsmSQE(1, []nvmeof.DSMRange{{SLBA: 0, NLB: 1}, {SLBA: 4, NLB: 1}})
	io.want(nvmeof.StatusDataSGLLengthInvalid, sqe, ranges[:16])
	// Without the AD attribute nothing happens.
	sqe, ranges = dsmSQE(1, []nvmeof.DSMRange{{SLBA: 0, NLB: 1}})
	sqe.SetCDW(11, 0)
	io.ok(sqe, ranges)
	if n := f.Calls(backend.OpDiscard); n != 2 {
		t.Errorf("DSM without AD discarded: %d discards", n)
	}
}

func TestIOBackendErrors(t *testing.T) {
	f := backend.NewFaulty(memBackend(t, 1<<20, 512))
	admin, io := ioSetup(t, f)
	buf := make([]byte, 512)
	for _, tc := range []struct {
		op     backend.Op
		err    error
		sqe    nvmeof.SQE
		status nvmeof.Status
	}{
		{backend.OpRead, syscall.EIO, rwSQE(nvmeof.NVMRead, 1, 0, 1), nvmeof.StatusUnrecoveredRead},
		{backend.OpWrite, syscall.EIO, rwSQE(nvmeof.NVMWrite, 1, 0, 1), nvmeof.StatusWriteFault},
		{backend.OpWrite, syscall.ENOSPC, rwSQE(nvmeof.NVMWrite, 1, 0, 1), nvmeof.StatusCapacityExceeded},
		{backend.OpWrite, backend.ErrReadOnly, rwSQE(nvmeof.NVMWrite, 1, 0, 1), StatusWriteProtected},
		{backend.OpFlush, syscall.EIO, rwSQE(nvmeof.NVMFlush, 1, 0, 1), nvmeof.StatusWriteFault},
		{backend.OpFlush, syscall.EIO, rwSQE(nvmeof.NVMFlush, 0xFFFFFFFF, 0, 1), nvmeof.StatusWriteFault},
		{backend.OpWriteZeroes, syscall.ENOSPC, rwSQE(nvmeof.NVMWriteZeroes, 1, 0, 1), nvmeof.StatusCapacityExceeded},
		{backend.OpRead, syscall.EIO, rwSQE(nvmeof.NVMCompare, 1, 0, 1), nvmeof.StatusUnrecoveredRead},
		{backend.OpRead, backend.ErrClosed, rwSQE(nvmeof.NVMRead, 1, 0, 1), nvmeof.StatusNamespaceNotReady},
		{backend.OpRead, fmt.Errorf("wrapped: %w", syscall.EIO), rwSQE(nvmeof.NVMRead, 1, 0, 1), nvmeof.StatusUnrecoveredRead},
	} {
		t.Run(fmt.Sprintf("%s/%v/%#x", tc.op, tc.err, tc.sqe.Opcode()), func(t *testing.T) {
			f.FailNext(tc.op, tc.err)
			var data []byte
			if op := tc.sqe.Opcode(); op == nvmeof.NVMRead || op == nvmeof.NVMWrite || op == nvmeof.NVMCompare {
				data = buf
			}
			io.want(tc.status, tc.sqe, data)
			// The failure was one-shot: the same command now succeeds.
			io.ok(tc.sqe, data)
		})
	}
	s, _ := nvmeof.DecodeSMARTLog(readLog(t, admin, nvmeof.LogSMART, 0xFFFFFFFF, nvmeof.SMARTLogSize))
	if s.MediaErrors == 0 {
		t.Error("SMART media errors not counted")
	}
}
