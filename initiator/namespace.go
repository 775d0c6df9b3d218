package initiator

import (
	"context"
	"fmt"
	"sync"

	"github.com/flashpath/flashpath/nvmeof"
)

// Namespace is the blocking I/O interface to one namespace. Its methods
// may be called from many goroutines; commands are spread over the I/O
// queues, and I/Os larger than the maximum transfer size are split.
type Namespace struct {
	c         *Controller
	id        uint32
	info      nvmeof.IdentifyNamespace
	blockSize int
	size      int64
	maxXfer   int
}

// Namespace identifies nsid and returns its blocking I/O interface.
func (c *Controller) Namespace(ctx context.Context, nsid uint32) (*Namespace, error) {
	qs := c.Queues()
	if len(qs) == 0 {
		return nil, fmt.Errorf("namespace %d: the controller has no I/O queues", nsid)
	}
	info, err := c.IdentifyNamespace(ctx, nsid)
	if err != nil {
		return nil, fmt.Errorf("namespace %d: %w", nsid, err)
	}
	bs := info.BlockSize()
	if bs == 0 || info.NSZE == 0 {
		return nil, fmt.Errorf("namespace %d: not active on %s (size %d, block size %d): check the NSID with `flashpath io identify`", nsid, c.cfg.SubNQN, info.NSZE, bs)
	}
	maxXfer := qs[0].MaxTransfer()
	// NLB is 16 bits: at most 65536 blocks per command.
	maxXfer = min(maxXfer, bs<<16)
	maxXfer -= maxXfer % bs
	return &Namespace{c: c, id: nsid, info: info, blockSize: bs, size: int64(info.NSZE) * int64(bs), maxXfer: maxXfer}, nil
}

// ID returns the NSID.
func (n *Namespace) ID() uint32 { return n.id }

// BlockSize returns the logical block size in bytes.
func (n *Namespace) BlockSize() int { return n.blockSize }

// Size returns the capacity in bytes.
func (n *Namespace) Size() int64 { return n.size }

// Info returns the Identify Namespace data.
func (n *Namespace) Info() nvmeof.IdentifyNamespace { return n.info }

// MaxTransfer returns the most bytes one command moves.
func (n *Namespace) MaxTransfer() int { return n.maxXfer }

// nsCall is the per-call state of a blocking operation, pooled so that
// an operation of up to callReqs commands allocates nothing.
type nsCall struct {
	reqs [callReqs]Request
	done chan *Request
	// want is how many deliveries a polled queue's Poll waits for
	// (ready, bound once).
	want  int
	ready func() bool
}

const callReqs = 16

func newCall(n int) *nsCall {
	c := &nsCall{done: make(chan *Request, n)}
	c.ready = func() bool { return len(c.done) >= c.want }
	return c
}

// wait waits until n requests were delivered on c.done, polling q when
// it is a polled queue (every request then went to q).
func (c *nsCall) wait(q *Queue, n int) {
	if q.Polled() {
		c.want = n
		q.Poll(c.ready) // a failed queue delivers all it had in flight
	}
}

var callPool = sync.Pool{New: func() any { return newCall(callReqs) }}

// getCall returns call state and count zeroed requests: pooled when they
// fit in callReqs, else new (an operation that long moves count ×
// MaxTransfer bytes, beside which two allocations are nothing).
func getCall(count int) (*nsCall, []Request) {
	if count > callReqs {
		return newCall(count), make([]Request, count)
	}
	c := callPool.Get().(*nsCall)
	return c, c.reqs[:count]
}

// putCall returns c to the pool once every request it handed out has
// completed or was never submitted, zeroing them (the pool keeps no
// caller's buffer alive).
func putCall(c *nsCall, reqs []Request) {
	if len(reqs) > callReqs {
		return
	}
	clear(reqs)
	callPool.Put(c)
}

// queue picks the next I/O queue of s, round robin.
func (n *Namespace) queue(s *session) *Queue {
	return s.io[int(n.c.rr.Add(1))%len(s.io)]
}

func (n *Namespace) check(op string, off int64, length int) error {
	bs := int64(n.blockSize)
	if off < 0 || length < 0 || off%bs != 0 || int64(length)%bs != 0 {
		return fmt.Errorf("%s at %d, %d bytes: offset and length must be multiples of the %d-byte block size", op, off, length, bs)
	}
	if off+int64(length) > n.size {
		return fmt.Errorf("%s at %d, %d bytes: beyond the end of the %d-byte namespace", op, off, length, n.size)
	}
	return nil
}

// do splits [off, off+length) into commands of at most maxXfer bytes,
// submits them all and waits for every one. When a connection fails under
// them, it waits for the controller to reconnect and runs them all again
// on the new queues (as the Linux host requeues I/O): a read reads again,
// a write writes the same data again.
// With dev != 0 the data is in device memory at dev, not in p.
func (n *Namespace) do(op Op, p []byte, dev uint64, off int64, length int, fua, dealloc bool) error {
	return doIO(n, op, p, dev, off, length, fua, dealloc)
}

