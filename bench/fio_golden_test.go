package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The golden files in testdata are fio 3.33's own output for the job
// files beside them (fio-3.33-null.fio on the null engine, fio-3.33-units
// with kb_base=1000 and unit_base=1; fio-3.33-file.*
// for fio-3.33-file.fio on a file on a local disk, the source of the
// disk_util and "global options" shapes). The tests run the same job
// through the bench and compare fields, their order and their units,
// not values.

// runGolden runs testdata/fio-3.33-null.fio.
func runGolden(t *testing.T) *Report { return runGoldenJob(t, "fio-3.33-null") }

// runGoldenJob runs testdata/NAME.fio.
func runGoldenJob(t *testing.T, name string) *Report {
	t.Helper()
	return mustRun(t)(runJobPath(t, "testdata/"+name+".fio"))
}

// jsonShape records a JSON document's structure: for every object its
// keys in order, for every number whether it is printed as an integer
// or a float.
type jsonShape struct {
	keys  map[string][]string // object path -> keys in order
	kinds map[string]string   // leaf path -> int, float, string
}

// opaque are objects whose keys are values (a job's options, histogram
// buckets): their keys are not compared, their values' kinds are.
var opaque = map[string]bool{"job options": true, "global options": true, "bins": true}

func shapeOf(t *testing.T, doc []byte) jsonShape {
	t.Helper()
	s := jsonShape{keys: map[string][]string{}, kinds: map[string]string{}}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var walk func(path string, opaqueObj bool)
	walk = func(path string, opaqueObj bool) {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				s.keys[path] = []string{}
				for dec.More() {
					kt, err := dec.Token()
					if err != nil {
						t.Fatal(err)
					}
					k := kt.(string)
					child := path + "." + k
					if opaqueObj {
						child = path + ".*"
					} else {
						s.keys[path] = append(s.keys[path], k)
					}
					walk(child, opaque[k])
				}
				dec.Token()
			case '[':
				for dec.More() {
					walk(path+"[]", false)
				}
				dec.Token()
			}
		case json.Number:
			if strings.ContainsAny(v.String(), ".eE") {
				s.kinds[path] = "float"
			} else {
				s.kinds[path] = "int"
			}
		case string:
			s.kinds[path] = "string"
		default:
			s.kinds[path] = fmt.Sprintf("%T", v)
		}
	}
	walk("", false)
	return s
}

// knownGaps are differences from fio's JSON that come from what the
// runtime records, not from the report; each names what is missing. A
// key listed here is left out of the comparison, with a note in the log.
var knownGaps = map[string]string{}

// gap returns the known gap a path falls under ("" if none).
func gap(path string) string {
	for k, why := range knownGaps {
		if strings.Contains(path, "."+k) {
			return why
		}
	}
	return ""
}

// compareShapes fails where ours lacks a field of fio's, has it of
// another kind or out of fio's order, or has a field fio does not (other
// than flashpath's own, under "flashpath").
func compareShapes(t *testing.T, fio, ours jsonShape) {
	t.Helper()
	noted := map[string]bool{}
	skip := func(path string) bool {
		why := gap(path)
		if why != "" && !noted[why] {
			t.Logf("known gap, not compared: %s", why)
			noted[why] = true
		}
		return why != "" || strings.Contains(path, ".flashpath")
	}
	for path, fk := range fio.keys {
		ok, found := ours.keys[path]
		if skip(path) {
			continue
		}
		if !found {
			t.Errorf("object %s: missing", path)
			continue
		}
		var filtered []string
		for _, k := range ok {
			if !skip(path + "." + k) {
				filtered = append(filtered, k)
			}
		}
		var want []string
		for _, k := range fk {
			if !skip(path + "." + k) {
				want = append(want, k)
			}
		}
		if !slices.Equal(want, filtered) {
			t.Errorf("object %s: keys\n  %q\nwant fio's\n  %q", path, filtered, want)
		}
	}
	for path, kind := range fio.kinds {
		if got := ours.kinds[path]; got != kind && !skip(path) {
			t.Errorf("%s: %s, want fio's %s", path, got, kind)
		}
	}
	for path := range ours.kinds {
		if _, ok := fio.kinds[path]; !ok && !skip(path) {
			t.Errorf("%s: not in fio's output", path)
		}
	}
}

