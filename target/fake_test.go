package target

import (
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target/backend"
)

// fakeTransport is a QueueTransport with no socket: it counts inline
// completions, passes deferred ones (Asynchronous Events) to a channel and
// closes a channel when the core closes the queue. Complete does not
// allocate, so it also serves the allocation benchmarks.
type fakeTransport struct {
	completions atomic.Int64
	deferred    chan *Request // completions with Request.Deferred set

	closeOnce sync.Once
	closed    chan struct{}
	reason    atomic.Pointer[error]

	gate *ExecGate // where set, each completion Ends its command (peer.gatedExec)

	peerClosed atomic.Bool // the host closed the connection (PeerClosed)
}

var (
	_ QueueTransport   = (*fakeTransport)(nil)
	_ PeerCloseChecker = (*fakeTransport)(nil)
)

func (f *fakeTransport) PeerClosed() bool { return f.peerClosed.Load() }

func newFakeTransport() *fakeTransport {
	return &fakeTransport{deferred: make(chan *Request, 16), closed: make(chan struct{})}
}

func (f *fakeTransport) Complete(r *Request) {
	if f.gate != nil {
		f.gate.End(r)
	}
	f.completions.Add(1)
	if r.Deferred {
		f.deferred <- r
	}
}

func (f *fakeTransport) Close(reason error) {
	f.closeOnce.Do(func() {
		f.reason.Store(&reason)
		close(f.closed)
	})
}

func (f *fakeTransport) isClosed() bool {
	select {
	case <-f.closed:
		return true
	default:
		return false
	}
}

// Names used throughout the transcripts.
const (
	testNQN   = "nqn.2026-11.io.flashpath:test"
	otherNQN  = "nqn.2026-11.io.flashpath:other"
	hostA     = "nqn.2014-08.org.nvmexpress:uuid:aaaaaaaa-0000-0000-0000-000000000001"
	hostB     = "nqn.2014-08.org.nvmexpress:uuid:bbbbbbbb-0000-0000-0000-000000000002"
	testBlock = 512
)

var (
	hostIDA = [16]byte{0xA1, 15: 0x01}
	hostIDB = [16]byte{0xB2, 15: 0x02}
)

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

func newTestTarget(t testing.TB) *Target {
	t.Helper()
	tgt := New(Options{Logger: quietLogger(), MaxQueueDepth: 128})
	t.Cleanup(func() { tgt.Close() })
	return tgt
}

// addSubsys adds a subsystem; with no hosts, any host may connect.
func addSubsys(t testing.TB, tgt *Target, nqn string, hosts ...string) *Subsystem {
	t.Helper()
	ss, err := tgt.AddSubsystem(SubsystemConfig{NQN: nqn, AllowAnyHost: len(hosts) == 0, AllowedHosts: hosts})
	if err != nil {
		t.Fatal(err)
	}
	return ss
}

func addMemNS(t testing.TB, ss *Subsystem, nsid uint32, size int64, bs int) *Namespace {
	t.Helper()
	be, err := backend.NewMem(size, bs)
	if err != nil {
		t.Fatal(err)
	}
	return addNS(t, ss, nsid, be)
}

func addNS(t testing.TB, ss *Subsystem, nsid uint32, be backend.Backend) *Namespace {
	t.Helper()
	ns, err := ss.AddNamespace(NamespaceConfig{NSID: nsid, Backend: be})
	if err != nil {
		be.Close()
		t.Fatal(err)
	}
	return ns
}

// peer is one queue of a fake host: the core's Queue and its transport.
type peer struct {
	t   testing.TB
	q   *Queue
	tr  *fakeTransport
	cid uint16
}

func newPeer(t testing.TB, tgt *Target) *peer {
	tr := newFakeTransport()
	return &peer{t: t, q: tgt.NewQueue(tr, netip.MustParseAddr("127.0.0.1")), tr: tr}
}

// exec runs one command that must complete inline and returns its request.
func (p *peer) exec(sqe nvmeof.SQE, data []byte) *Request {
	p.t.Helper()
	p.cid++
	sqe.SetCID(p.cid)
	r := &Request{Cmd: sqe, Data: data}
	before := p.tr.completions.Load()
	p.q.Execute(r)
	if got := p.tr.completions.Load() - before; got != 1 {
		p.t.Fatalf("opcode %#x: %d completions during Execute, want 1", sqe.Opcode(), got)
	}
	if r.Rsp.CID() != p.cid {
		p.t.Fatalf("completion CID %d, want %d", r.Rsp.CID(), p.cid)
	}
	return r
}

