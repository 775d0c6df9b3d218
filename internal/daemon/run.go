package daemon

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// Run is a started daemon's life. Until SIGTERM or SIGINT arrives or ctx
// ends, it calls reload for each SIGHUP, one at a time, with a context
// that ends then, while serve (if not nil) runs with that context in the
// foreground; serve returning early ends it too. Once both have returned,
// it logs "shutting down", tells systemd STOPPING=1 and returns; the
// caller then shuts down.
func Run(ctx context.Context, log *slog.Logger, reload func(context.Context), serve func(context.Context)) {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	run(ctx, log, hup, reload, serve)
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
