//go:build linux

package bench

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestIODepthHeld: as fio, a job keeps iodepth I/Os in flight: each
// completion is reaped alone and its slot refilled at once, so that
// (but for the first fill) every I/O is submitted at the full depth:
// fio's iodepth_level shows 100% at the job's iodepth.
func TestIODepthHeld(t *testing.T) {
	for _, tc := range []struct {
		depth, level int
	}{{4, 2}, {32, 5}, {16, 4}} {
		jobs := mustJobs(t, Option{"ioengine", "null"}, Option{"rw", "randread"}, Option{"bs", "4k"},
			Option{"iodepth", strconv.Itoa(tc.depth)}, Option{"size", "16m"})
		rep, err := Run(context.Background(), Config{Jobs: jobs})
		if err != nil {
			t.Fatal(err)
		}
		r := rep.Groups[0].Jobs[0]
		var total uint64
		for _, c := range r.DepthHist {
			total += c
		}
		// The first fill passes through the lower levels once.
		if at := r.DepthHist[tc.level]; total != 4096 || at != total-uint64(tc.depth-1) {
			t.Errorf("iodepth=%d: %d of %d I/Os at depth level %d, want all but the first fill's %d (levels %v)",
				tc.depth, at, total, tc.level, tc.depth-1, r.DepthHist)
		}
		// One submit and one complete of 1-4 I/Os per I/O but the drain.
		if s, c := r.SubmitHist[1], r.CompleteHist[1]; s != 4096 || c < 4096-uint64(tc.depth) {
			t.Errorf("iodepth=%d: submit 1-4 %d times, complete 1-4 %d times (submit %v, complete %v)",
				tc.depth, s, c, r.SubmitHist, r.CompleteHist)
		}
	}
}

// TestIODepthLow: with iodepth_low, a full queue is reaped down to that
// many before it is refilled (fio's low water mark); without it, to
// iodepth-1.
func TestIODepthLow(t *testing.T) {
	for _, tc := range []struct {
		low, want int
	}{{0, 15}, {4, 4}, {16, 15}, {32, 15}} {
		jobs := mustJobs(t, Option{"ioengine", "test-batch"}, Option{"rw", "randread"}, Option{"bs", "4k"},
			Option{"iodepth", "16"}, Option{"size", "1m"})
		jobs[0].IODepthLow = tc.low
		if _, err := Run(context.Background(), Config{Jobs: jobs}); err != nil {
			t.Fatal(err)
		}
		if e := lastBatchEngine; e.lowAfterFull != tc.want || e.maxInflight != 16 {
			t.Errorf("iodepth_low=%d: refilled at %d in flight (want %d), at most %d in flight (want 16)",
				tc.low, e.lowAfterFull, tc.want, e.maxInflight)
		}
	}
}

// TestSyncEngineLatency: a synchronous engine's I/O is timed as fio
// times psync: all of it completion latency, no submission latency.
func TestSyncEngineLatency(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data")
	jobs := mustJobs(t, Option{"ioengine", "psync"}, Option{"filename", file}, Option{"rw", "randread"},
		Option{"bs", "4k"}, Option{"size", "1m"})
	rep, err := Run(context.Background(), Config{Jobs: jobs})
	if err != nil {
		t.Fatal(err)
	}
	st := &rep.Groups[0].Jobs[0].Dir[DirRead]
	if st.slat.n != 0 || st.Clat.n != 256 || st.Clat.sum != st.Lat.sum {
		t.Errorf("psync: %d slat samples (want 0), %d clat (want 256), clat sum %v, lat sum %v (want equal)",
			st.slat.n, st.Clat.n, st.Clat.sum, st.Lat.sum)
	}
}

