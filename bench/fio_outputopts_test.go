package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The report options against fio 3.33's output for the same job files:
// fio-3.33-pct.fio (slat_percentiles, lat_percentiles,
// significant_figures=6, percentile_list=1:50:99.999, on the null
// engine), fio-3.33-pct0.fio (significant_figures=2, percentile_list
// =50:99) and fio-3.33-du0.fio (disk_util=0 on a file on a local disk).

// goldenText runs testdata/NAME.fio through the bench's normal report and
// returns it with fio's.
func goldenText(t *testing.T, name string) (fio, ours string, rep *Report) {
	t.Helper()
	golden, err := os.ReadFile("testdata/" + name + ".normal")
	if err != nil {
		t.Fatal(err)
	}
	rep = runGoldenJob(t, name)
	var out strings.Builder
	if err := rep.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	return string(golden), out.String(), rep
}

// percentileLabels lists each percentile block of a normal report: its
// name and unit line's name, then its labels as printed ("1.000th").
func percentileLabels(text string) []string {
	head := regexp.MustCompile(`^\s+(\S+) percentiles \((nsec|usec|msec)\):`)
	label := regexp.MustCompile(`\s*([\d.]+th)=\[`)
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if m := head.FindStringSubmatch(l); m != nil {
			out = append(out, m[1]+" percentiles:")
			continue
		}
		if strings.HasPrefix(l, "     |") {
			for _, m := range label.FindAllStringSubmatch(l, -1) {
				out = append(out, m[1])
			}
		}
	}
	return out
}

// TestPercentileOptionsLikeFio: slat_percentiles prints fio's slat
// percentile block before clat's and lat's (lat_percentiles=1), and the
// labels have percentile_list's decimals (fio's percentile_precision: 3
// for 99.999, 0 for 50:99), as fio 3.33 prints them for the same job.
func TestPercentileOptionsLikeFio(t *testing.T) {
	for _, name := range []string{"fio-3.33-pct", "fio-3.33-pct0"} {
		fio, ours, _ := goldenText(t, name)
		want, got := percentileLabels(fio), percentileLabels(ours)
		if len(want) == 0 || !slices.Equal(want, got) {
			t.Errorf("%s: percentile blocks and labels\n  %q\nwant fio's\n  %q\n%s", name, got, want, ours)
		}
	}
}

// TestSlatPercentilesJSONLikeFio: with slat_percentiles (and
// lat_percentiles) the json+ slat_ns, clat_ns and lat_ns of each
// direction carry fio's percentile keys and bins.
func TestSlatPercentilesJSONLikeFio(t *testing.T) {
	golden, err := os.ReadFile("testdata/fio-3.33-pct.json+")
	if err != nil {
		t.Fatal(err)
	}
	rep := runGoldenJob(t, "fio-3.33-pct")
	var out bytes.Buffer
	if err := rep.WriteJSONPlus(&out); err != nil {
		t.Fatal(err)
	}
	fio, ours := shapeOf(t, golden), shapeOf(t, out.Bytes())
	for _, d := range []string{"read", "write"} {
		p := ".jobs[]." + d + ".slat_ns"
		if !slices.Contains(fio.keys[p], "percentile") || !slices.Contains(fio.keys[p], "bins") {
			t.Fatalf("fio's golden %s has no percentiles: %q", p, fio.keys[p])
		}
	}
	compareShapes(t, fio, ours)
	// Off (fio's default), slat_ns has none.
	rep = runGoldenJob(t, "fio-3.33-null")
	out.Reset()
	if err := rep.WriteJSONPlus(&out); err != nil {
		t.Fatal(err)
	}
	if s := shapeOf(t, out.Bytes()); slices.Contains(s.keys[".jobs[].read.slat_ns"], "percentile") {
		t.Errorf("slat_ns %q without slat_percentiles", s.keys[".jobs[].read.slat_ns"])
	}
}

// TestSignificantFiguresLikeFio: significant_figures sets the digits of
// the normal report's sizes, bandwidths and IOPS: the job line's block
// sizes and the I/O sizes (which depend on the job, not the run) are
// fio's own for significant_figures=2, and the bench's for 6 are
// num2str's with 6 digits.
func TestSignificantFiguresLikeFio(t *testing.T) {
	ioField := regexp.MustCompile(`\(([^/()]+)/\d+msec\)|io=(\S+ \([^)]+\))`)
	fields := func(text string) []string {
		var out []string
		for _, m := range ioField.FindAllStringSubmatch(text, -1) {
			out = append(out, m[1]+m[2])
		}
		return out
	}
	for _, name := range []string{"fio-3.33-pct", "fio-3.33-pct0"} {
		fio, ours, rep := goldenText(t, name)
		jobLine := func(s string) string { return strings.SplitN(s, "\n", 2)[0] }
		if jobLine(fio) != jobLine(ours) {
			t.Errorf("%s: job line\n  %s\nwant fio's\n  %s", name, jobLine(ours), jobLine(fio))
		}
		if name == "fio-3.33-pct0" { // a whole 4m read: the same sizes as fio's
			if want, got := fields(fio), fields(ours); len(want) != 2 || !slices.Equal(want, got) {
				t.Errorf("%s: I/O sizes %q, want fio's %q", name, got, want)
			}
			continue
		}
		var want []string
		d := rep.Groups[0].Jobs[0].Dir
		for _, dir := range []Direction{DirRead, DirWrite} {
			want = append(want, num2str(d[dir].Bytes, 6, 1, true, n2sByte))
		}
		for _, dir := range []Direction{DirRead, DirWrite} {
			want = append(want, num2str(d[dir].Bytes, 6, 1, true, n2sByte)+" ("+num2str(d[dir].Bytes, 6, 1, false, n2sByte)+")")
		}
		if got := fields(ours); !slices.Equal(want, got) {
			t.Errorf("%s: I/O sizes %q, want six figures %q", name, got, want)
		}
	}
}

