package tcp

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

	// A write: its capsule, the R2T, its data; the core runs it and
	// waits in the backend.
	cid := io1.NextCID()
	io1.Write(io1.Capsule(tcppeer.IOCommand(nvmeof.NVMWrite, cid, 0, 4096), nil))
	hd, b := io1.ReadPDU()
	r2t, err := nvmeof.DecodeDataPDU(b)
	if hd.Type != nvmeof.PDUR2T || err != nil {
		t.Fatalf("PDU type %#x (%v), want an R2T", hd.Type, err)
	}
	io1.Write(io1.H2CData(cid, r2t.TTag, 0, make([]byte, 4096)))
	<-be.entered

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