// TestRWModifier: rw's :N modifier as fio runs it: rw=read:8k reads with
// an 8k hole after each I/O; rw=randread:4 takes a new random offset
// for the first I/O and every 4th after it and goes on sequentially from
// it in between (fio 3.33: 61440 65536 69632 73728 774144 ...), or
// repeats it with rw_sequencer=identical.
func TestRWModifier(t *testing.T) {
	run := func(rw string, mod int64, identical bool) [][2]int64 {
		jobs := mustJobs(t, Option{"ioengine", "test-record"}, Option{"rw", rw}, Option{"bs", "4k"}, Option{"size", "1m"},
			Option{"number_ios", "12"})
		jobs[0].RWModifier, jobs[0].RWSequencerIdentical = mod, identical
		if _, err := Run(context.Background(), Config{Jobs: jobs}); err != nil {
			t.Fatal(err)
		}
		return lastRecordEngine.ios
	}
	for i, io := range run("read", 8192, false) {
		if io[0] != int64(i)*12288 {
			t.Fatalf("rw=read:8k: I/O %d at %d, want %d", i, io[0], i*12288)
		}
	}
	for _, identical := range []bool{false, true} {
		ios := run("randread", 4, identical)
		for i := 1; i < len(ios); i++ {
			want := ios[i-1][0] + 4096
			if identical {
				want = ios[i-1][0]
			}
			if i%4 != 0 && ios[i][0] != want {
				t.Fatalf("rw=randread:4 identical=%v: I/O %d at %d, want %d (%v)", identical, i, ios[i][0], want, ios)
			}
		}
		if ios[4][0] == ios[3][0]+4096 && ios[8][0] == ios[7][0]+4096 {
			t.Fatalf("rw=randread:4: no random offset every 4th I/O: %v", ios)
		}
	}
}

// TestSizePercentOfEngine: size=N% and offset=N% that the job file could
// not resolve (a target only the engine can size) are percents of the
// engine's size, on the block grid (fio's size_percent, offset percent).
func TestSizePercentOfEngine(t *testing.T) {
	jobs := mustJobs(t, Option{"ioengine", "test-mem"}, Option{"rw", "read"}, Option{"bs", "4k"})
	jobs[0].SizePct, jobs[0].OffsetPct = 25, 50
	rep, err := Run(context.Background(), Config{Jobs: jobs})
	if err != nil {
		t.Fatal(err)
	}
	if n := rep.Groups[0].Jobs[0].Dir[DirRead].IOs; n != 64 {
		t.Fatalf("size=25%% of 1 MiB: %d reads of 4k, want 64", n)
	}
	jobs = mustJobs(t, Option{"ioengine", "test-record"}, Option{"rw", "read"}, Option{"bs", "4k"}, Option{"number_ios", "2"})
	jobs[0].SizePct, jobs[0].OffsetPct = 1, 30
	if _, err := Run(context.Background(), Config{Jobs: jobs}); err != nil {
		t.Fatal(err)
	}
	if off, want := lastRecordEngine.ios[0][0], int64(1<<40)*3/10/4096*4096; off != want {
		t.Fatalf("offset=30%% of 1 TiB: first I/O at %d, want %d", off, want)
	}
}

// orderEngine is the null engine numbering its I/Os in one sequence over
// every job of the run: the first and last number each job queued.
type orderEngine struct {
	nullEngine
	name string
}

var (
	orderMu               sync.Mutex
	orderSeq              int
	orderFirst, orderLast = map[string]int{}, map[string]int{}
)

func init() {
	RegisterEngine("test-order", func(cfg *EngineConfig) (Engine, error) {
		return &orderEngine{nullEngine: nullEngine{done: make([]*IO, 0, cfg.IODepth)}, name: cfg.Job.Name}, nil
	})
}

func (e *orderEngine) Queue(io *IO) error {
	orderMu.Lock()
	orderSeq++
	if _, ok := orderFirst[e.name]; !ok {
		orderFirst[e.name] = orderSeq
	}
	orderLast[e.name] = orderSeq
	orderMu.Unlock()
	return e.nullEngine.Queue(io)
}

