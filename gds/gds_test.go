package gds

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/flashpath/flashpath/gds/gdstest"
	"github.com/flashpath/flashpath/gds/internal/cuda"
	"github.com/flashpath/flashpath/gds/safetensors"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	gdstest.Main(m)
}

func openDev(t *testing.T) *Device {
	t.Helper()
	if err := cuda.Init(); errors.Is(err, ErrNotSupported) {
		t.Skip(err)
	}
	base := cuda.FakeLive()
	d, err := OpenDevice(0)
	if errors.Is(err, ErrNotSupported) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := d.Close(); err != nil {
			t.Error(err)
		}
		if n := live.Load(); n != 0 {
			t.Errorf("%d GPU resources leaked", n)
		}
		if n := cuda.FakeLive(); n != base {
			t.Errorf("fake driver: %d live objects, want %d", n, base)
		}
	})
	return d
}

func randBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// memIO is a file in memory with injected faults.
type memIO struct {
	data     []byte
	maxRead  int   // short reads: at most this many bytes per call (0: no limit)
	eioAt    int64 // reads covering this offset fail with EIO (-1: none)
	mu       sync.Mutex
	written  []byte
	readCall int
}

func (m *memIO) ReadAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	m.readCall++
	m.mu.Unlock()
	if m.eioAt >= 0 && off <= m.eioAt && m.eioAt < off+int64(len(p)) {
		return 0, syscall.EIO
	}
	if off >= int64(len(m.data)) {
		return 0, io.EOF
	}
	n := copy(p, m.data[off:])
	if m.maxRead > 0 && n > m.maxRead {
		n = m.maxRead
	}
	return n, nil
}

func (m *memIO) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if need := off + int64(len(p)); need > int64(len(m.written)) {
		m.written = append(m.written, make([]byte, need-int64(len(m.written)))...)
	}
	copy(m.written[off:], p)
	return len(p), nil
}

func readBack(t *testing.T, b *Buffer, off, n int64) []byte {
	t.Helper()
	out := make([]byte, n)
	if err := b.CopyToHost(out, off); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBounceReads runs the pipeline over a file that is not a multiple of
// 4 KiB with unaligned requests, buffered and O_DIRECT-aligned, with and
// without short reads. The fake driver defers copies until their event is
// synchronized, so reusing a staging buffer early corrupts the result.
func TestBounceReads(t *testing.T) {
	d := openDev(t)
	data := randBytes(5*4096*3+1234, 1)
	for _, direct := range []bool{false, true} {
		for _, maxRead := range []int{0, 1000} {
			for _, depth := range []int{1, 2, 4} {
				t.Run(fmt.Sprintf("direct=%v/short=%d/depth=%d", direct, maxRead, depth), func(t *testing.T) {
					src := &memIO{data: data, maxRead: maxRead, eioAt: -1}
					if direct && maxRead > 0 {
						src.maxRead = 4096 // O_DIRECT short reads come in whole blocks
					}
					b, err := newBounce(d, src, direct, ReaderAuto, 3, depth, 3*4096)
					if err != nil {
						t.Fatal(err)
					}
					defer b.Close()
					buf, err := d.Alloc(int64(len(data)))
					if err != nil {
						t.Fatal(err)
					}
					defer buf.Close()
					reqs := []Request{
						{Off: 0, Len: 100, Dev: buf.Ptr()},
						{Off: 100, Len: 4096*5 - 7, Dev: buf.Ptr() + 100},
						{Off: 4096*5 + 93, Len: 0, Dev: buf.Ptr()},
						{Off: 4096*5 - 7 + 100, Len: int64(len(data)) - (4096*5 - 7 + 100), Dev: buf.Ptr() + 4096*5 - 7 + 100},
					}
					if err := Run(context.Background(), b, reqs); err != nil {
						t.Fatal(err)
					}
					if got := readBack(t, buf, 0, int64(len(data))); !bytes.Equal(got, data) {
						t.Fatal("GPU memory differs from the file")
					}
				})
			}
		}
	}
}

func TestBounceErrors(t *testing.T) {
	d := openDev(t)
	data := randBytes(10*4096+17, 2)
	buf, err := d.Alloc(int64(len(data)) + 8192)
	if err != nil {
		t.Fatal(err)
	}
	defer buf.Close()
	run := func(src *memIO, direct bool, reqs []Request) error {
		b, err := newBounce(d, src, direct, ReaderAuto, 2, 2, 8192)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		return Run(context.Background(), b, reqs)
	}
	// EIO in the middle fails the request that covers it, not the others.
	src := &memIO{data: data, eioAt: 5*4096 + 3}
	b, _ := newBounce(d, src, true, ReaderAuto, 2, 2, 8192)
	b.Submit([]Request{{Off: 0, Len: 4096, Dev: buf.Ptr(), Tag: 1}, {Off: 4096, Len: int64(len(data)) - 4096, Dev: buf.Ptr() + 4096, Tag: 2}})
	comps := make([]Completion, 2)
	n, err := b.Reap(context.Background(), 2, comps)
	b.Close()
	if err != nil || n != 2 {
		t.Fatalf("Reap = %d, %v", n, err)
	}
	for _, c := range comps {
		switch {
		case c.Tag == 1 && c.Err != nil:
			t.Errorf("request 1 failed: %v", c.Err)
		case c.Tag == 2 && !errors.Is(c.Err, syscall.EIO):
			t.Errorf("request 2: err = %v, want EIO", c.Err)
		}
	}
	// Reading past the end is an unexpected EOF, buffered and direct.
	for _, direct := range []bool{false, true} {
		err := run(&memIO{data: data, eioAt: -1}, direct, []Request{{Off: 4096, Len: int64(len(data)), Dev: buf.Ptr()}})
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("direct=%v: read past EOF: err = %v", direct, err)
		}
	}
	// A failing host-to-device copy surfaces.
	os.Setenv("FAKECUDA_FAIL_H2D_AFTER", "1")
	err = run(&memIO{data: data, eioAt: -1}, false, []Request{{Off: 0, Len: int64(len(data)), Dev: buf.Ptr()}})
	os.Unsetenv("FAKECUDA_FAIL_H2D_AFTER")
	var cerr *cuda.Error
	if !errors.As(err, &cerr) {
		t.Errorf("failed copy: err = %v, want a CUDA error", err)
	}
}

