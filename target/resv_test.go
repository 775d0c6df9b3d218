package target

import (
	"encoding/binary"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target/backend"
)

var hostIDC = [16]byte{0xC3, 15: 0x03}

const hostC = "nqn.2014-08.org.nvmexpress:uuid:cccccccc-0000-0000-0000-000000000003"

// resvSQE builds a reservation command on namespace 1 with CDW10.
func resvSQE(op uint8, cdw10 uint32) nvmeof.SQE {
	var sqe nvmeof.SQE
	sqe.SetOpcode(op)
	sqe.SetNSID(1)
	sqe.SetCDW(10, cdw10)
	return sqe
}

func keys(cur, other uint64) []byte {
	b := make([]byte, nvmeof.ResvKeysSize)
	nvmeof.PutResvKeys(b, cur, other)
	return b
}

func (p *peer) register(st nvmeof.Status, act uint32, cur, nkey uint64) {
	p.t.Helper()
	p.want(st, resvSQE(nvmeof.NVMResvRegister, act), keys(cur, nkey))
}

func (p *peer) acquire(st nvmeof.Status, act uint32, rtype uint8, cur, pkey uint64) {
	p.t.Helper()
	p.want(st, resvSQE(nvmeof.NVMResvAcquire, act|uint32(rtype)<<8), keys(cur, pkey))
}

func (p *peer) release(st nvmeof.Status, act uint32, rtype uint8, cur uint64) {
	p.t.Helper()
	p.want(st, resvSQE(nvmeof.NVMResvRelease, act|uint32(rtype)<<8), keys(cur, 0)[:8])
}

func (p *peer) report() nvmeof.ResvReport {
	p.t.Helper()
	sqe := resvSQE(nvmeof.NVMResvReport, 4096/4-1)
	sqe.SetCDW(11, 1) // EDS
	r := p.ok(sqe, make([]byte, 4096))
	rep, err := nvmeof.DecodeResvReport(r.Data)
	if err != nil {
		p.t.Fatal(err)
	}
	return rep
}

// io runs a one-block read or write and returns its status.
func (p *peer) io(op uint8) nvmeof.Status {
	p.t.Helper()
	return p.exec(rwSQE(op, 1, 0, 1), make([]byte, testBlock)).Status().Code()
}

// resvHosts connects hosts A, B and C (an admin and an I/O queue each) to
// a subsystem with one mem namespace.
func resvHosts(t *testing.T) (tgt *Target, admin, io [3]*peer) {
	tgt = newTestTarget(t)
	ss := addSubsys(t, tgt, testNQN)
	addMemNS(t, ss, 1, 1<<20, testBlock)
	admin, io = connectHosts(t, tgt)
	return tgt, admin, io
}

// connectHosts connects hosts A, B and C to testNQN: an admin and an I/O
// queue each.
func connectHosts(t *testing.T, tgt *Target) (admin, io [3]*peer) {
	for i, h := range []struct {
		nqn string
		id  [16]byte
	}{{hostA, hostIDA}, {hostB, hostIDB}, {hostC, hostIDC}} {
		admin[i] = connectAdmin(t, tgt, testNQN, h.nqn, h.id, 0)
		io[i] = connectIO(t, tgt, testNQN, h.nqn, h.id, admin[i].q.Controller().ID(), 1)
	}
	return admin, io
}

