package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

// Version is reported as "fio version" in JSON, prefixed so that tools
// can tell flashpath's output from fio's.
var Version = "flashpath-bench-1"

// ---- JSON, with fio's field names and order -------------------------------

// The JSON report is fio 3's (stat.c show_thread_status_json and
// __show_run_stats), key for key and in fio's order, printed by fio's
// printer (fiojson.go); flashpath's additions sit under "flashpath" keys,
// which fio's tools ignore.

type fioDoc struct {
	FioVersion    string        `json:"fio version"`
	Timestamp     int64         `json:"timestamp"`
	TimestampMs   int64         `json:"timestamp_ms"`
	Time          string        `json:"time"`
	GlobalOptions orderedKV     `json:"global options,omitempty"` // fio omits it when empty
	Jobs          []fioJob      `json:"jobs"`
	DiskUtil      []fioDiskUtil `json:"disk_util,omitempty"` // local block devices only, as fio
	Flashpath     fpRunSummary  `json:"flashpath"`
}

type fioJob struct {
	JobName    string    `json:"jobname"`
	GroupID    int       `json:"groupid"`
	Error      int       `json:"error"`
	Eta        int       `json:"eta"`
	Elapsed    int64     `json:"elapsed"`
	JobOptions orderedKV `json:"job options,omitempty"` // fio omits it when empty
	// unified_rw_reporting=mixed: "mixed" alone, where "read" would be
	// (a fio tag: encoding/json refuses two fields with one name).
	MixedOnly         *fioDir     `json:"-" fio:"mixed,omitempty"`
	Read              *fioDir     `json:"read,omitempty"`
	Write             *fioDir     `json:"write,omitempty"`
	Trim              *fioDir     `json:"trim,omitempty"`
	Sync              fioSync     `json:"sync"`
	Mixed             *fioDir     `json:"mixed,omitempty"` // unified_rw_reporting=both: after sync
	JobRuntime        int64       `json:"job_runtime"`     // ms, summed over the clones
	UsrCPU            float64     `json:"usr_cpu"`
	SysCPU            float64     `json:"sys_cpu"`
	Ctx               uint64      `json:"ctx"`
	Majf              uint64      `json:"majf"`
	Minf              uint64      `json:"minf"`
	IODepthLevel      orderedKV   `json:"iodepth_level"`
	IODepthSubmit     orderedKV   `json:"iodepth_submit"`
	IODepthComplete   orderedKV   `json:"iodepth_complete"`
	LatencyNs         orderedKV   `json:"latency_ns"`
	LatencyUs         orderedKV   `json:"latency_us"`
	LatencyMs         orderedKV   `json:"latency_ms"`
	TotalErr          *uint64     `json:"total_err,omitempty"`   // continue_on_error set
	FirstError        *int        `json:"first_error,omitempty"` // continue_on_error set
	LatencyDepth      int         `json:"latency_depth"`
	LatencyTarget     int         `json:"latency_target"`
	LatencyPercentile float64     `json:"latency_percentile"`
	LatencyWindow     int         `json:"latency_window"`
	Desc              string      `json:"desc,omitempty"`
	Flashpath         fpJobFields `json:"flashpath"`

	// What the text and terse reports need besides (not printed).
	stats *fioStats
}

type fioDir struct {
	IOBytes     uint64  `json:"io_bytes"`
	IOKBytes    uint64  `json:"io_kbytes"`
	BWBytes     uint64  `json:"bw_bytes"`
	BW          uint64  `json:"bw"` // KiB/s
	IOPS        float64 `json:"iops"`
	Runtime     int64   `json:"runtime"` // ms
	TotalIOs    uint64  `json:"total_ios"`
	ShortIOs    uint64  `json:"short_ios"`
	DropIOs     uint64  `json:"drop_ios"`
	SlatNs      fioLat  `json:"slat_ns"`
	ClatNs      fioLat  `json:"clat_ns"`
	LatNs       fioLat  `json:"lat_ns"`
	BWMin       uint64  `json:"bw_min"`
	BWMax       uint64  `json:"bw_max"`
	BWAgg       float64 `json:"bw_agg"`
	BWMean      float64 `json:"bw_mean"`
	BWDev       float64 `json:"bw_dev"`
	BWSamples   int     `json:"bw_samples"`
	IOPSMin     uint64  `json:"iops_min"`
	IOPSMax     uint64  `json:"iops_max"`
	IOPSMean    float64 `json:"iops_mean"`
	IOPSStddev  float64 `json:"iops_stddev"`
	IOPSSamples int     `json:"iops_samples"`
}

