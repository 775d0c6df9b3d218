package target

import (
	"crypto/rand"
	"testing"

	"github.com/flashpath/flashpath/internal/dhchap"
	"github.com/flashpath/flashpath/nvmeof"
)

// TestQueueReports: a controller's queues, as Controller.Queues and
// Target.QueueTotals report them, through connects and closing.
func TestQueueReports(t *testing.T) {
	tgt := newTestTarget(t)
	addSubsys(t, tgt, testNQN)
	local := mustAddrPort("127.0.0.1:4420")
	peers := []string{"127.0.0.1:50000", "127.0.0.1:50001", "[::ffff:127.0.0.1]:50002"}

	a := newPeer(t, tgt)
	a.q.SetAddrs(local, mustAddrPort(peers[0]))
	a.ok(connectSQE(0, 31, 0), connectData(t, testNQN, hostA, hostIDA, nvmeof.CntlIDDynamic))
	a.ok(propSet(nvmeof.PropCC, uint64(nvmeof.CCValue(true))), nil)
	c := a.q.Controller()
	var io []*peer
	for qid := uint16(1); qid <= 2; qid++ {
		p := newPeer(t, tgt)
		p.q.SetAddrs(local, mustAddrPort(peers[qid]))
		p.ok(connectSQE(qid, 127, 0), connectData(t, testNQN, hostA, hostIDA, c.ID()))
		io = append(io, p)
	}
	qs := c.Queues()
	if len(qs) != 3 {
		t.Fatalf("%d queues: %+v", len(qs), qs)
	}
	for i, q := range qs {
		if q.QID != uint16(i) || q.State != QueueEnabled || q.TrType != nvmeof.TrTypeTCP || q.Auth != nil ||
			q.Local != local || q.Peer.Port() != mustAddrPort(peers[i]).Port() || q.Peer.Addr().String() != "127.0.0.1" {
			t.Errorf("queue %d: %+v", i, q)
		}
	}
	if s := qs[0].State.String(); s != "enabled" {
		t.Errorf("state %q", s)
	}
	want := QueueTotals{AdminQueues: 1, IOQueues: 2, CurrentAdmin: 1, CurrentIO: 2}
	if got := tgt.QueueTotals(); got != want {
		t.Errorf("totals %+v, want %+v", got, want)
	}

	// An I/O queue closes.
	io[0].q.Closed()
	want.CurrentIO = 1
	if got := tgt.QueueTotals(); got != want {
		t.Errorf("after an I/O queue closed: %+v, want %+v", got, want)
	}
	if qs := c.Queues(); len(qs) != 2 || qs[1].QID != 2 {
		t.Errorf("queues after QID 1 closed: %+v", qs)
	}
	// The admin queue closes: the controller goes with its other queue;
	// the queue's own Closed then changes nothing.
	a.q.Closed()
	want.CurrentAdmin, want.CurrentIO = 0, 0
	if got := tgt.QueueTotals(); got != want {
		t.Errorf("after the controller went: %+v, want %+v", got, want)
	}
	io[1].q.Closed()
	if got := tgt.QueueTotals(); got != want {
		t.Errorf("after its last queue's Closed: %+v, want %+v", got, want)
	}

	// A second controller's queues add to the totals.
	b := connectAdmin(t, tgt, testNQN, hostB, hostIDB, 0)
	connectIO(t, tgt, testNQN, hostB, hostIDB, b.q.Controller().ID(), 1)
	want = QueueTotals{AdminQueues: 2, IOQueues: 3, CurrentAdmin: 1, CurrentIO: 1}
	if got := tgt.QueueTotals(); got != want {
		t.Errorf("with a second controller: %+v, want %+v", got, want)
	}
	if q := b.q.Controller().Queues()[0]; q.Local.IsValid() || q.Peer.IsValid() {
		t.Errorf("addresses of a queue whose transport gave none: %+v", q)
	}
}

// TestQueueReportsAuth: a queue whose host must authenticate reports it,
// then what it negotiated.
func TestQueueReportsAuth(t *testing.T) {
	tgt, key := authTarget(t)
	p := newPeer(t, tgt)
	p.ok(connectSQE(0, 31, 0), connectData(t, testNQN, hostA, hostIDA, nvmeof.CntlIDDynamic))
	c := p.q.Controller()
	q := c.Queues()[0]
	if q.State != QueueAuthenticating || q.Auth == nil || q.Auth.State != AuthNegotiate || q.Auth.Hash.Valid() {
		t.Fatalf("before authenticating: %+v %+v", q, q.Auth)
	}
	if got := tgt.QueueTotals(); got.CurrentAdmin != 1 || got.AdminQueues != 1 {
		t.Errorf("totals %+v", got)
	}
	// A host with the wrong key fails.
	wrong, err := dhchap.GenerateSecret(rand.Reader, dhchap.SHA256, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := authenticate(t, p, dhchap.NewHost(dhchap.HostConfig{HostNQN: hostA, SubNQN: testNQN, Key: wrong}, 1)); err == nil {
		t.Fatal("authenticated with the wrong key")
	}
	if q := c.Queues()[0]; q.State != QueueAuthenticating || q.Auth.State != AuthFailure1 {
		t.Errorf("after a failed transaction: %+v %+v", q, q.Auth)
	}
	h := dhchap.NewHost(dhchap.HostConfig{HostNQN: hostA, SubNQN: testNQN, Key: key}, 2)
	if err := authenticate(t, p, h); err != nil {
		t.Fatal(err)
	}
	q = c.Queues()[0]
	wantHash, wantGroup := c.queues[0].auth.Negotiation()
	if q.State != QueueEnabled || q.Auth.State != AuthCompleted || q.Auth.Hash != wantHash || q.Auth.DHGroup != wantGroup || !wantHash.Valid() {
		t.Errorf("after authenticating: %+v %+v", q, q.Auth)
	}
	if s := q.Auth.State.String(); s != "completed" {
		t.Errorf("auth state %q", s)
	}
}

// TestNamespaceInFlight: a command on an asynchronous backend counts
// until its completion.
func TestNamespaceInFlight(t *testing.T) {
	tgt := newTestTarget(t)
	ss := addSubsys(t, tgt, testNQN)
	ns := addMemNS(t, ss, 1, 1<<20, testBlock)
	if n := ns.InFlight(); n != 0 {
		t.Fatalf("%d in flight on an idle namespace", n)
	}
	ns.refs.acquire()
	if n := ns.InFlight(); n != 1 {
		t.Errorf("%d in flight, want 1", n)
	}
	ns.refs.release()
}
