package bench

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func parseString(t *testing.T, file string, overrides ...Option) []*Job {
	t.Helper()
	p := filepath.Join(t.TempDir(), "j.fio")
	if err := os.WriteFile(p, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	jobs, err := LoadJobs([]string{p}, overrides)
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

// TestInlineComments: fio cuts every line at its first ';' or '#',
// blanks before it or not, inside a value too.
func TestInlineComments(t *testing.T) {
	jobs := parseString(t, "[global]\nioengine=null\nnumjobs=4 ; four workers\nfilename=data.tmp ; or use a full disk\n"+
		"bs=8k# hash\nsize=1m;x\ndescription=a \"b;c\" d\n[j] # the job\nrw=randread\t; tab\n")
	j := jobs[0]
	if j.NumJobs != 4 || j.Filename != "data.tmp" || j.BS[DirRead] != 8192 || j.Size != 1<<20 ||
		j.Description != `a "b` || j.RW != (RW{Read: true, Random: true}) || j.Name != "j" {
		t.Errorf("got numjobs %d filename %q bs %d size %d description %q rw %v name %q",
			j.NumJobs, j.Filename, j.BS[DirRead], j.Size, j.Description, j.RW, j.Name)
	}
}

// TestGlobalNameDoesNotNameJobs: fio names jobs by their sections; a
// section's own name= renames it.
func TestGlobalNameDoesNotNameJobs(t *testing.T) {
	jobs := parseString(t, "[global]\nname=gname\nioengine=null\n[j1]\n[j2]\nname=renamed\n", Option{"name", "cmdline"})
	if jobs[0].Name != "j1" || jobs[1].Name != "renamed" {
		t.Errorf("names %q, %q; want j1, renamed", jobs[0].Name, jobs[1].Name)
	}
}

// TestCommandLineBeneathJobFile: fio's command-line options are defaults
// beneath the job file's own, [global] included.
func TestCommandLineBeneathJobFile(t *testing.T) {
	jobs := parseString(t, "[global]\nioengine=null\nbs=8k\n[a]\n[b]\nbs=16k\n[c]\nrw=write\n",
		Option{"bs", "64k"}, Option{"iodepth", "3"})
	for i, want := range []int{8192, 16384, 8192} {
		if jobs[i].BS[DirRead] != want || jobs[i].IODepth != 3 {
			t.Errorf("job %s: bs %d iodepth %d; want %d and 3", jobs[i].Name, jobs[i].BS[DirRead], jobs[i].IODepth, want)
		}
	}
	jobs = parseString(t, "[a]\nioengine=null\n", Option{"bs", "64k"})
	if jobs[0].BS[DirRead] != 64<<10 {
		t.Errorf("bs %d: the command line's bs must apply where the file has none", jobs[0].BS[DirRead])
	}
}

// TestUnknownOptionsInFileOrder: every unknown option, in file order,
// with file, line and fio's nearest name; the same error every time.
func TestUnknownOptionsInFileOrder(t *testing.T) {
	file := "[j]\nioengine=null\nsize=64k\nfoo=1\nbar=2\nbs=4k\nbaz\n"
	var first string
	for range 20 {
		secs, err := ParseJobFile(strings.NewReader(file), "u.fio")
		if err == nil {
			_, err = BuildJobs(nil, secs, nil)
		}
		if !errors.Is(err, ErrUnknownOption) {
			t.Fatalf("error %v, want ErrUnknownOption", err)
		}
		if first == "" {
			first = err.Error()
		} else if err.Error() != first {
			t.Fatalf("error changed between runs:\n%s\n%s", first, err)
		}
	}
	i4, i5, i7 := strings.Index(first, "u.fio:4: job j: option foo:"), strings.Index(first, "u.fio:5: job j: option bar:"), strings.Index(first, "u.fio:7: job j: option baz:")
	if i4 < 0 || i5 < i4 || i7 < i5 {
		t.Errorf("want foo (line 4), bar (5), baz (7) in that order:\n%s", first)
	}
	// fio 3.33 says: Did you mean flow? ... ba? ... ba?
	for _, s := range []string{"did you mean flow?", "did you mean ba?"} {
		if !strings.Contains(first, s) {
			t.Errorf("no %q in\n%s", s, first)
		}
	}
}

// TestRefusedAndUnknownOptionsTogether: a refused option does not hide
// the unknown ones (the README: unknown options are errors, all of them
// listed in file order); one error names each, with its line, in the
// order written.
func TestRefusedAndUnknownOptionsTogether(t *testing.T) {
	file := "[global]\nioengine=null\nfrob=1\n[j]\nsize=64k\nlockfile=readwrite\nbs=4k\nbarbaz=2\nserialize_overlap=1\nfooopt=3\n"
	secs, err := ParseJobFile(strings.NewReader(file), "r.fio")
	if err != nil {
		t.Fatal(err)
	}
	_, err = BuildJobs(nil, secs, nil)
	if !errors.Is(err, ErrRefusedOption) || !errors.Is(err, ErrUnknownOption) {
		t.Fatalf("error %v, want both ErrRefusedOption and ErrUnknownOption", err)
	}
	lines := strings.Split(err.Error(), "\n")
	want := []string{
		"r.fio:3: job j: option frob: unknown option",
		"r.fio:6: job j: option lockfile: not supported by flashpath",
		"r.fio:8: job j: option barbaz: unknown option",
		"r.fio:9: job j: option serialize_overlap: not supported by flashpath",
		"r.fio:10: job j: option fooopt: unknown option",
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), err)
	}
	for i, w := range want {
		if !strings.HasPrefix(lines[i], w) {
			t.Errorf("line %d: %q, want it to start %q", i+1, lines[i], w)
		}
	}
	// The command line's options are listed too, after the file's.
	_, err = BuildJobs(nil, secs, []Option{{"lockfile", "x"}, {"nosuch", "1"}})
	if s := err.Error(); !strings.Contains(s, "command line: job j: option lockfile: not supported") ||
		!strings.Contains(s, "command line: job j: option nosuch: unknown option") ||
		strings.Index(s, "r.fio:10:") > strings.Index(s, "command line: job j: option lockfile") {
		t.Errorf("command-line options missing or out of order:\n%s", s)
	}
	// Another error (a bad value) still stops at its option, with the
	// refused ones written before it.
	secs, err = ParseJobFile(strings.NewReader("[j]\nioengine=null\nlockfile=x\nbs=4q\nnosuch=1\n"), "v.fio")
	if err != nil {
		t.Fatal(err)
	}
	_, err = BuildJobs(nil, secs, nil)
	if s := fmt.Sprint(err); !strings.HasPrefix(s, "v.fio:3: job j: option lockfile:") || !strings.Contains(s, "\nv.fio:4: job j: option bs:") {
		t.Errorf("error %v, want lockfile (line 3) then bs (line 4)", err)
	}
}

