package gds

import (
	"errors"
	"fmt"
	"io"
	"math/bits"
	"strings"
	"syscall"
	"unsafe"

	"github.com/flashpath/flashpath/gds/internal/cuda"
	"github.com/flashpath/flashpath/internal/uring"
)

// Reader is how the bounce pipeline reads the file into its staging buffers.
type Reader string

const (
	// ReaderAuto: io_uring for O_DIRECT reads when the kernel allows it,
	// pread otherwise (buffered reads from the page cache: parallel preads
	// measured best, 43-49 GB/s of 55 on an H100 host).
	ReaderAuto Reader = "auto"
	// ReaderURing: each reader thread has a ring whose registered buffers
	// are its pinned staging buffers (READ_FIXED) and keeps all of them
	// busy: up to depth reads in flight per thread, submitted in one
	// io_uring_enter, while earlier chunks are copied to the GPU.
	ReaderURing Reader = "io_uring"
	// ReaderPread: one blocking pread in flight per reader thread.
	ReaderPread Reader = "pread"
	// ReaderMmap copies from the page cache with no CPU copy: the file is
	// mapped, each chunk's pages are pinned where they lie
	// (cuMemHostRegister, read-only) and the GPU's copy engines DMA them
	// straight out of the page cache; the pages are unpinned once the copy
	// is done. Buffered reads only (pages not cached are read in as they
	// are pinned). Chunks whose pages another request in flight has pinned,
	// or that lie past the file's size at open, go through the staging
	// buffers with pread instead.
	ReaderMmap Reader = "mmap"
)

// ParseReader validates a reader name ("" is auto).
func ParseReader(s string) (Reader, error) {
	return parseChoice("reader", s, ReaderAuto, ReaderURing, ReaderPread, ReaderMmap)
}

// parseChoice returns s as one of choices ("" is the first, the default),
// or an error that names what was asked and the choices.
func parseChoice[T ~string](what, s string, choices ...T) (T, error) {
	if s == "" {
		return choices[0], nil
	}
	names := make([]string, len(choices))
	for i, c := range choices {
		if string(c) == s {
			return c, nil
		}
		names[i] = string(c)
	}
	return "", fmt.Errorf("%s %q: want %s or %s", what, s, strings.Join(names[:len(names)-1], ", "), names[len(names)-1])
}

// ringReader is one worker's io_uring: its staging buffers are registered
// as fixed buffers 0..depth-1, and a read into buffer k carries k as its
// user data.
type ringReader struct {
	ring  *uring.Ring
	fd    int32
	fixed bool // buffers registered: READ_FIXED, else plain READ
	cqes  [maxDepth]uring.CQE
}

