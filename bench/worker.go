package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"
)

// DirStats are one direction's results.
type DirStats struct {
	Clat, Lat  Histogram // completion latency (after Commit), total latency
	slat       Histogram // Queue to end of Commit (fio's slat; bucketed for slat_percentiles)
	IOs, Bytes uint64
	Short      uint64
	// Runtime is the time this direction ran (fio's runtime per
	// direction): a verify job's writes and its verify reads each have
	// their own.
	Runtime     time.Duration
	BWSamples   []float64 // KiB/s per 500 ms interval, as fio's bw log
	IOPSSamples []float64
}

func (d *DirStats) merge(o *DirStats) {
	d.Clat.Merge(&o.Clat)
	d.Lat.Merge(&o.Lat)
	d.slat.Merge(&o.slat)
	d.IOs += o.IOs
	d.Bytes += o.Bytes
	d.Runtime = max(d.Runtime, o.Runtime)
	d.Short += o.Short
	d.BWSamples = sumSamples(d.BWSamples, o.BWSamples)
	d.IOPSSamples = sumSamples(d.IOPSSamples, o.IOPSSamples)
}

func sumSamples(a, b []float64) []float64 {
	if len(a) < len(b) {
		a, b = b, a
	}
	out := append([]float64(nil), a...)
	for i, v := range b {
		out[i] += v
	}
	return out
}

// depthLevels are fio's iodepth_level buckets: 1, 2, 4, 8, 16, 32, >=64.
const depthLevels = 7

const sampleInterval = 500 * time.Millisecond

// worker runs one job clone: the slots, the engine and the statistics.
type worker struct {
	job    *Job
	index  int // clone number within the job (0-based)
	thread int // fio's thread number: 1-based over every clone of the run
	eng    Engine
	access BufferAccess
	// shared: the engine is Offloaded and the job pins no CPU, so the
	// goroutine runs unlocked and usr/sys are a share of the process's
	// (set by runGroup).
	shared bool

	slots   []IO
	free    []*IO
	staged  []*IO
	events  []*IO
	scratch [][]byte  // verify staging for engines without host buffers
	ver     *verifier // verify=: writes and checks the blocks
	dry     bool      // verify_only: next works out writes, none is issued
	// numberio is each write-grid block's last write's numberio, which
	// its verify header must carry (nil: not checked).
	numberio []uint16
	// verify_backlog: the write-grid blocks written (completed) and not
	// yet read back, oldest first from backHead; the writes issued since
	// the last batch of backlog reads began; the reads left in it.
	backlog    []uint64
	backHead   int
	sinceBatch int64
	vbatch     int64
	sumBuf     [128]byte // a checksum computed while checking
	// baseUnix is base as Unix nanoseconds, for the verify headers.
	baseUnix int64
	depth    int

	base time.Time
	// clock, where set, is the job's clock instead of the time since
	// base: the tests' simulated one.
	clock               func() int64
	size                int64
	ioSize, issuedBytes int64
	offset              int64           // where this clone's region starts (offset, offset_increment)
	issuedIOs           int64           // for number_ios
	nblocks             [numDirs]uint64 // over every file of the clone
	perFile             [numDirs]uint64 // blocks of one file
	seqNext             [numDirs]uint64
	perm                [numDirs]permutation
	skew                [numDirs]skew
	rnd                 rng
	seed, seq           uint64

	written []uint64 // verify: blocks (of the write bs) written
	inv     Invalidator
	// phaseStart is when the current phase (writes, or a verify pass)
	// began, phaseIOs each direction's IOs when it did.
	phaseStart int64
	phaseIOs   [numDirs]uint64
	verifying  bool
	vnext      uint64
	verr       *VerifyError
	ioErr      error
	totalErr   uint64 // errors counted under continue_on_error
	firstErr   error  // the first of them

	stats     [numDirs]DirStats
	inflight  int
	depthHist [depthLevels]uint64
	// submitHist and completeHist are fio's iodepth_submit and
	// iodepth_complete: I/Os per Commit and per GetEvents, bucketed.
	submitHist, completeHist [depthLevels]uint64

	// syncEng: the engine is Synchronous (no slat; clat from Queue).
	syncEng bool
	// noLat, noClat and noSlat: total, completion and submission latency
	// are not recorded (disable_lat, disable_clat, disable_slat or
	// gtod_reduce; no slat on a synchronous engine).
	noLat, noClat, noSlat bool
	// stamp: I/Os carry their issue and submission times, which only
	// the latencies use; without any (gtod_reduce), the clock is read
	// once per reap instead of up to three times per I/O.
	stamp bool
	// batch is iodepth_batch_submit (I/Os per Commit); low is iodepth_low
	// (a full queue is reaped down to it); minEv and maxEv are
	// iodepth_batch_complete_min and _max, as fio resolves them.
	batch, low, minEv, maxEv int

	rampEnd, end     int64 // ns since base; end 0: no time limit
	timeUp           bool
	recording        bool
	recStart, recEnd int64

	lastSample int64
	lastIOs    [numDirs]uint64
	lastBytes  [numDirs]uint64

	live [numDirs]struct{ ios, bytes atomic.Uint64 }
	// fio's fsync=N / fdatasync=N / end_fsync: writes since the last sync,
	// a sync waiting for the queue to drain, the end sync done.
	syncer    Syncer
	sinceSync int
	syncDue   bool
	// qsync: the engine queues syncs (QueuedSyncer); syncNext: the next
	// slot carries one, for syncFile.
	qsync     bool
	syncNext  bool
	syncFile  int
	endSynced bool
	wrote     bool
	syncs     Histogram // sync latency
	syncIOs   uint64    // syncs done (fio's total_io_u[DDIR_SYNC]), with disable_clat too
	loop      int       // loops done
	refill    bool      // refill_buffers: new random data per write
	scramble  bool      // scramble_buffers (fio's default): each write's offset and time in its data
	dirChosen bool      // dir is the next I/O's direction (peekDir)
	dir       Direction
	rated     bool // rate or rate_iops limit a direction
	thinking  bool // thinktime: thinktime_blocks issued (or completed), stall once the queue drains
	// sinceThink counts what thinktime_blocks counts since the last stall:
	// I/Os issued (thinktime_blocks_type=issue) or completed (complete,
	// fio's default); thinkBase is the count when the stall was decided
	// (completions while the queue drains count toward the next, as fio).
	sinceThink, thinkBase int
	// lastThink is when the last thinktime stall was decided (ns since
	// base; 0 before the first), for thinktime_iotime.
	lastThink int64
	rateHeld  bool // issuing waits for the rate
	// rateSleep is how early the held I/O was when the rate held it
	// back: runRateWait sleeps that long after the queue drained, as fio,
	// so the job falls behind its schedule by the drain and catches up
	// with I/Os issued back to back, deeper in the queue.
	rateSleep int64
	// fio's rate schedule: each direction's bytes/s (rate, or rate_iops
	// times the smallest block size), the bytes issued since rateBase
	// (the job's start, or the end of ramp_time), and when the next I/O
	// may go (ns since rateBase): issued bytes over the rate, or with
	// rate_process=poisson the sum of exponential gaps.
	rateBPS   [numDirs]uint64
	rateBytes [numDirs]uint64
	rateNext  [numDirs]int64
	rateBase  int64
	// fio's rate_min/rate_iops_min check: once a second after a 2 s
	// settle, each direction's bytes and I/Os since the last check.
	minCheck  int64
	minBytes  [numDirs]uint64
	minIOs    [numDirs]uint64
	minRated  bool
	poisson   bool
	prnd      rng  // poisson gaps, apart from the offsets' generator
	twPending bool // trimwrite: twBlock was trimmed, its write is next
	// rw's :N modifier: a sequential job's hole after each I/O, in blocks;
	// a random job's I/Os left before the next random offset (fio's
	// ddir_seq_nr), and each direction's last block.
	seqSkip [numDirs]uint64
	// seqBack is a negative rw modifier (rw=read:-8k) in blocks: each
	// I/O starts that many blocks before the end of the last, and one
	// that would start before the region starts instead that many before
	// its end (fio's get_next_seq_offset), so that -2 blocks reads the
	// region backwards, one block at a time.
	seqBack [numDirs]uint64
	// unit is each direction's offset grid: the block size, or blockalign
	// for a random job.
	unit    [numDirs]int64
	seqLeft int64
	lastBlk [numDirs]uint64
	runNext [numDirs]uint64 // the block after the last I/O
	// cover is fio's random map for random jobs with bssplit: the blocks
	// of each direction the pass has done (an I/O covers several).
	cover   [numDirs]coverMap
	twBlock uint64

	stop *atomic.Bool
	log  *jobLog // write_*_log files, or nil
	logs *logFiles

	usr, sys        time.Duration
	minf, majf, ctx uint64 // page faults and context switches of the job's thread
}

