package bench

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
)

// TestTerse checks the terse lines field by field against fio's layout
// (stat.c show_thread_status_terse_all) and against the JSON report of
// the same run.
func TestTerse(t *testing.T) {
	rep, err := runJobs(t, opts("ioengine=null", "rw=randrw", "bs=4k", "size=8m", "iodepth=4", "description=a b")...)
	if err != nil {
		t.Fatal(err)
	}
	doc := rep.jsonDoc(false)
	j := doc.Jobs[0]
	for _, tc := range []struct{ version, fields int }{
		// 5 general, 41 per direction (read, write; trim from 4; 47 in 5),
		// 5 CPU, 7 depths, 10 µs and 12 ms buckets, and the description.
		{3, 5 + 2*41 + 34 + 1},
		{4, 5 + 3*41 + 34 + 1},
		{5, 5 + 3*47 + 34 + 1},
	} {
		var b strings.Builder
		if err := rep.WriteTerse(&b, tc.version); err != nil {
			t.Fatal(err)
		}
		line := strings.TrimSuffix(b.String(), "\n")
		if strings.Count(b.String(), "\n") != 1 {
			t.Fatalf("v%d: %d lines, want 1", tc.version, strings.Count(b.String(), "\n"))
		}
		f := strings.Split(line, ";")
		if len(f) != tc.fields {
			t.Fatalf("v%d: %d fields, want %d:\n%s", tc.version, len(f), tc.fields, line)
		}
		if f[0] != strconv.Itoa(tc.version) || f[1] != Version || f[2] != j.JobName || f[3] != "0" || f[4] != "0" {
			t.Errorf("v%d general fields %q", tc.version, f[:5])
		}
		// Read: KiB, KiB/s, IOPS, runtime ms (fields 6-9, 1-based).
		if f[5] != strconv.FormatUint(j.Read.IOKBytes, 10) || f[6] != strconv.FormatUint(j.Read.BW, 10) || f[8] != strconv.FormatInt(j.Read.Runtime, 10) {
			t.Errorf("v%d read %q, json kb %d bw %d runtime %d", tc.version, f[5:9], j.Read.IOKBytes, j.Read.BW, j.Read.Runtime)
		}
		// Percentiles: 17 default ones, then 3 "0%=0" pads.
		if !strings.HasPrefix(f[17], "1.000000%=") || f[33] != "99.990000%="+f[33][len("99.990000%="):] || f[34] != "0%=0" || f[36] != "0%=0" {
			t.Errorf("v%d percentiles %q", tc.version, f[17:37])
		}
		// The write section follows the read one (field 47, 1-based; 53 in v5).
		w := 5 + 41
		if tc.version == 5 {
			w = 5 + 47
		}
		if f[w] != strconv.FormatUint(j.Write.IOKBytes, 10) {
			t.Errorf("v%d write KiB %q, json %d", tc.version, f[w], j.Write.IOKBytes)
		}
		// I/O depths sum to 100%.
		cpu := len(f) - 1 - 34
		sum := 0.0
		for _, d := range f[cpu+5 : cpu+12] {
			v, err := strconv.ParseFloat(strings.TrimSuffix(d, "%"), 64)
			if err != nil {
				t.Fatalf("v%d depth field %q", tc.version, d)
			}
			sum += v
		}
		if sum < 99.5 || sum > 100.5 {
			t.Errorf("v%d depth distribution sums to %f", tc.version, sum)
		}
		if f[len(f)-1] != "a b" {
			t.Errorf("v%d description %q", tc.version, f[len(f)-1])
		}
	}
	if err := rep.WriteTerse(&strings.Builder{}, 2); err == nil {
		t.Error("terse version 2 accepted")
	}
}

// TestJSONPlusBins: json+ adds each reported latency's histogram buckets,
// and their counts add up to the I/Os.
func TestJSONPlusBins(t *testing.T) {
	rep, err := runJobs(t, opts("ioengine=null", "rw=randread", "bs=4k", "size=4m", "iodepth=4")...)
	if err != nil {
		t.Fatal(err)
	}
	var plain, plus strings.Builder
	if err := rep.WriteJSON(&plain); err != nil {
		t.Fatal(err)
	}
	if err := rep.WriteJSONPlus(&plus); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain.String(), `"bins"`) {
		t.Fatal("json has bins")
	}
	var doc struct {
		Jobs []struct {
			Read struct {
				TotalIOs uint64 `json:"total_ios"`
				ClatNs   struct {
					Bins map[string]uint64 `json:"bins"`
				} `json:"clat_ns"`
			} `json:"read"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal([]byte(plus.String()), &doc); err != nil {
		t.Fatal(err)
	}
	r := doc.Jobs[0].Read
	var sum uint64
	for k, c := range r.ClatNs.Bins {
		if _, err := strconv.ParseUint(k, 10, 64); err != nil {
			t.Fatalf("bin key %q is not a value in ns", k)
		}
		sum += c
	}
	if len(r.ClatNs.Bins) == 0 || sum != r.TotalIOs {
		t.Fatalf("%d bins holding %d I/Os, want %d", len(r.ClatNs.Bins), sum, r.TotalIOs)
	}
}
