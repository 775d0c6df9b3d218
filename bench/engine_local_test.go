//go:build linux

package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestLocalEnginesEndToEnd writes a file with each engine and every
// direct mode, verifies it, then reads it randomly at depth.
func TestLocalEnginesEndToEnd(t *testing.T) {
	for _, engine := range []string{"psync", "io_uring"} {
		for _, direct := range []string{"0", "1"} {
			t.Run(engine+"/direct="+direct, func(t *testing.T) {
				file := filepath.Join(t.TempDir(), "data")
				base := opts("ioengine="+engine, "filename="+file, "size=2m", "direct="+direct, "iodepth=16")
				rep, err := runJobs(t, append(base, opts("rw=randwrite", "bs=8k", "verify=crc32c")...)...)
				skipUnsupported(t, err)
				if err != nil {
					t.Fatal(err)
				}
				r := rep.Groups[0].Jobs[0]
				if w := r.Dir[DirWrite]; w.IOs != 256 || w.Bytes != 2<<20 {
					t.Fatalf("writes: %d I/Os, %d bytes; want 256, 2 MiB", w.IOs, w.Bytes)
				}
				if rd := r.Dir[DirRead]; rd.IOs != 256 {
					t.Fatalf("verify pass read %d blocks, want 256", rd.IOs)
				}
				rep, err = runJobs(t, append(base, opts("rw=randread", "bs=4k", "norandommap", "io_size=1m")...)...)
				if err != nil {
					t.Fatal(err)
				}
				if rd := rep.Groups[0].Jobs[0].Dir[DirRead]; rd.IOs != 256 || rd.Lat.Count() != 256 {
					t.Fatalf("reads: %d I/Os, %d latencies", rd.IOs, rd.Lat.Count())
				}
			})
		}
	}
}

// TestVerifyCatchesCorruptBlock writes checksummed blocks, flips one byte
// of block 10 on disk behind the benchmark's back, and expects the read
// back to name that block's offset.
func TestVerifyCatchesCorruptBlock(t *testing.T) {
	for _, engine := range []string{"psync", "io_uring"} {
		t.Run(engine, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "data")
			base := opts("ioengine="+engine, "filename="+file, "size=256k", "bs=4k", "iodepth=8", "verify=crc32c")
			_, err := runJobs(t, append(base, opts("rw=write", "do_verify=0")...)...)
			skipUnsupported(t, err)
			if err != nil {
				t.Fatal(err)
			}
			// Intact: a read-verify pass is clean.
			if _, err := runJobs(t, append(base, opts("rw=randread")...)...); err != nil {
				t.Fatalf("clean file failed verify: %v", err)
			}
			f, err := os.OpenFile(file, os.O_RDWR, 0)
			if err != nil {
				t.Fatal(err)
			}
			const bad = 10 * 4096
			if _, err := f.WriteAt([]byte{0xff}, bad+1000); err != nil {
				t.Fatal(err)
			}
			f.Close()
			rep, err := runJobs(t, append(base, opts("rw=randread")...)...)
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("corrupt block not reported: %v", err)
			}
			if ve.Offset != bad || !strings.Contains(ve.Reason, "crc32c") {
				t.Fatalf("reported %v, want crc32c mismatch at offset %d", ve, bad)
			}
			if e := errno(rep.Groups[0].Jobs[0].Err); e != 84 {
				t.Fatalf("fio error %d, want EILSEQ (84)", e)
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("offset %d", bad)) {
				t.Fatalf("message does not name the offset: %v", err)
			}
		})
	}
}

func TestVerifyCatchesMisplacedBlock(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data")
	base := opts("ioengine=psync", "filename="+file, "size=64k", "bs=4k", "verify=crc32c")
	if _, err := runJobs(t, append(base, opts("rw=write", "do_verify=0")...)...); err != nil {
		t.Fatal(err)
	}
	// Copy block 2 over block 5: a valid block in the wrong place.
	b, _ := os.ReadFile(file)
	copy(b[5*4096:6*4096], b[2*4096:3*4096])
	os.WriteFile(file, b, 0o644)
	_, err := runJobs(t, append(base, opts("rw=read")...)...)
	var ve *VerifyError
	if !errors.As(err, &ve) || ve.Offset != 5*4096 || !strings.Contains(ve.Reason, "misplaced") {
		t.Fatalf("got %v, want misplaced block at %d", err, 5*4096)
	}
}

