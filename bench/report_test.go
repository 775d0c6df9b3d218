package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestJSONValuesMeanFios: the JSON's numbers mean what fio's mean (its
// shape is TestJSONPlusShapeIsFios's).
func TestJSONValuesMeanFios(t *testing.T) {
	jobs := mustJobs(t, opts("ioengine=null", "rw=randrw", "size=4m", "iodepth=4")...)
	rep, err := Run(context.Background(), Config{Jobs: jobs})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := rep.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Jobs []struct {
			Read struct {
				IOBytes  uint64  `json:"io_bytes"`
				TotalIOs uint64  `json:"total_ios"`
				IOPS     float64 `json:"iops"`
				BW       uint64  `json:"bw"`
				BWBytes  uint64  `json:"bw_bytes"`
				LatNs    struct {
					N uint64 `json:"N"`
				} `json:"lat_ns"`
				ClatNs struct {
					Percentile map[string]uint64 `json:"percentile"`
				} `json:"clat_ns"`
			} `json:"read"`
			Write struct {
				TotalIOs uint64 `json:"total_ios"`
			} `json:"write"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	r := doc.Jobs[0].Read
	if r.TotalIOs+doc.Jobs[0].Write.TotalIOs != 1024 || r.IOBytes != r.TotalIOs*4096 || r.LatNs.N != r.TotalIOs {
		t.Errorf("counts: %+v", doc.Jobs[0])
	}
	if r.BW != r.BWBytes/1024 {
		t.Errorf("bw %d is not bw_bytes/1024 (%d)", r.BW, r.BWBytes)
	}
	if _, ok := r.ClatNs.Percentile["99.990000"]; !ok {
		t.Errorf("percentile keys: %v", r.ClatNs.Percentile)
	}
}

func TestTextReportLooksLikeFio(t *testing.T) {
	jobs := mustJobs(t, opts("ioengine=null", "rw=randread", "size=4m", "iodepth=8")...)
	rep, err := Run(context.Background(), Config{Jobs: jobs})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep.WriteText(&b)
	for _, want := range []string{"(groupid=0, jobs=1): err= 0", "read: IOPS=", "clat percentiles", "99.99th=[", "cpu          : usr=", "IO depths    :", "Run status group 0 (all jobs):", "READ: bw=", "io=4096KiB"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, b.String())
		}
	}
}

// TestPercentileOptions: percentile_list replaces the reported
// percentiles; clat_percentiles=0 and lat_percentiles=0 drop them.
func TestPercentileOptions(t *testing.T) {
	run := func(extra ...string) (string, string) {
		t.Helper()
		jobs := mustJobs(t, opts(append([]string{"ioengine=null", "rw=randread", "size=1m"}, extra...)...)...)
		rep, err := Run(context.Background(), Config{Jobs: jobs})
		if err != nil {
			t.Fatal(err)
		}
		var js, txt bytes.Buffer
		rep.WriteJSON(&js)
		rep.WriteText(&txt)
		return js.String(), txt.String()
	}
	js, txt := run("percentile_list=50:99.5:99.999", "lat_percentiles=1")
	var doc struct {
		Jobs []struct {
			Read struct {
				Clat struct{ Percentile map[string]uint64 } `json:"clat_ns"`
				Lat  struct{ Percentile map[string]uint64 } `json:"lat_ns"`
			} `json:"read"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(js), &doc); err != nil {
		t.Fatal(err)
	}
	p := doc.Jobs[0].Read.Clat.Percentile
	if _, ok := p["99.999000"]; !ok || len(p) != 3 || len(doc.Jobs[0].Read.Lat.Percentile) != 3 {
		t.Errorf("percentile_list: clat %v, lat %v", p, doc.Jobs[0].Read.Lat.Percentile)
	}
	// 99.999 gives the labels three decimals, as fio's percentile_precision.
	if !strings.Contains(txt, "99.500th=[") || strings.Contains(txt, " 1.000th=[") {
		t.Errorf("text percentiles do not follow percentile_list:\n%s", txt)
	}
	js, txt = run("clat_percentiles=0", "lat_percentiles=0")
	if strings.Contains(js, `"percentile"`) || strings.Contains(txt, "clat percentiles") {
		t.Errorf("percentiles reported with clat_percentiles=0 lat_percentiles=0")
	}
	for _, bad := range []string{"0", "101", "50:x", strings.Repeat("1:", 20) + "1"} {
		if _, err := BuildJobs(nil, []Section{{Name: "x", Options: opts("percentile_list=" + bad)}}, nil); err == nil || !strings.Contains(err.Error(), "percentile") {
			t.Errorf("percentile_list=%s: err = %v", bad, err)
		}
	}
}

// TestUnifiedRWReporting: mixed reports only the sum of the directions,
// under "mixed", in JSON and text; both reports them apart and summed.
func TestUnifiedRWReporting(t *testing.T) {
	for _, tc := range []struct {
		mode string
		keys []string
	}{{"0", []string{"read", "write", "trim"}}, {"mixed", []string{"mixed"}}, {"both", []string{"read", "write", "trim", "mixed"}}} {
		rep, err := runJobs(t, Option{"ioengine", "null"}, Option{"rw", "randrw"}, Option{"size", "1m"},
			Option{"unified_rw_reporting", tc.mode})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := rep.WriteJSON(&buf); err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Jobs []map[string]json.RawMessage `json:"jobs"`
		}
		if err := json.Unmarshal(buf.Bytes(), &doc); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, k := range []string{"read", "write", "trim", "mixed"} {
			if _, ok := doc.Jobs[0][k]; ok {
				got = append(got, k)
			}
		}
		if strings.Join(got, " ") != strings.Join(tc.keys, " ") {
			t.Errorf("unified_rw_reporting=%s: JSON has %v, want %v", tc.mode, got, tc.keys)
		}
		if m, ok := doc.Jobs[0]["mixed"]; ok {
			var mixed struct {
				TotalIOs uint64 `json:"total_ios"`
				IOBytes  uint64 `json:"io_bytes"`
			}
			if err := json.Unmarshal(m, &mixed); err != nil || mixed.TotalIOs != 256 || mixed.IOBytes != 1<<20 {
				t.Errorf("unified_rw_reporting=%s: mixed %+v, %v; want 256 I/Os, 1 MiB", tc.mode, mixed, err)
			}
		}
		buf.Reset()
		if err := rep.WriteText(&buf); err != nil {
			t.Fatal(err)
		}
		if has := strings.Contains(buf.String(), "  MIXED: bw="); has != (tc.mode != "0") {
			t.Errorf("unified_rw_reporting=%s: group status has a MIXED line: %v", tc.mode, has)
		}
		// mixed: the group's one job has one (summed) bandwidth, so its
		// slowest and fastest are the same, and the aggregate is it, as fio.
		if m := regexp.MustCompile(`  MIXED: bw=(\S+) \(\S+\), (\S+)-(\S+) \(`).FindStringSubmatch(buf.String()); tc.mode == "mixed" && (m == nil || m[1] != m[2] || m[2] != m[3]) {
			t.Errorf("unified_rw_reporting=mixed: group line %q: want bw=X, X-X", m)
		}
		if has := strings.Contains(buf.String(), "   READ: bw="); has != (tc.mode != "mixed") {
			t.Errorf("unified_rw_reporting=%s: group status has a READ line: %v", tc.mode, has)
		}
		if has := strings.Contains(buf.String(), "  mixed: IOPS="); has != (tc.mode != "0") {
			t.Errorf("unified_rw_reporting=%s: text has a mixed line: %v\n%s", tc.mode, has, buf.String())
		}
	}
}