func (w *worker) now() int64 {
	if w.clock != nil {
		return w.clock()
	}
	return int64(time.Since(w.base))
}

// setup opens the engine and preallocates everything the loop uses.
func (w *worker) setup(filename string) error {
	j := w.job
	w.depth = j.IODepth
	cfg := &EngineConfig{Job: j, JobIndex: w.index, Filename: filename, Filenames: filenames(j, w.index),
		IODepth: w.depth, Options: j.EngineOptions}
	eng, err := openEngine(cfg)
	if err != nil {
		return err
	}
	w.eng = eng
	_, off := eng.(Offloaded)
	w.shared = off && len(w.job.CPUs) == 0
	if j.NrFiles > 1 {
		if fs, ok := eng.(FileSet); !ok || fs.Files() != j.NrFiles {
			return fmt.Errorf("option nrfiles: engine %s works on one file (psync and io_uring take several)", j.IOEngine)
		}
	}
	if dl, ok := eng.(DepthLimiter); ok && dl.MaxIODepth() < w.depth {
		w.depth = dl.MaxIODepth()
	}
	if j.Logs.any() {
		if w.log, err = newJobLog(j, w.thread, w.logs); err != nil {
			return err
		}
	}
	w.access, _ = eng.(BufferAccess)
	w.syncer, _ = eng.(Syncer)
	if qs, ok := eng.(QueuedSyncer); ok {
		w.qsync = qs.QueuedSync()
	}
	_, w.syncEng = eng.(Synchronous)
	w.noLat, w.noClat, w.noSlat = j.DisableLat, j.DisableClat, j.DisableSlat || w.syncEng
	if w.log != nil {
		w.log.noSlat = w.syncEng // fio logs no slat for a synchronous engine's I/O
	}
	w.stamp = !w.noLat || !w.noClat || !w.noSlat || w.log != nil && w.log.opt.Lat
	w.resolveDepth()
	for d := range numDirs {
		// fio's __setup_rate: rate wins; rate_iops is bytes at the
		// smallest block size.
		bps := uint64(j.Rate[d])
		if bps == 0 {
			bps = uint64(j.RateIOPS[d]) * uint64(j.BS[d])
		}
		w.rateBPS[d] = bps
		w.rated = w.rated || bps > 0
	}
	w.poisson = j.RateProcess == "poisson"
	w.minRated = j.RateMin != [numDirs]int64{} || j.RateIOPSMin != [numDirs]int64{}
	if w.rated || j.ThinkTime > 0 {
		warmSleep() // measure nanosleep's granularity now, not in the first stall
	}
	if (j.Fsync > 0 || j.Fdatasync > 0 || j.EndFsync) && j.RW.Write && w.syncer == nil {
		return fmt.Errorf("option fsync/fdatasync/end_fsync: engine %s cannot sync", j.IOEngine)
	}
	w.inv, _ = eng.(Invalidator)
	if j.PreRead {
		w.inv = nil // fio: pre_read turns invalidate off
	}
	if inv := w.inv; inv != nil && j.Invalidate {
		if err := inv.Invalidate(); err != nil {
			return fmt.Errorf("option invalidate: %w (invalidate=0 skips it)", err)
		}
	}

	w.offset = j.CloneOffset(w.index)
	w.size = j.RegionSize()
	if j.OffsetPct > 0 || j.SizePct > 0 {
		// size=N%, offset=N%: of the file or device, on the grid of the
		// smallest block size (fio's size_percent, start_offset_percent).
		real, grid := eng.Size(), int64(minBS(j))
		if real <= 0 {
			return errors.New("option size: a percent needs the target's size, which the engine cannot tell")
		}
		if j.OffsetPct > 0 {
			w.offset = int64(float64(real)*j.OffsetPct/100)/grid*grid + int64(w.index)*j.OffsetIncrement
		}
		if j.SizePct > 0 {
			w.size = min(int64(float64(real)*j.SizePct/100), real-w.offset) / grid * grid
		}
	}
	if w.size == 0 {
		w.size = eng.Size() - w.offset
		if w.size <= 0 {
			return errors.New("option size: not given, and the engine cannot tell the target's size")
		}
	}
	w.ioSize = j.IOSize
	if w.ioSize == 0 {
		w.ioSize = w.size * int64(j.NrFiles)
	}
	if m := j.RWModifier; m > 0 {
		w.seqLeft = 1 // the first I/O takes a random offset
		for d := range numDirs {
			if j.RW.Random || !j.issues(Direction(d)) {
				continue
			}
			if m%int64(j.BS[d]) != 0 {
				return fmt.Errorf("option rw: the hole of %d bytes after each I/O must be a multiple of the %s block size %d here", m, Direction(d), j.BS[d])
			}
			w.seqSkip[d] = uint64(m / int64(j.BS[d]))
		}
	}
	w.seed = 0x5eed ^ j.RandSeed
	if !j.RandRepeat {
		w.seed = uint64(time.Now().UnixNano())
	}
	w.seed += uint64(w.index) * 0x9e3779b97f4a7c15
	w.rnd = newRNG(w.seed)
	w.prnd = newRNG(w.seed ^ 0x9015)
	for d := range numDirs {
		if !j.issues(Direction(d)) {
			continue
		}
		n := uint64(w.size / int64(j.BS[d]))
		if n == 0 {
			return fmt.Errorf("option size: %d bytes hold no %s block of %d bytes", w.size, Direction(d), j.BS[d])
		}
		w.unit[d] = int64(j.BS[d])
		if a := j.BlockAlign[d]; a > 0 && a != j.BS[d] && j.RW.Random {
			// blockalign: random I/Os start on multiples of ba, any start
			// whose block fits (fio's last_block).
			switch {
			case j.NrFiles > 1 || j.BSSplit[d] != nil || j.Verify != "":
				return fmt.Errorf("option ba: a %s alignment other than the block size goes with one file, one block size and no verify here", Direction(d))
			case a > j.BS[d] && a%j.BS[d] != 0 || a < j.BS[d] && j.BS[d]%a != 0:
				return fmt.Errorf("option ba: %d and the %s block size %d are not multiples of each other", a, Direction(d), j.BS[d])
			}
			n = uint64((w.size-int64(j.BS[d]))/int64(a)) + 1
			w.unit[d] = int64(a)
		}
		w.perFile[d] = n
		n *= uint64(j.NrFiles) // blocks are numbered over every file (see place)
		w.nblocks[d] = n
		w.perm[d] = newPermutation(n, w.seed+uint64(d))
		if j.Dist.Kind != DistRandom {
			w.skew[d] = newSkew(n, j.Dist)
		}
		if j.RW.Random && !j.NoRandomMap && j.Dist.Kind == DistRandom && j.BSSplit[d] != nil {
			w.cover[d] = newCoverMap(n)
		}
	}
	if m := j.RWModifier; m < 0 {
		if err := w.setupBackwards(-m); err != nil {
			return err
		}
	}
	if j.Verify != "" && j.RW.Write {
		w.written = make([]uint64, (w.nblocks[DirWrite]+63)/64)
		// fio checks the header's numberio (which write put the block
		// there: a lost write leaves an older one) for writing jobs of
		// one block size that are not time_based.
		if j.BSSplit[DirWrite] == nil && !j.TimeBased && !j.VerifyOnly && j.Verify != "pattern" && j.Verify != "null" {
			w.numberio = make([]uint16, w.nblocks[DirWrite])
		}
	}

	bufs, err := eng.Buffers(w.depth, j.maxBS())
	if err != nil {
		return fmt.Errorf("allocate %d buffers of %d bytes: %w", w.depth, j.maxBS(), err)
	}
	if len(bufs) < w.depth {
		return fmt.Errorf("engine %s returned %d buffers, want %d", j.IOEngine, len(bufs), w.depth)
	}
	// Engines' host buffers start with random data (fio's default, filled
	// once); zero_buffers writes zeros, refill_buffers new data per write.
	if j.Verify != "" {
		if w.ver, err = newVerifier(j, w.thread); err != nil {
			return err
		}
	}
	if j.RW.Write && j.Verify == "" {
		switch {
		case j.ZeroBuffers:
			for i := range bufs[:w.depth] {
				clear(bufs[i].Bytes)
			}
		case j.CompressPct > 0:
			for i := range bufs[:w.depth] {
				if bufs[i].Bytes == nil {
					return fmt.Errorf("option buffer_compress_percentage: engine %s buffers are not host memory", j.IOEngine)
				}
				w.fillCompressible(bufs[i].Bytes)
			}
		case j.BufferPattern != nil:
			period := make([]byte, len(j.BufferPattern.Bytes))
			for i := range bufs[:w.depth] {
				if bufs[i].Bytes == nil {
					return fmt.Errorf("option buffer_pattern: engine %s buffers are not host memory", j.IOEngine)
				}
				j.BufferPattern.fill(bufs[i].Bytes, 0, period)
			}
		}
		w.refill = j.RefillBuffers && !j.ZeroBuffers && (j.BufferPattern == nil || j.CompressPct > 0)
		w.scramble = !w.refill && !j.NoScramble && !j.ZeroBuffers && j.BufferPattern == nil && j.CompressPct == 0
	}
	w.slots = make([]IO, w.depth)
	w.free = make([]*IO, 0, w.depth)
	w.staged = make([]*IO, 0, w.depth)
	w.events = make([]*IO, 0, w.depth)
	for i := range w.slots {
		w.slots[i] = IO{Index: i, Buf: &bufs[i]}
		w.free = append(w.free, &w.slots[w.depth-1-i])
	}
	if j.Verify != "" {
		for i := range bufs[:w.depth] {
			if bufs[i].Bytes == nil {
				if w.access == nil {
					return fmt.Errorf("option verify: engine %s buffers are not host memory and it cannot copy them", j.IOEngine)
				}
				if w.scratch == nil {
					w.scratch = make([][]byte, w.depth)
				}
				w.scratch[i] = make([]byte, j.maxBS())
			}
		}
	}
	if j.PreRead {
		if err := w.preRead(); err != nil {
			return fmt.Errorf("option pre_read: %w", err)
		}
	}
	return nil
}

