package bench

import (
	_ "embed"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/flashpath/flashpath/internal/suggest"
)

// The option table: every fio option (fio_options.tsv, fio's own list as
// its --cmdhelp prints it) with what flashpath does with it, plus the
// options only flashpath has (its engines'). --cmdhelp, the docs
// (docs/bench-options.md) and the README's list of refused options come
// from it.

//go:generate sh testdata/fio-options.sh

//go:embed fio_options.tsv
var fioOptionsTSV string

// Support is what flashpath does with a job option.
type Support uint8

const (
	// Implemented: fio's semantics (Note says where values are limited).
	Implemented Support = iota
	// Ignored: accepted and without effect, because it cannot change what
	// is measured here (Note says why).
	Ignored
	// Refused: the job stops with an error naming the option and its line
	// (Note says why).
	Refused
)

func (s Support) String() string {
	return [...]string{"implemented", "ignored", "refused"}[s]
}

// OptionInfo is one row of the option table.
type OptionInfo struct {
	Name    string
	Aliases []string
	Type    string // fio's type ("integer value", "string with time postfix", ...)
	Default string // fio's default ("" for none)
	Fio     string // fio's meaning, its --cmdhelp text
	Support Support
	Note    string // what flashpath does: how, or why it ignores or refuses it
	// Engines are the engines that take an engine-specific option (fio's
	// io_uring hipri, nvme-tcp's hostnqn); nil for a job option.
	Engines []string
	Bool    bool // may be given bare (time_based)
	// DefaultAccepted: a refused option given fio's default is accepted
	// (a job file that spells out the default asks for nothing else).
	DefaultAccepted bool
}

// support is the Support column as the docs and --cmdhelp print it.
func (o OptionInfo) support() string {
	s := o.Support.String()
	if o.Note != "" {
		s += ": " + o.Note
	}
	if o.DefaultAccepted {
		s += " (fio's default, " + o.Default + ", is accepted)"
	}
	return s
}

type fioOption struct {
	name, typ, def, help string
	aliases              []string
	engine               string
}

// fioOptions parses fio_options.tsv.
func fioOptions() []fioOption {
	var out []fioOption
	for _, line := range strings.Split(fioOptionsTSV, "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Split(line, "\t")
		for len(f) < 6 {
			f = append(f, "")
		}
		o := fioOption{name: f[0], typ: f[2], def: f[3], help: f[4], engine: f[5]}
		if f[1] != "" {
			o.aliases = strings.Split(f[1], ",")
		}
		out = append(out, o)
	}
	return out
}

