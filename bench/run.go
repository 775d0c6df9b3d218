package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one invocation of the benchmark.
type Config struct {
	Jobs []*Job

	// Progress, when non-nil, receives a live status line once a second
	// (fio's ETA line); pass nil when the output is not a terminal.
	Progress io.Writer

	// Notes, when non-nil, receives fio's notes on how a job will run
	// (an iodepth capped by a synchronous engine), one line each.
	Notes io.Writer

	// TargetPID, when non-zero, is a process (the NVMe-oF target under
	// test) whose CPU time is measured over each group.
	TargetPID int
}

// JobResult is one job clone's outcome, or a group's sum with group_reporting.
type JobResult struct {
	Job      *Job
	Clone    int
	Clones   int // jobs summed in this result
	Filename string
	Dir      [numDirs]DirStats
	Runtime  time.Duration // recording time: after ramp_time, until the last completion

	Usr, Sys  time.Duration // CPU time of the job's thread
	DepthHist [depthLevels]uint64
	// SubmitHist and CompleteHist are fio's iodepth_submit and
	// iodepth_complete: calls that submitted, and reaps that returned,
	// 0, 1-4, 5-8, 9-16, 17-32, 33-64 and more I/Os.
	SubmitHist, CompleteHist [depthLevels]uint64
	// Minf, Majf and Ctx are the page faults and context switches of the
	// job's thread (fio's minf, majf, ctx); a job that does not own its
	// thread gets an equal share of the process's context switches.
	Minf, Majf, Ctx uint64
	Syncs           Histogram // fsync/fdatasync latency (fio's "sync")
	SyncIOs         uint64    // fsyncs/fdatasyncs done (Syncs has none with disable_clat)
	Err             error
	// TotalErr and FirstErr are the errors continue_on_error counted
	// (fio's total_err, first_error).
	TotalErr uint64
	FirstErr error
}

// GroupResult is one reporting group: its jobs ran concurrently.
type GroupResult struct {
	ID   int
	Jobs []*JobResult

	Elapsed          time.Duration
	ProcUsr, ProcSys time.Duration // whole bench process over the group
	ProcCtx          uint64
	TargetUsr        time.Duration // TargetPID over the group
	TargetSys        time.Duration
	TargetErr        error
	// Target: a target process was measured (Config.TargetPID); without
	// one, TargetUsr and TargetSys are zero and mean nothing.
	Target bool

	stopAll atomic.Bool // a job's exitall with exit_what=all: no later group runs
}

// Bytes moved by the group, both directions.
func (g *GroupResult) Bytes() uint64 {
	var b uint64
	for _, j := range g.Jobs {
		b += j.Dir[DirRead].Bytes + j.Dir[DirWrite].Bytes
	}
	return b
}

// Report is the outcome of Run.
type Report struct {
	Start  time.Time
	Groups []*GroupResult
	// Sweep is set when the jobs came from list-valued options: the text
	// report then ends with one table row per group.
	Sweep bool
	// diskUtil is fio's disk_util: the local disks under the jobs' files
	// over the run.
	diskUtil []fioDiskUtil
}

// Run executes the jobs, group after group; the jobs (and clones) of one
// group run concurrently. A failing job does not stop the others; the
// returned error joins every job's error, and the report is complete.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if len(cfg.Jobs) == 0 {
		return nil, errors.New("no jobs")
	}
	rep := &Report{Start: time.Now()}
	du := startDiskUtil(cfg.Jobs)
	var errs []error
	logs := &logFiles{}
	thread := 1 // fio's thread number of the group's first clone
	for start := 0; start < len(cfg.Jobs); {
		end := start + 1
		for end < len(cfg.Jobs) && cfg.Jobs[end].GroupID == cfg.Jobs[start].GroupID {
			end++
		}
		if len(cfg.Jobs[start].Swept) > 0 {
			rep.Sweep = true
		}
		g, gerrs := runGroup(ctx, cfg, cfg.Jobs[start:end], thread, logs)
		for _, j := range cfg.Jobs[start:end] {
			thread += j.NumJobs
		}
		rep.Groups = append(rep.Groups, g)
		errs = append(errs, gerrs...)
		start = end
		if ctx.Err() != nil || g.stopAll.Load() {
			break
		}
	}
	rep.diskUtil = du.stop()
	return rep, errors.Join(errs...)
}

