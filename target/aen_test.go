package target

import (
	"errors"
	"slices"
	"testing"

	"github.com/flashpath/flashpath/nvmeof"
)

var nsChangedDW0 = nvmeof.AsyncEventDW0(nvmeof.AEReasonNotice, nvmeof.AENoticeNSAttrChanged, nvmeof.LogChangedNSList)

// hold submits a command that must not complete during Execute.
func (p *peer) hold(sqe nvmeof.SQE) *Request {
	p.t.Helper()
	p.cid++
	sqe.SetCID(p.cid)
	r := &Request{Cmd: sqe}
	before := p.tr.completions.Load()
	p.q.Execute(r)
	if n := p.tr.completions.Load() - before; n != 0 {
		p.t.Fatalf("opcode %#x completed at once (status %v), want it held", sqe.Opcode(), r.Status())
	}
	return r
}

// noEvent checks that no deferred completion is waiting.
func (p *peer) noEvent() {
	p.t.Helper()
	select {
	case r := <-p.tr.deferred:
		p.t.Fatalf("unexpected deferred completion CID %d DW0 %#x", r.Rsp.CID(), r.Rsp.DW0())
	default:
	}
}

// event returns the deferred completion the core must already have sent:
// namespace changes complete AERs on the caller's goroutine.
func (p *peer) event() *Request {
	p.t.Helper()
	select {
	case r := <-p.tr.deferred:
		return r
	default:
		p.t.Fatal("no Asynchronous Event completion")
		return nil
	}
}

