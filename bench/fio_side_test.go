//go:build linux

package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// The side-by-side test: job files run by fio and by the bench on the same
// file and machine, compared where the bench promises fio's numbers (issue
// 20): the queue depth held, rate limits met, the same verify failures.
// Only the bounds the issue names are asserted: depth within 2 points of
// fio's share at the job's iodepth, a rate within 1% of its target.

// sideFio returns fio's path, or skips the test.
func sideFio(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: the side-by-side runs with fio take seconds")
	}
	p, err := exec.LookPath("fio")
	if err != nil {
		t.Skip("fio is not installed: the side-by-side comparison needs fio 3.x on PATH (Debian, Ubuntu: apt-get install fio)")
	}
	out, err := exec.Command(p, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "fio-3.") {
		t.Skipf("fio --version: %q, %v: the comparison is written against fio 3.x", out, err)
	}
	return p
}

// sideFile makes the data file both tools use: random bytes (so that
// neither lays it out) on a file system that takes O_DIRECT.
func sideFile(t *testing.T, size int) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "data")
	b := make([]byte, size)
	rand.Read(b)
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync() // no writeback left for the jobs' direct I/O to wait on
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(name, unix.O_RDONLY|unix.O_DIRECT, 0)
	if err != nil {
		t.Skipf("%s: O_DIRECT: %v: the comparison runs direct=1 (a tmpfs TMPDIR cannot; point TMPDIR at a disk)", name, err)
	}
	unix.Close(fd)
	return name
}

// fioOut is the part of fio's JSON the comparison reads.
type fioOut struct {
	Jobs []fioOutJob `json:"jobs"`
}

type fioOutJob struct {
	Name  string             `json:"jobname"`
	Error int                `json:"error"`
	Depth map[string]float64 `json:"iodepth_level"`
	Read  fioDirOut          `json:"read"`
	Write fioDirOut          `json:"write"`
}

type fioDirOut struct {
	IOBytes  uint64  `json:"io_bytes"`
	BW       uint64  `json:"bw_bytes"`
	IOPS     float64 `json:"iops"`
	TotalIOs uint64  `json:"total_ios"`
	Runtime  int64   `json:"runtime"` // ms
}

// runSide writes job to a file and runs it with fio (JSON) and with the
// bench; fio's stderr comes back for its verify messages.
func runSide(t *testing.T, fio, job string) (f *fioOut, fioErr string, rep *Report, benchErr error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "job.fio")
	if err := os.WriteFile(path, []byte(job), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(fio, "--output-format=json", path)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	runErr := cmd.Run()
	f = &fioOut{}
	out := stdout.Bytes()
	if i := bytes.IndexByte(out, '{'); i >= 0 {
		out = out[i:] // fio may print notes before the JSON
	}
	if err := json.Unmarshal(out, f); err != nil || len(f.Jobs) == 0 {
		t.Fatalf("fio %s: %v, %v\n%s\n%s", path, runErr, err, stdout.Bytes(), stderr.Bytes())
	}
	jobs, err := LoadJobs([]string{path}, nil)
	if err != nil {
		t.Fatalf("bench %s: %v", path, err)
	}
	rep, benchErr = Run(context.Background(), Config{Jobs: jobs})
	return f, stderr.String(), rep, benchErr
}

// depthShare is the percent of I/Os submitted at iodepth's level, fio's
// iodepth_level entry for it.
func depthShare(r *JobResult, iodepth int) float64 {
	var total uint64
	for _, c := range r.DepthHist {
		total += c
	}
	return 100 * float64(r.DepthHist[depthLevel(iodepth)]) / float64(max(total, 1))
}

func fioDepthKey(iodepth int) string {
	if iodepth >= 64 {
		return ">=64"
	}
	return strconv.Itoa(1 << depthLevel(iodepth))
}

