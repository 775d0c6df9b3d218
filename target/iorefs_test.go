package target

import (
	"bytes"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target/backend"
)

// heldBackend runs reads asynchronously and holds them until the test
// completes them; it notes whether Close came while one was still held.
type heldBackend struct {
	backend.Backend
	held        chan backend.Completer
	outstanding atomic.Int32
	closedEarly atomic.Bool
	closed      atomic.Bool
}

func (h *heldBackend) ReadAsync(p []byte, off int64, done backend.Completer) bool {
	if err := h.Backend.ReadAt(p, off); err != nil {
		return false
	}
	h.outstanding.Add(1)
	h.held <- done
	return true
}

func (h *heldBackend) WriteAsync([]byte, int64, bool, backend.Completer) bool { return false }

// complete finishes one held read.
func (h *heldBackend) complete() {
	done := <-h.held
	h.outstanding.Add(-1)
	done.IODone(nil)
}

func (h *heldBackend) Close() error {
	if h.outstanding.Load() > 0 {
		h.closedEarly.Store(true)
	}
	h.closed.Store(true)
	return h.Backend.Close()
}

// TestRemoveNamespaceWaitsForIO: removing a namespace closes its backend
// only after the I/O in flight on it has completed (a closed fd can be
// reused by another file under a read still in flight); a command after the
// removal gets Invalid Namespace; I/O that never finishes leaves the
// backend open and says so.
func TestRemoveNamespaceWaitsForIO(t *testing.T) {
	be := &heldBackend{Backend: memBackend(t, 1<<20, 512), held: make(chan backend.Completer, 4)}
	tgt := newTestTarget(t)
	ss := addSubsys(t, tgt, testNQN)
	addNS(t, ss, 1, be)
	admin := connectAdmin(t, tgt, testNQN, hostA, hostIDA, 0)
	io := connectIO(t, tgt, testNQN, hostA, hostIDA, admin.q.Controller().ID(), 1)

	want := pattern(512, 9)
	io.ok(rwSQE(nvmeof.NVMWrite, 1, 3, 1), want)
	r := &Request{Cmd: rwSQE(nvmeof.NVMRead, 1, 3, 1), Data: make([]byte, 512)}
	io.q.Execute(r)
	removed := make(chan error, 1)
	go func() { removed <- ss.RemoveNamespace(1) }()
	be.complete()
	if err := <-removed; err != nil {
		t.Fatal(err)
	}
	if !be.closed.Load() || be.closedEarly.Load() {
		t.Fatalf("backend closed %v, closed with a read in flight %v", be.closed.Load(), be.closedEarly.Load())
	}
	if done := <-io.tr.deferred; done != r || !r.Status().OK() || !bytes.Equal(r.Data, want) {
		t.Fatalf("held read completed with %v", r.Status())
	}
	io.want(nvmeof.StatusInvalidNamespace, rwSQE(nvmeof.NVMRead, 1, 3, 1), make([]byte, 512))

	// A read that never completes: removal gives up and leaves the backend open.
	old := drainTimeout
	drainTimeout = time.Millisecond
	defer func() { drainTimeout = old }()
	be2 := &heldBackend{Backend: memBackend(t, 1<<20, 512), held: make(chan backend.Completer, 4)}
	addNS(t, ss, 2, be2)
	r2 := &Request{Cmd: rwSQE(nvmeof.NVMRead, 2, 0, 1), Data: make([]byte, 512)}
	io.q.Execute(r2)
	err := ss.RemoveNamespace(2)
	if err == nil || !strings.Contains(err.Error(), "still in flight") || be2.closed.Load() {
		t.Fatalf("removal with a stuck read: %v (closed %v)", err, be2.closed.Load())
	}
	be2.complete()
	<-io.tr.deferred
	be2.Backend.Close()
}
