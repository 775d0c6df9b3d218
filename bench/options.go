package bench

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Option is one name=value pair as written in a job file or on the
// command line (value "" for a bare boolean like time_based).
type Option struct {
	Name, Value string
}

// optionSpec describes one job option: how it is set, and its row of the
// option table (optiontable.go).
type optionSpec struct {
	name    string
	aliases []string
	help    string  // flashpath's note: what it does here, or why ignored or refused
	support Support // Refused: every value with set nil, else the values other than fio's default
	bool_   bool    // may be given without a value
	sweep   bool    // accepts a comma-separated list: one job per value
	set     func(j *Job, v string) error
	// typ, def and fio describe options fio does not have (fio's own come
	// from fio_options.tsv).
	typ, def, fio string
}

var optionSpecs = []optionSpec{
	{name: "name", help: "job name", set: func(j *Job, v string) error { j.Name = v; return nil }},
	{name: "description", help: "free text, carried into the reports", set: func(j *Job, v string) error { j.Description = v; return nil }},
	{name: "rw", aliases: []string{"readwrite"}, help: "read, write, trim, randread, randwrite, randtrim, rw, randrw, trimwrite; the :<nr> offset modifier (rw=read:8k skips 8k after each I/O; rw=randread:8 a new random offset every 8 I/Os, see rw_sequencer); a negative one goes backwards, as fio: rw=read:-8k at bs=4k reads block 0, then from the region's second last block down (one from 0 on, whole blocks, no bssplit)", set: setRW},
	{name: "rw_sequencer", help: "sequential (fio's default): rw=randread:N takes a new random offset every N I/Os and goes on sequentially between; identical: repeats the offset N times", set: enumSetter(func(j *Job) *bool { return &j.RWSequencerIdentical },
		"sequential or identical", map[string]bool{"sequential": false, "identical": true})},
	{name: "bs", aliases: []string{"blocksize"}, help: "block size, or read,write block sizes (4k, 128k)", set: setBS},
	{name: "bsrange", aliases: []string{"blocksize_range"}, help: "block sizes drawn uniformly from the multiples of MIN up to MAX (fio's rule), or read,write ranges; MAX must be a multiple of MIN", set: setBSRange},
	{name: "ba", aliases: []string{"blockalign"}, help: "random I/Os start on multiples of this (default the block size), or read,write alignments; with one file, one block size and no verify, a multiple or divisor of the block size; sequential jobs keep the block size's grid, as fio's", set: setBlockAlign},
	{name: "bssplit", help: "block size mix, e.g. 4k/60:64k/30:1m/10, or read,write mixes (sizes multiples of the smallest)", set: setBSSplit},
	{name: "iodepth", help: "I/Os in flight per job; a list sweeps", sweep: true, set: intSetter(func(j *Job) *int { return &j.IODepth }, 1, 65536)},
	{name: "numjobs", help: "clones of the job; a list sweeps", sweep: true, set: intSetter(func(j *Job) *int { return &j.NumJobs }, 1, 4096)},
	{name: "size", help: "bytes of the file to use (1g), or N% of the file or block device's size", set: pctSizeSetter(func(j *Job) (*int64, *float64) { return &j.Size, &j.SizePct })},
	{name: "io_size", aliases: []string{"io_limit"}, help: "bytes to transfer (default size)", set: sizeSetter(func(j *Job) *int64 { return &j.IOSize })},
	{name: "offset", aliases: []string{"fileoffset"}, help: "start offset in the file, or N% of its size", set: pctSizeSetter(func(j *Job) (*int64, *float64) { return &j.Offset, &j.OffsetPct })},
	{name: "nrfiles", aliases: []string{"nr_files"}, help: "files per clone, named JOB.CLONE.N in directory= (default 1)", set: intSetter(func(j *Job) *int { return &j.NrFiles }, 1, 1<<20)},
	{name: "filesize", help: "bytes per file (default size/nrfiles)", set: sizeSetter(func(j *Job) *int64 { return &j.FileSize })},
	{name: "file_service_type", help: "roundrobin[:N] (default), sequential or random: which file each I/O goes to", set: setFileService},
	{name: "openfiles", support: Ignored, help: "every file of the job stays open here; it changes no statistic", set: func(j *Job, v string) error { _, err := j.parseInt(v, 1, 1<<20); return err }},
	{name: "offset_increment", help: "clone i starts at offset + i*offset_increment (numjobs over parts of one device); N% of the file or device", set: pctSizeSetter(func(j *Job) (*int64, *float64) { return &j.OffsetIncrement, &j.OffsetIncrementPct })},
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
	{name: "exitall_on_error", bool_: true, help: "a job that fails ends the other jobs of its group", set: boolSetter(func(j *Job) *bool { return &j.ExitAllOnError })},
	{name: "exit_what", help: "what exitall and exitall_on_error end: group (fio's default), stonewall (the same here: groups end at one) or all (later groups too)", set: enumSetter(func(j *Job) *string { return &j.ExitWhat },
		"group, stonewall or all", map[string]string{"group": "", "stonewall": "stonewall", "all": "all"})},
	{name: "wait_for", help: "start once every clone of the named job (defined earlier, in the same group) is done", set: func(j *Job, v string) error { j.WaitFor = v; return nil }},
	{name: "verify_interval", help: "a verify header every this many bytes of each block (must divide the write block size; default the block size)", set: func(j *Job, v string) error {
		n, err := j.parseInt(v, 0, 1<<30)
		j.VerifyInterval = n
		return err
	}},
	{name: "percentage_random", help: "per direction: the share of a random job's I/Os at a random offset, the others going on from the last (fio's default 100)", set: func(j *Job, v string) error {
		out, err := perDir(v, "want a percent or read,write[,trim] percents, got %q", func(p string) (int, error) {
			n, err := j.parseInt(p, 0, 100)
			if err == nil && n == 0 {
				err = errors.New("0 (every I/O sequential) is not supported here; use a sequential rw pattern")
			}
			return n, err
		})
		j.RandomPct = out
		return err
	}},
	{name: "exitall", help: "when this job finishes, end the other jobs of its group", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.ExitAll })},
	{name: "runtime", aliases: []string{"timeout"}, help: "time limit (10, 10s, 2m)", set: timeSetter(func(j *Job) *time.Duration { return &j.Runtime })},
	{name: "ramp_time", help: "run this long before recording", set: timeSetter(func(j *Job) *time.Duration { return &j.RampTime })},
	{name: "startdelay", help: "wait this long before the job starts (fio's random range A-B is refused)", set: func(j *Job, v string) error {
		if strings.Contains(v, "-") {
			return fmt.Errorf("%w: %q: a random delay between two times is not implemented; give one", ErrRefusedOption, v)
		}
		return timeSetter(func(j *Job) *time.Duration { return &j.StartDelay })(j, v)
	}},
	{name: "thinktime", help: "stall this long (bare number: microseconds) after every thinktime_blocks I/Os, the queue drained first; slept as fio: nanosleep less its measured overshoot, the rest spun", set: func(j *Job, v string) error {
		d, err := parseTimeUnit(v, time.Microsecond)
		j.ThinkTime = d
		return err
	}},
	{name: "thinktime_blocks", help: "I/Os between stalls (default 1): completed ones, or issued ones with thinktime_blocks_type=issue (which caps the queue depth)", set: func(j *Job, v string) error {
		j.ThinkBlocksSet = true
		return intSetter(func(j *Job) *int { return &j.ThinkBlocks }, 1, 1<<30)(j, v)
	}},
	{name: "thinktime_iotime", help: "stall also after this long of I/O (bare number: seconds): as fio 3.33, once it plus thinktime has passed since the last stall was decided; thinktime_blocks then counts only if given, whichever comes first", set: func(j *Job, v string) error {
		d, err := parseTimeUnit(v, time.Second)
		j.ThinkIOTime = d
		return err
	}},
	{name: "thinktime_blocks_type", help: "complete (fio's default: count completed I/Os, the queue filling to iodepth between stalls) or issue (count issued I/Os: bursts of thinktime_blocks at depths 1 to thinktime_blocks, then the stall)", set: enumSetter(func(j *Job) *bool { return &j.ThinkIssue },
		"complete or issue", map[string]bool{"complete": false, "issue": true})},
	{name: "thinktime_spin", help: "the part of each stall spent spinning rather than sleeping (bare number: microseconds)", set: func(j *Job, v string) error {
		d, err := parseTimeUnit(v, time.Microsecond)
		j.ThinkSpin = d
		return err
	}},
	{name: "rate_ignore_thinktime", bool_: true, help: "the rate's schedule moves on during a stall instead of catching up after it", set: boolSetter(func(j *Job) *bool { return &j.RateIgnoreThink })},
	{name: "time_based", help: "run for runtime even when size is done", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.TimeBased })},
	{name: "rwmixread", help: "percent reads in rw/randrw", set: func(j *Job, v string) error {
		return intSetter(func(j *Job) *int { return &j.RWMixRead }, 0, 100)(j, v)
	}},
	{name: "rwmixwrite", help: "percent writes in rw/randrw", set: func(j *Job, v string) error {
		n, err := j.parseInt(v, 0, 100)
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
	{name: "filename", help: "file, block device or tcp://HOST:PORT/NQN/NSID; several files a:b (fio's ':' separator, \\: an escaped colon)", set: setFilename},
	{name: "directory", help: "directory for generated file names (one; fio's a:b list of directories is refused)", set: setDirectory},
	{name: "ioengine", help: "engine: see --enghelp (libaio is its own engine; fio's posixaio runs on io_uring, sync and pvsync on psync, libcufile on cufile or gpu by cuda_io)", set: func(j *Job, v string) error {
		j.IOEngine, j.EngineAlias = v, ""
		if to, ok := engineAliases[v]; ok {
			j.IOEngine, j.EngineAlias = to, v
		}
		return nil
	}},
	{name: "cuda_io", help: "ioengine=libcufile: cufile (GPUDirect Storage, the cufile engine) or posix (a host buffer and cudaMemcpy, the gpu engine's bounce path)", typ: "string", def: "cufile",
		fio: "Type of I/O to use with CUDA [libcufile]", set: enumSetter(func(j *Job) *string { return &j.CudaIO }, "cufile or posix", map[string]string{"cufile": "cufile", "posix": "posix"})},
	{name: "gpu_dev_ids", help: "ioengine=libcufile: GPU IDs a:b:..., taken by the job's clones in turn (clone i on the (i mod n)th, as fio); the buffers of each clone live on its GPU; an ID the machine lacks fails the job", typ: "string", def: "0",
		fio: "GPU IDs to use with CUDA, a colon-separated list [libcufile]", set: setGPUDevIDs},
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
	{name: "verify", help: "checksum written into every block and checked when read back, as fio lays it out: " +
		"crc32c (crc32c-intel), crc32, crc64, crc16, crc7, md5, sha1, sha256, sha512, sha3-224, sha3-256, sha3-384, sha3-512, xxhash, meta (header only), pattern (verify_pattern, no header), null; 0 or none: off", set: setVerify},
	{name: "verify_fatal", bool_: true, help: "stop the job at the first verify failure (fio's default 0 checks every block first)", set: boolSetter(func(j *Job) *bool { return &j.VerifyFatal })},
	{name: "verify_backlog", help: "verify the blocks written so far after every N writes (0: once the writes are done)", set: sizeSetter(func(j *Job) *int64 { return &j.VerifyBacklog })},
	{name: "verify_backlog_batch", help: "blocks verified per backlog pass (default verify_backlog)", set: sizeSetter(func(j *Job) *int64 { return &j.VerifyBacklogBatch })},
	{name: "verify_only", bool_: true, help: "check the blocks an earlier run of the job wrote, without writing", set: boolSetter(func(j *Job) *bool { return &j.VerifyOnly })},
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
	{name: "iodepth_batch", aliases: []string{"iodepth_batch_submit"}, help: "I/Os per submission (default 1; 0: iodepth)", set: intSetter(func(j *Job) *int { return &j.BatchSubmit }, 0, 65536)},
	{name: "iodepth_batch_complete_min", aliases: []string{"iodepth_batch_complete"}, help: "completions to wait for per reap (default 1; 0, fio's busy poll, waits for 1)", set: intSetter(func(j *Job) *int { return &j.CompleteMin }, 0, 65536)},
	{name: "iodepth_batch_complete_max", help: "completions taken at most per reap (default iodepth_batch_complete_min, as fio)", set: intSetter(func(j *Job) *int { return &j.CompleteMax }, 0, 65536)},
	{name: "iodepth_low", help: "once the queue is full, refill it only when it has drained to this many (default iodepth, fio's)", set: intSetter(func(j *Job) *int { return &j.IODepthLow }, 0, 65536)},
	{name: "io_submit_mode", help: "inline (fio's default: the job's thread submits, as here); offload is refused", set: func(j *Job, v string) error {
		if v == "inline" {
			return nil
		}
		if v == "offload" {
			return fmt.Errorf("%w: offload (a submission thread pool) is not implemented; jobs submit inline", ErrRefusedOption)
		}
		return fmt.Errorf("%q: want inline or offload", v)
	}},
	{name: "fsync", help: "fsync after every N writes (0: never)", set: intSetter(func(j *Job) *int { return &j.Fsync }, 0, 1<<30)},
	{name: "fdatasync", help: "fdatasync after every N writes (0: never)", set: intSetter(func(j *Job) *int { return &j.Fdatasync }, 0, 1<<30)},
	{name: "end_fsync", help: "fsync when the job's writes are done, inside its runtime", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.EndFsync })},
	{name: "fsync_on_close", help: "fsync when the file is closed (as end_fsync here)", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.EndFsync })},
	{name: "allow_file_create", bool_: true, help: "create files that do not exist (default 1); 0 fails a job whose file is missing", set: boolSetter(func(j *Job) *bool { return &j.AllowFileCreate })},
	{name: "unlink", bool_: true, help: "remove the clone's regular files when it is done (never a device)", set: boolSetter(func(j *Job) *bool { return &j.Unlink })},
	{name: "overwrite", bool_: true, help: "files are always written out before the job here, as fio's overwrite=1 does; with 0 (fio's default) a write job on a new file still writes into written blocks, not fio's preallocated ones", set: boolSetter(func(j *Job) *bool { return &j.Overwrite })},
	{name: "fallocate", support: Ignored, help: "files are written out before the job here (fio's overwrite=1), so preallocation has nothing to do", set: enumSetter(func(j *Job) *string { return &j.Fallocate },
		"none, native, posix, keep, truncate, 0 or 1", map[string]string{"none": "none", "0": "none", "native": "native", "posix": "posix", "1": "posix", "keep": "keep", "truncate": "truncate"})},
	{name: "invalidate", help: "drop the file's page cache before the job (default 1)", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.Invalidate })},
	{name: "loops", help: "run the job's I/O this many times (default 1; 0 runs it once, as in fio)", set: func(j *Job, v string) error {
		n, err := j.parseInt(v, 0, 1<<30)
		j.Loops = max(n, 1)
		return err
	}},
	{name: "zero_buffers", help: "write zeros (default: random data filled once, scrambled per write)", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.ZeroBuffers })},
	{name: "refill_buffers", help: "new random data for every write", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.RefillBuffers })},
	{name: "buffer_compress_percentage", help: "in every buffer_compress_chunk of write data, this percent is zeros (or buffer_pattern), the rest random, as fio fills it", set: intSetter(func(j *Job) *int { return &j.CompressPct }, 0, 100)},
	{name: "buffer_compress_chunk", help: "bytes per compressible chunk (fio's 512)", set: intSetter(func(j *Job) *int { return &j.CompressChunk }, 0, 1<<30)},
	{name: "pre_read", bool_: true, help: "read the job's region once through the engine before it starts, untimed (invalidate is then off), as fio's pre_read", set: boolSetter(func(j *Job) *bool { return &j.PreRead })},
	{name: "scramble_buffers", bool_: true, help: "each write stamps its offset and time into every 512-byte block of the data filled once (fio's default 1), so no two writes carry the same bytes", set: func(j *Job, v string) error {
		var b bool
		err := boolSetter(func(*Job) *bool { return &b })(j, v)
		j.NoScramble = !b
		return err
	}},
	{name: "percentile_list", help: "latency percentiles to report, e.g. 50:99:99.9 (at most 20); the normal report's labels take as many decimals as the list's longest (fio's percentile_precision: 50:99 prints 50th, 99.999 three decimals)", set: setPercentiles},
	{name: "clat_percentiles", help: "report completion latency percentiles (default 1)", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.ClatPct })},
	{name: "lat_percentiles", help: "report total latency percentiles (default 0, as fio)", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.LatPct })},
	{name: "slat_percentiles", help: "report submission latency percentiles (default 0: json slat_ns.percentile, the normal report's slat block before clat's); psync, synchronous as in fio, has no submission latency", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.SlatPct })},
	{name: "significant_figures", help: "digits of the normal report's IOPS, bandwidths and sizes, in the job lines, the job's and the group's (default 4; 1 to 10)", set: intSetter(func(j *Job) *int { return &j.SigFigs }, 1, 10)},
	{name: "disk_util", help: "sample the disks under the job's files for the reports' disk statistics (default 1; 0 leaves them out of json, normal and terse unless another job has them, as fio)", bool_: true, set: func(j *Job, v string) error {
		var b bool
		err := boolSetter(func(*Job) *bool { return &b })(j, v)
		j.NoDiskUtil = !b
		return err
	}},
	{name: "rate", help: "bandwidth cap per clone, or read,write[,trim] caps (500m, 1g); an early I/O waits as fio's: the queue drains, then the job sleeps for how early it was, and catches up on what the drain cost with I/Os back to back", set: rateSetter(func(j *Job) *[numDirs]int64 { return &j.Rate })},
	{name: "rate_iops", help: "IOPS cap per clone, or read,write[,trim] caps; waits as rate does", set: rateSetter(func(j *Job) *[numDirs]int64 { return &j.RateIOPS })},
	{name: "rate_process", help: "linear (fio's default: even gaps) or poisson (exponential gaps at the same mean rate)", set: enumSetter(func(j *Job) *string { return &j.RateProcess },
		"linear or poisson", map[string]string{"linear": "", "poisson": "poisson"})},
	{name: "rate_min", aliases: []string{"ratemin"}, help: "fail a clone whose bandwidth falls below this, or read,write[,trim] floors", set: rateSetter(func(j *Job) *[numDirs]int64 { return &j.RateMin })},
	{name: "rate_iops_min", help: "fail a clone whose IOPS fall below this, or read,write[,trim] floors", set: rateSetter(func(j *Job) *[numDirs]int64 { return &j.RateIOPSMin })},
	{name: "random_generator", help: "tausworthe (fio's default) and tausworthe64 run on flashpath's own generator (the same job repeats its offsets, but not fio's); lfsr visits every block once per pass, norandommap or not", set: enumSetter(func(j *Job) *string { return &j.RandomGenerator },
		"tausworthe, lfsr or tausworthe64", map[string]string{"tausworthe": "", "lfsr": "lfsr", "tausworthe64": "tausworthe64"})},
	{name: "nice", help: "the job thread's nice value (setpriority; a negative one needs CAP_SYS_NICE)", set: intSetter(func(j *Job) *int { return &j.Nice }, -20, 19)},
	{name: "prio", help: "the job thread's I/O priority level 0-7 (ioprio_set; best effort unless prioclass)", set: intSetter(func(j *Job) *int { return &j.Prio }, 0, 7)},
	{name: "prioclass", help: "the job thread's I/O priority class: 1 realtime (CAP_SYS_ADMIN), 2 best effort, 3 idle", set: intSetter(func(j *Job) *int { return &j.PrioClass }, 0, 3)},
	{name: "cpus_allowed", help: "CPUs the job's thread may run on, e.g. 0-3,8", set: setCPUs},
	{name: "cpumask", help: "the CPUs the job's thread may run on as a bit mask (0xf: CPUs 0-3), the lower 32 CPUs as in fio; cpus_allowed takes a list", set: func(j *Job, v string) error {
		n, err := strconv.ParseUint(v, 0, 64)
		if err != nil || n == 0 || n>>32 != 0 {
			return fmt.Errorf("%q: want a non-zero mask of CPUs 0-31, e.g. 0xf", v)
		}
		var cpus []int
		for c := range 32 {
			if n&(1<<c) != 0 {
				cpus = append(cpus, c)
			}
		}
		j.CPUs = cpus
		return nil
	}},
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
	{name: "stonewall", aliases: []string{"wait_for_previous"}, help: "wait for previous jobs; start a new group", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.Stonewall })},
	{name: "new_group", help: "start a new reporting group", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.NewGroup })},
	{name: "group_reporting", help: "report groups, not jobs", bool_: true, set: boolSetter(func(j *Job) *bool { return &j.GroupReport })},
	{name: "fadvise_hint", help: "posix_fadvise advice for local files: 1 (default: random or sequential by rw), 0, sequential, random, noreuse", bool_: true, set: enumSetter(func(j *Job) *Fadvise { return &j.Fadvise },
		"0, 1, sequential, random or noreuse", map[string]Fadvise{"0": FadviseNone, "false": FadviseNone, "1": FadviseByPattern, "true": FadviseByPattern, "": FadviseByPattern,
			"sequential": FadviseSequential, "random": FadviseRandom, "noreuse": FadviseNoReuse})},
	{name: "unified_rw_reporting", help: "none/0: directions apart; mixed/1: only their sum (\"mixed\"); both/2: both", bool_: true, set: enumSetter(func(j *Job) *UnifiedMode { return &j.Unified },
		"none, mixed or both", map[string]UnifiedMode{"0": UnifiedNone, "none": UnifiedNone, "false": UnifiedNone,
			"1": UnifiedMixed, "mixed": UnifiedMixed, "true": UnifiedMixed, "": UnifiedMixed, "2": UnifiedBoth, "both": UnifiedBoth})},
	{name: "kb_base", help: "1024 (fio's default: k is 1024, KiB 1000) or 1000 (k is 1000, KiB 1024); applies to every size of the job, wherever it stands", set: func(j *Job, v string) error {
		// Applied before the other options by BuildJobs, as fio does; here
		// only checked.
		if v != "1024" && v != "1000" {
			return fmt.Errorf("%q: want 1024 or 1000", v)
		}
		return nil
	}},
	{name: "unit_base", help: "0 (auto) or 8: bytes; 1: bits, in the normal report as fio prints them", set: func(j *Job, v string) error {
		n, err := j.parseInt(v, 0, 8)
		if err != nil || (n != 0 && n != 1 && n != 8) {
			return fmt.Errorf("%q: want 0, 1 or 8", v)
		}
		j.UnitBase = n
		return nil
	}},
	{name: "disable_lat", bool_: true, help: "total latency is not measured: lat is left out of the reports (zero in JSON and terse), lat_percentiles off, no _lat.N.log from write_lat_log", set: boolSetter(func(j *Job) *bool { return &j.DisableLat })},
	{name: "disable_clat", bool_: true, help: "completion latency is not measured: clat, its percentiles (clat_percentiles off), the latency buckets (fio's lat (nsec/usec/msec), latency_ns/us/ms) and sync latencies are left out (zero in JSON and terse), no _clat.N.log", set: boolSetter(func(j *Job) *bool { return &j.DisableClat })},
	{name: "disable_slat", bool_: true, help: "submission latency is not measured: slat is left out of the reports (zero in JSON and terse), slat_percentiles off, no _slat.N.log", set: boolSetter(func(j *Job) *bool { return &j.DisableSlat })},
	{name: "disable_bw_measurement", aliases: []string{"disable_bw"}, bool_: true, help: "a per-I/O bandwidth log (write_bw_log, log_avg_msec=0) stays empty and the bandwidth statistics are left out, as fio's; otherwise the 500 ms bandwidth windows are kept, as fio keeps them", set: boolSetter(func(j *Job) *bool { return &j.DisableBW })},
	// They describe how fio itself runs; flashpath runs the same way.
	{name: "thread", aliases: []string{"threads"}, help: "jobs are goroutines, threads of one process, always (fio's thread=1); thread=0 (fio's processes) runs them the same way", bool_: true, set: func(j *Job, v string) error {
		var b bool
		return boolSetter(func(*Job) *bool { return &b })(j, v)
	}},
	{name: "clocksource", support: Ignored, help: "latency is always timed with the monotonic clock", set: enumSetter(func(*Job) *string { return new(string) },
		"gettimeofday, clock_gettime or cpu", map[string]string{"gettimeofday": "", "clock_gettime": "", "cpu": ""})},
	{name: "gtod_reduce", help: "sets disable_lat, disable_clat, disable_slat and disable_bw, and clat_percentiles, lat_percentiles and slat_percentiles off, where it stands (later options may set them again), as fio; a per-I/O IOPS log stays empty; with no latency left on, I/Os are not timed: the clock is read once per reap instead of at each I/O's issue, submission and completion", bool_: true, set: func(j *Job, v string) error {
		if err := boolSetter(func(j *Job) *bool { return &j.GtodReduce })(j, v); err != nil || !j.GtodReduce {
			return err
		}
		j.DisableLat, j.DisableClat, j.DisableSlat, j.DisableBW = true, true, true, true
		j.ClatPct, j.LatPct, j.SlatPct = false, false, false
		return nil
	}},
	onlyValue("bwavgtime", "500", "bandwidth windows are fio's default 500 ms here; another width is refused"),
	onlyValue("iopsavgtime", "500", "IOPS windows are fio's default 500 ms here; another width is refused"),
}

