package bench

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Direction indexes per-direction statistics, as fio's DDIR_READ/WRITE.
type Direction int

const (
	DirRead Direction = iota
	DirWrite
	DirTrim
	numDirs
)

func (d Direction) String() string {
	switch d {
	case DirWrite:
		return "write"
	case DirTrim:
		return "trim"
	}
	return "read"
}

// RW is fio's rw= pattern.
type RW struct {
	Read, Write, Trim bool // which directions the job issues
	Random            bool
}

func parseRW(v string) (RW, error) {
	// fio allows an ":<nr>" sequence modifier; we do not.
	switch v {
	case "read":
		return RW{Read: true}, nil
	case "write":
		return RW{Write: true}, nil
	case "randread":
		return RW{Read: true, Random: true}, nil
	case "randwrite":
		return RW{Write: true, Random: true}, nil
	case "rw", "readwrite":
		return RW{Read: true, Write: true}, nil
	case "randrw":
		return RW{Read: true, Write: true, Random: true}, nil
	case "trim":
		return RW{Trim: true}, nil
	case "randtrim":
		return RW{Trim: true, Random: true}, nil
	case "trimwrite":
		return RW{Trim: true, Write: true}, nil
	}
	return RW{}, fmt.Errorf("unknown pattern %q (want read, write, trim, randread, randwrite, randtrim, rw, readwrite, randrw or trimwrite)", v)
}

func (rw RW) String() string {
	s := ""
	switch {
	case rw.Trim && rw.Write:
		return "trimwrite"
	case rw.Trim:
		s = "trim"
	case rw.Read && rw.Write:
		s = "rw"
	case rw.Write:
		s = "write"
	default:
		s = "read"
	}
	if rw.Random {
		if s == "rw" {
			return "randrw"
		}
		return "rand" + s
	}
	return s
}

// Distribution is fio's random_distribution.
type Distribution struct {
	Kind  DistKind
	Theta float64 // zipf: theta, > 0 and != 1
	H     float64 // pareto: h, 0 < h < 1
	Dev   float64 // normal: standard deviation, percent of the range
	Zones []Zone  // zoned: access percent of each range percent
}

// DistKind names a random_distribution.
type DistKind uint8

// Random distributions (fio's random_distribution).
const (
	DistRandom DistKind = iota // uniform
	DistZipf
	DistPareto
	DistNormal
	DistZoned
)

// FileService is fio's file_service_type.
type FileService uint8

const (
	ServiceRoundRobin FileService = iota // fio's default: the files in turn
	ServiceSequential                    // one file after the other
	ServiceRandom                        // a file at random for each I/O
)

func setFileService(j *Job, v string) error {
	kind, n, hasN := strings.Cut(v, ":")
	j.FileServiceN = 1
	if hasN {
		k, err := parseInt(n, 1, 1<<20)
		if err != nil {
			return err
		}
		j.FileServiceN = k
	}
	switch kind {
	case "roundrobin":
		j.FileService = ServiceRoundRobin
	case "sequential":
		j.FileService = ServiceSequential
	case "random":
		j.FileService = ServiceRandom
	default:
		return fmt.Errorf("%q: want roundrobin[:N], sequential or random", v)
	}
	if hasN && j.FileService != ServiceRoundRobin {
		return fmt.Errorf("%q: :N only with roundrobin here", v)
	}
	return nil
}

// Fadvise is fio's fadvise_hint.
type Fadvise uint8

const (
	FadviseByPattern  Fadvise = iota // fio's 1: random for random rw, sequential otherwise
	FadviseNone                      // 0: no advice
	FadviseSequential                // POSIX_FADV_SEQUENTIAL
	FadviseRandom                    // POSIX_FADV_RANDOM
	FadviseNoReuse                   // POSIX_FADV_NOREUSE
)

