// Package gpu is the bench engines "cufile" and "gpu": fio jobs
// whose I/O buffers are GPU memory, moved by package gds, like NVIDIA's
// gdsio but with fio's options (rw, bs, iodepth, numjobs, size, offset,
// verify, runtime, ...):
//
//	flashpath bench --ioengine=gpu --gpu=0 --filename=/data/ckpt --rw=read --bs=16m --iodepth=8 --size=8g --direct=1
//
// cufile forces GPUDirect Storage through libcufile (true GDS or cuFile's
// compat mode); gpu picks as gds.Device.Open does (cuFile when it runs true
// GDS, else flashpath's bounce pipeline), or as gpu_path says.
//
// Engine options:
//
//	gpu=N            GPU ordinal (default 0); a list N:M:... takes turns
//	                 over the clones (numjobs): clone i uses the (i mod
//	                 n)th, as fio's libcufile with gpu_dev_ids
//	gpu_path=P       gpu only: auto, cufile or bounce (default auto)
//	gpu_threads=N    threads of the transfer under each job (default gds.DefaultWorkers)
//	gpu_reader=R     bounce only: auto, io_uring, pread or mmap (default auto)
//	cufile_io=M      cufile path: auto, batch or sync (default auto: the
//	                 batch API with true GDS, cuFileRead threads otherwise)
//
// filename may be a namespace URL (tcp://HOST:PORT/NQN/NSID, rdma://...):
// the gpu engine then reads and writes it through flashpath's host, the
// NVMe-oF data received into pinned staging buffers and copied to the GPU
// (path "staging"); hostnqn=NQN sets the host NQN.
//
// fio's direct=1 opens the file O_DIRECT; with it bs and offset must be
// multiples of 4096. gdsio's threads are fio's numjobs: each job opens its
// own transfer. iodepth is the number of requests submitted to the
// transfer (gds.Transfer.Submit) before reaping (gds.Transfer.Reap); each
// request is cut into the transfer's chunks, which its threads move in
// parallel.
package gpu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/flashpath/flashpath/bench"
	"github.com/flashpath/flashpath/gds"
	_ "github.com/flashpath/flashpath/gds/nvmf" // filename=tcp://... and rdma://...
)

func init() {
	bench.RegisterEngine("cufile", func(cfg *bench.EngineConfig) (bench.Engine, error) {
		return Open(cfg, gds.PathCuFile)
	}, "gpu", "gpu_threads", "cufile_io")
	bench.RegisterEngine("gpu", func(cfg *bench.EngineConfig) (bench.Engine, error) {
		p, err := gds.ParsePath(cfg.Options["gpu_path"])
		if err != nil {
			return nil, fmt.Errorf("option gpu_path: %w", err)
		}
		return Open(cfg, p)
	}, "gpu", "gpu_path", "gpu_threads", "gpu_reader", "cufile_io", "hostnqn")
}

// Engine moves a job's I/O between a file and GPU memory through one
// gds.File. Its buffers are one device allocation carved into iodepth
// slices; Buffer.Bytes is nil and Buffer.Addr the device address.
type Engine struct {
	job    string // the job's name
	clone  int    // cfg.JobIndex
	dev    *gds.Device
	file   *gds.File
	size   int64
	mem    *gds.Buffer
	stride int

	staged []gds.Request
	comps  []gds.Completion
	ios    []*bench.IO // by slot index
	ctx    context.Context
}

var (
	_ bench.Engine       = (*Engine)(nil)
	_ bench.BufferAccess = (*Engine)(nil)
	_ bench.DepthLimiter = (*Engine)(nil)
)

func intOpt(opts map[string]string, name string, def int) (int, error) {
	v, ok := opts[name]
	if !ok || v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("option %s=%q: want a number >= 0", name, v)
	}
	return n, nil
}

// cloneGPU is the GPU of the job's clone cfg.JobIndex: option gpu (from
// libcufile's gpu_dev_ids), a colon-separated list whose IDs the clones
// take in turn, as fio's libcufile assigns them by subjob number. Every ID
// must name a GPU of the machine; the error names the option, the ID and
// how many GPUs there are. Where the driver does not load, OpenDevice says
// so.
func cloneGPU(cfg *bench.EngineConfig) (int, error) {
	opt, v := "gpu", cfg.Options["gpu"]
	ids := []int{0}
	if v != "" {
		ids = ids[:0]
		for _, s := range strings.Split(v, ":") {
			n, err := strconv.Atoi(s)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("option gpu=%q: want a GPU ordinal, or ordinals separated by ':' (0:1)", v)
			}
			ids = append(ids, n)
		}
	}
	if j := cfg.Job; j.EngineAlias == "libcufile" && (j.GPUDevIDs == nil && v == "" || slices.Equal(ids, j.GPUDevIDs)) {
		opt = "gpu_dev_ids"
	}
	if n, err := gds.DeviceCount(); err == nil {
		for _, id := range ids {
			if id >= n {
				return 0, fmt.Errorf("option %s: GPU %d does not exist: this machine has %s", opt, id, gpus(n))
			}
		}
	}
	return ids[cfg.JobIndex%len(ids)], nil
}