// want runs a command and checks its status (ignoring DNR unless dnr is asked).
func (p *peer) want(st nvmeof.Status, sqe nvmeof.SQE, data []byte) *Request {
	p.t.Helper()
	r := p.exec(sqe, data)
	if r.Status().Code() != st.Code() {
		p.t.Fatalf("opcode %#x: status %v, want %v", sqe.Opcode(), r.Status(), st)
	}
	return r
}

func (p *peer) ok(sqe nvmeof.SQE, data []byte) *Request {
	p.t.Helper()
	return p.want(nvmeof.StatusSuccess, sqe, data)
}

func connectSQE(qid, sqsize uint16, kato uint32) nvmeof.SQE {
	var sqe nvmeof.SQE
	sqe.SetConnect(qid, sqsize, kato)
	sqe.SGL().SetDataBlock(nvmeof.SGLInCapsule, 0, nvmeof.ConnectDataSize)
	return sqe
}

func connectData(t testing.TB, subnqn, hostnqn string, hostID [16]byte, cntlid uint16) []byte {
	t.Helper()
	b := make([]byte, nvmeof.ConnectDataSize)
	d := nvmeof.ConnectData{HostID: hostID, CntlID: cntlid, SubNQN: subnqn, HostNQN: hostnqn}
	if err := d.Encode(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// connectAdmin connects an admin queue and enables the controller.
func connectAdmin(t testing.TB, tgt *Target, subnqn, hostnqn string, hostID [16]byte, kato uint32) *peer {
	t.Helper()
	p := newPeer(t, tgt)
	r := p.ok(connectSQE(0, 31, kato), connectData(t, subnqn, hostnqn, hostID, nvmeof.CntlIDDynamic))
	if got := uint16(r.Rsp.DW0()); got != p.q.Controller().ID() {
		t.Fatalf("connect DW0 %d, controller %d", got, p.q.Controller().ID())
	}
	p.ok(propSet(nvmeof.PropCC, uint64(nvmeof.CCValue(true))), nil)
	return p
}

func connectIO(t testing.TB, tgt *Target, subnqn, hostnqn string, hostID [16]byte, cntlid, qid uint16) *peer {
	t.Helper()
	p := newPeer(t, tgt)
	p.ok(connectSQE(qid, 127, 0), connectData(t, subnqn, hostnqn, hostID, cntlid))
	return p
}

func propGet(off uint32, size8 bool) nvmeof.SQE {
	var sqe nvmeof.SQE
	sqe.SetPropertyGet(off, size8)
	return sqe
}

func propSet(off uint32, v uint64) nvmeof.SQE {
	var sqe nvmeof.SQE
	sqe.SetPropertySet(off, false, v)
	return sqe
}

func identifySQE(cns uint8, nsid uint32) nvmeof.SQE {
	var sqe nvmeof.SQE
	sqe.SetIdentify(cns, nsid)
	return sqe
}

func logSQE(lid uint8, nsid uint32, n uint32, off uint64) nvmeof.SQE {
	var sqe nvmeof.SQE
	sqe.SetGetLogPage(lid, nsid, n, off)
	return sqe
}

func setFeatSQE(fid uint8, v uint32) nvmeof.SQE {
	var sqe nvmeof.SQE
	sqe.SetFeatures(fid, v)
	return sqe
}

func getFeatSQE(fid uint8) nvmeof.SQE {
	var sqe nvmeof.SQE
	sqe.GetFeatures(fid)
	return sqe
}

func adminSQE(op uint8) nvmeof.SQE {
	var sqe nvmeof.SQE
	sqe.SetOpcode(op)
	return sqe
}

// rwSQE builds an LBA-addressed I/O command for nlb blocks (1-based).
func rwSQE(op uint8, nsid uint32, slba uint64, nlb uint32) nvmeof.SQE {
	var sqe nvmeof.SQE
	sqe.SetOpcode(op)
	sqe.SetNSID(nsid)
	sqe.SetRW(slba, nlb)
	return sqe
}

func dsmSQE(nsid uint32, ranges []nvmeof.DSMRange) (nvmeof.SQE, []byte) {
	var sqe nvmeof.SQE
	sqe.SetOpcode(nvmeof.NVMDSM)
	sqe.SetNSID(nsid)
	sqe.SetCDW(10, uint32(len(ranges)-1))
	sqe.SetCDW(11, nvmeof.DSMAttrDeallocate)
	b := make([]byte, len(ranges)*nvmeof.DSMRangeSize)
	for i, rg := range ranges {
		nvmeof.EncodeDSMRange(b, i, rg)
	}
	return sqe, b
}

func mustAddrPort(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
