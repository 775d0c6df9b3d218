package gds

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Path is a way from files to GPU memory.
type Path string

const (
	PathAuto   Path = "auto"   // choose per file (see Open)
	PathCuFile Path = "cufile" // GPUDirect Storage through libcufile
	PathBounce Path = "bounce" // flashpath's pinned-buffer pipeline
	// PathRDMA is NVMe/RDMA straight into GPU memory (LoadShards): the
	// target's RDMA WRITEs land in GPU memory registered with the NIC as a
	// dma-buf, or by address through nvidia-peermem; no host copy.
	PathRDMA Path = "rdma"
	// PathStaging is NVMe-oF through flashpath's host into pinned staging
	// buffers (the socket read lands the data there), copied to the GPU
	// asynchronously while the next reads run: what a remote load takes.
	PathStaging Path = "staging"
)

// ParsePath validates a --gpu-path value.
func ParsePath(s string) (Path, error) {
	switch p := Path(s); p {
	case PathAuto, PathCuFile, PathBounce, PathRDMA, PathStaging:
		return p, nil
	case "":
		return PathAuto, nil
	}
	return "", fmt.Errorf("gpu path %q: want auto, cufile, bounce, staging or rdma", s)
}

// Direct says whether the bounce path opens files with O_DIRECT.
type Direct string

const (
	DirectAuto Direct = "auto" // O_DIRECT unless the file is in the page cache
	DirectOn   Direct = "on"
	DirectOff  Direct = "off"
)

// Options tune a transfer; zero values take the defaults.
type Options struct {
	Path   Path   // auto, cufile or bounce
	Direct Direct // bounce only: O_DIRECT or buffered reads (writes: O_DIRECT only with DirectOn)
	Reader Reader // bounce only: io_uring, pread or mmap (default: io_uring for O_DIRECT reads, pread for buffered)
	// CuFileIO is how the cufile path issues I/O: batch API or threads.
	CuFileIO CuFileIO
	Workers  int   // reader threads (default DefaultWorkers())
	Depth    int   // staging buffers per worker in flight (default DefaultDepth)
	Chunk    int64 // bytes per read and copy (default DefaultChunk)
	// CachedThreshold is the fraction of the file's pages resident in the
	// page cache from which reads go buffered (default 0.5).
	CachedThreshold float64
}

// Defaults of the bounce pipeline. Its pinned staging memory is
// workers × depth × chunk (192 MiB with 16 workers), allocated once per
// Device and reused: enough to keep the copy engines busy (at 55 GB/s a
// 4 MiB copy takes 76 µs, a 4 MiB pread from the page cache about 1 ms, so
// each of 16 readers needs a buffer being read, one being copied and one
// spare), small enough to pin in tens of milliseconds.
const (
	DefaultDepth = 3
	DefaultChunk = 4 << 20
)

// DefaultWorkers is the number of reader threads: the CPU count, from 2 to 12
// (on a 16-core H100 host 12 readers moved the most: 48.8 GB/s of 55 GB/s PCIe).
func DefaultWorkers() int { return min(max(runtime.NumCPU(), 2), 12) }

// WithDefaults fills in the zero fields.
func (o Options) WithDefaults() Options { return o.withDefaults() }

func (o Options) withDefaults() Options {
	if o.Path == "" {
		o.Path = PathAuto
	}
	if o.Direct == "" {
		o.Direct = DirectAuto
	}
	if o.Reader == "" {
		o.Reader = ReaderAuto
	}
	if o.CuFileIO == "" {
		o.CuFileIO = CuFileIOAuto
	}
	if o.Workers <= 0 {
		o.Workers = DefaultWorkers()
	}
	if o.Depth <= 0 {
		o.Depth = DefaultDepth
	}
	if o.Chunk <= 0 {
		o.Chunk = DefaultChunk
	}
	if o.CachedThreshold <= 0 {
		o.CachedThreshold = 0.5
	}
	return o
}

// File is a file open for transfers to or from one GPU through the path
// chosen for it; it implements Transfer.
type File struct {
	Transfer
	f      *os.File // a local file, or
	src    *source  // a namespace (OpenURL)
	size   int64
	path   Path
	direct bool
	reader Reader
	reason string
	cached float64
}

// Path is the path that runs this file's transfers.
func (f *File) Path() Path { return f.path }

// DirectIO reports whether reads bypass the page cache (O_DIRECT or GDS).
func (f *File) DirectIO() bool { return f.direct }

// Reader is what reads the file into the bounce pipeline's staging buffers
// (io_uring or pread); empty on the cufile path.
func (f *File) Reader() Reader { return f.reader }

// Reason says why the path was chosen, in words.
func (f *File) Reason() string { return f.reason }

// Cached is the fraction of the file's pages found in the page cache at open.
func (f *File) Cached() float64 { return f.cached }