func runGroup(ctx context.Context, cfg Config, jobs []*Job, thread int, logs *logFiles) (*GroupResult, []error) {
	g := &GroupResult{ID: jobs[0].GroupID}
	var stop atomic.Bool
	var workers []*worker
	var errs []error
	for _, j := range jobs {
		for c := range j.NumJobs {
			w := &worker{job: j, index: c, thread: thread, stop: &stop, logs: logs}
			thread++
			workers = append(workers, w)
		}
	}
	results := make([]*JobResult, len(workers))
	for i, w := range workers {
		results[i] = &JobResult{Job: w.job, Clone: w.index, Clones: 1, Filename: filename(w.job, w.index)}
	}

	// Open every engine first so that setup time (file layout, connects)
	// does not count, then start all clones together.
	setupErr := make([]error, len(workers))
	for i, w := range workers {
		if err := w.setup(results[i].Filename); err != nil {
			setupErr[i] = err
		} else if cfg.Notes != nil && w.index == 0 {
			if a := w.job.EngineAlias; a != "" {
				fmt.Fprintf(cfg.Notes, "note: %s: ioengine=%s runs on flashpath's %s engine (same queueing semantics)\n",
					w.job.Name, a, w.job.IOEngine)
			}
			if w.depth < w.job.IODepth {
				fmt.Fprintf(cfg.Notes, "note: %s: iodepth=%d with the synchronous engine %s: queue depth capped at %d\n",
					w.job.Name, w.job.IODepth, w.job.IOEngine, w.depth)
			}
		}
	}

	tu0, ts0, terr := time.Duration(0), time.Duration(0), error(nil)
	if cfg.TargetPID != 0 {
		tu0, ts0, terr = pidCPU(cfg.TargetPID)
	}
	pu0, ps0, pc0 := processCPU()
	t0 := time.Now()

	// wait_for: a job's clones start once every started clone of the
	// job it names (defined before it, in its group) is done.
	finished := map[*Job]*sync.WaitGroup{}
	for i, w := range workers {
		if setupErr[i] == nil {
			if finished[w.job] == nil {
				finished[w.job] = &sync.WaitGroup{}
			}
			finished[w.job].Add(1)
		}
	}
	waitee := func(j *Job) (*sync.WaitGroup, error) {
		if j.WaitFor == "" {
			return nil, nil
		}
		for _, o := range jobs {
			if o == j {
				break
			}
			if o.Name == j.WaitFor {
				if finished[o] == nil {
					return &sync.WaitGroup{}, nil // none of its clones started
				}
				return finished[o], nil
			}
		}
		return nil, fmt.Errorf("option wait_for: no job %q before %s in its group (fio waits only for a job defined earlier)", j.WaitFor, j.Name)
	}
	var wg sync.WaitGroup
	runErr := make([]error, len(workers))
	for i, w := range workers {
		if setupErr[i] != nil {
			continue
		}
		before, err := waitee(w.job)
		if err != nil {
			setupErr[i] = err
			finished[w.job].Done()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer finished[w.job].Done()
			if before != nil {
				before.Wait()
			}
			runErr[i] = w.run()
			// exitall, and exitall_on_error on a failure, end the group's
			// other jobs; exit_what=all the later groups too.
			if j := w.job; j.ExitAll || (j.ExitAllOnError && runErr[i] != nil) {
				stop.Store(true)
				if j.ExitWhat == "all" {
					g.stopAll.Store(true)
				}
			}
		}()
	}
	done := make(chan struct{})
	var pwg sync.WaitGroup
	pwg.Add(1)
	go func() {
		defer pwg.Done()
		select {
		case <-ctx.Done():
			stop.Store(true)
		case <-done:
		}
	}()
	if cfg.Progress != nil {
		pwg.Add(1)
		go func() {
			defer pwg.Done()
			progress(cfg.Progress, workers, t0, done)
		}()
	}
	wg.Wait()
	close(done)
	pwg.Wait()

	g.Elapsed = time.Since(t0)
	pu1, ps1, pc1 := processCPU()
	g.ProcUsr, g.ProcSys, g.ProcCtx = pu1-pu0, ps1-ps0, pc1-pc0
	for _, w := range workers {
		if w.shared { // the process's CPU, in equal shares
			w.usr, w.sys = g.ProcUsr/time.Duration(len(workers)), g.ProcSys/time.Duration(len(workers))
			w.ctx = g.ProcCtx / uint64(len(workers))
		}
	}
	if cfg.TargetPID != 0 {
		tu1, ts1, err := pidCPU(cfg.TargetPID)
		g.Target, g.TargetErr = true, errors.Join(terr, err)
		if g.TargetErr == nil {
			// A failed read leaves no difference to report (reports
			// then say the target's CPU time is unavailable).
			g.TargetUsr, g.TargetSys = tu1-tu0, ts1-ts0
		}
	}

	for i, w := range workers {
		r := results[i]
		r.Dir = w.stats
		r.Runtime = time.Duration(w.recEnd - w.recStart)
		r.Usr, r.Sys = w.usr, w.sys
		r.DepthHist = w.depthHist
		r.SubmitHist, r.CompleteHist = w.submitHist, w.completeHist
		r.Minf, r.Majf, r.Ctx = w.minf, w.majf, w.ctx
		r.Syncs, r.SyncIOs = w.syncs, w.syncIOs
		r.TotalErr, r.FirstErr = w.totalErr, w.firstErr
		r.Err = errors.Join(setupErr[i], runErr[i])
		if cerr := w.close(); cerr != nil {
			r.Err = errors.Join(r.Err, fmt.Errorf("close: %w", cerr))
		}
		if w.job.Unlink {
			if uerr := unlinkFiles(w.job, w.index); uerr != nil {
				r.Err = errors.Join(r.Err, uerr)
			}
		}
		if r.Err != nil {
			errs = append(errs, fmt.Errorf("job %s (%d): %w", w.job.Name, w.index, r.Err))
		}
		g.Jobs = append(g.Jobs, r)
	}
	return g, errs
}