// TestWaitForAndExitAll: wait_for starts a job once every clone of the
// one it names is done (in the same group); exitall_on_error ends the
// group when a job fails, and exit_what=all the later groups too.
func TestWaitForAndExitAll(t *testing.T) {
	orderMu.Lock()
	orderSeq, orderFirst, orderLast = 0, map[string]int{}, map[string]int{}
	orderMu.Unlock()
	jobs, err := BuildJobs(nil, []Section{
		{Name: "first", Options: opts("ioengine=test-order", "rw=read", "size=64k", "numjobs=2")},
		{Name: "second", Options: opts("ioengine=test-order", "rw=read", "size=64k")},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	jobs[1].WaitFor = "first"
	rep, err := Run(context.Background(), Config{Jobs: jobs})
	if err != nil || len(rep.Groups) != 1 {
		t.Fatalf("wait_for: %v, %d groups (want 1)", err, len(rep.Groups))
	}
	// The waiter queued its first I/O after the waitee's clones' last.
	if r := rep.Groups[0].Jobs[2]; r.Err != nil || r.Dir[DirRead].IOs != 16 || orderFirst["second"] <= orderLast["first"] {
		t.Fatalf("waiter: %v, %d reads; its first I/O is #%d, the waitee's last #%d", r.Err, r.Dir[DirRead].IOs,
			orderFirst["second"], orderLast["first"])
	}
	jobs[1].WaitFor = "later"
	if _, err := Run(context.Background(), Config{Jobs: jobs}); err == nil || !strings.Contains(err.Error(), "option wait_for") {
		t.Errorf("wait_for a job that is not before it: %v", err)
	}

	// A failing job (an engine that fails its 8th I/O)
	// with exitall_on_error and exit_what=all: the time_based job beside
	// it ends, and the next group does not run.
	jobs, err = BuildJobs(nil, []Section{
		{Name: "fails", Options: opts("ioengine=test-faulty", "rw=read", "size=64k")},
		{Name: "long", Options: opts("ioengine=null", "rw=read", "size=64k", "time_based", "runtime=1h")},
		{Name: "next", Options: opts("ioengine=null", "rw=read", "size=64k", "stonewall")},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	jobs[0].ExitAllOnError, jobs[0].ExitWhat = true, "all"
	rep, err = Run(context.Background(), Config{Jobs: jobs})
	if err == nil || len(rep.Groups) != 1 {
		t.Fatalf("exitall_on_error, exit_what=all: %v, %d groups run (want 1)", err, len(rep.Groups))
	}
}

// TestPercentageRandom: percentage_random=N makes N% of a random job's
// I/Os random, the others going on from the last one.
func TestPercentageRandom(t *testing.T) {
	jobs := mustJobs(t, Option{"ioengine", "test-record"}, Option{"rw", "randread"}, Option{"bs", "4k"},
		Option{"size", "1g"}, Option{"number_ios", "2000"})
	jobs[0].RandomPct[DirRead] = 30
	if _, err := Run(context.Background(), Config{Jobs: jobs}); err != nil {
		t.Fatal(err)
	}
	ios, seq := lastRecordEngine.ios, 0
	for i := 1; i < len(ios); i++ {
		if ios[i][0] == ios[i-1][0]+4096 {
			seq++
		}
	}
	// 70% expected; the seeded draw makes it deterministic, the bounds
	// are about 5 sigma.
	if pct := 100 * float64(seq) / float64(len(ios)-1); pct < 65 || pct > 75 {
		t.Errorf("percentage_random=30: %.1f%% of I/Os followed on from the last, want about 70%%", pct)
	}
}

// TestRandomGeneratorLFSR: random_generator=lfsr visits every block once
// per pass even with norandommap, as fio's LFSR does (it needs no map).
func TestRandomGeneratorLFSR(t *testing.T) {
	for _, gen := range []string{"", "lfsr"} {
		jobs := mustJobs(t, Option{"ioengine", "test-record"}, Option{"rw", "randread"}, Option{"bs", "4k"},
			Option{"size", "1m"}, Option{"norandommap", ""})
		jobs[0].RandomGenerator = gen
		if _, err := Run(context.Background(), Config{Jobs: jobs}); err != nil {
			t.Fatal(err)
		}
		seen := map[int64]bool{}
		for _, io := range lastRecordEngine.ios {
			seen[io[0]] = true
		}
		if all := len(seen) == 256; all != (gen == "lfsr") {
			t.Errorf("random_generator=%q, norandommap: %d distinct blocks of 256 in one pass", gen, len(seen))
		}
	}
}

// TestBlockAlign: blockalign puts a random job's I/Os on its grid
// rather than the block size's (64k reads at any 4k boundary that fits),
// as fio's ba; a sequential job keeps the block size's.
func TestBlockAlign(t *testing.T) {
	jobs := mustJobs(t, Option{"ioengine", "test-record"}, Option{"rw", "randread"}, Option{"bs", "64k"},
		Option{"size", "1m"}, Option{"io_size", "1g"}, Option{"number_ios", "2000"}, Option{"norandommap", ""})
	jobs[0].BlockAlign = [numDirs]int{4096, 4096, 4096}
	if _, err := Run(context.Background(), Config{Jobs: jobs}); err != nil {
		t.Fatal(err)
	}
	off64k, last := 0, false
	for _, io := range lastRecordEngine.ios {
		if io[0]%4096 != 0 || io[0]+io[1] > 1<<20 || io[1] != 64<<10 {
			t.Fatalf("I/O at %d, %d bytes: off the 4k grid, past 1m or not 64k", io[0], io[1])
		}
		if io[0]%(64<<10) == 0 {
			off64k++
		}
		last = last || io[0] == 1<<20-64<<10
	}
	// 16 of the 241 starts are on the 64k grid: about 7% of 2000.
	if n := len(lastRecordEngine.ios); n != 2000 || off64k > 400 || !last {
		t.Errorf("%d of %d I/Os on the 64k grid (want about 133 of 2000); the last start (1m-64k) drawn: %v", off64k, n, last)
	}
}

// TestInvalidateOnWrap: invalidate=1 drops a buffered file's page cache
// before the job and again each time a time_based job wraps around it,
// sequential (at the end) or random (when every block has been done), as
// fio's loop_cache_invalidate; direct=1 and invalidate=0 only before.
func TestInvalidateOnWrap(t *testing.T) {
	for _, tc := range []struct {
		rw, extra string
		want      int
	}{
		{"read", "", 1 + 6}, // 100 I/Os over 16 blocks: 6 wraps
		{"randread", "", 1 + 6},
		{"read", "direct=1", 1},
		{"read", "invalidate=0", 0},
	} {
		o := opts("ioengine=test-batch", "rw="+tc.rw, "bs=4k", "size=64k", "time_based", "runtime=1h", "number_ios=100")
		if tc.extra != "" {
			o = append(o, opts(tc.extra)...)
		}
		if _, err := Run(context.Background(), Config{Jobs: mustJobs(t, o...)}); err != nil {
			t.Fatal(err)
		}
		if got := lastBatchEngine.invalidated; got != tc.want {
			t.Errorf("rw=%s %s: %d invalidations, want %d", tc.rw, tc.extra, got, tc.want)
		}
	}
}

// TestRatePoisson: rate_process=poisson keeps the mean rate with
// exponential gaps (their deviation about their mean), where linear's
// gaps are all alike.
func TestRatePoisson(t *testing.T) {
	for _, process := range []string{"linear", "poisson"} {
		j := DefaultJob()
		j.RateIOPS[DirRead], j.RateProcess = 1000, process
		w := &worker{job: &j, depth: 1, prnd: newRNG(7)}
		w.rateBPS[DirRead], w.poisson = 1000*4096, process == "poisson"
		const n = 20000
		var sum, sumSq float64
		last := int64(0)
		for range n {
			w.rateIssued(DirRead, 4096)
			gap := float64(w.rateNext[DirRead]-last) / 1e6 // ms
			last = w.rateNext[DirRead]
			sum += gap
			sumSq += gap * gap
		}
		mean := sum / n
		cv := math.Sqrt(sumSq/n-mean*mean) / mean
		wantCV := map[string]float64{"linear": 0, "poisson": 1}[process]
		if math.Abs(mean-1) > 0.03 || math.Abs(cv-wantCV) > 0.05 {
			t.Errorf("rate_iops=1000 rate_process=%s: mean gap %.3f ms (want 1), deviation/mean %.2f (want %g)", process, mean, cv, wantCV)
		}
	}
}

// TestRateIgnoreThinktime: with rate_ignore_thinktime a stall moves the
// rate's schedule on by its length (less one block), so no catch-up
// burst follows it; without, the schedule stays where it was (fio's
// default: catch up).
func TestRateIgnoreThinktime(t *testing.T) {
	for _, ignore := range []bool{false, true} {
		j := DefaultJob()
		j.ThinkTime, j.RateIgnoreThink = 2*time.Millisecond, ignore
		stop := new(atomic.Bool)
		w := &worker{job: &j, stop: stop, rated: true, base: time.Now()}
		w.rateBPS[DirRead] = 100000 * 4096 // a block every 10 µs
		w.think()
		got := time.Duration(w.rateNext[DirRead])
		if ignore && (got < 1900*time.Microsecond || got > time.Second) || !ignore && got != 0 {
			t.Errorf("rate_ignore_thinktime=%v: the schedule moved %v over a 2 ms stall", ignore, got)
		}
	}
}

// TestScrambleBuffers: by default (fio's scramble_buffers=1) each write
// carries its offset in every 512-byte block, so blocks written from the
// same buffer differ; scramble_buffers=0 writes the buffer as filled.
func TestScrambleBuffers(t *testing.T) {
	for _, noScramble := range []bool{false, true} {
		jobs := mustJobs(t, Option{"ioengine", "test-mem"}, Option{"rw", "write"}, Option{"bs", "4k"}, Option{"size", "8k"})
		jobs[0].NoScramble = noScramble
		if _, err := Run(context.Background(), Config{Jobs: jobs}); err != nil {
			t.Fatal(err)
		}
		st := lastMemEngine.store
		same := bytes.Equal(st[:4096], st[4096:8192])
		found := 0
		for off := 0; off < 8192; off += 512 {
			for line := 0; line < 512; line += 64 {
				if binary.LittleEndian.Uint64(st[off+line:]) == uint64(off) && off > 0 {
					found++
				}
			}
		}
		if noScramble != same || !noScramble && found < 15 {
			t.Errorf("scramble_buffers=%v: the two blocks alike: %v; %d of 15 sectors carry their offset", !noScramble, same, found)
		}
	}
}

// TestCompressPercentage: buffer_compress_percentage=N makes the last N%
// of every buffer_compress_chunk of write data zeros, the rest random,
// as fio's fill_random_buf_percentage (a compressor shrinks it by N%).
func TestCompressPercentage(t *testing.T) {
	for _, tc := range []struct{ pct, chunk, zeros int }{{50, 0, 256}, {75, 1024, 768}} {
		jobs := mustJobs(t, Option{"ioengine", "test-mem"}, Option{"rw", "write"}, Option{"bs", "4k"}, Option{"size", "8k"})
		jobs[0].CompressPct, jobs[0].CompressChunk = tc.pct, tc.chunk
		if _, err := Run(context.Background(), Config{Jobs: jobs}); err != nil {
			t.Fatal(err)
		}
		chunk := max(tc.chunk, 512)
		st := lastMemEngine.store[:8192]
		for off := 0; off < len(st); off += chunk {
			c := st[off : off+chunk]
			if z := chunk - tc.zeros; bytes.Count(c[z:], []byte{0}) != tc.zeros || bytes.Count(c[:z], []byte{0}) > z/16 {
				t.Fatalf("buffer_compress_percentage=%d chunk %d: the chunk at %d is not %d random bytes then %d zeros", tc.pct, chunk, off, z, tc.zeros)
			}
		}
	}
}

// TestPreRead: pre_read reads the job's region once before the job,
// untimed (the job's statistics count only its own reads), and turns
// invalidate off, as fio's pre_read_files.
func TestPreRead(t *testing.T) {
	jobs := mustJobs(t, Option{"ioengine", "test-batch"}, Option{"rw", "randread"}, Option{"bs", "4k"}, Option{"size", "64k"})
	jobs[0].PreRead = true
	rep, err := Run(context.Background(), Config{Jobs: jobs})
	if err != nil {
		t.Fatal(err)
	}
	e := lastBatchEngine
	if n := rep.Groups[0].Jobs[0].Dir[DirRead].IOs; n != 16 || len(e.commits) != 32 || e.invalidated != 0 {
		t.Errorf("pre_read: %d reads counted (want 16), %d I/Os in all (want 16 read ahead + 16), %d invalidations (want 0)",
			n, len(e.commits), e.invalidated)
	}
}

// qsyncEngine is the null engine taking syncs in its queue (QueuedSyncer),
// noting how many it took and the most I/Os in flight when one came.
type qsyncEngine struct {
	nullEngine
	syncs, datasyncs, inflightAtSync, inflight int
}

var lastQSyncEngine *qsyncEngine

func init() {
	RegisterEngine("test-qsync", func(cfg *EngineConfig) (Engine, error) {
		e := &qsyncEngine{nullEngine: nullEngine{done: make([]*IO, 0, cfg.IODepth)}}
		lastQSyncEngine = e
		return e, nil
	})
}

func (e *qsyncEngine) QueuedSync() bool { return true }
func (e *qsyncEngine) Sync(bool) error {
	return errors.New("Sync called: the sync should have been queued")
}
func (e *qsyncEngine) Queue(io *IO) error {
	switch io.Op {
	case OpSync:
		e.syncs++
	case OpDatasync:
		e.datasyncs++
	}
	if io.Op == OpSync || io.Op == OpDatasync {
		e.inflightAtSync = max(e.inflightAtSync, e.inflight)
	}
	e.inflight++
	return e.nullEngine.Queue(io)
}

func (e *qsyncEngine) GetEvents(min int, events []*IO) ([]*IO, error) {
	n := len(events)
	events, err := e.nullEngine.GetEvents(min, events)
	e.inflight -= len(events) - n
	return events, err
}

// TestQueuedFsync: fsync=N on an engine that queues syncs (io_uring)
// goes out right after the Nth write, beside the writes in flight, as
// fio's DDIR_SYNC io_u; its latency is the sync statistics.
func TestQueuedFsync(t *testing.T) {
	for _, opt := range []string{"fsync", "fdatasync"} {
		jobs := mustJobs(t, Option{"ioengine", "test-qsync"}, Option{"rw", "randwrite"}, Option{"bs", "4k"},
			Option{"size", "256k"}, Option{"iodepth", "8"}, Option{opt, "4"})
		rep, err := Run(context.Background(), Config{Jobs: jobs})
		if err != nil {
			t.Fatal(err)
		}
		e, r := lastQSyncEngine, rep.Groups[0].Jobs[0]
		n := e.syncs
		if opt == "fdatasync" {
			n = e.datasyncs
		}
		if n != 15 || e.inflightAtSync < 2 || r.Syncs.n != 15 || r.Dir[DirWrite].IOs != 64 {
			t.Errorf("%s=4, 64 writes: %d syncs queued (want 15: none after the last write), at most %d in flight when one was (want more than 1), %d sync latencies, %d writes",
				opt, n, e.inflightAtSync, r.Syncs.n, r.Dir[DirWrite].IOs)
		}
	}
}
