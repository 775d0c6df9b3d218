package daemon

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestRunReloads: each SIGHUP calls reload, one at a time, while serve
// runs; the end of the context stops both, and Run returns after them.
func TestRunReloads(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal)
	reloaded := make(chan int)
	var reloads, running int // reload's; read by the test after the handoffs below
	reload := func(ctx context.Context) {
		running++
		if running != 1 {
			t.Error("two reloads at once")
		}
		reloads++
		reloaded <- reloads
		running--
	}
	served := make(chan struct{})
	serve := func(ctx context.Context) {
		for i := 1; i <= 3; i++ {
			hup <- syscall.SIGHUP // taken by the reload loop
			if n := <-reloaded; n != i {
				t.Errorf("reload %d reports %d", i, n)
			}
		}
		cancel()
		<-ctx.Done()
		close(served)
	}
	run(ctx, log, hup, reload, serve)
	select {
	case <-served:
	default:
		t.Fatal("Run returned before serve")
	}
	if reloads != 3 || !strings.Contains(logs.String(), "shutting down") {
		t.Errorf("%d reloads, log %q; want 3 and shutting down", reloads, logs.String())
	}
}

// TestRunServeReturns: serve returning ends the reload loop and Run.
func TestRunServeReturns(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	var reloadCtx context.Context
	hup := make(chan os.Signal, 1)
	hup <- syscall.SIGHUP
	reloaded := make(chan struct{})
	run(context.Background(), slog.New(slog.DiscardHandler), hup,
		func(ctx context.Context) { reloadCtx = ctx; close(reloaded) },
		func(context.Context) { <-reloaded })
	if reloadCtx == nil || reloadCtx.Err() == nil {
		t.Errorf("reload's context %v did not end with serve", reloadCtx)
	}
}

// TestRunUntilCancel: without serve, Run waits for the context's end.
func TestRunUntilCancel(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	ctx, cancel := context.WithCancel(context.Background())
	hup := make(chan os.Signal)
	go func() {
		hup <- syscall.SIGHUP
		cancel()
	}()
	n := 0
	run(ctx, slog.New(slog.DiscardHandler), hup, func(context.Context) { n++ }, nil)
	if n != 1 {
		t.Errorf("%d reloads, want 1", n)
	}
}

// TestSignalsCaughtBeforeRun: a SIGHUP and a SIGTERM that arrive after
// CatchSignals but before Run (while the daemon starts) are not lost and
// do not kill the process: Run reloads, then stops.
func TestSignalsCaughtBeforeRun(t *testing.T) {
	s := CatchSignals()
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	reloads := 0
	s.Run(context.Background(), slog.New(slog.DiscardHandler), func(context.Context) {
		reloads++
		syscall.Kill(os.Getpid(), syscall.SIGTERM)
	}, nil)
	if reloads != 1 {
		t.Fatalf("%d reloads, want 1", reloads)
	}
}
