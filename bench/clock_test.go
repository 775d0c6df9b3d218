package bench

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"
)

// clockEngine completes each I/O a scripted latency after its Queue, on
// a simulated clock (the worker's clock): it moves on only by what time
// must pass, as does every stall (stallSleep), so that a test of rate
// and thinktime schedules runs at once and sees the same times on any
// machine, however loaded.
type clockEngine struct {
	nullEngine
	t       int64                     // the simulated clock, ns
	lat     func(n int) time.Duration // latency of the nth I/O (0-based)
	pending []clockIO
	// issued is each I/O's Queue time (ns on the worker's clock), depth
	// what was in flight at its Commit, itself included.
	issued   []int64
	depth    []int
	staged   int
	inflight int
	// quiesced counts the stalls that found the queue drained.
	completed int
	// reads counts the worker's clock readings.
	reads int
}

type clockIO struct {
	io   *IO
	done int64
}

func init() {
	RegisterEngine("test-clock", func(cfg *EngineConfig) (Engine, error) {
		return &clockEngine{nullEngine: nullEngine{done: make([]*IO, 0, cfg.IODepth)}}, nil
	})
}

func (e *clockEngine) advance(d time.Duration) { e.t += int64(d) }

func (e *clockEngine) Queue(io *IO) error {
	io.Res = io.Len
	now := e.t
	e.pending = append(e.pending, clockIO{io, now + int64(e.lat(len(e.issued)))})
	e.issued = append(e.issued, now)
	e.staged++
	return nil
}

func (e *clockEngine) Commit() error {
	e.inflight += e.staged
	for range e.staged {
		e.depth = append(e.depth, e.inflight)
	}
	e.staged = 0
	return nil
}

// GetEvents waits (moves the clock on) for the min earliest to finish,
// then returns what has finished, earliest first, up to the room given.
func (e *clockEngine) GetEvents(min int, events []*IO) ([]*IO, error) {
	p := e.pending
	for i := 1; i < len(p); i++ { // insertion sort by finish time
		for k := i; k > 0 && p[k].done < p[k-1].done; k-- {
			p[k], p[k-1] = p[k-1], p[k]
		}
	}
	if min > 0 && min <= len(p) {
		if d := p[min-1].done - e.t; d > 0 {
			e.advance(time.Duration(d))
		}
	}
	now, n := e.t, 0
	for n < len(p) && p[n].done <= now && len(events) < cap(events) {
		events = append(events, p[n].io)
		n++
	}
	e.pending = p[:copy(p, p[n:])]
	e.inflight -= n
	e.completed += n
	return events, nil
}

// clockRun runs job on the test-clock engine with the I/O latencies lat
// gives, stalls moving the clock on and recorded, and returns the worker
// and its engine.
func clockRun(t *testing.T, lat func(n int) time.Duration, opts ...Option) (*worker, *clockEngine, []time.Duration) {
	t.Helper()
	jobs := mustJobs(t, append([]Option{{"ioengine", "test-clock"}}, opts...)...)
	w := &worker{job: jobs[0], thread: 1, stop: new(atomic.Bool)}
	if err := w.setup(""); err != nil {
		t.Fatal(err)
	}
	defer w.close()
	e := w.eng.(*clockEngine)
	e.lat = lat
	w.base, w.clock = time.Now(), func() int64 { e.reads++; return e.t }
	w.recording = true
	var stalls []time.Duration
	saved := stallSleep
	stallSleep = func(d time.Duration, _ func() bool) {
		// What fio's io_u_quiesce promises before a stall: nothing in
		// flight, nothing staged.
		if e.inflight != 0 || e.staged != 0 {
			t.Errorf("a stall of %v with %d in flight, %d staged", d, e.inflight, e.staged)
		}
		stalls = append(stalls, d)
		e.advance(d)
	}
	defer func() { stallSleep = saved }()
	if err := w.ioLoop(); err != nil {
		t.Fatal(err)
	}
	return w, e, stalls
}

// near reports whether the simulated times got (ns) are want (ms), each
// within a microsecond (the schedules' rounding).
func near(got []int64, want []float64) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if d := float64(got[i])/1e6 - want[i]; d < -0.001 || d > 0.001 {
			return false
		}
	}
	return true
}

func msList(ns []int64) string {
	s := ""
	for _, v := range ns {
		s += fmt.Sprintf(" %.1f", float64(v)/1e6)
	}
	return s
}