// onlyValue is an option implemented for one value, fio's default.
func onlyValue(name, val, why string) optionSpec {
	return optionSpec{name: name, help: why, set: func(j *Job, v string) error {
		if v != val {
			return fmt.Errorf("%q: %s", v, why)
		}
		return nil
	}}
}

// OptionHelp is one option name with its help text, for the CLI.
type OptionHelp struct {
	Name, Help string
	Bool       bool
	Support    Support // Implemented for engine options
}

// Options lists every job option name (aliases included, and fio's
// options that flashpath refuses, so that they fail with the reason),
// then those of every registered engine, in name order.
func Options() []OptionHelp {
	var out []OptionHelp
	seen := map[string]bool{}
	for n, s := range specIndex() {
		help := s.help
		if s.support != Implemented {
			help = s.support.String() + ": " + help
		}
		seen[n] = true
		out = append(out, OptionHelp{Name: n, Help: help, Bool: s.bool_, Support: s.support})
	}
	// An engine option's help names every engine that takes it (hostnqn:
	// gpu, nvme-rdma, nvme-tcp), as --enghelp=ENGINE lists it under each.
	engs := engines()
	for _, e := range engs {
		for _, o := range e.options {
			if !seen[o] {
				seen[o] = true
				bool_ := false
				for _, e := range engs {
					bool_ = bool_ || e.bools[o]
				}
				out = append(out, OptionHelp{Name: o, Help: "engine option (" + strings.Join(enginesTaking(o), ", ") + ")", Bool: bool_})
			}
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out
}

// allSpecs are the core's options and fio's that flashpath ignores or
// refuses, in one list.
func allSpecs() []optionSpec {
	return append(optionSpecs[:len(optionSpecs):len(optionSpecs)], fioOnlySpecs...)
}

// specIndex finds a spec by name or alias.
var specIndex = sync.OnceValue(func() map[string]*optionSpec {
	m := map[string]*optionSpec{}
	add := func(specs []optionSpec) {
		for i := range specs {
			s := &specs[i]
			for _, n := range append([]string{s.name}, s.aliases...) {
				if _, dup := m[n]; dup {
					panic("bench: option " + n + " twice in the option table")
				}
				m[n] = s
			}
		}
	}
	add(optionSpecs)
	add(fioOnlySpecs)
	// fio's aliases of the options above (ss for steadystate).
	for _, f := range fioOptions() {
		if s := m[f.name]; s != nil && f.engine == "" {
			for _, a := range f.aliases {
				if _, dup := m[a]; !dup {
					m[a] = s
				}
			}
		}
	}
	return m
})

func findSpec(name string) *optionSpec { return specIndex()[name] }

// ErrUnknownOption is wrapped by errors for options neither the core nor
// the job's engine knows.
var ErrUnknownOption = errors.New("unknown option")

// ErrRefusedOption is wrapped by errors for fio options flashpath does
// not implement (the option table says why).
var ErrRefusedOption = errors.New("not supported by flashpath")

// apply sets one option on j. Engine options are collected and checked
// against the engine once the engine is known (see checkUnknown).
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
	if s.set == nil {
		return fmt.Errorf("option %s: %w: %s", name, ErrRefusedOption, s.help)
	}
	if s.support == Refused && v == "" && !s.bool_ && fioTypes()[s.name] == "empty or boolean value ([0|1])" {
		v = "1" // a bare fio boolean of a refused option: checked against the default below
	}
	if v == "" && !s.bool_ && name != "description" && s.support != Refused {
		return fmt.Errorf("option %s: needs a value", name)
	}
	if s.bool_ && strSet(s.name) {
		// fio's "empty or boolean" options take any integer: not 0 is set.
		if n, err := strconv.ParseInt(v, 0, 64); err == nil && n != 0 && n != 1 {
			v = "1"
		}
	}
	if err := s.set(j, v); err != nil {
		return fmt.Errorf("option %s: %w", name, err)
	}
	j.Options = append(j.Options, [2]string{name, strings.TrimSpace(o.Value)})
	return nil
}

// strSet reports whether fio's type of the option is "empty or boolean
// value" (FIO_OPT_STR_SET), which takes any integer.
func strSet(name string) bool {
	return fioTypes()[name] == "empty or boolean value ([0|1])"
}

var fioTypes = sync.OnceValue(func() map[string]string {
	m := map[string]string{}
	for _, f := range fioOptions() {
		if f.engine == "" {
			m[f.name] = f.typ
		}
	}
	return m
})

// engineAliases maps fio engines flashpath has no engine of its own for to
// the one that runs their jobs with the same semantics: posixaio keeps
// iodepth requests in flight like io_uring; sync, vsync and the pvsync
// engines do one blocking call at a time like psync. (libaio is an engine
// of its own: engine_libaio_linux.go.)
var engineAliases = map[string]string{
	"posixaio": "io_uring",
	"sync":     "psync",
	"vsync":    "psync",
	"pvsync":   "psync",
	"pvsync2":  "psync",
	// libcufile resolves to cufile or gpu by cuda_io (see validate).
	"libcufile": "cufile",
}