// TestNum2strIsFios: num2str prints what fio 3.33's lib/num2str.c prints
// (testdata/fio-3.33-num2str.txt, generated by compiling fio's function)
// for the lengths and units the reports use.
func TestNum2strIsFios(t *testing.T) {
	b, err := os.ReadFile("testdata/fio-3.33-num2str.txt")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		var num uint64
		var maxlen, pow2, units int
		var want string
		if _, err := fmt.Sscanf(line, "%d %d %d %d %s", &num, &maxlen, &pow2, &units, &want); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if got := num2str(num, maxlen, 1, pow2 == 1, n2sUnit(units)); got != want {
			t.Errorf("num2str(%d, %d, 1, %d, %d) = %q, fio prints %q", num, maxlen, pow2, units, got, want)
		}
		n++
	}
	if n < 200 {
		t.Fatalf("%d cases", n)
	}
}

// TestPercentileUnitsAreFios: the text report's percentile unit follows
// fio's show_clat_percentiles: msec only when the smallest reported
// percentile is above 2 ms and the largest above 99.999999 ms, usec when
// above 2 µs and 99.999 µs, else nsec; values round up to the unit, so a
// sub-millisecond percentile never prints as 0.
func TestPercentileUnitsAreFios(t *testing.T) {
	for _, tc := range []struct {
		name  string
		vals  []uint64 // ns, recorded 100 times each
		unit  string
		first string // the 1st percentile as printed
	}{
		{"fast with a slow tail", []uint64{50_000, 300_000_000}, "usec", "[    50]"},
		{"all above 2 ms, tail above 100 ms", []uint64{3_000_000, 150_000_000}, "msec", "[    3]"},
		// fio's bucket of 3 ms reports 2998272 ns: 2999 µs rounded up.
		{"slow but no tail", []uint64{3_000_000, 90_000_000}, "usec", "[ 2999]"},
		{"sub-2µs", []uint64{1500, 200_000}, "nsec", "[  1496]"},
		{"sub-100µs", []uint64{5000, 90_000}, "nsec", "[ 5024]"},
	} {
		var h Histogram
		for _, v := range tc.vals {
			for range 100 {
				h.Record(v)
			}
		}
		var b strings.Builder
		writePercentiles(&b, "clat", &h, DefaultPercentiles, 2)
		out := b.String()
		if !strings.HasPrefix(out, "    clat percentiles ("+tc.unit+"):\n     |  1.00th="+tc.first) {
			t.Errorf("%s: got\n%s", tc.name, out)
		}
		if strings.Contains(out, "[    0]") || strings.Contains(out, "=[0]") {
			t.Errorf("%s: a nonzero percentile printed as 0:\n%s", tc.name, out)
		}
	}
}