// refused and ignored fio options: the rest of fio's list, each with the
// reason. The engine options of fio's engines flashpath runs on its own
// engines are in engineOptionNotes.
var fioOnlySpecs = []optionSpec{
	// Files and their layout.
	refuse("lockfile", "jobs do not share files through fio's file locks here"),
	refuse("filename_format", "generated names are fio's default $jobname.$jobnum.$filenum; another format is not implemented"),
	ignore("unique_filename", "only for fio's client/server mode, which flashpath does not have", true),
	refuse("opendir", "adding every file of a directory tree is not implemented"),
	refuse("bs_unaligned", "block sizes stay multiples of the smallest one here (offsets stay on its grid)"),
	refuse("ignore_error", "use continue_on_error; fio's per-errno lists are not implemented"),
	refuse("serialize_overlap", "overlapping in-flight I/Os are not serialised here"),
	refuse("fill_device", "writing until ENOSPC is not implemented; give size"),
	refuse("file_append", "appending at the end of the file is not implemented"),
	refuse("offset_align", "offsets stay on the block size's grid here; another alignment is not implemented"),
	ignore("allrandrepeat", "flashpath's generators are seeded from randseed (repeatable by default); it changes no statistic", true),
	refuse("write_barrier", "barrier writes are not implemented"),
	refuse("sync_file_range", "sync_file_range(2) is not issued here; use fsync or fdatasync"),
	refuse("atomic", "RWF_ATOMIC writes are not implemented"),
	refuse("mem", "I/O buffers are flashpath's own (page-aligned heap, or the engine's registered memory); fio's shm/mmap/hugepage kinds are not implemented"),
	refuse("verify_offset", "the verify header sits at the block's start here"),
	refuse("verify_dump", "failed blocks are not dumped to files here"),
	refuse("verify_async", "verification runs in the job's goroutine here"),
	refuse("experimental_verify", "fio's experimental verify is not implemented"),
	refuse("verify_state_load", "verify state files are not implemented"),
	refuse("verify_state_save", "verify state files are not implemented"),
	refuse("trim_percentage", "trim-then-verify is not implemented"),
	refuse("trim_verify_zero", "trim-then-verify is not implemented"),
	refuse("trim_backlog", "trim-then-verify is not implemented"),
	refuse("trim_backlog_batch", "trim-then-verify is not implemented"),
	refuse("write_iolog", "I/O logs (fio's iolog v2/v3 format) are not written here"),
	refuse("read_iolog", "replaying fio iologs and blktraces is not implemented"),
	refuse("read_iolog_chunked", "replaying fio iologs is not implemented"),
	refuse("replay_no_stall", "replaying fio iologs is not implemented"),
	refuse("replay_redirect", "replaying fio iologs is not implemented"),
	refuse("replay_scale", "replaying fio iologs is not implemented"),
	refuse("replay_align", "replaying fio iologs is not implemented"),
	refuse("replay_time_scale", "replaying fio iologs is not implemented"),
	refuse("replay_skip", "replaying fio iologs is not implemented"),
	refuse("merge_blktrace_file", "replaying blktraces is not implemented"),
	refuse("merge_blktrace_scalars", "replaying blktraces is not implemented"),
	refuse("merge_blktrace_iters", "replaying blktraces is not implemented"),
	refuse("exec_prerun", "flashpath does not run shell commands from job files"),
	refuse("exec_postrun", "flashpath does not run shell commands from job files"),
	refuse("ioscheduler", "flashpath does not switch the device's I/O scheduler; set it in sysfs"),
	refuse("zonemode", "zoned block devices are not supported"),
	refuse("zonesize", "zoned block devices are not supported"),
	refuse("zonecapacity", "zoned block devices are not supported"),
	refuse("zonerange", "zoned block devices are not supported"),
	refuse("zoneskip", "zoned block devices are not supported"),
	refuse("read_beyond_wp", "zoned block devices are not supported"),
	refuse("max_open_zones", "zoned block devices are not supported"),
	refuse("job_max_open_zones", "zoned block devices are not supported"),
	refuse("ignore_zone_limits", "zoned block devices are not supported"),
	refuse("zone_reset_threshold", "zoned block devices are not supported"),
	refuse("zone_reset_frequency", "zoned block devices are not supported"),
	refuse("lockmem", "pinning memory away from the job is not implemented"),
	refuse("rate_cycle", "the rate cap is paced per I/O here; fio's averaging window is not implemented"),
	refuse("max_latency", "ending a job on a latency ceiling is not implemented"),
	refuse("latency_target", "searching the queue depth for a latency target is not implemented"),
	ignore("latency_window", "only used with latency_target, which is refused", false),
	ignore("latency_percentile", "only used with latency_target, which is refused", false),
	ignore("latency_run", "only used with latency_target, which is refused", true),
	refuse("write_hint", "write lifetime hints are not set here"),
	refuse("create_serialize", "files are laid out before the clones start here, not by fio's rule"),
	refuse("create_fsync", "files are laid out before the clones start here, not by fio's rule"),
	refuse("create_on_open", "files are laid out before the clones start here, not by fio's rule"),
	refuse("create_only", "laying out files without running the job is not implemented"),
	ignore("allow_mounted_write", "flashpath does not check whether a block device is mounted; --readonly guards devices that hold data", true),
	refuse("numa_cpu_nodes", "NUMA placement is not implemented; use cpus_allowed"),
	refuse("numa_mem_policy", "NUMA memory policy is not implemented"),
	refuse("unlink_each_loop", "removing files between loops is not implemented"),
	ignore("log_entries", "log buffers grow as needed here", false),
	refuse("log_hist_msec", "histogram logs (write_hist_log) are not written here"),
	refuse("log_hist_coarseness", "histogram logs (write_hist_log) are not written here"),
	refuse("write_hist_log", "histogram logs are not written here; json+ has the latency histogram"),
	refuse("log_max_value", "averaged logs carry the mean here"),
	refuse("log_prio", "I/O priorities are not logged"),
	refuse("log_compression", "logs are written uncompressed"),
	refuse("log_compression_cpus", "logs are written uncompressed"),
	refuse("log_store_compressed", "logs are written uncompressed"),
	refuse("log_unix_epoch", "log times are relative to the job's start here"),
	refuse("log_alternate_epoch", "log times are relative to the job's start here"),
	refuse("log_alternate_epoch_clock_id", "log times are relative to the job's start here"),
	refuse("block_error_percentiles", "trim block error statistics are not kept"),
	refuse("stats", "statistics are always kept here"),
	refuse("dedupe_percentage", "dedupable write data is not generated here"),
	refuse("dedupe_mode", "dedupable write data is not generated here"),
	refuse("dedupe_working_set_percentage", "dedupable write data is not generated here"),
	refuse("dedupe_global", "dedupable write data is not generated here"),
	refuse("gtod_cpu", "a dedicated time-keeping thread is not implemented; latencies use the monotonic clock"),
	refuse("error_dump", "errors are reported once per job here"),
	refuse("profile", "fio's built-in profiles are not implemented"),
	refuse("cgroup", "cgroups are not managed by flashpath"),
	refuse("cgroup_nodelete", "cgroups are not managed by flashpath"),
	refuse("cgroup_weight", "cgroups are not managed by flashpath"),
	refuse("uid", "jobs run as flashpath's user"),
	refuse("gid", "jobs run as flashpath's group"),
	refuse("hugepage-size", "hugepage buffers (mem=mmaphuge) are not implemented"),
	refuse("flow_id", "fio's flow control between jobs is not implemented"),
	refuse("flow", "fio's flow control between jobs is not implemented"),
	refuse("flow_sleep", "fio's flow control between jobs is not implemented"),
	refuse("steadystate", "steady-state detection is not implemented; give runtime"),
	refuse("steadystate_duration", "steady-state detection is not implemented"),
	refuse("steadystate_ramp_time", "steady-state detection is not implemented"),
}