type fioLat struct {
	Min    uint64  `json:"min"`
	Max    uint64  `json:"max"`
	Mean   float64 `json:"mean"`
	Stddev float64 `json:"stddev"`
	N      uint64  `json:"N"`
	// Percentile is there when percentiles are reported for this latency
	// and it has samples (fio's add_ddir_lat_json).
	Percentile *orderedKV `json:"percentile,omitempty"`
	// Bins (json+ only, with Percentile): count per histogram bucket,
	// keyed by the bucket's middle value in ns, nonzero buckets only.
	Bins *orderedKV `json:"bins,omitempty"`
}

type fioSync struct {
	TotalIOs uint64 `json:"total_ios"`
	LatNs    fioLat `json:"lat_ns"`
}

// fioDiskUtil is one entry of fio's disk_util: the device's
// /sys/block/DEV/stat deltas over the run, util the share of the run the
// device was busy (io_ticks). Devices stacked on others (dm, md) add the
// aggr_ averages of their slaves, as fio.
type fioDiskUtil struct {
	Name        string  `json:"name"`
	ReadIOs     uint64  `json:"read_ios"`
	WriteIOs    uint64  `json:"write_ios"`
	ReadMerges  uint64  `json:"read_merges"`
	WriteMerges uint64  `json:"write_merges"`
	ReadTicks   uint64  `json:"read_ticks"`
	WriteTicks  uint64  `json:"write_ticks"`
	InQueue     uint64  `json:"in_queue"`
	Util        float64 `json:"util"`
	*fioDiskAggr
}

type fioDiskAggr struct {
	AggrReadIOs     uint64  `json:"aggr_read_ios"`
	AggrWriteIOs    uint64  `json:"aggr_write_ios"`
	AggrReadMerges  uint64  `json:"aggr_read_merges"`
	AggrWriteMerges uint64  `json:"aggr_write_merge"` // sic, fio's key
	AggrReadTicks   uint64  `json:"aggr_read_ticks"`
	AggrWriteTicks  uint64  `json:"aggr_write_ticks"`
	AggrInQueue     uint64  `json:"aggr_in_queue"`
	AggrUtil        float64 `json:"aggr_util"`
}

// fpJobFields are flashpath's additions; fio tools ignore unknown keys.
type fpJobFields struct {
	Engine        string  `json:"engine"`
	Filename      string  `json:"filename"`
	Jobs          int     `json:"jobs"`
	CPUSecPerGB   float64 `json:"cpu_s_per_gb"`
	ErrorMessage  string  `json:"error_message,omitempty"`
	ProcUsrCPU    float64 `json:"process_usr_cpu"`
	ProcSysCPU    float64 `json:"process_sys_cpu"`
	ProcCPUPerGB  float64 `json:"process_cpu_s_per_gb"`
	TargetUsrCPU  float64 `json:"target_usr_cpu,omitempty"`
	TargetSysCPU  float64 `json:"target_sys_cpu,omitempty"`
	TargetCPUPerG float64 `json:"target_cpu_s_per_gb,omitempty"`
}

type fpRunSummary struct {
	Engines []string `json:"engines"`
}

// orderedKV is a JSON object that keeps insertion order (fio prints
// percentiles and depth buckets in order).
type orderedKV []kv

type kv struct {
	k string
	v any
}