func gpus(n int) string {
	switch n {
	case 0:
		return "no GPU"
	case 1:
		return "1 GPU (ID 0)"
	}
	return fmt.Sprintf("%d GPUs (IDs 0 to %d)", n, n-1)
}

// Open opens the engine for one job with path (auto, cufile or bounce).
// An error wraps bench.ErrNotSupported (the same error as
// gds.ErrNotSupported) when the machine lacks the NVIDIA driver, the GPU
// or cuFile.
func Open(cfg *bench.EngineConfig, path gds.Path) (*Engine, error) {
	j := cfg.Job
	gpu, err := cloneGPU(cfg)
	if err != nil {
		return nil, err
	}
	threads, err := intOpt(cfg.Options, "gpu_threads", 0)
	if err != nil {
		return nil, err
	}
	rd, err := gds.ParseReader(cfg.Options["gpu_reader"])
	if err != nil {
		return nil, fmt.Errorf("option gpu_reader: %w", err)
	}
	cio, err := gds.ParseCuFileIO(cfg.Options["cufile_io"])
	if err != nil {
		return nil, fmt.Errorf("option cufile_io: %w", err)
	}
	if j.Sync != bench.SyncNone {
		return nil, fmt.Errorf("option sync: the GPU engines do not open files O_SYNC/O_DSYNC; use fsync=N, fdatasync=N or end_fsync=1: %w", bench.ErrNotSupported)
	}
	if j.RW.Trim {
		return nil, fmt.Errorf("option rw: the GPU engines move data to and from GPU memory; trim with ioengine=psync, io_uring or nvme-tcp: %w", bench.ErrNotSupported)
	}
	if j.Direct {
		// O_DIRECT writes from the staging buffers (and GDS) need whole
		// blocks; reads could round, but one rule is clearer.
		if j.Offset%4096 != 0 {
			return nil, fmt.Errorf("option offset: %d is not a multiple of 4096, required by direct=1 on the GPU engines", j.Offset)
		}
		for _, bs := range j.BS {
			if bs%4096 != 0 {
				return nil, fmt.Errorf("option bs: %d is not a multiple of 4096, required by direct=1 on the GPU engines (direct=0 takes any size)", bs)
			}
		}
	}
	remote := gds.IsURL(cfg.Filename)
	var size int64
	if !remote {
		if size, err = prepare(cfg); err != nil {
			return nil, err
		}
	}
	dev, err := gds.OpenDevice(gpu)
	if err != nil {
		return nil, fmt.Errorf("GPU %d: %w", gpu, err)
	}
	o := gds.Options{Path: path, Direct: gds.DirectOff, Reader: rd, CuFileIO: cio, Workers: threads}
	if path == gds.PathCuFile {
		o.Direct = gds.DirectAuto // cuFile bypasses the page cache, like gdsio, whatever direct= says
	}
	if j.Direct {
		// Measure the drive: O_DIRECT whatever the page cache holds, and
		// with auto, cuFile where it runs true GDS.
		o.Direct, o.CachedThreshold = gds.DirectOn, 2
	}
	flag := os.O_RDONLY
	if j.RW.Write {
		flag = os.O_RDWR
	}
	var f *gds.File
	if remote {
		// A namespace (tcp:// or rdma://): NVMe-oF into pinned staging buffers.
		if path == gds.PathCuFile {
			dev.Close()
			return nil, fmt.Errorf("%s: cuFile reads files; a namespace URL takes ioengine=gpu: %w", cfg.Filename, bench.ErrNotSupported)
		}
		o.Path = gds.PathAuto
		f, err = dev.OpenURL(context.Background(), cfg.Filename, j.RW.Write, o, gds.RemoteOptions{HostNQN: cfg.Options["hostnqn"]})
		if err == nil {
			size = f.Size()
			if need := j.CloneOffset(cfg.JobIndex) + j.RegionSize(); need > size {
				f.Close()
				err = fmt.Errorf("%s: the job needs %d bytes, the namespace holds %d: lower size= or offset=", cfg.Filename, need, size)
			}
		}
	} else {
		f, err = dev.OpenFile(cfg.Filename, flag, o)
	}
	if err != nil {
		dev.Close()
		return nil, err
	}
	slog.Info("gpu bench engine", "subsys", "bench", "engine", j.IOEngine, "job", j.Name, "clone", cfg.JobIndex,
		"gpu", gpu, "path", f.Path(), "reader", f.Reader(), "direct", f.DirectIO(), "reason", f.Reason())
	depth := max(cfg.IODepth, 1)
	return &Engine{job: j.Name, clone: cfg.JobIndex, dev: dev, file: f, size: size, ctx: context.Background(),
		staged: make([]gds.Request, 0, depth), comps: make([]gds.Completion, depth), ios: make([]*bench.IO, depth)}, nil
}