// TestLatLineUnitsAreFios: min/max/avg/stdev lines switch units as fio's
// display_lat (nsec_to_usec: min > 2 µs, max > 99.999 µs and stdev > 1 µs).
func TestLatLineUnitsAreFios(t *testing.T) {
	for _, tc := range []struct {
		vals []uint64
		want string
	}{
		{[]uint64{27_000, 3_226_000}, "    clat (usec): min=27, max=3226, avg=1626.50, stdev=2262.03\n"},
		{[]uint64{141, 18_370_000}, "    clat (nsec): min=141, max=18370k, avg=9185070.50, stdev=12989451.87\n"},
		{[]uint64{3_000_000, 300_000_000}, "    clat (msec): min=3, max=300, avg=151.50, stdev=210.01\n"},
	} {
		var h Histogram
		for _, v := range tc.vals {
			h.Record(v)
		}
		var b strings.Builder
		writeLatLine(&b, "clat", &h)
		if b.String() != tc.want {
			t.Errorf("%v: got %q, want %q", tc.vals, b.String(), tc.want)
		}
	}
}

// TestJobLineNamesTheJobsEngine: the job line before the results names
// the engine as the job file does (fio prints the engine it loaded, the
// one named), also where flashpath runs it on another of its engines.
func TestJobLineNamesTheJobsEngine(t *testing.T) {
	rep, err := runJobs(t, opts("ioengine=sync", "filename="+t.TempDir()+"/f", "size=64k", "bs=16k")...)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := rep.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	want := "e2e: (g=0): rw=read, bs=(R) 16.0KiB-16.0KiB, (W) 16.0KiB-16.0KiB, (T) 16.0KiB-16.0KiB, ioengine=sync, iodepth=1\n"
	if !strings.HasPrefix(b.String(), want) {
		t.Errorf("job line:\n%s\nwant fio's\n%s", strings.SplitN(b.String(), "\n", 2)[0], want)
	}
}