// TestReservationAccess: each reservation type refuses what NVMe Base 2.0
// Figure 559 says to the holder (A), another registrant (B) and a host
// that is not registered (C), and nothing once released.
func TestReservationAccess(t *testing.T) {
	const ok, conflict = nvmeof.StatusSuccess, nvmeof.StatusReservationConflict
	for _, tc := range []struct {
		rtype uint8
		// read and write outcomes of B and C (A, the holder, may do both)
		bRead, bWrite, cRead, cWrite nvmeof.Status
	}{
		{nvmeof.ResvWriteExclusive, ok, conflict, ok, conflict},
		{nvmeof.ResvExclusiveAccess, conflict, conflict, conflict, conflict},
		{nvmeof.ResvWriteExclusiveRegOnly, ok, ok, ok, conflict},
		{nvmeof.ResvExclusiveAccessRegOnly, ok, ok, conflict, conflict},
		{nvmeof.ResvWriteExclusiveAllRegs, ok, ok, ok, conflict},
		{nvmeof.ResvExclusiveAccessAllRegs, ok, ok, conflict, conflict},
	} {
		t.Run(nvmeof.ResvTypeName(tc.rtype), func(t *testing.T) {
			_, _, io := resvHosts(t)
			a, b, c := io[0], io[1], io[2]
			a.register(ok, nvmeof.ResvRegister, 0, 0xA)
			b.register(ok, nvmeof.ResvRegister, 0, 0xB)
			a.acquire(ok, nvmeof.ResvAcquire, tc.rtype, 0xA, 0)
			for _, chk := range []struct {
				who   string
				p     *peer
				op    uint8
				wantS nvmeof.Status
			}{
				{"A read", a, nvmeof.NVMRead, ok}, {"A write", a, nvmeof.NVMWrite, ok},
				{"B read", b, nvmeof.NVMRead, tc.bRead}, {"B write", b, nvmeof.NVMWrite, tc.bWrite},
				{"C read", c, nvmeof.NVMRead, tc.cRead}, {"C write", c, nvmeof.NVMWrite, tc.cWrite},
			} {
				if got := chk.p.io(chk.op); got != chk.wantS.Code() {
					t.Errorf("%s: %v, want %v", chk.who, got, chk.wantS)
				}
			}
			if got := c.exec(resvSQE(nvmeof.NVMFlush, 0), nil).Status().Code(); got != tc.cWrite {
				t.Errorf("C flush: %v, want %v (the write group)", got, tc.cWrite)
			}
			rep := c.report() // anyone may look
			if rep.Type != tc.rtype || rep.Regs != 2 || len(rep.List) != 2 || !rep.List[0].Holds || rep.List[0].Key != 0xA || rep.List[0].HostID != hostIDA {
				t.Fatalf("report %+v", rep)
			}
			if all := tc.rtype >= nvmeof.ResvWriteExclusiveAllRegs; rep.List[1].Holds != all {
				t.Errorf("B holds %v, want %v", rep.List[1].Holds, all)
			}
			a.release(ok, nvmeof.ResvRelease, tc.rtype, 0xA)
			if got := c.io(nvmeof.NVMWrite); got != ok {
				t.Errorf("C write after release: %v", got)
			}
		})
	}
}