// MarshalJSON keeps the order for encoding/json too.
func (o orderedKV) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, e := range o {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(e.k)
		v, err := json.Marshal(e.v)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// fioStats is what one reported job (or group, with group_reporting)
// is, in fio's terms (struct thread_stat): the output formats are views
// of it.
type fioStats struct {
	jr      *JobResult
	g       *GroupResult
	members int // clones summed (fio's ts->members)
	// runtime is per direction, ms: the longest over the clones (fio's
	// ts->runtime[ddir]); 0 where the direction moved no bytes.
	runtime [numDirs]int64
	// totalRuntime is fio's total_run_time: the clones' runtimes summed, ms.
	totalRuntime int64
	usr, sys     time.Duration
	ctx          uint64
	c            fioCounters
	// lat is every read and write completion latency, for the latency_*
	// buckets (fio's io_u_mark_latency counts each read's and write's
	// clat, none with disable_clat).
	lat Histogram
}

// fioCounters are fio's per-job counters beside the latencies: depths of
// submissions and completions (io_u_submit, io_u_complete, in
// JobResult's SubmitHist and CompleteHist), page faults and context
// switches of the job's thread (getrusage's ru_minflt, ru_majflt,
// ru_nvcsw + ru_nivcsw).
type fioCounters struct {
	Submit, Complete [depthLevels]uint64
	Minf, Majf, Ctx  uint64
}

// jobCounters returns the counters the runtime kept for jr.
func jobCounters(jr *JobResult) fioCounters {
	return fioCounters{Submit: jr.SubmitHist, Complete: jr.CompleteHist, Minf: jr.Minf, Majf: jr.Majf, Ctx: jr.Ctx}
}

func newFioStats(g *GroupResult, jr *JobResult, members []*JobResult) *fioStats {
	s := &fioStats{jr: jr, g: g, members: jr.Clones, usr: jr.Usr, sys: jr.Sys}
	for _, m := range members {
		s.totalRuntime += m.Runtime.Milliseconds()
		// fio's update_runtime: each direction's time in microseconds
		// rounded up to milliseconds, for a direction that moved bytes.
		for d := range numDirs {
			if m.Dir[d].Bytes > 0 {
				s.runtime[d] = max(s.runtime[d], (m.Dir[d].Runtime.Microseconds()+999)/1000)
			}
		}
		c := jobCounters(m)
		for i := range depthLevels {
			s.c.Submit[i] += c.Submit[i]
			s.c.Complete[i] += c.Complete[i]
		}
		s.c.Minf += c.Minf
		s.c.Majf += c.Majf
		s.ctx += c.Ctx
	}
	s.lat.Merge(&jr.Dir[DirRead].Clat)
	s.lat.Merge(&jr.Dir[DirWrite].Clat)
	return s
}

// cpu is usr_cpu and sys_cpu: CPU time over total_run_time, in percent.
func (s *fioStats) cpu() (usr, sys float64) {
	if s.totalRuntime == 0 {
		return 0, 0
	}
	rt := float64(s.totalRuntime)
	return float64(s.usr.Milliseconds()) * 100 / rt, float64(s.sys.Milliseconds()) * 100 / rt
}

// latStat is fio's io_stat of a histogram (min, max, mean, stddev, N).
func latStat(h *Histogram) fioLat {
	return fioLat{Min: h.Min(), Max: h.Max(), Mean: h.Mean(), Stddev: h.Stddev(), N: h.Count()}
}

// latJSON is fio's latency object, with the percentiles pcts (none: nil)
// when there are samples, and with json+ their buckets.
func latJSON(h *Histogram, pcts []float64, plus bool) fioLat {
	l := latStat(h)
	if pcts == nil || h.Count() == 0 {
		return l
	}
	p := orderedKV{}
	for _, q := range sortedPercentiles(pcts) {
		p = append(p, kv{strconv.FormatFloat(q, 'f', 6, 64), h.Percentile(q)})
	}
	l.Percentile = &p
	if plus {
		bins := orderedKV{}
		for i, c := range h.counts {
			if c != 0 {
				lo, width := histRange(i)
				bins = append(bins, kv{strconv.FormatUint(lo+width/2, 10), c})
			}
		}
		l.Bins = &bins
	}
	return l
}

// sortedPercentiles is the list as fio reports it: sorted (fio's
// calc_clat_percentiles sorts percentile_list), at most 20.
func sortedPercentiles(p []float64) []float64 {
	s := slices.Clone(p)
	slices.Sort(s)
	if len(s) > tersePercentiles {
		s = s[:tersePercentiles]
	}
	return s
}

func round6(f float64) float64 { return math.Round(f*1e6) / 1e6 }

// percentiles is the job's percentile list for a latency that on says
// is reported (nil otherwise).
func (j *Job) percentiles(on bool) []float64 {
	switch {
	case !on:
		return nil
	case j.Percentiles != nil:
		return j.Percentiles
	}
	return DefaultPercentiles
}

// mixed is the sum of the result's directions (unified_rw_reporting).
func (jr *JobResult) mixed() DirStats {
	var m DirStats
	for d := range numDirs {
		m.merge(&jr.Dir[d])
	}
	return m
}

// dirJSON is fio's add_ddir_status_json for one direction; runtime is
// its ms (0: idle) and groupAgg the group's aggregate bandwidth in the
// direction, bytes/s (fio's rs->agg).
func dirJSON(d *DirStats, j *Job, runtime int64, groupAgg uint64, plus bool) *fioDir {
	out := fioDir{IOBytes: d.Bytes, IOKBytes: d.Bytes >> 10, Runtime: runtime, TotalIOs: d.IOs, ShortIOs: d.Short}
	if runtime > 0 {
		out.BWBytes = 1000 * d.Bytes / uint64(runtime)
		out.BW = out.BWBytes / 1024
		out.IOPS = 1000 * float64(d.IOs) / float64(runtime)
	}
	out.SlatNs = latJSON(&d.slat, j.percentiles(j.SlatPct), plus)
	out.ClatNs = latJSON(&d.Clat, j.percentiles(j.ClatPct), plus)
	out.LatNs = latJSON(&d.Lat, j.percentiles(j.LatPct), plus)
	if mn, mx, mean, dev := sampleStats(d.BWSamples); len(d.BWSamples) > 0 {
		out.BWMin, out.BWMax, out.BWMean, out.BWDev, out.BWSamples = uint64(mn), uint64(mx), mean, dev, len(d.BWSamples)
		out.BWAgg = aggPercent(groupAgg, mean)
	}
	if mn, mx, mean, dev := sampleStats(d.IOPSSamples); len(d.IOPSSamples) > 0 {
		out.IOPSMin, out.IOPSMax, out.IOPSMean, out.IOPSStddev, out.IOPSSamples = uint64(mn), uint64(mx), mean, dev, len(d.IOPSSamples)
	}
	return &out
}

// aggPercent is fio's convert_agg_kbytes_percent: the mean bandwidth
// (KiB/s) as a share of the group's aggregate (bytes/s), at most 100.
func aggPercent(groupAgg uint64, meanKiB float64) float64 {
	if groupAgg <= 1024 {
		return 100
	}
	return min(100, meanKiB*100/(float64(groupAgg)/1024))
}

func sampleStats(s []float64) (mn, mx, mean, dev float64) {
	if len(s) == 0 {
		return
	}
	mn, mx = s[0], s[0]
	for _, v := range s {
		mn, mx = min(mn, v), max(mx, v)
		mean += v
	}
	mean /= float64(len(s))
	if len(s) > 1 {
		for _, v := range s {
			dev += (v - mean) * (v - mean)
		}
		dev = math.Sqrt(dev / float64(len(s)-1))
	}
	return
}

func errno(err error) int {
	if err == nil {
		return 0
	}
	var ve *VerifyError
	if errors.As(err, &ve) {
		return int(syscall.EILSEQ) // what fio reports for verify failures
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		return int(en)
	}
	return int(syscall.EIO)
}

func cpuPerGB(cpu time.Duration, bytes uint64) float64 {
	if bytes == 0 {
		return 0
	}
	return round6(cpu.Seconds() / (float64(bytes) / 1e9))
}

func pct(part, whole time.Duration) float64 {
	if whole <= 0 {
		return 0
	}
	return round6(100 * part.Seconds() / whole.Seconds())
}

// results returns what the report prints: per job, or per group with
// group_reporting, each with the job results it sums.
func (g *GroupResult) results() (out []*JobResult, members [][]*JobResult) {
	if len(g.Jobs) > 0 && g.Jobs[0].Job.GroupReport {
		return []*JobResult{g.Grouped()}, [][]*JobResult{g.Jobs}
	}
	for _, jr := range g.Jobs {
		out = append(out, jr)
		members = append(members, []*JobResult{jr})
	}
	return out, members
}

// fioGroup is fio's group_run_stats: per direction the group's bytes, its
// slowest and fastest job's runtime and bandwidth, and the aggregate
// bandwidth (bytes over the longest runtime), bytes/s; with
// unified_rw_reporting=mixed all of it in the first direction.
type fioGroup struct {
	id             int
	unified        UnifiedMode
	kbBase         int
	unitBase       int
	sigFigs        int // significant_figures of the normal report's group lines
	minRun, maxRun [numDirs]int64
	minBW, maxBW   [numDirs]uint64
	ioBytes        [numDirs]uint64
	agg            [numDirs]uint64
}

func newFioGroup(g *GroupResult, stats []*fioStats) *fioGroup {
	rs := &fioGroup{id: g.ID, kbBase: 1024, sigFigs: 4}
	for i := range rs.minBW {
		rs.minBW[i] = math.MaxUint64
	}
	for _, s := range stats {
		j := s.jr.Job
		rs.unified, rs.kbBase, rs.unitBase, rs.sigFigs = j.Unified, j.KBBase, j.UnitBase, j.sigFigs()
		runtime := s.runtime
		var bytes [numDirs]uint64
		for d := range numDirs {
			bytes[d] = s.jr.Dir[d].Bytes
		}
		if j.Unified == UnifiedMixed {
			// fio sums the directions into the first before the group's
			// statistics: one job's mixed bandwidth, not each direction's.
			for d := 1; d < int(numDirs); d++ {
				runtime[0], runtime[d] = max(runtime[0], runtime[d]), 0
				bytes[0], bytes[d] = bytes[0]+bytes[d], 0
			}
		}
		for d := range numDirs {
			rt := runtime[d]
			if rt == 0 {
				continue
			}
			if rs.minRun[d] == 0 || rt < rs.minRun[d] {
				rs.minRun[d] = rt
			}
			rs.maxRun[d] = max(rs.maxRun[d], rt)
			bw := bytes[d] * 1000 / uint64(rt)
			rs.minBW[d] = min(rs.minBW[d], bw)
			rs.maxBW[d] = max(rs.maxBW[d], bw)
			rs.ioBytes[d] += bytes[d]
		}
	}
	for d := range numDirs {
		if rs.maxRun[d] > 0 {
			rs.agg[d] = rs.ioBytes[d] * 1000 / uint64(rs.maxRun[d])
		}
	}
	if rs.kbBase == 0 {
		rs.kbBase = 1024
	}
	return rs
}

// fioRun is the report in fio's terms: the groups, each job's (or
// group's) statistics and their JSON, in fio's order.
type fioRun struct {
	groups []*fioGroup
	jobs   []fioJob // with .stats; groups[...] by job's group index
	group  []int    // index in groups of each job
	disks  []fioDiskUtil
}

func (r *Report) fio(plus bool) *fioRun {
	out := &fioRun{disks: diskUtilJSON(r)}
	// fio's elapsed: the run's seconds, rounded up, the same for every
	// job (eta.c: (mtime_since_genesis() + 999) / 1000; fio's clock
	// starts with the process, so it is at least 1).
	var run time.Duration
	for _, g := range r.Groups {
		run += g.Elapsed
	}
	elapsed := max(1, (run.Microseconds()+999_999)/1_000_000)
	for _, g := range r.Groups {
		results, members := g.results()
		var stats []*fioStats
		for i, jr := range results {
			stats = append(stats, newFioStats(g, jr, members[i]))
		}
		rs := newFioGroup(g, stats)
		out.groups = append(out.groups, rs)
		for _, s := range stats {
			j := jobJSON(s, rs, plus)
			j.Elapsed = elapsed
			out.jobs = append(out.jobs, j)
			out.group = append(out.group, len(out.groups)-1)
		}
	}
	return out
}

func (r *Report) jsonDoc(plus bool) fioDoc {
	run := r.fio(plus)
	// fio stamps the report when the run has ended.
	end := r.Start
	for _, g := range r.Groups {
		end = end.Add(g.Elapsed)
	}
	return fioDoc{
		FioVersion:    Version,
		Timestamp:     end.Unix(),
		TimestampMs:   end.UnixMilli(),
		Time:          end.Format(time.ANSIC),
		GlobalOptions: globalOptions(r),
		Jobs:          run.jobs,
		DiskUtil:      run.disks,
		Flashpath:     fpRunSummary{Engines: EngineNames()},
	}
}

// diskUtilJSON is fio's disk_util for the run: what the runtime's
// diskUtil sampler (startDiskUtil before the first group, stop after the
// last) measured. The runtime does not run it yet, so there is none, as
// in fio's output for a run on no local disk.
func diskUtilJSON(r *Report) []fioDiskUtil { return r.diskUtil }

// globalOptions is fio's "global options": the options of the command
// line beneath job files and of the [global] sections, as the last job
// recorded them (it has every [global] section above it; with several
// job files fio too prints the last file's). nil, which fio omits, when
// there are none.
func globalOptions(r *Report) orderedKV {
	var last *Job
	for _, g := range r.Groups {
		for _, jr := range g.Jobs {
			last = jr.Job
		}
	}
	var out orderedKV
	if last != nil {
		for _, o := range last.GlobalOptions {
			out = append(out, kv{o[0], o[1]})
		}
	}
	return out
}

// depthDist is fio's stat_calc_dist: each bucket's share of total in
// percent, at least 0.1 for a bucket that is not empty.
func depthDist(m [depthLevels]uint64) [depthLevels]float64 {
	var total uint64
	for _, c := range m {
		total += c
	}
	var out [depthLevels]float64
	if total == 0 {
		return out
	}
	for i, c := range m {
		out[i] = 100 * float64(c) / float64(total)
		if out[i] < 0.1 && c > 0 {
			out[i] = 0.1
		}
	}
	return out
}

var (
	depthKeys    = []string{"1", "2", "4", "8", "16", "32", ">=64"}
	submitKeys   = []string{"0", "4", "8", "16", "32", "64", ">=64"}
	latNKeys     = []string{"2", "4", "10", "20", "50", "100", "250", "500", "750", "1000"}
	latMKeys     = []string{"2", "4", "10", "20", "50", "100", "250", "500", "750", "1000", "2000", ">=2000"}
	latBoundsN   = []uint64{2, 4, 10, 20, 50, 100, 250, 500, 750, 1000}
	latBoundsMMs = []uint64{2, 4, 10, 20, 50, 100, 250, 500, 750, 1000, 2000}
)

func distKV(keys []string, v [depthLevels]float64) orderedKV {
	out := make(orderedKV, len(keys))
	for i, k := range keys {
		out[i] = kv{k, v[i]}
	}
	return out
}

func floatKV(keys []string, v []float64) orderedKV {
	out := make(orderedKV, len(keys))
	for i, k := range keys {
		out[i] = kv{k, v[i]}
	}
	return out
}

func jobJSON(s *fioStats, rs *fioGroup, plus bool) fioJob {
	jr, g := s.jr, s.g
	j := jr.Job
	var opts orderedKV
	for _, o := range j.Options {
		opts = append(opts, kv{o[0], o[1]})
	}
	out := fioJob{
		JobName:           j.Name,
		GroupID:           j.GroupID,
		Error:             errno(jr.Err),
		Eta:               math.MaxInt32, // fio's eta once every job is done
		JobOptions:        opts,
		Sync:              fioSync{LatNs: latJSON(&jr.Syncs, j.percentiles(j.ClatPct || j.LatPct), plus), TotalIOs: jr.SyncIOs},
		JobRuntime:        s.totalRuntime,
		Ctx:               s.ctx,
		Majf:              s.c.Majf,
		Minf:              s.c.Minf,
		IODepthLevel:      distKV(depthKeys, depthDist(jr.DepthHist)),
		IODepthSubmit:     distKV(submitKeys, depthDist(s.c.Submit)),
		IODepthComplete:   distKV(submitKeys, depthDist(s.c.Complete)),
		LatencyDepth:      j.IODepth,
		LatencyPercentile: 100,
		Desc:              j.Description,
		stats:             s,
	}
	out.UsrCPU, out.SysCPU = s.cpu()
	if j.ContinueOnError != 0 {
		te, fe := jr.TotalErr, errno(jr.FirstErr)
		out.TotalErr, out.FirstError = &te, &fe
	}
	// unified_rw_reporting: mixed replaces read, write and trim by their
	// sum; both adds the sum after sync (fio's stat.c).
	var mixedRT int64
	for d := range numDirs {
		mixedRT = max(mixedRT, s.runtime[d])
	}
	mixed := jr.mixed()
	switch j.Unified {
	case UnifiedMixed:
		out.MixedOnly = dirJSON(&mixed, j, mixedRT, rs.agg[0], plus) // the group's sum is in the first
	default:
		out.Read = dirJSON(&jr.Dir[DirRead], j, s.runtime[DirRead], rs.agg[DirRead], plus)
		out.Write = dirJSON(&jr.Dir[DirWrite], j, s.runtime[DirWrite], rs.agg[DirWrite], plus)
		out.Trim = dirJSON(&jr.Dir[DirTrim], j, s.runtime[DirTrim], rs.agg[DirTrim], plus)
		if j.Unified == UnifiedBoth {
			out.Mixed = dirJSON(&mixed, j, mixedRT, rs.agg[DirRead]+rs.agg[DirWrite]+rs.agg[DirTrim], plus)
		}
	}
	ln, lu, lm := latencyDist(&s.lat)
	out.LatencyNs = floatKV(latNKeys, ln)
	out.LatencyUs = floatKV(latNKeys, lu)
	out.LatencyMs = floatKV(latMKeys, lm)

	moved := jr.Dir[DirRead].Bytes + jr.Dir[DirWrite].Bytes
	gb := g.Bytes()
	out.Flashpath = fpJobFields{
		Engine:       j.IOEngine,
		Filename:     jr.Filename,
		Jobs:         jr.Clones,
		CPUSecPerGB:  cpuPerGB(jr.Usr+jr.Sys, moved),
		ProcUsrCPU:   pct(g.ProcUsr, g.Elapsed),
		ProcSysCPU:   pct(g.ProcSys, g.Elapsed),
		ProcCPUPerGB: cpuPerGB(g.ProcUsr+g.ProcSys, gb),
	}
	if g.TargetUsr+g.TargetSys > 0 {
		out.Flashpath.TargetUsrCPU = pct(g.TargetUsr, g.Elapsed)
		out.Flashpath.TargetSysCPU = pct(g.TargetSys, g.Elapsed)
		out.Flashpath.TargetCPUPerG = cpuPerGB(g.TargetUsr+g.TargetSys, gb)
	}
	if jr.Err != nil {
		out.Flashpath.ErrorMessage = jr.Err.Error()
	}
	return out
}

// latencyDist is fio's io_u_lat_n, io_u_lat_u and io_u_lat_m in percent
// of the I/Os (stat_calc_lat: at least 0.01 for a bucket that is not
// empty). fio's io_u_mark_latency files a completion latency
// below 1000 ns under the first bound above it (2, 4, 10, ..., 1000),
// else one below 1000 µs likewise in µs, else in ms (2, ..., 2000, and
// >=2000 beyond).
func latencyDist(h *Histogram) (n, u, m []float64) {
	n, u, m = make([]float64, 10), make([]float64, 10), make([]float64, 12)
	total := h.Count()
	if total == 0 {
		return
	}
	var cn, cu, cm [12]uint64
	for i, c := range h.counts {
		if c == 0 {
			continue
		}
		lo, _ := histRange(i)
		switch {
		case lo < 1000:
			cn[boundIndex(lo, latBoundsN)] += c
		case lo < 1000_000:
			cu[boundIndex(lo/1000, latBoundsN)] += c
		default:
			cm[boundIndex(lo/1000_000, latBoundsMMs)] += c
		}
	}
	fill := func(dst []float64, src []uint64) {
		for i := range dst {
			dst[i] = 100 * float64(src[i]) / float64(total)
			if dst[i] < 0.01 && src[i] > 0 {
				dst[i] = 0.01
			}
		}
	}
	fill(n, cn[:10])
	fill(u, cu[:10])
	fill(m, cm[:12])
	return
}

// boundIndex is the bucket of v: the first bound above it (fio labels a
// bucket by its exclusive upper bound), or len(bounds) past the last.
func boundIndex(v uint64, bounds []uint64) int {
	for i, b := range bounds {
		if v < b {
			return i
		}
	}
	return len(bounds)
}

// WriteJSON writes the report as fio's --output-format=json.
func (r *Report) WriteJSON(w io.Writer) error { return r.writeJSON(w, false) }

// WriteJSONPlus writes fio's --output-format=json+: the JSON report with
// each latency's histogram buckets ("bins") where percentiles are reported.
func (r *Report) WriteJSONPlus(w io.Writer) error { return r.writeJSON(w, true) }

func (r *Report) writeJSON(w io.Writer, plus bool) error {
	_, err := io.WriteString(w, fioJSON(r.jsonDoc(plus)))
	return err
}

// WriteTable writes one summary row per group (the sweep table), for
// suites of stonewalled jobs.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	writeSweepTable(&b, r)
	_, err := io.WriteString(w, b.String())
	return err
}

