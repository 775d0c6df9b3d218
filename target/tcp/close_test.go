package tcp

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flashpath/flashpath/internal/tcppeer"
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

// TestCloseWaitsForRunningCommand: a connection closed (by the listener's
// shutdown, the core, a send failure) while a write runs in the core keeps
// its socket open until the write has run, and runs nothing after it, so
// the host sees the connection end only after every command it sent that
// the target took has run. A multipath host retries on another path when
// it sees the end; a write that ran here after that retry would put older
// data back (TestMultipathFailover caught that under load).
func TestCloseWaitsForRunningCommand(t *testing.T) {
	mem, err := backend.NewMem(1<<20, 512)
	if err != nil {
		t.Fatal(err)
	}
	be := &gatedBackend{Backend: mem, entered: make(chan struct{}, 1), release: make(chan struct{})}
	tgt := target.New(target.Options{Logger: quietLogger(), MaxQueueDepth: 32})
	t.Cleanup(func() { tgt.Close() })
	ss, err := tgt.AddSubsystem(target.SubsystemConfig{NQN: testNQN, AllowedHosts: []string{hostNQN}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ss.AddNamespace(target.NamespaceConfig{NSID: 1, Backend: be}); err != nil {
		t.Fatal(err)
	}
	var release sync.Once
	t.Cleanup(func() { release.Do(func() { close(be.release) }) }) // a failed check leaves no write waiting
	l := &Listener{t: tgt, log: quietLogger(), opts: Options{MaxH2CData: 32 << 10, ICTimeout: 5 * time.Second,
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

	c.Close(errors.New("listener shutting down"))
	if n := rec.closes.Load(); n != 0 {
		t.Fatalf("Close closed the socket %d times while a write ran", n)
	}
	go io.Copy(io.Discard, io1.NC) // whatever the target still sends
	release.Do(func() { close(be.release) })
	<-done
	if !rec.recorded.Load() || rec.closedBeforeWrite.Load() {
		t.Fatalf("socket closed %d times, before the write had run: %v", rec.closes.Load(), rec.closedBeforeWrite.Load())
	}
}
