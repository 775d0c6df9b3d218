package bench

import (
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The text report is fio 3's normal output (stat.c
// show_thread_status_normal, show_group_stats, show_disk_util; the job
// lines of init.c add_job), line for line, with flashpath's CPU lines
// added after fio's.

// n2sUnit is fio's enum n2s_unit: what num2str appends.
type n2sUnit int

const (
	n2sNone n2sUnit = iota
	n2sPerSec
	n2sByte
	n2sBit
	n2sBytePerSec
	n2sBitPerSec
)

// num2str is fio's lib/num2str.c: num with at most maxlen digits (the
// decimal point counted), scaled by 1000 or 1024 (pow2) with the unit
// prefix and units appended, rounding the way fio does.
func num2str(num uint64, maxlen int, base int, pow2 bool, units n2sUnit) string {
	si := []string{"", "k", "M", "G", "T", "P", "E"}
	iec := []string{"", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"}
	unitStr := []string{"", "/s", "B", "bit", "B/s", "bit/s"}
	prefix := si
	thousand := uint64(1000)
	if pow2 {
		prefix, thousand = iec, 1024
	}
	post := 0
	for base > 1 {
		base /= int(thousand)
		post++
	}
	if units == n2sBit || units == n2sBitPerSec {
		num *= 8
	}
	modulo := uint64(math.MaxUint64)
	carry := false
	for post < len(si) {
		if len(strconv.FormatUint(num, 10)) <= maxlen {
			break
		}
		modulo = num % thousand
		num /= thousand
		carry = modulo >= thousand/2
		post++
	}
	if post >= len(si) {
		post = 0
	}
	done := func() string { return strconv.FormatUint(num, 10) + prefix[post] + unitStr[units] }
	if modulo == math.MaxUint64 {
		return done()
	}
	digits := len(strconv.FormatUint(num, 10))
	if maxlen-digits <= 1 {
		if carry {
			num++
		}
		return done()
	}
	frac := strconv.FormatFloat(float64(modulo)/float64(thousand), 'f', maxlen-digits-1, 64)
	if frac[0] == '1' {
		num++
	}
	return strconv.FormatUint(num, 10) + "." + frac[2:] + prefix[post] + unitStr[units]
}

// sigFigs is the job's significant_figures: the digits num2str gives
// the normal report's IOPS, bandwidths and sizes (fio's 4 by default).
func (j *Job) sigFigs() int {
	if j.SigFigs == 0 {
		return 4
	}
	return j.SigFigs
}

// pctPrecision is fio's percentile_precision: the decimals of the
// normal report's percentile labels, those percentile_list gives its
// entries at most (fio's default list: 2).
func (j *Job) pctPrecision() int {
	if j.Percentiles == nil {
		return 2
	}
	return j.PercentilePrecision
}

// textUnits are kb_base's power-of-two flag and unit_base's units for
// bandwidth (fio's i2p and ts->unit_base).
func textUnits(j *Job) (i2p bool, unit n2sUnit) {
	kb := j.KBBase
	if kb == 0 {
		kb = 1024
	}
	unit = n2sBytePerSec
	if j.UnitBase == 1 {
		unit = n2sBitPerSec
	}
	return kb&(kb-1) == 0, unit
}

// WriteText writes fio's normal output: the job lines fio prints when it
// adds the jobs, each job (or group) after the run, the run status of
// each group, the disks' statistics, then a sweep table when the jobs
// were a sweep. It is WriteTextJobLines, then WriteTextResults.
func (r *Report) WriteText(w io.Writer) error {
	if err := r.WriteTextJobLines(w); err != nil {
		return err
	}
	return r.WriteTextResults(w)
}

// WriteTextJobLines writes the part of fio's normal output that fio
// prints as it starts the jobs, before any other output format's.
func (r *Report) WriteTextJobLines(w io.Writer) error {
	var b strings.Builder
	writeJobLines(&b, r)
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteTextResults writes the normal output after the run: what follows
// the job lines, which fio prints after the terse and JSON outputs.
func (r *Report) WriteTextResults(w io.Writer) error {
	var b strings.Builder
	run := r.fio(false)
	b.WriteString("\n")
	for i := range run.jobs {
		writeJobText(&b, &run.jobs[i], run.groups[run.group[i]])
	}
	for i, rs := range run.groups {
		writeGroupText(&b, rs, r.Groups[i])
	}
	writeDiskText(&b, run.disks)
	if r.Sweep {
		b.WriteString("\n")
		writeSweepTable(&b, r)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// writeJobLines is what fio prints as it reads the jobs: a line per job
// (and "..." for its clones), its version, and how many it starts.
func writeJobLines(b *strings.Builder, r *Report) {
	n := 0
	for _, g := range r.Groups {
		for _, jr := range g.Jobs {
			n++
			j := jr.Job
			if jr.Clone > 0 {
				if jr.Clone == 1 {
					b.WriteString("...\n")
				}
				continue
			}
			i2p, _ := textUnits(j)
			fmt.Fprintf(b, "%s: (g=%d): rw=%s, bs=", j.Name, j.GroupID, j.RW)
			for d, name := range []string{"(R)", "(W)", "(T)"} {
				lo, hi := bsRange(j, Direction(d))
				if d > 0 {
					b.WriteString(", ")
				}
				fmt.Fprintf(b, "%s %s-%s", name, num2str(uint64(lo), j.sigFigs(), 1, i2p, n2sByte), num2str(uint64(hi), j.sigFigs(), 1, i2p, n2sByte))
			}
			engine := j.IOEngine
			if j.EngineAlias != "" {
				engine = j.EngineAlias // the engine the job file names, as fio prints it
			}
			fmt.Fprintf(b, ", ioengine=%s, iodepth=%d\n", engine, j.IODepth)
		}
	}
	fmt.Fprintf(b, "%s\n", Version)
	// flashpath's clones are threads of one process (fio's thread=1).
	s := "s"
	if n == 1 {
		s = ""
	}
	fmt.Fprintf(b, "Starting %d thread%s\n", n, s)
}

// bsRange is the smallest and largest block size of direction d.
func bsRange(j *Job, d Direction) (lo, hi int) {
	lo, hi = j.BS[d], j.BS[d]
	for _, w := range j.BSSplit[d] {
		lo, hi = min(lo, w.Size), max(hi, w.Size)
	}
	return lo, hi
}

func writeJobText(b *strings.Builder, fj *fioJob, rs *fioGroup) {
	s := fj.stats
	jr := s.jr
	j := jr.Job
	var ios, bytes uint64
	for d := range numDirs {
		ios += jr.Dir[d].IOs
		bytes += jr.Dir[d].Bytes
	}
	if ios == 0 && bytes == 0 {
		return // fio prints nothing for a job that did no I/O
	}
	now := time.Now().Format(time.ANSIC)
	if e := errno(jr.Err); e == 0 {
		fmt.Fprintf(b, "%s: (groupid=%d, jobs=%d): err=%2d: pid=%d: %s\n", j.Name, j.GroupID, s.members, e, os.Getpid(), now)
	} else {
		fmt.Fprintf(b, "%s: (groupid=%d, jobs=%d): err=%2d (%v): pid=%d: %s\n", j.Name, j.GroupID, s.members, e, jr.Err, os.Getpid(), now)
	}
	if j.Description != "" {
		fmt.Fprintf(b, "  Description  : [%s]\n", j.Description)
	}
	mixed := jr.mixed()
	var mixedRT int64
	for d := range numDirs {
		mixedRT = max(mixedRT, s.runtime[d])
	}
	aggAll := rs.agg[DirRead] + rs.agg[DirWrite] + rs.agg[DirTrim]
	if j.Unified == UnifiedMixed {
		writeDirText(b, "mixed", &mixed, j, mixedRT, rs.agg[0], false)
	} else {
		for d := range numDirs {
			if jr.Dir[d].Bytes > 0 {
				writeDirText(b, Direction(d).String(), &jr.Dir[d], j, s.runtime[d], rs.agg[d], Direction(d) == DirWrite)
			}
		}
		if j.Unified == UnifiedBoth {
			writeDirText(b, "mixed", &mixed, j, mixedRT, aggAll, false)
		}
	}
	ln, lu, lm := latencyDist(&s.lat)
	writeLatDist(b, "nsec", latNKeys, ln)
	writeLatDist(b, "usec", latNKeys, lu)
	writeLatDist(b, "msec", latMKeys, lm)
	if jr.Syncs.Count() > 0 {
		b.WriteString("  fsync/fdatasync/sync_file_range:\n")
		writeLatLine(b, "sync", &jr.Syncs)
		writePercentiles(b, "sync", &jr.Syncs, sortedPercentiles(j.percentiles(true)), j.pctPrecision())
	}
	fmt.Fprintf(b, "  cpu          : usr=%3.2f%%, sys=%3.2f%%, ctx=%d, majf=%d, minf=%d\n", fj.UsrCPU, fj.SysCPU, fj.Ctx, fj.Majf, fj.Minf)
	writeDistText(b, "  IO depths    :", depthKeys, depthDist(jr.DepthHist))
	writeDistText(b, "     submit    :", submitKeys, depthDist(s.c.Submit))
	writeDistText(b, "     complete  :", submitKeys, depthDist(s.c.Complete))
	d := &jr.Dir
	fmt.Fprintf(b, "     issued rwts: total=%d,%d,%d,%d short=%d,%d,%d,0 dropped=0,0,0,0\n",
		d[DirRead].IOs, d[DirWrite].IOs, d[DirTrim].IOs, jr.SyncIOs, d[DirRead].Short, d[DirWrite].Short, d[DirTrim].Short)
	if fj.TotalErr != nil {
		fmt.Fprintf(b, "     errors    : total=%d, first_error=%d/<%s>\n", *fj.TotalErr, *fj.FirstError, strerror(*fj.FirstError))
	}
	fmt.Fprintf(b, "     latency   : target=%d, window=%d, percentile=%.2f%%, depth=%d\n", fj.LatencyTarget, fj.LatencyWindow, fj.LatencyPercentile, fj.LatencyDepth)
	moved := jr.Dir[DirRead].Bytes + jr.Dir[DirWrite].Bytes
	fmt.Fprintf(b, "  flashpath    : engine=%s, file=%s, job thread %.3f CPU-s/GB\n", j.IOEngine, jr.Filename, cpuPerGB(jr.Usr+jr.Sys, moved))
}

// strerror is C's strerror for an errno.
func strerror(e int) string {
	if e == 0 {
		return "Success"
	}
	s := syscall.Errno(e).Error()
	if s == "" {
		return "Unknown error " + strconv.Itoa(e)
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// writeDirText is fio's show_ddir_status for one direction.
func writeDirText(b *strings.Builder, name string, st *DirStats, j *Job, runtime int64, groupAgg uint64, write bool) {
	if runtime == 0 {
		return
	}
	i2p, unit := textUnits(j)
	bw := 1000 * st.Bytes / uint64(runtime)
	iops := 1000 * st.IOs / uint64(runtime)
	post := ""
	if write {
		post = "; 0 zone resets" // fio's zbd_write_status, on every write line
	}
	sf := j.sigFigs()
	fmt.Fprintf(b, "  %s: IOPS=%s, BW=%s (%s)(%s/%dmsec)%s\n", name, num2str(iops, sf, 1, false, n2sNone),
		num2str(bw, sf, 1, i2p, unit), num2str(bw, sf, 1, !i2p, unit), num2str(st.Bytes, sf, 1, i2p, n2sByte), runtime, post)
	writeLatLine(b, "slat", &st.slat)
	writeLatLine(b, "clat", &st.Clat)
	writeLatLine(b, " lat", &st.Lat)
	pcts, prec := sortedPercentiles(j.percentiles(true)), j.pctPrecision()
	if j.SlatPct {
		writePercentiles(b, "slat", &st.slat, pcts, prec)
	}
	if j.ClatPct {
		writePercentiles(b, "clat", &st.Clat, pcts, prec)
	}
	if j.LatPct {
		writePercentiles(b, "lat", &st.Lat, pcts, prec)
	}
	if mn, mx, mean, dev := sampleStats(st.BWSamples); len(st.BWSamples) > 0 {
		kb := float64(j.KBBase)
		if kb == 0 {
			kb = 1024
		}
		unitName := "KiB"
		if !i2p {
			unitName = "kB"
		}
		perAgg := aggPercent(groupAgg, math.Trunc(mean)) // fio passes the mean as an int
		lo, hi := uint64(mn), uint64(mx)
		if mean > kb*kb {
			lo, hi = uint64(float64(lo)/kb), uint64(float64(hi)/kb)
			mean, dev = mean/kb, dev/kb
			unitName = "MiB"
		}
		fmt.Fprintf(b, "   bw (%5s/s): min=%5d, max=%5d, per=%3.2f%%, avg=%5.02f, stdev=%5.02f, samples=%d\n",
			unitName, lo, hi, perAgg, mean, dev, len(st.BWSamples))
	}
	if mn, mx, mean, dev := sampleStats(st.IOPSSamples); len(st.IOPSSamples) > 0 {
		fmt.Fprintf(b, "   iops        : min=%5d, max=%5d, avg=%5.02f, stdev=%5.02f, samples=%d\n",
			uint64(mn), uint64(mx), mean, dev, len(st.IOPSSamples))
	}
}

// writeLatLine is fio's display_lat: nsec, or usec when min > 2 µs, max
// > 99.999 µs and stddev > 1 µs, or msec likewise a thousand times up.
func writeLatLine(b *strings.Builder, name string, h *Histogram) {
	if h.Count() == 0 {
		return
	}
	mn, mx, mean, dev := h.Min(), h.Max(), h.Mean(), h.Stddev()
	unit := "nsec"
	switch {
	case mn > 2_000_000 && mx > 99_999_999 && dev > 1e6:
		mn, mx, mean, dev, unit = mn/1_000_000, mx/1_000_000, mean/1e6, dev/1e6, "msec"
	case mn > 2000 && mx > 99_999 && dev > 1000:
		mn, mx, mean, dev, unit = mn/1000, mx/1000, mean/1e3, dev/1e3, "usec"
	}
	fmt.Fprintf(b, "    %s (%s): min=%s, max=%s, avg=%5.02f, stdev=%5.02f\n", name, unit,
		num2str(mn, 6, 1, false, n2sNone), num2str(mx, 6, 1, false, n2sNone), mean, dev)
}

// writePercentiles is fio's show_clat_percentiles: the unit is msec only
// when the smallest reported percentile is above 2 ms and the largest
// above 99.999999 ms, usec when above 2 µs and 99.999 µs, else nsec;
// values are rounded up to the unit, as many per line as fit 80 columns;
// the labels have precision decimals (percentile_precision).
func writePercentiles(b *strings.Builder, name string, h *Histogram, pcts []float64, precision int) {
	if h.Count() == 0 || len(pcts) == 0 {
		return
	}
	vals := make([]uint64, len(pcts))
	minv, maxv := uint64(math.MaxUint64), uint64(0)
	for i, p := range pcts {
		vals[i] = h.Percentile(p)
		minv, maxv = min(minv, vals[i]), max(maxv, vals[i])
	}
	unit, scale, div := "nsec", 0, uint64(1)
	switch {
	case minv > 2_000_000 && maxv > 99_999_999:
		unit, scale, div = "msec", 2, 1_000_000
	case minv > 2000 && maxv > 99_999:
		unit, scale, div = "usec", 1, 1000
	}
	// fio: log10(maxv / divisor) + 1, the digits of the largest.
	width := max(5, len(strconv.FormatUint(maxv/div, 10)))
	perLine := (80 - 7) / (precision + 10 + width)
	fmt.Fprintf(b, "    %s percentiles (%s):\n     |", name, unit)
	for i, p := range pcts {
		if i != 0 && i%perLine == 0 {
			b.WriteString("     |")
		}
		v := vals[i]
		for range scale {
			v = (v + 999) / 1000
		}
		sep := byte(',')
		if i == len(pcts)-1 {
			sep = '\n'
		}
		fmt.Fprintf(b, " %*.*fth=[%*d]%c", precision+3, precision, p, width, v, sep)
		if i == len(pcts)-1 {
			break
		}
		if i%perLine == perLine-1 {
			b.WriteString("\n")
		}
	}
}

// writeLatDist is fio's show_lat: the nonzero buckets, five to a line.
func writeLatDist(b *strings.Builder, unit string, keys []string, v []float64) {
	line := 0
	shown := false
	for i, p := range v {
		if p <= 0 {
			continue
		}
		if !shown || line == 5 {
			if shown {
				b.WriteString("\n")
			}
			fmt.Fprintf(b, "  lat (%s)   : ", unit)
			line = 0
		}
		shown = true
		if line > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(b, "%s=%3.2f%%", keys[i], p)
		line++
	}
	if shown {
		b.WriteString("\n")
	}
}

func writeDistText(b *strings.Builder, prefix string, keys []string, v [depthLevels]float64) {
	b.WriteString(prefix)
	for i, k := range keys {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(b, " %s=%3.1f%%", k, v[i])
	}
	b.WriteString("\n")
}

// writeGroupText is fio's show_group_stats, then flashpath's CPU line.
func writeGroupText(b *strings.Builder, rs *fioGroup, g *GroupResult) {
	fmt.Fprintf(b, "\nRun status group %d (all jobs):\n", rs.id)
	i2p := rs.kbBase&(rs.kbBase-1) == 0
	unit := n2sBytePerSec
	if rs.unitBase == 1 {
		unit = n2sBitPerSec
	}
	line := func(name string, agg, minBW, maxBW, io uint64, minRun, maxRun int64) {
		sf := rs.sigFigs
		fmt.Fprintf(b, "%s: bw=%s (%s), %s-%s (%s-%s), io=%s (%s), run=%d-%dmsec\n", name,
			num2str(agg, sf, 1, i2p, unit), num2str(agg, sf, 1, !i2p, unit),
			num2str(minBW, sf, 1, i2p, unit), num2str(maxBW, sf, 1, i2p, unit),
			num2str(minBW, sf, 1, !i2p, unit), num2str(maxBW, sf, 1, !i2p, unit),
			num2str(io, sf, 1, i2p, n2sByte), num2str(io, sf, 1, !i2p, n2sByte), minRun, maxRun)
	}
	names := []string{"   READ", "  WRITE", "   TRIM"}
	if rs.unified == UnifiedMixed { // the sum is in the first direction
		if rs.maxRun[0] > 0 {
			line("  MIXED", rs.agg[0], rs.minBW[0], rs.maxBW[0], rs.ioBytes[0], rs.minRun[0], rs.maxRun[0])
		}
	} else {
		for d := range numDirs {
			if rs.maxRun[d] > 0 {
				line(names[d], rs.agg[d], rs.minBW[d], rs.maxBW[d], rs.ioBytes[d], rs.minRun[d], rs.maxRun[d])
			}
		}
		if rs.unified == UnifiedBoth { // fio's show_mixed_group_stats
			var agg, io, maxBW uint64
			minBW := uint64(math.MaxUint64)
			minRun, maxRun := int64(math.MaxInt64), int64(0)
			for d := range numDirs {
				if rs.maxRun[d] == 0 {
					continue
				}
				agg, io = agg+rs.agg[d], io+rs.ioBytes[d]
				minBW, maxBW = min(minBW, rs.minBW[d]), max(maxBW, rs.maxBW[d])
				minRun, maxRun = min(minRun, rs.minRun[d]), max(maxRun, rs.maxRun[d])
			}
			line("  MIXED", agg, minBW, maxBW, io, minRun, maxRun)
		}
	}
	fmt.Fprintf(b, "    cpu: bench process usr=%.2fs sys=%.2fs (%.3f CPU-s/GB)", g.ProcUsr.Seconds(), g.ProcSys.Seconds(), cpuPerGB(g.ProcUsr+g.ProcSys, g.Bytes()))
	if g.TargetUsr+g.TargetSys > 0 {
		fmt.Fprintf(b, ", target usr=%.2fs sys=%.2fs (%.3f CPU-s/GB)", g.TargetUsr.Seconds(), g.TargetSys.Seconds(), cpuPerGB(g.TargetUsr+g.TargetSys, g.Bytes()))
	}
	if g.TargetErr != nil {
		fmt.Fprintf(b, ", target cpu unavailable: %v", g.TargetErr)
	}
	b.WriteString("\n")
}

// writeDiskText is fio's show_disk_util for the normal output.
func writeDiskText(b *strings.Builder, disks []fioDiskUtil) {
	if len(disks) == 0 {
		return
	}
	b.WriteString("\nDisk stats (read/write):\n")
	for _, d := range disks {
		if d.fioDiskAggr != nil {
			b.WriteString("  ")
		}
		fmt.Fprintf(b, "  %s: ios=%d/%d, merge=%d/%d, ticks=%d/%d, in_queue=%d, util=%3.2f%%",
			d.Name, d.ReadIOs, d.WriteIOs, d.ReadMerges, d.WriteMerges, d.ReadTicks, d.WriteTicks, d.InQueue, d.Util)
		if a := d.fioDiskAggr; a != nil {
			fmt.Fprintf(b, ", aggrios=%d/%d, aggrmerge=%d/%d, aggrticks=%d/%d, aggrin_queue=%d, aggrutil=%3.2f%%",
				a.AggrReadIOs, a.AggrWriteIOs, a.AggrReadMerges, a.AggrWriteMerges, a.AggrReadTicks, a.AggrWriteTicks, a.AggrInQueue, a.AggrUtil)
		}
		b.WriteString("\n")
	}
}
