package bench

import (
	"fmt"
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
	// ThinkIssue is thinktime_blocks_type=issue: the stall comes after
	// thinktime_blocks I/Os issued, capping the queue depth; fio's
	// default (complete) after that many completed, the queue filling to
	// iodepth in between. ThinkSpin is thinktime_spin: the part of each
	// stall spent spinning rather than sleeping. RateIgnoreThink is
	// rate_ignore_thinktime: the rate's schedule moves on during a stall
	// instead of catching up after it.
	ThinkIssue      bool
	ThinkSpin       time.Duration
	RateIgnoreThink bool
	// ThinkIOTime is thinktime_iotime: a stall also once this long has
	// passed since the last one began (fio counts the stall in: the I/O
	// runs for about this long between stalls). Then thinktime_blocks
	// counts only if the job file gives it (ThinkBlocksSet), as in fio.
	ThinkIOTime    time.Duration
	ThinkBlocksSet bool
	TimeBased      bool
	RWMixRead      int // percent of reads in mixed workloads

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
	// iodepth_batch_complete_min and _max: completions a reap of a full
	// queue waits for, and takes at most (default 1 and 0; a max below
	// the min is the min, as fio's fixup_options: one at a time, so the
	// queue stays at iodepth). A min of 0 waits for one when the queue is
	// full, as fio.
	CompleteMin, CompleteMax int

	Fsync, Fdatasync int  // a sync every this many writes; 0: never
	EndFsync         bool // end_fsync, fsync_on_close
	Invalidate       bool // drop the page cache of the file first (fio's default)
	Loops            int
	ZeroBuffers      bool
	RefillBuffers    bool
	// CompressPct is buffer_compress_percentage: in every CompressChunk
	// bytes of write data (buffer_compress_chunk; 0: fio's 512) the last
	// CompressPct percent are zeros (or buffer_pattern), the rest random,
	// so that a compressing target shrinks the data by about that much.
	CompressPct, CompressChunk int
	// PreRead is pre_read: the job's region is read once through the
	// engine before the job starts (untimed), and invalidate is off, as
	// fio's pre_read_files: a buffered job then reads from the page cache.
	PreRead bool
	// NoScramble is scramble_buffers=0: fio's default (1) writes each
	// write's offset and time into every 512-byte block of the random
	// data it was filled with once, so that no two writes carry the same
	// bytes (a deduplicating target would keep one).
	NoScramble bool

	// Percentiles reported for latencies (percentile_list; nil: fio's
	// default list); ClatPct, LatPct and SlatPct turn them on for clat,
	// lat and slat.
	Percentiles              []float64
	ClatPct, LatPct, SlatPct bool
	// PercentilePrecision is fio's percentile_precision, the decimals of
	// the normal report's percentile labels: the most digits after the
	// point of any entry of percentile_list (unused without one: fio's
	// default list gives 2).
	PercentilePrecision int
	// SigFigs is significant_figures, the digits of the normal report's
	// IOPS, bandwidths and sizes (0: fio's 4).
	SigFigs int
	// NoDiskUtil is disk_util=0: the job's disks are not sampled, so
	// they are left out of the reports unless another job has them.
	NoDiskUtil bool

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

	// Filenames is filename= naming several files (fio's ':' separator,
	// "\\:" an escaped colon), in order; Filename is then the first, and
	// nil with one name.
	Filenames []string
	// SizePct, OffsetPct and OffsetIncrementPct are size=N%, offset=N%
	// and offset_increment=N%: a percent of the file or device's size (0:
	// not given; Size, Offset and OffsetIncrement hold bytes).
	SizePct, OffsetPct, OffsetIncrementPct float64
	// RWModifier is rw's ":<nr>" offset modifier: for sequential patterns
	// the bytes skipped after each I/O (rw=read:8k, sequential with holes),
	// for random ones the I/Os issued per new random offset (rw=randread:8),
	// as rw_sequencer says. 0: none.
	RWModifier int64
	// RWSequencerIdentical is rw_sequencer=identical: a random offset is
	// reused RWModifier times instead of followed sequentially.
	RWSequencerIdentical bool
	// KBBase is kb_base: 1024 (fio's default: k is 1024, KiB 1000) or
	// 1000 (k is 1000, KiB 1024). Sizes are already parsed by it.
	KBBase int
	// UnitBase is unit_base for the reports: 0 (auto: bytes), 8 (bytes)
	// or 1 (bits).
	UnitBase int
	// BlockAlign is blockalign (ba) per direction: random offsets fall on
	// multiples of it (0: the block size, fio's default).
	BlockAlign [numDirs]int
	// BSRange is bsrange per direction: block sizes drawn between the two
	// (already expressed as BSSplit when set; zero: not given).
	BSRange [numDirs][2]int
	// Unlink removes the job's files when it is done; Overwrite writes a
	// file in full before the job when it must be laid out; Fallocate is
	// fio's fallocate= mode for laying files out (none, native, posix,
	// keep, truncate, or "" for fio's default, native); AllowFileCreate
	// (fio's default) lets the job create a file that does not exist.
	Unlink, Overwrite, AllowFileCreate bool
	Fallocate                          string
	// DisableLat, DisableClat and DisableSlat are fio's disable_lat/_clat/
	// _slat: those latencies are not recorded, so the reports leave them
	// out (their percentiles too; disable_clat also the latency buckets
	// and sync latencies, which fio counts from completion latency).
	// DisableBW is disable_bw_measurement: a per-I/O bandwidth log
	// (write_bw_log with log_avg_msec=0) stays empty, and the bandwidth
	// statistics, which fio then takes from that log, have no samples;
	// otherwise the 500 ms windows are kept, as fio keeps them.
	// GtodReduce is gtod_reduce, whose setter sets the four and turns
	// the percentiles off where it stands (fio's callback); with it, or
	// with disable_clat, _slat and _bw all set (fio's gtod_reduce()), a
	// per-I/O IOPS log and the IOPS statistics stay empty likewise.
	DisableLat, DisableClat, DisableSlat, DisableBW bool
	GtodReduce                                      bool
	// Nice is nice= (-20..19) for the job's thread (0: unchanged); Prio
	// and PrioClass are prio= (0..7) and prioclass= (1 realtime, 2 best
	// effort, 3 idle) for its I/O (ioprio_set); -1: not given.
	Nice, Prio, PrioClass int
	// VerifyBacklog verifies the blocks written so far after every this
	// many writes (0: only at the end); VerifyBacklogBatch is how many
	// (0: VerifyBacklog). VerifyFatal stops the job at the first verify
	// error. VerifyOnly reads and checks without writing first.
	VerifyBacklog, VerifyBacklogBatch int64
	VerifyFatal, VerifyOnly           bool
	// IODepthLow is iodepth_low: once the queue is full, wait until it
	// drains to this many before refilling (0: iodepth, fio's default).
	IODepthLow int
	// RateProcess is rate_process: "linear" (fio's default) or "poisson".
	RateProcess string
	// RateMin and RateIOPSMin are ratemin and rate_iops_min per direction:
	// the job fails when it falls below them (0: no floor).
	RateMin, RateIOPSMin [numDirs]int64
	// RandomGenerator is random_generator: tausworthe (fio's default),
	// lfsr or tausworthe64.
	RandomGenerator string
	// CudaIO is the cufile engine's cuda_io: "cufile" (default) or "posix"
	// (libcufile's engine options); GPUDevIDs is gpu_dev_ids, the GPUs
	// the job's clones use in turn.
	CudaIO    string
	GPUDevIDs []int

	// EngineOptions are options declared by the engine (fio's
	// engine-specific options, e.g. fixedbufs for io_uring), by name.
	EngineOptions map[string]string

	// Options are the job's own options as given, for "job options" in
	// JSON output; GlobalOptions are those it took from the command line
	// beneath job files and from [global] sections, in that order (fio's
	// "global options", where an option set twice is listed twice and
	// kb_base, parsed first, comes first of its part).
	Options       [][2]string
	GlobalOptions [][2]string

	// VerifyInterval is verify_interval: bytes per verify header (0: the
	// smallest write block size, fio's default); it must divide it.
	VerifyInterval int
	// RandomPct is percentage_random per direction: the share of a random
	// job's I/Os at a random offset, the others following on from the
	// last (0: not given, fio's 100).
	RandomPct [numDirs]int
	// WaitFor is wait_for: the name of a job of the same group this one
	// starts after (all its clones done), as fio's.
	WaitFor string
	// ExitAllOnError is exitall_on_error: a failing job ends the others;
	// ExitWhat is exit_what (with exitall): "group" (fio's default), the
	// jobs of this group; "stonewall", those up to the next stonewall
	// (the same here: a group ends at one); "all", every job, later
	// groups too.
	ExitAllOnError bool
	ExitWhat       string

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
		RW:              RW{Read: true},
		BS:              [numDirs]int{4096, 4096, 4096},
		IODepth:         1,
		NrFiles:         1,
		FileServiceN:    1,
		BatchSubmit:     1,
		CompleteMin:     1,
		ThinkBlocks:     1,
		Invalidate:      true,
		Loops:           1,
		ClatPct:         true,
		NumJobs:         1,
		RWMixRead:       50,
		IOEngine:        "psync",
		RandRepeat:      true,
		DoVerify:        true,
		KBBase:          1024,
		AllowFileCreate: true,
		Prio:            -1,
		PrioClass:       -1,
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

func (j *Job) issues(d Direction) bool {
	switch d {
	case DirRead:
		return j.RW.Read || (j.Verify != "" && j.DoVerify)
	case DirTrim:
		return j.RW.Trim
	}
	return j.RW.Write
}

// noBWSamples: the job keeps no bandwidth samples. fio takes them from
// its per-I/O bandwidth log when write_bw_log has log_avg_msec=0, and
// disable_bw leaves that log empty; otherwise from its 500 ms windows,
// which disable_bw leaves alone.
func (j *Job) noBWSamples() bool { return j.DisableBW && j.Logs.BW && j.Logs.AvgMsec == 0 }

// noIOPSSamples is the same for IOPS, which fio's per-I/O log leaves out
// under its gtod_reduce(): gtod_reduce, or disable_clat, disable_slat
// and disable_bw together.
func (j *Job) noIOPSSamples() bool {
	return (j.GtodReduce || j.DisableClat && j.DisableSlat && j.DisableBW) && j.Logs.IOPS && j.Logs.AvgMsec == 0
}