func TestQueueFullAndClosed(t *testing.T) {
	d := openDev(t)
	b, err := newBounce(d, &memIO{data: make([]byte, 100), eioAt: -1}, false, ReaderAuto, 1, 1, 4096)
	if err != nil {
		t.Fatal(err)
	}
	buf, _ := d.Alloc(100)
	defer buf.Close()
	reqs := make([]Request, b.QueueDepth()+1)
	for i := range reqs {
		reqs[i] = Request{Len: 10, Dev: buf.Ptr()}
	}
	if err := b.Submit(reqs); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("Submit beyond depth: %v", err)
	}
	b.Close()
	if err := b.Submit(reqs[:1]); !errors.Is(err, ErrClosed) {
		t.Fatalf("Submit after Close: %v", err)
	}
}

func TestBounceWrites(t *testing.T) {
	d := openDev(t)
	data := randBytes(3*8192+5, 3)
	buf, _ := d.Alloc(int64(len(data)))
	defer buf.Close()
	buf.CopyFromHost(data, 0)
	dst := &memIO{eioAt: -1}
	b, err := newBounce(d, dst, false, ReaderAuto, 2, 2, 8192)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	err = Run(context.Background(), b, []Request{{Op: OpWrite, Off: 10, Len: int64(len(data)), Dev: buf.Ptr()}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(dst.written[10:], data) {
		t.Fatal("written file differs from GPU memory")
	}
}

// writeCheckpoint writes a safetensors file whose data does not start or
// end on a 4 KiB boundary.
func writeCheckpoint(t *testing.T, dir string) (string, *safetensors.Header, []byte) {
	h := &safetensors.Header{Metadata: map[string]string{"format": "pt"}, Tensors: []safetensors.Tensor{
		{Name: "a", DType: "BF16", Shape: []int64{77, 33}},
		{Name: "b", DType: "F32", Shape: []int64{1000}},
		{Name: "c", DType: "U8", Shape: []int64{12345}},
		{Name: "empty", DType: "F16", Shape: []int64{0}},
	}}
	size, _ := safetensors.Layout(h.Tensors, 1)
	hdr, err := h.Encode(8)
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(int(size), 4)
	path := filepath.Join(dir, "model.safetensors")
	if err := os.WriteFile(path, append(hdr, data...), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, h, data
}

func TestLoadSafetensors(t *testing.T) {
	d := openDev(t)
	path, h, data := writeCheckpoint(t, t.TempDir())
	for _, o := range []Options{
		{Path: PathAuto},
		{Path: PathBounce, Direct: DirectOff, Chunk: 4096, Workers: 3},
		{Path: PathBounce, Direct: DirectAuto, Chunk: 8192, Workers: 2, CachedThreshold: 2},
		{Path: PathBounce, Reader: ReaderMmap, Chunk: 4096, Workers: 3},
		{Path: PathCuFile, Chunk: 4096},
	} {
		t.Run(fmt.Sprintf("%s-%s-%s", o.Path, o.Direct, o.Reader), func(t *testing.T) {
			c, err := d.LoadSafetensors(context.Background(), path, o)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if o.Path == PathAuto && (c.Path != PathBounce || c.Direct) {
				t.Errorf("a file just written is in the page cache: got path %s direct=%v (%s)", c.Path, c.Direct, c.Reason)
			}
			if c.Bytes != int64(len(data)) || len(c.Tensors) != len(h.Tensors) {
				t.Fatalf("loaded %d bytes, %d tensors", c.Bytes, len(c.Tensors))
			}
			if got := readBack(t, c.Buffer, 0, c.Bytes); !bytes.Equal(got, data) {
				t.Fatal("GPU memory differs from the file")
			}
			checks, err := c.Verify(2)
			if err != nil || len(checks) != 4 {
				t.Fatalf("Verify = %v, %v", checks, err)
			}
			// Corrupt one tensor on the GPU: Verify must notice.
			c.Buffer.CopyFromHost([]byte{^data[0]}, 0)
			if _, err := c.Verify(1); err == nil || !strings.Contains(err.Error(), `tensor "`) {
				t.Fatalf("Verify of a corrupted tensor: %v, want an error naming it", err)
			}
		})
	}
}

func TestPathSelection(t *testing.T) {
	d := openDev(t)
	path, _, _ := writeCheckpoint(t, t.TempDir())
	uncached := Options{CachedThreshold: 2} // treat the file as not cached
	for _, tc := range []struct {
		nvfs bool
		o    Options
		want Path
	}{
		{false, Options{}, PathBounce},
		{true, Options{}, PathBounce}, // in page cache: bounce even with GDS
		{false, uncached, PathBounce}, // compat mode: bounce
		{true, uncached, PathCuFile},  // true GDS, not cached: cufile
		{false, Options{Path: PathCuFile}, PathCuFile},
	} {
		if tc.nvfs {
			os.Setenv("FAKECUFILE_NVFS", "1")
		}
		resetProbe()
		f, err := d.Open(path, tc.o)
		os.Unsetenv("FAKECUFILE_NVFS")
		resetProbe()
		if err != nil {
			t.Fatal(err)
		}
		if f.Path() != tc.want {
			t.Errorf("nvfs=%v %+v: path %s (%s), want %s", tc.nvfs, tc.o, f.Path(), f.Reason(), tc.want)
		}
		if f.Reason() == "" {
			t.Errorf("no reason given for path %s", f.Path())
		}
		f.Close()
	}
	if p, err := ParsePath("rdma"); p != PathRDMA || err != nil {
		t.Errorf("ParsePath(rdma) = %v, %v", p, err)
	}
	if _, err := ParsePath("nope"); err == nil {
		t.Error("ParsePath(nope) succeeded")
	}
}

func TestCuFileErrors(t *testing.T) {
	d := openDev(t)
	path, _, _ := writeCheckpoint(t, t.TempDir())
	os.Setenv("FAKECUFILE_EIO_AT", "5000") // inside tensor "b"
	defer os.Unsetenv("FAKECUFILE_EIO_AT")
	c, err := d.LoadSafetensors(context.Background(), path, Options{Path: PathCuFile})
	if c != nil {
		c.Close()
	}
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("cuFile EIO: err = %v", err)
	}
}

func TestSaveSafetensors(t *testing.T) {
	d := openDev(t)
	a, b := randBytes(4*300, 5), randBytes(2*7*11, 6)
	ga, _ := d.Alloc(int64(len(a)))
	gb, _ := d.Alloc(int64(len(b)))
	defer ga.Close()
	defer gb.Close()
	ga.CopyFromHost(a, 0)
	gb.CopyFromHost(b, 0)
	for _, p := range []Path{PathBounce, PathCuFile} {
		name := filepath.Join(t.TempDir(), "out.safetensors")
		st, err := d.SaveSafetensors(context.Background(), name, []SaveTensor{
			{Name: "a", DType: "F32", Shape: []int64{300}, Ptr: ga.Ptr()},
			{Name: "b", DType: "BF16", Shape: []int64{7, 11}, Ptr: gb.Ptr()},
		}, map[string]string{"k": "v"}, Options{Path: p, Chunk: 512})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := os.ReadFile(name)
		h, err := safetensors.Parse(raw, int64(len(raw)))
		if err != nil {
			t.Fatal(err)
		}
		ta, tb := h.Tensor("a"), h.Tensor("b")
		if st.Path != p || h.DataOffset%4096 != 0 || ta == nil || tb == nil ||
			!bytes.Equal(raw[h.DataOffset+ta.Begin:h.DataOffset+ta.End], a) ||
			!bytes.Equal(raw[h.DataOffset+tb.Begin:h.DataOffset+tb.End], b) {
			t.Fatalf("%s: saved file does not hold the tensors", p)
		}
	}
}

func TestNoDriver(t *testing.T) {
	// The fake's cuInit is fine here; a missing library must read as
	// ErrNotSupported, which the binding's own tests check. Here: an
	// unknown device.
	if _, err := OpenDevice(7); err == nil {
		t.Fatal("OpenDevice(7) succeeded on a one-GPU fake")
	}
}

// TestFakeDevices: with FAKECUDA_DEVICES=2 the fake has two GPUs, each
// memory allocated on the device whose context the allocating thread had
// current (gdstest.AllocDevice), and no third.
func TestFakeDevices(t *testing.T) {
	gdstest.SkipWithoutBinding(t)
	openDev(t) // skips without the fake; checks for leaks
	t.Setenv(gdstest.DevicesEnv, "2")
	if n, err := DeviceCount(); n != 2 || err != nil {
		t.Fatalf("DeviceCount = %d, %v; want 2", n, err)
	}
	for i := range 2 {
		d, err := OpenDevice(i)
		if err != nil {
			t.Fatal(err)
		}
		b, err := d.Alloc(1 << 16)
		if err != nil {
			t.Fatal(err)
		}
		if got := gdstest.AllocDevice(uint64(b.Ptr()) + 100); got != i {
			t.Errorf("GPU %d (%s): its buffer allocated on %d", i, d.Info.PCIBusID, got)
		}
		b.Close()
		if got := gdstest.AllocDevice(uint64(b.Ptr())); got != -2 {
			t.Errorf("freed buffer: AllocDevice = %d, want -2", got)
		}
		d.Close()
	}
	if _, err := OpenDevice(2); err == nil {
		t.Fatal("OpenDevice(2) succeeded on a two-GPU fake")
	}
}

// TestDMABufExport: a page-aligned range exports; one that is not fails,
// as the driver refuses it (cuMemAlloc aligns to 256 bytes, not a page:
// LoadShards exports a page-aligned range of a larger allocation).
func TestDMABufExport(t *testing.T) {
	d := openDev(t)
	b, err := d.Alloc(1<<16 + 4096)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	fd, err := d.Wrap((b.Ptr()+4095)&^4095, 1<<16).ExportDMABuf()
	if err != nil {
		t.Fatal(err)
	}
	syscall.Close(fd)
	if fd, err := d.Wrap((b.Ptr()+4095)&^4095+256, 1<<12).ExportDMABuf(); err == nil {
		syscall.Close(fd)
		t.Error("a dma-buf export of a range that is not page aligned succeeded")
	}
}

// TestCuFileCompatOff mirrors a machine without nvidia-fs whose cufile.json
// sets allow_compat_mode false: auto must not pick cuFile, and an explicit
// cufile load must fail with the error's name and a hint that says what to
// change.
func TestCuFileCompatOff(t *testing.T) {
	d := openDev(t)
	path, _, _ := writeCheckpoint(t, t.TempDir())
	t.Setenv("FAKECUFILE_NO_COMPAT", "1")
	resetProbe()
	defer resetProbe()
	st := ProbeCuFile()
	if !st.Available || st.Usable || st.CompatAllowed || st.Hint == "" {
		t.Fatalf("probe: %+v", st)
	}
	f, err := d.Open(path, Options{CachedThreshold: 2})
	if err != nil {
		t.Fatal(err)
	}
	if f.Path() != PathBounce || !strings.Contains(f.Reason(), "compat mode is off") {
		t.Errorf("auto: path %s (%s)", f.Path(), f.Reason())
	}
	f.Close()
	_, err = d.Open(path, Options{Path: PathCuFile})
	if err == nil {
		t.Fatal("cufile with compat mode off and no nvidia-fs: opened")
	}
	for _, want := range []string{"CU_FILE_HANDLE_NOT_REGISTERED", `"allow_compat_mode": true`, "--gpu-path bounce"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if !errors.Is(err, ErrNotSupported) {
		t.Errorf("error %v does not wrap ErrNotSupported", err)
	}
}

func TestConfigAllowCompat(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ body, want string }{
		{`{ // comment "x"
  "logging": {"dir": "/var/log//x"}, /* block
  */ "properties": { "allow_compat_mode": false, // trailing
  "max_direct_io_size_kb": 16384 } }`, "false"},
		{`{"properties": {"allow_compat_mode": true}}`, "true"},
		{`{"properties": {}}`, "unset"},
	} {
		name := filepath.Join(dir, "cufile.json")
		os.WriteFile(name, []byte(tc.body), 0o644)
		if got := configAllowCompat(name); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.body, got, tc.want)
		}
	}
	if got := configAllowCompat(filepath.Join(dir, "none.json")); !strings.HasPrefix(got, "unset") {
		t.Errorf("missing file: %q", got)
	}
}

