package main

import (
	"fmt"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// daemonFlags are the flags both daemons (target, initiator) take: the
// metrics endpoint and logging.
type daemonFlags struct {
	config    string
	metrics   string
	pprof     bool
	logLevel  string
	logFormat string
}

func (d *daemonFlags) add(fl *pflag.FlagSet, metricsExample string) {
	fl.StringVar(&d.metrics, "metrics", "", "serve Prometheus metrics on this address, e.g. "+metricsExample)
	fl.BoolVar(&d.pprof, "pprof", false, "also serve Go profiles under /debug/pprof/ on the --metrics address (go tool pprof http://ADDR/debug/pprof/profile)")
	fl.StringVar(&d.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&d.logFormat, "log-format", "text", "text or json")
}

// logger is the structured logger the flags ask for, on stderr.
func (d *daemonFlags) logger() (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(d.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", d.logLevel)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch d.logFormat {
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", d.logFormat)
}

// daemonRunE is a daemon command's RunE: the configuration from toConfig,
// the logger from the flags, and, with --config, a reload that reads the
// file again (for SIGHUP), handed to run.
func daemonRunE[C any](d *daemonFlags, toConfig func(*cobra.Command) (*C, error),
	run func(cmd *cobra.Command, cfg *C, log *slog.Logger, reload func() (*C, error)) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		cfg, err := toConfig(cmd)
		if err != nil {
			return err
		}
		log, err := d.logger()
		if err != nil {
			return err
		}
		var reload func() (*C, error)
		if d.config != "" {
			reload = func() (*C, error) { return toConfig(cmd) }
		}
		return run(cmd, cfg, log, reload)
	}
}