// TestReservationCommands: keys are checked, each action does what it
// says, and bad fields get the status NVMe gives them.
func TestReservationCommands(t *testing.T) {
	const ok, conflict, invalid = nvmeof.StatusSuccess, nvmeof.StatusReservationConflict, nvmeof.StatusInvalidField
	_, _, io := resvHosts(t)
	a, b := io[0], io[1]
	a.acquire(conflict, nvmeof.ResvAcquire, nvmeof.ResvWriteExclusive, 0xA, 0) // not registered
	a.register(ok, nvmeof.ResvRegister, 0, 0xA)
	a.register(ok, nvmeof.ResvRegister, 0, 0xA)        // the same key again
	a.register(conflict, nvmeof.ResvRegister, 0, 0xAA) // another key
	a.register(conflict, nvmeof.ResvReplace, 0x1, 0xAA)
	a.register(ok, nvmeof.ResvReplace, 0xA, 0xAA)
	a.register(ok, nvmeof.ResvReplace|nvmeof.ResvIEKEY, 0x0, 0xA)
	a.register(invalid, nvmeof.ResvRegister|3<<30, 0, 0xA) // persist through power loss: not supported
	a.register(invalid, 5, 0, 0xA)                         // reserved action
	b.register(ok, nvmeof.ResvRegister, 0, 0xB)
	if rep := a.report(); rep.Gen != 4 || rep.Regs != 2 || rep.Type != 0 {
		t.Fatalf("report %+v, want generation 4 and two registrants", rep)
	}
	a.acquire(invalid, nvmeof.ResvAcquire|nvmeof.ResvIEKEY, nvmeof.ResvWriteExclusive, 0xA, 0)
	a.acquire(invalid, nvmeof.ResvAcquire, 7, 0xA, 0)
	a.acquire(conflict, nvmeof.ResvAcquire, nvmeof.ResvWriteExclusive, 0xB, 0) // B's key
	a.acquire(ok, nvmeof.ResvAcquire, nvmeof.ResvWriteExclusive, 0xA, 0)
	a.acquire(ok, nvmeof.ResvAcquire, nvmeof.ResvWriteExclusive, 0xA, 0) // held already, same type
	a.acquire(conflict, nvmeof.ResvAcquire, nvmeof.ResvExclusiveAccess, 0xA, 0)
	b.acquire(conflict, nvmeof.ResvAcquire, nvmeof.ResvWriteExclusive, 0xB, 0)
	b.release(ok, nvmeof.ResvRelease, nvmeof.ResvWriteExclusive, 0xB) // B holds nothing: no-op
	a.release(invalid, nvmeof.ResvRelease, nvmeof.ResvExclusiveAccess, 0xA)
	a.release(conflict, nvmeof.ResvRelease, nvmeof.ResvWriteExclusive, 0xB)
	if got := b.io(nvmeof.NVMWrite); got != conflict {
		t.Fatalf("B write under A's reservation: %v", got)
	}
	// The holder unregisters: its reservation goes with it.
	a.register(ok, nvmeof.ResvUnregister, 0xA, 0)
	if rep := b.report(); rep.Type != 0 || rep.Regs != 1 {
		t.Fatalf("report after the holder unregistered: %+v", rep)
	}
	if got := b.io(nvmeof.NVMWrite); got != ok {
		t.Fatalf("B write after the holder unregistered: %v", got)
	}
	sqe := resvSQE(nvmeof.NVMResvReport, 4096/4-1) // no EDS: 64-bit host IDs
	b.want(nvmeof.StatusHostIDInconsistent, sqe, make([]byte, 4096))
	// A short Report gets what fits.
	sqe.SetCDW(11, 1)
	r := b.ok(sqe, make([]byte, nvmeof.ResvReportHdrSize))
	if rep, err := nvmeof.DecodeResvReport(r.Data); err != nil || rep.Regs != 1 || len(rep.List) != 0 {
		t.Fatalf("short report %+v (%v)", rep, err)
	}
}