// TestStagingReused: a Device's second load reuses the pinned staging
// buffers of its first (pinning memory is the slow part of setup).
func TestStagingReused(t *testing.T) {
	d := openDev(t)
	path, _, data := writeCheckpoint(t, t.TempDir())
	o := Options{Path: PathBounce, Direct: DirectOff, Workers: 3, Depth: 2, Chunk: 8192}
	c, err := d.LoadSafetensors(context.Background(), path, o)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if got, want := d.StagingBytes(), int64(3*2*8192); got != want {
		t.Fatalf("staging pool after one load: %d bytes, want %d", got, want)
	}
	n0 := live.Load()
	c, err = d.LoadSafetensors(context.Background(), path, o)
	if err != nil {
		t.Fatal(err)
	}
	if n := live.Load(); n != n0+1 {
		t.Errorf("second load: %d live GPU resources, want %d (its buffer only)", n, n0+1)
	}
	if got := readBack(t, c.Buffer, 0, c.Bytes); !bytes.Equal(got, data) {
		t.Fatal("GPU memory differs from the file")
	}
	if c.SetupHeader <= 0 || c.SetupAlloc <= 0 || c.SetupOpen <= 0 || c.SetupHeader+c.SetupAlloc+c.SetupOpen != c.Setup {
		t.Errorf("setup parts %v + %v + %v != %v", c.SetupHeader, c.SetupAlloc, c.SetupOpen, c.Setup)
	}
	c.Close()
}

