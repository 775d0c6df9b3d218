package target

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target/backend"
)

var anaChangedDW0 = nvmeof.AsyncEventDW0(nvmeof.AEReasonNotice, nvmeof.AENoticeANAChange, nvmeof.LogANA)

// connectVia connects an admin queue through port (AddPort's ID) and
// enables the controller.
func connectVia(t *testing.T, tgt *Target, port uint16, hostnqn string, hostID [16]byte) *peer {
	t.Helper()
	p := newPeer(t, tgt)
	p.q.SetPort(port)
	p.ok(connectSQE(0, 31, 0), connectData(t, testNQN, hostnqn, hostID, nvmeof.CntlIDDynamic))
	p.ok(propSet(nvmeof.PropCC, uint64(nvmeof.CCValue(true))), nil)
	return p
}

func anaLog(t *testing.T, p *peer, rgo bool) nvmeof.ANALog {
	t.Helper()
	sqe := logSQE(nvmeof.LogANA, 0, 4096, 0)
	if rgo {
		sqe[41] |= nvmeof.ANALogRGO
	}
	r := p.ok(sqe, make([]byte, 4096))
	l, err := nvmeof.DecodeANALog(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestANA: a group's state set on one port reaches the controllers of
// that port only: an ANA change notice, the ANA log page, Identify's
// ANAGRPID, and I/O to the group's namespaces refused there with the
// path status multipath hosts fail over on (no DNR) while the other port
// serves them.
func TestANA(t *testing.T) {
	tgt := newTestTarget(t)
	ss := addSubsys(t, tgt, testNQN)
	addMemNS(t, ss, 1, 1<<20, 512)
	be, err := backend.NewMem(1<<20, 512)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ss.AddNamespace(NamespaceConfig{NSID: 2, Backend: be, ANAGroup: 2}); err != nil {
		t.Fatal(err)
	}
	if _, err := ss.AddNamespace(NamespaceConfig{NSID: 3, Backend: be, ANAGroup: MaxANAGroups + 1}); err == nil {
		t.Fatal("ANA group past ANAGRPMAX accepted")
	}
	keyA := PortKey{nvmeof.TrTypeTCP, netip.MustParseAddrPort("127.0.0.1:4420")}
	keyB := PortKey{nvmeof.TrTypeTCP, netip.MustParseAddrPort("127.0.0.1:4421")}
	portA := tgt.AddPort(PortInfo{TrType: keyA.TrType, Addr: keyA.Addr})
	portB := tgt.AddPort(PortInfo{TrType: keyB.TrType, Addr: keyB.Addr})
	a := connectVia(t, tgt, portA, hostA, hostIDA)
	b := connectVia(t, tgt, portB, hostB, hostIDB)

	id, err := nvmeof.DecodeIdentifyController(a.ok(identifySQE(nvmeof.CNSController, 0), make([]byte, nvmeof.IdentifySize)).Data)
	if err != nil || id.CMIC&nvmeof.CMICANA == 0 || id.OAES&nvmeof.OAESANAChange == 0 || id.ANAGRPMAX != MaxANAGroups || id.NANAGRPID != MaxANAGroups || id.ANACAP&nvmeof.ANACAPInaccessible == 0 {
		t.Fatalf("identify controller: CMIC %#x OAES %#x ANAGRPMAX %d NANAGRPID %d ANACAP %#x, %v", id.CMIC, id.OAES, id.ANAGRPMAX, id.NANAGRPID, id.ANACAP, err)
	}
	nsid, err := nvmeof.DecodeIdentifyNamespace(a.ok(identifySQE(nvmeof.CNSNamespace, 2), make([]byte, nvmeof.IdentifySize)).Data)
	if err != nil || nsid.ANAGRPID != 2 {
		t.Fatalf("identify namespace 2: ANAGRPID %d, %v", nsid.ANAGRPID, err)
	}
	if l := anaLog(t, a, false); len(l.Groups) != 2 || l.Groups[0].GroupID != 1 || l.Groups[0].State != nvmeof.ANAOptimized ||
		len(l.Groups[0].NSIDs) != 1 || l.Groups[1].GroupID != 2 || l.Groups[1].NSIDs[0] != 2 {
		t.Fatalf("ANA log before: %+v", l)
	}

	for _, p := range []*peer{a, b} {
		p.ok(setFeatSQE(nvmeof.FeatAsyncEvent, nvmeof.OAESNamespaceAttr|nvmeof.OAESANAChange), nil)
	}
	aerA, _ := a.hold(adminSQE(nvmeof.AdminAsyncEvent)), b.hold(adminSQE(nvmeof.AdminAsyncEvent))
	if err := ss.SetANAState(keyA, 2, nvmeof.ANAInaccessible); err != nil {
		t.Fatal(err)
	}
	if r := a.event(); r != aerA || r.Rsp.DW0() != anaChangedDW0 {
		t.Fatalf("AEN on port A: DW0 %#x, want %#x", r.Rsp.DW0(), anaChangedDW0)
	}
	b.noEvent()
	l := anaLog(t, a, false)
	if l.ChangeCount == 0 || len(l.Groups) != 2 || l.Groups[1].State != nvmeof.ANAInaccessible || l.Groups[1].ChangeCount != l.ChangeCount || l.Groups[0].State != nvmeof.ANAOptimized {
		t.Fatalf("ANA log on port A: %+v", l)
	}
	if l := anaLog(t, a, true); len(l.Groups) != 2 || l.Groups[1].NSIDs != nil {
		t.Errorf("ANA log groups only: %+v", l)
	}
	if l := anaLog(t, b, false); l.Groups[1].State != nvmeof.ANAOptimized {
		t.Errorf("ANA log on port B: %+v", l)
	}

	ioA := connectIO(t, tgt, testNQN, hostA, hostIDA, a.q.Controller().ID(), 1)
	buf := make([]byte, 512)
	r := ioA.want(nvmeof.StatusANAInaccessible, rwSQE(nvmeof.NVMRead, 2, 0, 1), buf)
	if r.Status().DNR() {
		t.Error("ANA inaccessible with DNR: the host would not retry on another path")
	}
	ioA.ok(rwSQE(nvmeof.NVMRead, 1, 0, 1), buf)
	w := &Request{Cmd: rwSQE(nvmeof.NVMWrite, 2, 0, 1)}
	w.Cmd.SGL().SetDataBlock(nvmeof.SGLInCapsule, 0, 512)
	if st := ioA.q.Admit(w); st.Code() != nvmeof.StatusANAInaccessible {
		t.Errorf("Admit of a write on an inaccessible path: %v", st)
	}
	ioB := connectIO(t, tgt, testNQN, hostB, hostIDB, b.q.Controller().ID(), 1)
	ioB.ok(rwSQE(nvmeof.NVMRead, 2, 0, 1), buf)

	// Every group, then back: the notice comes again once the log was read.
	a.hold(adminSQE(nvmeof.AdminAsyncEvent))
	if err := ss.SetANAState(keyA, 0, nvmeof.ANAOptimized); err != nil {
		t.Fatal(err)
	}
	if r := a.event(); r.Rsp.DW0() != anaChangedDW0 {
		t.Fatalf("second AEN DW0 %#x", r.Rsp.DW0())
	}
	ioA.ok(rwSQE(nvmeof.NVMRead, 2, 0, 1), buf)
	if got := ss.ANAState(keyA, 2); got != nvmeof.ANAOptimized {
		t.Errorf("ANAState: %v", got)
	}
	if err := ss.SetANAState(keyA, MaxANAGroups+1, nvmeof.ANAOptimized); err == nil {
		t.Error("group past ANAGRPMAX set")
	}
	if err := ss.SetANAState(keyA, 1, nvmeof.ANAState(7)); err == nil {
		t.Error("undefined state set")
	}
}

// TestAsyncEventKindsApart: each kind of event is masked on its own until
// its own log page is read, as nvmet and SPDK do: an ANA change while a
// namespace notice is masked is still reported, reading the ANA log does
// not unmask namespace notices, and events of two kinds wait for two AERs.
func TestAsyncEventKindsApart(t *testing.T) {
	tgt := newTestTarget(t)
	ss := addSubsys(t, tgt, testNQN)
	addMemNS(t, ss, 1, 1<<20, 512)
	key := PortKey{nvmeof.TrTypeTCP, netip.MustParseAddrPort("127.0.0.1:4420")}
	a := connectVia(t, tgt, tgt.AddPort(PortInfo{TrType: key.TrType, Addr: key.Addr}), hostA, hostIDA)
	a.ok(setFeatSQE(nvmeof.FeatAsyncEvent, nvmeof.OAESNamespaceAttr|nvmeof.OAESANAChange), nil)

	a.hold(adminSQE(nvmeof.AdminAsyncEvent))
	addMemNS(t, ss, 2, 1<<20, 512)
	if r := a.event(); r.Rsp.DW0() != nsChangedDW0 {
		t.Fatalf("first AEN DW0 %#x, want the namespace notice", r.Rsp.DW0())
	}
	// Namespace notices are masked; an ANA change still waits for an AER.
	if err := ss.SetANAState(key, 1, nvmeof.ANANonOptimized); err != nil {
		t.Fatal(err)
	}
	if r := a.ok(adminSQE(nvmeof.AdminAsyncEvent), nil); r.Rsp.DW0() != anaChangedDW0 {
		t.Fatalf("AER after the ANA change: DW0 %#x, want %#x", r.Rsp.DW0(), anaChangedDW0)
	}
	// Reading the ANA log unmasks ANA notices only.
	anaLog(t, a, false)
	a.hold(adminSQE(nvmeof.AdminAsyncEvent))
	addMemNS(t, ss, 3, 1<<20, 512)
	a.noEvent()
	if ids := changedNS(t, a, false); !slices.Equal(ids, []uint32{2, 3}) {
		t.Errorf("changed list %v, want [2 3]", ids)
	}
	// Both kinds unmasked, no AER waiting after this one: one event
	// each, in the order they came.
	if err := ss.SetANAState(key, 1, nvmeof.ANAOptimized); err != nil {
		t.Fatal(err)
	}
	if r := a.event(); r.Rsp.DW0() != anaChangedDW0 {
		t.Fatalf("AEN DW0 %#x, want the ANA notice", r.Rsp.DW0())
	}
	anaLog(t, a, false)
	addMemNS(t, ss, 4, 1<<20, 512)
	if err := ss.SetANAState(key, 1, nvmeof.ANANonOptimized); err != nil {
		t.Fatal(err)
	}
	for _, want := range []uint32{nsChangedDW0, anaChangedDW0} {
		if r := a.ok(adminSQE(nvmeof.AdminAsyncEvent), nil); r.Rsp.DW0() != want {
			t.Errorf("AER DW0 %#x, want %#x", r.Rsp.DW0(), want)
		}
	}
	a.hold(adminSQE(nvmeof.AdminAsyncEvent))
	a.noEvent()
}