// TestReservationPreempt: a host takes the reservation over from a holder
// that is gone, whose writes then fail; it learns so from its
// notification log and an Asynchronous Event; reservations outlive
// controllers; Clear drops everything.
func TestReservationPreempt(t *testing.T) {
	const ok, conflict = nvmeof.StatusSuccess, nvmeof.StatusReservationConflict
	tgt, admin, io := resvHosts(t)
	a, b, c := io[0], io[1], io[2]
	a.register(ok, nvmeof.ResvRegister, 0, 0xA)
	b.register(ok, nvmeof.ResvRegister, 0, 0xB)
	c.register(ok, nvmeof.ResvRegister, 0, 0xC)
	a.acquire(ok, nvmeof.ResvAcquire, nvmeof.ResvWriteExclusiveRegOnly, 0xA, 0)
	aer := admin[0].hold(adminSQE(nvmeof.AdminAsyncEvent))
	admin[0].ok(setFeatSQE(nvmeof.FeatAsyncEvent, 0), nil) // notices off: reservation events do not depend on them

	b.acquire(conflict, nvmeof.ResvPreempt, nvmeof.ResvWriteExclusive, 0xB, 0x5) // no such key
	b.acquire(ok, nvmeof.ResvPreempt, nvmeof.ResvWriteExclusive, 0xB, 0xA)
	rep := c.report()
	if rep.Type != nvmeof.ResvWriteExclusive || rep.Regs != 2 || rep.List[0].HostID != hostIDB || !rep.List[0].Holds {
		t.Fatalf("report after preempt %+v", rep)
	}
	if got := a.io(nvmeof.NVMWrite); got != conflict {
		t.Errorf("preempted A's write: %v", got)
	}
	if got := c.io(nvmeof.NVMWrite); got != conflict {
		t.Errorf("C's write under B's write exclusive: %v", got)
	}
	if r := admin[0].event(); r != aer || r.Rsp.DW0() != aenDW0[aenResv] {
		t.Fatalf("A's event DW0 %#x, want %#x", r.Rsp.DW0(), aenDW0[aenResv])
	}
	admin[1].noEvent()
	// A: Registration Preempted. C: Reservation Released (its registrants-only
	// reservation became B's write exclusive).
	for _, w := range []struct {
		p   *peer
		typ uint8
	}{{admin[0], nvmeof.ResvLogRegPreempted}, {admin[2], nvmeof.ResvLogResvReleased}} {
		r := w.p.ok(logSQE(nvmeof.LogResvNotification, 0xFFFFFFFF, nvmeof.ResvLogSize, 0), make([]byte, nvmeof.ResvLogSize))
		l, _ := nvmeof.DecodeResvLog(r.Data)
		if l.Type != w.typ || l.NSID != 1 || l.Count != 1 || l.Available != 0 {
			t.Errorf("notification %+v, want type %d", l, w.typ)
		}
		r = w.p.ok(logSQE(nvmeof.LogResvNotification, 0xFFFFFFFF, nvmeof.ResvLogSize, 0), make([]byte, nvmeof.ResvLogSize))
		if l, _ := nvmeof.DecodeResvLog(r.Data); l.Count != 0 {
			t.Errorf("second read %+v, want an empty page", l)
		}
	}

	// The holder preempts a registrant by key: C goes, B keeps holding;
	// then B changes its reservation's type by preempting its own key.
	b.acquire(ok, nvmeof.ResvPreempt, nvmeof.ResvWriteExclusive, 0xB, 0xC)
	if rep := a.report(); rep.Type != nvmeof.ResvWriteExclusive || rep.Regs != 1 || rep.List[0].Key != 0xB || !rep.List[0].Holds {
		t.Fatalf("report after the holder preempted C %+v", rep)
	}
	b.acquire(ok, nvmeof.ResvPreempt, nvmeof.ResvExclusiveAccess, 0xB, 0xB)
	if got := c.io(nvmeof.NVMRead); got != conflict {
		t.Errorf("C's read under B's exclusive access: %v", got)
	}
	b.acquire(ok, nvmeof.ResvPreempt, nvmeof.ResvWriteExclusive, 0xB, 0xB)
	c.register(ok, nvmeof.ResvRegister, 0, 0xC)

	// B's controller goes (its admin connection closes) and comes back:
	// it still holds the reservation.
	admin[1].q.Closed()
	b2 := connectAdmin(t, tgt, testNQN, hostB, hostIDB, 0)
	bio := connectIO(t, tgt, testNQN, hostB, hostIDB, b2.q.Controller().ID(), 1)
	if got := bio.io(nvmeof.NVMWrite); got != ok {
		t.Fatalf("B's write on its new controller: %v", got)
	}
	// A masks registration preemption; C clears everything.
	mask := setFeatSQE(nvmeof.FeatResvMask, nvmeof.ResvMaskResvPreempted)
	mask.SetNSID(0xFFFFFFFF) // every namespace
	admin[0].ok(mask, nil)
	a.register(ok, nvmeof.ResvRegister, 0, 0xA)
	admin[0].hold(adminSQE(nvmeof.AdminAsyncEvent))
	c.release(ok, nvmeof.ResvClear, 0, 0xC)
	if rep := c.report(); rep.Regs != 0 || rep.Type != 0 {
		t.Fatalf("report after clear %+v", rep)
	}
	admin[0].noEvent()
	r := admin[0].ok(logSQE(nvmeof.LogResvNotification, 0xFFFFFFFF, nvmeof.ResvLogSize, 0), make([]byte, nvmeof.ResvLogSize))
	if l, _ := nvmeof.DecodeResvLog(r.Data); l.Count != 0 {
		t.Errorf("masked notification logged: %+v", l)
	}
	r = bio.exec(rwSQE(nvmeof.NVMWrite, 1, 0, 1), make([]byte, testBlock))
	if !r.Status().OK() {
		t.Fatalf("write after clear: %v", r.Status())
	}
}

// heldAsyncWrites runs writes asynchronously and holds each until the
// test completes it.
type heldAsyncWrites struct {
	backend.Backend
	held chan backend.Completer
}

func (h *heldAsyncWrites) ReadAsync([]byte, int64, backend.Completer) bool { return false }

func (h *heldAsyncWrites) WriteAsync(p []byte, off int64, fua bool, done backend.Completer) bool {
	if h.Backend.WriteAt(p, off, fua) != nil {
		return false
	}
	h.held <- done
	return true
}

