package bench

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// TerseVersions are the terse formats WriteTerse writes (fio's
// --terse-version; 3 is fio's default).
var TerseVersions = []int{3, 4, 5}

// WriteTerse writes the report as fio's terse output (--output-format=terse,
// --minimal): one semicolon-separated line per job, fields in fio's order
// (stat.c show_thread_status_terse_all, fio's HOWTO "Terse output"):
// version, fio version, job name, group, error; read, write (and trim
// from version 4) each as KiB, KiB/s, IOPS, runtime ms, submission,
// completion latency (µs), 20 completion latency percentiles, total
// latency, bandwidth min/max/share/mean/stddev (version 5 adds the
// bandwidth sample count and IOPS statistics); then CPU, I/O depth
// distribution and latency buckets (µs, ms); then for each disk the 9
// disk utilization fields (name, read/write ios, merges, ticks,
// in_queue, util), with the 9 "slaves" fields after a stacked device;
// with continue_on_error the error count and first error, then the
// description if set.
func (r *Report) WriteTerse(w io.Writer, version int) error {
	if !slices.Contains(TerseVersions, version) {
		return fmt.Errorf("terse version %d: want 3, 4 or 5", version)
	}
	run := r.fio(false)
	var disks strings.Builder
	for _, d := range run.disks {
		fmt.Fprintf(&disks, ";%s;%d;%d;%d;%d;%d;%d;%d;%3.2f%%", d.Name, d.ReadIOs, d.WriteIOs, d.ReadMerges, d.WriteMerges,
			d.ReadTicks, d.WriteTicks, d.InQueue, d.Util)
		if a := d.fioDiskAggr; a != nil {
			fmt.Fprintf(&disks, ";slaves;%d;%d;%d;%d;%d;%d;%d;%3.2f%%", a.AggrReadIOs, a.AggrWriteIOs, a.AggrReadMerges,
				a.AggrWriteMerges, a.AggrReadTicks, a.AggrWriteTicks, a.AggrInQueue, a.AggrUtil)
		}
	}
	var b strings.Builder
	for i := range run.jobs {
		j := &run.jobs[i]
		s := j.stats
		rs := run.groups[run.group[i]]
		job := s.jr.Job
		fmt.Fprintf(&b, "%d;%s;%s;%d;%d", version, Version, j.JobName, j.GroupID, j.Error)
		if j.MixedOnly != nil {
			terseDir(&b, j.MixedOnly, job, rs.agg[0], version) // the group's sum is in the first
		} else {
			terseDir(&b, j.Read, job, rs.agg[DirRead], version)
			terseDir(&b, j.Write, job, rs.agg[DirWrite], version)
			if version >= 4 {
				terseDir(&b, j.Trim, job, rs.agg[DirTrim], version)
			}
			if j.Mixed != nil {
				terseDir(&b, j.Mixed, job, rs.agg[DirRead]+rs.agg[DirWrite]+rs.agg[DirTrim], version)
			}
		}
		fmt.Fprintf(&b, ";%f%%;%f%%;%d;%d;%d", j.UsrCPU, j.SysCPU, j.Ctx, j.Majf, j.Minf)
		for _, v := range depthDist(s.jr.DepthHist) {
			fmt.Fprintf(&b, ";%3.1f%%", v)
		}
		// Microsecond buckets, the first holding every sub-microsecond
		// I/O too (fio's stat_calc_lat_nu), then millisecond ones.
		ln, lu, lm := latencyDist(&s.lat)
		for i, v := range lu {
			if i == 0 {
				for _, n := range ln {
					v += n
				}
			}
			fmt.Fprintf(&b, ";%3.2f%%", v)
		}
		for _, v := range lm {
			fmt.Fprintf(&b, ";%3.2f%%", v)
		}
		b.WriteString(disks.String())
		if j.TotalErr != nil {
			fmt.Fprintf(&b, ";%d;%d", *j.TotalErr, *j.FirstError)
		}
		if j.Desc != "" {
			fmt.Fprintf(&b, ";%s", j.Desc)
		}
		b.WriteByte('\n')
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// tersePercentiles is how many completion latency percentiles a terse
// line carries (fio's FIO_IO_U_LIST_MAX_LEN); missing ones are "0%=0".
const tersePercentiles = 20

// terseDir is fio's show_ddir_status_terse for one direction (or the
// mixed sum); groupAgg is the group's aggregate bandwidth, bytes/s.
func terseDir(b *strings.Builder, d *fioDir, j *Job, groupAgg uint64, version int) {
	iops := uint64(0)
	if d.Runtime > 0 {
		iops = 1000 * d.TotalIOs / uint64(d.Runtime)
	}
	fmt.Fprintf(b, ";%d;%d;%d;%d", d.IOKBytes, d.BW, iops, d.Runtime)
	terseLat(b, &d.SlatNs)
	terseLat(b, &d.ClatNs)
	// The percentiles of total latency where reported (lat_percentiles),
	// else of completion latency, in µs; fio prints its whole list's
	// keys even for a direction without samples (values 0).
	var p *orderedKV
	switch {
	case j.LatPct:
		p = d.LatNs.Percentile
	case j.ClatPct:
		p = d.ClatNs.Percentile
	}
	var list []float64
	if j.LatPct || j.ClatPct {
		list = sortedPercentiles(j.percentiles(true))
	}
	for i := range tersePercentiles {
		if i >= len(list) {
			b.WriteString(";0%=0")
			continue
		}
		v := uint64(0)
		if p != nil && i < len(*p) {
			v = (*p)[i].v.(uint64) / 1000 // latJSON stores Percentile's uint64
		}
		fmt.Fprintf(b, ";%f%%=%d", list[i], v)
	}
	terseLat(b, &d.LatNs)
	if d.BWSamples > 0 {
		per := 100.0
		if groupAgg > 0 {
			per = min(100, d.BWMean*100/float64(groupAgg/1024))
		}
		fmt.Fprintf(b, ";%d;%d;%f%%;%f;%f", d.BWMin, d.BWMax, per, d.BWMean, d.BWDev)
	} else {
		fmt.Fprintf(b, ";%d;%d;%f%%;%f;%f", 0, 0, 0.0, 0.0, 0.0)
	}
	if version == 5 {
		fmt.Fprintf(b, ";%d", d.BWSamples)
		fmt.Fprintf(b, ";%d;%d;%f;%f;%d", d.IOPSMin, d.IOPSMax, d.IOPSMean, d.IOPSStddev, d.IOPSSamples)
	}
}

// terseLat is min, max, mean, stddev in µs (fio divides the ns values).
func terseLat(b *strings.Builder, l *fioLat) {
	if l.N == 0 {
		fmt.Fprintf(b, ";%d;%d;%f;%f", 0, 0, 0.0, 0.0)
		return
	}
	fmt.Fprintf(b, ";%d;%d;%f;%f", l.Min/1000, l.Max/1000, l.Mean/1000, l.Stddev/1000)
}
