package tcp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashpath/flashpath/internal/sockio"
	"github.com/flashpath/flashpath/internal/tcppeer"
	"github.com/flashpath/flashpath/internal/testutil"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/backend"
)

// gatedBackend holds every write until release closes, saying when one
// has started (entered) and whether one has finished (wrote).
type gatedBackend struct {
	backend.Backend
	entered, release chan struct{}
	wrote            atomic.Bool
}

func (g *gatedBackend) WriteAt(p []byte, off int64, fua bool) error {
	g.entered <- struct{}{}
	<-g.release
	err := g.Backend.WriteAt(p, off, fua)
	g.wrote.Store(true)
	return err
}

// asyncGated runs writes asynchronously, as io_uring does: Execute has
// returned while the write is held; it completes on another goroutine.
type asyncGated struct{ *gatedBackend }

func (a asyncGated) ReadAsync([]byte, int64, backend.Completer) bool { return false }

func (a asyncGated) WriteAsync(p []byte, off int64, fua bool, done backend.Completer) bool {
	a.entered <- struct{}{}
	go func() {
		<-a.release
		err := a.Backend.WriteAt(p, off, fua)
		a.wrote.Store(true)
		done.IODone(err)
	}()
	return true
}

// closeRecorder is the target's end of a connection, noting whether a
// write had finished when it was first closed.
type closeRecorder struct {
	net.Conn
	be                          *gatedBackend
	closes                      atomic.Int32
	closedBeforeWrite, recorded atomic.Bool
}

func (c *closeRecorder) Close() error {
	if c.closes.Add(1) == 1 {
		c.closedBeforeWrite.Store(!c.be.wrote.Load())
		c.recorded.Store(true)
	}
	return c.Conn.Close()
}

// pipeConn serves one connection of l over net.Pipe: the host's end, the
// target's (recorded) end, and a channel closed when serve returns.
func pipeConn(t *testing.T, l *Listener, be *gatedBackend) (*tcppeer.Host, *conn, *closeRecorder, chan struct{}) {
	hostEnd, tgtEnd := net.Pipe()
	t.Cleanup(func() { hostEnd.Close() })
	rec := &closeRecorder{Conn: tgtEnd, be: be}
	c := newConn(l, rec)
	c.leave = func() {}
	done := make(chan struct{})
	go func() { defer close(done); c.serve() }()
	hostEnd.SetDeadline(time.Now().Add(30 * time.Second)) // a safety net, not synchronisation
	return &tcppeer.Host{T: t, NC: hostEnd}, c, rec, done
}

// heldWrite sends a 4 KiB write at offset 0 (its capsule, the R2T, its
// data) and returns once the core runs it and it waits in the backend.
func heldWrite(t *testing.T, h *tcppeer.Host, be *gatedBackend) {
	t.Helper()
	cid := h.NextCID()
	h.Write(h.Capsule(tcppeer.IOCommand(nvmeof.NVMWrite, cid, 0, 4096), nil))
	hd, b := h.ReadPDU()
	r2t, err := nvmeof.DecodeDataPDU(b)
	if hd.Type != nvmeof.PDUR2T || err != nil {
		t.Fatalf("PDU type %#x (%v), want an R2T", hd.Type, err)
	}
	h.Write(h.H2CData(cid, r2t.TTag, 0, make([]byte, 4096)))
	<-be.entered
}

// TestCloseWaitsForCommandsInCore: a connection that ends while a write
// is in the core (running, or in flight on an asynchronous backend after
// Execute returned) keeps its socket open until the write has run, and
// runs nothing after it, so the host sees the connection end only after
// every command it sent that the target took has run. A multipath host
// retries on another path when it sees the end; a write that ran here
// after that retry would put older data back (TestMultipathFailover
// caught that under load). The end comes from the listener's shutdown or
// the core (Close), or from the host's own protocol error.
func TestCloseWaitsForCommandsInCore(t *testing.T) {
	for _, tc := range []struct {
		name           string
		async, hostErr bool
	}{
		{"running/Close", false, false},
		{"in flight/Close", true, false},
		{"in flight/protocol error", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) { testCloseWaits(t, tc.async, tc.hostErr) })
	}
}