// gatedExec runs a command through the queue's ExecGate, as a transport
// does; the command's completion (fakeTransport.Complete) must End it.
func (p *peer) gatedExec(sqe nvmeof.SQE, data []byte) *Request {
	p.t.Helper()
	p.cid++
	sqe.SetCID(p.cid)
	r := &Request{Cmd: sqe, Data: data}
	if !p.q.Gate().Begin(r, p.q.ID()) {
		p.t.Fatal("gate closed")
	}
	p.q.Execute(r)
	return r
}

// TestPreemptAndAbortWaits: Preempt and Abort completes only once the
// preempted host's write that was already in flight (on an asynchronous
// backend) has completed, so the write cannot land after the new holder
// was told it has the namespace; the preempted host's next write fails.
func TestPreemptAndAbortWaits(t *testing.T) {
	tgt := newTestTarget(t)
	ss := addSubsys(t, tgt, testNQN)
	be := &heldAsyncWrites{Backend: memBackend(t, 1<<20, testBlock), held: make(chan backend.Completer, 1)}
	addNS(t, ss, 1, be)
	adminA := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	a := connectIO(t, tgt, testNQN, hostA, hostIDA, adminA.q.Controller().ID(), 1)
	adminB := connectAdmin(t, tgt, testNQN, hostB, hostIDB, 0)
	b := connectIO(t, tgt, testNQN, hostB, hostIDB, adminB.q.Controller().ID(), 1)
	a.tr.gate, b.tr.gate = a.q.Gate(), b.q.Gate()
	a.register(nvmeof.StatusSuccess, nvmeof.ResvRegister, 0, 0xA)
	b.register(nvmeof.StatusSuccess, nvmeof.ResvRegister, 0, 0xB)
	b.acquire(nvmeof.StatusSuccess, nvmeof.ResvAcquire, nvmeof.ResvWriteExclusive, 0xB, 0)

	w := b.gatedExec(rwSQE(nvmeof.NVMWrite, 1, 0, 1), make([]byte, testBlock))
	write := <-be.held // B's write is in flight

	done := make(chan nvmeof.Status, 1)
	go func() {
		r := a.gatedExec(resvSQE(nvmeof.NVMResvAcquire, nvmeof.ResvPreemptAndAbort|nvmeof.ResvWriteExclusive<<8), keys(0xA, 0xB))
		done <- r.Status()
	}()
	untilWaiting(t, b.q.Gate(), done, "Preempt and Abort", "B's write")
	write.IODone(nil)
	if st := <-done; !st.OK() {
		t.Fatalf("Preempt and Abort: %v", st)
	}
	if !w.Status().OK() {
		t.Fatalf("B's write: %v", w.Status())
	}
	if r := b.gatedExec(rwSQE(nvmeof.NVMWrite, 1, 0, 1), make([]byte, testBlock)); r.Status().Code() != nvmeof.StatusReservationConflict {
		t.Fatalf("B's write after the preemption: %v", r.Status())
	}
}

// TestReservationFeaturesAndIdentify: the controller says it supports
// reservations, the namespace which types, and the features answer.
func TestReservationFeaturesAndIdentify(t *testing.T) {
	_, admin, _ := resvHosts(t)
	p := admin[0]
	if id := identifyCtrl(t, p); id.ONCS&nvmeof.ONCSResv == 0 {
		t.Errorf("ONCS %#x lacks reservations", id.ONCS)
	}
	r := p.ok(identifySQE(nvmeof.CNSNamespace, 1), make([]byte, nvmeof.IdentifySize))
	if id, _ := nvmeof.DecodeIdentifyNamespace(r.Data); id.RESCAP != nvmeof.RescapTypes|nvmeof.RescapIEKEY {
		t.Errorf("RESCAP %#x", id.RESCAP)
	}
	get := func(fid uint8, nsid uint32) *Request {
		sqe := getFeatSQE(fid)
		sqe.SetNSID(nsid)
		return p.exec(sqe, nil)
	}
	set := func(fid uint8, nsid, v uint32) nvmeof.Status {
		sqe := setFeatSQE(fid, v)
		sqe.SetNSID(nsid)
		return p.exec(sqe, nil).Status().Code()
	}
	if st := set(nvmeof.FeatResvMask, 1, nvmeof.ResvMaskRegPreempted); !st.OK() {
		t.Fatal(st)
	}
	if r := get(nvmeof.FeatResvMask, 1); !r.Status().OK() || r.Rsp.DW0() != nvmeof.ResvMaskRegPreempted {
		t.Errorf("mask %#x (%v)", r.Rsp.DW0(), r.Status())
	}
	if st := set(nvmeof.FeatResvMask, 1, 1); st != nvmeof.StatusInvalidField {
		t.Errorf("reserved mask bit: %v", st)
	}
	if st := set(nvmeof.FeatResvMask, 9, 0); st != nvmeof.StatusInvalidNamespace {
		t.Errorf("mask of no namespace: %v", st)
	}
	if st := set(nvmeof.FeatResvPersist, 1, 1); st != nvmeof.StatusInvalidField {
		t.Errorf("persistence through power loss: %v", st)
	}
	if r := get(nvmeof.FeatResvPersist, 1); !r.Status().OK() || r.Rsp.DW0() != 0 {
		t.Errorf("persistence %#x (%v)", r.Rsp.DW0(), r.Status())
	}
}

