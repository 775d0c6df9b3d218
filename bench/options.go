package bench

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Option is one name=value pair as written in a job file or on the
// command line (value "" for a bare boolean like time_based).
type Option struct {
	Name, Value string
}

// optionSpec describes one option the core understands.
type optionSpec struct {
	name  string
	help  string
	bool_ bool // may be given without a value
	sweep bool // accepts a comma-separated list: one job per value
	set   func(j *Job, v string) error
}

var optionSpecs = []optionSpec{
	{name: "name", help: "job name", set: func(j *Job, v string) error { j.Name = v; return nil }},
	{name: "description", help: "free text, carried into the reports", set: func(j *Job, v string) error { j.Description = v; return nil }},
	{name: "rw", help: "read|write|randread|randwrite|rw|randrw", set: func(j *Job, v string) (err error) { j.RW, err = parseRW(v); return }},
	{name: "readwrite", help: "alias of rw", set: func(j *Job, v string) (err error) { j.RW, err = parseRW(v); return }},
	{name: "bs", help: "block size, or read,write block sizes (4k, 128k)", set: setBS},
	{name: "blocksize", help: "alias of bs", set: setBS},
	{name: "bssplit", help: "block size mix, e.g. 4k/60:64k/30:1m/10, or read,write mixes (sizes multiples of the smallest)", set: setBSSplit},
	{name: "iodepth", help: "I/Os in flight per job; a list sweeps", sweep: true, set: intSetter(func(j *Job) *int { return &j.IODepth }, 1, 65536)},
	{name: "numjobs", help: "clones of the job; a list sweeps", sweep: true, set: intSetter(func(j *Job) *int { return &j.NumJobs }, 1, 4096)},
	{name: "size", help: "bytes of the file to use (1g)", set: sizeSetter(func(j *Job) *int64 { return &j.Size })},
	{name: "io_size", help: "bytes to transfer (default size)", set: sizeSetter(func(j *Job) *int64 { return &j.IOSize })},
	{name: "io_limit", help: "alias of io_size", set: sizeSetter(func(j *Job) *int64 { return &j.IOSize })},
	{name: "offset", help: "start offset in the file", set: sizeSetter(func(j *Job) *int64 { return &j.Offset })},
	{name: "nrfiles", help: "files per clone, named JOB.CLONE.N in directory= (default 1)", set: intSetter(func(j *Job) *int { return &j.NrFiles }, 1, 1<<20)},
	{name: "filesize", help: "bytes per file (default size/nrfiles)", set: sizeSetter(func(j *Job) *int64 { return &j.FileSize })},
	{name: "file_service_type", help: "roundrobin[:N] (default), sequential or random: which file each I/O goes to", set: setFileService},
	{name: "openfiles", help: "accepted; every file of the job stays open", set: func(j *Job, v string) error { _, err := parseInt(v, 1, 1<<20); return err }},
	{name: "offset_increment", help: "clone i starts at offset + i*offset_increment (numjobs over parts of one device)", set: sizeSetter(func(j *Job) *int64 { return &j.OffsetIncrement })},
	{name: "number_ios", help: "end a clone after this many I/Os (unless size or runtime ends it first)", set: sizeSetter(func(j *Job) *int64 { return &j.NumberIOs })},
	{name: "continue_on_error", help: "keep going after I/O or verify errors, counting them: none, read, write, io, verify, all (1 = all)", set: func(j *Job, v string) error {
		m, ok := map[string]ContinueOn{"none": 0, "0": 0, "read": ContinueRead, "write": ContinueWrite, "io": ContinueRead | ContinueWrite,
			"verify": ContinueVerify, "all": ContinueRead | ContinueWrite | ContinueVerify, "1": ContinueRead | ContinueWrite | ContinueVerify}[v]
		if !ok {
			return fmt.Errorf("want none, read, write, io, verify or all")
		}
		j.ContinueOnError = m
		return nil
	}},
	{name: "exitall", help: "when this job finishes, end the other jobs of its group", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.ExitAll })},
	{name: "runtime", help: "time limit (10, 10s, 2m)", set: timeSetter(func(j *Job) *time.Duration { return &j.Runtime })},
	{name: "timeout", help: "alias of runtime", set: timeSetter(func(j *Job) *time.Duration { return &j.Runtime })},
	{name: "ramp_time", help: "run this long before recording", set: timeSetter(func(j *Job) *time.Duration { return &j.RampTime })},
	{name: "startdelay", help: "wait this long before the job starts", set: timeSetter(func(j *Job) *time.Duration { return &j.StartDelay })},
	{name: "thinktime", help: "stall this long (bare number: microseconds) after every thinktime_blocks I/Os have completed", set: func(j *Job, v string) error {
		d, err := parseTimeUnit(v, time.Microsecond)
		j.ThinkTime = d
		return err
	}},
	{name: "thinktime_blocks", help: "I/Os issued between stalls (default 1; it caps the queue depth)", set: intSetter(func(j *Job) *int { return &j.ThinkBlocks }, 1, 1<<30)},
	{name: "time_based", help: "run for runtime even when size is done", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.TimeBased })},
	{name: "rwmixread", help: "percent reads in rw/randrw", set: func(j *Job, v string) error {
		return intSetter(func(j *Job) *int { return &j.RWMixRead }, 0, 100)(j, v)
	}},
	{name: "rwmixwrite", help: "percent writes in rw/randrw", set: func(j *Job, v string) error {
		n, err := parseInt(v, 0, 100)
		j.RWMixRead = 100 - n
		return err
	}},
	{name: "direct", help: "O_DIRECT (1) or buffered (0)", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.Direct })},
	{name: "buffered", help: "inverse of direct", bool_: true, set: func(j *Job, v string) error {
		var b bool
		err := boolSetter(func(*Job) *bool { return &b })(j, v)
		j.Direct = !b
		return err
	}},
	{name: "filename", help: "file, block device or tcp://HOST:PORT/NQN/NSID", set: func(j *Job, v string) error { j.Filename = v; return nil }},
	{name: "directory", help: "directory for generated file names", set: func(j *Job, v string) error { j.Directory = v; return nil }},
	{name: "ioengine", help: "engine: " + "see --enghelp (fio's libaio and posixaio run on io_uring, sync and pvsync on psync)", set: func(j *Job, v string) error {
		j.IOEngine, j.EngineAlias = v, ""
		if to, ok := engineAliases[v]; ok {
			j.IOEngine, j.EngineAlias = to, v
		}
		return nil
	}},
	{name: "sync", help: "synchronous writes: none/0, sync/1 (O_SYNC), dsync (O_DSYNC); FUA on nvme-tcp", set: enumSetter(func(j *Job) *SyncMode { return &j.Sync },
		"none, sync or dsync", map[string]SyncMode{"0": SyncNone, "none": SyncNone, "false": SyncNone,
			"1": SyncFile, "sync": SyncFile, "true": SyncFile, "": SyncFile, "dsync": SyncData})},
	{name: "norandommap", help: "random offsets may repeat within a pass", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.NoRandomMap })},
	{name: "randrepeat", help: "same random sequence every run (default 1)", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.RandRepeat })},
	{name: "randseed", help: "seed of the random generators", set: func(j *Job, v string) error {
		n, err := strconv.ParseUint(v, 0, 64)
		if err != nil {
			return fmt.Errorf("not an integer: %q", v)
		}
		j.RandSeed = n
		return nil
	}},
	{name: "random_distribution", help: "random or zipf:THETA", set: setDistribution},
	{name: "verify", help: "crc32c (or 0/none): checksummed blocks", set: enumSetter(func(j *Job) *string { return &j.Verify },
		"crc32c, pattern (or none)", map[string]string{"0": "", "none": "", "": "", "crc32c": "crc32c", "crc32c-intel": "crc32c", "pattern": "pattern"})},
	{name: "verify_pattern", help: "bytes written and checked: 0xdeadbeef, decimal, \"text\", %o (the block offset), concatenated; sets verify=pattern unless verify is set", set: func(j *Job, v string) (err error) {
		j.VerifyPattern, err = ParsePattern(v)
		return err
	}},
	{name: "buffer_pattern", help: "bytes writes carry (as verify_pattern, without %o)", set: func(j *Job, v string) (err error) {
		if j.BufferPattern, err = ParsePattern(v); err == nil && len(j.BufferPattern.Offsets) > 0 {
			err = errors.New("%o only in verify_pattern")
		}
		return err
	}},
	{name: "do_verify", help: "read back and check after writing (default 1)", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.DoVerify })},
	{name: "iodepth_batch_submit", help: "I/Os per submission (default 1; 0: iodepth)", set: intSetter(func(j *Job) *int { return &j.BatchSubmit }, 0, 65536)},
	{name: "iodepth_batch_complete_min", help: "completions to wait for per reap (default 1; 0, fio's busy poll, waits for 1)", set: intSetter(func(j *Job) *int { return &j.CompleteMin }, 0, 65536)},
	{name: "iodepth_batch_complete", help: "alias of iodepth_batch_complete_min", set: intSetter(func(j *Job) *int { return &j.CompleteMin }, 0, 65536)},
	{name: "iodepth_batch_complete_max", help: "completions taken at most per reap (default iodepth)", set: intSetter(func(j *Job) *int { return &j.CompleteMax }, 0, 65536)},
	{name: "iodepth_batch", help: "alias of iodepth_batch_submit", set: intSetter(func(j *Job) *int { return &j.BatchSubmit }, 0, 65536)},
	{name: "fsync", help: "fsync after every N writes (0: never)", set: intSetter(func(j *Job) *int { return &j.Fsync }, 0, 1<<30)},
	{name: "fdatasync", help: "fdatasync after every N writes (0: never)", set: intSetter(func(j *Job) *int { return &j.Fdatasync }, 0, 1<<30)},
	{name: "end_fsync", help: "fsync when the job's writes are done, inside its runtime", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.EndFsync })},
	{name: "fsync_on_close", help: "fsync when the file is closed (as end_fsync here)", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.EndFsync })},
	{name: "invalidate", help: "drop the file's page cache before the job (default 1)", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.Invalidate })},
	{name: "loops", help: "run the job's I/O this many times (default 1)", set: intSetter(func(j *Job) *int { return &j.Loops }, 1, 1<<30)},
	{name: "zero_buffers", help: "write zeros (default: random data, filled once)", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.ZeroBuffers })},
	{name: "refill_buffers", help: "new random data for every write", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.RefillBuffers })},
	{name: "percentile_list", help: "latency percentiles to report, e.g. 50:99:99.9 (at most 20)", set: setPercentiles},
	{name: "clat_percentiles", help: "report completion latency percentiles (default 1)", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.ClatPct })},
	{name: "lat_percentiles", help: "report total latency percentiles (default 1 here; fio: 0)", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.LatPct })},
	{name: "rate", help: "bandwidth cap per clone, or read,write[,trim] caps (500m, 1g)", set: rateSetter(func(j *Job) *[numDirs]int64 { return &j.Rate })},
	{name: "rate_iops", help: "IOPS cap per clone, or read,write[,trim] caps", set: rateSetter(func(j *Job) *[numDirs]int64 { return &j.RateIOPS })},
	{name: "cpus_allowed", help: "CPUs the job's thread may run on, e.g. 0-3,8", set: setCPUs},
	{name: "cpus_allowed_policy", help: "shared (every clone on all of them) or split (one CPU each)", set: enumSetter(func(j *Job) *bool { return &j.SplitCPUs },
		"shared or split", map[string]bool{"shared": false, "split": true})},
	{name: "write_bw_log", bool_: true, help: "log bandwidth to NAME_bw.N.log (KiB/s per log_avg_msec or 500 ms window)", set: logSetter(func(o *LogOptions) (*bool, *string) { return &o.BW, &o.BWName })},
	{name: "write_iops_log", bool_: true, help: "log IOPS to NAME_iops.N.log (per log_avg_msec or 500 ms window)", set: logSetter(func(o *LogOptions) (*bool, *string) { return &o.IOPS, &o.IOPSName })},
	{name: "write_lat_log", bool_: true, help: "log latencies (ns) to NAME_slat/_clat/_lat.N.log, every I/O or averaged per log_avg_msec", set: logSetter(func(o *LogOptions) (*bool, *string) { return &o.Lat, &o.LatName })},
	{name: "log_avg_msec", help: "average log entries over windows of this many ms (0: latency of every I/O)", set: intSetter(func(j *Job) *int { return &j.Logs.AvgMsec }, 0, 1<<30)},
	{name: "log_offset", help: "add each I/O's offset to every log line (0 in averaged lines)", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.Logs.Offset })},
	{name: "per_job_logs", help: "one log file per clone (default 1); 0: the clones share one", bool_: true, set: func(j *Job, v string) error {
		var per bool
		if err := boolSetter(func(*Job) *bool { return &per })(j, v); err != nil {
			return err
		}
		j.Logs.SharedAcrossClones = !per
		return nil
	}},
	{name: "stonewall", help: "wait for previous jobs; start a new group", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.Stonewall })},
	{name: "wait_for_previous", help: "alias of stonewall", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.Stonewall })},
	{name: "new_group", help: "start a new reporting group", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.NewGroup })},
	{name: "group_reporting", help: "report groups, not jobs", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.GroupReport })},
	{name: "fadvise_hint", help: "posix_fadvise advice for local files: 1 (default: random or sequential by rw), 0, sequential, random, noreuse", bool_: true, set: enumSetter(func(j *Job) *Fadvise { return &j.Fadvise },
		"0, 1, sequential, random or noreuse", map[string]Fadvise{"0": FadviseNone, "false": FadviseNone, "1": FadviseByPattern, "true": FadviseByPattern, "": FadviseByPattern,
			"sequential": FadviseSequential, "random": FadviseRandom, "noreuse": FadviseNoReuse})},
	{name: "unified_rw_reporting", help: "none/0: directions apart; mixed/1: only their sum (\"mixed\"); both/2: both", bool_: true, set: enumSetter(func(j *Job) *UnifiedMode { return &j.Unified },
		"none, mixed or both", map[string]UnifiedMode{"0": UnifiedNone, "none": UnifiedNone, "false": UnifiedNone,
			"1": UnifiedMixed, "mixed": UnifiedMixed, "true": UnifiedMixed, "": UnifiedMixed, "2": UnifiedBoth, "both": UnifiedBoth})},
	// Accepted for compatibility: they describe how fio itself runs and
	// have no meaning here (jobs are always threads).
	{name: "thread", help: "accepted; jobs are always threads", bool_: true, set: func(*Job, string) error { return nil }},
	{name: "clocksource", help: "accepted; latency is always timed with the monotonic clock", set: func(*Job, string) error { return nil }},
	{name: "gtod_reduce", help: "accepted; every statistic is always kept (it costs little here)", bool_: true, set: func(*Job, string) error { return nil }},
}

