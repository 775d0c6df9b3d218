package bench

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// TestParseSizeFioRule: job options read sizes by fio's rule (the cases
// are in internal/units): kb is 1024, the IEC spelling kib 1000.
func TestParseSizeFioRule(t *testing.T) {
	if k, err := ParseSize("4kb"); err != nil || k != 4096 {
		t.Errorf("ParseSize(4kb) = %d, %v; want 4096", k, err)
	}
	if k, err := ParseSize("4KiB"); err != nil || k != 4000 {
		t.Errorf("ParseSize(4KiB) = %d, %v; want 4000", k, err)
	}
}

func TestParseTimeFioUnits(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"10", 10 * time.Second}, // fio: seconds without a suffix
		{"10s", 10 * time.Second},
		{"2m", 2 * time.Minute}, // m is minutes for times, not milli
		{"1h", time.Hour},
		{"500ms", 500 * time.Millisecond},
		{"250msec", 250 * time.Millisecond},
		{"100us", 100 * time.Microsecond},
		{"1d", 24 * time.Hour},
	}
	for _, tc := range tests {
		got, err := ParseTime(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("ParseTime(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "s", "10y", "1.5s"} {
		if _, err := ParseTime(bad); err == nil {
			t.Errorf("ParseTime(%q) succeeded", bad)
		}
	}
}

func opts(kv ...string) []Option {
	var o []Option
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		o = append(o, Option{k, v})
	}
	return o
}