// preRead reads the clone's region of each file through the engine, one
// I/O of the largest block size at a time, before the job starts and
// untimed (fio's pre_read_files): a buffered job then finds it cached.
func (w *worker) preRead() error {
	io := w.free[len(w.free)-1]
	step := int64(w.job.maxBS())
	for f := range max(w.job.NrFiles, 1) {
		for off := int64(0); off < w.size; off += step {
			io.Op, io.File, io.Offset, io.Len = OpRead, f, w.offset+off, int(min(step, w.size-off))
			io.Res, io.Err = 0, nil
			if err := w.eng.Queue(io); err != nil {
				return err
			}
			if err := w.eng.Commit(); err != nil {
				return err
			}
			evs, err := w.eng.GetEvents(1, w.events[:0:1])
			if err != nil {
				return err
			}
			if len(evs) != 1 || io.Err != nil {
				return fmt.Errorf("read at %d: %v", io.Offset, io.Err)
			}
		}
	}
	return nil
}

// run runs the clone: it pins the thread, waits out startdelay, then runs
// the I/O loop.
func (w *worker) run() error {
	if !w.shared {
		runtime.LockOSThread() // thread CPU time is then the job's (getrusage RUSAGE_THREAD)
		defer runtime.UnlockOSThread()
	}
	if cpus := w.job.CPUs; len(cpus) > 0 {
		if w.job.SplitCPUs {
			cpus = cpus[w.index%len(cpus) : w.index%len(cpus)+1]
		}
		restore, err := pinThread(cpus)
		if err != nil {
			return fmt.Errorf("option cpus_allowed: %w", err)
		}
		defer restore() // runs before the unlock above
	}
	if j := w.job; j.Nice != 0 || j.Prio >= 0 || j.PrioClass >= 0 {
		// Not unlocked: the thread ends with the goroutine, and its
		// priority with it.
		runtime.LockOSThread()
		if err := setThreadPriority(j); err != nil {
			return err
		}
	}
	if !w.shared {
		u0, s0 := threadCPU()
		mi0, ma0, c0 := threadRusage()
		defer func() {
			u1, s1 := threadCPU()
			w.usr, w.sys = u1-u0, s1-s0
			mi1, ma1, c1 := threadRusage()
			w.minf, w.majf, w.ctx = mi1-mi0, ma1-ma0, c1-c0
		}()
	}

	j := w.job
	for wait := j.StartDelay; wait > 0 && !w.stop.Load(); wait -= 100 * time.Millisecond {
		time.Sleep(min(wait, 100*time.Millisecond)) // startdelay, cut short by a stop
	}
	w.base = time.Now()
	w.baseUnix = w.base.UnixNano()
	w.rampEnd = int64(j.RampTime)
	if j.Runtime > 0 {
		w.end = w.rampEnd + int64(j.Runtime)
	}
	w.recording = j.RampTime == 0
	if w.log != nil {
		w.log.start(0)
		defer func() { w.log.finish(w.now()) }()
	}
	return w.ioLoop()
}

// runState is a state of the I/O loop.
//
// In runIssue the loop fills the free slots and reaps completions, over
// and over, while I/O is in flight. Whenever the queue has drained, idle
// picks the next state: the first of the others that applies, in the
// order they are declared. A stall (thinktime, the rate) and a sync
// (fsync=N) each go back to runIssue; so does runVerify, which turns the
// job into its verify pass. runEndSync goes on to what idle picks next,
// runVerify or runDone; runFailed and runDone end the loop.
//
// Besides the state, the loop keeps whether there is more to issue:
// issuing turns false when next has no more I/O for the pass or an error
// stops the job, and true again for the verify pass. The flags that make
// idle choose a state are raised while issuing (next raises syncDue,
// issue thinking and rateHeld) and lowered by the state that serves them;
// endSynced and verifying record the end sync and the verify pass as done
// or begun.
type runState uint8

const (
	runIssue    runState = iota // fill the queue, reap at least one completion
	runFailed                   // an I/O or verify error the job does not continue after: return it
	runThink                    // thinktime: the blocks issued since the last stall have completed; stall
	runRateWait                 // rate, rate_iops: the next I/O may not go yet; sleep until it may
	runSync                     // fsync=N, fdatasync=N: N writes issued, the queue has drained; sync
	runEndSync                  // end_fsync: the writes are done; sync once, inside the runtime
	runVerify                   // verify: the writes are done; read every written block back
	runNextPass                 // a verify phase is done; loops or time_based ask for another write pass
	runDone                     // nothing more to issue or to wait for
)

// ioLoop is the I/O loop: fill free slots, commit, reap, repeat, with
// the stalls, syncs and passes runState describes.
func (w *worker) ioLoop() error {
	j := w.job
	issuing := true
	st := runIssue
	if w.job.VerifyOnly && w.written != nil {
		w.dryRun()
		st = runVerify
	}
	for {
		switch st {
		case runIssue:
			if issuing {
				var err error
				if issuing, err = w.issue(); err != nil {
					return err
				}
			}
			if w.inflight == 0 {
				st = w.idle(issuing)
				continue
			}
			if err := w.reap(issuing); err != nil {
				return err
			}
			if w.ioErr != nil || w.verr != nil {
				issuing = false
			}
		case runFailed:
			return w.failure()
		case runThink:
			w.think()
			st = runIssue
		case runRateWait:
			w.stall(time.Duration(w.rateSleep))
			w.rateHeld = false
			st = runIssue
		case runSync:
			if err := w.sync(j.Fsync == 0); err != nil {
				return w.drain(err)
			}
			w.syncDue = false
			st = runIssue
		case runEndSync:
			// Inside the runtime, before any verify pass.
			if err := w.sync(false); err != nil {
				return w.drain(err)
			}
			w.endSynced = true
			st = w.idle(issuing) // still nothing in flight
		case runVerify:
			if err := w.startVerify(); err != nil {
				return err
			}
			issuing = true
			st = runIssue
		case runNextPass:
			w.nextPass()
			issuing = true
			st = runIssue
		case runDone:
			w.recEnd = w.now()
			w.endPhase(w.recEnd)
			return nil
		}
	}
}

