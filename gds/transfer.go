package gds

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// Op is the direction of a Request.
type Op uint8

const (
	OpRead  Op = iota // file → GPU
	OpWrite           // GPU → file
)

// Request moves Len bytes between file offset Off and device address Dev.
// Tag comes back in its Completion.
type Request struct {
	Op  Op
	Off int64
	Len int64
	Dev DevicePtr
	Tag uint64
}

// Completion reports a finished Request: N is Len on success.
type Completion struct {
	Tag uint64
	N   int64
	Err error
}

// Transfer is the submit/reap interface both GPU paths implement, and that
// a benchmark engine drives: submit a batch of requests, reap completions.
// At most QueueDepth requests may be outstanding (submitted, not reaped).
type Transfer interface {
	Submit(reqs []Request) error
	Reap(ctx context.Context, min int, out []Completion) (int, error)
	QueueDepth() int
	Close() error
}

// ErrQueueFull is returned by Submit when the batch would exceed QueueDepth.
var ErrQueueFull = errors.New("transfer queue full: reap completions first")

// ErrClosed is returned by a closed Transfer.
var ErrClosed = errors.New("transfer closed")

// chunk is one unit of work for a worker: read readLen bytes at fileOff
// into a staging buffer (or straight to the GPU), of which [skip, skip+n)
// is wanted at dev. Values, not pointers: no allocation per chunk.
type chunk struct {
	slot    int32
	op      Op
	fileOff int64
	readLen int64
	skip    int64
	n       int64
	dev     DevicePtr
}

type reqSlot struct {
	req       Request
	remaining atomic.Int64 // chunks not yet done
	errOnce   sync.Once
	err       error // first error; written under errOnce, read after remaining hits 0
}

// engine holds what both paths share: request slots, the dispatcher that
// cuts requests into chunks, and completion delivery.
type engine struct {
	chunkSize int64
	align     int64 // chunk boundaries and read sizes are multiples of align

	slots   []reqSlot
	free    chan int32 // free slot indices
	pending chan int32 // submitted slots, to the dispatcher
	chunks  chan chunk // to the workers
	done    chan int32 // completed slots, to Reap

	submitMu sync.Mutex
	closed   atomic.Bool
	wg       sync.WaitGroup // dispatcher and workers
	closeMu  sync.Once
}

func newEngine(depth int, chunkSize, align int64, workers int) *engine {
	e := &engine{
		chunkSize: chunkSize,
		align:     align,
		slots:     make([]reqSlot, depth),
		free:      make(chan int32, depth),
		pending:   make(chan int32, depth),
		chunks:    make(chan chunk, 2*workers),
		done:      make(chan int32, depth),
	}
	for i := range depth {
		e.free <- int32(i)
	}
	return e
}

func (e *engine) QueueDepth() int { return len(e.slots) }

// start runs the dispatcher and the workers; each worker ranges over e.chunks.
func (e *engine) start(workers int, work func(w int)) {
	e.wg.Add(1 + workers)
	go func() { defer e.wg.Done(); e.dispatch(); close(e.chunks) }()
	for w := range workers {
		go func() { defer e.wg.Done(); work(w) }()
	}
}

func (e *engine) Submit(reqs []Request) error {
	if e.closed.Load() {
		return ErrClosed
	}
	for _, r := range reqs {
		if r.Off < 0 || r.Len < 0 {
			return fmt.Errorf("submit: bad request off=%d len=%d", r.Off, r.Len)
		}
	}
	e.submitMu.Lock()
	defer e.submitMu.Unlock()
	if len(e.free) < len(reqs) {
		return ErrQueueFull
	}
	for _, r := range reqs {
		i := <-e.free
		s := &e.slots[i]
		s.req = r
		s.err = nil
		s.errOnce = sync.Once{}
		s.remaining.Store(e.countChunks(r))
		e.pending <- i
	}
	return nil
}

// span returns the first chunk-aligned file range covering the request.
func (e *engine) bounds(r Request) (start, end int64) {
	start = r.Off / e.align * e.align
	end = (r.Off + r.Len + e.align - 1) / e.align * e.align
	return start, end
}

func (e *engine) countChunks(r Request) int64 {
	if r.Len == 0 {
		return 1 // an empty chunk completes the request
	}
	start, end := e.bounds(r)
	return (end - start + e.chunkSize - 1) / e.chunkSize
}

func (e *engine) dispatch() {
	for i := range e.pending {
		r := e.slots[i].req
		if r.Len == 0 {
			e.chunks <- chunk{slot: i, op: r.Op}
			continue
		}
		start, end := e.bounds(r)
		for cur := start; cur < end; cur += e.chunkSize {
			next := min(cur+e.chunkSize, end)
			lo, hi := max(cur, r.Off), min(next, r.Off+r.Len)
			e.chunks <- chunk{slot: i, op: r.Op, fileOff: cur, readLen: next - cur, skip: lo - cur, n: hi - lo,
				dev: r.Dev + DevicePtr(lo-r.Off)}
		}
	}
}

// finish marks a chunk done; the last chunk of a request completes it.
func (e *engine) finish(c chunk, err error) {
	s := &e.slots[c.slot]
	if err != nil {
		s.errOnce.Do(func() { s.err = err })
	}
	if s.remaining.Add(-1) == 0 {
		e.done <- c.slot
	}
}

func (e *engine) Reap(ctx context.Context, min int, out []Completion) (int, error) {
	n := 0
	take := func(i int32) {
		s := &e.slots[i]
		c := Completion{Tag: s.req.Tag, N: s.req.Len, Err: s.err}
		if c.Err != nil {
			c.N = 0
		}
		out[n] = c
		n++
		e.free <- i
	}
	for n < len(out) {
		if n >= min {
			select {
			case i := <-e.done:
				take(i)
				continue
			default:
				return n, nil
			}
		}
		select {
		case i := <-e.done:
			take(i)
		case <-ctx.Done():
			return n, ctx.Err()
		}
	}
	return n, nil
}

// stop closes the request queue and waits for the workers to drain it.
func (e *engine) stop() {
	e.closeMu.Do(func() {
		e.submitMu.Lock()
		e.closed.Store(true)
		close(e.pending)
		e.submitMu.Unlock()
		e.wg.Wait()
	})
}

// Run submits reqs to t in batches of at most its queue depth, reaps them
// all, and returns the first error; after a failed request it submits no
// more and reaps what is in flight.
func Run(ctx context.Context, t Transfer, reqs []Request) error {
	return RunEach(ctx, t, reqs, nil)
}

// RunEach is Run calling each (when not nil) with every successful
// completion, as it is reaped.
func RunEach(ctx context.Context, t Transfer, reqs []Request, each func(Completion)) error {
	depth := t.QueueDepth()
	comps := make([]Completion, depth)
	var first error
	inflight := 0
	for len(reqs) > 0 || inflight > 0 {
		if first != nil {
			reqs = nil // stop submitting; reap what is in flight
		}
		if n := min(len(reqs), depth-inflight); n > 0 {
			if err := t.Submit(reqs[:n]); err != nil {
				return err
			}
			reqs, inflight = reqs[n:], inflight+n
		}
		if inflight == 0 {
			break
		}
		got, err := t.Reap(ctx, 1, comps[:inflight])
		for _, c := range comps[:got] {
			switch {
			case c.Err != nil:
				first = cmp.Or(first, c.Err)
			case each != nil:
				each(c)
			}
		}
		inflight -= got
		if err != nil {
			return err
		}
	}
	return first
}