// TestRateDepthAsFio: a rate-limited job at iodepth>1 waits as fio's
// rate_ddir: when the next I/O is early it works out how early, drains
// the queue (io_u_quiesce), then sleeps that long, so the job runs
// behind its schedule by each drain and, once an I/O took longer than
// the rate's gap, issues the overdue ones back to back, deeper in the
// queue. fio's figures for rate_iops=2000 at iodepth=8 on a file
// (iodepth_level 1=91%, more at 2 and 4) come from these catch-ups; a
// sleep worked out after the drain keeps nearly every I/O at depth 1.
//
// Here rate_iops=10 (a gap of 100 ms), every I/O takes 20 ms but the
// fifth, 250 ms: fio's schedule issues at 0, 120, 220, 320, 420; the
// sixth is due at 500, 80 ms after the fifth went, so the job drains
// (to 670) and sleeps 80 ms: 750; the seventh (due 600) and eighth (700)
// are overdue and go at once, at depths 2 and 3; the ninth (due 800)
// waits for the drain (770) and 50 ms: 820.
func TestRateDepthAsFio(t *testing.T) {
	lat := func(n int) time.Duration {
		if n == 4 {
			return 250 * time.Millisecond
		}
		return 20 * time.Millisecond
	}
	w, e, stalls := clockRun(t, lat, Option{"rw", "read"}, Option{"bs", "4k"}, Option{"size", "48k"},
		Option{"iodepth", "8"}, Option{"rate_iops", "10"})
	want := []float64{0, 120, 220, 320, 420, 750, 750, 750, 820, 920, 1020, 1120}
	if !near(e.issued, want) {
		t.Errorf("issued at (ms)%s, want %v", msList(e.issued), want)
	}
	wantDepth := []int{1, 1, 1, 1, 1, 1, 2, 3, 1, 1, 1, 1}
	if fmt.Sprint(e.depth) != fmt.Sprint(wantDepth) {
		t.Errorf("depth at each commit %v, want %v", e.depth, wantDepth)
	}
	// The job ends with its last completion, not a wait for an I/O it
	// will not issue (fio's loop ends by its bytes first).
	if end := float64(w.recEnd) / 1e6; end < 1140 || end > 1141 {
		t.Errorf("the job ran %.1f ms, want 1140 (the last I/O's completion)", end)
	}
	if w.depthHist[0] != 10 || w.depthHist[1] != 2 || e.completed != 12 {
		t.Errorf("iodepth_level %v (want 10 at 1, 2 at 2-3), %d completed (want 12)", w.depthHist, e.completed)
	}
	// Each stall is how early the I/O was before the drain: 100 ms for
	// the second, 80 for the others but the ninth's 50.
	wantStalls := []float64{100, 80, 80, 80, 80, 50, 80, 80, 80}
	got := make([]int64, len(stalls))
	for i, d := range stalls {
		got[i] = int64(d)
	}
	if !near(got, wantStalls) {
		t.Errorf("stalls (ms)%s, want %v", msList(got), wantStalls)
	}
}

// TestThinkTimeIssueAsFio: with thinktime_blocks_type=issue the job
// stalls once thinktime_blocks I/Os have been issued since the last
// stall (fio's io_issues), the queue drained first (io_u_quiesce), for
// the whole thinktime: the I/Os go in bursts of thinktime_blocks at
// depths 1 to thinktime_blocks, a burst every latency plus thinktime
// (fio: iodepth_level 1=25%, 2=50%, 4=25% for thinktime_blocks=4 at any
// iodepth above). Here 10 ms I/Os and a 50 ms thinktime: 60 ms a burst.
func TestThinkTimeIssueAsFio(t *testing.T) {
	w, e, stalls := clockRun(t, func(int) time.Duration { return 10 * time.Millisecond },
		Option{"rw", "randread"}, Option{"bs", "4k"}, Option{"size", "128k"}, Option{"iodepth", "8"},
		Option{"thinktime", "50ms"}, Option{"thinktime_blocks", "4"}, Option{"thinktime_blocks_type", "issue"})
	var want []float64
	var wantDepth []int
	for b := range 8 {
		for k := range 4 {
			want = append(want, float64(60*b))
			wantDepth = append(wantDepth, k+1)
		}
	}
	if !near(e.issued, want) {
		t.Errorf("issued at (ms)%s, want %v", msList(e.issued), want)
	}
	if fmt.Sprint(e.depth) != fmt.Sprint(wantDepth) {
		t.Errorf("depth at each commit %v, want %v", e.depth, wantDepth)
	}
	if w.depthHist != [depthLevels]uint64{8, 16, 8} || e.completed != 32 {
		t.Errorf("iodepth_level %v (want 8, 16, 8), %d completed (want 32)", w.depthHist, e.completed)
	}
	// A stall after each burst, the last one's too (fio thinks after the
	// I/O that makes the count, whether more follow or not).
	if len(stalls) != 8 {
		t.Errorf("%d stalls, want 8", len(stalls))
	}
	for i, d := range stalls {
		if d < 49*time.Millisecond || d > 50*time.Millisecond {
			t.Errorf("stall %d: %v, want the whole thinktime, 50ms", i, d)
		}
	}
	if end := float64(w.recEnd) / 1e6; end < 480 || end > 481 {
		t.Errorf("the job ran %.1f ms, want 480", end)
	}
}