func TestOptionSemantics(t *testing.T) {
	tests := []struct {
		name  string
		opts  []Option
		check func(j *Job) bool
	}{
		{"defaults like fio", nil, func(j *Job) bool {
			return j.RW == RW{Read: true} && j.BS[DirRead] == 4096 && j.IODepth == 1 && j.NumJobs == 1 &&
				j.IOEngine == "psync" && j.RandRepeat && j.RWMixRead == 50 && !j.Direct && j.DoVerify
		}},
		{"randread", opts("rw=randread"), func(j *Job) bool { return j.RW == RW{Read: true, Random: true} }},
		{"readwrite alias", opts("readwrite=randrw"), func(j *Job) bool { return j.RW == RW{Read: true, Write: true, Random: true} }},
		{"bs read,write", opts("bs=4k,64k"), func(j *Job) bool { return j.BS == [numDirs]int{4096, 65536, 4096} }},
		{"bs only write", opts("bs=,8k"), func(j *Job) bool { return j.BS == [numDirs]int{4096, 8192, 4096} }},
		{"bs read,write,trim", opts("bs=4k,8k,1m"), func(j *Job) bool { return j.BS == [numDirs]int{4096, 8192, 1 << 20} }},
		{"blocksize alias", opts("blocksize=1m"), func(j *Job) bool { return j.BS == [numDirs]int{1 << 20, 1 << 20, 1 << 20} }},
		{"trim", opts("rw=trim"), func(j *Job) bool { return j.RW == RW{Trim: true} && j.RW.String() == "trim" }},
		{"randtrim", opts("rw=randtrim"), func(j *Job) bool { return j.RW == RW{Trim: true, Random: true} && j.RW.String() == "randtrim" }},
		{"trimwrite", opts("rw=trimwrite"), func(j *Job) bool { return j.RW == RW{Trim: true, Write: true} && j.RW.String() == "trimwrite" }},
		{"bare bool", opts("time_based", "runtime=10"), func(j *Job) bool { return j.TimeBased && j.Runtime == 10*time.Second }},
		{"bool zero", opts("randrepeat=0"), func(j *Job) bool { return !j.RandRepeat }},
		{"direct", opts("direct=1"), func(j *Job) bool { return j.Direct }},
		{"buffered=0 is direct", opts("buffered=0"), func(j *Job) bool { return j.Direct }},
		{"rwmixwrite", opts("rw=randrw", "rwmixwrite=30"), func(j *Job) bool { return j.RWMixRead == 70 }},
		{"size offset", opts("size=1g", "offset=1m"), func(j *Job) bool { return j.Size == 1<<30 && j.Offset == 1<<20 }},
		{"zipf", opts("rw=randread", "random_distribution=zipf:1.2"), func(j *Job) bool { return j.Dist.Kind == DistZipf && j.Dist.Theta == 1.2 }},
		{"pareto", opts("rw=randread", "random_distribution=pareto:0.9"), func(j *Job) bool { return j.Dist.Kind == DistPareto && j.Dist.H == 0.9 }},
		{"normal", opts("rw=randread", "random_distribution=normal:10"), func(j *Job) bool { return j.Dist.Kind == DistNormal && j.Dist.Dev == 10 }},
		{"zoned", opts("rw=randread", "random_distribution=zoned:60/10:30/20:10/70"), func(j *Job) bool {
			return j.Dist.Kind == DistZoned && len(j.Dist.Zones) == 3 && j.Dist.Zones[1] == Zone{30, 20}
		}},
		{"verify", opts("rw=write", "verify=crc32c", "do_verify=0"), func(j *Job) bool { return j.Verify == "crc32c" && !j.DoVerify }},
		{"engine option", opts("ioengine=io_uring", "fixedbufs=0"), func(j *Job) bool { return j.EngineOptions["fixedbufs"] == "0" }},
		{"later wins", opts("iodepth=4", "iodepth=8"), func(j *Job) bool { return j.IODepth == 8 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			jobs, err := BuildJobs(nil, []Section{{Name: "j", Options: tc.opts}}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !tc.check(jobs[0]) {
				t.Fatalf("job %+v", *jobs[0])
			}
		})
	}
}

func TestOptionErrorsNameTheOption(t *testing.T) {
	tests := []struct {
		opts []Option
		want string
	}{
		{opts("rw=randomread"), "option rw"},
		{opts("bs=4q"), "option bs"},
		{opts("iodepth=0"), "option iodepth"},
		{opts("runtime=ten"), "option runtime"},
		{opts("random_distribution=zipf:1"), "option random_distribution"},
		{opts("rw=trim", "verify=crc32c"), "option verify"},
		{opts("rw=trimwrite", "bs=4k,8k,4k"), "option bs"},
		{opts("random_distribution=pareto:1"), "option random_distribution"},
		{opts("random_distribution=normal:0"), "option random_distribution"},
		{opts("random_distribution=zoned:50/10:40/90"), "sum to 90"},
		{opts("random_distribution=zoned:50/10:x"), "ACCESS/RANGE"},
		{opts("verify=md4"), "option verify"},
		{opts("ioengine=splice"), "option ioengine"},
		{opts("frobnicate=1"), "option frobnicate: unknown option"},
		{opts("ioengine=null", "fixedbufs=1"), "option fixedbufs: unknown option (an option of engine io_uring, not of null)"},
		{opts("time_based"), "option time_based"},
		{opts("direct=1", "bs=1000"), "option bs"},
		{opts("iodepth"), "option iodepth"},
	}
	for _, tc := range tests {
		_, err := BuildJobs(nil, []Section{{Name: "j", Options: tc.opts}}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one naming %s", tc.opts, err, tc.want)
		}
	}
	_, err := BuildJobs(nil, []Section{{Name: "j", Options: opts("nosuch=1")}}, nil)
	if !errors.Is(err, ErrUnknownOption) {
		t.Errorf("unknown option error %v does not wrap ErrUnknownOption", err)
	}
}

func TestSweepExpandsToOneGroupPerPoint(t *testing.T) {
	jobs, err := LoadJobs(nil, opts("ioengine=null", "iodepth=1,8,32,128", "numjobs=1,2"))
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 8 {
		t.Fatalf("%d jobs, want 4 iodepths x 2 numjobs", len(jobs))
	}
	seen := map[[2]int]bool{}
	for i, j := range jobs {
		if j.GroupID != i {
			t.Errorf("job %d in group %d, want its own group", i, j.GroupID)
		}
		if len(j.Swept) != 2 {
			t.Errorf("job %d swept %v", i, j.Swept)
		}
		seen[[2]int{j.IODepth, j.NumJobs}] = true
	}
	for _, qd := range []int{1, 8, 32, 128} {
		for _, nj := range []int{1, 2} {
			if !seen[[2]int{qd, nj}] {
				t.Errorf("missing iodepth=%d numjobs=%d", qd, nj)
			}
		}
	}
	// bs keeps fio's read,write meaning and does not sweep.
	jobs, err = LoadJobs(nil, opts("ioengine=null", "bs=4k,8k"))
	if err != nil || len(jobs) != 1 {
		t.Fatalf("bs=4k,8k: %d jobs, %v", len(jobs), err)
	}
}

func TestFadviseHint(t *testing.T) {
	for _, tc := range []struct {
		opts []string
		want Fadvise
	}{
		{[]string{"rw=randread"}, FadviseRandom},
		{[]string{"rw=read"}, FadviseSequential},
		{[]string{"rw=randrw", "fadvise_hint=0"}, FadviseNone},
		{[]string{"rw=read", "fadvise_hint=random"}, FadviseRandom},
		{[]string{"rw=randread", "fadvise_hint=noreuse"}, FadviseNoReuse},
	} {
		jobs, err := BuildJobs(nil, []Section{{Name: "f", Options: opts(append(tc.opts, "ioengine=null")...)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := jobs[0].FadviseAdvice(); got != tc.want {
			t.Errorf("%v: advice %d, want %d", tc.opts, got, tc.want)
		}
	}
	if _, err := BuildJobs(nil, []Section{{Name: "f", Options: opts("fadvise_hint=often")}}, nil); err == nil {
		t.Error("fadvise_hint=often accepted")
	}
}