// SweepRow is one line of the sweep table.
type SweepRow struct {
	Name, RW, Engine       string
	BS, IODepth, NumJobs   int
	IOPS, BW               float64 // I/O per second, bytes per second
	AvgLat, P50, P99, P999 time.Duration
	CPUPerGB               float64 // bench process
	TargetCPUPerGB         float64 // the target process; see Target
	Err                    error
	// Target: the target's CPU time was measured (Config.TargetPID, read
	// without error); without it TargetCPUPerGB is no measurement.
	Target bool
}

// Rows summarizes every group as one row (jobs of a group summed).
func (r *Report) Rows() []SweepRow {
	var rows []SweepRow
	for _, g := range r.Groups {
		gr := g.Grouped()
		j := gr.Job
		var lat Histogram
		var ios, bytes uint64
		for d := range numDirs {
			lat.Merge(&gr.Dir[d].Lat)
			ios += gr.Dir[d].IOs
			bytes += gr.Dir[d].Bytes
		}
		secs := gr.Runtime.Seconds()
		row := SweepRow{
			Name: j.Name, RW: j.RW.String(), Engine: j.IOEngine, BS: j.maxBS(), IODepth: j.IODepth, NumJobs: j.NumJobs,
			AvgLat: time.Duration(lat.Mean()), P50: time.Duration(lat.Percentile(50)),
			P99: time.Duration(lat.Percentile(99)), P999: time.Duration(lat.Percentile(99.9)),
			CPUPerGB: cpuPerGB(g.ProcUsr+g.ProcSys, bytes),
			Err:      gr.Err,
		}
		if g.Target && g.TargetErr == nil {
			row.Target, row.TargetCPUPerGB = true, cpuPerGB(g.TargetUsr+g.TargetSys, bytes)
		}
		if secs > 0 {
			row.IOPS, row.BW = float64(ios)/secs, float64(bytes)/secs
		}
		rows = append(rows, row)
	}
	return rows
}

