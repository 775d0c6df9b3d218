package main

import (
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/flashpath/flashpath/internal/daemon"
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
	fl.StringVar(&d.logFormat, "log-format", "text", "text or json (json: stdout and stderr carry JSON records only; the serving lines become records); under journald each line starts with its syslog priority, <3> errors ... <7> debug")
}

// logger is the structured logger the flags ask for, on w (the command's
// stderr). Where w is journald's stream (JOURNAL_STREAM) each line carries
// its priority (daemon.NewLogHandler). journal says so.
func (d *daemonFlags) logger(w io.Writer) (log *slog.Logger, journal bool, err error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(d.logLevel)); err != nil {
		return nil, false, fmt.Errorf("--log-level %q: want debug, info, warn or error", d.logLevel)
	}
	if d.logFormat != "text" && d.logFormat != "json" {
		return nil, false, fmt.Errorf("--log-format %q: want text or json", d.logFormat)
	}
	f, _ := w.(*os.File)
	journal = daemon.JournalStream(f)
	return slog.New(daemon.NewLogHandler(w, d.logFormat == "json", lv, journal)), journal, nil
}

// notice is how a daemon tells its user what it serves and how to reach
// it: lines for a person on stdout, or, with --log-format json, a log
// record carrying the same facts as attributes, so that stdout and stderr
// carry JSON records only.
type notice struct {
	out  io.Writer
	log  *slog.Logger
	json bool
}

// say prints text, or with JSON logs logs msg with attrs at info level.
func (n notice) say(text, msg string, attrs ...any) {
	if n.json {
		n.log.Info(msg, attrs...)
		return
	}
	fmt.Fprint(n.out, text)
}

// loggedError is a daemon's error that its logger has already reported
// (JSON logs, or journald's): main prints it no more.
type loggedError struct{ error }

func (e loggedError) Unwrap() error { return e.error }

// daemonRunE is a daemon command's RunE: the logger from the flags, the
// configuration from toConfig, and, with --config, a reload that reads
// the file again (for SIGHUP), handed to run. With JSON logs or under
// journald, the error it ends with is logged as a record too (and main
// leaves it at that), so that the last line is one the log reader parses.
func daemonRunE[C any](d *daemonFlags, toConfig func(*cobra.Command) (*C, error),
	run func(cmd *cobra.Command, cfg *C, log *slog.Logger, say notice, reload func() (*C, error)) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		log, journal, err := d.logger(cmd.ErrOrStderr())
		if err != nil {
			return err
		}
		err = func() error {
			cfg, err := toConfig(cmd)
			if err != nil {
				return err
			}
			var reload func() (*C, error)
			if d.config != "" {
				reload = func() (*C, error) { return toConfig(cmd) }
			}
			return run(cmd, cfg, log, notice{out: cmd.OutOrStdout(), log: log, json: d.logFormat == "json"}, reload)
		}()
		if err != nil && (journal || d.logFormat == "json") {
			log.Error("exiting", "err", err)
			return loggedError{err}
		}
		return err
	}
}