// TestCuFileBatch covers the cufile path's batch mode: chosen with true GDS,
// not in compat mode; forced, it moves the bytes (also when entries come
// back short) and reports EIO; refused by libcufile, auto falls back to
// threads and a forced batch says what to do.
func TestCuFileBatch(t *testing.T) {
	d := openDev(t)
	path, _, data := writeCheckpoint(t, t.TempDir())
	uncached := Options{Path: PathAuto, CachedThreshold: 2, Chunk: 4096}
	load := func(env []string, o Options) (*Checkpoint, error) {
		for _, e := range env {
			k, v, _ := strings.Cut(e, "=")
			os.Setenv(k, v)
		}
		resetProbe()
		defer func() {
			for _, e := range env {
				k, _, _ := strings.Cut(e, "=")
				os.Unsetenv(k)
			}
			resetProbe()
		}()
		return d.LoadSafetensors(context.Background(), path, o)
	}
	for _, tc := range []struct {
		name string
		env  []string
		o    Options
		how  string // in the reason
	}{
		{"auto-gds", []string{"FAKECUFILE_NVFS=1"}, uncached, "cuFile true GDS, batch API, 4 threads x 32 entries"},
		{"auto-compat", nil, Options{Path: PathCuFile, Chunk: 4096}, "cuFile compat mode, cuFileRead/cuFileWrite from"},
		{"forced", nil, Options{Path: PathCuFile, CuFileIO: CuFileIOBatch, Chunk: 4096}, "batch API, 4 threads"},
		{"short", []string{"FAKECUFILE_BATCH_SHORT=1"}, Options{Path: PathCuFile, CuFileIO: CuFileIOBatch, Chunk: 4096}, "batch API, 4 threads"},
		{"sync", []string{"FAKECUFILE_NVFS=1"}, Options{Path: PathCuFile, CuFileIO: CuFileIOSync, Chunk: 4096}, "cuFileRead/cuFileWrite from"},
		{"buffered", nil, Options{Path: PathCuFile, Direct: DirectOff, Chunk: 4096}, "buffered fd (--direct off)"},
		{"refused", []string{"FAKECUFILE_NVFS=1", "FAKECUFILE_BATCH_NOCOMPAT=1"}, uncached, "batch set-up failed: cuFileBatchIOSetUp: CU_FILE_BATCH_NOCOMPAT_ERROR"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := load(tc.env, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if c.Path != PathCuFile || !strings.Contains(c.Reason, tc.how) || c.Direct == (tc.o.Direct == DirectOff) {
				t.Fatalf("path %s, direct %v, reason %q: want cufile and %q", c.Path, c.Direct, c.Reason, tc.how)
			}
			if got := readBack(t, c.Buffer, 0, c.Bytes); !bytes.Equal(got, data) {
				t.Fatal("GPU memory differs from the file")
			}
		})
	}
	forced := Options{Path: PathCuFile, CuFileIO: CuFileIOBatch, Chunk: 4096}
	_, err := load([]string{"FAKECUFILE_BATCH_NOCOMPAT=1"}, forced)
	if !errors.Is(err, ErrNotSupported) || !strings.Contains(err.Error(), "CU_FILE_BATCH_NOCOMPAT_ERROR") ||
		!strings.Contains(err.Error(), "--cufile-io sync") {
		t.Errorf("batch refused by libcufile: err = %v", err)
	}
	_, err = load([]string{"FAKECUFILE_EIO_AT=5000"}, forced)
	if !errors.Is(err, syscall.EIO) {
		t.Errorf("EIO in a batch: err = %v", err)
	}
	if _, err := ParseCuFileIO("nope"); err == nil {
		t.Error("ParseCuFileIO(nope) succeeded")
	}
}

// TestCuFileUdevHint: where cuFile refuses a file whose block device udev
// does not know (containers, small VMs), the error says so and what to do.
func TestCuFileUdevHint(t *testing.T) {
	d := openDev(t)
	path, _, _ := writeCheckpoint(t, t.TempDir())
	db := t.TempDir()
	old := udevDataDir
	udevDataDir = db
	defer func() { udevDataDir = old }()
	t.Setenv("FAKECUFILE_REFUSE", "5027")
	_, err := d.Open(path, Options{Path: PathCuFile})
	if err == nil || !strings.Contains(err.Error(), "has no ID_FS_USAGE") || !strings.Contains(err.Error(), "/run/udev") {
		t.Fatalf("no udev data: err = %v", err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	entry := filepath.Join(db, fmt.Sprintf("b%d:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev))))
	os.WriteFile(entry, []byte("I:123\nE:ID_FS_TYPE=ext4\nE:ID_FS_USAGE=filesystem\n"), 0o644)
	_, err = d.Open(path, Options{Path: PathCuFile})
	if err == nil || strings.Contains(err.Error(), "ID_FS_USAGE") || !strings.Contains(err.Error(), "--gpu-path bounce") {
		t.Fatalf("udev knows the device: err = %v", err)
	}
}