// resolveDepth sets the queue's batches as fio resolves them
// (fixup_options): iodepth_batch_submit 0 or above iodepth is iodepth;
// iodepth_low 0 or above iodepth is iodepth; iodepth_batch_complete_max
// is at least iodepth_batch_complete_min, so by default one completion
// is reaped at a time and the queue refilled at once: iodepth I/Os stay
// in flight.
func (w *worker) resolveDepth() {
	j := w.job
	w.batch = j.BatchSubmit
	if w.batch <= 0 || w.batch > w.depth {
		w.batch = w.depth
	}
	w.low = j.IODepthLow
	if w.low <= 0 || w.low > w.depth {
		w.low = w.depth
	}
	// fio's iodepth_batch_complete_min=0 polls without waiting; here a
	// reap waits for one (an engine's GetEvents may block).
	w.minEv = min(max(j.CompleteMin, 1), w.depth)
	w.maxEv = min(max(j.CompleteMax, w.minEv), w.depth)
}

// idle picks the loop's next state once nothing is in flight: the first
// that applies, in runState's order. It changes nothing.
func (w *worker) idle(issuing bool) runState {
	j := w.job
	switch {
	case w.ioErr != nil || w.verr != nil:
		return runFailed
	case w.thinking:
		return runThink
	case issuing && w.rateHeld:
		return runRateWait
	case w.syncDue:
		return runSync
	case j.EndFsync && w.wrote && !w.endSynced && !w.verifying:
		return runEndSync
	case w.written != nil && j.DoVerify && !w.verifying && !w.timeUp && !w.stop.Load():
		// fio verifies only a write phase that ended by its size: one
		// cut short by the runtime (or a stop) ends the job.
		return runVerify
	case w.morePasses():
		return runNextPass
	}
	return runDone
}

// issue fills the queue to iodepth one I/O at a time, committing every
// iodepth_batch_submit I/Os and what is left before it returns, until no
// slot is free, a sync or a thinktime stall is due, the rate holds the
// next I/O back (rateHeld), or next has no more I/O (more is false).
func (w *worker) issue() (more bool, err error) {
	j := w.job
	more = true
	for more && !w.syncDue && !w.thinking && !w.rateHeld && len(w.free) > 0 {
		io := w.free[len(w.free)-1]
		switch {
		case w.syncNext:
			// fsync=N on an engine that queues it: not rate-limited,
			// not counted by thinktime, as fio's DDIR_SYNC io_u.
			w.syncNext = false
			io.Op, io.File, io.Offset, io.Len, io.Res, io.Err = OpSync, w.syncFile, 0, 0, 0, nil
			if w.job.Fsync == 0 {
				io.Op = OpDatasync
			}
			w.free = w.free[:len(w.free)-1]
			if w.stamp {
				io.issued = w.now()
			}
			if err := w.eng.Queue(io); err != nil {
				w.stop.Store(true)
				return false, w.drain(fmt.Errorf("queue: %w", err))
			}
			w.staged = append(w.staged, io)
			if len(w.staged) >= w.batch {
				if err := w.commit(); err != nil {
					return false, err
				}
			}
			continue
		}
		if w.rated {
			// As fio's rate_ddir: the wait is how early the next I/O is
			// now, slept in full once the queue has drained (fio's
			// io_u_quiesce), so that the drain adds to it.
			// Not after the last I/O: fio's loop ends before it asks.
			if w.rateSleep = w.rateDelay(w.now()); w.rateSleep > 0 && !w.spent() {
				w.rateHeld = true
				break
			}
		}
		if !w.next(io) {
			more = false
			break
		}
		if w.rated && !w.verifying {
			w.rateIssued(io.Op.dir(), io.Len)
		}
		w.free = w.free[:len(w.free)-1]
		if w.stamp {
			io.issued = w.now()
			if w.syncEng {
				io.submitted = io.issued
			}
		}
		if err := w.eng.Queue(io); err != nil {
			w.stop.Store(true)
			return false, w.drain(fmt.Errorf("queue: %w", err))
		}
		w.staged = append(w.staged, io)
		if j.ThinkTime > 0 && !w.verifying {
			if j.ThinkIssue {
				w.sinceThink++
			}
			w.checkThink()
		}
		if len(w.staged) >= w.batch {
			if err := w.commit(); err != nil {
				return false, err
			}
		}
	}
	if len(w.staged) > 0 {
		if err := w.commit(); err != nil {
			return false, err
		}
	}
	return more, nil
}

// commit submits the staged I/Os. As fio's td_io_commit, each of them
// counts at the queue depth they make (iodepth_level), the call once in
// iodepth_submit; their submission time is after the Commit (fio's
// issue_time), except on a synchronous engine, where Queue did the I/O.
func (w *worker) commit() error {
	n := len(w.staged)
	w.inflight += n
	w.depthHist[depthLevel(w.inflight)] += uint64(n)
	if err := w.eng.Commit(); err != nil {
		return w.drain(fmt.Errorf("commit: %w", err))
	}
	w.submitHist[batchLevel(n)]++
	if !w.syncEng && w.stamp {
		t := w.now()
		for _, io := range w.staged {
			io.submitted = t
		}
	}
	w.staged = w.staged[:0]
	return nil
}

// reap waits for completions and completes them, then ticks. With the
// queue full it reaps as fio's wait_for_completions does: at least
// iodepth_batch_complete_min, at most _max at a time, until no more than
// iodepth_low are in flight. When the job has nothing more to issue it
// reaps everything at once; when issuing is held (rate, thinktime, a
// sync: fio's io_u_quiesce) one or more at a time, and for the rate until
// nothing is in flight.
func (w *worker) reap(issuing bool) error {
	full := issuing && len(w.free) == 0
	minEv, maxEv := w.minEv, w.maxEv
	switch {
	case !issuing:
		minEv, maxEv = w.inflight, w.inflight
	case !full:
		minEv = 1
	}
	for {
		minEv = min(minEv, w.inflight)
		evs, err := w.eng.GetEvents(minEv, w.events[:0:max(maxEv, minEv)])
		if err != nil {
			return w.drain(fmt.Errorf("getevents: %w", err))
		}
		t := w.now()
		done := 0 // reads, writes and trims (thinktime's blocks), not syncs
		for _, io := range evs {
			if io.Op != OpSync && io.Op != OpDatasync {
				done++
			}
			w.complete(io, t)
		}
		w.inflight -= len(evs)
		w.completeHist[batchLevel(len(evs))]++
		if w.job.ThinkTime > 0 && !w.job.ThinkIssue && !w.verifying {
			// Not the drain after the last I/O: fio reaps it after its
			// loop, where no thinktime follows.
			w.sinceThink += done
			if issuing {
				w.checkThink()
			}
		}
		w.tick(t)
		if w.inflight == 0 {
			return nil
		}
		// The rate holds the next I/O back: as fio's rate_ddir, wait for
		// everything in flight (io_u_quiesce) before sleeping, rather than
		// issue again as soon as the next one is due.
		if w.rateHeld && issuing {
			continue
		}
		if !full || w.inflight <= w.low {
			return nil
		}
	}
}

// checkThink decides a thinktime stall once thinktime_blocks I/Os have
// been issued or completed since the last, or with thinktime_iotime once
// that and the thinktime have passed since the last was decided (fio's
// handle_thinktime, after each I/O and each reap; the default
// thinktime_blocks does not count then): issuing stops, the queue
// drains, runThink stalls.
func (w *worker) checkThink() {
	if w.thinking {
		return
	}
	j := w.job
	if j.ThinkIOTime > 0 {
		if now := w.now(); now-w.lastThink >= int64(j.ThinkIOTime+j.ThinkTime) {
			w.thinking, w.thinkBase, w.lastThink = true, w.sinceThink, now
			return
		}
		if !j.ThinkBlocksSet {
			return
		}
	}
	if w.sinceThink >= j.ThinkBlocks {
		w.thinking, w.thinkBase = true, w.sinceThink
		if j.ThinkIOTime > 0 {
			w.lastThink = w.now()
		}
	}
}