// FuzzReservation runs sequences of Reservation Register, Acquire and
// Release from three hosts with any CDW10 and keys: nothing panics, a
// host is registered once, a reservation is held by a registrant, the I/O
// path's view matches, and Report describes it.
func FuzzReservation(f *testing.F) {
	step := func(host, op byte, cdw10 uint32, cur, other uint64) []byte {
		b := make([]byte, 21)
		b[0] = op<<2 | host
		binary.LittleEndian.PutUint32(b[1:], cdw10)
		nvmeof.PutResvKeys(b[5:], cur, other)
		return b
	}
	f.Add(slices.Concat(step(0, 0, nvmeof.ResvRegister, 0, 0xA), step(1, 0, nvmeof.ResvRegister, 0, 0xB),
		step(0, 1, nvmeof.ResvAcquire|nvmeof.ResvWriteExclusive<<8, 0xA, 0),
		step(1, 1, nvmeof.ResvPreemptAndAbort|nvmeof.ResvExclusiveAccess<<8, 0xB, 0xA),
		step(1, 2, nvmeof.ResvRelease|nvmeof.ResvExclusiveAccess<<8, 0xB, 0)))
	f.Add(slices.Concat(step(2, 0, nvmeof.ResvRegister, 0, 0), step(0, 0, nvmeof.ResvRegister, 0, 0),
		step(2, 1, nvmeof.ResvAcquire|nvmeof.ResvExclusiveAccessAllRegs<<8, 0, 0),
		step(0, 0, nvmeof.ResvUnregister, 0, 0), step(2, 1, nvmeof.ResvPreempt|nvmeof.ResvWriteExclusive<<8, 0, 0),
		step(0, 2, nvmeof.ResvClear, 0, 0)))
	hosts := [][16]byte{hostIDA, hostIDB, hostIDC}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s resvState
		for ; len(b) >= 21; b = b[21:] {
			host := hosts[b[0]&3%3]
			cdw10 := binary.LittleEndian.Uint32(b[1:])
			data := b[5:21]
			switch b[0] >> 2 % 3 {
			case 0:
				s.register(host, cdw10, data)
			case 1:
				s.acquire(host, cdw10, data)
			case 2:
				s.release(host, cdw10, data[:8])
			}
			for i, g := range s.regs {
				if s.find(g.host) != i {
					t.Fatalf("host %x registered twice", g.host[0])
				}
			}
			switch v := s.view.Load(); {
			case s.rtype == 0 && v != nil, s.rtype != 0 && (v == nil || v.rtype != s.rtype || len(v.regs) != len(s.regs)):
				t.Fatalf("view %+v of type %d", v, s.rtype)
			case s.rtype > nvmeof.ResvExclusiveAccessAllRegs:
				t.Fatalf("type %d held", s.rtype)
			case s.rtype != 0 && !allRegs(s.rtype) && s.find(s.holder) < 0:
				t.Fatalf("holder %x not registered", s.holder[0])
			case s.rtype != 0 && allRegs(s.rtype) && len(s.regs) == 0:
				t.Fatal("all-registrants reservation with no registrant")
			}
			out := make([]byte, nvmeof.ResvReportHdrSize+4*nvmeof.ResvReportRegSize)
			s.report(out)
			rep, err := nvmeof.DecodeResvReport(out)
			if err != nil || int(rep.Regs) != len(s.regs) || rep.Type != s.rtype {
				t.Fatalf("report %+v (%v) of %d registrants, type %d", rep, err, len(s.regs), s.rtype)
			}
		}
	})
}