// blockIO is what a Namespace (one controller) and a Multipath (several)
// share: the geometry that checks an operation, and how its commands are
// run (again on a new connection, or on another path, when one fails).
type blockIO interface {
	geometry() *Namespace
	run(name string, c ioCall) error
}

// ioCall is one operation, by value: through blockIO's interface call a
// closure or a pointer would be moved to the heap on every I/O.
type ioCall struct {
	op      Op
	p       []byte
	dev     uint64
	off     int64
	length  int
	fua     bool
	dealloc bool
	single  bool    // tmpl is the operation's one command (Flush, DSM)
	tmpl    Request // NSID is filled in per namespace
}

// on runs c's commands on session s of n.
func (c ioCall) on(n *Namespace, s *session) (lost bool, err error) {
	if c.single {
		r := c.tmpl
		r.NSID = n.id
		return n.one(s, r)
	}
	return n.doOn(s, c.op, c.p, c.dev, c.off, c.length, c.fua, c.dealloc)
}

func (n *Namespace) geometry() *Namespace { return n }

func (n *Namespace) run(name string, c ioCall) error {
	return n.retry(name, c.off, func(s *session) (bool, error) { return c.on(n, s) })
}

// doIO checks an operation against b's geometry and runs its commands.
func doIO(b blockIO, op Op, p []byte, dev uint64, off int64, length int, fua, dealloc bool) error {
	if err := b.geometry().check(op.String(), off, length); err != nil {
		return err
	}
	if length == 0 {
		return nil
	}
	return b.run(op.String(), ioCall{op: op, p: p, dev: dev, off: off, length: length, fua: fua, dealloc: dealloc})
}

// MaxRetries bounds how often one Namespace operation is run again on a
// new connection (Linux nvme_core.max_retries is 5): a command that kills
// every connection it is sent on (it times out, say) fails after
// MaxRetries+1 connections instead of looping.
const MaxRetries = 5

// retry runs f on the current session and, each time f says a connection
// failed under it, again on the next one, until the controller will not
// reconnect or MaxRetries connections have failed under it.
func (n *Namespace) retry(op string, off int64, f func(s *session) (lost bool, err error)) error {
	s, err := n.c.ioSession(context.Background())
	if err != nil {
		return fmt.Errorf("%s at %d: %w", op, off, err)
	}
	for try := 0; ; try++ {
		lost, err := f(s)
		if !lost || !n.c.reconnects() {
			return err
		}
		if try == MaxRetries {
			return fmt.Errorf("%w (failed on %d connections in a row)", err, try+1)
		}
		var werr error
		if s, werr = n.c.waitSession(context.Background(), s); werr != nil {
			return fmt.Errorf("%s at %d: %w", op, off, werr)
		}
	}
}

// one runs the single command tmpl on a queue of s and waits for it.
func (n *Namespace) one(s *session, tmpl Request) (lost bool, err error) {
	c, reqs := getCall(1)
	r := &reqs[0]
	*r = tmpl
	r.Done = c.done
	q := n.queue(s)
	if err := q.Submit(r); err != nil {
		putCall(c, reqs)
		return q.Err() != nil, err
	}
	c.wait(q, 1)
	<-c.done
	lost, err = r.Err != nil, r.Error()
	putCall(c, reqs)
	return lost, err
}

// doOn runs do's commands on session s; lost reports that some failed
// because a connection did (not for an NVMe status).
func (n *Namespace) doOn(s *session, op Op, p []byte, dev uint64, off int64, length int, fua, dealloc bool) (lost bool, err error) {
	chunk := n.maxXfer
	if op == OpWriteZeroes {
		chunk = n.blockSize << 16
	}
	count := (length + chunk - 1) / chunk
	call, reqs := getCall(count)
	done := call.done
	submitted := 0
	var firstErr error
	// A polled queue is polled by its user: the whole call goes to one.
	q := n.queue(s)
	for i := range count {
		start := i * chunk
		end := min(start+chunk, length)
		r := &reqs[i]
		*r = Request{Op: op, NSID: n.id, SLBA: uint64(off+int64(start)) / uint64(n.blockSize),
			NLB: uint32((end - start) / n.blockSize), FUA: fua, Deallocate: dealloc, Done: done}
		if p != nil {
			r.Buf = p[start:end]
		}
		if dev != 0 {
			r.Dev, r.DevLen = dev+uint64(start), end-start
		}
		if !q.Polled() && i > 0 {
			q = n.queue(s)
		}
		if err := q.Submit(r); err != nil {
			firstErr, lost = fmt.Errorf("%s at %d: %w", op, off+int64(start), err), q.Err() != nil
			break
		}
		submitted++
	}
	call.wait(q, submitted)
	for range submitted {
		r := <-done
		if err := r.Error(); err != nil {
			lost = lost || r.Err != nil
			if firstErr == nil {
				firstErr = fmt.Errorf("%s at %d: %w", op, int64(r.SLBA)*int64(n.blockSize), err)
			}
		}
	}
	putCall(call, reqs)
	return lost, firstErr
}

