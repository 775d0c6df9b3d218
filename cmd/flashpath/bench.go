package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/flashpath/flashpath/bench"
	"github.com/flashpath/flashpath/internal/units"
)

// docs/bench-options.md and the README's refused options come from
// bench's option table.
//go:generate env FLASHPATH_UPDATE_DOCS=1 go test -run TestBenchOptionDocs .

func init() { register(newBenchCmd) }

// benchFlags are the flags that are not fio job options.
type benchFlags struct {
	outputFormat string
	minimal      bool
	terseVersion int
	output       string
	jsonOutput   string
	eta          string
	targetPID    int
	tcpLoopback  units.Duration
	enghelp      string
	cmdhelp      string
	readonly     bool
	parseOnly    bool
	showCmd      bool
	sections     []string
	cpuProfile   string
}

func newBenchCmd() *cobra.Command {
	var bf benchFlags
	cmd := &cobra.Command{
		Use:   "bench [jobfile...]",
		Short: "Measure a storage path like fio: job files or fio options as flags",
		Long: `bench runs fio jobs (job files with [global] and job sections, or the same
options as flags) through flashpath's engines: psync and io_uring on local
files and block devices, null for the benchmark itself, and the network and
GPU engines built in. As in fio, flags given with job files are defaults
beneath the files' own options ([global] sections included); a list value
(--iodepth=1,8,32) sweeps every job of the files.

--cmdhelp lists every fio option with what flashpath does with it
(implemented, ignored and why, refused and why); --cmdhelp=NAME shows one;
--enghelp lists the engines, --enghelp=ENGINE an engine's options.

List values of iodepth and numjobs sweep: one job per value, one table.`,
		Example: `  flashpath bench --name=rr --rw=randread --bs=4k --iodepth=32 --size=1g \
      --ioengine=io_uring --direct=1 --filename=/dev/nvme0n1 --runtime=10s --time_based
  flashpath bench job.fio --output-format=json
  flashpath bench --ioengine=null --rw=randread --iodepth=1,8,32,128 --numjobs=1,2 --runtime=2s --time_based`,
		Args: cobra.ArbitraryArgs,
	}
	fl := cmd.Flags()
	fl.StringVar(&bf.outputFormat, "output-format", "normal", "normal, json, json+ (with latency histogram bins), terse (fio's semicolon-separated lines) or table (one row per group), comma-separated; several print in fio's order: the normal job lines, terse, json, the normal results, then table")
	fl.BoolVar(&bf.minimal, "minimal", false, "terse output (fio's --minimal: --output-format=terse)")
	fl.IntVar(&bf.terseVersion, "terse-version", 3, "terse format version: 3, 4 (adds trim) or 5")
	fl.StringVar(&bf.jsonOutput, "json-output", "", "also write the JSON report to this file")
	fl.StringVar(&bf.output, "output", "", "write the report to this file instead of stdout")
	fl.StringVar(&bf.eta, "eta", "auto", "live progress line: auto (on a terminal), always, never")
	fl.IntVar(&bf.targetPID, "target-pid", 0, "also measure the CPU time of this process (the target under test)")
	durationVar(fl, &bf.tcpLoopback, "tcp-loopback", 0, "first measure a plain TCP socket copy over 127.0.0.1 for this long (10, 10s)")
	fl.StringVar(&bf.enghelp, "enghelp", "", "list the engines, or with =ENGINE[,OPTION] an engine's options (fio's --enghelp), and exit")
	fl.Lookup("enghelp").NoOptDefVal = " "
	fl.StringVar(&bf.cmdhelp, "cmdhelp", "", "list every job option with flashpath's support, or with =NAME one option (fio's --cmdhelp), and exit")
	fl.Lookup("cmdhelp").NoOptDefVal = "all"
	fl.StringVar(&bf.cpuProfile, "cpuprofile", "", "write a Go CPU profile of the run to this file (go tool pprof FILE)")
	fl.BoolVar(&bf.readonly, "readonly", false, "refuse jobs that write or trim (a guard for devices holding data)")
	fl.BoolVar(&bf.parseOnly, "parse-only", false, "check the job files and options, list the jobs, run nothing")
	fl.BoolVar(&bf.showCmd, "showcmd", false, "write each job file as a fio command line (fio's --showcmd) and exit")
	fl.StringArrayVar(&bf.sections, "section", nil, "run only this job section of the files (repeatable)")
	jobFlags := map[string]bool{}
	for _, o := range bench.Options() {
		fl.String(o.Name, "", o.Help)
		if o.Bool {
			fl.Lookup(o.Name).NoOptDefVal = "1"
		}
		if o.Support != bench.Implemented {
			// Taken (and refused or ignored with the reason) but kept out
			// of --help; --cmdhelp lists them.
			_ = fl.MarkHidden(o.Name)
		}
		jobFlags[o.Name] = true
	}

	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		out := cmd.OutOrStdout()
		if e := strings.TrimSpace(bf.enghelp); fl.Changed("enghelp") {
			if e == "" {
				fmt.Fprintln(out, strings.Join(bench.EngineNames(), "\n"))
				return nil
			}
			return bench.WriteEngineHelp(out, e)
		}
		if bf.showCmd {
			return bench.ShowCmd(out, args)
		}
		if fl.Changed("cmdhelp") {
			if bf.cmdhelp == "all" {
				bench.WriteCmdHelpAll(out)
				return nil
			}
			return bench.WriteCmdHelp(out, bf.cmdhelp)
		}
		// In the order given (as fio parses its command line), not by name.
		var overrides []bench.Option
		fl.SortFlags = false
		fl.Visit(func(f *pflag.Flag) {
			if jobFlags[f.Name] {
				overrides = append(overrides, bench.Option{Name: f.Name, Value: f.Value.String()})
			}
		})
		fl.SortFlags = true
		if fl.Changed("name") && len(args) > 0 {
			// fio starts a job of its own at --name, with the options after
			// it; flags here carry no order, so say so rather than guess.
			return fmt.Errorf("flag --name with job files: fio would run a separate job %q from the options after --name; put that job in a job file", fl.Lookup("name").Value.String())
		}
		if err := notForever("tcp-loopback", bf.tcpLoopback); err != nil {
			return err
		}
		if len(args) == 0 && len(overrides) == 0 && bf.tcpLoopback == 0 {
			return cmd.Help()
		}
		ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
		defer stop()
		return runBench(ctx, out, args, overrides, bf)
	}
	return cmd
}