// FadviseAdvice resolves fadvise_hint for the job's pattern.
func (j *Job) FadviseAdvice() Fadvise {
	if j.Fadvise != FadviseByPattern {
		return j.Fadvise
	}
	if j.RW.Random {
		return FadviseRandom
	}
	return FadviseSequential
}

// UnifiedMode is fio's unified_rw_reporting.
type UnifiedMode uint8

const (
	UnifiedNone  UnifiedMode = iota // read, write and trim apart
	UnifiedMixed                    // only their sum, as "mixed"
	UnifiedBoth                     // apart, and their sum
)

// BSWeight is one size/percent pair of bssplit.
type BSWeight struct {
	Size int
	Pct  float64
}

// Zone is one zoned:ACCESS/RANGE pair: ACCESS percent of the I/O goes to
// the next RANGE percent of the blocks.
type Zone struct{ Access, Range float64 }

// ContinueOn is fio's continue_on_error: which errors a job counts and
// goes on after, instead of stopping.
type ContinueOn uint8

// Error classes of continue_on_error (trims count as writes).
const (
	ContinueRead ContinueOn = 1 << iota
	ContinueWrite
	ContinueVerify
)

// Job is one fio job after [global] inheritance and sweep expansion: plain
// values, validated, fio's units already applied.
type Job struct {
	Name string
	// ContinueOnError lists the errors that are counted, not fatal.
	ContinueOnError ContinueOn
	// Description is fio's description= (free text; the reports carry it).
	Description string
	GroupID     int // reporting group (a sweep point or a stonewall)
	RW          RW
	BS          [numDirs]int // block size per direction (fio bs=read,write); with bssplit, the smallest
	// BSSplit is fio's bssplit per direction: each I/O draws its block
	// size by these weights (nil: BS); offsets stay on the grid of the
	// smallest, BS.
	BSSplit [numDirs][]BSWeight
	IODepth int
	NumJobs int
	Size    int64 // bytes of the file region used; 0: the engine's size
	IOSize  int64 // bytes to transfer per job; 0: Size
	Offset  int64
	// NrFiles is nrfiles: files per clone (JOB.CLONE.0 ... in directory=),
	// each FileSize bytes (filesize; default size/nrfiles); Size is then
	// the total over the files.
	NrFiles  int
	FileSize int64
	// FileService is file_service_type: which file each I/O goes to.
	FileService FileService
	// FileServiceN is roundrobin:N, I/Os per file before the next.
	FileServiceN int
	// OffsetIncrement moves each clone's region on: clone i starts at
	// Offset + i*OffsetIncrement (fio's offset_increment).
	OffsetIncrement int64
	// NumberIOs ends a clone after this many I/Os, if nothing ends it
	// sooner (fio's number_ios; 0: no limit).
	NumberIOs int64
	// ExitAll ends every job of the group when this one finishes.
	ExitAll  bool
	Runtime  time.Duration
	RampTime time.Duration
	// StartDelay delays the job's start; ThinkTime stalls it after every
	// ThinkBlocks I/Os, once they have completed (fio's thinktime).
	StartDelay, ThinkTime time.Duration
	ThinkBlocks           int
	TimeBased             bool
	RWMixRead             int // percent of reads in mixed workloads

	Direct bool
	// Sync opens the file for synchronous writes (fio's sync=): SyncFile
	// is O_SYNC, SyncData O_DSYNC; on nvme-tcp every write carries FUA.
	Sync        SyncMode
	Filename    string
	Directory   string
	IOEngine    string
	EngineAlias string // fio's engine name when it runs on another engine (libaio: io_uring)
	NoRandomMap bool
	RandRepeat  bool
	RandSeed    uint64
	Dist        Distribution

	// Fadvise is fadvise_hint: the posix_fadvise advice local files get
	// (FadviseByPattern, the default: random or sequential by rw).
	Fadvise Fadvise
	// Unified is unified_rw_reporting: report the directions apart
	// (none), only summed ("mixed"), or both.
	Unified UnifiedMode
	Verify  string // "", "crc32c" or "pattern"
	// VerifyPattern is verify_pattern: what verify=pattern writes and
	// checks, and what follows the header with verify=crc32c.
	VerifyPattern *Pattern
	// BufferPattern is buffer_pattern: what writes carry when nothing is
	// verified.
	BufferPattern *Pattern
	DoVerify      bool
	BatchSubmit   int // iodepth_batch_submit: I/Os per Commit (fio's default 1; 0: iodepth)
	// iodepth_batch_complete_min and _max: completions to wait for, and to
	// take at most, per reap (default 1 and iodepth). fio's min 0 polls
	// without waiting; here it waits for one, as the default.
	CompleteMin, CompleteMax int

	Fsync, Fdatasync int  // a sync every this many writes; 0: never
	EndFsync         bool // end_fsync, fsync_on_close
	Invalidate       bool // drop the page cache of the file first (fio's default)
	Loops            int
	ZeroBuffers      bool
	RefillBuffers    bool

	// Percentiles reported for latencies (percentile_list; nil: fio's
	// default list); ClatPct and LatPct turn them on for clat and lat.
	Percentiles     []float64
	ClatPct, LatPct bool

	Logs LogOptions // write_bw_log, write_iops_log, write_lat_log and their options

	// Rate (bytes/s) and RateIOPS cap each direction of each clone (0: no cap).
	Rate     [numDirs]int64
	RateIOPS [numDirs]int64

	// CPUs is cpus_allowed (nil: any); SplitCPUs is cpus_allowed_policy=split.
	CPUs        []int
	SplitCPUs   bool
	Stonewall   bool
	NewGroup    bool
	GroupReport bool

	// EngineOptions are options declared by the engine (fio's
	// engine-specific options, e.g. fixedbufs for io_uring), by name.
	EngineOptions map[string]string

	// Options are the options as given, for "job options" in JSON output.
	Options [][2]string

	// Swept are the list-valued options that produced this job, with the
	// value it got ("iodepth=32"); empty when the job is not a sweep point.
	Swept []Option
}

