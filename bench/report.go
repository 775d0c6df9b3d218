package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
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

type fioDoc struct {
	FioVersion  string       `json:"fio version"`
	Timestamp   int64        `json:"timestamp"`
	TimestampMs int64        `json:"timestamp_ms"`
	Time        string       `json:"time"`
	Jobs        []fioJob     `json:"jobs"`
	Flashpath   fpRunSummary `json:"flashpath"`
}

type fioJob struct {
	JobName           string      `json:"jobname"`
	GroupID           int         `json:"groupid"`
	Error             int         `json:"error"`
	Eta               int         `json:"eta"`
	Elapsed           int64       `json:"elapsed"`
	JobOptions        orderedKV   `json:"job options"`
	Read              *fioDir     `json:"read,omitempty"`
	Write             *fioDir     `json:"write,omitempty"`
	Trim              *fioDir     `json:"trim,omitempty"`
	Sync              fioSync     `json:"sync"`
	Mixed             *fioDir     `json:"mixed,omitempty"` // unified_rw_reporting=mixed or both
	JobRuntime        int64       `json:"job_runtime"`
	UsrCPU            float64     `json:"usr_cpu"`
	SysCPU            float64     `json:"sys_cpu"`
	Ctx               uint64      `json:"ctx"`
	Majf              uint64      `json:"majf"`
	Minf              uint64      `json:"minf"`
	IODepthLevel      orderedKV   `json:"iodepth_level"`
	LatencyNs         orderedKV   `json:"latency_ns"`
	LatencyUs         orderedKV   `json:"latency_us"`
	LatencyMs         orderedKV   `json:"latency_ms"`
	LatencyDepth      int         `json:"latency_depth"`
	LatencyTarget     int         `json:"latency_target"`
	LatencyPercentile float64     `json:"latency_percentile"`
	LatencyWindow     int         `json:"latency_window"`
	TotalErr          *uint64     `json:"total_err,omitempty"`   // continue_on_error set
	FirstError        *int        `json:"first_error,omitempty"` // continue_on_error set
	Desc              string      `json:"desc,omitempty"`
	Flashpath         fpJobFields `json:"flashpath"`
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
	Min        uint64     `json:"min"`
	Max        uint64     `json:"max"`
	Mean       float64    `json:"mean"`
	Stddev     float64    `json:"stddev"`
	N          uint64     `json:"N"`
	Percentile *orderedKV `json:"percentile,omitempty"`
	// Bins (json+ only): count per histogram bucket, keyed by the
	// bucket's middle value in ns, nonzero buckets only, as fio's json+.
	Bins *orderedKV `json:"bins,omitempty"`
}