func runBench(ctx context.Context, out io.Writer, files []string, overrides []bench.Option, bf benchFlags) error {
	if bf.output != "" {
		f, err := os.Create(bf.output)
		if err != nil {
			return err
		}
		defer f.Close()
		out = f
	}
	if bf.tcpLoopback > 0 {
		bps, err := bench.TCPLoopback(ctx, bf.tcpLoopback.Duration())
		if err != nil {
			return fmt.Errorf("tcp loopback: %w", err)
		}
		fmt.Fprintf(os.Stderr, "TCP loopback (Go socket copy, 1 connection): %s\n", bench.FormatRate(bps))
		if len(files) == 0 && len(overrides) == 0 {
			return nil
		}
	}
	jobs, err := bench.LoadJobs(files, overrides, bf.sections...)
	if err != nil {
		return err
	}
	if bf.cpuProfile != "" && !bf.parseOnly {
		f, err := os.Create(bf.cpuProfile)
		if err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	if bf.readonly {
		for _, j := range jobs {
			if j.Modifies() {
				return fmt.Errorf("job %s: rw=%s writes or trims, and --readonly is set", j.Name, j.RW)
			}
		}
	}
	if bf.parseOnly {
		for _, j := range jobs {
			fmt.Fprintf(out, "%s: (g=%d): rw=%s, bs=%d/%d/%d, ioengine=%s, iodepth=%d, numjobs=%d\n",
				j.Name, j.GroupID, j.RW, j.BS[0], j.BS[1], j.BS[2], j.IOEngine, j.IODepth, j.NumJobs)
		}
		return nil
	}
	format := bf.outputFormat
	if bf.minimal {
		format = "terse"
	}
	// Checked before the run, not after it. Each format is written once,
	// in fio's order whatever the list's: the normal output's job lines
	// (fio prints them as it starts the jobs), then terse, JSON (json+
	// where both are asked for: fio prints one document) and the rest of
	// the normal output (stat.c's show_run_stats fills a buffer per
	// format and flushes them in that order); flashpath's table last.
	formats := map[string]bool{}
	for _, f := range strings.Split(format, ",") {
		f = strings.TrimSpace(f)
		switch f {
		case "normal", "json", "json+", "table", "terse":
			formats[f] = true
		default:
			return fmt.Errorf("flag --output-format: want normal, json, json+, terse or table, got %q", f)
		}
	}
	var writers []func(*bench.Report, io.Writer) error
	if formats["normal"] {
		writers = append(writers, (*bench.Report).WriteTextJobLines)
	}
	if formats["terse"] {
		v := bf.terseVersion
		if !slices.Contains(bench.TerseVersions, v) {
			return fmt.Errorf("flag --terse-version: want 3, 4 or 5, got %d", v)
		}
		writers = append(writers, func(r *bench.Report, w io.Writer) error { return r.WriteTerse(w, v) })
	}
	switch {
	case formats["json+"]:
		writers = append(writers, (*bench.Report).WriteJSONPlus)
	case formats["json"]:
		writers = append(writers, (*bench.Report).WriteJSON)
	}
	if formats["normal"] {
		writers = append(writers, (*bench.Report).WriteTextResults)
	}
	if formats["table"] {
		writers = append(writers, (*bench.Report).WriteTable)
	}
	cfg := bench.Config{Jobs: jobs, TargetPID: bf.targetPID, Notes: os.Stderr}
	switch bf.eta {
	case "always":
		cfg.Progress = os.Stderr
	case "auto":
		if bench.IsTerminal(os.Stderr.Fd()) {
			cfg.Progress = os.Stderr
		}
	case "never":
	default:
		return fmt.Errorf("flag --eta: want auto, always or never, got %q", bf.eta)
	}
	rep, runErr := bench.Run(ctx, cfg)
	if rep == nil {
		return runErr
	}
	if bf.jsonOutput != "" {
		f, err := os.Create(bf.jsonOutput)
		if err != nil {
			return err
		}
		err = rep.WriteJSON(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	for _, write := range writers {
		if err := write(rep, out); err != nil {
			return err
		}
	}
	return runErr
}
