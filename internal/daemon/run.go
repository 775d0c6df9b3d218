package daemon

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// Signals catches SIGTERM, SIGINT and SIGHUP for a daemon's Run from the
// moment it is made: make it before starting what Run waits on, so that a
// signal meanwhile is handled (stop, or reload once running) instead of
// killing a half-started daemon. Stop or Run releases them.
type Signals struct {
	term, hup chan os.Signal
}

// CatchSignals starts catching the daemon's signals.
func CatchSignals() *Signals {
	s := &Signals{term: make(chan os.Signal, 1), hup: make(chan os.Signal, 1)}
	signal.Notify(s.term, syscall.SIGTERM, syscall.SIGINT)
	signal.Notify(s.hup, syscall.SIGHUP)
	return s
}

// Stop gives the signals back their default action.
func (s *Signals) Stop() {
	signal.Stop(s.term)
	signal.Stop(s.hup)
}

// Run is a started daemon's life. Until SIGTERM or SIGINT arrives (or
// arrived since CatchSignals) or ctx ends, it calls reload for each
// SIGHUP, one at a time, with a context that ends then, while serve (if
// not nil) runs with that context in the foreground; serve returning
// early ends it too. Once both have returned, it logs "shutting down",
// tells systemd STOPPING=1, stops catching the signals and returns; the
// caller then shuts down.
func (s *Signals) Run(ctx context.Context, log *slog.Logger, reload func(context.Context), serve func(context.Context)) {
	defer s.Stop()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-s.term:
			cancel()
		case <-ctx.Done():
		}
	}()
	run(ctx, log, s.hup, reload, serve)
}

// run is Run with the SIGHUPs coming from hup.
func run(ctx context.Context, log *slog.Logger, hup <-chan os.Signal, reload func(context.Context), serve func(context.Context)) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				reload(ctx)
			}
		}
	})
	if serve != nil {
		serve(ctx)
		cancel()
	}
	<-ctx.Done()
	wg.Wait()
	log.Info("shutting down")
	Notify("STOPPING=1")
}