type fioSync struct {
	LatNs    fioLat `json:"lat_ns"`
	TotalIOs uint64 `json:"total_ios"`
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

// latJSON is fio's latency object, with the percentiles pcts (none: nil).
func latJSON(h *Histogram, pcts []float64, plus bool) fioLat {
	l := fioLat{Min: h.Min(), Max: h.Max(), Mean: round6(h.Mean()), Stddev: round6(h.Stddev()), N: h.Count()}
	if pcts != nil {
		p := orderedKV{}
		for _, q := range pcts {
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
	}
	return l
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

func dirJSON(d *DirStats, j *Job, runtime time.Duration, groupBW float64, plus bool) *fioDir {
	ms := runtime.Milliseconds()
	secs := runtime.Seconds()
	out := fioDir{IOBytes: d.Bytes, IOKBytes: d.Bytes / 1024, Runtime: ms, TotalIOs: d.IOs, ShortIOs: d.Short}
	if secs > 0 {
		out.BWBytes = uint64(float64(d.Bytes) / secs)
		out.BW = out.BWBytes / 1024
		out.IOPS = round6(float64(d.IOs) / secs)
	}
	slat := Histogram{n: d.slat.n, min: d.slat.min, max: d.slat.max, sum: d.slat.sum, sumSq: d.slat.sumSq}
	out.SlatNs = latJSON(&slat, nil, false)
	out.ClatNs = latJSON(&d.Clat, j.percentiles(j.ClatPct), plus)
	out.LatNs = latJSON(&d.Lat, j.percentiles(j.LatPct), plus)
	if groupBW > 0 {
		out.BWAgg = round6(100 * float64(out.BW) / groupBW)
	}
	mn, mx, mean, dev := sampleStats(d.BWSamples)
	out.BWMin, out.BWMax, out.BWMean, out.BWDev, out.BWSamples = uint64(mn), uint64(mx), round6(mean), round6(dev), len(d.BWSamples)
	mn, mx, mean, dev = sampleStats(d.IOPSSamples)
	out.IOPSMin, out.IOPSMax, out.IOPSMean, out.IOPSStddev, out.IOPSSamples = uint64(mn), uint64(mx), round6(mean), round6(dev), len(d.IOPSSamples)
	return &out
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
// group_reporting.
func (g *GroupResult) results() []*JobResult {
	if len(g.Jobs) > 0 && g.Jobs[0].Job.GroupReport {
		return []*JobResult{g.Grouped()}
	}
	return g.Jobs
}

func (r *Report) jsonDoc(plus bool) fioDoc {
	doc := fioDoc{
		FioVersion:  Version,
		Timestamp:   r.Start.Unix(),
		TimestampMs: r.Start.UnixMilli(),
		Time:        r.Start.Format(time.ANSIC),
		Flashpath:   fpRunSummary{Engines: EngineNames()},
	}
	for _, g := range r.Groups {
		grouped := g.Grouped()
		var groupBW [numDirs]float64
		for d := range numDirs {
			if s := grouped.Runtime.Seconds(); s > 0 {
				groupBW[d] = float64(grouped.Dir[d].Bytes) / 1024 / s
			}
		}
		for _, jr := range g.results() {
			doc.Jobs = append(doc.Jobs, jobJSON(g, jr, groupBW, plus))
		}
	}
	return doc
}

func jobJSON(g *GroupResult, jr *JobResult, groupBW [numDirs]float64, plus bool) fioJob {
	j := jr.Job
	opts := orderedKV{}
	for _, o := range j.Options {
		opts = append(opts, kv{o[0], o[1]})
	}
	out := fioJob{
		JobName:           j.Name,
		GroupID:           j.GroupID,
		Error:             errno(jr.Err),
		Elapsed:           int64(math.Ceil(g.Elapsed.Seconds())),
		JobOptions:        opts,
		Sync:              fioSync{LatNs: latJSON(&jr.Syncs, j.percentiles(jr.Syncs.Count() > 0), plus), TotalIOs: jr.Syncs.Count()},
		JobRuntime:        jr.Runtime.Milliseconds(),
		UsrCPU:            pct(jr.Usr, jr.Runtime*time.Duration(jr.Clones)),
		SysCPU:            pct(jr.Sys, jr.Runtime*time.Duration(jr.Clones)),
		Ctx:               g.ProcCtx,
		LatencyDepth:      j.IODepth,
		LatencyPercentile: 100,
		Desc:              j.Description,
	}
	if j.ContinueOnError != 0 {
		te, fe := jr.TotalErr, errno(jr.FirstErr)
		out.TotalErr, out.FirstError = &te, &fe
	}
	// unified_rw_reporting: mixed replaces read, write and trim by their
	// sum; both adds the sum after them (fio's stat.c).
	if j.Unified != UnifiedMixed {
		out.Read = dirJSON(&jr.Dir[DirRead], j, jr.Runtime, groupBW[DirRead], plus)
		out.Write = dirJSON(&jr.Dir[DirWrite], j, jr.Runtime, groupBW[DirWrite], plus)
		out.Trim = dirJSON(&jr.Dir[DirTrim], j, jr.Runtime, groupBW[DirTrim], plus)
	}
	if j.Unified != UnifiedNone {
		mixed := jr.mixed()
		out.Mixed = dirJSON(&mixed, j, jr.Runtime, groupBW[DirRead]+groupBW[DirWrite]+groupBW[DirTrim], plus)
	}
	var total uint64
	for _, c := range jr.DepthHist {
		total += c
	}
	for i, name := range []string{"1", "2", "4", "8", "16", "32", ">=64"} {
		v := 0.0
		if total > 0 {
			v = round6(100 * float64(jr.DepthHist[i]) / float64(total))
		}
		out.IODepthLevel = append(out.IODepthLevel, kv{name, v})
	}
	var lat Histogram
	lat.Merge(&jr.Dir[DirRead].Lat)
	lat.Merge(&jr.Dir[DirWrite].Lat)
	out.LatencyNs = latencyBuckets(&lat, 1, []string{"2", "4", "10", "20", "50", "100", "250", "500", "750", "1000"}, false)
	out.LatencyUs = latencyBuckets(&lat, 1e3, []string{"2", "4", "10", "20", "50", "100", "250", "500", "750", "1000"}, false)
	out.LatencyMs = latencyBuckets(&lat, 1e6, []string{"2", "4", "10", "20", "50", "100", "250", "500", "750", "1000", "2000"}, true)

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

// latencyBuckets is fio's latency_ns/us/ms: the percentage of I/Os whose
// latency falls in (previous bound, bound], in units of scale ns.
func latencyBuckets(h *Histogram, scale float64, bounds []string, last bool) orderedKV {
	out := orderedKV{}
	n := float64(h.Count())
	prev := uint64(0)
	if scale > 1 {
		prev = h.CountBelow(uint64(scale) - 1)
	}
	for _, b := range bounds {
		v, _ := strconv.ParseFloat(b, 64)
		c := h.CountBelow(uint64(v*scale) - 1)
		p := 0.0
		if n > 0 {
			p = round6(100 * float64(c-prev) / n)
		}
		out = append(out, kv{b, p})
		prev = c
	}
	if last {
		p := 0.0
		if n > 0 {
			p = round6(100 * float64(h.Count()-prev) / n)
		}
		out = append(out, kv{">=2000", p})
	}
	return out
}

// WriteJSON writes the report as fio's --output-format=json.
func (r *Report) WriteJSON(w io.Writer) error { return r.writeJSON(w, false) }

// WriteJSONPlus writes fio's --output-format=json+: the JSON report with
// each latency's histogram buckets ("bins") where percentiles are reported.
func (r *Report) WriteJSONPlus(w io.Writer) error { return r.writeJSON(w, true) }

func (r *Report) writeJSON(w io.Writer, plus bool) error {
	b, err := json.MarshalIndent(r.jsonDoc(plus), "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// ---- Text, in fio's normal output layout ----------------------------------

// WriteText writes fio's normal output: each job (or group), then the run
// status of each group, then a sweep table when the jobs were a sweep.
func (r *Report) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, g := range r.Groups {
		for _, jr := range g.results() {
			writeJobText(&b, g, jr)
		}
	}
	for _, g := range r.Groups {
		writeGroupText(&b, g)
	}
	if r.Sweep {
		b.WriteString("\n")
		writeSweepTable(&b, r)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeJobText(b *strings.Builder, g *GroupResult, jr *JobResult) {
	j := jr.Job
	fmt.Fprintf(b, "%s: (groupid=%d, jobs=%d): err=%2d: pid=%d: %s\n", j.Name, j.GroupID, jr.Clones, errno(jr.Err), os.Getpid(), time.Now().Format(time.ANSIC))
	if jr.Err != nil {
		fmt.Fprintf(b, "  error: %v\n", jr.Err)
	}
	mixed := jr.mixed()
	for d := range numDirs + 1 {
		st, name := &mixed, "mixed"
		if d < numDirs {
			if j.Unified == UnifiedMixed {
				continue
			}
			st, name = &jr.Dir[d], Direction(d).String()
		} else if j.Unified == UnifiedNone {
			continue
		}
		if st.IOs == 0 {
			continue
		}
		secs := jr.Runtime.Seconds()
		bw := float64(st.Bytes) / secs
		fmt.Fprintf(b, "  %s: IOPS=%s, BW=%s/s (%s/s)(%s/%dmsec)\n", name, formatCount(float64(st.IOs)/secs),
			formatBytes(bw), formatSI(bw), formatBytes(float64(st.Bytes)), jr.Runtime.Milliseconds())
		slat := Histogram{n: st.slat.n, min: st.slat.min, max: st.slat.max, sum: st.slat.sum, sumSq: st.slat.sumSq}
		writeLatLine(b, "    slat", &slat)
		writeLatLine(b, "    clat", &st.Clat)
		writeLatLine(b, "     lat", &st.Lat)
		if j.ClatPct {
			writePercentiles(b, "clat", &st.Clat, j.percentiles(true))
		}
		if mn, mx, mean, dev := sampleStats(st.BWSamples); len(st.BWSamples) > 0 {
			fmt.Fprintf(b, "   bw (  KiB/s): min=%.0f, max=%.0f, avg=%.2f, stdev=%.2f, samples=%d\n", mn, mx, mean, dev, len(st.BWSamples))
		}
		if mn, mx, mean, dev := sampleStats(st.IOPSSamples); len(st.IOPSSamples) > 0 {
			fmt.Fprintf(b, "   iops        : min=%.0f, max=%.0f, avg=%.2f, stdev=%.2f, samples=%d\n", mn, mx, mean, dev, len(st.IOPSSamples))
		}
	}
	if jr.Syncs.Count() > 0 {
		b.WriteString("  fsync/fdatasync/sync_file_range:\n")
		writeLatLine(b, "    sync", &jr.Syncs)
		writePercentiles(b, "sync", &jr.Syncs, j.percentiles(true))
	}
	rt := jr.Runtime * time.Duration(jr.Clones)
	fmt.Fprintf(b, "  cpu          : usr=%.2f%%, sys=%.2f%%, ctx=%d, majf=0, minf=0\n", pct(jr.Usr, rt), pct(jr.Sys, rt), g.ProcCtx)
	var total uint64
	for _, c := range jr.DepthHist {
		total += c
	}
	b.WriteString("  IO depths    :")
	for i, name := range []string{"1", "2", "4", "8", "16", "32", ">=64"} {
		v := 0.0
		if total > 0 {
			v = 100 * float64(jr.DepthHist[i]) / float64(total)
		}
		sep := ","
		if i == 0 {
			sep = ""
		}
		fmt.Fprintf(b, "%s %s=%.1f%%", sep, name, v)
	}
	b.WriteString("\n")
	moved := jr.Dir[DirRead].Bytes + jr.Dir[DirWrite].Bytes
	fmt.Fprintf(b, "  flashpath    : engine=%s, file=%s, job thread %.3f CPU-s/GB\n\n", j.IOEngine, jr.Filename, cpuPerGB(jr.Usr+jr.Sys, moved))
}

func latUnit(h *Histogram) (string, float64) {
	switch {
	case h.Max() < 10_000:
		return "nsec", 1
	case h.Max() < 10_000_000:
		return "usec", 1e3
	}
	return "msec", 1e6
}

func writeLatLine(b *strings.Builder, name string, h *Histogram) {
	if h.Count() == 0 {
		return
	}
	unit, div := latUnit(h)
	fmt.Fprintf(b, "%s (%s): min=%.0f, max=%.0f, avg=%.2f, stdev=%.2f\n", name, unit,
		float64(h.Min())/div, float64(h.Max())/div, h.Mean()/div, h.Stddev()/div)
}

func writePercentiles(b *strings.Builder, name string, h *Histogram, pcts []float64) {
	if h.Count() == 0 {
		return
	}
	unit, div := latUnit(h)
	fmt.Fprintf(b, "    %s percentiles (%s):\n", name, unit)
	for i, p := range pcts {
		if i%4 == 0 {
			b.WriteString("     |")
		}
		fmt.Fprintf(b, " %5.2fth=[%5.0f]", p, float64(h.Percentile(p))/div)
		if i%4 == 3 || i == len(pcts)-1 {
			b.WriteString("\n")
		} else {
			b.WriteString(",")
		}
	}
}

func writeGroupText(b *strings.Builder, g *GroupResult) {
	fmt.Fprintf(b, "Run status group %d (all jobs):\n", g.ID)
	unified := UnifiedNone
	if len(g.Jobs) > 0 {
		unified = g.Jobs[0].Job.Unified
	}
	for d := range numDirs + 1 { // numDirs: the sum, for unified_rw_reporting
		if (d == numDirs && unified == UnifiedNone) || (d < numDirs && unified == UnifiedMixed) {
			continue
		}
		var bytes uint64
		minBW, maxBW := math.Inf(1), 0.0
		var minRT, maxRT time.Duration = math.MaxInt64, 0
		for _, jr := range g.Jobs {
			var st *DirStats
			if d < numDirs {
				st = &jr.Dir[d]
			} else {
				m := jr.mixed()
				st = &m
			}
			if st.IOs == 0 {
				continue
			}
			bytes += st.Bytes
			bw := float64(st.Bytes) / jr.Runtime.Seconds()
			minBW, maxBW = min(minBW, bw), max(maxBW, bw)
			minRT, maxRT = min(minRT, jr.Runtime), max(maxRT, jr.Runtime)
		}
		if bytes == 0 {
			continue
		}
		bw := float64(bytes) / maxRT.Seconds()
		name := "MIXED"
		if d < numDirs {
			name = strings.ToUpper(Direction(d).String())
		}
		fmt.Fprintf(b, "%7s: bw=%s/s (%s/s), %s/s-%s/s (%s/s-%s/s), io=%s (%s), run=%d-%dmsec\n", name,
			formatBytes(bw), formatSI(bw), formatBytes(minBW), formatBytes(maxBW), formatSI(minBW), formatSI(maxBW),
			formatBytes(float64(bytes)), formatSI(float64(bytes)), minRT.Milliseconds(), maxRT.Milliseconds())
	}
	fmt.Fprintf(b, "    cpu: bench process usr=%.2fs sys=%.2fs (%.3f CPU-s/GB)", g.ProcUsr.Seconds(), g.ProcSys.Seconds(), cpuPerGB(g.ProcUsr+g.ProcSys, g.Bytes()))
	if g.TargetUsr+g.TargetSys > 0 {
		fmt.Fprintf(b, ", target usr=%.2fs sys=%.2fs (%.3f CPU-s/GB)", g.TargetUsr.Seconds(), g.TargetSys.Seconds(), cpuPerGB(g.TargetUsr+g.TargetSys, g.Bytes()))
	}
	if g.TargetErr != nil {
		fmt.Fprintf(b, ", target cpu unavailable: %v", g.TargetErr)
	}
	b.WriteString("\n\n")
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
	TargetCPUPerGB         float64
	Err                    error
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
			CPUPerGB: cpuPerGB(g.ProcUsr+g.ProcSys, bytes), TargetCPUPerGB: cpuPerGB(g.TargetUsr+g.TargetSys, bytes),
			Err: gr.Err,
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%s\t%s\t%.3f\t%.3f\t",
			row.Name, row.RW, formatBS(row.BS), row.IODepth, row.NumJobs, formatCount(row.IOPS), formatBytes(row.BW)+"/s",
			fmtDur(row.AvgLat), fmtDur(row.P50), fmtDur(row.P99), fmtDur(row.P999), row.CPUPerGB, row.TargetCPUPerGB)
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
