package tcp

import (
	"log/slog"
	"testing"
	"time"

	"github.com/flashpath/flashpath/internal/tcppeer"
	"github.com/flashpath/flashpath/target"
	"github.com/flashpath/flashpath/target/backend"
)

const (
	testNQN   = "nqn.2026-11.io.flashpath:tcp-test"
	hostNQN   = "nqn.2014-08.org.nvmexpress:uuid:11111111-2222-3333-4444-555555555555"
	strangerN = "nqn.2014-08.org.nvmexpress:uuid:99999999-2222-3333-4444-555555555555"
)

var hostID = [16]byte{0x11, 0x11, 0x11, 0x11, 0x22, 0x22, 0x33, 0x33, 0x44, 0x44, 0x55, 0x55, 0x55, 0x55, 0x55, 0x55}

func quietLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

// testTarget is a target with one subsystem (hostNQN allowed) holding a
// mem namespace, served on 127.0.0.1:0.
type testTarget struct {
	tgt *target.Target
	ss  *target.Subsystem
	ln  *Listener
}

func startTarget(t testing.TB, be backend.Backend) *testTarget {
	t.Helper()
	return startTargetOpts(t, be, target.Options{})
}

// startTargetOpts is startTarget with target options (logger and queue
// depth are set here).
func startTargetOpts(t testing.TB, be backend.Backend, opts target.Options) *testTarget {
	t.Helper()
	opts.Logger, opts.MaxQueueDepth = quietLogger(), 128
	tgt := target.New(opts)
	ss, err := tgt.AddSubsystem(target.SubsystemConfig{NQN: testNQN, AllowedHosts: []string{hostNQN}})
	if err != nil {
		t.Fatal(err)
	}
	if be == nil {
		if be, err = backend.NewMem(16<<20, 512); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ss.AddNamespace(target.NamespaceConfig{NSID: 1, Backend: be}); err != nil {
		t.Fatal(err)
	}
	ln, err := Listen(tgt, "127.0.0.1:0", Options{Logger: quietLogger(), ICTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	tt := &testTarget{tgt: tgt, ss: ss, ln: ln}
	t.Cleanup(func() {
		ln.Close()
		tgt.Close()
	})
	return tt
}

func (tt *testTarget) addr() string { return tt.ln.Addr().String() }

// session connects a minimal host (tcppeer.Session) as hostNQN, with the
// given digests: the healthy host the protocol tests check still works.
func (tt *testTarget) session(t testing.TB, hdgst, ddgst bool) *tcppeer.Session {
	t.Helper()
	return tcppeer.Connect(t, tt.addr(), hdgst, ddgst, testNQN, hostNQN, hostID)
}
