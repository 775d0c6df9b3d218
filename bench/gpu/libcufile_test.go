package gpu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/flashpath/flashpath/bench"
	"github.com/flashpath/flashpath/gds/gdstest"
)

// gpuRecord records, by "job/clone", each clone's GPU twice: where the
// fake libcuda allocated its buffers (the device whose context was
// current; through testHookBuffers) and what its "gpu bench engine" line
// reported, with its path.
type gpuRecord struct {
	mu    sync.Mutex
	alloc map[string]int
	line  map[string]string
}

func (r *gpuRecord) Enabled(context.Context, slog.Level) bool { return true }
func (r *gpuRecord) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *gpuRecord) WithGroup(string) slog.Handler            { return r }
func (r *gpuRecord) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message != "gpu bench engine" {
		return nil
	}
	a := map[string]string{}
	rec.Attrs(func(x slog.Attr) bool { a[x.Key] = x.Value.String(); return true })
	r.mu.Lock()
	r.line[a["job"]+"/"+a["clone"]] = "gpu=" + a["gpu"] + " path=" + a["path"]
	r.mu.Unlock()
	return nil
}

// recordGPUs starts recording, with the fake libcuda showing n GPUs.
func recordGPUs(t *testing.T, n int) *gpuRecord {
	t.Helper()
	gdstest.SkipWithoutBinding(t)
	t.Setenv(gdstest.DevicesEnv, fmt.Sprint(n))
	r := &gpuRecord{alloc: map[string]int{}, line: map[string]string{}}
	old := slog.Default()
	slog.SetDefault(slog.New(r))
	testHookBuffers = func(e *Engine) {
		dev := gdstest.AllocDevice(uint64(e.mem.Ptr()))
		r.mu.Lock()
		r.alloc[fmt.Sprintf("%s/%d", e.job, e.clone)] = dev
		r.mu.Unlock()
		if dev != e.GPU() {
			t.Errorf("job %s clone %d: engine on GPU %d, its buffers allocated on %d", e.job, e.clone, e.GPU(), dev)
		}
	}
	t.Cleanup(func() {
		testHookBuffers = nil
		slog.SetDefault(old)
	})
	return r
}

// check says whether clone c of job ran on GPU want (both records), on path.
func (r *gpuRecord) check(t *testing.T, job string, c, want int, path string) {
	t.Helper()
	k := fmt.Sprintf("%s/%d", job, c)
	r.mu.Lock()
	defer r.mu.Unlock()
	if dev, ok := r.alloc[k]; !ok || dev != want {
		t.Errorf("job %s clone %d: buffers allocated on GPU %d (recorded %v), want %d", job, c, dev, ok, want)
	}
	if l, w := r.line[k], fmt.Sprintf("gpu=%d path=%s", want, path); l != w {
		t.Errorf("job %s clone %d: reported %q, want %q", job, c, l, w)
	}
}

// runFile runs a job file and returns every clone's result, or the error
// that stopped the run; edit, when set, changes the built jobs first.
func runFile(t *testing.T, text string, edit func(*bench.Job)) ([]*bench.JobResult, error) {
	t.Helper()
	secs, err := bench.ParseJobFile(strings.NewReader(text), "job.fio")
	if err != nil {
		t.Fatal(err)
	}
	jobs, err := bench.BuildJobs(nil, secs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		for _, j := range jobs {
			edit(j)
		}
	}
	rep, err := bench.Run(context.Background(), bench.Config{Jobs: jobs})
	if err != nil {
		return nil, err
	}
	var rs []*bench.JobResult
	for _, g := range rep.Groups {
		rs = append(rs, g.Jobs...)
	}
	return rs, nil
}

