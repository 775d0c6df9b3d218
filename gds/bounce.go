package gds

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"sync/atomic"
	"unsafe"

	"github.com/flashpath/flashpath/gds/internal/cuda"
	"golang.org/x/sys/unix"
)

// fileIO is what the bounce path needs from a file: positional reads and
// writes. The real one is an fd; tests inject short reads and EIO.
type fileIO interface {
	ReadAt(p []byte, off int64) (int, error)
	WriteAt(p []byte, off int64) (int, error)
}

// fdIO does pread/pwrite on an fd without the os.File wrappers (no
// allocation, EINTR retried).
type fdIO int

func (f fdIO) ReadAt(p []byte, off int64) (int, error) {
	for {
		n, err := unix.Pread(int(f), p, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		return n, nil
	}
}

func (f fdIO) WriteAt(p []byte, off int64) (int, error) {
	for {
		n, err := unix.Pwrite(int(f), p, off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, err
		}
		return n, nil
	}
}

// bounce is flashpath's own path to GPU memory: workers read the file into
// pinned staging buffers (O_DIRECT or buffered) and copy them to the GPU
// with cuMemcpyHtoDAsync on their own stream, each with depth buffers in
// flight, so reads overlap copies. Writes run the other way.
//
//	file ──pread──▶ pinned[w][k] ──HtoDAsync(stream w)──▶ GPU
//
// The staging buffers come from the Device's pool: the first transfer
// allocates them (in parallel), later ones reuse them.
type bounce struct {
	*engine
	dev      *Device
	io       fileIO
	depth    int           // staging buffers per worker
	staging  []*HostBuffer // depth per worker, in worker order; ReaderMmap: one per worker, nil until needed
	lazySize int64         // ReaderMmap: size of the staging buffer a worker pins when it needs one
	direct   bool          // O_DIRECT reads: short only at the end of the file
	reader   Reader        // ReaderURing, ReaderPread or ReaderMmap: what the workers read with
	rings    []*ringReader // one per worker with ReaderURing
	why      string        // why io_uring was not used, when it was wanted
	mapped   []byte        // ReaderMmap: the file mapped read-only, its size at open
	staged   atomic.Int64  // ReaderMmap: chunks read through the staging buffers instead
	// unregister releases the staging buffers' registration with the
	// remotes' transports; regWhy says why there is none, where one
	// failed.
	unregister func()
	regWhy     string
}

// hostRegistrant is a fileIO whose remotes can register the pipeline's
// staging buffers with their transports (registerHost).
type hostRegistrant interface {
	registerHost(bufs []*HostBuffer) (release func(), why string)
}

var _ Transfer = (*bounce)(nil)

// maxDepth bounds the staging buffers per worker.
const maxDepth = 8

// newBounce starts the pipeline. With ReaderAuto, O_DIRECT reads of an fd
// go through io_uring when the kernel allows it and everything else through
// pread workers; ReaderURing insists (the error wraps ErrNotSupported).
func newBounce(dev *Device, f fileIO, direct bool, rd Reader, workers, depth int, chunkSize int64) (*bounce, error) {
	depth = max(1, min(depth, maxDepth))
	align := int64(1)
	switch {
	case direct:
		align = 4096
	case rd == ReaderMmap:
		align = pageSize // the reader pins whole pages: chunks on the page grid never share one
	}
	if a, ok := f.(interface{ Align() int64 }); ok {
		align = max(align, a.Align()) // whole blocks of a remote
	}
	chunkSize = (chunkSize + align - 1) / align * align
	b := &bounce{engine: newEngine(workers*depth*4, chunkSize, align, workers), dev: dev, io: f, depth: depth,
		direct: direct, reader: ReaderPread}
	if rd == ReaderMmap {
		m, err := mapForPinning(dev, f, direct)
		if err != nil {
			return nil, err
		}
		b.mapped, b.reader = m, ReaderMmap
	}
	// Staging: depth buffers of a chunk per worker, pinned up front. The
	// mmap reader copies from the page cache and only goes through a
	// staging buffer synchronously (chunks it cannot pin, writes), a piece
	// at a time: one buffer per worker, of at most DefaultChunk whatever
	// the chunk size, pinned the first time the worker needs it (most
	// loads never do).
	var err error
	if b.reader == ReaderMmap {
		b.lazySize = min(chunkSize, DefaultChunk)
		b.staging = make([]*HostBuffer, workers)
	} else {
		if b.staging, err = dev.getStaging(workers*depth, chunkSize); err != nil {
			unmap(b.mapped)
			return nil, err
		}
	}
	if hr, ok := f.(hostRegistrant); ok && b.reader != ReaderMmap {
		b.unregister, b.regWhy = hr.registerHost(b.staging)
	}
	if rd == ReaderURing || (rd == ReaderAuto || rd == "") && direct {
		fd, ok := f.(fdIO)
		if ok {
			b.rings, err = newRingReaders(int(fd), b.staging, workers, depth)
		} else {
			err = fmt.Errorf("io_uring reader: the file is not an fd: %w", ErrNotSupported)
		}
		switch {
		case err == nil:
			b.reader = ReaderURing
		case rd == ReaderURing:
			b.releaseStaging()
			return nil, err
		default:
			b.why = err.Error()
		}
	}
	type res struct {
		s   cuda.Stream
		evs []cuda.Event
	}
	rs := make([]res, workers)
	err = dev.Do(func() error {
		for w := range rs {
			s, err := cuda.StreamCreate(cuda.StreamNonBlocking)
			if err != nil {
				return err
			}
			rs[w].s = s
			for range depth {
				ev, err := cuda.EventCreate(cuda.EventDisableTiming | cuda.EventBlockingSync)
				if err != nil {
					return err
				}
				rs[w].evs = append(rs[w].evs, ev)
			}
		}
		return nil
	})
	if err != nil {
		dev.Do(func() error {
			for _, r := range rs {
				for _, ev := range r.evs {
					ev.Destroy()
				}
				if r.s != (cuda.Stream{}) {
					r.s.Destroy()
				}
			}
			return nil
		})
		closeRings(b.rings)
		b.releaseStaging()
		unmap(b.mapped)
		return nil, fmt.Errorf("create streams: %w", err)
	}
	if b.rings != nil {
		b.start(workers, func(w int) { b.workRing(w, rs[w].s, rs[w].evs, b.rings[w]) })
	} else {
		b.start(workers, func(w int) { b.work(w, rs[w].s, rs[w].evs) })
	}
	return b, nil
}

func (b *bounce) Close() error {
	b.stop()
	closeRings(b.rings) // after the workers: in-flight reads end with the ring
	b.rings = nil
	b.releaseStaging()
	unmap(b.mapped) // after the workers: every chunk's pages are unpinned
	b.mapped = nil
	return nil
}

// bindWorker makes the device's context current on this worker's locked
// thread; if it cannot, every chunk fails with the reason and the worker
// must return.
func (b *bounce) bindWorker() bool {
	if err := b.dev.bind(); err != nil {
		for c := range b.chunks {
			b.finish(c, err)
		}
		return false
	}
	return true
}

// releaseWorker frees a worker's stream and events and unlocks its thread.
func releaseWorker(s cuda.Stream, evs []cuda.Event) {
	for _, ev := range evs {
		ev.Destroy()
	}
	s.Destroy()
	runtime.UnlockOSThread()
}

// work is one worker: its thread holds the context, its stream and its
// depth staging buffers, refilled round robin; a buffer is refilled only
// after the copy that read it has completed. Each read chunk costs one cgo
// crossing: queue its copy, record its event, and wait for the event of
// the buffer to refill next (cuEventQuery first: usually long done).
func (b *bounce) work(w int, s cuda.Stream, evs []cuda.Event) {
	if !b.bindWorker() {
		return
	}
	defer releaseWorker(s, evs)
	var inflight [maxDepth]chunk // chunk whose copy uses staging buffer k (or pinned[k])
	var busy [maxDepth]bool
	var pinned [maxDepth]unsafe.Pointer // ReaderMmap: the pages slot k's copy reads
	k := 0
	// done completes slot k's chunk once its copy has completed (werr):
	// its pages are unpinned first.
	done := func(k int, werr error) {
		busy[k] = false
		b.finish(inflight[k], cmp.Or(werr, unpin(&pinned[k])))
	}
	drain := func(k int) {
		if busy[k] {
			done(k, evs[k].Wait())
		}
	}
	drainAll := func() {
		for i := range b.depth {
			drain((k + i) % b.depth) // oldest first
		}
	}
	for {
		var c chunk
		var ok bool
		select {
		case c, ok = <-b.chunks:
		default:
			// Nothing queued: complete what is in flight before blocking.
			drainAll()
			c, ok = <-b.chunks
		}
		if !ok {
			drainAll()
			return
		}
		if c.n == 0 {
			b.finish(c, nil)
			continue
		}
		drain(k) // normally done already by the previous chunk's crossing
		if c.op == OpRead {
			var src unsafe.Pointer
			var err error
			if b.reader == ReaderMmap {
				src, err = b.pin(w, c, &pinned[k], s, evs[k])
			} else {
				buf := b.staging[w*b.depth+k]
				if err = b.read(buf.b[:c.readLen], c); err == nil {
					src = unsafe.Pointer(&buf.b[c.skip])
				}
			}
			if err != nil || src == nil { // failed, or copied already
				b.finish(c, err)
				continue
			}
			next := (k + 1) % b.depth
			var wait *cuda.Event
			if busy[next] && next != k {
				wait = &evs[next]
			}
			err, werr := cuda.CopyHtoDAsyncRecordWait(cuda.DevicePtr(c.dev), src, c.n, s, evs[k], wait)
			if wait != nil {
				done(next, werr)
			}
			if err != nil {
				b.finish(c, cmp.Or(err, unpin(&pinned[k])))
				continue
			}
			inflight[k], busy[k] = c, true
			k = next
			continue
		}
		buf, err := b.stagingBuf(w, k)
		if err == nil {
			err = b.writeChunk(buf, s, evs[k], c)
		}
		b.finish(c, err)
	}
}

// releaseStaging returns the staging buffers pinned so far to the
// device's pool.
func (b *bounce) releaseStaging() {
	if b.unregister != nil {
		b.unregister()
		b.unregister = nil
	}
	b.dev.putStaging(slices.DeleteFunc(b.staging, func(h *HostBuffer) bool { return h == nil }))
	b.staging = nil
}

// stagingBuf returns worker w's staging buffer for slot k, pinning the
// mmap reader's (one per worker) on first use.
func (b *bounce) stagingBuf(w, k int) (*HostBuffer, error) {
	i := w*b.depth + k
	if b.reader == ReaderMmap {
		i = w
	}
	if b.staging[i] == nil {
		bufs, err := b.dev.getStaging(1, b.lazySize)
		if err != nil {
			return nil, err
		}
		b.staging[i] = bufs[0]
	}
	return b.staging[i], nil
}

// writeChunk copies c from the GPU into buf and writes it, a buffer at a
// time: each copy must land before the pwrite reads the buffer.
func (b *bounce) writeChunk(buf *HostBuffer, s cuda.Stream, ev cuda.Event, c chunk) error {
	off, end, dev := c.fileOff+c.skip, c.fileOff+c.skip+c.n, c.dev
	for off < end {
		n := min(end-off, int64(len(buf.b)))
		err := cuda.CopyDtoHAsyncRecord(unsafe.Pointer(&buf.b[0]), cuda.DevicePtr(dev), n, s, ev)
		if err == nil {
			err = ev.Synchronize()
		}
		if err == nil {
			err = b.write(buf.b[:n], off)
		}
		if err != nil {
			return err
		}
		off, dev = off+n, dev+DevicePtr(n)
	}
	return nil
}

// read fills p from c.fileOff until the wanted bytes [skip, skip+n) are in:
// short reads continue, EOF before them is io.ErrUnexpectedEOF.
func (b *bounce) read(p []byte, c chunk) error {
	need := c.skip + c.n
	got := int64(0)
	for got < need {
		n, err := b.io.ReadAt(p[got:], c.fileOff+got)
		got += int64(n)
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read %d bytes at %d: %w", len(p)-int(got), c.fileOff+got, err)
		}
		// O_DIRECT reads come back short only at the end of the file.
		if n == 0 || (b.direct && got < need && int64(n)%512 != 0) {
			if got < need {
				return fmt.Errorf("read at %d: file ends %d bytes short: %w", c.fileOff+got, need-got, io.ErrUnexpectedEOF)
			}
			break
		}
	}
	return nil
}

func (b *bounce) write(p []byte, off int64) error {
	for len(p) > 0 {
		n, err := b.io.WriteAt(p, off)
		if err != nil {
			return fmt.Errorf("write %d bytes at %d: %w", len(p), off, err)
		}
		if n == 0 {
			return fmt.Errorf("write at %d: %w", off, io.ErrShortWrite)
		}
		p, off = p[n:], off+int64(n)
	}
	return nil
}