func changedNS(t *testing.T, p *peer, rae bool) []uint32 {
	t.Helper()
	sqe := logSQE(nvmeof.LogChangedNSList, 0xFFFFFFFF, nvmeof.ChangedNSListSize, 0)
	if rae {
		sqe[41] |= 0x80
	}
	r := p.ok(sqe, make([]byte, nvmeof.ChangedNSListSize))
	ids, err := nvmeof.DecodeNSList(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func TestAsyncEventNamespaceChanged(t *testing.T) {
	tgt := newTestTarget(t)
	ss := addSubsys(t, tgt, testNQN)
	addMemNS(t, ss, 1, 1<<20, 512)
	a := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	a.ok(setFeatSQE(nvmeof.FeatAsyncEvent, nvmeof.OAESNamespaceAttr), nil)

	aer := a.hold(adminSQE(nvmeof.AdminAsyncEvent))
	a.noEvent()
	addMemNS(t, ss, 2, 1<<20, 512)
	r := a.event()
	if r != aer || !r.Deferred || !r.Status().OK() || r.Rsp.DW0() != nsChangedDW0 || r.Rsp.CID() != aer.Cmd.CID() {
		t.Fatalf("AEN: same request %v deferred %v status %v DW0 %#x CID %d; want DW0 %#x",
			r == aer, r.Deferred, r.Status(), r.Rsp.DW0(), r.Rsp.CID(), nsChangedDW0)
	}

	// Masked until the log is read: a second change completes nothing.
	a.hold(adminSQE(nvmeof.AdminAsyncEvent))
	if err := ss.RemoveNamespace(1); err != nil {
		t.Fatal(err)
	}
	a.noEvent()
	// Reading with RAE keeps the mask.
	if ids := changedNS(t, a, true); !slices.Equal(ids, []uint32{2, 1}) {
		t.Errorf("changed list %v, want [2 1]", ids)
	}
	addMemNS(t, ss, 3, 1<<20, 512)
	a.noEvent()
	// Reading without RAE clears the list and unmasks.
	if ids := changedNS(t, a, false); !slices.Equal(ids, []uint32{3}) {
		t.Errorf("changed list %v, want [3]", ids)
	}
	if ids := changedNS(t, a, false); len(ids) != 0 {
		t.Errorf("changed list %v after reading it", ids)
	}
	if err := ss.RemoveNamespace(3); err != nil {
		t.Fatal(err)
	}
	if r := a.event(); r.Rsp.DW0() != nsChangedDW0 {
		t.Errorf("AEN after unmasking: DW0 %#x", r.Rsp.DW0())
	}
	if ids := changedNS(t, a, false); !slices.Equal(ids, []uint32{3}) {
		t.Errorf("changed list %v, want [3]", ids)
	}
}

func TestAsyncEventPendingBeforeRequest(t *testing.T) {
	tgt := newTestTarget(t)
	ss := addSubsys(t, tgt, testNQN)
	a := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	a.ok(setFeatSQE(nvmeof.FeatAsyncEvent, nvmeof.OAESNamespaceAttr), nil)
	addMemNS(t, ss, 4, 1<<20, 512)
	// The notice waits for the next AER, which then completes at once.
	r := a.ok(adminSQE(nvmeof.AdminAsyncEvent), nil)
	if r.Rsp.DW0() != nsChangedDW0 {
		t.Errorf("AER DW0 %#x, want %#x", r.Rsp.DW0(), nsChangedDW0)
	}
	a.hold(adminSQE(nvmeof.AdminAsyncEvent))
	a.noEvent()
}

func TestAsyncEventDisabled(t *testing.T) {
	tgt := newTestTarget(t)
	ss := addSubsys(t, tgt, testNQN)
	a := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	a.ok(setFeatSQE(nvmeof.FeatAsyncEvent, 0), nil)
	a.hold(adminSQE(nvmeof.AdminAsyncEvent))
	addMemNS(t, ss, 1, 1<<20, 512)
	a.noEvent()
	// The change is still logged.
	if ids := changedNS(t, a, false); !slices.Equal(ids, []uint32{1}) {
		t.Errorf("changed list %v, want [1]", ids)
	}
}

func TestAsyncEventLimit(t *testing.T) {
	tgt := newTestTarget(t)
	addSubsys(t, tgt, testNQN)
	a := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	for range AERLimit {
		a.hold(adminSQE(nvmeof.AdminAsyncEvent))
	}
	r := a.want(nvmeof.StatusAERLimitExceeded, adminSQE(nvmeof.AdminAsyncEvent), nil)
	if !r.Status().DNR() {
		t.Errorf("status %v without DNR", r.Status())
	}
}

func TestKeepAliveExpiry(t *testing.T) {
	tgt := newTestTarget(t)
	ss := addSubsys(t, tgt, testNQN)
	addMemNS(t, ss, 1, 1<<20, 512)
	a := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 20) // 20 ms
	cntlid := a.q.Controller().ID()
	ios := []*peer{
		connectIO(t, tgt, testNQN, hostA, hostIDA, cntlid, 1),
		connectIO(t, tgt, testNQN, hostA, hostIDA, cntlid, 2),
	}
	// Nothing is sent: the timer fires and the controller is deleted, closing
	// every queue's transport.
	<-a.tr.closed
	for _, p := range ios {
		<-p.tr.closed
	}
	if tgt.Controllers() != 0 {
		t.Errorf("Controllers() = %d after keep-alive expiry", tgt.Controllers())
	}
	if tgt.Stats.KeepAliveExpired.Load() != 1 {
		t.Errorf("KeepAliveExpired = %d", tgt.Stats.KeepAliveExpired.Load())
	}
	// The controller ID is free: a new I/O queue for it is refused.
	newPeer(t, tgt).want(nvmeof.StatusConnectInvalidParam, connectSQE(3, 31, 0), connectData(t, testNQN, hostA, hostIDA, cntlid))
	// Transports report their connections gone; that must not fail.
	for _, p := range ios {
		p.q.Closed()
	}
	a.q.Closed()
	if err := *a.tr.reason.Load(); err == nil {
		t.Error("Close reason is nil")
	}
}

func TestAdminQueueClosedDeletesController(t *testing.T) {
	tgt := newTestTarget(t)
	addSubsys(t, tgt, testNQN)
	a := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	io := connectIO(t, tgt, testNQN, hostA, hostIDA, a.q.Controller().ID(), 1)
	other := connectAdmin(t, tgt, testNQN, hostB, hostIDB, 0)

	// Losing an I/O queue keeps the controller; its QID may be reused.
	io.q.Closed()
	if tgt.Controllers() != 2 || a.tr.isClosed() {
		t.Fatal("closing an I/O queue deleted the controller")
	}
	io = connectIO(t, tgt, testNQN, hostA, hostIDA, a.q.Controller().ID(), 1)

	a.q.Closed()
	if tgt.Controllers() != 1 {
		t.Errorf("Controllers() = %d after the admin queue closed, want 1", tgt.Controllers())
	}
	if !io.tr.isClosed() {
		t.Error("I/O queue transport not closed with its controller")
	}
	if other.tr.isClosed() {
		t.Error("another host's controller was closed")
	}
	// Disconnect on a connected queue succeeds (the transport then closes).
	var sqe nvmeof.SQE
	sqe.SetDisconnect()
	other.ok(sqe, nil)
}

func TestTargetCloseDeletesControllers(t *testing.T) {
	tgt := New(Options{Logger: quietLogger()})
	ss := addSubsys(t, tgt, testNQN)
	addMemNS(t, ss, 1, 1<<20, 512)
	a := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	if err := tgt.Close(); err != nil {
		t.Fatal(err)
	}
	if !a.tr.isClosed() || tgt.Controllers() != 0 {
		t.Error("Close left a controller")
	}
	// No new controller after Close.
	newPeer(t, tgt).want(nvmeof.StatusConnectCtrlBusy, connectSQE(0, 31, 0), connectData(t, testNQN, hostA, hostIDA, nvmeof.CntlIDDynamic))
}

func TestRemoveSubsystemDeletesControllers(t *testing.T) {
	tgt := newTestTarget(t)
	addSubsys(t, tgt, testNQN)
	a := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	if err := tgt.RemoveSubsystem(testNQN); err != nil {
		t.Fatal(err)
	}
	if !a.tr.isClosed() || tgt.Controllers() != 0 {
		t.Error("RemoveSubsystem left its controller")
	}
	if err := tgt.RemoveSubsystem(testNQN); err == nil {
		t.Error("removing a missing subsystem succeeded")
	}
}

func discoveryLog(t *testing.T, tgt *Target, host string) nvmeof.DiscoveryLog {
	t.Helper()
	p := connectAdmin(t, tgt, nvmeof.DiscoveryNQN, host, hostIDA, 0)
	defer p.q.Closed()
	id := identifyCtrl(t, p)
	if id.CntrlType != nvmeof.CtrlTypeDiscovery {
		t.Errorf("discovery controller CNTRLTYPE %d", id.CntrlType)
	}
	// Header first, then the whole page, as hosts do.
	r := p.ok(logSQE(nvmeof.LogDiscovery, 0, nvmeof.DiscoveryHeaderSize, 0), make([]byte, nvmeof.DiscoveryHeaderSize))
	hdr, err := nvmeof.DecodeDiscoveryLog(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	n := uint32(nvmeof.DiscoveryLogSize(int(hdr.NumRec)))
	r = p.ok(logSQE(nvmeof.LogDiscovery, 0, n, 0), make([]byte, n))
	log, err := nvmeof.DecodeDiscoveryLog(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	// A discovery controller has no I/O commands or NVM log pages.
	p.want(nvmeof.StatusInvalidLogPage, logSQE(nvmeof.LogSMART, 0, 512, 0), make([]byte, 512))
	p.want(nvmeof.StatusInvalidNamespace, identifySQE(nvmeof.CNSNamespace, 1), make([]byte, 4096))
	newPeer(t, tgt).want(nvmeof.StatusConnectInvalidParam, connectSQE(1, 31, 0), connectData(t, nvmeof.DiscoveryNQN, host, hostIDA, p.q.Controller().ID()))
	return log
}

func TestDiscoveryLog(t *testing.T) {
	tgt := newTestTarget(t)
	addSubsys(t, tgt, testNQN)         // any host
	addSubsys(t, tgt, otherNQN, hostA) // hostA only
	p1 := tgt.AddPort(PortInfo{TrType: nvmeof.TrTypeTCP, Addr: mustAddrPort("127.0.0.1:4420")})
	p2 := tgt.AddPort(PortInfo{TrType: nvmeof.TrTypeTCP, Addr: mustAddrPort("[::]:4421")})

	type key struct {
		nqn  string
		port uint16
	}
	entries := func(l nvmeof.DiscoveryLog) map[key]nvmeof.DiscoveryEntry {
		m := map[key]nvmeof.DiscoveryEntry{}
		for _, e := range l.Entries {
			m[key{e.SubNQN, e.PortID}] = e
		}
		return m
	}
	la := discoveryLog(t, tgt, hostA)
	if la.NumRec != 4 || len(la.Entries) != 4 {
		t.Fatalf("host A sees %d entries, want 4 (2 subsystems × 2 ports): %+v", la.NumRec, la.Entries)
	}
	m := entries(la)
	for _, nqn := range []string{testNQN, otherNQN} {
		e, ok := m[key{nqn, p1}]
		if !ok {
			t.Fatalf("no entry for %s on port %d", nqn, p1)
		}
		if e.TrType != nvmeof.TrTypeTCP || e.TrAddr != "127.0.0.1" || e.TrSvcID != "4420" || e.CntlID != nvmeof.CntlIDDynamic || e.SubType != nvmeof.SubTypeNVM {
			t.Errorf("entry %+v", e)
		}
		// nvme-cli 2.3 (libnvme 1.3) connect-all turns a secure channel
		// "not required" on TCP into the tls option, which Linux 6.1
		// refuses: report "not specified", as nvmet does without TLS.
		if e.TReq != nvmeof.TReqSecureChannelNotSpecified {
			t.Errorf("entry TREQ %#x, want not specified (0)", e.TReq)
		}
		// A wildcard listener reports the address the host reached.
		if e := m[key{nqn, p2}]; e.TrAddr != "127.0.0.1" || e.TrSvcID != "4421" {
			t.Errorf("wildcard entry %+v: want the local address 127.0.0.1", e)
		}
	}
	lb := discoveryLog(t, tgt, hostB)
	if len(lb.Entries) != 2 {
		t.Fatalf("host B sees %d entries, want 2: %+v", len(lb.Entries), lb.Entries)
	}
	for _, e := range lb.Entries {
		if e.SubNQN == otherNQN {
			t.Errorf("host B sees %s, whose allow list excludes it", otherNQN)
		}
	}
	// The generation counter moves with the configuration.
	tgt.RemovePort(p2)
	lb2 := discoveryLog(t, tgt, hostB)
	if len(lb2.Entries) != 1 || lb2.GenCtr == lb.GenCtr {
		t.Errorf("after removing a port: %d entries, genctr %d (was %d)", len(lb2.Entries), lb2.GenCtr, lb.GenCtr)
	}
	if tgt.Controllers() != 0 {
		t.Errorf("Controllers() = %d after the discovery queues closed", tgt.Controllers())
	}
}

func TestSubsystemValidation(t *testing.T) {
	tgt := newTestTarget(t)
	for _, cfg := range []SubsystemConfig{
		{NQN: ""},
		{NQN: "iqn.2026-11.example"},
		{NQN: nvmeof.DiscoveryNQN},
		{NQN: testNQN, Serial: "012345678901234567890"},
	} {
		if _, err := tgt.AddSubsystem(cfg); err == nil {
			t.Errorf("AddSubsystem(%+v) succeeded", cfg)
		}
	}
	ss := addSubsys(t, tgt, testNQN)
	if _, err := tgt.AddSubsystem(SubsystemConfig{NQN: testNQN}); err == nil {
		t.Error("duplicate subsystem accepted")
	}
	be := memBackend(t, 1<<20, 512)
	defer be.Close()
	if _, err := ss.AddNamespace(NamespaceConfig{NSID: MaxNSID + 1, Backend: be}); err == nil {
		t.Error("NSID beyond MaxNSID accepted")
	}
	addNS(t, ss, 1, be)
	if _, err := ss.AddNamespace(NamespaceConfig{NSID: 1, Backend: memBackend(t, 1<<20, 512)}); err == nil {
		t.Error("duplicate NSID accepted")
	}
	ns := addMemNS(t, ss, 0, 1<<20, 512)
	if ns.ID != 2 {
		t.Errorf("NSID 0 picked %d, want the lowest free, 2", ns.ID)
	}
	if err := ss.RemoveNamespace(9); err == nil {
		t.Error("removing a missing namespace succeeded")
	}
	if err := errors.Join(ss.RemoveNamespace(1), ss.RemoveNamespace(2)); err != nil {
		t.Error(err)
	}
}

var discChangedDW0 = nvmeof.AsyncEventDW0(nvmeof.AEReasonNotice, nvmeof.AENoticeDiscoveryLogChange, nvmeof.LogDiscovery)

// TestAsyncEventDiscoveryChanged: a discovery controller advertises and,
// once the host enables it, sends Discovery Log Page Change notices for
// subsystems added and removed and access lists changed, masked until
// the host reads the discovery log; NVM controllers get none.
func TestAsyncEventDiscoveryChanged(t *testing.T) {
	tgt := newTestTarget(t)
	a := addSubsys(t, tgt, testNQN)
	d := connectAdmin(t, tgt, nvmeof.DiscoveryNQN, hostA, hostIDA, 0)
	if oaes := d.q.Controller().identifyController().OAES; oaes != nvmeof.OAESDiscoveryChange {
		t.Fatalf("discovery OAES %#x, want %#x", oaes, uint32(nvmeof.OAESDiscoveryChange))
	}
	nvm := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	nvm.ok(setFeatSQE(nvmeof.FeatAsyncEvent, nvmeof.OAESNamespaceAttr|nvmeof.OAESDiscoveryChange), nil)
	nvm.hold(adminSQE(nvmeof.AdminAsyncEvent))

	// Not enabled yet: nothing.
	d.hold(adminSQE(nvmeof.AdminAsyncEvent))
	addSubsys(t, tgt, testNQN+"-b")
	d.noEvent()

	d.ok(setFeatSQE(nvmeof.FeatAsyncEvent, nvmeof.OAESDiscoveryChange), nil)
	addSubsys(t, tgt, testNQN+"-c")
	if r := d.event(); r.Rsp.DW0() != discChangedDW0 || !r.Status().OK() {
		t.Fatalf("AEN DW0 %#x status %v, want %#x", r.Rsp.DW0(), r.Status(), discChangedDW0)
	}
	// Masked until the log is read.
	d.hold(adminSQE(nvmeof.AdminAsyncEvent))
	a.SetHosts(false, []string{hostB}, nil)
	d.noEvent()
	d.ok(logSQE(nvmeof.LogDiscovery, 0, nvmeof.DiscoveryHeaderSize, 0), make([]byte, nvmeof.DiscoveryHeaderSize))
	if err := tgt.RemoveSubsystem(testNQN + "-c"); err != nil {
		t.Fatal(err)
	}
	if r := d.event(); r.Rsp.DW0() != discChangedDW0 {
		t.Fatalf("AEN after the log was read: DW0 %#x", r.Rsp.DW0())
	}
	// A change while no AER is outstanding waits for the next one (after
	// the log is read again).
	d.ok(logSQE(nvmeof.LogDiscovery, 0, nvmeof.DiscoveryHeaderSize, 0), make([]byte, nvmeof.DiscoveryHeaderSize))
	addSubsys(t, tgt, testNQN+"-e")
	if r := d.ok(adminSQE(nvmeof.AdminAsyncEvent), nil); r.Rsp.DW0() != discChangedDW0 {
		t.Fatalf("pending AEN DW0 %#x", r.Rsp.DW0())
	}
	nvm.noEvent()
}
