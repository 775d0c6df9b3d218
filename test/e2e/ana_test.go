package e2e

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/flashpath/flashpath/initiator"
	"github.com/flashpath/flashpath/internal/testutil"
	"github.com/flashpath/flashpath/nvmeof"
	"github.com/flashpath/flashpath/target/server"
)

// TestANAHost: flashpath's host reads the ANA state of its path, gets the
// ANA change notice when the target's ana_states change (the new log
// with it), sees I/O on an inaccessible path refused with a path error
// (IsPathError: retry elsewhere) while the other listener serves it, and
// I/O again once the path is optimized.
func TestANAHost(t *testing.T) {
	pa, pb := testutil.FreePort(t), testutil.FreePort(t)
	la, lb := "tcp://127.0.0.1:"+pa, "tcp://127.0.0.1:"+pb
	const nqn = "nqn.2026-12.io.flashpath:ana-host"
	srv, err := server.Start(&server.Config{Listeners: []string{la, lb},
		Subsystems: []server.SubsystemConfig{{NQN: nqn, Namespaces: []server.NamespaceConfig{{NSID: 1, Backend: "mem:4MiB"}}}}},
		server.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Shutdown(context.Background()) })

	events := make(chan initiator.Event, 16)
	a := connect(t, testTarget{addr: "127.0.0.1:" + pa, subnqn: nqn, nsid: 1}, func(c *initiator.Config) {
		c.Events = func(ev initiator.Event) { events <- ev }
	})
	b := connect(t, testTarget{addr: "127.0.0.1:" + pb, subnqn: nqn, nsid: 1}, nil)
	ctx := context.Background()
	if st, err := a.ANAState(ctx, 1); err != nil || st != nvmeof.ANAOptimized {
		t.Fatalf("ANA state of path A: %v, %v", st, err)
	}
	nsA, nsB := openNS(t, a, 1), openNS(t, b, 1)
	buf := make([]byte, 4096)
	if _, err := nsA.ReadAt(buf, 0); err != nil {
		t.Fatal(err)
	}

	setA := func(state string) {
		t.Helper()
		if err := srv.Update(func(c *server.Config) error {
			c.Subsystems[0].ANAStates = []server.ANAStateConfig{{Listener: la, State: state}}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		// The notice is raised before Update returns; the host's event
		// loop reads the log and hands over the event.
		ev := <-events
		if !ev.ANAChanged() || ev.Err != nil || ev.ANA == nil || len(ev.ANA.Groups) == 0 || ev.ANA.Groups[0].State.String() != state {
			t.Fatalf("event after setting %s: %+v", state, ev)
		}
		select {
		case ev := <-events:
			t.Errorf("a second event for one change: %+v", ev)
		default:
		}
	}
	setA("inaccessible")
	if _, err := nsA.ReadAt(buf, 0); !initiator.IsPathError(err) {
		t.Errorf("read on the inaccessible path: %v, want a path error", err)
	}
	if _, err := nsB.ReadAt(buf, 0); err != nil {
		t.Errorf("read on path B: %v", err)
	}
	if st, err := b.ANAState(ctx, 1); err != nil || st != nvmeof.ANAOptimized {
		t.Errorf("ANA state of path B: %v, %v", st, err)
	}
	setA("optimized")
	if _, err := nsA.ReadAt(buf, 0); err != nil {
		t.Errorf("read on path A, optimized again: %v", err)
	}
}
