package gpu

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flashpath/flashpath/bench"
	"github.com/flashpath/flashpath/gds"
	"github.com/flashpath/flashpath/gds/gdstest"
	"github.com/flashpath/flashpath/internal/testutil"
)

// noDriverEnv makes TestMain leave the fakes out: libcuda does not load.
const noDriverEnv = "GPUENGINE_TEST_NO_DRIVER"

func TestMain(m *testing.M) {
	if os.Getenv(noDriverEnv) != "" {
		os.Setenv("FLASHPATH_LIBCUDA", "/nonexistent/libcuda.so.1")
		os.Exit(m.Run())
	}
	gdstest.Main(m)
}

// run runs one job and returns its result, or the error that stopped it.
func run(t *testing.T, kv ...string) (*bench.JobResult, error) {
	t.Helper()
	var o []bench.Option
	for _, s := range kv {
		k, v, _ := strings.Cut(s, "=")
		o = append(o, bench.Option{Name: k, Value: v})
	}
	jobs, err := bench.BuildJobs(nil, []bench.Section{{Name: "gpu", Options: o}}, nil)
	if err != nil {
		return nil, err
	}
	rep, err := bench.Run(context.Background(), bench.Config{Jobs: jobs})
	if err != nil {
		return nil, err
	}
	r := rep.Groups[0].Jobs[0]
	return r, r.Err
}

