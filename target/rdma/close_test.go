package rdma

import (
	"bytes"
	"log/slog"
	"sync"
	"testing"

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