// RegionSize is the bytes of each file a clone uses: filesize, or size
// with one file (0: the engine's size).
func (j *Job) RegionSize() int64 {
	if j.FileSize > 0 {
		return j.FileSize
	}
	return j.Size
}

// CloneOffset is where clone's region starts: offset plus its share of
// offset_increment.
func (j *Job) CloneOffset(clone int) int64 { return j.Offset + int64(clone)*j.OffsetIncrement }

// DefaultJob returns a job with fio's defaults.
func DefaultJob() Job {
	return Job{
		RW:           RW{Read: true},
		BS:           [numDirs]int{4096, 4096, 4096},
		IODepth:      1,
		NrFiles:      1,
		FileServiceN: 1,
		BatchSubmit:  1,
		CompleteMin:  1,
		ThinkBlocks:  1,
		Invalidate:   true,
		Loops:        1,
		ClatPct:      true,
		LatPct:       true,
		NumJobs:      1,
		RWMixRead:    50,
		IOEngine:     "psync",
		RandRepeat:   true,
		DoVerify:     true,
	}
}

// logSetter turns a log on, its file name prefix the value: none (a bare
// --write_bw_log on the command line gives "1") means the job's name, as
// in fio.
func logSetter(on func(*LogOptions) (*bool, *string)) func(*Job, string) error {
	return func(j *Job, v string) error {
		b, name := on(&j.Logs)
		if v == "1" || v == "true" {
			v = ""
		}
		*b, *name = true, v
		return nil
	}
}

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