// think is the thinktime stall, the queue drained: thinktime_spin of it
// spinning, the rest asleep; with rate_ignore_thinktime the rate's
// schedule moves on by the stall, less one block so that the next I/O
// goes at once (fio's handle_thinktime).
func (w *worker) think() {
	j := w.job
	t0 := w.now()
	if spin := min(j.ThinkSpin, j.ThinkTime); spin > 0 {
		for end := t0 + int64(spin); w.now() < end && !w.stop.Load(); {
		}
	}
	if left := j.ThinkTime - time.Duration(w.now()-t0); left > 0 {
		w.stall(left)
	}
	if total := w.now() - t0; j.RateIgnoreThink && w.rated {
		for d := range numDirs {
			bps := w.rateBPS[d]
			if bps == 0 {
				continue
			}
			if w.poisson {
				w.rateNext[d] += total
				continue
			}
			missed := uint64(float64(bps) * float64(total) / 1e9)
			if bs := uint64(j.BS[d]); missed > bs {
				w.rateIssued(Direction(d), int(missed-bs))
			}
		}
	}
	w.thinking = false
	w.sinceThink -= w.thinkBase
}

// stallSleep is how a stall sleeps: sleepFor, or a test's clock.
var stallSleep = sleepFor

// stall sleeps for d, with nothing in flight, but not past the runtime,
// and marks the time up if the runtime is over.
func (w *worker) stall(d time.Duration) {
	if w.end > 0 {
		d = min(d, time.Duration(max(w.end-w.now(), 0)))
	}
	stallSleep(d, w.stop.Load)
	if w.end > 0 && w.now() >= w.end {
		w.timeUp = true
	}
}

// tick runs once per reap: ramp, deadline, samples, progress counters.
func (w *worker) tick(t int64) {
	if !w.recording && t >= w.rampEnd {
		w.recording = true
		w.recStart = t
		w.lastSample = t
		w.stats = [numDirs]DirStats{}
		w.depthHist = [depthLevels]uint64{}
		w.submitHist, w.completeHist = [depthLevels]uint64{}, [depthLevels]uint64{}
		w.resetRate(t)
		w.phaseStart = t
		w.syncs, w.syncIOs = Histogram{}, 0
		if w.log != nil {
			w.log.start(t)
		}
	}
	if w.recording && w.log != nil {
		w.log.tick(t)
	}
	if w.end > 0 && t >= w.end {
		w.timeUp = true
	}
	if w.minRated && w.recording && !w.verifying {
		w.checkMinRate(t)
	}
	if w.recording && t-w.lastSample >= int64(sampleInterval) {
		secs := float64(t-w.lastSample) / 1e9
		for d := range numDirs {
			st := &w.stats[d]
			if w.nblocks[d] == 0 {
				continue
			}
			if !w.job.noBWSamples() {
				st.BWSamples = append(st.BWSamples, float64(st.Bytes-w.lastBytes[d])/1024/secs)
			}
			if !w.job.noIOPSSamples() {
				st.IOPSSamples = append(st.IOPSSamples, float64(st.IOs-w.lastIOs[d])/secs)
			}
			w.lastBytes[d], w.lastIOs[d] = st.Bytes, st.IOs
		}
		w.lastSample = t
	}
	for d := range numDirs {
		w.live[d].ios.Store(w.stats[d].IOs)
		w.live[d].bytes.Store(w.stats[d].Bytes)
	}
}

// batchLevel is fio's bucket for I/Os per submit or reap call
// (iodepth_submit, iodepth_complete): 0, 1-4, 5-8, 9-16, 17-32, 33-64,
// more.
func batchLevel(n int) int {
	switch {
	case n == 0:
		return 0
	case n <= 4:
		return 1
	case n > 64:
		return depthLevels - 1
	}
	return bits.Len(uint(n-1)) - 1
}

func depthLevel(n int) int {
	if n >= 64 {
		return depthLevels - 1
	}
	return bits.Len(uint(n)) - 1
}

// next prepares io for the next I/O, or reports that there is none.
func (w *worker) next(io *IO) bool {
	j := w.job
	io.Res, io.Err, io.verify = 0, nil, false
	if w.verifying {
		return w.nextVerify(io)
	}
	if w.timeUp || w.stop.Load() {
		return false
	}
	if j.NumberIOs > 0 && w.issuedIOs >= j.NumberIOs {
		return false
	}
	if j.VerifyBacklog > 0 && w.written != nil && !w.dry && w.issuedBytes < w.ioSize && w.backlogNext(io) {
		return true
	}
	if w.issuedBytes >= w.ioSize {
		switch {
		case w.written != nil && j.DoVerify:
			// The write phase ends by its size, time_based or not: the
			// verify phase follows, then the next pass (nextPass).
			return false
		case !j.TimeBased:
			if w.loop+1 >= j.Loops {
				return false
			}
			w.newLoop() // loops=N: the same pass again, from the start
		}
	}
	d := w.peekDir()
	w.dirChosen = false
	trimWrite := j.RW.Trim && j.RW.Write
	var blk uint64
	switch {
	case trimWrite && w.twPending:
		// trimwrite: write the block just trimmed.
		blk, w.twPending = w.twBlock, false
	case j.RW.Random && j.RandomPct[d] > 0 && j.RandomPct[d] < 100 && w.rnd.Uint64N(100) >= uint64(j.RandomPct[d]):
		// percentage_random: this one goes on from the last I/O (fio's
		// should_do_random said no).
		blk = w.runNext[d]
	case j.RW.Random && j.RWModifier > 1 && w.seqRun():
		// rw=randread:N: N-1 I/Os after each random one go on from it
		// (or, rw_sequencer=identical, repeat it).
		blk = w.lastBlk[d]
		if !j.RWSequencerIdentical {
			blk = w.runNext[d]
		}
	case !j.RW.Random:
		// rw=read:N (N bytes): sequential with a hole of N after each I/O.
		blk = w.seqNext[d]
		if back := w.seqBack[d]; back > 0 {
			// rw=read:-8k: back from the end of this one, or from the
			// region's end once that is before its start.
			w.seqNext[d] = blk + 1 - back
			if blk+1 < back {
				w.seqNext[d] = w.nblocks[d] - back
			}
		} else if w.seqNext[d] += 1 + w.seqSkip[d]; w.seqNext[d] >= w.nblocks[d] {
			w.seqNext[d] = 0
			w.wrapped()
		}
	case j.Dist.Kind != DistRandom:
		blk = w.skew[d].next(&w.rnd)
	case j.NoRandomMap && j.RandomGenerator != "lfsr":
		// (fio's lfsr never repeats a block within a pass, map or no map:
		// flashpath's permutation below neither.)
		blk = w.rnd.Uint64N(w.nblocks[d])
	case w.cover[d].words != nil:
		blk = w.nextFree(d)
	default:
		var wrapped bool
		if blk, wrapped = w.perm[d].next(); wrapped {
			w.wrapped()
		}
	}
	if trimWrite && d == DirTrim {
		w.twBlock, w.twPending = blk, true
	}
	w.lastBlk[d], w.runNext[d] = blk, blk+1
	if w.runNext[d] >= w.nblocks[d] {
		w.runNext[d] = 0
	}
	bs := j.BS[d]
	io.File, blk = w.place(d, blk)
	io.Offset = w.offset + int64(blk)*w.unit[d]
	if mix := j.BSSplit[d]; mix != nil {
		// bssplit: a size by weight, on the grid of the smallest, drawn
		// again while it would run past the region's end (fio's
		// get_next_buflen); the smallest if none fits.
		size := bs
		for range 16 {
			if s := w.pickBS(mix); io.Offset+int64(s) <= w.offset+w.size {
				size = s
				break
			}
		}
		switch {
		case w.cover[d].words != nil:
			size = w.claim(d, io.File, blk, size/bs) * bs
		case !j.RW.Random:
			w.seqNext[d] += uint64(size/bs - 1)
			if w.seqNext[d] >= w.nblocks[d] {
				w.seqNext[d] = 0
				w.wrapped()
			}
		}
		bs = size
	}
	io.Len = bs
	w.issuedIOs++
	if d != DirTrim || !trimWrite {
		w.issuedBytes += int64(bs) // trimwrite: the writes count, each after its trim
	}
	if d == DirTrim {
		io.Op = OpTrim
		return true
	}
	if d == DirWrite {
		io.Op = OpWrite
		w.wrote = true
		if w.dry {
			// verify_only: nothing is written
		} else if w.written != nil {
			w.seq++
			w.sinceBatch++
			w.fill(io)
		} else if w.refill && io.Buf.Bytes != nil && j.CompressPct > 0 {
			w.fillCompressible(io.Buf.Bytes[:io.Len])
		} else if w.refill && io.Buf.Bytes != nil {
			w.rnd.fill(io.Buf.Bytes[:io.Len])
		} else if w.scramble && io.Buf.Bytes != nil {
			scramble(io.Buf.Bytes[:io.Len], io.Offset, w.baseUnix+w.now())
		}
		if n := max(j.Fsync, j.Fdatasync); n > 0 {
			if w.sinceSync++; w.sinceSync >= n {
				// fio issues the sync right after the Nth write: in the
				// queue where the engine takes it, else once it drains;
				// not after the pass's last write (fio's loop ends first;
				// end_fsync is the final one).
				w.sinceSync = 0
				if !j.TimeBased && w.issuedBytes >= w.ioSize {
					// no sync
				} else if w.qsync {
					w.syncNext, w.syncFile = true, io.File
				} else {
					w.syncDue = true
				}
			}
		}
	} else {
		io.Op = OpRead
	}
	return true
}