// Size is the file's size at open.
func (f *File) Size() int64 { return f.size }

// Sync makes the file's written data durable: fdatasync, or fsync when
// datasync is false.
func (f *File) Sync(datasync bool) error {
	if f.src != nil {
		return f.src.sync() // NVMe Flush
	}
	if datasync {
		if err := fdatasync(int(f.f.Fd())); err != nil {
			return os.NewSyscallError("fdatasync", err)
		}
		return nil
	}
	return f.f.Sync()
}

// Invalidate drops the file's clean pages from the page cache.
func (f *File) Invalidate() error {
	if f.src != nil {
		return nil // nothing of a namespace is cached on this host
	}
	if err := fadviseDontNeed(int(f.f.Fd())); err != nil {
		return os.NewSyscallError("posix_fadvise DONTNEED", err)
	}
	return nil
}

// Close stops the transfer and closes the file.
func (f *File) Close() error {
	err := f.Transfer.Close()
	var cerr error
	if f.src != nil {
		cerr = f.src.Close()
	} else {
		cerr = f.f.Close()
	}
	if err == nil {
		err = cerr
	}
	return err
}

// Read reads into GPU memory: it runs reqs (their Op is set to OpRead) and
// returns the first error.
func (f *File) Read(ctx context.Context, reqs []Request) error {
	for i := range reqs {
		reqs[i].Op = OpRead
	}
	return Run(ctx, f, reqs)
}

// Write writes from GPU memory: it runs reqs (their Op is set to OpWrite).
func (f *File) Write(ctx context.Context, reqs []Request) error {
	for i := range reqs {
		reqs[i].Op = OpWrite
	}
	return Run(ctx, f, reqs)
}

// RegisterBuffer registers b with cuFile when the file uses the cufile path
// (a no-op on the bounce path).
func (f *File) RegisterBuffer(b *Buffer) error {
	if t, ok := f.Transfer.(*cufileT); ok {
		return t.RegisterBuffer(b)
	}
	return nil
}

// Open opens name for reads into d's memory. With PathAuto it picks:
//   - bounce, buffered, when most of the file is in the page cache (a
//     checkpoint just written): reading memory beats any drive path;
//   - cufile when cuFile runs true GDS (nvidia-fs);
//   - bounce with O_DIRECT otherwise (cuFile absent, or in compat mode,
//     which the bounce pipeline outruns).
func (d *Device) Open(name string, o Options) (*File, error) {
	return d.OpenFile(name, os.O_RDONLY, o)
}

// Create creates (or truncates) name for writes from d's memory: cufile
// when cuFile runs true GDS, else bounce with buffered writes (O_DIRECT
// with DirectOn).
func (d *Device) Create(name string, o Options) (*File, error) {
	return d.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, o)
}

// OpenFile is the generalized open, flag as in os.OpenFile: a writable file
// (O_WRONLY or O_RDWR, which reads too) picks its path as Create does,
// a read-only one as Open does. A benchmark writes and reads an existing
// file with O_RDWR, without O_TRUNC.
func (d *Device) OpenFile(name string, flag int, o Options) (*File, error) {
	o = o.withDefaults()
	if o.Path == PathRDMA {
		return nil, fmt.Errorf("%s: gpu path rdma reads NVMe/RDMA namespaces (rdma://HOST:PORT/NQN/NSID) into GPU memory, not local files: use auto, cufile or bounce: %w", name, ErrNotSupported)
	}
	write := flag&(os.O_WRONLY|os.O_RDWR) != 0
	if flag&os.O_WRONLY != 0 {
		flag = flag&^os.O_WRONLY | os.O_RDWR // the O_DIRECT reopen and cuFile want both
	}
	f, err := os.OpenFile(name, flag, 0o644)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	file := &File{f: f, size: st.Size()}
	if !write {
		file.cached, _ = Residency(f, file.size)
	}

	path, reason := choosePath(o, write, file.size, file.cached, func() (cf CuFileStatus) {
		d.Do(func() error { cf = ProbeCuFile(); return nil }) // with the context current
		return cf
	})
	switch path {
	case PathCuFile:
		err = d.openCuFile(file, name, write, o, reason)
	case PathBounce:
		err = d.openBounce(file, name, write, o, reason)
	default:
		err = fmt.Errorf("gpu path %q: want auto, cufile or bounce", path)
	}
	if err != nil {
		file.f.Close()
		return nil, err
	}
	return file, nil
}