func setBS(j *Job, v string) error {
	parts := strings.Split(v, ",")
	if len(parts) > 3 {
		return fmt.Errorf("want bs or read,write[,trim], got %q", v)
	}
	var sizes []int
	for _, p := range parts {
		if p == "" {
			sizes = append(sizes, -1) // keep: fio's "bs=,8k"
			continue
		}
		n, err := ParseSize(p)
		if err != nil {
			return err
		}
		if n <= 0 || n > 1<<30 {
			return fmt.Errorf("block size %q out of range", p)
		}
		sizes = append(sizes, int(n))
	}
	if len(sizes) == 1 {
		j.BS = [numDirs]int{sizes[0], sizes[0], sizes[0]}
		return nil
	}
	for d, n := range sizes {
		if n > 0 {
			j.BS[d] = n
		}
	}
	return nil
}

// setBSSplit parses fio's bssplit: SIZE/PERCENT:SIZE/PERCENT..., one mix
// for every direction or read,write[,trim] mixes (an empty field keeps
// bs). Sizes without a percent share what the others leave.
func setBSSplit(j *Job, v string) (err error) {
	j.BSSplit, err = perDir(v, "want a mix or read,write[,trim] mixes, got %q", parseBSMix)
	return err
}

// perDir parses fio's per-direction lists: one value for every direction,
// or read,write[,trim] with empty fields left zero. tooMany formats the
// error for more than three fields.
func perDir[T any](v, tooMany string, parse func(string) (T, error)) ([numDirs]T, error) {
	var out [numDirs]T
	parts := strings.Split(v, ",")
	if len(parts) > int(numDirs) {
		return out, fmt.Errorf(tooMany, v)
	}
	for d, p := range parts {
		if p == "" {
			continue
		}
		x, err := parse(p)
		if err != nil {
			return out, err
		}
		out[d] = x
	}
	if len(parts) == 1 {
		out = [numDirs]T{out[0], out[0], out[0]}
	}
	return out, nil
}

func parseBSMix(s string) ([]BSWeight, error) {
	var out []BSWeight
	var sum float64
	unset := 0
	for _, e := range strings.Split(s, ":") {
		size, pct, hasPct := strings.Cut(e, "/")
		n, err := ParseSize(size)
		if err != nil {
			return nil, err
		}
		if n <= 0 || n > 1<<30 {
			return nil, fmt.Errorf("block size %q out of range", size)
		}
		w := BSWeight{Size: int(n), Pct: -1}
		if hasPct && pct != "" {
			if w.Pct, err = strconv.ParseFloat(pct, 64); err != nil || w.Pct < 0 || w.Pct > 100 {
				return nil, fmt.Errorf("percent %q of %s: want 0 to 100", pct, size)
			}
			sum += w.Pct
		} else {
			unset++
		}
		out = append(out, w)
	}
	if sum > 100+1e-9 {
		return nil, fmt.Errorf("%q: percents add up to %g, more than 100", s, sum)
	}
	if unset == 0 && sum < 100-1e-9 {
		return nil, fmt.Errorf("%q: percents add up to %g, not 100", s, sum)
	}
	smallest := out[0].Size
	for i := range out {
		if out[i].Pct < 0 {
			out[i].Pct = (100 - sum) / float64(unset)
		}
		smallest = min(smallest, out[i].Size)
	}
	for _, w := range out {
		if w.Size%smallest != 0 {
			return nil, fmt.Errorf("%q: %d is not a multiple of the smallest size %d (offsets stay on its grid)", s, w.Size, smallest)
		}
	}
	return out, nil
}

// rateSetter parses fio's rate lists: one value for every direction, or
// read,write[,trim] with empty fields left uncapped.
func rateSetter(field func(*Job) *[numDirs]int64) func(*Job, string) error {
	return func(j *Job, v string) error {
		out, err := perDir(v, "want a value or read,write[,trim], got %q", func(p string) (int64, error) {
			n, err := ParseSize(p)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("rate %q: want a non-negative number (fio units: 500k, 1g)", p)
			}
			return n, nil
		})
		if err != nil {
			return err
		}
		*field(j) = out
		return nil
	}
}