// TestFioSideBySide: fio and the bench run one job file of stonewalled
// jobs (one run each, to spare fio's start-up), direct I/O on a file:
//   - the same queue depth, fio's iodepth_level at the job's iodepth
//     within 2 points, for the engines both have; with bssplit also the
//     same mean block size (within 5%: fio's random map shortens I/Os);
//   - rate_iops and rate met within 1% of the target, with a synchronous
//     engine and with a queue;
//   - thinktime with thinktime_blocks_type=issue: bursts of
//     thinktime_blocks I/Os from an empty queue, every level of fio's
//     iodepth_level within 2 points (25% at 1, 50% at 2, 25% at 4).
func TestFioSideBySide(t *testing.T) {
	fio := sideFio(t)
	file := sideFile(t, 16<<20)
	type sideJob struct {
		name, opts string
		depth      int       // iodepth to compare (0: none)
		levels     bool      // compare every level of iodepth_level
		dir        Direction // rate: the direction limited
		iops, bw   float64   // rate: the target (one of them)
	}
	jobs := []sideJob{
		{name: "randread-io_uring", opts: "ioengine=io_uring\nrw=randread\niodepth=16", depth: 16},
		{name: "randwrite-libaio", opts: "ioengine=libaio\nrw=randwrite\niodepth=8", depth: 8},
		{name: "mixed-io_uring", opts: "ioengine=io_uring\nrw=randrw\nrwmixread=70\niodepth=4", depth: 4},
		{name: "randread-psync", opts: "ioengine=psync\nrw=randread", depth: 1},
		{name: "bssplit-io_uring", opts: "ioengine=io_uring\nrw=randread\nbssplit=4k/50:16k/30:64k/20\niodepth=8", depth: 8},
		{name: "rate_iops-psync", opts: "ioengine=psync\nrw=randread\nrate_iops=400\nruntime=500ms", dir: DirRead, iops: 400},
		{name: "rate-io_uring", opts: "ioengine=io_uring\nrw=randwrite\niodepth=4\nrate=2m\nruntime=500ms", dir: DirWrite, bw: 2 << 20},
		{name: "thinktime-issue-io_uring", opts: "ioengine=io_uring\nrw=randread\niodepth=8\nthinktime=50\nthinktime_blocks=4\nthinktime_blocks_type=issue", levels: true},
	}
	jobFile := func(jobs []sideJob) string {
		job := fmt.Sprintf("[global]\nfilename=%s\nsize=16m\nbs=4k\ndirect=1\nruntime=300ms\ntime_based\nstonewall\n", file)
		for _, j := range jobs {
			job += fmt.Sprintf("[%s]\n%s\n", j.name, j.opts)
		}
		return job
	}
	// rateMiss says how a rate job missed its target, or "".
	rateMiss := func(tc sideJob, fj fioOutJob, r *JobResult) string {
		st := &r.Dir[tc.dir]
		fd := fj.Read
		if tc.dir == DirWrite {
			fd = fj.Write
		}
		secs := st.Runtime.Seconds()
		got, fioGot, target := float64(st.IOs)/secs, fd.IOPS, tc.iops
		if tc.bw > 0 {
			got, fioGot, target = float64(st.Bytes)/secs, float64(fd.BW), tc.bw
		}
		t.Logf("%s: target %.0f/s: fio %.1f, bench %.1f (%d I/Os in %v)", tc.name, target, fioGot, got, st.IOs, st.Runtime)
		// Within 1% of the target; on a machine so busy that fio itself
		// missed the target, within 1% more than fio missed it by.
		if allowed := 0.01*target + math.Abs(fioGot-target); math.Abs(got-target) > allowed {
			return fmt.Sprintf("%s: target %.0f/s: the bench did %.1f/s, more than 1%% off (fio %.1f/s)", tc.name, target, got, fioGot)
		}
		return ""
	}
	f, stderr, rep, err := runSide(t, fio, jobFile(jobs))
	if err != nil {
		t.Fatalf("bench: %v", err)
	}
	if len(f.Jobs) != len(jobs) || len(rep.Groups) != len(jobs) {
		t.Fatalf("%d jobs in fio's report, %d groups in the bench's, want %d: %s", len(f.Jobs), len(rep.Groups), len(jobs), stderr)
	}
	var missed []sideJob
	for i, tc := range jobs {
		fj, r := f.Jobs[i], rep.Groups[i].Jobs[0]
		if fj.Name != tc.name || r.Job.Name != tc.name || fj.Error != 0 {
			t.Fatalf("job %d: fio's %q (error %d), the bench's %q, want %q: %s", i, fj.Name, fj.Error, r.Job.Name, tc.name, stderr)
		}
		if tc.depth > 0 {
			fioShare, share := fj.Depth[fioDepthKey(tc.depth)], depthShare(r, tc.depth)
			t.Logf("%s: %.2f%% of I/Os at iodepth %d with fio, %.2f%% with the bench", tc.name, fioShare, tc.depth, share)
			if math.Abs(fioShare-share) > 2 {
				t.Errorf("%s: %.2f%% of I/Os at iodepth %d, fio %.2f%% (levels %v; fio %v)", tc.name, share, tc.depth, fioShare, r.DepthHist, fj.Depth)
			}
		}
		if tc.levels {
			var total uint64
			for _, c := range r.DepthHist {
				total += c
			}
			for l, c := range r.DepthHist {
				fioShare, share := fj.Depth[fioDepthKey(1<<l)], 100*float64(c)/float64(max(total, 1))
				if math.Abs(fioShare-share) > 2 {
					t.Errorf("%s: %.2f%% of I/Os at iodepth level %s, fio %.2f%% (levels %v; fio %v)", tc.name, share, fioDepthKey(1<<l), fioShare, r.DepthHist, fj.Depth)
				}
			}
			t.Logf("%s: iodepth_level %v with fio, %v with the bench; %.0f IOPS with fio, %.0f with the bench", tc.name, fj.Depth, r.DepthHist, fj.Read.IOPS, float64(r.Dir[DirRead].IOs)/r.Dir[DirRead].Runtime.Seconds())
		}
		if strings.Contains(tc.opts, "bssplit") {
			fd, d := fj.Read, r.Dir[DirRead]
			fioMean, mean := float64(fd.IOBytes)/float64(fd.TotalIOs), float64(d.Bytes)/float64(d.IOs)
			t.Logf("%s: mean block %.0f bytes with fio, %.0f with the bench", tc.name, fioMean, mean)
			if math.Abs(mean-fioMean) > 0.05*fioMean {
				t.Errorf("%s: mean block %.0f bytes, fio %.0f", tc.name, mean, fioMean)
			}
		}
		if (tc.iops > 0 || tc.bw > 0) && rateMiss(tc, fj, r) != "" {
			missed = append(missed, tc)
		}
	}
	// A rate is met in real time: where other tests load the machine, a
	// job can lose the last I/O or two of its half second to the
	// scheduler. The jobs that missed run again, fio and the bench, at
	// most twice more, and fail only if they miss every time.
	var misses []string // of the last run
	for try := 0; try < 2 && len(missed) > 0; try++ {
		f, stderr, rep, err := runSide(t, fio, jobFile(missed))
		if err != nil || len(f.Jobs) != len(missed) || len(rep.Groups) != len(missed) {
			t.Fatalf("rate jobs again: bench %v, %d fio jobs, %d bench groups: %s", err, len(f.Jobs), len(rep.Groups), stderr)
		}
		var again []sideJob
		misses = nil
		for i, tc := range missed {
			if miss := rateMiss(tc, f.Jobs[i], rep.Groups[i].Jobs[0]); miss != "" {
				again, misses = append(again, tc), append(misses, miss)
			}
		}
		missed = again
	}
	for _, miss := range misses {
		t.Errorf("%s, in all 3 runs", miss)
	}
}