func testCloseWaits(t *testing.T, async, hostErr bool) {
	mem, err := backend.NewMem(1<<20, 512)
	if err != nil {
		t.Fatal(err)
	}
	be := &gatedBackend{Backend: mem, entered: make(chan struct{}, 1), release: make(chan struct{})}
	var nsBackend backend.Backend = be
	if async {
		nsBackend = asyncGated{be}
	}
	tgt := target.New(target.Options{Logger: quietLogger(), MaxQueueDepth: 32})
	t.Cleanup(func() { tgt.Close() })
	ss, err := tgt.AddSubsystem(target.SubsystemConfig{NQN: testNQN, AllowedHosts: []string{hostNQN}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ss.AddNamespace(target.NamespaceConfig{NSID: 1, Backend: nsBackend}); err != nil {
		t.Fatal(err)
	}
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(be.release) }) }) // a failed check leaves no write waiting
	closing := testutil.NewLogSignal("closing connection", 4)
	l := &Listener{t: tgt, log: slog.New(closing), opts: Options{MaxH2CData: 32 << 10, ICTimeout: 5 * time.Second,
		ConnectTimeout: 5 * time.Second, SendTimeout: 5 * time.Second}}

	admin, _, _, _ := pipeConn(t, l, be)
	admin.Init(false, false)
	cntlID, st := admin.ConnectAdmin(testNQN, hostNQN, hostID, 0)
	if !st.OK() {
		t.Fatal(st)
	}
	s := &tcppeer.Session{Admin: admin, CntlID: cntlID}
	s.SetEnabled(true)
	io1, c, rec, done := pipeConn(t, l, be)
	io1.Init(false, false)
	if st := io1.ConnectIO(1, 31, cntlID, testNQN, hostNQN, hostID); !st.OK() {
		t.Fatal(st)
	}

	heldWrite(t, io1, be)

	if hostErr {
		// A PDU type no host sends: the target terminates the connection.
		io1.Write(tcppeer.Header(0x7f, 0, 8))
		go io.Copy(io.Discard, io1.NC) // its C2HTermReq
		<-closing.C()
	} else {
		c.Close(errors.New("listener shutting down"))
		<-closing.C()
		go io.Copy(io.Discard, io1.NC) // whatever the target still sends
	}
	// Close logs once it has closed the socket, where it does.
	if n := rec.closes.Load(); n != 0 {
		t.Fatalf("the socket was closed %d times while a write was in the core", n)
	}
	release.Do(func() { close(be.release) })
	<-done
	if !rec.recorded.Load() || rec.closedBeforeWrite.Load() {
		t.Fatalf("socket closed %d times, before the write had run: %v", rec.closes.Load(), rec.closedBeforeWrite.Load())
	}
}

// socketConn serves one connection of l over a loopback TCP socket (the
// target needs a socket to see the host's end): the host's end and the
// target's.
func socketConn(t *testing.T, l *Listener) (*tcppeer.Host, net.Conn) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	hostEnd, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hostEnd.Close() })
	tgtEnd, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	c := newConn(l, tgtEnd)
	c.leave = func() {}
	l.conns.Go(c, c.serve)
	hostEnd.SetDeadline(time.Now().Add(30 * time.Second)) // a safety net, not synchronisation
	return &tcppeer.Host{T: t, NC: hostEnd}, tgtEnd
}

