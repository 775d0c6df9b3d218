package bench

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// disable_lat, disable_clat, disable_slat, disable_bw_measurement and
// gtod_reduce against fio 3.33's output for the same job:
// testdata/fio-3.33-OPTION.fio (OPTION=1 on the null engine, rw=randrw
// at iodepth=4, so that slat is measured) and fio-3.33-disable_clat-sync
// (psync writes with fsync=4 on a file). What fio 3.33 does (io_u.c
// account_io_completion and io_u_queued, init.c add_job, options.c
// str_gtod_reduce_cb):
//   - disable_lat: no total latency (lat_ns N=0, no " lat (" line),
//     lat_percentiles off; fio's slat then comes from an unset start
//     time (seconds of garbage), which the bench does not copy: its slat
//     is measured as usual, the same lines and keys;
//   - disable_clat: no completion latency, clat_percentiles off, and none
//     of the latency buckets (lat (nsec/usec/msec), latency_ns/us/ms,
//     the terse buckets) nor sync latencies, which fio counts from clat;
//     sync's total_ios is still counted;
//   - disable_slat: no submission latency, slat_percentiles off;
//   - disable_bw: the 500 ms bandwidth windows are kept; only a per-I/O
//     bandwidth log (write_bw_log, log_avg_msec=0) stays empty, and the
//     bandwidth statistics taken from it are zero;
//   - gtod_reduce: all four, and every percentile option off where it
//     stands (a later disable_clat=0 brings clat back, without
//     percentiles); a per-I/O IOPS log stays empty too.

var disableGoldens = []string{"disable_lat", "disable_clat", "disable_slat", "disable_bw", "gtod_reduce"}

// latBlocks lists the latency lines of a normal report, without their
// values or units: each direction, its slat/clat/lat lines, percentile
// blocks, the latency buckets (once) and the sync block.
func latBlocks(text string) []string {
	dir := regexp.MustCompile(`^  (read|write|trim|mixed): IOPS=`)
	stat := regexp.MustCompile(`^    ( ?(slat|clat|lat|sync)) \((nsec|usec|msec)\): min=`)
	pct := regexp.MustCompile(`^\s+(\S+ percentiles) \(`)
	bucket := regexp.MustCompile(`^  lat \((nsec|usec|msec)\)\s+: `)
	var out []string
	for _, l := range strings.Split(text, "\n") {
		var b string
		switch {
		case dir.MatchString(l):
			b = dir.FindStringSubmatch(l)[1] + ":"
		case stat.MatchString(l):
			b = stat.FindStringSubmatch(l)[2]
		case pct.MatchString(l):
			b = pct.FindStringSubmatch(l)[1]
		case bucket.MatchString(l):
			b = "latency buckets"
		case strings.HasPrefix(l, "  fsync/fdatasync/sync_file_range:"):
			b = "fsync block"
		default:
			continue
		}
		if len(out) == 0 || out[len(out)-1] != b {
			out = append(out, b)
		}
	}
	return out
}