// fioVerifyOffset finds the file and the offset of the block fio's
// verify names in its messages ("... at file F offset N, length L").
var fioVerifyOffset = regexp.MustCompile(`at file (\S+) offset (\d+), length`)

// TestFioSideBySideVerify: files written with a checksum (one file per
// kind, all in one job file) are corrupted between the write and the
// verify; fio and the bench each read them back and report the same
// block with the same error, whichever of them wrote them (the block
// layout is fio's).
func TestFioSideBySideVerify(t *testing.T) {
	fio := sideFio(t)
	kinds := []string{"crc32c", "xxhash", "meta", "crc7", "sha256", "sha512"}
	const bad = 37 * 4096
	for _, writer := range []string{"fio", "bench"} {
		t.Run("written-by-"+writer, func(t *testing.T) {
			var write, read string
			files := map[string]string{}
			for _, kind := range kinds {
				files[kind] = sideFile(t, 1<<20)
				common := fmt.Sprintf("filename=%s\nsize=1m\nbs=4k\nioengine=psync\ndirect=1\nverify=%s\n", files[kind], kind)
				write += "[w-" + kind + "]\n" + common + "rw=randwrite\ndo_verify=0\n"
				read += "[" + kind + "]\n" + common + "rw=read\n"
			}
			if writer == "fio" {
				if out, err := exec.Command(fio, "--output-format=json", writeJob(t, write)).CombinedOutput(); err != nil {
					t.Fatalf("fio write: %v\n%s", err, out)
				}
			} else if _, err := runJobFile(t, write); err != nil {
				t.Fatalf("bench write: %v", err)
			}
			for _, kind := range kinds {
				at := int64(bad + 1000)
				switch kind {
				case "meta":
					at = bad + 20 // the header's offset: meta checks the header alone
				case "sha512":
					at = bad + 4090 // fio's sha512 keeps the data's head and tail, not a digest
				}
				flipByte(t, files[kind], at)
			}
			f, stderr, rep, _ := runSide(t, fio, read)
			fioAt := map[string]string{}
			for _, m := range fioVerifyOffset.FindAllStringSubmatch(stderr, -1) {
				fioAt[m[1]] = m[2]
			}
			for i, kind := range kinds {
				var ve *VerifyError
				r := rep.Groups[0].Jobs[i]
				if r.Job.Name != kind || !errors.As(r.Err, &ve) {
					t.Errorf("%s: the bench's job %q: %v, want a verify error", kind, r.Job.Name, r.Err)
					continue
				}
				t.Logf("%s: fio at %s, bench %v", kind, fioAt[files[kind]], ve)
				if got := fioAt[files[kind]]; got != strconv.Itoa(bad) || ve.Offset != bad {
					t.Errorf("%s: the bench reports the block at %d, fio at %q; corrupted: %d\n%s", kind, ve.Offset, got, bad, stderr)
				}
				if errno(r.Err) != f.Jobs[i].Error {
					t.Errorf("%s: bench error %d, fio's %d", kind, errno(r.Err), f.Jobs[i].Error)
				}
			}
		})
	}
}