func TestUnreadableFileFailsTheJob(t *testing.T) {
	_, err := runJobs(t, opts("ioengine=psync", "filename="+filepath.Join(t.TempDir(), "none"), "rw=read")...)
	if err == nil || !strings.Contains(err.Error(), "size= is not given") {
		t.Fatalf("err %v", err)
	}
}

// mallocs runs a job and returns how many heap allocations it made.
func mallocs(t *testing.T, o ...Option) uint64 {
	jobs, err := BuildJobs(nil, []Section{{Name: "a", Options: o}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	if _, err := Run(context.Background(), Config{Jobs: jobs}); err != nil {
		skipUnsupported(t, err)
		t.Fatal(err)
	}
	runtime.ReadMemStats(&m1)
	return m1.Mallocs - m0.Mallocs
}

// TestNoAllocationPerIO runs the same job for 1k and for 64k I/Os: the
// allocation count must not grow with the number of I/Os.
func TestNoAllocationPerIO(t *testing.T) {
	for _, engine := range []string{"null", "io_uring"} {
		t.Run(engine, func(t *testing.T) {
			o := opts("ioengine="+engine, "rw=randrw", "bs=512", "iodepth=32", "size=512k", "norandommap")
			if engine != "null" {
				o = append(o, Option{"filename", filepath.Join(t.TempDir(), "f")})
			}
			small := mallocs(t, append(o, Option{"io_size", "512k"})...)
			large := mallocs(t, append(o, Option{"io_size", "32m"})...)
			if large > small+64 {
				t.Fatalf("%d allocations for 1k I/Os, %d for 64k I/Os", small, large)
			}
		})
	}
}

// TestSyncOptions: fsync=N and fdatasync=N sync after every N writes but
// the last (fio 3.33's psync and libaio: 3 syncs for fsync=4 over 16
// writes), end_fsync once at the end, each counted in the sync
// statistics; loops=N runs the job N times.
func TestSyncOptions(t *testing.T) {
	name := filepath.Join(t.TempDir(), "sync")
	for _, tc := range []struct {
		opts  []Option
		syncs uint64
	}{
		{[]Option{{"fsync", "4"}}, 3},
		{[]Option{{"fdatasync", "5"}}, 3},
		{[]Option{{"end_fsync", "1"}}, 1},
		{[]Option{{"fsync", "4"}, {"end_fsync", "1"}}, 4},
		{[]Option{{"fsync", "4"}, {"iodepth", "8"}, {"ioengine", "io_uring"}}, 3},
		{[]Option{{"fsync", "4"}, {"iodepth", "8"}, {"ioengine", "libaio"}}, 3},
		{nil, 0},
	} {
		opts := append([]Option{{"ioengine", "psync"}, {"filename", name}, {"rw", "write"}, {"bs", "4k"}, {"size", "64k"}}, tc.opts...)
		rep, err := Run(context.Background(), Config{Jobs: mustJobs(t, opts...)})
		if err != nil {
			t.Fatalf("%v: %v", tc.opts, err)
		}
		r := rep.Groups[0].Jobs[0]
		if r.Syncs.Count() != tc.syncs || r.Dir[DirWrite].IOs != 16 {
			t.Errorf("%v: %d syncs, %d writes; want %d syncs, 16 writes", tc.opts, r.Syncs.Count(), r.Dir[DirWrite].IOs, tc.syncs)
		}
		var js bytes.Buffer
		if err := rep.WriteJSON(&js); err != nil {
			t.Fatal(err)
		}
		var out struct {
			Jobs []struct {
				Sync struct {
					TotalIOs uint64             `json:"total_ios"`
					LatNs    struct{ N uint64 } `json:"lat_ns"`
				} `json:"sync"`
			} `json:"jobs"`
		}
		if err := json.Unmarshal(js.Bytes(), &out); err != nil || len(out.Jobs) != 1 ||
			out.Jobs[0].Sync.TotalIOs != tc.syncs || out.Jobs[0].Sync.LatNs.N != tc.syncs {
			t.Errorf("%v: JSON sync section %+v, %v", tc.opts, out, err)
		}
	}
	rep, err := Run(context.Background(), Config{Jobs: mustJobs(t, Option{"ioengine", "psync"}, Option{"filename", name},
		Option{"rw", "randread"}, Option{"bs", "4k"}, Option{"size", "64k"}, Option{"loops", "3"})})
	if err != nil {
		t.Fatal(err)
	}
	if n := rep.Groups[0].Jobs[0].Dir[DirRead].IOs; n != 48 {
		t.Errorf("loops=3: %d reads, want 48", n)
	}
}

// TestBufferContents: writes carry random data filled once, scrambled
// per write with its offset and time (fio's default scramble_buffers=1,
// so blocks differ), or as filled with scramble_buffers=0; new random
// data per write with refill_buffers, zeros with zero_buffers.
func TestBufferContents(t *testing.T) {
	name := filepath.Join(t.TempDir(), "contents")
	for _, tc := range []struct {
		opt                          Option
		noScramble, zero, blocksDiff bool
	}{{Option{"description", "default"}, false, false, true}, {Option{"description", "scramble_buffers=0"}, true, false, false},
		{Option{"refill_buffers", "1"}, false, false, true}, {Option{"zero_buffers", "1"}, false, true, false}} {
		os.Remove(name)
		jobs := mustJobs(t, Option{"ioengine", "psync"}, Option{"filename", name},
			Option{"rw", "write"}, Option{"bs", "4k"}, Option{"size", "16k"}, tc.opt)
		jobs[0].NoScramble = tc.noScramble
		if _, err := Run(context.Background(), Config{Jobs: jobs}); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(name)
		if err != nil || len(b) != 16<<10 {
			t.Fatalf("%v: %d bytes, %v", tc.opt, len(b), err)
		}
		if zero := bytes.Count(b, []byte{0}) == len(b); zero != tc.zero {
			t.Errorf("%s=%s: all zeros = %v, want %v", tc.opt.Name, tc.opt.Value, zero, tc.zero)
		}
		if diff := !bytes.Equal(b[:4096], b[4096:8192]); diff != tc.blocksDiff {
			t.Errorf("%s=%s: blocks differ = %v, want %v", tc.opt.Name, tc.opt.Value, diff, tc.blocksDiff)
		}
	}
}

// TestTrim: rw=trim and randtrim punch the blocks out of a file (they read
// back as zeros), trimwrite trims then writes each block, with both engines;
// trims are counted in their own direction and in fio's trim JSON section.
func TestTrim(t *testing.T) {
	for _, engine := range []string{"psync", "io_uring"} {
		for _, rw := range []string{"trim", "randtrim", "trimwrite"} {
			name := filepath.Join(t.TempDir(), "trim")
			if err := os.WriteFile(name, bytes.Repeat([]byte{0x5a}, 64<<10), 0o644); err != nil {
				t.Fatal(err)
			}
			rep, err := runJobs(t, opts("ioengine="+engine, "filename="+name, "rw="+rw, "bs=4k", "size=32k", "offset=16k", "iodepth=4")...)
			skipUnsupported(t, err)
			if err != nil {
				t.Fatalf("%s %s: %v", engine, rw, err)
			}
			r := rep.Groups[0].Jobs[0]
			writes := uint64(0)
			if rw == "trimwrite" {
				writes = 8
			}
			if r.Dir[DirTrim].IOs != 8 || r.Dir[DirWrite].IOs != writes || r.Dir[DirTrim].Bytes != 32<<10 {
				t.Fatalf("%s %s: %d trims (%d bytes), %d writes", engine, rw, r.Dir[DirTrim].IOs, r.Dir[DirTrim].Bytes, r.Dir[DirWrite].IOs)
			}
			b, _ := os.ReadFile(name)
			if !bytes.Equal(b[:16<<10], bytes.Repeat([]byte{0x5a}, 16<<10)) || !bytes.Equal(b[48<<10:], bytes.Repeat([]byte{0x5a}, 16<<10)) {
				t.Fatalf("%s %s: trim touched bytes outside offset..offset+size", engine, rw)
			}
			mid := b[16<<10 : 48<<10]
			if zero := bytes.Count(mid, []byte{0}) == len(mid); zero != (rw != "trimwrite") {
				t.Fatalf("%s %s: trimmed range all zeros = %v", engine, rw, zero)
			}
			var js bytes.Buffer
			rep.WriteJSON(&js)
			var out struct {
				Jobs []struct {
					Trim struct {
						TotalIOs uint64 `json:"total_ios"`
					} `json:"trim"`
				} `json:"jobs"`
			}
			if err := json.Unmarshal(js.Bytes(), &out); err != nil || out.Jobs[0].Trim.TotalIOs != 8 {
				t.Fatalf("%s %s: JSON trim section: %+v %v", engine, rw, out, err)
			}
		}
	}
}

// affinityEngine is the null engine noting the CPUs its caller's thread may
// run on, by clone.
type affinityEngine struct {
	nullEngine
	clone int
}

var affinitySeen sync.Map // clone -> []int

func init() {
	RegisterEngine("test-affinity", func(cfg *EngineConfig) (Engine, error) {
		return &affinityEngine{nullEngine: nullEngine{done: make([]*IO, 0, cfg.IODepth)}, clone: cfg.JobIndex}, nil
	})
}

func (e *affinityEngine) Queue(io *IO) error {
	if _, ok := affinitySeen.Load(e.clone); !ok {
		var set unix.CPUSet
		unix.SchedGetaffinity(0, &set)
		var cpus []int
		for c := range 64 {
			if set.IsSet(c) {
				cpus = append(cpus, c)
			}
		}
		affinitySeen.Store(e.clone, cpus)
	}
	return e.nullEngine.Queue(io)
}

// TestCPUsAllowed: cpus_allowed pins each clone's submitting thread to the
// list, or with cpus_allowed_policy=split to one CPU of it each.
func TestCPUsAllowed(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs 2 CPUs")
	}
	for _, tc := range []struct {
		opts []Option
		want [2][]int
	}{
		{opts("cpus_allowed=0-1", "numjobs=2"), [2][]int{{0, 1}, {0, 1}}},
		{opts("cpus_allowed=0-1", "cpus_allowed_policy=split", "numjobs=2"), [2][]int{{0}, {1}}},
		{opts("cpus_allowed=1", "numjobs=2"), [2][]int{{1}, {1}}},
	} {
		affinitySeen.Clear()
		if _, err := runJobs(t, append(opts("ioengine=test-affinity", "rw=read", "size=64k"), tc.opts...)...); err != nil {
			t.Fatal(err)
		}
		for clone, want := range tc.want {
			got, _ := affinitySeen.Load(clone)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("%v: clone %d ran on CPUs %v, want %v", tc.opts, clone, got, want)
			}
		}
	}
	if _, err := BuildJobs(nil, []Section{{Name: "x", Options: opts("cpus_allowed=3-1")}}, nil); err == nil {
		t.Error("cpus_allowed=3-1 accepted")
	}
}