// setCPUs parses a CPU list: "0-3,8,10-11".
func setCPUs(j *Job, v string) error {
	var cpus []int
	for _, part := range strings.Split(v, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err1 := strconv.Atoi(lo)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.Atoi(hi)
		}
		if err1 != nil || err2 != nil || a < 0 || b < a || b >= 1<<14 {
			return fmt.Errorf("CPU list %q: want numbers and ranges like 0-3,8", v)
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	j.CPUs = cpus
	return nil
}

func setPercentiles(j *Job, v string) error {
	parts := strings.Split(v, ":")
	if len(parts) > 20 {
		return fmt.Errorf("at most 20 percentiles, got %d", len(parts))
	}
	ps := make([]float64, 0, len(parts))
	for _, p := range parts {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || !(f > 0 && f <= 100) {
			return fmt.Errorf("percentile %q: want a number above 0 and at most 100", p)
		}
		ps = append(ps, f)
	}
	j.Percentiles = ps
	return nil
}

func setDistribution(j *Job, v string) error {
	kind, arg, _ := strings.Cut(v, ":")
	num := func(what string, ok func(float64) bool) (float64, error) {
		f, err := strconv.ParseFloat(arg, 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) || !ok(f) {
			return 0, fmt.Errorf("%s needs %s, got %q", kind, what, arg)
		}
		return f, nil
	}
	var err error
	switch kind {
	case "random":
		j.Dist = Distribution{}
		return nil
	case "zipf":
		j.Dist = Distribution{Kind: DistZipf}
		j.Dist.Theta, err = num("a theta > 0 and != 1", func(f float64) bool { return f > 0 && f != 1 })
		return err
	case "pareto":
		j.Dist = Distribution{Kind: DistPareto}
		j.Dist.H, err = num("an h between 0 and 1", func(f float64) bool { return f > 0 && f < 1 })
		return err
	case "normal", "gauss":
		j.Dist = Distribution{Kind: DistNormal}
		j.Dist.Dev, err = num("a deviation in percent, above 0 and at most 100", func(f float64) bool { return f > 0 && f <= 100 })
		return err
	case "zoned":
		j.Dist, err = parseZones(arg)
		return err
	}
	return fmt.Errorf("unsupported distribution %q (want random, zipf:THETA, pareto:H, normal:DEV%% or zoned:ACCESS/RANGE:...)", v)
}

// parseZones parses zoned's ACCESS/RANGE pairs, e.g. 60/10:30/20:10/70.
func parseZones(arg string) (Distribution, error) {
	d := Distribution{Kind: DistZoned}
	if strings.Contains(arg, ",") {
		return d, errors.New("zoned: one set of zones for reads and writes alike (no ',')")
	}
	var access, rng float64
	for _, z := range strings.Split(arg, ":") {
		a, r, ok := strings.Cut(z, "/")
		af, err1 := strconv.ParseFloat(a, 64)
		rf, err2 := strconv.ParseFloat(r, 64)
		if !ok || err1 != nil || err2 != nil || af < 0 || rf <= 0 {
			return d, fmt.Errorf("zoned: %q is not ACCESS/RANGE in percent, e.g. 60/10", z)
		}
		d.Zones = append(d.Zones, Zone{Access: af, Range: rf})
		access += af
		rng += rf
	}
	if math.Abs(access-100) > 1e-9 || math.Abs(rng-100) > 1e-9 {
		return d, fmt.Errorf("zoned: access percents sum to %g and range percents to %g; both must be 100", access, rng)
	}
	return d, nil
}

func intSetter(field func(*Job) *int, lo, hi int) func(*Job, string) error {
	return func(j *Job, v string) error {
		n, err := parseInt(v, lo, hi)
		if err != nil {
			return err
		}
		*field(j) = n
		return nil
	}
}

func parseInt(v string, lo, hi int) (int, error) {
	n, err := ParseSize(v) // fio ints take the same suffixes
	if err != nil {
		return 0, err
	}
	if n < int64(lo) || n > int64(hi) {
		return 0, fmt.Errorf("%s out of range [%d, %d]", v, lo, hi)
	}
	return int(n), nil
}

func sizeSetter(field func(*Job) *int64) func(*Job, string) error {
	return func(j *Job, v string) error {
		n, err := ParseSize(v)
		if err != nil {
			return err
		}
		*field(j) = n
		return nil
	}
}

func timeSetter(field func(*Job) *time.Duration) func(*Job, string) error {
	return func(j *Job, v string) error {
		d, err := ParseTime(v)
		if err != nil {
			return err
		}
		*field(j) = d
		return nil
	}
}

func boolSetter(field func(*Job) *bool) func(*Job, string) error {
	return func(j *Job, v string) error {
		switch strings.ToLower(v) {
		case "", "1", "true", "yes", "on":
			*field(j) = true
		case "0", "false", "no", "off":
			*field(j) = false
		default:
			return fmt.Errorf("not a boolean: %q", v)
		}
		return nil
	}
}

// ParseSize parses a fio integer with size suffix. As in fio (kb_base=1024,
// the default), k/m/g/t/p and kb/mb/... are powers of 1024, while the
// explicit IEC spellings kib/mib/... are powers of 1000; a 0x prefix is hex.
func ParseSize(s string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "" {
		return 0, errors.New("empty size")
	}
	if strings.HasPrefix(t, "0x") {
		n, err := strconv.ParseInt(t[2:], 16, 64)
		if err != nil {
			return 0, fmt.Errorf("bad hex number %q", s)
		}
		return n, nil
	}
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		i++
	}
	num, suf := t[:i], t[i:]
	if num == "" {
		return 0, fmt.Errorf("bad size %q", s)
	}
	var base, mult float64 = 1024, 1
	switch {
	case strings.HasSuffix(suf, "ib"):
		base = 1000
		suf = strings.TrimSuffix(suf, "ib")
	case strings.HasSuffix(suf, "b") && len(suf) > 1:
		suf = strings.TrimSuffix(suf, "b")
	}
	switch suf {
	case "", "b":
	case "k":
		mult = base
	case "m":
		mult = base * base
	case "g":
		mult = math.Pow(base, 3)
	case "t":
		mult = math.Pow(base, 4)
	case "p":
		mult = math.Pow(base, 5)
	case "%":
		return 0, fmt.Errorf("percentage sizes are not supported: %q", s)
	default:
		return 0, fmt.Errorf("bad size suffix in %q", s)
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("bad size %q", s)
		}
		if mult > 1 && float64(n)*mult > math.MaxInt64 {
			return 0, fmt.Errorf("size %q overflows", s)
		}
		return n * int64(mult), nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return int64(f * mult), nil
}

