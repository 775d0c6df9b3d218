package target

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target/backend"
)

type testConn struct {
	closed    chan error
	wasClosed atomic.Bool
	served    bool
}

func (c *testConn) Close(reason error) {
	c.wasClosed.Store(true)
	c.closed <- reason
}

func TestConnsShutdownClosesAndWaits(t *testing.T) {
	var s Conns[*testConn]
	c := &testConn{closed: make(chan error, 1)}
	ended := make(chan struct{})
	if !s.Go(c, func() { <-ended; c.served = true }) {
		t.Fatal("Go before Shutdown refused the connection")
	}
	done := s.Track()
	stopped := false
	go func() {
		// The connection ends once it is closed; the tracked goroutine after.
		<-c.closed
		close(ended)
		done()
	}()
	forgot := false
	if err := s.Shutdown(context.Background(), func() error { stopped = true; return nil }, func() { forgot = c.wasClosed.Load() }); err != nil {
		t.Fatal(err)
	}
	if !stopped || !c.served || !forgot {
		t.Fatalf("Shutdown returned before stop (%v), before the connection's goroutine ended (%v), or without closed after the connections were closed (%v)", stopped, c.served, forgot)
	}
	// A connection arriving after Shutdown is closed and served inline.
	late := &testConn{closed: make(chan error, 1)}
	ran := false
	if s.Go(late, func() { ran = true }) {
		t.Fatal("Go after Shutdown started a goroutine")
	}
	if !ran || len(late.closed) != 1 {
		t.Fatal("a late connection was not closed and served")
	}
	if err := s.Shutdown(context.Background(), func() error { return errors.New("twice") }, nil); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

// connectAsync connects an admin queue of host on a new goroutine; the
// status comes on the channel.
func connectAsync(t *testing.T, tgt *Target, host string, hostID [16]byte) <-chan nvmeof.Status {
	p := newPeer(t, tgt)
	r := &Request{Cmd: connectSQE(0, 31, 0), Data: connectData(t, testNQN, host, hostID, nvmeof.CntlIDDynamic)}
	done := make(chan nvmeof.Status, 1)
	go func() {
		p.q.Execute(r)
		done <- r.Status()
	}()
	return done
}

// TestReconnectWaitsForClosingQueues: a host whose connection ended
// while its write was still in flight on the backend (it gave up: an I/O
// timeout, a reset) connects again; its Connect completes only once that
// write has, so the write it sends again cannot be overtaken by the old
// one.
func TestReconnectWaitsForClosingQueues(t *testing.T) {
	tgt := newTestTarget(t)
	ss := addSubsys(t, tgt, testNQN)
	be := &heldAsyncWrites{Backend: memBackend(t, 1<<20, testBlock), held: make(chan backend.Completer, 1)}
	addNS(t, ss, 1, be)
	admin := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	io := connectIO(t, tgt, testNQN, hostA, hostIDA, admin.q.Controller().ID(), 1)
	io.tr.gate = io.q.Gate()
	io.gatedExec(rwSQE(nvmeof.NVMWrite, 1, 0, 1), make([]byte, testBlock))
	write := <-be.held
	io.q.Gate().Close() // the connection ends, as its transport closes it
	admin.q.Closed()    // and the controller goes with its admin queue

	// Another host connects at once.
	connectAdmin(t, tgt, testNQN, hostB, hostIDB, 0)
	done := connectAsync(t, tgt, hostA, hostIDA)
	untilWaiting(t, io.q.Gate(), done, "the host's Connect", "its earlier write")
	write.IODone(nil)
	if st := <-done; !st.OK() {
		t.Fatalf("Connect: %v", st)
	}
}

// TestReconnectFencesClosedQueues: a host closed its I/O connection while
// a write was in flight, and connects again before the queue's goroutine
// has seen the end. Connect fences that queue (nothing more it reads
// runs) and waits for the write; a live queue of the same host, with its
// own write in flight, is neither fenced nor waited for.
func TestReconnectFencesClosedQueues(t *testing.T) {
	tgt := newTestTarget(t)
	ss := addSubsys(t, tgt, testNQN)
	be := &heldAsyncWrites{Backend: memBackend(t, 1<<20, testBlock), held: make(chan backend.Completer, 2)}
	addNS(t, ss, 1, be)
	admin := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	live := connectIO(t, tgt, testNQN, hostA, hostIDA, admin.q.Controller().ID(), 1)
	gone := connectIO(t, tgt, testNQN, hostA, hostIDA, admin.q.Controller().ID(), 2)
	for _, p := range []*peer{live, gone} {
		p.tr.gate = p.q.Gate()
		p.gatedExec(rwSQE(nvmeof.NVMWrite, 1, 0, 1), make([]byte, testBlock))
	}
	liveWrite, goneWrite := <-be.held, <-be.held
	gone.tr.peerClosed.Store(true) // closed by the host; its goroutine has not read the end

	done := connectAsync(t, tgt, hostA, hostIDA)
	untilWaiting(t, gone.q.Gate(), done, "the host's Connect", "the write of its closed connection")
	if !gone.q.Gate().Closing() || live.q.Gate().Closing() {
		t.Fatalf("fenced: closed queue %v, live queue %v; want true, false", gone.q.Gate().Closing(), live.q.Gate().Closing())
	}
	if gone.q.Gate().Begin(&Request{Cmd: rwSQE(nvmeof.NVMWrite, 1, 0, 1)}, gone.q.ID()) {
		t.Fatal("the fenced queue began a command it read after the host closed it")
	}
	goneWrite.IODone(nil)
	if st := <-done; !st.OK() {
		t.Fatalf("Connect: %v", st)
	}
	liveWrite.IODone(nil)
}