// engineOptionNotes are fio's engine options of the engines flashpath runs
// on its own (io_uring, libaio, pvsync2) that flashpath's engines do not
// take; each is refused with this reason.
var engineOptionNotes = map[string]string{
	"cmdprio_percentage": "I/O priorities per command are not implemented",
	"cmdprio_class":      "I/O priorities per command are not implemented",
	"cmdprio":            "I/O priorities per command are not implemented",
	"cmdprio_bssplit":    "I/O priorities per command are not implemented",
	"sqthread_poll_cpu":  "not implemented",
	"nonvectored":        "flashpath's io_uring issues non-vectored reads and writes only with fixedbufs",
	"uncached":           "RWF_UNCACHED is not implemented",
	"nowait":             "RWF_NOWAIT is not implemented",
	"force_async":        "IOSQE_ASYNC is not implemented",
	"cmd_type":           "io_uring_cmd (NVMe passthrough) is not implemented",
	"hipri_percentage":   "not implemented",
	"userspace_reap":     "taken by the libaio engine, which is Linux-only",
}

// flashpathEngineOptions describe the options of flashpath's own engines
// (fio has no text for them).
var flashpathEngineOptions = map[string]string{
	"hdr_digest":         "NVMe/TCP header digest (CRC32C) on every PDU [nvme-tcp]",
	"data_digest":        "NVMe/TCP data digest (CRC32C) on every data PDU [nvme-tcp]",
	"hostnqn":            "the host NQN the controller sees [nvme-tcp, nvme-rdma, gpu]",
	"dhchap_secret":      "DH-HMAC-CHAP host secret, DHHC-1:... (nvme connect --dhchap-secret) [nvme-tcp, nvme-rdma]",
	"dhchap_ctrl_secret": "DH-HMAC-CHAP controller secret for bidirectional authentication [nvme-tcp, nvme-rdma]",
	"reconnect_delay":    "wait between reconnect attempts after a lost connection: 2, 2s, 500ms (default 2s) [nvme-tcp, nvme-rdma]",
	"ctrl_loss_tmo":      "give up reconnecting after this long: 60, 60s, 1m (default 60s; 0: at once; -1: never, as nvme-cli) [nvme-tcp, nvme-rdma]",
	"busy_poll":          "poll the connection this long before the reader sleeps (default 50us; 0: off) [nvme-tcp]",
	"polled":             "the job's goroutine reads its own connection (default 1), as fio's polled engines [nvme-tcp]",
	"tls_key":            "TLS 1.3 with this PSK, NVMeTLSkey-1:... (nvme connect --tls) [nvme-tcp]",
	"gpu":                "GPU ordinal the buffers live on (default 0); a list a:b takes turns over the clones, as libcufile's gpu_dev_ids [gpu, cufile]",
	"gpu_path":           "auto, cufile or bounce: how data reaches the GPU (default auto) [gpu]",
	"gpu_threads":        "threads of the transfer under each job [gpu, cufile]",
	"gpu_reader":         "bounce path reader: auto, io_uring, pread or mmap [gpu]",
	"cufile_io":          "cuFile API: auto, batch or sync [gpu, cufile]",
}