// setupBackwards takes a negative rw modifier of back bytes: a
// sequential job's next I/O starts back bytes before the end of the
// last, as fio's get_next_seq_offset; one that would start before the
// region instead starts back bytes before its end. rw=read:-8k at bs=4k
// reads block 0, then the region's blocks from the second last down to
// block 1, then 0 again: its last block is never read, as in fio.
func (w *worker) setupBackwards(back int64) error {
	j := w.job
	switch {
	case j.RW.Random:
		return fmt.Errorf("option rw: a random pattern's modifier is a count of I/Os, not negative")
	case w.offset != 0:
		// fio rewinds to the file's I/O size there, not the region's end.
		return fmt.Errorf("option rw: the backwards modifier %d from a start offset of %d (offset, offset_increment) is not run here: from 0 only", -back, w.offset)
	case j.NrFiles > 1:
		return fmt.Errorf("option rw: the backwards modifier %d goes with one file here", -back)
	}
	for d := range numDirs {
		if !j.issues(Direction(d)) {
			continue
		}
		bs := int64(j.BS[d])
		switch {
		case j.BSSplit[d] != nil:
			return fmt.Errorf("option rw: the backwards modifier %d goes with one %s block size here, not bssplit", -back, Direction(d))
		case back%bs != 0 || w.size%bs != 0:
			return fmt.Errorf("option rw: the backwards modifier %d and the region's size %d must be multiples of the %s block size %d here", -back, w.size, Direction(d), bs)
		case uint64(back/bs) > w.nblocks[d]:
			return fmt.Errorf("option rw: the backwards modifier %d is more than the region's %d bytes", -back, w.size)
		}
		w.seqBack[d] = uint64(back / bs)
	}
	return nil
}

// spent reports that next has no more I/O to give (as its first
// checks), so that the rate does not hold back an I/O that will not
// come: fio's loop ends by its bytes before it asks the rate.
func (w *worker) spent() bool {
	j := w.job
	switch {
	case w.verifying:
		return false // the rate does not hold verify reads
	case w.timeUp || w.stop.Load() || j.NumberIOs > 0 && w.issuedIOs >= j.NumberIOs:
		return true
	case w.issuedBytes >= w.ioSize:
		return w.written != nil && j.DoVerify || !j.TimeBased && w.loop+1 >= j.Loops
	}
	return false
}

// newLoop starts the job's I/O over for the next of loops=N (or the
// next write pass of a time_based verify job): offsets from the start,
// and, as fio reopens the files for each loop, the page cache dropped.
func (w *worker) newLoop() {
	w.loop++
	w.issuedBytes = 0
	for d := range numDirs {
		w.seqNext[d] = 0
		if w.nblocks[d] > 0 {
			w.perm[d] = newPermutation(w.nblocks[d], w.seed+uint64(d)+uint64(w.loop)<<32)
		}
		w.cover[d].reset()
	}
	w.invalidate()
}

// wrapped is called when a time_based job has visited every block of a
// direction (sequential: reached the end; random: the random map is
// exhausted): as fio's loop_cache_invalidate, a buffered job drops the
// file's pages, so that it goes on reading from the device, not memory.
func (w *worker) wrapped() {
	if w.job.TimeBased {
		w.invalidate()
	}
}

// invalidate drops the files' page cache for invalidate=1 on a buffered
// job. An error is the job's (fio ignores it here; the same call failed
// at setup would have stopped the job).
func (w *worker) invalidate() {
	if w.inv == nil || !w.job.Invalidate || w.job.Direct {
		return
	}
	if err := w.inv.Invalidate(); err != nil && w.ioErr == nil {
		w.ioErr = fmt.Errorf("option invalidate: %w", err)
	}
}

// startVerify ends the write phase and begins the verify phase, as fio's
// do_verify: each phase is timed on its own (the writes' runtime ends
// here, the verify reads' starts), and the files are synced and their
// page cache dropped so that the reads come from the device.
func (w *worker) startVerify() error {
	w.endPhase(w.now())
	w.verifying = true
	w.vnext = 0
	if w.syncer != nil && !w.job.Direct {
		if err := w.syncer.Sync(false); err != nil {
			return w.drain(fmt.Errorf("sync before verify: %w", err))
		}
	}
	if w.inv != nil && w.job.Invalidate {
		if err := w.inv.Invalidate(); err != nil {
			return w.drain(fmt.Errorf("option invalidate: before verify: %w", err))
		}
	}
	return nil
}

// nextPass ends a verify phase and starts the next write pass: of
// loops=N, or of a time_based job until its runtime is up.
func (w *worker) nextPass() {
	w.endPhase(w.now())
	w.verifying = false
	clear(w.written)
	w.backlog, w.backHead, w.sinceBatch, w.vbatch = w.backlog[:0], 0, 0, 0
	w.newLoop()
}

// morePasses reports whether a verify job goes on after its verify
// phase.
func (w *worker) morePasses() bool {
	j := w.job
	return w.verifying && !w.timeUp && !w.stop.Load() && w.ioErr == nil && w.verr == nil &&
		(j.TimeBased || w.loop+1 < j.Loops)
}

// endPhase charges the time since the phase began to the directions the
// phase moved data in (fio's update_runtime per direction): a write
// phase to each direction it issued, a verify phase to reads.
func (w *worker) endPhase(t int64) {
	if !w.recording {
		return
	}
	el := time.Duration(t - w.phaseStart)
	w.phaseStart = t
	// fio charges a write phase to the directions rw names (a write job's
	// verify_backlog reads count, but not their time).
	rw := [numDirs]bool{w.job.RW.Read, w.job.RW.Write, w.job.RW.Trim}
	for d := range numDirs {
		if w.verifying && Direction(d) != DirRead {
			continue
		}
		if w.verifying || (rw[d] && w.stats[d].IOs > w.phaseIOs[d]) {
			w.stats[d].Runtime += el
		}
		w.phaseIOs[d] = w.stats[d].IOs
	}
}

// fillCompressible fills b as fio's fill_random_buf_percentage: every
// buffer_compress_chunk bytes (fio's 512 by default), random data for
// 100-N percent of them, then zeros or buffer_pattern for the rest.
func (w *worker) fillCompressible(b []byte) {
	j := w.job
	chunk := j.CompressChunk
	if chunk <= 0 {
		chunk = 512
	}
	chunk = min(chunk, len(b))
	random := chunk * (100 - min(j.CompressPct, 100)) / 100
	for len(b) > 0 {
		n := min(random, len(b))
		w.rnd.fill(b[:n])
		b = b[n:]
		n = min(chunk-random, len(b))
		if p := j.BufferPattern; p != nil {
			for i := range n {
				b[i] = p.Bytes[i%len(p.Bytes)]
			}
		} else {
			clear(b[:n])
		}
		b = b[n:]
	}
}

// scramble is fio's small_content_scramble: in every 512-byte block of
// b, the block's offset at the start of one of its eight 64-byte lines
// (chosen by the write's time and offset) and the write's time at the
// end of the first, so that a buffer filled once is not written twice
// with the same bytes.
func scramble(b []byte, off int64, unixNano int64) {
	sec, nsec := uint64(unixNano/1e9), uint64(unixNano%1e9)
	line := int((nsec^uint64(off))&7) * 64
	le := binary.LittleEndian
	for i := 0; i+512 <= len(b); i, off = i+512, off+512 {
		le.PutUint64(b[i+line:], uint64(off))
		le.PutUint64(b[i+48:], sec)
		le.PutUint64(b[i+56:], nsec)
	}
}

