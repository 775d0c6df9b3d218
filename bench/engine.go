package bench

import (
	"fmt"
	"sort"
	"sync"

	"github.com/flashpath/flashpath/internal/platform"
)

// Op is what an I/O does.
type Op uint8

const (
	OpRead Op = iota
	OpWrite
	OpTrim // discard Len bytes at Offset (fio's trim)
	// OpSync and OpDatasync flush File (fsync, fdatasync): fsync=N and
	// fdatasync=N queued beside the writes, for QueuedSyncer engines.
	OpSync
	OpDatasync
)

// dir is the statistics direction of an I/O of this kind.
func (op Op) dir() Direction {
	switch op {
	case OpWrite:
		return DirWrite
	case OpTrim:
		return DirTrim
	}
	return DirRead
}

// IO is one I/O slot, fio's io_u. The core owns the slots (iodepth of them
// per job, allocated once); an engine sees an IO between Queue and the
// GetEvents call that returns it, and fills in Res and Err.
type IO struct {
	Op     Op
	Offset int64
	Len    int
	Buf    *Buffer // the slot's buffer, from Engine.Buffers

	// File is the file of the clone's set (nrfiles) the I/O goes to.
	File int

	// Index is the slot number, 0 <= Index < iodepth: engines use it to map
	// their own completion tags (io_uring user_data, NVMe CID) back to the IO.
	Index int

	// Res is the number of bytes transferred; Err is non-nil on failure.
	// Engines set them before returning the IO from GetEvents.
	Res int
	Err error

	// EngineData is scratch space for the engine.
	EngineData uint64

	issued    int64 // ns, before Queue
	submitted int64 // ns, after the Commit that carried it
	verify    bool  // a verify read (verify_backlog) in a phase that writes
}

// Buffer is memory an engine transfers to or from. Host engines fill
// Bytes; engines whose memory the CPU cannot touch (GPU device memory)
// leave Bytes nil, set Addr, and implement BufferAccess so that the core
// can still write verify patterns and check what was read.
type Buffer struct {
	Bytes []byte  // host-visible memory, or nil
	Addr  uintptr // engine-specific address (device pointer, registered address)
	Len   int
	Index int // engine-specific: registered buffer index, MR key, ...
}

// Offloaded is implemented by engines whose I/O runs on goroutines of
// their own (flashpath's NVMe-oF hosts): the job's goroutine only submits
// and reaps. Unless the job pins CPUs (cpus_allowed), its goroutine then
// runs unlocked from its OS thread (a locked goroutine that the engine's
// goroutines wake costs a switch between threads each time: 41k -> 52k
// IOPS at QD1 over NVMe/TCP here), and its usr/sys are the process's CPU
// over the group's run in equal shares among the group's clones.
type Offloaded interface{ Offloaded() }

// Engine drives one job's I/O against one target, in fio's ioengine shape:
// the core Queues up to iodepth I/Os, Commits the batch and reaps with
// GetEvents. All methods are called from the job's goroutine only.
type Engine interface {
	// Size is the capacity of the target in bytes (file or device size,
	// namespace size), or 0 if unknown.
	Size() int64

	// Buffers returns n buffers of size bytes each, owned by the engine
	// until Close. Engines choose the memory: registered, pinned, device.
	Buffers(n, size int) ([]Buffer, error)

	// Queue hands one I/O to the engine. A synchronous engine performs it
	// now; an asynchronous one stages it for Commit. The core never has
	// more than the job's iodepth I/Os queued or in flight. An error here
	// fails the job (per-I/O failures go in IO.Err instead).
	Queue(io *IO) error

	// Commit submits everything staged since the last Commit.
	Commit() error

	// GetEvents waits until at least min I/Os have completed, then appends
	// completed I/Os to events (up to its capacity) and returns it.
	// It must not allocate.
	GetEvents(min int, events []*IO) ([]*IO, error)

	// Close waits for or cancels in-flight I/O and frees every resource.
	Close() error
}

// BufferAccess is implemented by engines whose Buffer.Bytes is nil: the
// core moves verify patterns through it. Both copy len(host) bytes.
type BufferAccess interface {
	CopyToBuffer(b *Buffer, host []byte) error
	CopyFromBuffer(host []byte, b *Buffer) error
}

// Syncer is implemented by engines whose writes can be made durable: the
// core calls Sync, with no I/O in flight, for fio's fsync=N (datasync
// false), fdatasync=N (true) and end_fsync.
type Syncer interface {
	Sync(datasync bool) error
}