// refuse makes an option flashpath does not implement. Its fio default,
// where fio has one, is accepted: a job file that spells out the default
// asks for nothing fio would do differently without it.
func refuse(name, why string) optionSpec {
	return optionSpec{name: name, support: Refused, help: why, set: func(j *Job, v string) error {
		if isFioDefault(j, name, v) {
			return nil
		}
		if def := fioDefaults()[name]; def != "" {
			return fmt.Errorf("%w: %s (only fio's default, %s, is accepted)", ErrRefusedOption, why, def)
		}
		return fmt.Errorf("%w: %s", ErrRefusedOption, why)
	}}
}

// fioDefaults are fio's defaults by option name (none: "").
var fioDefaults = sync.OnceValue(func() map[string]string {
	m := map[string]string{}
	for _, f := range fioOptions() {
		if f.engine == "" && f.def != "" {
			m[f.name] = f.def
		}
	}
	return m
})

// isFioDefault reports whether v, given for option name, is fio's
// default: the same string, the same boolean (a bare option is 1) or the
// same number.
func isFioDefault(j *Job, name, v string) bool {
	def, ok := fioDefaults()[name]
	if !ok {
		return false
	}
	if v == def {
		return true
	}
	switch strings.ToLower(v) {
	case "":
		v = "1"
	case "true", "yes", "on":
		v = "1"
	case "false", "no", "off":
		v = "0"
	}
	if v == def {
		return true
	}
	a, err1 := j.parseSize(v)
	b, err2 := j.parseSize(def)
	return err1 == nil && err2 == nil && a == b
}

// ignore makes an option that is accepted without effect: its value is
// not checked beyond being a boolean where bool_ says so.
func ignore(name, why string, bool_ bool) optionSpec {
	return optionSpec{name: name, support: Ignored, help: why, bool_: bool_, set: func(j *Job, v string) error {
		if bool_ {
			var b bool
			return boolSetter(func(*Job) *bool { return &b })(j, v)
		}
		return nil
	}}
}