func mustRunFile(t *testing.T, text string, edit func(*bench.Job)) []*bench.JobResult {
	t.Helper()
	rs, err := runFile(t, text, edit)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

// TestGPUDevIDs: fio's libcufile gives clone i of a job the (i mod n)th ID
// of gpu_dev_ids (by subjob number, in the list's order); each clone's
// buffers are on its GPU, the data written from them verifies, and each
// clone's line reports its GPU. cuda_io=cufile runs on cuFile, posix on
// the bounce path.
func TestGPUDevIDs(t *testing.T) {
	for _, tc := range []struct {
		cudaIO, direct, path string
		ids                  string
		numjobs              int
		want                 []int
	}{
		{"cufile", "1", "cufile", "0:1", 4, []int{0, 1, 0, 1}},
		{"posix", "0", "bounce", "0:1", 4, []int{0, 1, 0, 1}},
		{"posix", "0", "bounce", "2:0", 3, []int{2, 0, 2}},
	} {
		t.Run(tc.cudaIO+","+tc.ids, func(t *testing.T) {
			r := recordGPUs(t, 3)
			dir := t.TempDir()
			if tc.direct == "1" {
				directOK(t, dir)
			}
			rs := mustRunFile(t, fmt.Sprintf("[mgpu]\nioengine=libcufile\ncuda_io=%s\ngpu_dev_ids=%s\nnumjobs=%d\ndirect=%s\n"+
				"directory=%s\nsize=256k\nbs=16k\niodepth=4\nrw=randwrite\nverify=crc32c\nthread\n",
				tc.cudaIO, tc.ids, tc.numjobs, tc.direct, dir), nil)
			if len(rs) != tc.numjobs {
				t.Fatalf("%d results, want %d", len(rs), tc.numjobs)
			}
			for _, res := range rs {
				if res.Err != nil {
					t.Fatalf("clone %d: %v", res.Clone, res.Err)
				}
				if w, rd := res.Dir[bench.DirWrite], res.Dir[bench.DirRead]; w.IOs != 16 || rd.IOs != 16 {
					t.Errorf("clone %d: %d writes, %d verify reads; want 16, 16", res.Clone, w.IOs, rd.IOs)
				}
			}
			for c, g := range tc.want {
				r.check(t, "mgpu", c, g, tc.path)
			}
		})
	}
}

// TestGPUDevIDsRefused: an ID the machine lacks fails the job, naming the
// option, the ID and how many GPUs there are, whether or not a clone
// would use it; so does the engines' own gpu=.
func TestGPUDevIDsRefused(t *testing.T) {
	recordGPUs(t, 2)
	dir := t.TempDir()
	for _, tc := range []struct{ opts, want string }{
		{"ioengine=libcufile\ncuda_io=posix\ngpu_dev_ids=0:2\nnumjobs=1", "option gpu_dev_ids: GPU 2 does not exist: this machine has 2 GPUs (IDs 0 to 1)"},
		{"ioengine=libcufile\ncuda_io=posix\ngpu_dev_ids=5", "option gpu_dev_ids: GPU 5 does not exist: this machine has 2 GPUs (IDs 0 to 1)"},
		{"ioengine=gpu\ngpu=1:3\nnumjobs=2", "option gpu: GPU 3 does not exist: this machine has 2 GPUs (IDs 0 to 1)"},
		{"ioengine=cufile\ngpu=0:x", `option gpu="0:x": want a GPU ordinal, or ordinals separated by ':'`},
	} {
		rs, err := runFile(t, "[bad]\n"+tc.opts+"\ndirectory="+dir+"\nsize=64k\nrw=read\n", nil)
		for _, res := range rs {
			err = errors.Join(err, res.Err)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want %q", tc.opts, err, tc.want)
		}
	}
}

// TestLibcufileDefaults: fio's libcufile defaults, cuda_io=cufile and GPU
// 0 when gpu_dev_ids is not given, for every clone.
func TestLibcufileDefaults(t *testing.T) {
	r := recordGPUs(t, 2)
	dir := t.TempDir()
	directOK(t, dir)
	rs := mustRunFile(t, "[def]\nioengine=libcufile\ndirect=1\nnumjobs=2\ndirectory="+dir+"\nsize=64k\nbs=16k\nrw=write\nverify=crc32c\n", nil)
	for _, res := range rs {
		if res.Err != nil || res.Job.IOEngine != "cufile" {
			t.Fatalf("clone %d: engine %s, %v", res.Clone, res.Job.IOEngine, res.Err)
		}
	}
	r.check(t, "def", 0, 0, "cufile")
	r.check(t, "def", 1, 0, "cufile")
}

// The options of fio's examples/libcufile-cufile.fio and
// libcufile-posix.fio (fio 3.33), without their comments: jobs read,
// write, randread, randwrite, verify and randverify, 16 clones each, over
// $GPU_DEV_IDS.
const (
	fioLibcufileCufile = "[global]\nioengine=libcufile\ndirectory=${FIO_DIR}\ngpu_dev_ids=${GPU_DEV_IDS}\ncuda_io=cufile\n" +
		"direct=1\nbs=1m\nsize=1m\nnumjobs=16\nthread\n\n" + fioLibcufileJobs
	fioLibcufilePosix = "[global]\nioengine=libcufile\ndirectory=${FIO_DIR}\ngpu_dev_ids=${GPU_DEV_IDS}\ncuda_io=posix\n" +
		"direct=0\nbs=1m\nsize=1G\nnumjobs=16\nthread\n\n" + fioLibcufileJobs
	fioLibcufileJobs = "[read]\nrw=read\n\n[write]\nrw=write\n\n[randread]\nrw=randread\n\n[randwrite]\nrw=randwrite\n\n" +
		"[verify]\nrw=write\nverify=md5\n\n[randverify]\nrw=randwrite\nverify=md5\n"
)

// TestFioLibcufileExamples runs fio's two libcufile example job files as
// they are, with FIO_DIR and GPU_DEV_IDS=0:1 set as their comments ask,
// on a fake with two GPUs; the posix one's size=1G per clone (96 GiB in
// all) is cut to 1 MiB after parsing. Every clone runs on its GPU and the
// verify jobs check their data.
func TestFioLibcufileExamples(t *testing.T) {
	for _, tc := range []struct{ name, text, path string }{
		{"cufile", fioLibcufileCufile, "cufile"},
		{"posix", fioLibcufilePosix, "bounce"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := recordGPUs(t, 2)
			dir := t.TempDir()
			if tc.name == "cufile" {
				directOK(t, dir)
			}
			t.Setenv("FIO_DIR", dir)
			t.Setenv("GPU_DEV_IDS", "0:1")
			rs := mustRunFile(t, tc.text, func(j *bench.Job) {
				if j.Size == 1<<30 {
					j.Size = 1 << 20
				}
			})
			if len(rs) != 6*16 {
				t.Fatalf("%d results, want 96", len(rs))
			}
			for _, res := range rs {
				if res.Err != nil {
					t.Fatalf("job %s clone %d: %v", res.Job.Name, res.Clone, res.Err)
				}
				if n := res.Dir[bench.DirRead].IOs + res.Dir[bench.DirWrite].IOs; n == 0 {
					t.Errorf("job %s clone %d: no I/O", res.Job.Name, res.Clone)
				}
				if res.Job.Verify != "" && res.Dir[bench.DirRead].IOs != 1 {
					t.Errorf("job %s clone %d: %d verify reads, want 1", res.Job.Name, res.Clone, res.Dir[bench.DirRead].IOs)
				}
				r.check(t, res.Job.Name, res.Clone, res.Clone%2, tc.path)
			}
		})
	}
}