// prepare creates or extends a regular file to offset+size with data, as
// fio lays out its files (reads then hit real blocks, not holes), and
// returns the target's size.
func prepare(cfg *bench.EngineConfig) (int64, error) {
	j := cfg.Job
	need := j.CloneOffset(cfg.JobIndex) + j.RegionSize()
	name := cfg.Filename
	st, err := os.Stat(name)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if j.Size == 0 {
			return 0, fmt.Errorf("%s does not exist and size= is not given", name)
		}
		err = bench.LayoutFile(name, 0, need)
	case err != nil:
	case st.Mode().IsRegular() && st.Size() < need:
		err = bench.LayoutFile(name, st.Size(), need)
	}
	if err != nil {
		return 0, err
	}
	f, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Seek(0, io.SeekEnd) // also right for block devices
}

// testHookBuffers, set by tests, sees each engine once its buffers are
// allocated.
var testHookBuffers func(*Engine)

// GPU is the ordinal of the GPU the engine's buffers live on.
func (e *Engine) GPU() int { return e.dev.Info.Index }

// Path is the path that runs the job's transfers, Reason why.
func (e *Engine) Path() gds.Path { return e.file.Path() }

// Reason says why the path was chosen.
func (e *Engine) Reason() string { return e.file.Reason() }

// Size is the file's (or block device's) size.
func (e *Engine) Size() int64 { return e.size }

// Sync makes the job's writes durable (fio's fsync, fdatasync, end_fsync).
func (e *Engine) Sync(datasync bool) error { return e.file.Sync(datasync) }

// Invalidate drops the file's pages from the page cache (fio's invalidate).
func (e *Engine) Invalidate() error { return e.file.Invalidate() }

// MaxIODepth is the transfer's queue depth.
func (e *Engine) MaxIODepth() int { return e.file.QueueDepth() }

// Buffers allocates n slices of size bytes of device memory, 4 KiB apart,
// registered with cuFile on the cufile path.
func (e *Engine) Buffers(n, size int) ([]bench.Buffer, error) {
	if e.mem != nil {
		return nil, errors.New("gpu engine: Buffers called twice")
	}
	e.stride = (size + 4095) &^ 4095
	m, err := e.dev.Alloc(int64(n) * int64(e.stride))
	if err != nil {
		return nil, err
	}
	e.mem = m
	if e.file.Path() == gds.PathCuFile {
		e.file.RegisterBuffer(m) // best effort: unregistered buffers work too
	}
	if testHookBuffers != nil {
		testHookBuffers(e)
	}
	bufs := make([]bench.Buffer, n)
	for i := range bufs {
		bufs[i] = bench.Buffer{Addr: uintptr(m.Ptr()) + uintptr(i*e.stride), Len: size, Index: i}
	}
	return bufs, nil
}

func (e *Engine) Queue(io *bench.IO) error {
	op := gds.OpRead
	if io.Op == bench.OpWrite {
		op = gds.OpWrite
	}
	e.ios[io.Index] = io
	e.staged = append(e.staged, gds.Request{Op: op, Off: io.Offset, Len: int64(io.Len), Dev: gds.DevicePtr(io.Buf.Addr), Tag: uint64(io.Index)})
	return nil
}

// Commit submits the staged requests as one batch.
func (e *Engine) Commit() error {
	if len(e.staged) == 0 {
		return nil
	}
	err := e.file.Submit(e.staged)
	e.staged = e.staged[:0]
	return err
}

// GetEvents reaps at least minEv completions.
func (e *Engine) GetEvents(minEv int, events []*bench.IO) ([]*bench.IO, error) {
	room := min(cap(events)-len(events), len(e.comps))
	n, err := e.file.Reap(e.ctx, min(minEv, room), e.comps[:room])
	for _, c := range e.comps[:n] {
		io := e.ios[c.Tag]
		io.Res, io.Err = int(c.N), c.Err
		events = append(events, io)
	}
	return events, err
}

func (e *Engine) offset(b *bench.Buffer) int64 { return int64(b.Addr - uintptr(e.mem.Ptr())) }

// CopyToBuffer copies host into GPU buffer b (verify patterns).
func (e *Engine) CopyToBuffer(b *bench.Buffer, host []byte) error {
	return e.mem.CopyFromHost(host, e.offset(b))
}

// CopyFromBuffer copies GPU buffer b into host (verify checks).
func (e *Engine) CopyFromBuffer(host []byte, b *bench.Buffer) error {
	return e.mem.CopyToHost(host, e.offset(b))
}

// Close waits for in-flight I/O, closes the file, frees the buffers and
// releases the GPU.
func (e *Engine) Close() error {
	var errs []error
	if e.file != nil {
		errs = append(errs, e.file.Close())
	}
	if e.mem != nil {
		errs = append(errs, e.mem.Close())
	}
	if e.dev != nil {
		errs = append(errs, e.dev.Close())
	}
	return errors.Join(errs...)
}