// OptionHelp is one option name with its help text, for the CLI.
type OptionHelp struct {
	Name, Help string
	Bool       bool
}

// Options lists the job options the core understands, then those of every
// registered engine, in name order.
func Options() []OptionHelp {
	var out []OptionHelp
	for _, s := range optionSpecs {
		out = append(out, OptionHelp{Name: s.name, Help: s.help, Bool: s.bool_})
	}
	seen := map[string]bool{}
	for _, e := range engines() {
		for _, o := range e.options {
			if !seen[o] {
				seen[o] = true
				out = append(out, OptionHelp{Name: o, Help: "engine option (" + e.name + ")", Bool: e.bools[o]})
			}
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

func findSpec(name string) *optionSpec {
	for i := range optionSpecs {
		if optionSpecs[i].name == name {
			return &optionSpecs[i]
		}
	}
	return nil
}

// ErrUnknownOption is wrapped by errors for options neither the core nor
// the job's engine knows.
var ErrUnknownOption = errors.New("unknown option")

// apply sets one option on j. Engine options are collected and checked
// against the engine once the engine is known (see validate).
func (j *Job) apply(o Option) error {
	name := strings.TrimSpace(o.Name)
	v := strings.TrimSpace(o.Value)
	s := findSpec(name)
	if s == nil {
		if j.EngineOptions == nil {
			j.EngineOptions = map[string]string{}
		}
		j.EngineOptions[name] = v
		j.Options = append(j.Options, [2]string{name, v})
		return nil
	}
	if v == "" && !s.bool_ && name != "description" {
		return fmt.Errorf("option %s: needs a value", name)
	}
	if err := s.set(j, v); err != nil {
		return fmt.Errorf("option %s: %w", name, err)
	}
	j.Options = append(j.Options, [2]string{name, v})
	return nil
}

// engineAliases maps fio engines flashpath has no engine of its own for to
// the one that runs their jobs with the same semantics: libaio and posixaio
// keep iodepth requests in flight like io_uring; sync, vsync and the
// pvsync engines do one blocking call at a time like psync.
var engineAliases = map[string]string{
	"libaio":   "io_uring",
	"posixaio": "io_uring",
	"sync":     "psync",
	"vsync":    "psync",
	"pvsync":   "psync",
	"pvsync2":  "psync",
}