// choosePath is the path policy: the path that runs a file's transfers,
// and why, in words. o.Path other than PathAuto is taken as asked for.
// Otherwise a read of a file mostly in the page cache (cached, the
// fraction resident, at least o.CachedThreshold) goes bounce, buffered;
// any other file goes cufile when probe says cuFile runs true GDS, and
// bounce when it does not. probe is called only then: opening cuFile's
// driver costs more than reading a cached file.
func choosePath(o Options, write bool, size int64, cached float64, probe func() CuFileStatus) (Path, string) {
	if o.Path != PathAuto {
		return o.Path, "requested with --gpu-path " + string(o.Path)
	}
	if !write && size > 0 && cached >= o.CachedThreshold {
		return PathBounce, fmt.Sprintf("%.0f%% of the file is in the page cache: buffered bounce reads it from memory", 100*cached)
	}
	cf := probe()
	switch {
	case cf.TrueGDS:
		return PathCuFile, "cuFile " + cf.Reason
	case !cf.Available:
		return PathBounce, "cuFile unavailable (" + cf.Reason + ")"
	case !cf.Usable:
		return PathBounce, "cuFile " + cf.Reason
	}
	return PathBounce, "cuFile in " + cf.Reason + "; the bounce pipeline is faster"
}

// openCuFile sets file up for the cufile path: an O_DIRECT fd unless
// --direct off asked for cuFile explicitly, or the reopen fails (cuFile
// then gets the buffered fd). On error the caller closes file.f.
func (d *Device) openCuFile(file *File, name string, write bool, o Options, reason string) error {
	fd := int(file.f.Fd())
	dfd, derr := -1, error(nil)
	if o.Direct == DirectOff && o.Path == PathCuFile {
		// Asked for: cuFile in compat mode reads a buffered fd through
		// the page cache (true GDS wants O_DIRECT).
		reason += "; buffered fd (--direct off)"
	} else {
		dfd, derr = reopenDirect(name, write)
	}
	if dfd >= 0 {
		file.f.Close()
		file.f, fd, file.direct = os.NewFile(uintptr(dfd), name), dfd, true
	} else if derr != nil {
		reason += "; O_DIRECT refused (" + derr.Error() + "), cuFile gets a buffered fd"
	}
	t, err := newCuFile(d, fd, o)
	if err != nil {
		return err
	}
	file.Transfer, file.path, file.reason = t, PathCuFile, reason+"; "+t.how
	return nil
}

// openBounce sets file up for the bounce pipeline: O_DIRECT with
// DirectOn, or for reads of a file mostly not in the page cache with
// DirectAuto (not through mmap); buffered otherwise, or when the O_DIRECT
// reopen fails unless DirectOn asked for it. On error the caller closes
// file.f.
func (d *Device) openBounce(file *File, name string, write bool, o Options, reason string) error {
	direct := o.Direct == DirectOn
	if !write && o.Direct == DirectAuto {
		direct = file.cached < o.CachedThreshold && o.Reader != ReaderMmap
	}
	if direct {
		dfd, derr := reopenDirect(name, write)
		if derr != nil {
			if o.Direct == DirectOn {
				return fmt.Errorf("open %s with O_DIRECT: %w", name, derr)
			}
			direct = false
			reason += "; O_DIRECT refused (" + derr.Error() + "), buffered reads"
		} else {
			file.f.Close()
			file.f = os.NewFile(uintptr(dfd), name)
		}
	}
	switch {
	case direct && write:
		reason += "; O_DIRECT"
	case direct:
		reason += "; O_DIRECT reads"
	case !write:
		reason += "; buffered reads"
	}
	t, err := newBounce(d, fdIO(file.f.Fd()), direct, o.Reader, o.Workers, o.Depth, o.Chunk)
	if err != nil {
		return err
	}
	switch {
	case t.reader == ReaderURing:
		reason += " through io_uring"
	case t.reader == ReaderMmap && write:
		reason += "; reads through mmap (page-cache pages pinned in place, no CPU copy)"
	case t.reader == ReaderMmap:
		reason += " through mmap (page-cache pages pinned in place, no CPU copy)"
	case t.why != "":
		reason += " through pread (" + t.why + ")"
	}
	file.Transfer, file.path, file.direct, file.reader, file.reason = t, PathBounce, direct, t.reader, reason
	return nil
}

func reopenDirect(name string, write bool) (int, error) {
	flags := unix.O_RDONLY
	if write {
		flags = unix.O_RDWR
	}
	fd, err := openDirect(name, flags)
	if err != nil {
		return -1, os.NewSyscallError("open", err)
	}
	return fd, nil
}

// Residency returns the fraction of the first size bytes of f resident in
// the page cache (mmap + mincore).
func Residency(f *os.File, size int64) (float64, error) {
	if size <= 0 {
		return 0, nil
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return 0, os.NewSyscallError("mmap", err)
	}
	defer unix.Munmap(m)
	page := int64(os.Getpagesize())
	vec := make([]byte, (size+page-1)/page)
	if _, _, e := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); e != 0 {
		return 0, os.NewSyscallError("mincore", e)
	}
	in := 0
	for _, v := range vec {
		in += int(v & 1)
	}
	return float64(in) / float64(len(vec)), nil
}