// ReadAt reads len(p) bytes at off; both must be multiples of the block size.
func (n *Namespace) ReadAt(p []byte, off int64) (int, error) {
	if err := n.do(OpRead, p, 0, off, len(p), false, false); err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteAt writes p at off; both must be multiples of the block size.
func (n *Namespace) WriteAt(p []byte, off int64) (int, error) {
	if err := n.do(OpWrite, p, 0, off, len(p), false, false); err != nil {
		return 0, err
	}
	return len(p), nil
}

// WriteAtFUA writes p at off with Force Unit Access.
func (n *Namespace) WriteAtFUA(p []byte, off int64) (int, error) {
	if err := n.do(OpWrite, p, 0, off, len(p), true, false); err != nil {
		return 0, err
	}
	return len(p), nil
}

// ReadDevice reads length bytes at off into device memory at addr (a GPU
// address inside memory registered with Controller.RegisterDevice): the
// controller writes them there directly, no host buffer in between. off
// and length must be multiples of the block size; reads larger than
// MaxTransfer are split, and run again after a reconnect, like ReadAt.
// Transports that cannot reach device memory fail with an error wrapping
// ErrNoDeviceMemory.
func (n *Namespace) ReadDevice(addr uint64, length int, off int64) error {
	return deviceIO(n, OpRead, addr, length, off)
}

// deviceIO reads into or writes from device memory at addr.
func deviceIO(b blockIO, op Op, addr uint64, length int, off int64) error {
	if addr == 0 {
		return fmt.Errorf("%s at %d, device memory: device address 0", op, off)
	}
	return doIO(b, op, nil, addr, off, length, false, false)
}

// WriteDevice writes length bytes of device memory at addr (registered
// with Controller.RegisterDevice) at off: the controller reads them from
// there directly. Like WriteAt otherwise.
func (n *Namespace) WriteDevice(addr uint64, length int, off int64) error {
	return deviceIO(n, OpWrite, addr, length, off)
}

// Compare compares p with the data at off. A mismatch is a
// *nvmeof.StatusError with nvmeof.StatusCompareFailure.
func (n *Namespace) Compare(p []byte, off int64) error {
	return n.do(OpCompare, p, 0, off, len(p), false, false)
}

// WriteZeroes zeroes length bytes at off.
func (n *Namespace) WriteZeroes(off int64, length int64) error {
	if length > int64(int(^uint(0)>>1)) {
		return fmt.Errorf("write zeroes: length %d too large", length)
	}
	return n.do(OpWriteZeroes, nil, 0, off, int(length), false, false)
}

// Flush makes every completed write durable.
func (n *Namespace) Flush() error { return flushIO(n) }

func flushIO(b blockIO) error {
	err := b.run("flush", ioCall{single: true, tmpl: Request{Op: OpFlush}})
	if err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	return nil
}

// Deallocate deallocates (trims) length bytes at off with Dataset
// Management; the namespace reads back zeros when DLFEAT says so.
func (n *Namespace) Deallocate(off int64, length int64) error { return deallocateIO(n, off, length) }

func deallocateIO(b blockIO, off int64, length int64) error {
	n := b.geometry()
	if err := n.check("deallocate", off, 0); err != nil {
		return err
	}
	bs := int64(n.blockSize)
	if length%bs != 0 || off+length > n.size {
		return fmt.Errorf("deallocate at %d, %d bytes: length must be a multiple of the %d-byte block size within the namespace", off, length, bs)
	}
	blocks := length / bs
	const maxRange = 1<<32 - 1
	nr := int((blocks + maxRange - 1) / maxRange)
	if nr == 0 {
		return nil
	}
	if nr > 256 {
		return fmt.Errorf("deallocate %d bytes: more than 256 ranges", length)
	}
	buf := make([]byte, nr*nvmeof.DSMRangeSize)
	slba := uint64(off / bs)
	for i := range nr {
		cnt := min(blocks, maxRange)
		nvmeof.EncodeDSMRange(buf, i, nvmeof.DSMRange{NLB: uint32(cnt), SLBA: slba})
		slba += uint64(cnt)
		blocks -= cnt
	}
	err := b.run("deallocate", ioCall{off: off, single: true, tmpl: Request{Op: OpDSM, NLB: uint32(nr), Buf: buf, Deallocate: true}})
	if err != nil {
		return fmt.Errorf("deallocate at %d: %w", off, err)
	}
	return nil
}
