package bench

import (
	"fmt"
	"io"
	"strings"
)

// TerseVersions are the terse formats WriteTerse writes (fio's
// --terse-version; 3 is fio's default).
var TerseVersions = []int{3, 4, 5}

// WriteTerse writes the report as fio's terse output (--output-format=terse,
// --minimal): one semicolon-separated line per job, fields in fio's order
// (stat.c show_thread_status_terse_all): version, fio version, job name,
// group, error; read, write (and trim from version 4) each as KiB, KiB/s,
// IOPS, runtime ms, submission, completion latency (µs), 20 completion
// latency percentiles, total latency, bandwidth min/max/share/mean/stddev
// (version 5 adds the bandwidth sample count and IOPS statistics); then
// CPU, I/O depth distribution and latency buckets (µs, ms). flashpath has no
// disk utilization statistics; with continue_on_error the error count and
// first error follow, then the description if set.
func (r *Report) WriteTerse(w io.Writer, version int) error {
	ok := false
	for _, v := range TerseVersions {
		ok = ok || v == version
	}
	if !ok {
		return fmt.Errorf("terse version %d: want 3, 4 or 5", version)
	}
	var b strings.Builder
	for _, j := range r.jsonDoc(false).Jobs {
		fmt.Fprintf(&b, "%d;%s;%s;%d;%d", version, Version, j.JobName, j.GroupID, j.Error)
		switch {
		case j.Mixed != nil && j.Read == nil: // unified_rw_reporting=mixed
			terseDir(&b, j.Mixed, version)
		default:
			terseDir(&b, j.Read, version)
			terseDir(&b, j.Write, version)
			if version >= 4 {
				terseDir(&b, j.Trim, version)
			}
			if j.Mixed != nil {
				terseDir(&b, j.Mixed, version)
			}
		}
		fmt.Fprintf(&b, ";%f%%;%f%%;%d;%d;%d", j.UsrCPU, j.SysCPU, j.Ctx, j.Majf, j.Minf)
		for _, e := range j.IODepthLevel {
			fmt.Fprintf(&b, ";%3.1f%%", e.v)
		}
		// Microsecond buckets, the first holding every sub-microsecond
		// I/O too (fio's stat_calc_lat_nu).
		var ns float64
		for _, e := range j.LatencyNs {
			ns += e.v.(float64)
		}
		for i, e := range j.LatencyUs {
			v := e.v.(float64)
			if i == 0 {
				v += ns
			}
			fmt.Fprintf(&b, ";%3.2f%%", v)
		}
		for _, e := range j.LatencyMs {
			fmt.Fprintf(&b, ";%3.2f%%", e.v)
		}
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

func terseDir(b *strings.Builder, d *fioDir, version int) {
	if d == nil {
		d = &fioDir{}
	}
	iops := uint64(0)
	if d.Runtime > 0 {
		iops = 1000 * d.TotalIOs / uint64(d.Runtime)
	}
	fmt.Fprintf(b, ";%d;%d;%d;%d", d.IOKBytes, d.BW, iops, d.Runtime)
	terseLat(b, &d.SlatNs)
	terseLat(b, &d.ClatNs)
	// The percentiles of total latency where reported (lat_percentiles),
	// else of completion latency, in µs.
	p := d.ClatNs.Percentile
	if d.LatNs.Percentile != nil {
		p = d.LatNs.Percentile
	}
	for i := range tersePercentiles {
		if p == nil || i >= len(*p) {
			b.WriteString(";0%=0")
			continue
		}
		e := (*p)[i]
		fmt.Fprintf(b, ";%s%%=%d", e.k, e.v.(uint64)/1000) // latJSON stores Percentile's uint64
	}
	terseLat(b, &d.LatNs)
	if d.BWSamples > 0 {
		fmt.Fprintf(b, ";%d;%d;%f%%;%f;%f", d.BWMin, d.BWMax, min(d.BWAgg, 100), d.BWMean, d.BWDev)
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