// measured is which statistics of a JSON report have samples: each
// direction's slat, clat and lat, the latency buckets, and sync's.
func measured(t *testing.T, doc []byte) map[string]bool {
	t.Helper()
	type lat struct {
		N uint64 `json:"N"`
	}
	type dir struct {
		Slat      lat     `json:"slat_ns"`
		Clat      lat     `json:"clat_ns"`
		Lat       lat     `json:"lat_ns"`
		BWSamples float64 `json:"bw_samples"`
	}
	var v struct {
		Jobs []struct {
			Read, Write dir
			Sync        struct {
				TotalIOs uint64 `json:"total_ios"`
				Lat      lat    `json:"lat_ns"`
			} `json:"sync"`
			LatNs map[string]float64 `json:"latency_ns"`
			LatUs map[string]float64 `json:"latency_us"`
			LatMs map[string]float64 `json:"latency_ms"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatal(err)
	}
	j := v.Jobs[0]
	m := map[string]bool{"sync total_ios": j.Sync.TotalIOs > 0, "sync lat_ns": j.Sync.Lat.N > 0}
	for name, d := range map[string]dir{"read": j.Read, "write": j.Write} {
		m[name+" slat_ns"], m[name+" clat_ns"], m[name+" lat_ns"] = d.Slat.N > 0, d.Clat.N > 0, d.Lat.N > 0
	}
	for _, b := range []map[string]float64{j.LatNs, j.LatUs, j.LatMs} {
		for _, p := range b {
			m["latency buckets"] = m["latency buckets"] || p > 0
		}
	}
	return m
}

// tersePctKeys is a terse line's percentile labels ("1.000000%", or
// "0%" for fio's empty slots), and whether its latency buckets (the
// last 22 fields, on a job without disks) hold anything.
func tersePctKeys(line string) (keys []string, buckets bool) {
	f := strings.Split(strings.TrimSpace(line), ";")
	for _, s := range f {
		if k, _, ok := strings.Cut(s, "%="); ok {
			keys = append(keys, k+"%")
		}
	}
	for _, s := range f[len(f)-22:] {
		if v, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64); err == nil && v > 0 {
			buckets = true
		}
	}
	return keys, buckets
}

// TestDisableOptionsLikeFio: each option leaves out what fio 3.33 leaves
// out for the same job, in every report: the normal report's latency
// lines and blocks, the JSON's statistics with samples (and json+'s
// keys: percentiles and bins only where fio has them), the terse line's
// percentile labels and buckets.
func TestDisableOptionsLikeFio(t *testing.T) {
	for _, opt := range disableGoldens {
		t.Run(opt, func(t *testing.T) {
			name := "fio-3.33-" + opt
			fio, ours, rep := goldenText(t, name)
			if want, got := latBlocks(fio), latBlocks(ours); !slices.Equal(want, got) {
				t.Errorf("normal report's latency lines\n  %q\nwant fio's\n  %q\n%s", got, want, ours)
			}
			golden, err := os.ReadFile("testdata/" + name + ".json+")
			if err != nil {
				t.Fatal(err)
			}
			var js bytes.Buffer
			if err := rep.WriteJSONPlus(&js); err != nil {
				t.Fatal(err)
			}
			compareShapes(t, shapeOf(t, golden), shapeOf(t, js.Bytes()))
			want, got := measured(t, golden), measured(t, js.Bytes())
			for k, w := range want {
				if got[k] != w {
					t.Errorf("json+ %s has samples: %v, fio's %v", k, got[k], w)
				}
			}
			goldenTerse, err := os.ReadFile("testdata/" + name + ".terse3")
			if err != nil {
				t.Fatal(err)
			}
			var terse strings.Builder
			if err := rep.WriteTerse(&terse, 3); err != nil {
				t.Fatal(err)
			}
			if w, g := terseKinds(string(goldenTerse)), terseKinds(terse.String()); !slices.Equal(w, g) {
				t.Errorf("terse fields\n%v\nwant fio's\n%v", g, w)
			}
			wk, wb := tersePctKeys(string(goldenTerse))
			gk, gb := tersePctKeys(terse.String())
			if !slices.Equal(wk, gk) || wb != gb {
				t.Errorf("terse percentile labels %q, buckets %v\nwant fio's %q, %v", gk, gb, wk, wb)
			}
		})
	}
}

// TestDisableClatSyncLikeFio: with disable_clat fio counts the syncs of
// fsync=N (sync total_ios, issued rwts' fourth) but measures none: no
// sync latency in the JSON, no fsync block in the normal report.
func TestDisableClatSyncLikeFio(t *testing.T) {
	golden, err := os.ReadFile("testdata/fio-3.33-disable_clat-sync.json")
	if err != nil {
		t.Fatal(err)
	}
	goldenText, err := os.ReadFile("testdata/fio-3.33-disable_clat-sync.normal")
	if err != nil {
		t.Fatal(err)
	}
	job, err := os.ReadFile("testdata/fio-3.33-disable_clat-sync.fio")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(job), "/tmp/fio-golden/f", filepath.Join(t.TempDir(), "f"), 1)
	rep := mustRun(t)(runJobFile(t, text))
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	want, got := measured(t, golden), measured(t, js.Bytes())
	if !want["sync total_ios"] || want["sync lat_ns"] {
		t.Fatalf("fio's golden: %v", want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("json %s has samples: %v, fio's %v", k, got[k], w)
		}
	}
	var out strings.Builder
	if err := rep.WriteText(&out); err != nil {
		t.Fatal(err)
	}
	if w, g := latBlocks(string(goldenText)), latBlocks(out.String()); !slices.Equal(w, g) {
		t.Errorf("normal report's latency lines\n  %q\nwant fio's\n  %q\n%s", g, w, out.String())
	}
	issued := regexp.MustCompile(`issued rwts: total=\d+,\d+,\d+,(\d+)`)
	if m := issued.FindStringSubmatch(out.String()); m == nil || m[1] == "0" {
		t.Errorf("issued rwts without the syncs:\n%s", out.String())
	}
}

// TestDisableOptionsSetJob: gtod_reduce sets the four and turns the
// percentiles off where it stands, as fio's callback; a disabled
// latency has no percentiles whatever comes after (fio's add_job).
func TestDisableOptionsSetJob(t *testing.T) {
	for _, tc := range []struct {
		opts                   []string
		lat, clat, slat, bw    bool // disabled
		latPct, clatPct, slPct bool
	}{
		{opts: nil, clatPct: true},
		{opts: []string{"gtod_reduce=1"}, lat: true, clat: true, slat: true, bw: true},
		{opts: []string{"gtod_reduce"}, lat: true, clat: true, slat: true, bw: true},
		{opts: []string{"gtod_reduce=0"}, clatPct: true},
		{opts: []string{"gtod_reduce=1", "disable_clat=0"}, lat: true, slat: true, bw: true},
		{opts: []string{"gtod_reduce=1", "disable_clat=0", "clat_percentiles=1"}, lat: true, slat: true, bw: true, clatPct: true},
		{opts: []string{"disable_clat=0", "gtod_reduce=1"}, lat: true, clat: true, slat: true, bw: true},
		{opts: []string{"disable_lat=1", "lat_percentiles=1"}, lat: true, clatPct: true},
		{opts: []string{"disable_clat=1", "lat_percentiles=1"}, clat: true, latPct: true},
		{opts: []string{"slat_percentiles=1", "disable_slat=1"}, slat: true, clatPct: true},
		{opts: []string{"disable_bw=1"}, bw: true, clatPct: true},
	} {
		j := mustJobs(t, opts(append([]string{"ioengine=null", "size=1m"}, tc.opts...)...)...)[0]
		got := [7]bool{j.DisableLat, j.DisableClat, j.DisableSlat, j.DisableBW, j.LatPct, j.ClatPct, j.SlatPct}
		if want := [7]bool{tc.lat, tc.clat, tc.slat, tc.bw, tc.latPct, tc.clatPct, tc.slPct}; got != want {
			t.Errorf("%q: disable lat/clat/slat/bw, lat/clat/slat percentiles %v, want %v", tc.opts, got, want)
		}
	}
}

// TestDisableOptionsLogs: as fio 3.33, write_lat_log writes no log of a
// latency not measured (not even an empty file), a per-I/O bandwidth log
// (log_avg_msec=0) stays empty with disable_bw, and a per-I/O IOPS log
// with gtod_reduce; the bandwidth and IOPS statistics then have no
// samples. A synchronous engine's I/O has no slat: its slat log is empty
// (fio's, for psync, too).
func TestDisableOptionsLogs(t *testing.T) {
	lines := func(path string) int {
		b, err := os.ReadFile(path)
		if err != nil {
			return -1 // no such file
		}
		return bytes.Count(b, []byte("\n"))
	}
	for _, tc := range []struct {
		opt, engine string
		// lines of slat, clat, lat, bw, iops (-1: no file; 1: some)
		want [5]int
	}{
		{"gtod_reduce=1", "null", [5]int{-1, -1, -1, 0, 0}},
		{"disable_bw=1", "null", [5]int{1, 1, 1, 0, 1}},
		{"disable_lat=1", "null", [5]int{1, 1, -1, 1, 1}},
		{"disable_clat=1\ndisable_slat=1", "null", [5]int{-1, -1, 1, 1, 1}},
		{"disable_clat=1\ndisable_slat=1\ndisable_bw=1", "null", [5]int{-1, -1, 1, 0, 0}},
		{"", "psync", [5]int{0, 1, 1, 1, 1}},
	} {
		dir := t.TempDir()
		p := filepath.Join(dir, "l")
		job := "[j]\nfilename=" + filepath.Join(dir, "f") + "\nsize=64k\nbs=4k\nrw=randrw\niodepth=4\nioengine=" + tc.engine +
			"\nwrite_lat_log=" + p + "\nwrite_bw_log=" + p + "\nwrite_iops_log=" + p + "\n" + tc.opt + "\n"
		rep := mustRun(t)(runJobFile(t, job))
		var got [5]int
		for k, kind := range logSuffix {
			got[k] = min(lines(p+"_"+kind+".1.log"), 1)
		}
		if got != tc.want {
			t.Errorf("%q on %s: lines of slat, clat, lat, bw, iops logs %v, want %v", tc.opt, tc.engine, got, tc.want)
		}
		j := rep.Groups[0].Jobs[0].Job
		if j.noBWSamples() != (tc.want[3] == 0) || j.noIOPSSamples() != (tc.want[4] == 0) {
			t.Errorf("%q: no bandwidth samples %v, no IOPS samples %v", tc.opt, j.noBWSamples(), j.noIOPSSamples())
		}
	}
	// Averaged logs keep their windows, as fio's.
	j := mustJobs(t, opts("ioengine=null", "size=1m", "gtod_reduce=1", "write_bw_log=x", "write_iops_log=x", "log_avg_msec=100")...)[0]
	if j.noBWSamples() || j.noIOPSSamples() {
		t.Error("gtod_reduce with log_avg_msec=100: the windows are dropped; fio keeps them")
	}
}