// place maps block g of the clone's numbering (over every file) to a
// file and a block in it, by file_service_type: sequential lays the files
// end to end; roundrobin:N deals N blocks to each file in turn, so that a
// sequential pattern visits the files in turn (and a random one spreads
// evenly); random also lays them end to end, a random pattern picking
// the file.
func (w *worker) place(d Direction, g uint64) (file int, blk uint64) {
	j := w.job
	nf := uint64(j.NrFiles)
	if nf <= 1 {
		return 0, g
	}
	if j.FileService != ServiceRoundRobin {
		return int(g / w.perFile[d]), g % w.perFile[d]
	}
	n := uint64(j.FileServiceN)
	return int(g / n % nf), g/(n*nf)*n + g%n
}

// global is place's inverse.
func (w *worker) global(d Direction, file int, blk uint64) uint64 {
	j := w.job
	nf := uint64(j.NrFiles)
	if nf <= 1 {
		return blk
	}
	if j.FileService != ServiceRoundRobin {
		return uint64(file)*w.perFile[d] + blk
	}
	n := uint64(j.FileServiceN)
	return blk/n*n*nf + uint64(file)*n + blk%n
}

// pickBS draws a block size from a bssplit mix.
func (w *worker) pickBS(mix []BSWeight) int {
	u := w.rnd.Float64() * 100
	for _, m := range mix {
		if u < m.Pct {
			return m.Size
		}
		u -= m.Pct
	}
	return mix[len(mix)-1].Size
}

// nextFree draws the next random block of direction d as fio's random
// map does for jobs with bssplit: a uniform draw, moved on to the next
// block no I/O of the pass has covered yet if it is taken (an I/O
// covers several blocks).
func (w *worker) nextFree(d Direction) uint64 {
	cov := &w.cover[d]
	blk := cov.nextFree(w.rnd.Uint64N(w.nblocks[d]))
	cov.set(blk)
	return blk
}

// claim marks the blocks after blk (of file's numbering) that an I/O of
// n blocks covers, stopping at the first one already done, as fio's
// mark_random_map shortens an I/O that runs into done blocks; it returns
// the blocks the I/O keeps (blk itself is nextFree's). Once every block
// is covered the pass is over: the map starts again.
func (w *worker) claim(d Direction, file int, blk uint64, n int) int {
	cov := &w.cover[d]
	k := 1
	for ; k < n; k++ {
		g := w.global(d, file, blk+uint64(k))
		if g >= w.nblocks[d] || cov.isSet(g) {
			break
		}
		cov.set(g)
	}
	if cov.left == 0 {
		cov.reset()
		w.wrapped()
	}
	return k
}

// minBS is the smallest block size the job issues (fio's rw_min_bs).
func minBS(j *Job) int {
	m := 0
	for d := range numDirs {
		if j.issues(Direction(d)) && (m == 0 || j.BS[d] < m) {
			m = j.BS[d]
		}
	}
	return max(m, 1)
}

// seqRun counts an I/O of rw=randread:N and reports whether it follows
// on from the last (true) or takes a new random offset: the first, then
// every Nth, as fio's ddir_seq_nr.
func (w *worker) seqRun() bool {
	if w.seqLeft--; w.seqLeft > 0 {
		return true
	}
	w.seqLeft = w.job.RWModifier
	return false
}

// peekDir returns the direction of the next I/O, choosing it (rwmixread)
// the first time it is asked, so that a rate limit can look before next
// issues it.
func (w *worker) peekDir() Direction {
	if w.dirChosen {
		return w.dir
	}
	j := w.job
	d := DirRead
	switch {
	case j.RW.Trim && j.RW.Write && w.twPending:
		d = DirWrite
	case j.RW.Trim:
		d = DirTrim
	case j.RW.Read && j.RW.Write:
		if w.rnd.Uint64N(100) >= uint64(j.RWMixRead) {
			d = DirWrite
		}
	case j.RW.Write:
		d = DirWrite
	}
	w.dir, w.dirChosen = d, true
	return d
}

// rateDelay is how long the next I/O must wait for rate or rate_iops
// (0: it may go now), as fio's rate_ddir: a mixed job whose next
// direction is ahead of its rate switches to the other if that one may
// go now, or will go sooner.
func (w *worker) rateDelay(now int64) int64 {
	if !w.rated || w.verifying {
		return 0
	}
	j := w.job
	d := w.peekDir()
	due := w.rateBase + w.rateNext[d]
	if w.rateBPS[d] == 0 || due <= now {
		return 0
	}
	if j.RW.Read && j.RW.Write && !j.RW.Trim {
		o, share := DirWrite, 100-j.RWMixRead
		if d == DirWrite {
			o, share = DirRead, j.RWMixRead
		}
		if share > 0 {
			odue := w.rateBase + w.rateNext[o]
			if w.rateBPS[o] == 0 || odue <= now {
				w.dir = o
				return 0
			}
			if odue < due {
				w.dir, due = o, odue
			}
		}
	}
	return due - now
}

// rateIssued moves direction d's schedule on by an I/O of n bytes, as
// fio's usec_for_io: linear, the next I/O is due when the bytes issued
// so far would have taken at the rate (a job that fell behind catches
// up); poisson, after an exponential gap of mean one I/O at the rate.
func (w *worker) rateIssued(d Direction, n int) {
	bps := w.rateBPS[d]
	if bps == 0 {
		return
	}
	if w.poisson {
		mean := float64(w.job.BS[d]) * 1e9 / float64(bps)
		w.rateNext[d] += int64(mean * -math.Log(1-w.prnd.Float64()))
		return
	}
	w.rateBytes[d] += uint64(n)
	secs, rem := w.rateBytes[d]/bps, w.rateBytes[d]%bps
	hi, lo := bits.Mul64(rem, uint64(time.Second))
	frac, _ := bits.Div64(hi, lo, bps) // rem < bps: no overflow
	w.rateNext[d] = int64(secs)*int64(time.Second) + int64(frac)
}

// checkMinRate is fio's check_min_rate: after a 2-second settle, every
// rate cycle (1 s) each direction that moved data must have done at
// least rate_min bytes/s (or rate_iops_min I/Os/s) over the cycle; the
// job fails with EIO if not.
func (w *worker) checkMinRate(t int64) {
	const settle, cycle = int64(2 * time.Second), int64(time.Second)
	if t-w.phaseStart < settle || w.ioErr != nil {
		return
	}
	if w.minCheck == 0 {
		w.minCheck = t
		for d := range numDirs {
			w.minBytes[d], w.minIOs[d] = w.stats[d].Bytes, w.stats[d].IOs
		}
		return
	}
	spent := t - w.minCheck
	if spent < cycle {
		return
	}
	j := w.job
	for d := range numDirs {
		st := &w.stats[d]
		if st.Bytes == 0 {
			continue
		}
		bps := (st.Bytes - w.minBytes[d]) * uint64(time.Second) / uint64(spent)
		iops := (st.IOs - w.minIOs[d]) * uint64(time.Second) / uint64(spent)
		switch {
		case j.RateMin[d] > 0 && bps < uint64(j.RateMin[d]):
			w.ioErr = fmt.Errorf("%s: rate_min=%dB/s not met, got %dB/s: %w", Direction(d), j.RateMin[d], bps, syscall.EIO)
		case j.RateMin[d] == 0 && j.RateIOPSMin[d] > 0 && iops < uint64(j.RateIOPSMin[d]):
			w.ioErr = fmt.Errorf("%s: rate_iops_min=%d not met, got %d IOPS: %w", Direction(d), j.RateIOPSMin[d], iops, syscall.EIO)
		}
		w.minBytes[d], w.minIOs[d] = st.Bytes, st.IOs
	}
	w.minCheck = t
}

// resetRate restarts the rate schedule at t (the end of ramp_time, as
// fio's reset_all_stats).
func (w *worker) resetRate(t int64) {
	w.rateBase = t
	w.rateBytes = [numDirs]uint64{}
	w.rateNext = [numDirs]int64{}
}