// OptionTable returns the table: fio's options in fio's order with
// flashpath's support, then the options only flashpath has (its
// engines'), by name.
func OptionTable() []OptionInfo {
	var out []OptionInfo
	seen := map[string]int{}
	engs := engines()
	takes := enginesTaking
	for _, f := range fioOptions() {
		if i, dup := seen[f.name]; dup {
			// An engine option more than one of fio's engines has.
			if f.engine != "" && !strings.Contains(out[i].Fio, "["+f.engine+"]") {
				out[i].Fio += " [" + f.engine + "]"
			}
			continue
		}
		oi := OptionInfo{Name: f.name, Aliases: f.aliases, Type: f.typ, Default: f.def, Fio: f.help}
		if f.engine != "" {
			oi.Fio += " [" + f.engine + "]"
			oi.Engines = takes(f.name)
			oi.Support, oi.Note = Implemented, "engine option of "+strings.Join(oi.Engines, ", ")
			if len(oi.Engines) == 0 {
				oi.Support, oi.Note = Refused, engineOptionNotes[f.name]
			}
			oi.Bool = strings.HasPrefix(f.typ, "empty or boolean")
		} else if s := findSpec(f.name); s != nil {
			oi.Support, oi.Note, oi.Bool = s.support, s.help, s.bool_
			oi.DefaultAccepted = s.support == Refused && f.def != "" && s.set != nil
			for _, a := range s.aliases {
				if !slices.Contains(oi.Aliases, a) {
					oi.Aliases = append(slices.Clone(oi.Aliases), a)
				}
			}
		}
		seen[f.name] = len(out)
		out = append(out, oi)
	}
	var extra []OptionInfo
	for _, s := range allSpecs() {
		if _, ok := seen[s.name]; !ok {
			seen[s.name] = -1
			extra = append(extra, OptionInfo{Name: s.name, Aliases: s.aliases, Type: s.typ, Default: s.def, Fio: s.fio,
				Support: s.support, Note: s.help, Bool: s.bool_})
		}
	}
	for _, e := range engs {
		for _, o := range e.options {
			if _, ok := seen[o]; !ok {
				seen[o] = -1
				extra = append(extra, OptionInfo{Name: o, Fio: flashpathEngineOptions[o], Note: "engine option of " + strings.Join(takes(o), ", "),
					Engines: takes(o), Bool: e.bools[o]})
			}
		}
	}
	sort.Slice(extra, func(a, b int) bool { return extra[a].Name < extra[b].Name })
	return append(out, extra...)
}

// enginesTaking names the registered engines that take option opt.
func enginesTaking(opt string) []string {
	var names []string
	for _, e := range engines() {
		if slices.Contains(e.options, opt) {
			names = append(names, e.name)
		}
	}
	return names
}

// LookupOption finds a row of the table by name or alias.
func LookupOption(name string) (OptionInfo, bool) {
	for _, o := range OptionTable() {
		if o.Name == name {
			return o, true
		}
		for _, a := range o.Aliases {
			if a == name {
				return o, true
			}
		}
	}
	return OptionInfo{}, false
}

// WriteCmdHelp writes fio's --cmdhelp for one option, with flashpath's
// support below fio's lines.
func WriteCmdHelp(w io.Writer, name string) error {
	o, ok := LookupOption(name)
	if !ok {
		return fmt.Errorf("no such option %q%s", name, didYouMean(name))
	}
	fmt.Fprintf(w, "%20s: %s\n", o.Name, o.Fio)
	if len(o.Aliases) > 0 {
		fmt.Fprintf(w, "%20s: %s\n", "alias", strings.Join(o.Aliases, ", "))
	}
	if o.Type != "" {
		fmt.Fprintf(w, "%20s: %s\n", "type", o.Type)
	}
	def := o.Default
	if def == "" {
		def = "no default"
	}
	fmt.Fprintf(w, "%20s: %s\n", "default", def)
	fmt.Fprintf(w, "%20s: %s\n", "flashpath", o.support())
	return nil
}

// WriteCmdHelpAll lists every option with its support, as fio's
// --cmdhelp=all lists them with their help.
func WriteCmdHelpAll(w io.Writer) {
	for _, o := range OptionTable() {
		mark := ""
		switch o.Support {
		case Ignored:
			mark = " (ignored)"
		case Refused:
			mark = " (refused)"
		}
		text := o.Fio
		if text == "" {
			text = o.Note
		}
		fmt.Fprintf(w, "%-24s: %s%s\n", o.Name, text, mark)
	}
}

