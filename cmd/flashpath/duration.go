package main

import (
	"fmt"
	"time"

	"github.com/flashpath/flashpath/internal/units"
	"github.com/spf13/pflag"
)

// durationVar defines a flag that takes a duration in flashpath's one
// syntax, as the configuration files do (units.ParseDuration): 600
// (seconds), 600s, 10m, and -1 (forever) where the flag says so.
func durationVar(fl *pflag.FlagSet, p *units.Duration, name string, def time.Duration, usage string) {
	durationVarP(fl, p, name, "", def, usage)
}

func durationVarP(fl *pflag.FlagSet, p *units.Duration, name, short string, def time.Duration, usage string) {
	*p = units.Duration(def)
	fl.VarP(p, name, short, usage)
}

// notForever refuses -1 for the flag name, which has no forever.
func notForever(name string, d units.Duration) error {
	if d < 0 {
		return fmt.Errorf("--%s %v: want a duration of 0 or more (600, 600s, 10m): -1 (forever) is for --ctrl-loss-tmo", name, d)
	}
	return nil
}