// TestJSONPlusShapeIsFios: the bench's json+ for the golden job has fio's
// objects with fio's keys in fio's order, integers where fio prints
// integers and floats where it prints floats; idle directions carry no
// percentiles or bins, as in fio.
func TestJSONPlusShapeIsFios(t *testing.T) {
	golden, err := os.ReadFile("testdata/fio-3.33-null.json+")
	if err != nil {
		t.Fatal(err)
	}
	rep := runGolden(t)
	var out bytes.Buffer
	if err := rep.WriteJSONPlus(&out); err != nil {
		t.Fatal(err)
	}
	fio, ours := shapeOf(t, golden), shapeOf(t, out.Bytes())
	compareShapes(t, fio, ours)
	if t.Failed() {
		t.Logf("bench's json+:\n%s", out.String())
	}
	// [global]'s options are listed apart from the job's, as fio does.
	var doc struct {
		Global map[string]string `json:"global options"`
		Jobs   []struct {
			Options map[string]string `json:"job options"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if g, j := doc.Global, doc.Jobs[0].Options; g["ioengine"] != "null" || g["size"] != "4m" || j["rw"] != "randrw" || j["ioengine"] != "" {
		t.Errorf("global options %v, job options %v: want [global]'s and [j]'s apart", g, j)
	}
	// The plain JSON is json+ without the bins.
	var plain bytes.Buffer
	if err := rep.WriteJSON(&plain); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(plain.Bytes(), []byte(`"bins"`)) || !bytes.Contains(out.Bytes(), []byte(`"bins" : {`)) {
		t.Error("bins: want them in json+ only")
	}
}

// TestJSONPrintedAsFio: fio's printer, byte for byte on what it decides
// (indentation, " : ", %f floats, dropped empty strings).
func TestJSONPrintedAsFio(t *testing.T) {
	type inner struct {
		F float64 `json:"f"`
		N uint64  `json:"n"`
	}
	doc := struct {
		S     string    `json:"s"`
		Empty string    `json:"empty"`
		Q     string    `json:"q"`
		O     orderedKV `json:"o"`
		A     []inner   `json:"a"`
	}{S: "x", Q: `a"b\c`, O: orderedKV{{"2", 0.5}, {"k", ""}}, A: []inner{{1, 2}}}
	want := `{
  "s" : "x",
  "q" : "a\"b\\c",
  "o" : {
    "2" : 0.500000
  },
  "a" : [
    {
      "f" : 1.000000,
      "n" : 2
    }
  ]
}
`
	if got := fioJSON(doc); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

// TestJSONPlusReadByFioJsonplusClat2csv runs fio's own json+ reader on the
// bench's json+ (Debian's fio package installs it), then its --validate,
// which checks every CSV count against the bins.
func TestJSONPlusReadByFioJsonplusClat2csv(t *testing.T) {
	tool, err := exec.LookPath("fio_jsonplus_clat2csv")
	if err != nil {
		t.Skip("fio_jsonplus_clat2csv not installed (Debian/Ubuntu: apt-get install fio): fio's json+ reader not checked")
	}
	dir := t.TempDir()
	// The control: the tool on fio's own json+ for the same job. Where that
	// fails the tool cannot run here (Debian's fio does not pull in the
	// python3-six it imports), which says nothing about the bench.
	if b, err := exec.Command(tool, "testdata/fio-3.33-null.json+", filepath.Join(dir, "fio.csv")).CombinedOutput(); err != nil {
		t.Skipf("fio_jsonplus_clat2csv fails on fio's own json+ here (python3-six missing?): %v\n%s", err, b)
	}
	rep := runGolden(t)
	var out bytes.Buffer
	if err := rep.WriteJSONPlus(&out); err != nil {
		t.Fatal(err)
	}
	in := filepath.Join(dir, "bench.json")
	if err := os.WriteFile(in, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	csv := filepath.Join(dir, "bench.csv")
	for _, args := range [][]string{{in, csv}, {in, csv, "--validate"}} {
		if b, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
			t.Fatalf("fio_jsonplus_clat2csv %s: %v\n%s", strings.Join(args[2:], " "), err, b)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "bench_job0.csv"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) < 2 || !strings.HasPrefix(lines[0], "nsec, read_slat_ns_count") {
		t.Fatalf("CSV:\n%s", b)
	}
	j := rep.Groups[0].Jobs[0]
	var last struct{ read, write string }
	for _, l := range lines[1:] {
		f := strings.Split(l, ", ")
		if f[5] != "" {
			last.read = f[5] // read_clat_ns_cumulative
		}
		if f[14] != "" {
			last.write = f[14] // write_clat_ns_cumulative
		}
	}
	if last.read != fmt.Sprint(j.Dir[DirRead].IOs) || last.write != fmt.Sprint(j.Dir[DirWrite].IOs) {
		t.Errorf("CSV cumulative clat counts %s/%s, want the I/Os %d/%d", last.read, last.write, j.Dir[DirRead].IOs, j.Dir[DirWrite].IOs)
	}
}

// textShape reduces a line of fio's normal output to what does not
// depend on the values: numbers (with their unit prefixes) become #, a
// latency unit becomes (unit), repeated items of a list line collapse.
func textShape(line string) string {
	if line == Version || regexp.MustCompile(`^fio-[\d.]+$`).MatchString(line) {
		return "VERSION"
	}
	for _, r := range []struct{ re, to string }{
		{`\b(Sat|Sun|Mon|Tue|Wed|Thu|Fri) \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}`, "DATE"},
		{`pid=\d+`, "pid=#"},
		{`\((nsec|usec|msec)\)`, "(unit)"},
		{`\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?`, "#"},
		{`\[\s*#\]`, "[#]"},
		{`= +#`, "=#"},
		{`(#th=\[#\],?\s*)+`, "#th=[#] "},
		{`(#=#%(, )?)+`, "#=#%"},
		{`\s+`, " "},
	} {
		line = regexp.MustCompile(r.re).ReplaceAllString(line, r.to)
	}
	return strings.TrimSpace(line)
}

// shapes is the shapes of a report's lines, a run of equal ones kept once.
func shapes(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		s := textShape(l)
		if s == "" || (len(out) > 0 && out[len(out)-1] == s) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// TestTextShapeIsFios: every line fio prints for the golden job, in
// fio's order and with fio's labels and units, is in the bench's normal
// output (which adds flashpath's CPU lines, and the lines whose presence
// depends on values: latency buckets, a bw line after a 500 ms sample).
func TestTextShapeIsFios(t *testing.T) {
	// fio-3.33-units: kb_base=1000 and unit_base=1, sizes in kB and
	// bandwidth in bits.
	for _, name := range []string{"fio-3.33-null", "fio-3.33-units", "fio-3.33-pct", "fio-3.33-pct0"} {
		golden, err := os.ReadFile("testdata/" + name + ".normal")
		if err != nil {
			t.Fatal(err)
		}
		rep := runGoldenJob(t, name)
		var out strings.Builder
		if err := rep.WriteText(&out); err != nil {
			t.Fatal(err)
		}
		fio, ours := shapes(string(golden)), shapes(out.String())
		valueDependent := func(s string) bool {
			return strings.HasPrefix(s, "lat (unit) :") || strings.HasPrefix(s, "bw (") || strings.HasPrefix(s, "iops :")
		}
		i := 0
		for _, want := range fio {
			if valueDependent(want) {
				continue
			}
			for i < len(ours) && ours[i] != want {
				i++
			}
			if i == len(ours) {
				t.Fatalf("%s: fio's line shape %q missing or out of order in the bench's normal output:\n%s\nshapes:\n%s", name, want, out.String(), strings.Join(ours, "\n"))
			}
		}
	}
}

// terseKinds classifies each field of a terse line: int, float, pct
// (float%), kv (percentile=value), or text.
func terseKinds(line string) []string {
	var out []string
	for _, f := range strings.Split(strings.TrimSuffix(line, "\n"), ";") {
		switch {
		case regexp.MustCompile(`^\d+$`).MatchString(f):
			out = append(out, "int")
		case regexp.MustCompile(`^\d+\.\d+$`).MatchString(f):
			out = append(out, "float")
		case regexp.MustCompile(`^\d+\.\d+%$`).MatchString(f):
			out = append(out, "pct")
		case regexp.MustCompile(`^\d+(\.\d+)?%=\d+$`).MatchString(f):
			out = append(out, "kv")
		default:
			out = append(out, "text")
		}
	}
	return out
}

// TestTerseShapeIsFios: terse v3, v4 and v5 lines of the golden job have
// fio's fields, field for field of the same kind.
func TestTerseShapeIsFios(t *testing.T) {
	rep := runGolden(t)
	for _, v := range TerseVersions {
		golden, err := os.ReadFile(fmt.Sprintf("testdata/fio-3.33-null.terse%d", v))
		if err != nil {
			t.Fatal(err)
		}
		var out strings.Builder
		if err := rep.WriteTerse(&out, v); err != nil {
			t.Fatal(err)
		}
		want, got := terseKinds(string(golden)), terseKinds(out.String())
		if !slices.Equal(want, got) {
			t.Errorf("v%d: %d fields\n%v\nwant fio's %d\n%v\n%s%s", v, len(got), got, len(want), want, out.String(), golden)
		}
	}
}

// TestDiskUtilLikeFio: a job on a file on a local disk reports that disk,
// as fio's disk_util, with fio's keys; the text and terse reports print
// fio's lines for it.
func TestDiskUtilLikeFio(t *testing.T) {
	dir := t.TempDir()
	if blockDirOf(filepath.Join(dir, "data")) == "" {
		t.Skipf("%s is not on a local block device (tmpfs, overlay?): no disk statistics to check", dir)
	}
	golden, err := os.ReadFile("testdata/fio-3.33-file.json")
	if err != nil {
		t.Fatal(err)
	}
	jobs := mustJobs(t, opts("ioengine=psync", "filename="+filepath.Join(dir, "data"), "rw=write", "bs=64k", "size=1m", "end_fsync=1")...)
	du := startDiskUtil(jobs)
	if _, err := Run(context.Background(), Config{Jobs: jobs}); err != nil {
		t.Fatal(err)
	}
	disks := du.stop()
	if len(disks) == 0 {
		t.Fatal("no disk found under the job's file")
	}
	d := disks[0]
	if _, err := os.Stat(filepath.Join("/sys/block", d.Name, "stat")); err != nil {
		t.Errorf("disk %q is not a /sys/block device: %v", d.Name, err)
	}
	if d.WriteIOs == 0 || d.Util < 0 || d.Util > 100 {
		t.Errorf("a 1 MiB written and synced: %+v", d)
	}
	doc := fioJSON(struct {
		DiskUtil []fioDiskUtil `json:"disk_util"`
	}{disks[:1]})
	fio, ours := shapeOf(t, golden), shapeOf(t, []byte(doc))
	if !slices.Equal(fio.keys[".disk_util[]"], ours.keys[".disk_util[]"]) {
		t.Errorf("disk_util keys %q, want fio's %q", ours.keys[".disk_util[]"], fio.keys[".disk_util[]"])
	}
	for p, k := range ours.kinds {
		if fio.kinds[p] != k {
			t.Errorf("%s: %s, want fio's %s", p, k, fio.kinds[p])
		}
	}
	var text strings.Builder
	writeDiskText(&text, disks[:1])
	fioText, _ := os.ReadFile("testdata/fio-3.33-file.normal")
	if want := shapes(string(fioText)); !slices.Contains(want, shapes(text.String())[1]) || shapes(text.String())[0] != "Disk stats (read/write):" {
		t.Errorf("disk lines %q, want fio's shape", shapes(text.String()))
	}
}

// TestJSONReadByFioPlotMapping: fio-plot (louwrentius/fio-plot) flattens
// each job of fio's JSON with a fixed key mapping
// (fiolib/jsonparsing_support.py get_json_mapping, after merging "global
// options" into "job options"); every key it reads resolves in the
// bench's JSON to what fio puts there, for a job as its bench-fio writes
// them (iodepth, numjobs, bs and rw given).
func TestJSONReadByFioPlotMapping(t *testing.T) {
	rep, err := runJobs(t, opts("ioengine=null", "rw=randread", "bs=4k", "iodepth=4", "numjobs=2", "size=1m")...)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := rep.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if _, ok := doc["fio version"].(string); !ok {
		t.Error(`"fio version" is not a string`)
	}
	get := func(v any, keys ...string) any {
		for _, k := range keys {
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		}
		return v
	}
	jobs, _ := doc["jobs"].([]any)
	if len(jobs) != 2 {
		t.Fatalf("%d jobs, want 2 (numjobs=2 without group_reporting)", len(jobs))
	}
	for _, job := range jobs {
		opts := map[string]any{}
		for k, v := range get(job, "job options").(map[string]any) {
			opts[k] = v
		}
		if g, ok := doc["global options"].(map[string]any); ok {
			for k, v := range g {
				opts[k] = v
			}
		}
		// fio-plot sorts rows by int(iodepth), int(numjobs).
		for k, want := range map[string]string{"iodepth": "4", "numjobs": "2", "bs": "4k", "rw": "randread"} {
			if opts[k] != want {
				t.Errorf("job options %s = %v, want %q", k, opts[k], want)
			}
		}
		if get(job, "jobname") == "All clients" {
			t.Error(`jobname "All clients" is fio's client/server summary`)
		}
		for _, path := range [][]string{
			{"read", "bw"}, {"read", "iops"}, {"read", "iops_stddev"}, {"read", "lat_ns", "mean"}, {"read", "lat_ns", "stddev"},
			{"usr_cpu"}, {"sys_cpu"},
		} {
			if _, ok := get(job, path...).(float64); !ok {
				t.Errorf("%s: %v, want a number", strings.Join(path, "."), get(job, path...))
			}
		}
		for _, k := range []string{"latency_ms", "latency_us", "latency_ns"} {
			if m, ok := get(job, k).(map[string]any); !ok || len(m) == 0 {
				t.Errorf("%s: %v, want fio's buckets", k, get(job, k))
			}
		}
		if iops := get(job, "read", "iops").(float64); iops <= 0 {
			t.Errorf("read iops %v", iops)
		}
	}
}

// TestLogsReadByFio2gnuplot runs fio's fio2gnuplot on the bench's
// bandwidth log: it reads every sample (its result.global's count and
// mean are the log's).
func TestLogsReadByFio2gnuplot(t *testing.T) {
	tool, err := exec.LookPath("fio2gnuplot")
	if err != nil {
		t.Skip("fio2gnuplot not installed (Debian/Ubuntu: apt-get install fio): fio's log reader not checked")
	}
	// The control: the tool on a bw log fio wrote (log_avg_msec=500, as
	// the bench's samples). Where that fails the tool cannot run here.
	ctl := t.TempDir()
	fioLog, err := os.ReadFile("testdata/fio-3.33-null_bw.1.log")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ctl, "ctl_bw.1.log"), fioLog, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(ctl, "plot"), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tool, "-b", "-d", filepath.Join(ctl, "plot")+"/")
	cmd.Dir = ctl
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("fio2gnuplot fails on fio's own log here (python3-six missing?): %v\n%s", err, b)
	}
	dir := t.TempDir()
	// Two 500 ms samples: the smallest run that logs more than one.
	_, err = runJobs(t, opts("ioengine=null", "rw=randread", "bs=4k", "size=1m", "time_based=1", "runtime=1100ms",
		"rate_iops=1000", "write_bw_log="+filepath.Join(dir, "b"))...)
	if err != nil {
		t.Fatal(err)
	}
	logs, _ := filepath.Glob(filepath.Join(dir, "b_bw*.log"))
	if len(logs) != 1 {
		t.Fatalf("bw logs %v, want one", logs)
	}
	raw, err := os.ReadFile(logs[0])
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var sum float64
	for _, l := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var ms, v float64
		if _, err := fmt.Sscanf(strings.ReplaceAll(l, ",", " "), "%f %f", &ms, &v); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if ms > 0 { // fio2gnuplot keeps time > min_time, 0 by default
			n++
			sum += v
		}
	}
	out := filepath.Join(dir, "plot") + "/"
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(tool, "-b", "-d", out)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fio2gnuplot: %v\n%s", err, b)
	}
	g, err := os.ReadFile(filepath.Join(out, "result.global"))
	if err != nil {
		t.Fatalf("fio2gnuplot wrote no result.global: %v (log:\n%s)", err, raw)
	}
	var mn, mx, avg, dev float64
	var count int
	if _, err := fmt.Sscanf(string(g), "min=%f\nmax=%f\navg=%f\nstddev=%f\nvalues_count=%d", &mn, &mx, &avg, &dev, &count); err != nil {
		t.Fatalf("result.global %q: %v", g, err)
	}
	if count != n || n == 0 || math.Abs(avg-sum/float64(n)) > 0.01 {
		t.Errorf("fio2gnuplot read %d samples, mean %.2f; the log has %d, mean %.2f:\n%s", count, avg, n, sum/float64(max(n, 1)), raw)
	}
}

// TestGlobalOptionsOfEveryGlobalSection: with two [global] sections fio's
// "global options" lists both (fio 3.33 on this file prints
// {"ioengine":"null","size":"64k","bs":"8k"}) and each job only its own.
func TestGlobalOptionsOfEveryGlobalSection(t *testing.T) {
	rep := mustRun(t)(runJobFile(t, "[global]\nioengine=null\nsize=64k\n[a]\nrw=read\n[global]\nbs=8k\n[b]\nrw=write\n"))
	var out bytes.Buffer
	if err := rep.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Global json.RawMessage `json:"global options"`
		Jobs   []struct {
			Options json.RawMessage `json:"job options"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	compact := func(b []byte) string {
		var c bytes.Buffer
		if err := json.Compact(&c, b); err != nil {
			t.Fatal(err)
		}
		return c.String()
	}
	if g := compact(doc.Global); g != `{"ioengine":"null","size":"64k","bs":"8k"}` {
		t.Errorf("global options %s", g)
	}
	if len(doc.Jobs) != 2 || compact(doc.Jobs[0].Options) != `{"rw":"read"}` || compact(doc.Jobs[1].Options) != `{"rw":"write"}` {
		t.Errorf("job options %s", out.String())
	}
}

// TestFileJobJSONHasFiosSections: a job file with a [global] section run
// on a local file has fio's top-level sections in fio's order ("global
// options" with the [global] options only, "disk_util" after the jobs),
// as fio's output for fio-3.33-file.fio.
func TestFileJobJSONHasFiosSections(t *testing.T) {
	dir := t.TempDir()
	if blockDirOf(filepath.Join(dir, "data")) == "" {
		t.Skipf("%s is not on a local block device: no disk_util to check", dir)
	}
	golden, err := os.ReadFile("testdata/fio-3.33-file.json")
	if err != nil {
		t.Fatal(err)
	}
	file := "[global]\nfilename=" + filepath.Join(dir, "data") + "\nsize=1m\nbs=4k\n\n[j]\nrw=randrw\nioengine=psync\n"
	rep := mustRun(t)(runJobFile(t, file))
	var out bytes.Buffer
	if err := rep.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	fio, ours := shapeOf(t, golden), shapeOf(t, out.Bytes())
	if want, got := fio.keys[""], slices.DeleteFunc(slices.Clone(ours.keys[""]), func(k string) bool { return k == "flashpath" }); !slices.Equal(want, got) {
		t.Errorf("top-level keys %q, want fio's %q", got, want)
	}
	if !slices.Equal(fio.keys[".disk_util[]"], ours.keys[".disk_util[]"]) {
		t.Errorf("disk_util keys %q, want fio's %q", ours.keys[".disk_util[]"], fio.keys[".disk_util[]"])
	}
	var doc struct {
		Global map[string]string `json:"global options"`
		Jobs   []struct {
			Options map[string]string `json:"job options"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Global) != 3 || doc.Global["bs"] != "4k" || len(doc.Jobs[0].Options) != 2 || doc.Jobs[0].Options["rw"] != "randrw" {
		t.Errorf("global options %v, job options %v: want [global]'s and [j]'s apart", doc.Global, doc.Jobs[0].Options)
	}
	var text strings.Builder
	if err := rep.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "\nDisk stats (read/write):\n") {
		t.Errorf("no Disk stats in the normal output:\n%s", text.String())
	}
}
