package rdma

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

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

// closeLog signals each "closing connection" record.
type closeLog chan struct{}

func (h closeLog) Enabled(context.Context, slog.Level) bool { return true }
func (h closeLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "closing connection") {
		h <- struct{}{}
	}
	return nil
}
func (h closeLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h closeLog) WithGroup(string) slog.Handler      { return h }

// TestShutdownWaitsForRunningWrite: the listener shuts down while a write
// runs in the core; the host's queue pair stays connected until the write
// has run (a host that saw it go would retry the write on another path,
// and this one could then put older data back), and the write lands.
func TestShutdownWaitsForRunningWrite(t *testing.T) {
	mem, err := backend.NewMem(1<<20, 512)
	if err != nil {
		t.Fatal(err)
	}
	be := &heldWrites{Backend: mem, entered: make(chan struct{}, 1), release: make(chan struct{})}
	closing := make(closeLog, 4)
	tt := startTargetOpts(t, be, Options{Logger: slog.New(closing)})
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
	<-closing // the admin connection's and the I/O connection's Close
	<-closing
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