// TestThinkTimeIOTimeAsFio: thinktime_iotime stalls once it and the
// thinktime have passed since the last stall was decided (the job's
// start for the first), checked after each I/O and each reap as fio's
// handle_thinktime; thinktime_blocks' default does not count then, one
// given does, whichever comes first. Here 10 ms I/Os one at a time,
// thinktime 50 ms, thinktime_iotime 200 ms: the stalls are decided at
// 250 and 500 ms (the reaps there), 50 I/Os end at 600.
func TestThinkTimeIOTimeAsFio(t *testing.T) {
	lat := func(int) time.Duration { return 10 * time.Millisecond }
	opts := []Option{{"rw", "read"}, {"bs", "4k"}, {"size", "1m"}, {"iodepth", "1"}, {"number_ios", "50"},
		{"thinktime", "50ms"}, {"thinktime_iotime", "200ms"}}
	w, e, stalls := clockRun(t, lat, opts...)
	var want []float64
	for k := range 50 {
		switch {
		case k < 25:
			want = append(want, float64(10*k))
		case k < 45:
			want = append(want, float64(300+10*(k-25)))
		default:
			want = append(want, float64(550+10*(k-45)))
		}
	}
	if !near(e.issued, want) || len(stalls) != 2 {
		t.Errorf("issued at (ms)%s with %d stalls, want %v with 2", msList(e.issued), len(stalls), want)
	}
	if end := float64(w.recEnd) / 1e6; end < 600 || end > 601 {
		t.Errorf("the job ran %.1f ms, want 600", end)
	}
	// thinktime_blocks given: it counts too, here first (every 5 I/Os).
	_, e, stalls = clockRun(t, lat, append(opts, Option{"thinktime_blocks", "5"})...)
	if len(stalls) != 10 || !near(e.issued[5:6], []float64{100}) {
		t.Errorf("thinktime_blocks=5 with thinktime_iotime: %d stalls (want 10), the sixth I/O at%s ms (want 100: five completed at 50, 50 ms stall)", len(stalls), msList(e.issued[5:6]))
	}
}

// TestThinkTimeNotAfterLastAsFio: the completions of the drain after a
// job's last I/O do not stall it (fio reaps them after its loop, where
// no thinktime follows); those reaped while it still issues do. Four
// 10 ms I/Os, thinktime_blocks=4 (completed): at iodepth=8 all four go
// at once and the job ends at 10 ms; at iodepth=1 the fourth completes
// inside the loop (the queue is full), so the job stalls: 40 + 50 ms.
func TestThinkTimeNotAfterLastAsFio(t *testing.T) {
	for _, tc := range []struct {
		depth  string
		stalls int
		end    float64
	}{{"8", 0, 10}, {"1", 1, 90}} {
		w, _, stalls := clockRun(t, func(int) time.Duration { return 10 * time.Millisecond },
			Option{"rw", "read"}, Option{"bs", "4k"}, Option{"size", "16k"}, Option{"iodepth", tc.depth},
			Option{"thinktime", "50ms"}, Option{"thinktime_blocks", "4"})
		if end := float64(w.recEnd) / 1e6; len(stalls) != tc.stalls || end < tc.end || end > tc.end+1 {
			t.Errorf("iodepth=%s: %d stalls, the job ran %.1f ms; want %d, %.0f ms", tc.depth, len(stalls), end, tc.stalls, tc.end)
		}
	}
}

// TestGtodReduceReadsClockPerReap: with every latency off (gtod_reduce,
// or the three disable_ options) the worker reads its clock once per
// reap, as fio cuts its gettimeofday calls; with latencies on, at issue,
// submission and completion.
func TestGtodReduceReadsClockPerReap(t *testing.T) {
	lat := func(int) time.Duration { return 10 * time.Microsecond }
	job := []Option{{"rw", "randread"}, {"bs", "4k"}, {"size", "1m"}, {"iodepth", "1"}}
	_, e, _ := clockRun(t, lat, job...)
	if e.completed != 256 || e.reads < 3*256 {
		t.Fatalf("with latencies: %d I/Os, %d clock readings; want 256 and 3 per I/O", e.completed, e.reads)
	}
	for _, off := range [][]Option{
		{{"gtod_reduce", "1"}},
		{{"disable_lat", "1"}, {"disable_clat", "1"}, {"disable_slat", "1"}},
	} {
		w, e, _ := clockRun(t, lat, append(job, off...)...)
		if e.completed != 256 || e.reads > 256+8 {
			t.Errorf("%v: %d I/Os, %d clock readings; want 256 and one per reap", off, e.completed, e.reads)
		}
		if st := w.stats[DirRead]; st.IOs != 256 || st.Bytes != 1<<20 {
			t.Errorf("%v: %d I/Os, %d bytes counted; want 256, 1 MiB", off, st.IOs, st.Bytes)
		}
	}
	// One latency left on stamps the I/Os again.
	_, e, _ = clockRun(t, lat, append(job, Option{"disable_lat", "1"}, Option{"disable_slat", "1"})...)
	if e.reads < 2*256 {
		t.Errorf("clat on: %d clock readings, want at least 2 per I/O", e.reads)
	}
}
