package bench

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sampleJobFile = `
; fio-style job file
[global]
ioengine=null
bs=4k
iodepth=16
size=${FP_TEST_SIZE}
time_based
runtime=5

[seqread]
rw=read
bs=128k

# a comment
[randwrite]
rw=randwrite
stonewall

[global]
iodepth=1

[late]
rw=randread
numjobs=2
`

func TestJobFileGlobalInheritance(t *testing.T) {
	t.Setenv("FP_TEST_SIZE", "1g")
	secs, err := ParseJobFile(strings.NewReader(sampleJobFile), "sample.fio")
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := BuildJobs(nil, secs, opts("runtime=2"))
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 3 {
		t.Fatalf("%d jobs", len(jobs))
	}
	seq, rw, late := jobs[0], jobs[1], jobs[2]
	if seq.Name != "seqread" || seq.BS[DirRead] != 128<<10 || seq.IODepth != 16 || seq.Size != 1<<30 || !seq.TimeBased {
		t.Errorf("seqread did not inherit/override: %+v", *seq)
	}
	if rw.BS[DirWrite] != 4096 || rw.RW != (RW{Write: true, Random: true}) || rw.GroupID != 1 {
		t.Errorf("randwrite: %+v", *rw)
	}
	// A [global] after a job applies only to the jobs below it.
	if late.IODepth != 1 || seq.IODepth != 16 || late.NumJobs != 2 {
		t.Errorf("late global: late iodepth %d, seqread iodepth %d", late.IODepth, seq.IODepth)
	}
	if late.GroupID != 1 {
		t.Errorf("late job group %d, want 1 (runs with randwrite, no stonewall)", late.GroupID)
	}
	for _, j := range jobs {
		if j.Runtime.Seconds() != 2 {
			t.Errorf("%s: command-line runtime did not override: %v", j.Name, j.Runtime)
		}
	}
}

func TestJobFileErrors(t *testing.T) {
	for _, tc := range []struct{ file, want string }{
		{"rw=read\n", "outside of a section"},
		{"[global]\nbs=4k\n", "no job sections"},
		{"[job\nrw=read\n", "unterminated"},
		{"[j]\nioengine=null\nbogus_option=3\n", `x.fio:3: job j: option bogus_option: unknown option`},
	} {
		secs, err := ParseJobFile(strings.NewReader(tc.file), "x.fio")
		if err == nil {
			_, err = BuildJobs(nil, secs, nil)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want %q", tc.file, err, tc.want)
		}
	}
}

func TestLoadJobsFromFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "j.fio")
	if err := os.WriteFile(p, []byte("[a]\nioengine=null\nsize=1m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	jobs, err := LoadJobs([]string{p}, opts("bs=8k"))
	if err != nil || len(jobs) != 1 || jobs[0].BS[DirRead] != 8192 || jobs[0].Name != "a" {
		t.Fatalf("jobs %v, err %v", jobs, err)
	}
}
