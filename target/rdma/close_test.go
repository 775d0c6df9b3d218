package rdma

import (
	"bytes"
	"log/slog"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/flashpath/flashpath/internal/testutil"
	"github.com/flashpath/flashpath/nvmeof"
	fprdma "github.com/flashpath/flashpath/rdma"
	"github.com/flashpath/flashpath/target/backend"
)

// heldWrites holds every write until release closes, saying when one
// has started.
type heldWrites struct {
	backend.Backend
	entered, release chan struct{}
}

func (h *heldWrites) WriteAt(p []byte, off int64, fua bool) error {
	h.entered <- struct{}{}
	<-h.release
	return h.Backend.WriteAt(p, off, fua)
}

// heldAsync runs writes asynchronously, as io_uring does: Execute has
// returned while the write is held; it completes on another goroutine.
type heldAsync struct{ *heldWrites }

func (h heldAsync) ReadAsync([]byte, int64, backend.Completer) bool { return false }

func (h heldAsync) WriteAsync(p []byte, off int64, fua bool, done backend.Completer) bool {
	h.entered <- struct{}{}
	go func() {
		<-h.release
		done.IODone(h.Backend.WriteAt(p, off, fua))
	}()
	return true
}

// TestShutdownWaitsForWriteInCore: the listener shuts down while a write
// is in the core (running, or in flight on an asynchronous backend after
// Execute returned); the host's queue pair stays connected until the
// write has run (a host that saw it go would retry the write on another
// path, and this one could then put older data back), and the write
// lands.
func TestShutdownWaitsForWriteInCore(t *testing.T) {
	t.Run("running", func(t *testing.T) { testShutdownWaits(t, false) })
	t.Run("in flight", func(t *testing.T) { testShutdownWaits(t, true) })
}

func testShutdownWaits(t *testing.T, async bool) {
	mem, err := backend.NewMem(1<<20, 512)
	if err != nil {
		t.Fatal(err)
	}
	be := &heldWrites{Backend: mem, entered: make(chan struct{}, 1), release: make(chan struct{})}
	var nsBackend backend.Backend = be
	if async {
		nsBackend = heldAsync{be}
	}
	closing := testutil.NewLogSignal("closing connection", 4)
	tt := startTargetOpts(t, nsBackend, Options{Logger: slog.New(closing)})
	var release sync.Once
	// Before the target's shutdown: a failed check leaves no write waiting.
	t.Cleanup(func() { release.Do(func() { close(be.release) }) })
	_, cntlid := tt.controller(t)
	q := tt.ioQueue(t, cntlid, 1, 4)

	data := bytes.Repeat([]byte("held"), 1024)
	c := rw(nvmeof.NVMWrite, 8, 8)
	c.inline = data
	q.submit(&c, 7)
	select {
	case <-be.entered:
	case wc := <-q.comps:
		if wc.Op == fprdma.OpRecv || wc.Err != nil {
			t.Fatalf("the write did not reach the backend: %+v", wc)
		}
		<-be.entered // that was the capsule's SEND
	}

	shut := make(chan error, 1)
	go func() { shut <- tt.ln.Close() }()
	<-closing.C() // the admin connection's and the I/O connection's Close
	<-closing.C()
	// Close logs once it has disconnected, where it does.
	if fc, ok := q.qp.(interface{ Down() bool }); ok && fc.Down() {
		t.Fatal("the host's queue pair was disconnected while the write was in the core")
	}
	// What the host has seen so far: at most its capsule's SEND done; no
	// response, no flush of its receives (a disconnect).
	for drained := false; !drained; {
		select {
		case wc, ok := <-q.comps:
			if !ok || wc.Err != nil || wc.Op == fprdma.OpRecv {
				t.Fatalf("the host saw %+v (open %v) while the write ran", wc, ok)
			}
		default:
			drained = true
		}
	}
	release.Do(func() { close(be.release) })
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if err := mem.ReadAt(got, 8*512); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the write did not land: %v", err)
	}
}

// TestReconnectFencesUnreadCommands: NVMe/RDMA's case of the NVMe/TCP
// test of that name. The host disconnects an I/O queue pair while a write
// runs on the connection's poll goroutine, a second write received and
// not yet polled, and connects a new controller (the old one lives on:
// its admin queue pair is up). The Connect waits for the first write, and
// the second never runs.
func TestReconnectFencesUnreadCommands(t *testing.T) {
	mem, err := backend.NewMem(1<<20, 512)
	if err != nil {
		t.Fatal(err)
	}
	be := &heldWrites{Backend: mem, entered: make(chan struct{}, 2), release: make(chan struct{})}
	fenced := testutil.NewLogSignal("closed earlier I/O connections", 1)
	tt := startTargetLog(t, be, Options{}, slog.New(fenced))
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(be.release) }) })
	_, cntlid := tt.controller(t)
	q := tt.ioQueue(t, cntlid, 1, 4)

	first := rw(nvmeof.NVMWrite, 0, 8)
	first.inline = make([]byte, 4096)
	q.submit(&first, 1)
	<-be.entered
	second := rw(nvmeof.NVMWrite, 16, 1)
	second.inline = bytes.Repeat([]byte{0xEE}, 512)
	q.submit(&second, 2)
	for sent := 0; sent < 2; { // both SENDs done: the second is in the target's receive
		if wc := <-q.comps; wc.Err != nil || wc.Op != fprdma.OpSend {
			t.Fatalf("completion %+v, want the capsules' SENDs", wc)
		}
		sent++
	}
	if err := q.qp.Disconnect(); err != nil {
		t.Fatal(err)
	}
	// The host's side goes down once the target's has (bounded).
	for deadline := time.Now().Add(wait); !q.qp.Down(); runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatal("the queue pair did not go down")
		}
	}

	again, err := tt.dial(t, 0, 32, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &cmd{}
	c.sqe.SetConnect(0, 31, 0)
	c.keyed = again.data[:nvmeof.ConnectDataSize]
	if err := (&nvmeof.ConnectData{HostID: hostID, CntlID: nvmeof.CntlIDDynamic, SubNQN: testNQN, HostNQN: hostNQN}).Encode(c.keyed); err != nil {
		t.Fatal(err)
	}
	again.submit(c, 7)
	for waiting := true; waiting; {
		select {
		case <-fenced.C():
			waiting = false
		case wc := <-again.comps:
			if wc.Op == fprdma.OpRecv {
				t.Fatal("Connect answered while the disconnected queue's write ran, its next one unpolled")
			}
		}
	}
	release.Do(func() { close(be.release) })
	cqe, _, err := again.next()
	if err != nil {
		t.Fatal(err)
	}
	ok(t, "admin connect", cqe)
	if err := tt.shutdown(); err != nil { // waits for the old connection's end
		t.Fatal(err)
	}
	if len(be.entered) != 0 {
		t.Fatal("the write left unpolled on the disconnected queue pair ran")
	}
}