// filename resolves the job's target: filename=, or fio's generated name
// "jobname.clone.0" in directory= (the current directory by default).
func filename(j *Job, clone int) string {
	if j.Filename != "" {
		return j.Filename
	}
	dir := j.Directory
	if dir == "" {
		dir = "."
	}
	return filepath.Join(dir, j.Name+"."+strconv.Itoa(clone)+".0")
}

// filenames are the clone's nrfiles files: those of filename=a:b (every
// clone shares them, as in fio), or JOB.CLONE.N in directory= (nil with
// one file).
func filenames(j *Job, clone int) []string {
	if len(j.Filenames) > 1 {
		return j.Filenames
	}
	if j.NrFiles <= 1 {
		return nil
	}
	dir := j.Directory
	if dir == "" {
		dir = "."
	}
	out := make([]string, j.NrFiles)
	for i := range out {
		out[i] = filepath.Join(dir, j.Name+"."+strconv.Itoa(clone)+"."+strconv.Itoa(i))
	}
	return out
}

// unlinkFiles is fio's unlink=1: the clone's regular files are removed
// once it is done (never a device; one already gone is not an error, as
// clones may share a file).
func unlinkFiles(j *Job, clone int) error {
	names := filenames(j, clone)
	if names == nil {
		names = []string{filename(j, clone)}
	}
	var errs []error
	for _, n := range names {
		if st, err := os.Lstat(n); err != nil || !st.Mode().IsRegular() {
			continue
		}
		if err := os.Remove(n); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("option unlink: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Grouped sums the jobs of g into one result, as fio's group_reporting.
func (g *GroupResult) Grouped() *JobResult {
	if len(g.Jobs) == 0 {
		return &JobResult{}
	}
	first := g.Jobs[0]
	out := &JobResult{Job: first.Job, Filename: first.Filename}
	for _, r := range g.Jobs {
		out.Clones += r.Clones
		for d := range numDirs {
			out.Dir[d].merge(&r.Dir[d])
		}
		out.Runtime = max(out.Runtime, r.Runtime)
		out.Usr += r.Usr
		out.Sys += r.Sys
		for i := range r.DepthHist {
			out.DepthHist[i] += r.DepthHist[i]
			out.SubmitHist[i] += r.SubmitHist[i]
			out.CompleteHist[i] += r.CompleteHist[i]
		}
		out.Minf += r.Minf
		out.Majf += r.Majf
		out.Ctx += r.Ctx
		out.Syncs.Merge(&r.Syncs)
		out.SyncIOs += r.SyncIOs
		out.Err = errors.Join(out.Err, r.Err)
		out.TotalErr += r.TotalErr
		if out.FirstErr == nil {
			out.FirstErr = r.FirstErr
		}
	}
	return out
}

func progress(w io.Writer, workers []*worker, t0 time.Time, done <-chan struct{}) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastIOs, lastBytes [numDirs]uint64
	last := t0
	var planned time.Duration
	for _, wk := range workers {
		planned = max(planned, wk.job.RampTime+wk.job.Runtime)
	}
	for {
		select {
		case <-done:
			fmt.Fprint(w, "\r\033[K")
			return
		case now := <-tick.C:
			var ios, bytes [numDirs]uint64
			for _, wk := range workers {
				for d := range numDirs {
					ios[d] += wk.live[d].ios.Load()
					bytes[d] += wk.live[d].bytes.Load()
				}
			}
			secs := now.Sub(last).Seconds()
			var line string
			elapsed := now.Sub(t0)
			pct, eta := "", ""
			if planned > 0 {
				pct = fmt.Sprintf("[%.1f%%]", min(100, 100*elapsed.Seconds()/planned.Seconds()))
				rem := max(planned-elapsed, 0).Round(time.Second)
				eta = fmt.Sprintf("[eta %02dm:%02ds]", int(rem.Minutes()), int(rem.Seconds())%60)
			}
			bw := func(d Direction) string {
				return formatBytes(float64(bytes[d]-lastBytes[d])/secs) + "/s"
			}
			iops := func(d Direction) string {
				return formatCount(float64(ios[d]-lastIOs[d]) / secs)
			}
			line = fmt.Sprintf("Jobs: %d: %s[r=%s,w=%s][r=%s,w=%s IOPS]%s",
				len(workers), pct, bw(DirRead), bw(DirWrite), iops(DirRead), iops(DirWrite), eta)
			fmt.Fprintf(w, "\r\033[K%s", line)
			lastIOs, lastBytes, last = ios, bytes, now
		}
	}
}