func (w *worker) nextVerify(io *IO) bool {
	if w.verr != nil || w.ioErr != nil || w.stop.Load() || w.timeUp {
		return false
	}
	n := w.nblocks[DirWrite]
	for w.vnext < n {
		word := w.written[w.vnext/64] >> (w.vnext % 64)
		if word == 0 {
			w.vnext = (w.vnext/64 + 1) * 64
			continue
		}
		w.vnext += uint64(bits.TrailingZeros64(word))
		break
	}
	if w.vnext >= n {
		return false
	}
	bs := w.job.BS[DirWrite]
	io.Op = OpRead
	var blk uint64
	io.File, blk = w.place(DirWrite, w.vnext)
	io.Offset = w.offset + int64(blk)*int64(bs)
	io.Len = bs
	w.vnext++
	return true
}

// writeBlock is the write grid's block (over every file) io starts at.
func (w *worker) writeBlock(io *IO) uint64 {
	return w.global(DirWrite, io.File, uint64(io.Offset-w.offset)/uint64(w.job.BS[DirWrite]))
}

func (w *worker) fill(io *IO) {
	b := io.Buf.Bytes
	if b == nil {
		b = w.scratch[io.Index]
	}
	n := uint16(w.seq - 1) // fio's numberio: the writes issued before this one
	w.ver.fill(b[:io.Len], io.Offset, verifyStamp{
		seed:     (w.seed ^ w.seq) * 0x9e3779b97f4a7c15,
		unixNano: w.baseUnix + w.now(),
		numberio: n,
	})
	if w.numberio != nil {
		w.numberio[w.writeBlock(io)] = n
	}
	if io.Buf.Bytes == nil {
		if err := w.access.CopyToBuffer(io.Buf, b[:io.Len]); err != nil && w.ioErr == nil {
			w.ioErr = fmt.Errorf("copy verify pattern to buffer: %w", err)
		}
	}
}

func (w *worker) complete(io *IO, t int64) {
	if io.Op == OpSync || io.Op == OpDatasync {
		// A queued fsync=N: its latency is fio's sync statistics.
		w.free = append(w.free, io)
		if io.Err != nil && w.ioErr == nil {
			w.ioErr = fmt.Errorf("sync: %w", io.Err)
		} else if w.recording {
			w.syncIOs++
			if !w.noClat {
				w.syncs.Record(uint64(t - io.issued))
			}
		}
		return
	}
	d := io.Op.dir()
	w.free = append(w.free, io)
	if io.Err != nil || io.Res != io.Len {
		err := io.Err
		if err == nil {
			err = fmt.Errorf("short %s: %d of %d bytes", d, io.Res, io.Len)
		}
		err = fmt.Errorf("%s at offset %d, length %d: %w", d, io.Offset, io.Len, err)
		class := ContinueWrite
		if d == DirRead {
			class = ContinueRead
		}
		if w.job.ContinueOnError&class != 0 {
			w.countError(err)
		} else if w.ioErr == nil {
			w.ioErr = err
		}
		return
	}
	if w.recording {
		st := &w.stats[d]
		if !w.noClat {
			st.Clat.Record(uint64(t - io.submitted))
		}
		if !w.noLat {
			st.Lat.Record(uint64(t - io.issued))
		}
		if !w.noSlat {
			st.slat.Record(uint64(io.submitted - io.issued))
		}
		st.IOs++
		st.Bytes += uint64(io.Res)
		if w.log != nil {
			w.log.record(d, io, t)
		}
	}
	if w.job.Verify == "" {
		return
	}
	if d == DirWrite {
		w.markWritten(io)
		return
	}
	if w.job.RW.Write && !w.verifying && !io.verify {
		// A read of a mixed workload may race a write of its block: only
		// the verify pass after the writes (and verify_backlog's reads of
		// completed writes) checks what they wrote.
		return
	}
	b := io.Buf.Bytes
	if b == nil {
		b = w.scratch[io.Index]
		if err := w.access.CopyFromBuffer(b[:io.Len], io.Buf); err != nil {
			w.ioErr = fmt.Errorf("copy read buffer for verify: %w", err)
			return
		}
	}
	want := -1
	if w.numberio != nil {
		want = int(w.numberio[w.writeBlock(io)])
	}
	verr := w.ver.check(b[:io.Len], io.Offset, want, w.sumBuf[:])
	if verr != nil && w.job.ContinueOnError&ContinueVerify != 0 {
		w.countError(verr)
		return
	}
	if verr != nil && (w.verr == nil || verr.Offset < w.verr.Offset) {
		w.verr = verr
	}
}

// markWritten records the blocks of the write's grid (bs) that a write
// covers (several with bssplit) for the verify phase.
func (w *worker) markWritten(io *IO) {
	if w.written == nil {
		return
	}
	bs := uint64(w.job.BS[DirWrite])
	first := uint64(io.Offset-w.offset) / bs
	for b := first; b < first+uint64(io.Len)/bs; b++ {
		blk := w.global(DirWrite, io.File, b)
		w.written[blk/64] |= 1 << (blk % 64)
		if w.job.VerifyBacklog > 0 && !w.dry {
			w.backlog = append(w.backlog, blk)
		}
	}
}

// backlogNext makes io a verify read of the oldest completed write not
// yet read back, as fio's check_get_verify: once verify_backlog writes
// have been issued since the last batch, a batch of verify_backlog_batch
// reads (default verify_backlog) goes out; while every such write is
// still in flight, a write goes instead. A block read back here is not
// read again by the verify phase.
func (w *worker) backlogNext(io *IO) bool {
	j := w.job
	if w.vbatch == 0 {
		if w.sinceBatch < j.VerifyBacklog {
			return false
		}
		w.sinceBatch, w.vbatch = 0, j.VerifyBacklogBatch
		if w.vbatch == 0 {
			w.vbatch = j.VerifyBacklog
		}
	}
	if w.backHead == len(w.backlog) {
		return false
	}
	g := w.backlog[w.backHead]
	if w.backHead++; w.backHead == len(w.backlog) {
		w.backlog, w.backHead = w.backlog[:0], 0
	} else if w.backHead > 4096 && w.backHead > len(w.backlog)/2 {
		w.backlog, w.backHead = w.backlog[:copy(w.backlog, w.backlog[w.backHead:])], 0
	}
	w.vbatch--
	w.written[g/64] &^= 1 << (g % 64)
	bs := j.BS[DirWrite]
	var blk uint64
	io.File, blk = w.place(DirWrite, g)
	io.Op, io.Offset, io.Len, io.verify = OpRead, w.offset+int64(blk)*int64(bs), bs, true
	return true
}

// dryRun is fio's do_dry_run for verify_only: the write phase's I/Os are
// worked out, none issued, so that the verify phase reads back what an
// earlier run of the same job wrote.
func (w *worker) dryRun() {
	io := w.free[len(w.free)-1]
	w.dry = true
	for w.next(io) {
		if io.Op == OpWrite {
			w.markWritten(io)
		}
	}
	w.dry = false
	w.syncDue, w.sinceSync, w.wrote, w.thinking = false, 0, false, false
}

// countError records an error continue_on_error lets the job go on after:
// the count, and the first one (fio's total_err and first_error).
func (w *worker) countError(err error) {
	w.totalErr++
	if w.firstErr == nil {
		w.firstErr = err
	}
}

// drain reaps what is in flight after a failure, then returns err.
func (w *worker) drain(err error) error {
	for w.inflight > 0 {
		evs, gerr := w.eng.GetEvents(1, w.events[:0])
		if gerr != nil {
			break
		}
		w.inflight -= len(evs)
	}
	w.recEnd = w.now()
	w.endPhase(w.recEnd)
	return err
}

// sync runs the engine's Sync with nothing in flight and records its
// latency (fio's sync statistics).
func (w *worker) sync(datasync bool) error {
	t0 := w.now()
	err := w.syncer.Sync(datasync)
	if err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if w.recording {
		w.syncIOs++
		if !w.noClat {
			w.syncs.Record(uint64(w.now() - t0))
		}
	}
	return nil
}

func (w *worker) failure() error {
	w.recEnd = w.now()
	w.endPhase(w.recEnd)
	if w.verr != nil {
		return w.verr
	}
	return w.ioErr
}

func (w *worker) close() error {
	var lerr error
	if w.log != nil {
		lerr = w.log.close()
		w.log = nil
	}
	if w.eng == nil {
		return lerr
	}
	return errors.Join(w.eng.Close(), lerr)
}