// TestSyncOpenFlags: sync=1 opens the file O_SYNC and sync=dsync O_DSYNC,
// so every write is durable when it completes; the default opens neither.
func TestSyncOpenFlags(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data")
	for _, tc := range []struct {
		v    string
		want int
	}{{"0", 0}, {"1", unix.O_SYNC}, {"dsync", unix.O_DSYNC}} {
		jobs, err := BuildJobs(nil, []Section{{Name: "s", Options: opts("ioengine=sync", "filename="+file, "size=64k", "rw=write", "sync="+tc.v)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		e, err := openEngine(&EngineConfig{Job: jobs[0], Filename: file})
		if err != nil {
			t.Fatal(err)
		}
		fl, err := unix.FcntlInt(uintptr(e.(*psyncEngine).fileSet[0].fd), unix.F_GETFL, 0)
		e.Close()
		if err != nil {
			t.Fatal(err)
		}
		if got := fl & unix.O_SYNC; got != tc.want {
			t.Errorf("sync=%s: open flags %#x, want %#x of O_SYNC's bits", tc.v, got, tc.want)
		}
	}
	if _, err := BuildJobs(nil, []Section{{Name: "s", Options: opts("filename="+file, "sync=often")}}, nil); err == nil {
		t.Error("sync=often accepted")
	}
}

// TestEngineAliases: fio's posixaio runs on io_uring (and sync on psync),
// with a note saying so; the job still does what it says.
func TestEngineAliases(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data")
	jobs, err := BuildJobs(nil, []Section{{Name: "aio", Options: opts("ioengine=posixaio", "filename="+file, "size=256k",
		"rw=randwrite", "bs=4k", "iodepth=8", "verify=crc32c")}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if j := jobs[0]; j.IOEngine != "io_uring" || j.EngineAlias != "posixaio" {
		t.Fatalf("ioengine=posixaio: engine %q alias %q", j.IOEngine, j.EngineAlias)
	}
	var notes bytes.Buffer
	rep, err := Run(context.Background(), Config{Jobs: jobs, Notes: &notes})
	skipUnsupported(t, err)
	if err != nil {
		t.Fatal(err)
	}
	if r := rep.Groups[0].Jobs[0]; r.Err != nil || r.Dir[DirWrite].IOs != 64 || r.Dir[DirRead].IOs != 64 {
		t.Fatalf("posixaio job: err %v, %d writes, %d verify reads", r.Err, r.Dir[DirWrite].IOs, r.Dir[DirRead].IOs)
	}
	if !strings.Contains(notes.String(), "ioengine=posixaio runs on flashpath's io_uring engine") {
		t.Errorf("no note about the alias: %q", notes.String())
	}
}

// TestLibaio: ioengine=libaio is the kernel's native AIO, an engine of its
// own: direct and buffered writes verify, iodepth I/Os stay in flight
// (the kernel holds an AIO context of that many events meanwhile), trims
// punch holes.
func TestLibaio(t *testing.T) {
	for _, direct := range []string{"1", "0"} {
		file := filepath.Join(t.TempDir(), "data")
		jobs, err := BuildJobs(nil, []Section{{Name: "aio", Options: opts("ioengine=libaio", "filename="+file, "size=256k",
			"rw=randwrite", "bs=4k", "iodepth=8", "verify=md5", "direct="+direct)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if j := jobs[0]; j.IOEngine != "libaio" || j.EngineAlias != "" {
			t.Fatalf("ioengine=libaio: engine %q alias %q", j.IOEngine, j.EngineAlias)
		}
		rep, err := Run(context.Background(), Config{Jobs: jobs})
		skipUnsupported(t, err)
		if err != nil {
			t.Fatalf("direct=%s: %v", direct, err)
		}
		r := rep.Groups[0].Jobs[0]
		if r.Dir[DirWrite].IOs != 64 || r.Dir[DirRead].IOs != 64 || r.Dir[DirWrite].slat.n != 64 {
			t.Fatalf("direct=%s: %d writes, %d verify reads, %d slat samples", direct, r.Dir[DirWrite].IOs, r.Dir[DirRead].IOs, r.Dir[DirWrite].slat.n)
		}
		if direct == "1" && r.DepthHist[3] == 0 {
			t.Errorf("direct=1: no I/O submitted at depth 8: %v", r.DepthHist)
		}
	}
	file := filepath.Join(t.TempDir(), "trim")
	if _, err := runJobs(t, opts("ioengine=libaio", "filename="+file, "size=64k", "bs=4k", "rw=trim", "iodepth=4")...); err != nil {
		t.Fatalf("trim: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(file, &st); err != nil || st.Blocks != 0 {
		t.Errorf("trim: %d blocks still allocated (%v)", st.Blocks, err)
	}
}