// TestReportOptionSetters: percentile_list's precision is fio's (the most
// digits after the point, 0 for integers); significant_figures takes
// fio's range, 1 to 10.
func TestReportOptionSetters(t *testing.T) {
	for list, want := range map[string]int{"1:50:99.999": 3, "50:99": 0, "99.5:99.90": 2, "50.": 0} {
		j := DefaultJob()
		if err := setPercentiles(&j, list); err != nil {
			t.Fatal(err)
		}
		if j.pctPrecision() != want {
			t.Errorf("percentile_list=%s: precision %d, want %d", list, j.pctPrecision(), want)
		}
	}
	if j := DefaultJob(); j.pctPrecision() != 2 || j.sigFigs() != 4 || j.NoDiskUtil || j.SlatPct {
		t.Errorf("defaults: precision %d, significant figures %d, disk_util off %v, slat percentiles %v; want fio's 2, 4, on, off",
			j.pctPrecision(), j.sigFigs(), j.NoDiskUtil, j.SlatPct)
	}
	for _, v := range []string{"0", "11"} {
		if _, err := BuildJobs(nil, []Section{{Name: "t", Options: opts("ioengine=null", "size=1m", "significant_figures="+v)}}, nil); err == nil {
			t.Errorf("significant_figures=%s accepted; fio takes 1 to 10", v)
		}
	}
	j := mustJobs(t, opts("ioengine=null", "size=1m", "significant_figures=10", "slat_percentiles", "disk_util=0")...)[0]
	if j.sigFigs() != 10 || !j.SlatPct || !j.NoDiskUtil {
		t.Errorf("significant_figures=10 slat_percentiles disk_util=0: %d %v %v", j.sigFigs(), j.SlatPct, j.NoDiskUtil)
	}
}

// TestDiskUtilOffLikeFio: disk_util=0 leaves the job's disk out of every
// report, as fio 3.33 does for fio-3.33-du0.fio (no "disk_util" in the
// JSON, no Disk stats in the normal output, terse lines end with the
// latency buckets); another job on the same disk without it brings the
// disk back.
func TestDiskUtilOffLikeFio(t *testing.T) {
	dir := t.TempDir()
	if blockDirOf(filepath.Join(dir, "data")) == "" {
		t.Skipf("%s is not on a local block device: no disk_util to check", dir)
	}
	goldenJSON, err := os.ReadFile("testdata/fio-3.33-du0.json")
	if err != nil {
		t.Fatal(err)
	}
	goldenTerse, err := os.ReadFile("testdata/fio-3.33-du0.terse3")
	if err != nil {
		t.Fatal(err)
	}
	run := func(file string) *Report {
		t.Helper()
		return mustRun(t)(runJobFile(t, file))
	}
	global := "[global]\nfilename=" + filepath.Join(dir, "data") + "\nsize=1m\nbs=4k\nthread\n"
	rep := run(global + "disk_util=0\n\n[j]\nrw=randread\nioengine=psync\n")
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	fio, ours := shapeOf(t, goldenJSON), shapeOf(t, js.Bytes())
	if want, got := fio.keys[""], slices.DeleteFunc(slices.Clone(ours.keys[""]), func(k string) bool { return k == "flashpath" }); !slices.Equal(want, got) || slices.Contains(want, "disk_util") {
		t.Errorf("top-level keys %q, want fio's %q (no disk_util)", got, want)
	}
	var text strings.Builder
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(text.String(), "Disk stats") {
		t.Errorf("disk_util=0, yet:\n%s", text.String())
	}
	var terse strings.Builder
	if err := rep.WriteTerse(&terse, 3); err != nil {
		t.Fatal(err)
	}
	if want, got := terseKinds(string(goldenTerse)), terseKinds(terse.String()); !slices.Equal(want, got) {
		t.Errorf("terse: %d fields\n%v\nwant fio's %d\n%v", len(got), got, len(want), want)
	}
	// fio's init_disk_util is per job: b's disk is a's too.
	rep = run(global + "\n[a]\nrw=randread\nioengine=psync\ndisk_util=0\n[b]\nrw=randread\nioengine=psync\n")
	if len(rep.diskUtil) == 0 {
		t.Error("a job with disk_util=1 on the disk: want it reported")
	}
}