// newRingReaders makes one ring per worker over its slice of staging.
func newRingReaders(fd int, staging []*HostBuffer, workers, depth int) ([]*ringReader, error) {
	var rs []*ringReader
	for w := range workers {
		r, err := newRingReader(fd, staging[w*depth:(w+1)*depth])
		if err != nil {
			closeRings(rs)
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, nil
}

func newRingReader(fd int, bufs []*HostBuffer) (*ringReader, error) {
	entries := uint32(1) << bits.Len32(uint32(len(bufs)-1))
	ring, err := uring.New(entries, &uring.Params{Flags: uring.SetupCoopTaskrun})
	if errors.Is(err, syscall.EINVAL) {
		ring, err = uring.New(entries, nil) // kernels before 5.19 lack COOP_TASKRUN
	}
	if err != nil {
		return nil, fmt.Errorf("io_uring reader: %w", err)
	}
	r := &ringReader{ring: ring, fd: int32(fd)}
	iov := make([][]byte, len(bufs))
	for i, b := range bufs {
		iov[i] = b.b
	}
	// Registration can fail on RLIMIT_MEMLOCK (kernels before 5.12 charge
	// it): plain READs into the same buffers still keep depth in flight.
	r.fixed = ring.RegisterBuffers(iov) == nil
	return r, nil
}

func closeRings(rs []*ringReader) {
	for _, r := range rs {
		r.ring.Close()
	}
}

func (r *ringReader) prep(k int, p []byte, off int64) error {
	if r.fixed {
		return r.ring.PrepReadFixed(r.fd, p, uint64(off), uint16(k), uint64(k))
	}
	return r.ring.PrepRead(r.fd, p, uint64(off), uint64(k))
}

// Buffer states in workRing.
const (
	bufReading uint8 = iota + 1 // a read is in flight
	bufRead                     // read complete (or failed: err set)
	bufCopying                  // HtoD copy queued, its event recorded
)

type ringSlot struct {
	c     chunk
	got   int64 // bytes read so far
	state uint8
	err   error
}

// workRing is a worker of the io_uring reader. Its depth staging buffers
// form a window, oldest first: a prefix whose copies to the GPU are queued,
// then buffers being read. It fills free buffers with reads (one
// io_uring_enter for all of them), waits for the oldest read, queues its
// copy, and frees the oldest copy only when it needs the buffer or has
// nothing else to wait for. Copies go in file order on the worker's stream.
//
//	file ──READ_FIXED (depth in flight)──▶ pinned[w][k] ──HtoDAsync──▶ GPU
func (b *bounce) workRing(w int, s cuda.Stream, evs []cuda.Event, r *ringReader) {
	if !b.bindWorker() {
		return
	}
	defer releaseWorker(s, evs)
	bufs := b.staging[w*b.depth : (w+1)*b.depth]
	depth := b.depth
	var st [maxDepth]ringSlot
	head, nc, nr := 0, 0, 0 // window: nc copying from head, then nr reading
	var broken error        // the ring failed: fail everything from now on

	retire := func() { // the oldest copy is done (or failed): complete it
		k := head
		c, err := st[k].c, st[k].err
		if err == nil {
			err = evs[k].Wait()
		}
		st[k] = ringSlot{}
		b.finish(c, err)
		head, nc = (head+1)%depth, nc-1
	}
	// reaped handles one completion of a read into buffer k: short reads
	// continue, EOF before the wanted bytes is io.ErrUnexpectedEOF.
	reaped := func(k int, res int32) {
		sl := &st[k]
		c := sl.c
		need := c.skip + c.n
		if res < 0 {
			sl.err = fmt.Errorf("read %d bytes at %d: %w", c.readLen-sl.got, c.fileOff+sl.got, syscall.Errno(-res))
			sl.state = bufRead
			return
		}
		sl.got += int64(res)
		// O_DIRECT reads come back short only at the end of the file.
		if sl.got >= need || res == 0 || (b.direct && res%512 != 0) {
			if sl.got < need {
				sl.err = fmt.Errorf("read at %d: file ends %d bytes short: %w", c.fileOff+sl.got, need-sl.got, io.ErrUnexpectedEOF)
			}
			sl.state = bufRead
			return
		}
		if err := r.prep(k, bufs[k].b[sl.got:c.readLen], c.fileOff+sl.got); err != nil {
			sl.err, sl.state = err, bufRead
		}
	}
	// oldestRead waits for the oldest read and queues its copy.
	oldestRead := func() {
		k := (head + nc) % depth
		for st[k].state == bufReading && broken == nil {
			if r.ring.Pending() > 0 {
				if _, err := r.ring.Submit(); err != nil {
					broken = err
					break
				}
			}
			n := r.ring.Reap(r.cqes[:])
			if n == 0 {
				if err := r.ring.WaitCQE(); err != nil {
					broken = err
				}
				continue
			}
			for _, cqe := range r.cqes[:n] {
				reaped(int(cqe.UserData), cqe.Res)
			}
		}
		sl := &st[k]
		if sl.state == bufReading {
			sl.err = broken
		}
		if sl.err == nil {
			c := sl.c
			sl.err = cuda.CopyHtoDAsyncRecord(cuda.DevicePtr(c.dev), unsafe.Pointer(&bufs[k].b[c.skip]), c.n, s, evs[k])
		}
		sl.state = bufCopying
		nc, nr = nc+1, nr-1
	}
	drain := func() {
		for nr > 0 {
			oldestRead()
		}
		for nc > 0 {
			retire()
		}
	}

	for closed := false; ; {
		// Fill free buffers; block for a chunk only when nothing is in flight.
	fill:
		for !closed && nc+nr < depth {
			var c chunk
			var ok bool
			if nc+nr == 0 {
				c, ok = <-b.chunks
			} else {
				select {
				case c, ok = <-b.chunks:
				default:
					break fill
				}
			}
			switch {
			case !ok:
				closed = true
			case broken != nil:
				b.finish(c, broken)
			case c.n == 0:
				b.finish(c, nil)
			case c.op == OpWrite:
				drain()
				b.finish(c, b.writeChunk(bufs[head], s, evs[head], c))
			default:
				k := (head + nc + nr) % depth
				st[k] = ringSlot{c: c, state: bufReading}
				if err := r.prep(k, bufs[k].b[:c.readLen], c.fileOff); err != nil {
					st[k].err, st[k].state = err, bufRead
				}
				nr++
			}
		}
		switch {
		case nr > 0:
			oldestRead()
			if nc+nr == depth {
				retire() // the next fill needs a buffer
			}
		case nc > 0:
			for nc > 0 { // nothing to read: complete the copies
				retire()
			}
		case closed:
			return
		}
	}
}