// TestReconnectFencesUnreadCommands: a host gives up on an I/O connection
// while a write runs on a slow drive, with a second write still unread in
// the socket, and connects a new controller. The reader, stuck in the
// first write, has not seen the end, and the old controller lives on (its
// admin connection is open: had it closed, deleting the controller would
// close the queue); the new Connect sees the end in the socket, waits for
// the first write, and the second never runs: the host sends it again on
// its new connection, and the old one must not land after that.
func TestReconnectFencesUnreadCommands(t *testing.T) {
	mem, err := backend.NewMem(1<<20, 512)
	if err != nil {
		t.Fatal(err)
	}
	be := &gatedBackend{Backend: mem, entered: make(chan struct{}, 2), release: make(chan struct{})}
	fenced := testutil.NewLogSignal("closed earlier I/O connections", 1)
	tgt := target.New(target.Options{Logger: slog.New(fenced), MaxQueueDepth: 32})
	ss, err := tgt.AddSubsystem(target.SubsystemConfig{NQN: testNQN, AllowedHosts: []string{hostNQN}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ss.AddNamespace(target.NamespaceConfig{NSID: 1, Backend: be}); err != nil {
		t.Fatal(err)
	}
	l := &Listener{t: tgt, log: quietLogger(), opts: Options{MaxH2CData: 32 << 10, ICTimeout: 5 * time.Second,
		ConnectTimeout: 5 * time.Second, SendTimeout: 5 * time.Second}}
	var release sync.Once
	t.Cleanup(func() {
		release.Do(func() { close(be.release) })
		l.conns.Shutdown(context.Background(), func() error { return nil }, nil)
		tgt.Close()
	})

	admin, _ := socketConn(t, l)
	admin.Init(false, false)
	cntlID, st := admin.ConnectAdmin(testNQN, hostNQN, hostID, 0)
	if !st.OK() {
		t.Fatal(st)
	}
	(&tcppeer.Session{Admin: admin, CntlID: cntlID}).SetEnabled(true)
	io1, io1Target := socketConn(t, l)
	io1.Init(false, false)
	if st := io1.ConnectIO(1, 31, cntlID, testNQN, hostNQN, hostID); !st.OK() {
		t.Fatal(st)
	}
	heldWrite(t, io1, be) // on the connection's reader
	// The second, with its data in the capsule, waits unread; then the
	// host closes the connection.
	second := tcppeer.IOCommand(nvmeof.NVMWrite, io1.NextCID(), 8192, 512)
	second.SGL().SetDataBlock(nvmeof.SGLInCapsule, 0, 512)
	io1.Write(io1.Capsule(second, bytes.Repeat([]byte{0xEE}, 512)))
	io1.NC.Close()
	// The end reaches the target's socket (the kernel's doing: a bounded
	// wait, not a sleep).
	for deadline := time.Now().Add(30 * time.Second); !sockio.PeerClosed(io1Target); runtime.Gosched() {
		if time.Now().After(deadline) {
			t.Fatal("the host's end never reached the target's socket")
		}
	}

	again, _ := socketConn(t, l)
	again.Init(false, false)
	again.SendConnect(0, 31, 0, nvmeof.ConnectData{HostID: hostID, CntlID: nvmeof.CntlIDDynamic, SubNQN: testNQN, HostNQN: hostNQN})
	rsp := make(chan error, 1)
	go func() {
		_, _, err := tcppeer.ReadPDU(again.NC)
		rsp <- err
	}()
	select {
	case <-fenced.C():
	case err := <-rsp:
		t.Fatalf("Connect answered (%v) while the closed connection's write ran, its next one unread", err)
	}
	release.Do(func() { close(be.release) })
	if err := <-rsp; err != nil {
		t.Fatalf("Connect: %v", err)
	}
	// Waits for the old connection's end.
	l.conns.Shutdown(context.Background(), func() error { return nil }, nil)
	got := make([]byte, 512)
	if err := mem.ReadAt(got, 8192); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, make([]byte, 512)) || len(be.entered) != 0 {
		t.Fatal("the write left unread in the closed connection ran")
	}
}