func writeSweepTable(b *strings.Builder, r *Report) {
	tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "job\trw\tbs\tiodepth\tnumjobs\tIOPS\tBW\tlat avg\tp50\tp99\tp99.9\tCPU-s/GB\ttarget CPU-s/GB\t")
	for _, row := range r.Rows() {
		target := "-" // no --target-pid, or its CPU time could not be read
		if row.Target {
			target = fmt.Sprintf("%.3f", row.TargetCPUPerGB)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%.3f\t%s\t",
			row.Name, row.RW, formatBS(row.BS), row.IODepth, row.NumJobs, formatCount(row.IOPS), formatBytes(row.BW)+"/s",
			fmtDur(row.AvgLat), fmtDur(row.P50), fmtDur(row.P99), fmtDur(row.P999), row.CPUPerGB, target)
		if row.Err != nil {
			fmt.Fprintf(tw, "  error: %v", row.Err)
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

func fmtDur(d time.Duration) string {
	switch {
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return fmt.Sprintf("%.1fus", float64(d)/1e3)
	}
	return fmt.Sprintf("%.2fms", float64(d)/1e6)
}

// formatBytes prints a byte count with binary units as fio does (4096 -> 4096B,
// 4 KiB blocks as 4KiB, 1.5 GiB as 1536MiB).
func formatBytes(v float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	i := 0
	for v >= 10000 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if v == math.Trunc(v) {
		return fmt.Sprintf("%.0f%s", v, units[i])
	}
	return fmt.Sprintf("%.1f%s", v, units[i])
}

func formatSI(v float64) string {
	units := []string{"B", "kB", "MB", "GB", "TB", "PB"}
	i := 0
	for v >= 10000 && i < len(units)-1 {
		v /= 1000
		i++
	}
	return fmt.Sprintf("%.0f%s", v, units[i])
}

// formatCount prints a count as fio's IOPS (316k, 1234, 1.2M).
func formatCount(v float64) string {
	switch {
	case v >= 1e7:
		return fmt.Sprintf("%.0fM", v/1e6)
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}

// formatBS prints a block size the way job files write it (4k, 128k, 1m).
func formatBS(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return strconv.Itoa(n>>20) + "m"
	case n >= 1<<10 && n%(1<<10) == 0:
		return strconv.Itoa(n>>10) + "k"
	}
	return strconv.Itoa(n)
}
