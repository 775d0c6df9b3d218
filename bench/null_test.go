package bench

import (
	"bytes"
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func mustJobs(t testing.TB, opts ...Option) []*Job {
	t.Helper()
	jobs, err := BuildJobs(nil, []Section{{Name: "t", Options: opts}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

func TestNullEngineRandRead(t *testing.T) {
	jobs := mustJobs(t, Option{"ioengine", "null"}, Option{"rw", "randread"}, Option{"bs", "4k"},
		Option{"iodepth", "32"}, Option{"size", "64m"})
	rep, err := Run(context.Background(), Config{Jobs: jobs})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Groups[0].Jobs[0]
	if got, want := r.Dir[DirRead].IOs, uint64(64<<20/4096); got != want {
		t.Fatalf("ios %d, want %d (one pass over size with the random map)", got, want)
	}
	if testing.Verbose() {
		rep.WriteText(os.Stdout)
	}
}

// batchEngine is the null engine recording how the core submits: I/Os per
// Commit and the most I/Os in flight.
type batchEngine struct {
	nullEngine
	staged, inflight, maxInflight int
	commits                       []int
	invalidated                   int
	maxMin, maxCap, maxReaped     int // GetEvents: largest min asked, capacity given, completions taken
	drains                        int // GetEvents calls that asked for everything in flight
	// lowAfterFull is the fewest in flight at a Queue once the queue had
	// been full (0: never full).
	lowAfterFull int
	// drained counts Commits onto an empty queue after the first.
	drained int
}

func (e *batchEngine) Invalidate() error { e.invalidated++; return nil }

var lastBatchEngine *batchEngine

func init() {
	RegisterEngine("test-batch", func(cfg *EngineConfig) (Engine, error) {
		e := &batchEngine{nullEngine: nullEngine{done: make([]*IO, 0, cfg.IODepth)}}
		lastBatchEngine = e
		return e, nil
	})
}

func (e *batchEngine) Queue(io *IO) error {
	if e.maxInflight == cap(e.done) && (e.lowAfterFull == 0 || e.inflight < e.lowAfterFull) {
		e.lowAfterFull = e.inflight
	}
	e.staged++
	return e.nullEngine.Queue(io)
}

func (e *batchEngine) Commit() error {
	if e.inflight == 0 && len(e.commits) > 0 {
		e.drained++
	}
	e.commits = append(e.commits, e.staged)
	e.inflight += e.staged
	e.maxInflight = max(e.maxInflight, e.inflight)
	e.staged = 0
	return nil
}

func (e *batchEngine) GetEvents(min int, events []*IO) ([]*IO, error) {
	n := len(events)
	if min == e.inflight && cap(events)-n == min && min > 1 {
		e.drains++ // the end of the job: everything in flight, at once
	} else {
		e.maxMin, e.maxCap = max(e.maxMin, min), max(e.maxCap, cap(events)-n)
	}
	events, err := e.nullEngine.GetEvents(min, events)
	e.inflight -= len(events) - n
	e.maxReaped = max(e.maxReaped, len(events)-n)
	return events, err
}

// TestIODepthBatchComplete: iodepth_batch_complete_min is how many
// completions a reap of a full queue waits for (default 1), _max how many
// it takes at most (default: _min, as fio's fixup_options), so that by
// default the queue is refilled after each completion. The end of the job
// reaps what is in flight at once (fio's io_u_queued_complete(cur_depth)).
func TestIODepthBatchComplete(t *testing.T) {
	for _, tc := range []struct {
		opts             []Option
		min, cap, reaped int
	}{
		{nil, 1, 1, 1},
		{[]Option{{"iodepth_batch_complete_min", "4"}, {"iodepth_batch_complete_max", "8"}}, 4, 8, 8},
		{[]Option{{"iodepth_batch_complete_max", "4"}}, 1, 4, 4},
		{[]Option{{"iodepth_batch_complete", "0"}}, 1, 1, 1},
	} {
		opts := append([]Option{{"ioengine", "test-batch"}, {"rw", "randread"}, {"bs", "4k"}, {"iodepth", "16"},
			{"iodepth_batch_submit", "0"}, {"size", "4m"}}, tc.opts...)
		if _, err := Run(context.Background(), Config{Jobs: mustJobs(t, opts...)}); err != nil {
			t.Fatal(err)
		}
		if e := lastBatchEngine; e.maxMin != tc.min || e.maxCap != tc.cap || e.maxReaped > max(tc.reaped, 16) || e.drains != 1 {
			t.Errorf("%v: largest min %d (want %d), capacity %d (want %d), most reaped %d (want <= %d), %d final drains (want 1)",
				tc.opts, e.maxMin, tc.min, e.maxCap, tc.cap, e.maxReaped, tc.reaped, e.drains)
		}
	}
}

// TestIODepthBatchSubmit: as in fio, iodepth_batch_submit defaults to 1
// (one Commit per I/O) and the queue still fills to iodepth; 0 means
// iodepth; N commits at most N at a time.
func TestIODepthBatchSubmit(t *testing.T) {
	for _, tc := range []struct {
		batch    string // "" = default
		maxBatch int
	}{{"", 1}, {"0", 16}, {"4", 4}} {
		opts := []Option{{"ioengine", "test-batch"}, {"rw", "randread"}, {"bs", "4k"}, {"iodepth", "16"}, {"size", "4m"}}
		if tc.batch != "" {
			opts = append(opts, Option{"iodepth_batch_submit", tc.batch})
		}
		if _, err := Run(context.Background(), Config{Jobs: mustJobs(t, opts...)}); err != nil {
			t.Fatal(err)
		}
		e := lastBatchEngine
		most := 0
		for _, n := range e.commits {
			most = max(most, n)
		}
		if most != tc.maxBatch || e.maxInflight != 16 {
			t.Errorf("iodepth_batch_submit=%q: largest commit %d (want %d), most in flight %d (want 16)",
				tc.batch, most, tc.maxBatch, e.maxInflight)
		}
	}
}

// TestSyncEngineDepthNote: a synchronous engine caps iodepth at 1 and the
// run says so, as fio does.
func TestSyncEngineDepthNote(t *testing.T) {
	name := t.TempDir() + "/f"
	jobs := mustJobs(t, Option{"ioengine", "psync"}, Option{"filename", name}, Option{"rw", "read"},
		Option{"iodepth", "8"}, Option{"size", "64k"})
	var notes bytes.Buffer
	rep, err := Run(context.Background(), Config{Jobs: jobs, Notes: &notes})
	if err != nil {
		t.Fatal(err)
	}
	want := "note: t: iodepth=8 with the synchronous engine psync: queue depth capped at 1\n"
	if notes.String() != want {
		t.Errorf("notes %q, want %q", notes.String(), want)
	}
	if h := rep.Groups[0].Jobs[0].DepthHist; h[0] == 0 || h[1]+h[2]+h[3] != 0 {
		t.Errorf("depth histogram %v: want every I/O at depth 1", h)
	}
}

// TestInvalidate: as in fio, the page cache of the file is dropped before
// each job unless invalidate=0.
func TestInvalidate(t *testing.T) {
	for _, tc := range []struct {
		opt  []Option
		want int
	}{{nil, 1}, {[]Option{{"invalidate", "0"}}, 0}, {[]Option{{"invalidate", "1"}}, 1}} {
		opts := append([]Option{{"ioengine", "test-batch"}, {"rw", "read"}, {"size", "64k"}}, tc.opt...)
		if _, err := Run(context.Background(), Config{Jobs: mustJobs(t, opts...)}); err != nil {
			t.Fatal(err)
		}
		if got := lastBatchEngine.invalidated; got != tc.want {
			t.Errorf("%v: %d invalidations, want %d", tc.opt, got, tc.want)
		}
	}
}

// memEngine is the null engine with storage, for verify tests: when
// corruptAfter > 0, after that many I/Os it flips a byte of the first block
// written (at corrupted).
type memEngine struct {
	nullEngine
	store        []byte
	queued       int
	corruptAfter int
	firstWritten int64
	corrupted    int64
	// writes counts the writes; the dropWrite-th is acknowledged but
	// not stored (a lost write).
	writes, dropWrite int
}

var (
	memEngineCorruptAfter int
	memEngineDropWrite    int
	lastMemEngine         *memEngine
)

func init() {
	RegisterEngine("test-mem", func(cfg *EngineConfig) (Engine, error) {
		e := &memEngine{nullEngine: nullEngine{done: make([]*IO, 0, cfg.IODepth)}, store: make([]byte, 1<<20),
			corruptAfter: memEngineCorruptAfter, dropWrite: memEngineDropWrite, firstWritten: -1, corrupted: -1}
		lastMemEngine = e
		return e, nil
	})
}

func (e *memEngine) Size() int64 { return int64(len(e.store)) }

func (e *memEngine) Queue(io *IO) error {
	if e.queued++; e.queued == e.corruptAfter+1 && e.firstWritten >= 0 {
		e.store[e.firstWritten+100] ^= 0xff
		e.corrupted = e.firstWritten
	}
	p := e.store[io.Offset : io.Offset+int64(io.Len)]
	if io.Op == OpWrite {
		if e.writes++; e.writes != e.dropWrite {
			copy(p, io.Buf.Bytes[:io.Len])
		}
		if e.firstWritten < 0 {
			e.firstWritten = io.Offset
		}
	} else {
		copy(io.Buf.Bytes[:io.Len], p)
	}
	return e.nullEngine.Queue(io)
}

// TestMixedVerify: randrw with verify checks, after the mixed phase (whose
// reads may race writes and are not checked), every block it wrote, and
// names a corrupted one.
func TestMixedVerify(t *testing.T) {
	opts := []Option{{"ioengine", "test-mem"}, {"rw", "randrw"}, {"bs", "4k"}, {"size", "256k"}, {"iodepth", "8"}, {"verify", "crc32c"}}
	rep, err := Run(context.Background(), Config{Jobs: mustJobs(t, opts...)})
	if err != nil {
		t.Fatal(err)
	}
	// 64 I/Os in the mixed phase (w writes to distinct blocks), then one
	// verify read per block written.
	r := rep.Groups[0].Jobs[0]
	if w, rd := r.Dir[DirWrite].IOs, r.Dir[DirRead].IOs; w == 0 || w == 64 || rd != 64 {
		t.Fatalf("%d writes, %d reads: want a mix of 64, then a verify read per write", w, rd)
	}
	memEngineCorruptAfter = 64 // as the verify pass starts
	defer func() { memEngineCorruptAfter = 0 }()
	_, err = Run(context.Background(), Config{Jobs: mustJobs(t, opts...)})
	var ve *VerifyError
	if bad := lastMemEngine.corrupted; bad < 0 || !errors.As(err, &ve) || ve.Offset != bad {
		t.Fatalf("corrupted block at %d: err = %v, want a verify error there", bad, err)
	}
}

// TestRateLimits: rate_iops and rate never let a clone issue ahead of
// fio's schedule: I/O k goes no sooner than k I/Os' worth of the rate
// after the start. Only the upper bound is checked: a slow machine may
// fall behind, never ahead.
func TestRateLimits(t *testing.T) {
	for _, tc := range []struct {
		opt  Option
		iops float64
	}{{Option{"rate_iops", "2000"}, 2000}, {Option{"rate", "4m"}, 1024}, {Option{"rate_iops", "1000,0"}, 1000}} {
		jobs := mustJobs(t, Option{"ioengine", "null"}, Option{"rw", "randread"}, Option{"bs", "4k"}, Option{"iodepth", "4"},
			Option{"runtime", "300ms"}, Option{"time_based", ""}, tc.opt)
		rep, err := Run(context.Background(), Config{Jobs: jobs})
		if err != nil {
			t.Fatal(err)
		}
		r := rep.Groups[0].Jobs[0]
		limit := tc.iops*r.Runtime.Seconds() + 1
		if n := float64(r.Dir[DirRead].IOs); n == 0 || n > limit {
			t.Errorf("%s=%s: %v I/Os in %v, at most %.0f allowed", tc.opt.Name, tc.opt.Value, n, r.Runtime, limit)
		}
	}
	if _, err := BuildJobs(nil, []Section{{Name: "x", Options: []Option{{"rate_iops", "1,2,3,4"}}}}, nil); err == nil {
		t.Error("rate_iops with four fields accepted")
	}
}

// TestThinkTime: thinktime stalls, the queue drained, after every
// thinktime_blocks I/Os: completed (fio 3.33's default type: the queue
// fills to iodepth in between: for iodepth=16, thinktime_blocks=4 both
// show iodepth 1=10.5%, 2=10.5%, 4=21.1%, 8=42.1%, 16=15.8% on a file)
// or, with thinktime_blocks_type=issue,
// issued, which caps the queue depth at thinktime_blocks (fio: 1=25%,
// 2=50%, 4=25%); a bare number is microseconds.
func TestThinkTime(t *testing.T) {
	for _, tc := range []struct {
		blocks  string
		issue   bool
		most    int
		refills int // at least, from an empty queue after a stall
	}{{"", true, 1, 63}, {"4", true, 4, 15}, {"64", true, 16, 0}, {"4", false, 16, 1}, {"", false, 16, 1}} {
		opts := []Option{{"ioengine", "test-batch"}, {"rw", "randread"}, {"bs", "4k"}, {"iodepth", "16"},
			{"iodepth_batch_submit", "0"}, {"size", "256k"}, {"thinktime", "10"}}
		if tc.blocks != "" {
			opts = append(opts, Option{"thinktime_blocks", tc.blocks})
		}
		jobs := mustJobs(t, opts...)
		jobs[0].ThinkIssue = tc.issue
		if jobs[0].ThinkTime != 10*time.Microsecond {
			t.Fatalf("thinktime=10: %v, want 10µs", jobs[0].ThinkTime)
		}
		rep, err := Run(context.Background(), Config{Jobs: jobs})
		if err != nil {
			t.Fatal(err)
		}
		// Each stall drains the queue: the Commits after the first fill
		// start from an empty queue once per stall.
		if e := lastBatchEngine; e.maxInflight != tc.most || rep.Groups[0].Jobs[0].Dir[DirRead].IOs != 64 || e.drained < tc.refills {
			t.Errorf("thinktime_blocks=%q issue=%v: most in flight %d (want %d), %d reads (want 64), %d refills from empty (want %d or more)",
				tc.blocks, tc.issue, e.maxInflight, tc.most, rep.Groups[0].Jobs[0].Dir[DirRead].IOs, e.drained, tc.refills)
		}
	}
	if j := mustJobs(t, Option{"startdelay", "2"}, Option{"thinktime", "3ms"}); j[0].StartDelay != 2*time.Second || j[0].ThinkTime != 3*time.Millisecond {
		t.Errorf("startdelay=2, thinktime=3ms: %v, %v", j[0].StartDelay, j[0].ThinkTime)
	}
}

// offloadedEngine is the null engine declared Offloaded.
type offloadedEngine struct{ nullEngine }

func (offloadedEngine) Offloaded() {}

func init() {
	RegisterEngine("test-offloaded", func(cfg *EngineConfig) (Engine, error) {
		return &offloadedEngine{nullEngine{done: make([]*IO, 0, cfg.IODepth)}}, nil
	})
}

// TestOffloadedCPUShare: the clones of an Offloaded engine's job report
// the bench process's CPU over the group in equal shares (their own
// threads' would miss the engine's goroutines); a job that pins CPUs
// keeps its thread's.
func TestOffloadedCPUShare(t *testing.T) {
	jobs := mustJobs(t, Option{"ioengine", "test-offloaded"}, Option{"rw", "randread"}, Option{"bs", "4k"},
		Option{"size", "1m"}, Option{"iodepth", "8"}, Option{"numjobs", "2"}, Option{"loops", "200"})
	rep, err := Run(context.Background(), Config{Jobs: jobs})
	if err != nil {
		t.Fatal(err)
	}
	g := rep.Groups[0]
	if g.ProcUsr+g.ProcSys == 0 {
		t.Skip("no process CPU time measured")
	}
	for _, r := range g.Jobs {
		if r.Usr != g.ProcUsr/2 || r.Sys != g.ProcSys/2 {
			t.Errorf("clone %d: usr %v sys %v, want half the process's %v and %v", r.Clone, r.Usr, r.Sys, g.ProcUsr, g.ProcSys)
		}
	}
}

// TestVerifyBacklog: with verify_backlog=8, every 8 writes issued the
// completed writes are read back and checked while the job goes on
// writing, and the verify phase reads only what is left: a block
// corrupted before its backlog read fails the job early; one corrupted
// after it is not read again (as fio, which drops it from its history).
func TestVerifyBacklog(t *testing.T) {
	defer func() { memEngineCorruptAfter = 0 }()
	for _, tc := range []struct {
		corruptAfter int
		fail         bool
	}{{0, false}, {4, true}, {20, false}} {
		memEngineCorruptAfter = tc.corruptAfter
		jobs := mustJobs(t, Option{"ioengine", "test-mem"}, Option{"rw", "write"}, Option{"bs", "4k"},
			Option{"size", "256k"}, Option{"verify", "crc32c"})
		jobs[0].VerifyBacklog = 8
		rep, err := Run(context.Background(), Config{Jobs: jobs})
		r := rep.Groups[0].Jobs[0]
		var ve *VerifyError
		switch {
		case tc.fail && (!errors.As(err, &ve) || ve.Offset != 0 || r.Dir[DirWrite].IOs >= 64):
			t.Errorf("block 0 corrupted after %d I/Os: %v after %d writes; want a verify error at 0 before the writes end",
				tc.corruptAfter, err, r.Dir[DirWrite].IOs)
		case !tc.fail && (err != nil || r.Dir[DirWrite].IOs != 64 || r.Dir[DirRead].IOs != 64):
			t.Errorf("corrupted after %d I/Os: %v, %d writes, %d reads; want 64 of each, each block read back once",
				tc.corruptAfter, err, r.Dir[DirWrite].IOs, r.Dir[DirRead].IOs)
		}
	}
}

// TestVerifyLostWrite: with loops=2 a verify job writes and verifies
// twice; a write the device acknowledged but lost in the second pass
// leaves the block the first wrote, intact and checksummed: as fio, the
// header's numberio (which write put it there) tells it is stale.
func TestVerifyLostWrite(t *testing.T) {
	defer func() { memEngineDropWrite = 0 }()
	opts := []Option{{"ioengine", "test-mem"}, {"rw", "write"}, {"bs", "4k"}, {"size", "256k"}, {"verify", "crc32c"}, {"loops", "2"}}
	// Nothing lost: each of the two loops writes, then verifies.
	rep, err := Run(context.Background(), Config{Jobs: mustJobs(t, opts...)})
	if r := rep.Groups[0].Jobs[0]; err != nil || r.Dir[DirWrite].IOs != 128 || r.Dir[DirRead].IOs != 128 {
		t.Fatalf("loops=2 with verify: %v, %d writes, %d reads; want 128 of each", err, r.Dir[DirWrite].IOs, r.Dir[DirRead].IOs)
	}
	memEngineDropWrite = 64 + 6 // the 6th write of the second pass
	_, err = Run(context.Background(), Config{Jobs: mustJobs(t, opts...)})
	var ve *VerifyError
	if !errors.As(err, &ve) || ve.Offset != 5*4096 || !strings.Contains(ve.Reason, "numberio 5, wanted 69") {
		t.Fatalf("lost write of block 5 in the second pass: %v, want a stale numberio at 20480", err)
	}
}