// WriteOptionDocs writes the table as Markdown (docs/bench-options.md).
func WriteOptionDocs(w io.Writer) {
	fmt.Fprintln(w, "# flashpath bench: fio's job options")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Generated from the option table in bench/optiontable.go (`go generate ./cmd/flashpath`); `flashpath bench --cmdhelp=NAME` prints one row.")
	fmt.Fprintln(w, "fio's columns are fio "+fioVersion()+"'s `--cmdhelp`. *implemented*: fio's semantics, within the note's limits;")
	fmt.Fprintln(w, "*ignored*: accepted without effect, for the reason given; *refused*: the job stops with an error naming the option and its line (and every other refused or unknown option of the job, in the order written).")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| option | aliases | type | fio default | fio's meaning | flashpath |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	cell := strings.NewReplacer("|", `\|`, "<", "&lt;", ">", "&gt;").Replace
	for _, o := range OptionTable() {
		fl := o.support()
		fmt.Fprintf(w, "| `%s` | %s | %s | %s | %s | %s |\n", o.Name, cell(strings.Join(o.Aliases, ", ")), cell(o.Type),
			cell(o.Default), cell(o.Fio), cell(fl))
	}
}

// WriteRefusedList writes the refused options for the README: one line
// per reason, naming the options it refuses, in the table's order.
func WriteRefusedList(w io.Writer) {
	var notes []string
	names := map[string][]string{}
	for _, o := range OptionTable() {
		if o.Support != Refused {
			continue
		}
		if _, ok := names[o.Note]; !ok {
			notes = append(notes, o.Note)
		}
		names[o.Note] = append(names[o.Note], "`"+o.Name+"`")
	}
	for _, n := range notes {
		fmt.Fprintf(w, "- %s: %s\n", strings.Join(names[n], ", "), n)
	}
	fmt.Fprintln(w, "\nA job option among them given fio's default value (where fio has one) is accepted: it asks for nothing else than leaving it out.")
}

func fioVersion() string {
	first, _, _ := strings.Cut(fioOptionsTSV, "\n")
	v, _, _ := strings.Cut(strings.TrimPrefix(first, "# fio "), ":")
	return v
}

// didYouMean names the option closest to name, as fio's "Did you mean": its
// name, or the alias (blocksize for bs) closest to what was written,
// among the aliases flashpath takes.
func didYouMean(name string) string {
	best, bestD := "", 4
	for _, o := range OptionTable() {
		if d := suggest.Distance(name, o.Name); d < bestD {
			best, bestD = o.Name, d
		}
		for _, a := range o.Aliases {
			if !acceptsAlias(o, a) {
				continue
			}
			if d := suggest.Distance(name, a); d < bestD {
				best, bestD = a, d
			}
		}
	}
	if best == "" {
		return ""
	}
	return "; did you mean " + best + "?"
}

// acceptsAlias reports whether a job file or flag may name option o by
// alias a here (a fio alias of an engine option is fio's only).
func acceptsAlias(o OptionInfo, a string) bool {
	if o.Engines != nil {
		return len(enginesTaking(a)) > 0
	}
	return findSpec(a) != nil
}

// WriteEngineHelp is fio's --enghelp=ENGINE[,OPTION]: the engine's
// options, or one option in full. fio's engine names that run on one of
// flashpath's engines (posixaio on io_uring) name that engine.
func WriteEngineHelp(w io.Writer, arg string) error {
	eng, opt, _ := strings.Cut(arg, ",")
	name := eng
	if to, ok := engineAliases[eng]; ok {
		name = to
	}
	info, ok := lookupEngine(name)
	if !ok {
		return fmt.Errorf("no engine %q (have %s)", eng, strings.Join(EngineNames(), ", "))
	}
	if opt != "" {
		if !slices.Contains(info.options, opt) && !(eng == "libcufile" && (opt == "cuda_io" || opt == "gpu_dev_ids")) {
			return fmt.Errorf("engine %s has no option %q", eng, opt)
		}
		return WriteCmdHelp(w, opt)
	}
	if name != eng {
		fmt.Fprintf(w, "%s runs on flashpath's %s engine\n", eng, name)
	}
	opts := slices.Clone(info.options)
	if eng == "libcufile" {
		opts = append(opts, "cuda_io", "gpu_dev_ids")
	}
	if len(opts) == 0 {
		fmt.Fprintf(w, "IO engine %s has no options\n", eng)
		return nil
	}
	for _, o := range opts {
		oi, _ := LookupOption(o)
		text := oi.Fio
		if text == "" {
			text = oi.Note
		}
		fmt.Fprintf(w, "%-24s: %s\n", o, text)
	}
	return nil
}