// TestSuggestTakesAliases: the nearest name may be an alias flashpath
// takes (blocksize for bs), not only an option's own name.
func TestSuggestTakesAliases(t *testing.T) {
	for name, want := range map[string]string{
		"blocksise": "blocksize",
		"blocksze":  "blocksize",
		"iodeph":    "iodepth",
		"fill_f":    "fill_fs",
	} {
		if got := didYouMean(name); got != "; did you mean "+want+"?" {
			t.Errorf("didYouMean(%q) = %q, want %s", name, got, want)
		}
	}
	_, err := BuildJobs(nil, []Section{{Name: "j", Options: []Option{{"ioengine", "null"}, {"blocksise", "4k"}}}}, nil)
	if err == nil || !strings.Contains(err.Error(), "option blocksise: unknown option") || !strings.Contains(err.Error(), "did you mean blocksize?") {
		t.Errorf("blocksise=4k: error %v, want a suggestion of blocksize", err)
	}
}

func TestInclude(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(sub, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("glob.fio", "ioengine=null\nsize=64k ; comment\ninclude deeper.fio\n")
	write("deeper.fio", "iodepth=4\n")
	write("job.fio", "bs=16k\n")
	write("main.fio", "[global]\ninclude glob.fio\n[j]\nrw=read\ninclude job.fio\n[k]\n")
	write("loop.fio", "[j]\ninclude self.fio\n")
	write("self.fio", "iodepth=2\ninclude self.fio\n")
	write("sect.fio", "[j]\ninclude bad.fio\n")
	write("bad.fio", "[x]\n")
	// Relative to the including file, not to the current directory.
	jobs, err := LoadJobs([]string{filepath.Join(sub, "main.fio")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if j, k := jobs[0], jobs[1]; j.Size != 64<<10 || j.IODepth != 4 || j.BS[DirRead] != 16<<10 || k.BS[DirRead] != 4096 || k.IODepth != 4 {
		t.Errorf("j: size %d iodepth %d bs %d; k: bs %d iodepth %d", j.Size, j.IODepth, j.BS[DirRead], k.BS[DirRead], k.IODepth)
	}
	for name, want := range map[string]string{"loop.fio": "nested includes", "sect.fio": "bad.fio:1: section [x] in an included file"} {
		if _, err := LoadJobs([]string{filepath.Join(sub, name)}, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want %q", name, err, want)
		}
	}
}

func TestReservedKeywords(t *testing.T) {
	jobs := parseString(t, "[j]\nioengine=null\nbs=$pagesize\nnumjobs=$ncpus\n")
	if jobs[0].BS[DirRead] != os.Getpagesize() || jobs[0].NumJobs < 1 {
		t.Errorf("bs %d numjobs %d", jobs[0].BS[DirRead], jobs[0].NumJobs)
	}
}

// TestKBBaseAppliesToTheWholeJob: fio parses kb_base first (fio 3.33:
// size=1m then kb_base=1000 moves 1000000 bytes).
func TestKBBaseAppliesToTheWholeJob(t *testing.T) {
	jobs := parseString(t, "[j]\nioengine=null\nsize=1m\nkb_base=1000\nbs=1k\n[k]\nioengine=null\nkb_base=1000\nsize=1mib\n")
	if jobs[0].Size != 1000000 || jobs[0].BS[DirRead] != 1000 || jobs[1].Size != 1<<20 {
		t.Errorf("sizes %d, %d, bs %d; want 1000000, 1048576 and 1000", jobs[0].Size, jobs[1].Size, jobs[0].BS[DirRead])
	}
}

func TestFilenameList(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want []string
	}{
		{"a", nil},
		{`x\:y:z`, []string{"x:y", "z"}},
		{"a:b:c", []string{"a", "b", "c"}},
		{"tcp://127.0.0.1:4420/nqn.2014-08.org.example:t/1", nil},
	} {
		j := DefaultJob()
		if err := setFilename(&j, tc.v); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(j.Filenames, tc.want) {
			t.Errorf("%q: files %q, want %q", tc.v, j.Filenames, tc.want)
		}
	}
	// fio: as many files as named, size shared; nrfiles given caps the
	// list (fio 3.33: filename=a:b with nrfiles=1 uses a alone).
	for _, tc := range []struct {
		file  string
		nr    int
		names []string
	}{
		{"[j]\nioengine=null\nsize=8k\nfilename=a:b\n", 2, []string{"a", "b"}},
		{"[j]\nioengine=null\nsize=8k\nfilename=a:b\nnrfiles=1\n", 1, nil},
		{"[j]\nioengine=null\nsize=8k\nfilename=a:b\nnrfiles=3\n", 2, []string{"a", "b"}},
	} {
		secs, err := ParseJobFile(strings.NewReader(tc.file), "f.fio")
		if err != nil {
			t.Fatal(err)
		}
		jobs, err := BuildJobs(nil, secs, nil)
		if err != nil {
			t.Fatalf("%q: %v", tc.file, err)
		}
		if j := jobs[0]; j.NrFiles != tc.nr || !slices.Equal(j.Filenames, tc.names) || j.Filename != "a" || j.RegionSize() != 8192/int64(tc.nr) {
			t.Errorf("%q: nrfiles %d files %q filename %q region %d", tc.file, j.NrFiles, j.Filenames, j.Filename, j.RegionSize())
		}
	}
}

// TestFilenameListRuns: filename=a:b lays out both files, each half of
// size, as fio 3.33 does (a and b of 4096 bytes for size=8k).
func TestFilenameListRuns(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	jobs := parseString(t, "[j]\nioengine=psync\nsize=8k\nrw=write\nfilename="+a+":"+b+"\n")
	if _, err := Run(t.Context(), Config{Jobs: jobs}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{a, b} {
		if st, err := os.Stat(f); err != nil || st.Size() != 4096 {
			t.Errorf("%s: %v, want a 4096-byte file", f, err)
		}
	}
}

// TestBSRangeIsFiosDistribution: fio draws MIN + u*MAX rounded down to a
// multiple of MIN and capped at MAX: each multiple equally often.
func TestBSRangeIsFiosDistribution(t *testing.T) {
	j := parseString(t, "[j]\nioengine=null\nbsrange=4k-16k,8k-8k\n")[0]
	mix := j.BSSplit[DirRead]
	if len(mix) != 4 || mix[0] != (BSWeight{4096, 25}) || mix[3] != (BSWeight{16384, 25}) || j.BS[DirRead] != 4096 {
		t.Errorf("read mix %v bs %d", mix, j.BS[DirRead])
	}
	if j.BSSplit[DirWrite] != nil || j.BS[DirWrite] != 8192 {
		t.Errorf("write: mix %v bs %d, want none and 8192", j.BSSplit[DirWrite], j.BS[DirWrite])
	}
	for _, bad := range []string{"bsrange=4k-6k", "bsrange=8k-4k", "bsrange=4k"} {
		secs, _ := ParseJobFile(strings.NewReader("[j]\nioengine=null\nrw=randread\n"+bad+"\n"), "b.fio")
		if _, err := BuildJobs(nil, secs, nil); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

func TestSizePercent(t *testing.T) {
	f := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(f, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	j := parseString(t, "[j]\nfilename="+f+"\nsize=50%\noffset=25%\n")[0]
	if j.SizePct != 50 || j.OffsetPct != 25 {
		t.Errorf("size %g%% offset %g%%; want 50 and 25 (the workers take them of the engine's size)", j.SizePct, j.OffsetPct)
	}
}

// TestRefusedOptionsSayWhy: an option of fio's that flashpath does not run
// stops the job with its file, line and reason.
func TestRefusedOptionsSayWhy(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{"steadystate=iops:1%", "steady-state"},
		{"ss=iops:1%", "steady-state"},
		{"rw=randread:-8", "negative modifier on a random pattern"},
		{"verify=crc99", "crc99"},
		{"write_iolog=x", "I/O logs"},
		{"io_submit_mode=offload", "offload"},
		{"cmdprio=3", "cmdprio"},
		{"directory=/a:/b", "several directories"},
		{"ioengine=libcufile\ngpu_dev_ids=0:x", "option gpu_dev_ids: \"0:x\": want GPU IDs separated by ':'"},
	} {
		secs, err := ParseJobFile(strings.NewReader("[j]\nioengine=null\n"+tc.line+"\n"), "r.fio")
		if err == nil {
			_, err = BuildJobs(nil, secs, nil)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one saying %q", tc.line, err, tc.want)
		}
	}
}

// TestAcceptedOptions: fio options that parse here.
func TestAcceptedOptions(t *testing.T) {
	j := parseString(t, "[j]\nioengine=null\nthread\nexitall\nallow_file_create=1\noverwrite=1\nfallocate=none\n"+
		"disable_lat=1\nlatency_percentile=99\nunit_base=8\nverify=crc32c-intel\nio_submit_mode=inline\n"+
		"iodepth=4\niodepth_low=2\nrandom_generator=tausworthe\nrate_process=poisson\nfileoffset=4k\nnr_files=1\n")[0]
	if !j.ExitAll || !j.Overwrite || !j.DisableLat || j.UnitBase != 8 || !strings.HasPrefix(j.Verify, "crc32c") || j.Offset != 4096 ||
		j.IODepthLow != 2 || j.RateProcess != "poisson" {
		t.Errorf("%+v", j)
	}
}

func TestLibcufile(t *testing.T) {
	for _, tc := range []struct {
		opts, engine string
		eopts        map[string]string
	}{
		{"ioengine=libcufile\ndirect=1", "cufile", nil},
		{"ioengine=libcufile\ncuda_io=posix\ngpu_dev_ids=1", "gpu", map[string]string{"gpu_path": "bounce", "gpu": "1"}},
		// The list goes to the engine, whose clones take its IDs in turn.
		{"ioengine=libcufile\ndirect=1\ngpu_dev_ids=0:01:2", "cufile", map[string]string{"gpu": "0:1:2"}},
	} {
		j := DefaultJob()
		for _, l := range strings.Split(tc.opts, "\n") {
			k, v, _ := strings.Cut(l, "=")
			if err := j.apply(Option{k, v}); err != nil {
				t.Fatal(err)
			}
		}
		if err := j.resolveLibcufile(); err != nil {
			t.Fatal(err)
		}
		if j.IOEngine != tc.engine || len(j.EngineOptions) != len(tc.eopts) {
			t.Errorf("%q: engine %s options %v", tc.opts, j.IOEngine, j.EngineOptions)
		}
		for k, v := range tc.eopts {
			if j.EngineOptions[k] != v {
				t.Errorf("%q: %s=%q, want %q", tc.opts, k, j.EngineOptions[k], v)
			}
		}
	}
}

// TestParsesLikeFio runs fio itself on the same job file and compares the
// jobs' names, block sizes, sizes, iodepth and numjobs with ours.
func TestParsesLikeFio(t *testing.T) {
	fio, err := exec.LookPath("fio")
	if err != nil {
		t.Skip("fio is not installed (apt-get install fio): the comparison with fio's own parse is skipped")
	}
	dir := t.TempDir()
	file := "[global]\nname=gname\nioengine=null\nsize=1m;x\nbs=8k# hash\nnumjobs=1 ; one\nkb_base=1000\n\n" +
		"[j1]\nrw=read\n[j2]\nbs=16k\niodepth=2 # two\n[j3]\nname=renamed\nsize=64k\n"
	p := filepath.Join(dir, "j.fio")
	if err := os.WriteFile(p, []byte(file), 0o644); err != nil {
		t.Fatal(err)
	}
	// A command-line option beneath the file's.
	out, err := exec.Command(fio, "--output-format=json", "--bs=64k", "--iodepth=3", p).Output()
	if err != nil {
		t.Fatalf("fio: %v", err)
	}
	var rep struct {
		Global json.RawMessage `json:"global options"`
		Jobs   []struct {
			Name    string          `json:"jobname"`
			Options json.RawMessage `json:"job options"`
			Read    struct {
				Bytes int64 `json:"io_bytes"`
				IOs   int64 `json:"total_ios"`
			} `json:"read"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatal(err)
	}
	jobs, err := LoadJobs([]string{p}, opts("bs=64k", "iodepth=3"))
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != len(rep.Jobs) {
		t.Fatalf("%d jobs, fio %d", len(jobs), len(rep.Jobs))
	}
	for i, f := range rep.Jobs {
		j := jobs[i]
		// fio moves only whole blocks of size.
		ios := j.Size / int64(j.BS[DirRead])
		if j.Name != f.Name || ios*int64(j.BS[DirRead]) != f.Read.Bytes || ios != f.Read.IOs {
			t.Errorf("job %d: %s size %d bs %d; fio: %s %d bytes in %d I/Os", i, j.Name, j.Size, j.BS[DirRead], f.Name, f.Read.Bytes, f.Read.IOs)
		}
		// fio's JSON objects keep their keys in order: compare the lists.
		if got, want := kvJSON(j.Options), compactJSON(t, f.Options); got != want {
			t.Errorf("job %s: job options %s, fio %s", j.Name, got, want)
		}
		if got, want := kvJSON(j.GlobalOptions), compactJSON(t, rep.Global); got != want {
			t.Errorf("job %s: global options %s, fio %s", j.Name, got, want)
		}
	}
}

// TestGrammarEdgesLikeFio: what fio 3.33 does with these lines.
func TestGrammarEdgesLikeFio(t *testing.T) {
	for _, tc := range []struct {
		file, want string // want "": accepted
	}{
		{"include x.fio\n[j]\n", "outside of a section"},                       // fio: outside of [] job section
		{"[j]\nioengine=null\ndirectory\n", "option directory: needs a value"}, // fio: requires an argument
		{"[j]\nioengine=null\nSIZE=64k\n", "option SIZE: unknown option"},      // fio: Bad option <SIZE=64k>
		{"[GLOBAL]\nioengine=null\n[j]\nioengine=null\n", ""},                  // a job named GLOBAL, not [global]
	} {
		secs, err := parseJobFile(strings.NewReader(tc.file), "e.fio", nil)
		var jobs []*Job
		if err == nil {
			jobs, err = BuildJobs(nil, secs, nil)
		}
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%q: %v", tc.file, err)
		case tc.want == "" && (len(jobs) != 2 || jobs[0].Name != "GLOBAL"):
			t.Errorf("%q: %d jobs", tc.file, len(jobs))
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: error %v, want %q", tc.file, err, tc.want)
		}
	}
}

func kvJSON(kvs [][2]string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, kv := range kvs {
		if i > 0 {
			b.WriteByte(',')
		}
		k, _ := json.Marshal(kv[0])
		v, _ := json.Marshal(kv[1])
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.String()
}

func compactJSON(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestBSSplitMixLikeFio: the mean block size fio 3.33 draws from a mix
// whose percents do not add up to 100 (and one with none given) is the
// mean of the weights parsed here, within 0.5%.
func TestBSSplitMixLikeFio(t *testing.T) {
	fio, err := exec.LookPath("fio")
	if err != nil {
		t.Skip("fio is not installed (apt-get install fio): the comparison with fio's draws is skipped")
	}
	const mix = "8k/30:4k/10:16k/20,4k:8k:16k"
	out, err := exec.Command(fio, "--name=x", "--ioengine=null", "--size=8g", "--rw=randrw", "--norandommap",
		"--bssplit="+mix, "--output-format=json").Output()
	if err != nil {
		t.Fatalf("fio: %v", err)
	}
	var rep struct {
		Jobs []map[string]json.RawMessage `json:"jobs"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatal(err)
	}
	j := DefaultJob()
	if err := setBSSplit(&j, mix); err != nil {
		t.Fatal(err)
	}
	for d, key := range []string{"read", "write"} {
		var st struct {
			Bytes float64 `json:"io_bytes"`
			IOs   float64 `json:"total_ios"`
		}
		if err := json.Unmarshal(rep.Jobs[0][key], &st); err != nil {
			t.Fatal(err)
		}
		fioMean := st.Bytes / st.IOs
		var ours float64
		for _, w := range j.BSSplit[d] {
			ours += float64(w.Size) * w.Pct / 100
		}
		if ours < fioMean*0.995 || ours > fioMean*1.005 {
			t.Errorf("%s: mean block size %.0f, fio drew %.0f (%v)", key, ours, fioMean, j.BSSplit[d])
		}
	}
}

func TestSequentialIgnoresRandomDistribution(t *testing.T) {
	j := parseString(t, "[global]\nioengine=null\nrandom_distribution=zipf:1.2\n[seq]\nrw=read\n[rand]\nrw=randread\n")
	if j[0].Dist.Kind != DistRandom || j[1].Dist.Kind != DistZipf {
		t.Errorf("distributions %v, %v; want none for the sequential job (fio draws no offsets), zipf for the random one", j[0].Dist, j[1].Dist)
	}
	if _, err := ParseTime("1.5s"); err == nil || !strings.Contains(err.Error(), "1500ms") {
		t.Errorf("runtime=1.5s (fio: 1s): %v", err)
	}
}

// TestSeveralFilesLikeFio runs fio on two job files and compares job names,
// groups and the options lists: a section whose name starts with "global"
// is [global], a section name keeps its blanks, the first job of the
// second file starts a new group, and fio lists a section's options in
// its parse order (unit_base first, filename last).
func TestSeveralFilesLikeFio(t *testing.T) {
	fio, err := exec.LookPath("fio")
	if err != nil {
		t.Skip("fio is not installed (apt-get install fio): the comparison with fio's own parse is skipped")
	}
	dir := t.TempDir()
	f1, f2 := filepath.Join(dir, "one.fio"), filepath.Join(dir, "two.fio")
	if err := os.WriteFile(f1, []byte("[globalx]\nioengine=null\nsize=64k\n[ spaced ]\nfilename="+filepath.Join(dir, "data")+
		"\ndirectory="+dir+"\nunit_base=8\n[b]\nthreads=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f2, []byte("[c]\nioengine=null\nsize=64k\n[d]\nioengine=null\nsize=64k\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(fio, "--output-format=json", f1, f2).Output()
	if err != nil {
		t.Fatalf("fio: %v", err)
	}
	var rep struct {
		Global json.RawMessage `json:"global options"`
		Jobs   []struct {
			Name    string          `json:"jobname"`
			Group   int             `json:"groupid"`
			Options json.RawMessage `json:"job options"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatal(err)
	}
	jobs, err := LoadJobs([]string{f1, f2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != len(rep.Jobs) {
		t.Fatalf("%d jobs, fio %d", len(jobs), len(rep.Jobs))
	}
	for i, f := range rep.Jobs {
		j := jobs[i]
		if j.Name != f.Name || j.GroupID != f.Group {
			t.Errorf("job %d: %q group %d; fio %q group %d", i, j.Name, j.GroupID, f.Name, f.Group)
		}
		if got, want := kvJSON(j.Options), compactJSON(t, f.Options); got != want {
			t.Errorf("job %q: job options %s, fio %s", j.Name, got, want)
		}
		if i < 2 && (j.IOEngine != "null" || j.Size != 64<<10) {
			t.Errorf("job %q did not inherit [globalx]: engine %s size %d", j.Name, j.IOEngine, j.Size)
		}
	}
	// fio 3.33 prints the "global options" of the last job file only (none
	// here); the jobs of the first still hold theirs.
	if len(rep.Global) != 0 || kvJSON(jobs[0].GlobalOptions) != `{"ioengine":"null","size":"64k"}` {
		t.Errorf("global options: fio %s, first job %s", rep.Global, kvJSON(jobs[0].GlobalOptions))
	}
}

// TestIncludeFromCurrentDirectory: fio opens an include as named first,
// and only when that does not exist, beside the including file.
func TestIncludeFromCurrentDirectory(t *testing.T) {
	dir := t.TempDir()
	sub := filepath.Join(dir, "sub")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	for name, body := range map[string]string{"inc.fio": "iodepth=7\n", "sub/inc.fio": "iodepth=3\n", "sub/main.fio": "[j]\nioengine=null\ninclude inc.fio\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	jobs, err := LoadJobs([]string{"sub/main.fio"}, nil)
	if err != nil || jobs[0].IODepth != 7 {
		t.Fatalf("iodepth %v, %v; want 7, from ./inc.fio as fio opens it", jobs, err)
	}
}

// TestZonedRangesLikeFio: fio fills ranges left out ("20/") with what the
// others leave (fio's examples/rand-zones.fio).
func TestZonedRangesLikeFio(t *testing.T) {
	j := DefaultJob()
	if err := setDistribution(&j, "zoned:50/5:30/15:20/"); err != nil {
		t.Fatal(err)
	}
	if z := j.Dist.Zones; len(z) != 3 || z[2] != (Zone{Access: 20, Range: 80}) {
		t.Errorf("zones %v, want the last 20/80", z)
	}
	if err := setDistribution(&j, "zoned:50/10:25:25"); err != nil || j.Dist.Zones[1].Range != 45 || j.Dist.Zones[2].Range != 45 {
		t.Errorf("zones %v, %v; want ranges 10, 45, 45", j.Dist.Zones, err)
	}
	if err := setRW(&j, "read:-8k"); err != nil || j.RWModifier != -8192 {
		t.Errorf("rw=read:-8k (fio's backwards-read.fio): modifier %d, %v", j.RWModifier, err)
	}
}

// TestUnsetVariableNamed: fio's examples/libcufile-cufile.fio needs
// FIO_DIR; without it the error says so.
func TestUnsetVariableNamed(t *testing.T) {
	secs, err := ParseJobFile(strings.NewReader("[j]\nioengine=null\ndirectory=${FP_SURELY_UNSET_VAR}\n"), "v.fio")
	if err == nil {
		_, err = BuildJobs(nil, secs, nil)
	}
	if err == nil || !strings.Contains(err.Error(), "v.fio:3 (${FP_SURELY_UNSET_VAR} is empty): job j: option directory: needs a value") {
		t.Errorf("error %v", err)
	}
}

// TestValuesLikeFio: values fio 3.33 takes that were refused here.
func TestValuesLikeFio(t *testing.T) {
	f := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(f, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	j := parseString(t, "[j]\nioengine=null\nrw=randread\ntime_based=2\nruntime=1\nloops=0\nrandom_distribution=zipf\n"+
		"filename="+f+"\nnumjobs=2\noffset_increment=25%\nsize=25%\n")[0]
	if !j.TimeBased || j.Loops != 1 || j.Dist.Kind != DistZipf || j.Dist.Theta != 1.1 || j.OffsetIncrement != 256<<10 {
		t.Errorf("time_based %v loops %d dist %+v offset_increment %d", j.TimeBased, j.Loops, j.Dist, j.OffsetIncrement)
	}
	for _, bad := range []string{"startdelay=1-2", "random_distribution=zipf:1.2:0.5", "direct=2"} {
		secs, _ := ParseJobFile(strings.NewReader("[j]\nioengine=null\nrw=randread\n"+bad+"\n"), "b.fio")
		if _, err := BuildJobs(nil, secs, nil); err == nil {
			t.Errorf("%s accepted (fio: a random delay, a distribution center; direct is 0 or 1)", bad)
		}
	}
}

// TestRuntimeOptionsParse: the options the workers run are parsed into
// their Job fields (the workers' tests check what they do with them).
func TestRuntimeOptionsParse(t *testing.T) {
	jobs := parseString(t, "[a]\nioengine=null\n[j]\nioengine=null\nrw=randread:4\nrw_sequencer=identical\nwait_for=a\nexitall_on_error\nexit_what=all\n"+
		"verify_interval=512\npercentage_random=30,60\nnice=5\nprio=3\nprioclass=3\nunlink=1\nverify_fatal=1\nverify_backlog=8\n"+
		"verify_backlog_batch=8\nrate_min=1m\nrate_iops_min=,10\nrandom_generator=lfsr\nthinktime_blocks_type=issue\nthinktime_spin=50\n"+
		"rate_ignore_thinktime\nscramble_buffers=0\nbuffer_compress_percentage=40\nbuffer_compress_chunk=4k\npre_read=1\n")
	j := jobs[1]
	if j.RWModifier != 4 || !j.RWSequencerIdentical || j.WaitFor != "a" || !j.ExitAllOnError || j.ExitWhat != "all" ||
		j.VerifyInterval != 512 || j.RandomPct != [numDirs]int{30, 60, 0} || j.Nice != 5 || j.Prio != 3 || j.PrioClass != 3 ||
		!j.Unlink || !j.VerifyFatal || j.VerifyBacklog != 8 || j.RateMin[DirRead] != 1<<20 || j.RateIOPSMin[DirWrite] != 10 ||
		j.RandomGenerator != "lfsr" || !j.ThinkIssue || j.ThinkSpin != 50*time.Microsecond || !j.RateIgnoreThink || !j.NoScramble ||
		j.CompressPct != 40 || j.CompressChunk != 4096 || !j.PreRead {
		t.Errorf("%+v", *j)
	}
	for _, bad := range []string{"percentage_random=0", "exit_what=some"} {
		secs, _ := ParseJobFile(strings.NewReader("[j]\nioengine=null\nrw=randread\n"+bad+"\n"), "b.fio")
		if _, err := BuildJobs(nil, secs, nil); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestValidationErrorsNameTheLine: an error found once the whole job is
// known still names the line of the option it is about.
func TestValidationErrorsNameTheLine(t *testing.T) {
	secs, err := ParseJobFile(strings.NewReader("[j]\nioengine=null\nrw=randread:-8\nsize=1m\n"), "w.fio")
	if err == nil {
		_, err = BuildJobs(nil, secs, nil)
	}
	if err == nil || !strings.HasPrefix(err.Error(), "w.fio:3: job j: option rw:") {
		t.Errorf("error %v, want one at w.fio:3", err)
	}
}

// TestSectionsInFileOrder: --section keeps the file's order (fio 3.33:
// --section=b --section=a runs a, then b), and the first job run from a
// later file starts a new group.
func TestSectionsInFileOrder(t *testing.T) {
	dir := t.TempDir()
	f1, f2 := filepath.Join(dir, "1.fio"), filepath.Join(dir, "2.fio")
	for f, body := range map[string]string{f1: "[a]\nioengine=null\n[b]\nioengine=null\n", f2: "[c]\nioengine=null\n[d]\nioengine=null\n"} {
		if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	jobs, err := LoadJobs([]string{f1, f2}, nil, "d", "b", "a")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, j := range jobs {
		got = append(got, fmt.Sprintf("%s/%d", j.Name, j.GroupID))
	}
	if want := []string{"a/0", "b/0", "d/1"}; !slices.Equal(got, want) {
		t.Errorf("jobs %v, want %v", got, want)
	}
}

// TestCommandLineSweepOverJobFile: a list on the command line sweeps the
// files' jobs even where they set the option (flashpath's sweep; a single
// value stays a default beneath the file, as in fio).
func TestCommandLineSweepOverJobFile(t *testing.T) {
	jobs := parseString(t, "[j]\nioengine=null\niodepth=4\nbs=8k\n", Option{"iodepth", "1,16"}, Option{"bs", "64k"})
	if len(jobs) != 2 || jobs[0].IODepth != 1 || jobs[1].IODepth != 16 || jobs[0].BS[DirRead] != 8192 {
		t.Errorf("%d jobs: iodepth %d, %d, bs %d; want a sweep 1, 16 over the file's bs 8k", len(jobs), jobs[0].IODepth, jobs[len(jobs)-1].IODepth, jobs[0].BS[DirRead])
	}
}

// TestBlockSizeOptionsLikeFio: bssplit and bsrange win over bs whatever
// their order (fio 3.33 draws the same mean either way), and an engine
// option of an engine fio's alias does not run on says so.
func TestBlockSizeOptionsLikeFio(t *testing.T) {
	for _, file := range []string{"bsrange=4k-16k\nbs=8k", "bs=8k\nbsrange=4k-16k", "bssplit=4k/50:64k/50\nbs=8k"} {
		j := parseString(t, "[j]\nioengine=null\nrw=randread\n"+file+"\n")[0]
		if j.BSSplit[DirRead] == nil || j.BS[DirRead] != 4096 {
			t.Errorf("%q: mix %v bs %d; want the mix, bs its smallest", file, j.BSSplit[DirRead], j.BS[DirRead])
		}
	}
	secs, _ := ParseJobFile(strings.NewReader("[j]\nioengine=pvsync2\nhipri\n"), "h.fio")
	if _, err := BuildJobs(nil, secs, nil); err == nil || !strings.Contains(err.Error(), "fio's pvsync2 runs on psync here") {
		t.Errorf("hipri with pvsync2: %v", err)
	}
}

// TestShowCmdLikeFio: --showcmd writes what fio 3.33's --showcmd writes
// for the same files, byte for byte.
func TestShowCmdLikeFio(t *testing.T) {
	fio, err := exec.LookPath("fio")
	if err != nil {
		t.Skip("fio is not installed (apt-get install fio): the comparison with fio's --showcmd is skipped")
	}
	dir := t.TempDir()
	files := map[string]string{
		"a.fio":   "[global]\nname=gname\nnumjobs=4 ; four\nfilename=data.tmp ; a disk\nbs=8k# hash\nsize=1m\ndescription=a \"b\n\n[j1]\nrw=read:8k\n[j2]\n",
		"b.fio":   "[global]\nioengine=null\nfilename=f\nkb_base=1000\ntime_based\n[j1]\nrw=read\ndescription=two words\n[global]\nbs=8k\n[j2]\ninclude inc.fio\n",
		"inc.fio": "iodepth=4\nunit_base=8\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	paths := []string{filepath.Join(dir, "a.fio"), filepath.Join(dir, "b.fio")}
	want, err := exec.Command(fio, append([]string{"--showcmd"}, paths...)...).Output()
	if err != nil {
		t.Fatalf("fio: %v", err)
	}
	var got bytes.Buffer
	if err := ShowCmd(&got, paths); err != nil {
		t.Fatal(err)
	}
	if got.String() != string(want) {
		t.Errorf("--showcmd:\n%q\nfio:\n%q", got.String(), want)
	}
}

// TestCPUMask: fio's cpumask is cpus_allowed as a bit mask.
func TestCPUMask(t *testing.T) {
	j := parseString(t, "[j]\nioengine=null\ncpumask=0x5\n")[0]
	if !slices.Equal(j.CPUs, []int{0, 2}) {
		t.Errorf("cpumask=0x5: CPUs %v, want [0 2]", j.CPUs)
	}
}
