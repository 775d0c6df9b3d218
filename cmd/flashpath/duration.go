package main

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/flashpath/flashpath/internal/daemon"
)

// durationVar defines a flag that takes a duration in flashpath's one
// syntax, as the configuration files do (daemon.ParseDuration): 600
// (seconds), 600s, 10m, and -1 (forever) where the flag says so.
func durationVar(fl *pflag.FlagSet, p *daemon.Duration, name string, def time.Duration, usage string) {
	durationVarP(fl, p, name, "", def, usage)
}

func durationVarP(fl *pflag.FlagSet, p *daemon.Duration, name, short string, def time.Duration, usage string) {
	*p = daemon.Duration(def)
	fl.VarP(p, name, short, usage)
}

// notForever refuses -1 for the flag name, which has no forever.
func notForever(name string, d daemon.Duration) error {
	if d < 0 {
		return fmt.Errorf("--%s %v: want a duration of 0 or more (600, 600s, 10m): -1 (forever) is for --ctrl-loss-tmo", name, d)
	}
	return nil
}