// TestReservationRegistrantLimit: registrations stop at MaxRegistrants.
func TestReservationRegistrantLimit(t *testing.T) {
	var s resvState
	for i := range MaxRegistrants + 1 {
		var host [16]byte
		binary.LittleEndian.PutUint32(host[:], uint32(i)+1)
		st, _ := s.register(host, nvmeof.ResvRegister, keys(0, 1))
		if want := i < MaxRegistrants; st.OK() != want {
			t.Fatalf("registrant %d: %v", i+1, st)
		}
	}
}

// TestPreemptAndAbortEachOther: two hosts preempt each other with abort
// on two namespaces at once. Each waits for the other's writes, not for
// the other's waiting Acquire: both complete.
func TestPreemptAndAbortEachOther(t *testing.T) {
	tgt := newTestTarget(t)
	ss := addSubsys(t, tgt, testNQN)
	be := &heldAsyncWrites{Backend: memBackend(t, 1<<20, testBlock), held: make(chan backend.Completer, 1)}
	addNS(t, ss, 1, be)
	addMemNS(t, ss, 2, 1<<20, testBlock)
	var x, y *peer
	for _, h := range []struct {
		p   **peer
		nqn string
		id  [16]byte
	}{{&x, hostA, hostIDA}, {&y, hostB, hostIDB}} {
		admin := connectAdmin(t, tgt, testNQN, h.nqn, h.id, 0)
		*h.p = connectIO(t, tgt, testNQN, h.nqn, h.id, admin.q.Controller().ID(), 1)
		(*h.p).tr.gate = (*h.p).q.Gate()
	}
	for nsid := uint32(1); nsid <= 2; nsid++ {
		for _, p := range []*peer{x, y} {
			sqe := resvSQE(nvmeof.NVMResvRegister, nvmeof.ResvRegister)
			sqe.SetNSID(nsid)
			key := uint64(0xA)
			if p == y {
				key = 0xB
			}
			p.ok(sqe, keys(0, key))
		}
	}
	y.gatedExec(rwSQE(nvmeof.NVMWrite, 1, 0, 1), make([]byte, testBlock))
	write := <-be.held // Y's write on namespace 1 is in flight

	preempt := func(p *peer, nsid uint32, cur, pkey uint64, done chan<- nvmeof.Status) {
		sqe := resvSQE(nvmeof.NVMResvAcquire, nvmeof.ResvPreemptAndAbort|nvmeof.ResvWriteExclusive<<8)
		sqe.SetNSID(nsid)
		done <- p.gatedExec(sqe, keys(cur, pkey)).Status()
	}
	xDone, yDone := make(chan nvmeof.Status, 1), make(chan nvmeof.Status, 1)
	go preempt(x, 1, 0xA, 0xB, xDone) // waits for Y's write
	untilWaiting(t, y.q.Gate(), xDone, "X's Preempt and Abort", "Y's write")
	go preempt(y, 2, 0xB, 0xA, yDone) // X has no write in flight: only its waiting Acquire
	select {
	case st := <-yDone:
		if !st.OK() {
			t.Fatalf("Y's Preempt and Abort: %v", st)
		}
	case <-time.After(30 * time.Second): // a deadlock's bound, not a timing check
		t.Fatal("Y's Preempt and Abort waits for X's, which waits for Y's: deadlock")
	}
	write.IODone(nil)
	if st := <-xDone; !st.OK() {
		t.Fatalf("X's Preempt and Abort: %v", st)
	}
}

// untilWaiting returns once something waits on g (Wait, waitIdle): the
// command that done reports must then be waiting for write, still held.
// It fails the test if done delivers first.
func untilWaiting(t *testing.T, g *ExecGate, done <-chan nvmeof.Status, what, write string) {
	t.Helper()
	for !g.waiting() {
		select {
		case st := <-done:
			t.Fatalf("%s completed (%v) while %s was in flight", what, st, write)
		default:
			runtime.Gosched()
		}
	}
}