func mustRun(t *testing.T, kv ...string) *bench.JobResult {
	t.Helper()
	r, err := run(t, kv...)
	if errors.Is(err, bench.ErrNotSupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func directOK(t *testing.T, dir string) {
	t.Helper()
	testutil.SkipIfNotSupported(t, testutil.DirectIO(dir))
}

// TestWriteVerifyRandRead writes a file through each engine and path with
// per-block checksums, which bench reads back through the engine and
// checks (copied from GPU memory to the host), then reads it randomly with
// many requests in flight, buffered and O_DIRECT.
func TestWriteVerifyRandRead(t *testing.T) {
	for _, eng := range [][]string{
		{"ioengine=cufile"},
		{"ioengine=gpu"},
		{"ioengine=gpu", "gpu_path=bounce"},
		{"ioengine=gpu", "gpu_path=bounce", "gpu_reader=pread"},
		{"ioengine=gpu", "gpu_path=bounce", "gpu_reader=mmap"},
		{"ioengine=gpu", "gpu_path=cufile", "gpu=0"},
	} {
		for _, direct := range []string{"0", "1"} {
			if direct == "1" && slices.Contains(eng, "gpu_reader=mmap") {
				continue // the mmap reader reads the page cache
			}
			t.Run(strings.Join(eng, ",")+",direct="+direct, func(t *testing.T) {
				dir := t.TempDir()
				if direct == "1" {
					directOK(t, dir)
				}
				base := append(eng, "filename="+filepath.Join(dir, "ckpt"), "size=1m", "direct="+direct, "gpu_threads=3")
				r := mustRun(t, append(base, "rw=write", "bs=16k", "iodepth=8", "verify=crc32c")...)
				if w := r.Dir[bench.DirWrite]; w.IOs != 64 || w.Bytes != 1<<20 {
					t.Fatalf("writes: %d I/Os, %d bytes; want 64, 1 MiB", w.IOs, w.Bytes)
				}
				if rd := r.Dir[bench.DirRead]; rd.IOs != 64 {
					t.Fatalf("verify read %d blocks, want 64", rd.IOs)
				}
				r = mustRun(t, append(base, "rw=randread", "bs=64k", "iodepth=16", "io_size=4m", "norandommap")...)
				if rd := r.Dir[bench.DirRead]; rd.IOs != 64 || rd.Bytes != 4<<20 {
					t.Fatalf("reads: %d I/Os, %d bytes; want 64, 4 MiB", rd.IOs, rd.Bytes)
				}
				r = mustRun(t, append(base, "rw=randrw", "bs=32k", "iodepth=4", "io_size=1m")...)
				if n := r.Dir[bench.DirRead].IOs + r.Dir[bench.DirWrite].IOs; n != 32 {
					t.Fatalf("randrw: %d I/Os, want 32", n)
				}
			})
		}
	}
}

// TestEngineSlots drives the engine directly: data put in one slot's GPU
// buffer lands in the file at the I/O's offset, and a read into another
// slot brings it back, so slots and offsets are not mixed up.
func TestEngineSlots(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f")
	jobs, err := bench.BuildJobs(nil, []bench.Section{{Name: "x", Options: []bench.Option{
		{Name: "ioengine", Value: "gpu"}, {Name: "rw", Value: "randrw"}, {Name: "size", Value: "64k"}, {Name: "filename", Value: name}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open(&bench.EngineConfig{Job: jobs[0], Filename: name, IODepth: 4}, gds.PathAuto)
	if errors.Is(err, bench.ErrNotSupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	}()
	if e.Size() != 64<<10 {
		t.Fatalf("Size = %d, want the laid out 64 KiB", e.Size())
	}
	bufs, err := e.Buffers(4, 3000)
	if err != nil {
		t.Fatal(err)
	}
	if bufs[1].Bytes != nil || bufs[1].Addr == 0 || bufs[1].Addr == bufs[2].Addr {
		t.Fatalf("buffers: %+v", bufs[:2])
	}
	want := []byte(strings.Repeat("flashpath ", 300))
	if err := e.CopyToBuffer(&bufs[2], want); err != nil {
		t.Fatal(err)
	}
	do := func(io *bench.IO) {
		t.Helper()
		if err := e.Queue(io); err != nil {
			t.Fatal(err)
		}
		if err := e.Commit(); err != nil {
			t.Fatal(err)
		}
		ev, err := e.GetEvents(1, make([]*bench.IO, 0, 4))
		if err != nil || len(ev) != 1 || ev[0] != io || io.Err != nil || io.Res != io.Len {
			t.Fatalf("GetEvents = %v, %v; io %+v", ev, err, io)
		}
	}
	do(&bench.IO{Op: bench.OpWrite, Offset: 5000, Len: 3000, Buf: &bufs[2], Index: 2})
	file, _ := os.ReadFile(name)
	if string(file[5000:8000]) != string(want) {
		t.Fatal("the file does not hold what slot 2 held at offset 5000")
	}
	do(&bench.IO{Op: bench.OpRead, Offset: 5000, Len: 3000, Buf: &bufs[0], Index: 0})
	got := make([]byte, 3000)
	if err := e.CopyFromBuffer(got, &bufs[0]); err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatal("slot 0 does not hold what was read at offset 5000")
	}
}

// TestOddSizes: buffered jobs take any block size; direct=1 refuses sizes
// that are not whole 4 KiB blocks, saying so.
func TestOddSizes(t *testing.T) {
	dir := t.TempDir()
	name := filepath.Join(dir, "odd")
	r := mustRun(t, "ioengine=gpu", "filename="+name, "size=100000", "bs=1000", "iodepth=8", "rw=write", "verify=crc32c", "gpu_threads=2")
	if w := r.Dir[bench.DirWrite]; w.IOs != 100 {
		t.Fatalf("bs=1000: %d writes, want 100", w.IOs)
	}
	r = mustRun(t, "ioengine=cufile", "filename="+name, "size=100000", "bs=1000", "iodepth=8", "rw=randread")
	if rd := r.Dir[bench.DirRead]; rd.IOs != 100 {
		t.Fatalf("bs=1000 randread: %d reads, want 100", rd.IOs)
	}
	// The cuFile batch API, verified against what the gpu engine wrote.
	r = mustRun(t, "ioengine=cufile", "cufile_io=batch", "filename="+name, "size=100000", "bs=1000", "iodepth=8", "rw=randread", "verify=crc32c")
	if rd := r.Dir[bench.DirRead]; rd.IOs != 100 {
		t.Fatalf("cufile_io=batch randread: %d reads, want 100", rd.IOs)
	}
	for _, tc := range [][]string{
		{"bs=6144", "offset=0"},
		{"bs=8192", "offset=512"},
	} {
		_, err := run(t, append([]string{"ioengine=gpu", "filename=" + name, "size=64k", "rw=read", "direct=1"}, tc...)...)
		if err == nil || !strings.Contains(err.Error(), "multiple of 4096") {
			t.Errorf("direct=1 %v: err = %v, want a refusal naming 4096", tc, err)
		}
	}
}

func TestOptions(t *testing.T) {
	name := filepath.Join(t.TempDir(), "f")
	for _, tc := range []struct{ opt, want string }{
		{"gpu=x", "option gpu"},
		{"gpu=9", "GPU 9"},
		{"gpu_path=warp", "gpu path"},
		{"gpu_reader=aio", "gpu_reader"},
		{"gpu_threads=-1", "gpu_threads"},
		{"cufile_io=turbo", "cufile_io"},
	} {
		_, err := run(t, "ioengine=gpu", "filename="+name, "size=64k", "rw=read", tc.opt)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.opt, err, tc.want)
		}
	}
	if _, err := run(t, "ioengine=gpu", "filename="+name, "size=64k", "rw=trim"); !errors.Is(err, bench.ErrNotSupported) {
		t.Errorf("rw=trim: err = %v, want ErrNotSupported", err)
	}
	if _, err := run(t, "ioengine=gpu", "filename="+name, "size=64k", "rw=write", "sync=1"); !errors.Is(err, bench.ErrNotSupported) {
		t.Errorf("sync=1: err = %v, want ErrNotSupported", err)
	}
	// gpu_path=rdma takes NVMe/RDMA namespaces, not files: not supported here, not a failure.
	if _, err := run(t, "ioengine=gpu", "filename="+name, "size=64k", "rw=read", "gpu_path=rdma"); !errors.Is(err, bench.ErrNotSupported) {
		t.Errorf("gpu_path=rdma: err = %v, want ErrNotSupported", err)
	}
	// gpu_path belongs to engine gpu only.
	if _, err := run(t, "ioengine=cufile", "filename="+name, "size=64k", "rw=read", "gpu_path=bounce"); !errors.Is(err, bench.ErrUnknownOption) {
		t.Errorf("cufile with gpu_path: err = %v, want ErrUnknownOption", err)
	}
}

// TestNoCuFile: the cufile engine where cuFile refuses files (no nvidia-fs,
// compat mode off) is not supported, with a hint; engine gpu falls back.
func TestNoCuFile(t *testing.T) {
	gdstest.SkipWithoutBinding(t)
	t.Setenv("FAKECUFILE_NO_COMPAT", "1")
	name := filepath.Join(t.TempDir(), "f")
	_, err := run(t, "ioengine=cufile", "filename="+name, "size=64k", "rw=read")
	if !errors.Is(err, bench.ErrNotSupported) || !errors.Is(err, gds.ErrNotSupported) || !strings.Contains(err.Error(), "--gpu-path bounce") {
		t.Errorf("cufile without GDS: err = %v", err)
	}
	mustRun(t, "ioengine=gpu", "filename="+name, "size=64k", "rw=read", "direct=1")
}

// TestNoDriver runs in a child process whose libcuda does not load: the
// engines report ErrNotSupported and say what to install.
func TestNoDriver(t *testing.T) {
	if os.Getenv(noDriverEnv) == "" {
		gdstest.SkipWithoutBinding(t)
		cmd := exec.Command(os.Args[0], "-test.run=^TestNoDriver$", "-test.v")
		cmd.Env = append(os.Environ(), noDriverEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestNoDriver") {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	name := filepath.Join(t.TempDir(), "f")
	for _, eng := range []string{"gpu", "cufile"} {
		_, err := run(t, "ioengine="+eng, "filename="+name, "size=64k", "rw=read")
		if !errors.Is(err, bench.ErrNotSupported) || !strings.Contains(err.Error(), "install the NVIDIA driver") {
			t.Errorf("%s without a driver: err = %v", eng, err)
		}
	}
}

// TestNoAllocPerIO: Queue, Commit and GetEvents allocate nothing, nor do
// the transfer's threads per request, with every bounce reader.
func TestNoAllocPerIO(t *testing.T) {
	for _, reader := range []string{"io_uring", "pread", "mmap"} {
		t.Run(reader, func(t *testing.T) { testNoAllocPerIO(t, reader) })
	}
}

func testNoAllocPerIO(t *testing.T, reader string) {
	dir := t.TempDir()
	direct := "1"
	if reader == "mmap" {
		direct = "0" // it reads the page cache
	} else {
		directOK(t, dir)
	}
	name := filepath.Join(dir, "f")
	jobs, err := bench.BuildJobs(nil, []bench.Section{{Name: "x", Options: []bench.Option{
		{Name: "ioengine", Value: "gpu"}, {Name: "rw", Value: "read"}, {Name: "size", Value: "64k"}, {Name: "filename", Value: name},
		{Name: "direct", Value: direct}}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := Open(&bench.EngineConfig{Job: jobs[0], Filename: name, IODepth: 4, Options: map[string]string{"gpu_threads": "2", "gpu_reader": reader}}, gds.PathBounce)
	if errors.Is(err, bench.ErrNotSupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	bufs, err := e.Buffers(4, 16<<10)
	if err != nil {
		t.Fatal(err)
	}
	ios := make([]bench.IO, 4)
	events := make([]*bench.IO, 0, 4)
	allocs := testing.AllocsPerRun(50, func() {
		for i := range ios {
			ios[i] = bench.IO{Op: bench.OpRead, Offset: int64(i) * 16 << 10, Len: 16 << 10, Buf: &bufs[i], Index: i}
			e.Queue(&ios[i])
		}
		e.Commit()
		for got := 0; got < 4; {
			events, _ = e.GetEvents(1, events[:0])
			got += len(events)
		}
	})
	if allocs != 0 {
		t.Errorf("%.1f allocations per batch of 4 I/Os, want 0", allocs)
	}
}