// ParseTime parses a fio time value: seconds unless suffixed with
// us/usec, ms/msec, s/sec, m/min, h/hour or d/day.
func ParseTime(s string) (time.Duration, error) { return parseTimeUnit(s, time.Second) }

// parseTimeUnit is ParseTime with def the unit of a bare number (fio's
// thinktime counts microseconds).
func parseTimeUnit(s string, def time.Duration) (time.Duration, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	i := 0
	for i < len(t) && t[i] >= '0' && t[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("bad time %q", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad time %q", s)
	}
	var unit time.Duration
	switch t[i:] {
	case "":
		unit = def
	case "s", "sec":
		unit = time.Second
	case "us", "usec":
		unit = time.Microsecond
	case "ms", "msec":
		unit = time.Millisecond
	case "m", "min":
		unit = time.Minute
	case "h", "hour":
		unit = time.Hour
	case "d", "day":
		unit = 24 * time.Hour
	default:
		return 0, fmt.Errorf("bad time suffix in %q", s)
	}
	return time.Duration(n) * unit, nil
}

// Section is one [section] of a job file, or the command line's options.
type Section struct {
	Name    string
	Options []Option
}

// BuildJobs applies fio's inheritance to sections: every job starts from
// the defaults plus global (and the [global] sections above it, in file
// order), then its own options, then overrides (command-line flags). List
// values of sweepable options expand into one job per combination, each a
// reporting group of its own that runs after the previous one.
func BuildJobs(global []Option, sections []Section, overrides []Option) ([]*Job, error) {
	var jobs []*Job
	group := 0
	for _, sec := range sections {
		opts := slices.Concat(global, sec.Options, overrides)
		expanded, err := expandSweeps(opts)
		if err != nil {
			return nil, fmt.Errorf("job %s: %w", sec.Name, err)
		}
		for k, eo := range expanded {
			j := DefaultJob()
			j.Name = sec.Name
			j.Swept = eo.swept
			for _, o := range eo.opts {
				if err := j.apply(o); err != nil {
					return nil, fmt.Errorf("job %s: %w", sec.Name, err)
				}
			}
			if err := j.validate(); err != nil {
				return nil, fmt.Errorf("job %s: %w", j.Name, err)
			}
			if len(jobs) > 0 && (j.Stonewall || j.NewGroup || len(expanded) > 1 || k > 0) {
				group++
			}
			j.GroupID = group
			if len(expanded) > 1 {
				j.Stonewall = true
			}
			jobs = append(jobs, &j)
		}
	}
	if len(jobs) == 0 {
		return nil, errors.New("no jobs defined")
	}
	return jobs, nil
}

type sweepPoint struct {
	opts, swept []Option
}

// expandSweeps returns one option list per combination of list values.
func expandSweeps(opts []Option) ([]sweepPoint, error) {
	out := []sweepPoint{{}}
	for _, o := range opts {
		s := findSpec(strings.TrimSpace(o.Name))
		if s == nil || !s.sweep || !strings.Contains(o.Value, ",") {
			for i := range out {
				out[i].opts = append(out[i].opts, o)
			}
			continue
		}
		var vals []string
		for _, v := range strings.Split(o.Value, ",") {
			if v = strings.TrimSpace(v); v == "" {
				return nil, fmt.Errorf("option %s: empty value in list %q", o.Name, o.Value)
			}
			vals = append(vals, v)
		}
		var next []sweepPoint
		for _, p := range out {
			for _, v := range vals {
				// A later list for the same option replaces the earlier one.
				swept := slices.DeleteFunc(slices.Clone(p.swept), func(s Option) bool { return s.Name == o.Name })
				next = append(next, sweepPoint{
					opts:  append(slices.Clone(p.opts), Option{o.Name, v}),
					swept: append(swept, Option{o.Name, v}),
				})
			}
		}
		out = next
	}
	return out, nil
}

// enumSetter sets a field from a fixed set of spellings; want names them
// for the error.
func enumSetter[T any](field func(*Job) *T, want string, vals map[string]T) func(*Job, string) error {
	return func(j *Job, v string) error {
		x, ok := vals[v]
		if !ok {
			return fmt.Errorf("%q: want %s", v, want)
		}
		*field(j) = x
		return nil
	}
}

// SyncMode is fio's sync= for writes.
type SyncMode uint8

const (
	SyncNone SyncMode = iota
	SyncFile          // O_SYNC
	SyncData          // O_DSYNC
)

func (m SyncMode) String() string { return [...]string{"none", "sync", "dsync"}[m] }

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

func (j *Job) validate() error {
	if j.Name == "" {
		j.Name = "job"
	}
	info, ok := lookupEngine(j.IOEngine)
	if !ok {
		return fmt.Errorf("option ioengine: unknown engine %q (have %s)", j.IOEngine, strings.Join(EngineNames(), ", "))
	}
	for name := range j.EngineOptions {
		if !slices.Contains(info.options, name) {
			return fmt.Errorf("%w %q (not a job option, nor an option of engine %s)", ErrUnknownOption, name, j.IOEngine)
		}
	}
	if j.NrFiles > 1 || j.FileSize > 0 {
		if j.NrFiles > 1 && j.Filename != "" {
			return errors.New("option nrfiles: not with filename= (the files are named JOB.CLONE.N in directory=)")
		}
		if j.FileSize == 0 {
			j.FileSize = j.Size / int64(j.NrFiles)
			if j.FileSize == 0 {
				return errors.New("option nrfiles: give size (the total) or filesize (each file)")
			}
		}
		if j.Size == 0 {
			j.Size = j.FileSize * int64(j.NrFiles)
		}
		if j.NrFiles > 1 && j.FileService == ServiceRandom && !j.RW.Random {
			return errors.New("option file_service_type: random needs a random rw pattern here (sequential patterns use roundrobin or sequential)")
		}
		for d := range numDirs {
			if j.NrFiles > 1 && j.BSSplit[d] != nil {
				return errors.New("option bssplit: not with nrfiles")
			}
			if bpf := j.FileSize / int64(j.BS[d]); j.issues(Direction(d)) && bpf%int64(j.FileServiceN) != 0 {
				return fmt.Errorf("option file_service_type: roundrobin:%d must divide the %d blocks of each file", j.FileServiceN, bpf)
			}
		}
	}
	if j.VerifyPattern != nil && j.Verify == "" {
		j.Verify = "pattern"
	}
	if j.Verify == "pattern" && j.VerifyPattern == nil {
		return errors.New("option verify: pattern needs verify_pattern")
	}
	if j.RW.Trim && j.Verify != "" {
		return errors.New("option verify: trim workloads cannot verify (trimmed blocks hold no pattern)")
	}
	for d, mix := range j.BSSplit {
		if mix == nil {
			continue
		}
		if j.Verify != "" {
			return errors.New("option verify: not with bssplit (each block is verified at the size it was written; use bs)")
		}
		if j.RW.Trim && j.RW.Write {
			return errors.New("option bssplit: not with trimwrite (it writes the blocks it trims, at one size)")
		}
		j.BS[d] = mix[0].Size
		for _, w := range mix {
			j.BS[d] = min(j.BS[d], w.Size)
		}
	}
	if j.RW.Trim && j.RW.Write && j.BS[DirTrim] != j.BS[DirWrite] {
		return fmt.Errorf("option bs: trimwrite writes the blocks it trims: trim and write block sizes must match (%d, %d)", j.BS[DirTrim], j.BS[DirWrite])
	}
	if j.Runtime == 0 && j.TimeBased {
		return errors.New("option time_based: needs runtime")
	}
	for d := range numDirs {
		if j.Direct && j.BS[d]%512 != 0 {
			return fmt.Errorf("option bs: %d is not a multiple of 512, required by direct=1", j.BS[d])
		}
	}
	if j.Dist.Kind != DistRandom && !j.RW.Random {
		return errors.New("option random_distribution: needs a random rw pattern (randread, randwrite, randrw)")
	}
	return nil
}

// Modifies reports whether the job writes or trims (fio's --readonly
// refuses such jobs).
func (j *Job) Modifies() bool { return j.RW.Write || j.RW.Trim }

// maxBS is the largest block size the job issues.
func (j *Job) maxBS() int {
	m := 0
	for d := range numDirs {
		if j.issues(Direction(d)) {
			m = max(m, j.BS[d])
			for _, w := range j.BSSplit[d] {
				m = max(m, w.Size)
			}
		}
	}
	return m
}

// meanBS is direction d's average block size (for rate caps).
func (j *Job) meanBS(d Direction) float64 {
	if mix := j.BSSplit[d]; mix != nil {
		var s float64
		for _, w := range mix {
			s += float64(w.Size) * w.Pct / 100
		}
		return s
	}
	return float64(j.BS[d])
}

func (j *Job) issues(d Direction) bool {
	switch d {
	case DirRead:
		return j.RW.Read || (j.Verify != "" && j.DoVerify)
	case DirTrim:
		return j.RW.Trim
	}
	return j.RW.Write
}