// Invalidator is implemented by engines on files and block devices: the
// core calls Invalidate before the job when invalidate=1 (fio's default)
// to drop the file's pages from the page cache.
type Invalidator interface {
	Invalidate() error
}

// Synchronous is implemented by engines that perform each I/O inside
// Queue (fio's FIO_SYNCIO engines: psync, sync, pvsync). As fio, the core
// then times the whole I/O as completion latency (from just before
// Queue) and records no submission latency.
type Synchronous interface{ Synchronous() }

// QueuedSyncer is implemented by engines that take OpSync and OpDatasync
// in their queue when QueuedSync reports true, as fio's io_uring queues
// IORING_OP_FSYNC beside the writes: fsync=N then goes out without the
// queue draining first (other engines drain it, then call Syncer.Sync,
// as fio's sync and libaio engines do).
type QueuedSyncer interface {
	QueuedSync() bool
}

// DepthLimiter is implemented by synchronous engines: the core caps the
// job's iodepth at MaxIODepth (fio: iodepth > 1 does not affect sync engines).
type DepthLimiter interface {
	MaxIODepth() int
}

// EngineConfig is what a Factory gets for one job (one clone of it).
type EngineConfig struct {
	Job      *Job
	JobIndex int    // clone number, 0 <= JobIndex < NumJobs
	Filename string // resolved: Job.Filename, or generated from Directory
	// Filenames are the clone's files with nrfiles > 1 (Filename is the
	// first); an engine that takes them implements FileSet.
	Filenames []string
	IODepth   int
	// Options are the job's engine-specific options (declared at
	// registration), already checked to be known.
	Options map[string]string
}

// Factory opens an engine for one job.
type Factory func(cfg *EngineConfig) (Engine, error)

// FileSet is an engine that opened every file of EngineConfig.Filenames:
// IO.File picks one.
type FileSet interface {
	Files() int
}

type engineInfo struct {
	name    string
	factory Factory
	options []string
	bools   map[string]bool // options that may be given bare (hipri, fixedbufs)
}

var (
	registryMu sync.Mutex
	registry   = map[string]engineInfo{}
)

// RegisterEngine makes an engine available as ioengine=name. options are
// the engine-specific job options it accepts (fio's engine options, e.g.
// "fixedbufs"); any other unknown option fails the job. It panics on a
// duplicate name, like database/sql.Register.
func RegisterEngine(name string, f Factory, options ...string) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("bench: RegisterEngine called twice for " + name)
	}
	registry[name] = engineInfo{name: name, factory: f, options: options}
}

// RegisterBoolOptions marks options of a registered engine as booleans:
// given bare (--hipri) they mean 1, as in fio.
func RegisterBoolOptions(engine string, names ...string) {
	registryMu.Lock()
	defer registryMu.Unlock()
	e, ok := registry[engine]
	if !ok {
		panic("bench: RegisterBoolOptions for unregistered engine " + engine)
	}
	if e.bools == nil {
		e.bools = map[string]bool{}
	}
	for _, n := range names {
		e.bools[n] = true
	}
	registry[engine] = e
}

func lookupEngine(name string) (engineInfo, bool) {
	registryMu.Lock()
	defer registryMu.Unlock()
	e, ok := registry[name]
	return e, ok
}

func engines() []engineInfo {
	registryMu.Lock()
	defer registryMu.Unlock()
	out := make([]engineInfo, 0, len(registry))
	for _, e := range registry {
		out = append(out, e)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].name < out[b].name })
	return out
}

// EngineNames lists the registered engines.
func EngineNames() []string {
	var names []string
	for _, e := range engines() {
		names = append(names, e.name)
	}
	return names
}

// ErrNotSupported is wrapped by engine errors for missing kernel features,
// hardware or libraries; tests skip on it. It is platform.ErrNotSupported,
// which the errors of the packages engines use (gds, uring) wrap too.
var ErrNotSupported = platform.ErrNotSupported

func openEngine(cfg *EngineConfig) (Engine, error) {
	info, ok := lookupEngine(cfg.Job.IOEngine)
	if !ok {
		return nil, fmt.Errorf("unknown engine %q", cfg.Job.IOEngine)
	}
	e, err := info.factory(cfg)
	if err != nil {
		return nil, fmt.Errorf("open engine %s for %s: %w", info.name, cfg.Filename, err)
	}
	return e, nil
}
