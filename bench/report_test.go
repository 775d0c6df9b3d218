package bench

import (
	"bytes"
	"context"
	"encoding/json"
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
					N          uint64            `json:"N"`
					Percentile map[string]uint64 `json:"percentile"`
				} `json:"lat_ns"`
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
	if _, ok := r.LatNs.Percentile["99.990000"]; !ok {
		t.Errorf("percentile keys: %v", r.LatNs.Percentile)
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
	js, txt := run("percentile_list=50:99.5:99.999")
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
	if !strings.Contains(txt, "99.50th=[") || strings.Contains(txt, " 1.00th=[") {
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
		if has := strings.Contains(buf.String(), "   READ: bw="); has != (tc.mode != "mixed") {
			t.Errorf("unified_rw_reporting=%s: group status has a READ line: %v", tc.mode, has)
		}
		if has := strings.Contains(buf.String(), "  mixed: IOPS="); has != (tc.mode != "0") {
			t.Errorf("unified_rw_reporting=%s: text has a mixed line: %v\n%s", tc.mode, has, buf.String())
		}
	}
}
